package docker

import (
	"context"
	"fmt"
	"io"
	"strconv"

	"github.com/moby/moby/api/pkg/stdcopy"
	"github.com/moby/moby/client"

	"github.com/plumbline/plumbline/internal/driver"
)

// Logs implements driver.Driver: the container's stdout and stderr through
// the engine, demultiplexed into one stream. A following reader ends when
// ctx ends or the container stops.
func (d *Driver) Logs(ctx context.Context, id string, opts driver.LogOptions) (io.ReadCloser, error) {
	c, err := d.find(ctx, id)
	if err != nil {
		return nil, err
	}
	tail := "all"
	if opts.Tail > 0 {
		tail = strconv.Itoa(opts.Tail)
	}
	ctx, cancel := context.WithCancel(ctx)
	rc, err := d.cli.ContainerLogs(ctx, c.ID, client.ContainerLogsOptions{
		ShowStdout: true, ShowStderr: true, Follow: opts.Follow, Tail: tail,
	})
	if err != nil {
		cancel()
		return nil, fmt.Errorf("logs of instance %s: %w", id, err)
	}
	pr, pw := io.Pipe()
	go func() {
		defer rc.Close()
		_, err := stdcopy.StdCopy(pw, pw, rc)
		if ctx.Err() != nil {
			err = nil // the reader was closed or its ctx ended: a normal end
		}
		pw.CloseWithError(err)
	}()
	return &logReader{PipeReader: pr, cancel: cancel}, nil
}

// logReader ends the engine's stream when closed.
type logReader struct {
	*io.PipeReader
	cancel context.CancelFunc
}

func (r *logReader) Close() error {
	r.cancel()
	return r.PipeReader.Close()
}
