package docker

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"slices"
	"strconv"
	"time"

	"github.com/moby/moby/api/pkg/stdcopy"
	"github.com/moby/moby/client"

	"github.com/plumbline/plumbline/internal/driver"
)

// Logs implements driver.Driver: the container's stdout and stderr through
// the engine, demultiplexed into one stream. A following reader ends when
// ctx ends or the container stops.
//
// A follow that starts with the last Tail lines is not asked of the engine
// as one request: Podman's follow with a tail reads the tail, then starts
// following from the end of the file as it is a moment later, so a line
// written in between is never sent (on a loaded machine, often). Instead
// the tail is read with its times, and the follow reads the whole log from
// just before the tail's last time (Podman reads from the start of the
// file, which loses nothing) and drops what repeats the tail; see resume.
func (d *Driver) Logs(ctx context.Context, id string, opts driver.LogOptions) (io.ReadCloser, error) {
	c, err := d.find(ctx, id)
	if err != nil {
		return nil, err
	}
	ctx, cancel := context.WithCancel(ctx)
	var (
		rc   io.ReadCloser
		pump func(w io.Writer, rc io.Reader) error
	)
	if opts.Follow && opts.Tail > 0 {
		rc, pump, err = d.followFromTail(ctx, c.ID, opts.Tail)
	} else {
		tail := "all"
		if opts.Tail > 0 {
			tail = strconv.Itoa(opts.Tail)
		}
		rc, err = d.cli.ContainerLogs(ctx, c.ID, client.ContainerLogsOptions{
			ShowStdout: true, ShowStderr: true, Follow: opts.Follow, Tail: tail,
		})
		pump = func(w io.Writer, rc io.Reader) error {
			_, err := stdcopy.StdCopy(w, w, rc)
			return err
		}
	}
	if err != nil {
		cancel()
		return nil, fmt.Errorf("logs of instance %s: %w", id, err)
	}
	pr, pw := io.Pipe()
	go func() {
		defer rc.Close()
		err := pump(pw, rc)
		if ctx.Err() != nil {
			err = nil // the reader was closed or its ctx ended: a normal end
		}
		pw.CloseWithError(err)
	}()
	return &logReader{PipeReader: pr, cancel: cancel}, nil
}

// followFromTail reads the last n lines with their times, then opens a
// follow of the whole log from just before the last one's time. The copy it
// returns writes the tail, then what the follow brings past it.
func (d *Driver) followFromTail(ctx context.Context, cid string, n int) (io.ReadCloser, func(io.Writer, io.Reader) error, error) {
	rc, err := d.cli.ContainerLogs(ctx, cid, client.ContainerLogsOptions{
		ShowStdout: true, ShowStderr: true, Tail: strconv.Itoa(n), Timestamps: true,
	})
	if err != nil {
		return nil, nil, err
	}
	var tail []stampedLine
	err = copyStamped(rc, func(l stampedLine) error { tail = append(tail, l); return nil })
	rc.Close()
	if err != nil {
		return nil, nil, err
	}
	opts := client.ContainerLogsOptions{ShowStdout: true, ShowStderr: true, Follow: true, Tail: "all", Timestamps: true}
	r := &resume{}
	if len(tail) > 0 {
		r.at = tail[len(tail)-1].at
		for _, l := range tail {
			if l.at.Equal(r.at) {
				r.sent = append(r.sent, l.text)
			}
		}
		// A millisecond early: Podman parses the time as a float, which
		// does not keep every nanosecond; resume drops the difference.
		if !r.at.IsZero() {
			opts.Since = r.at.Add(-time.Millisecond).Format(time.RFC3339Nano)
		}
	}
	if r.at.IsZero() {
		r.done = true // no tail, or a line without a time: everything is new
	}
	if rc, err = d.cli.ContainerLogs(ctx, cid, opts); err != nil {
		return nil, nil, err
	}
	return rc, func(w io.Writer, rc io.Reader) error {
		for _, l := range tail {
			if _, err := io.WriteString(w, l.text); err != nil {
				return err
			}
		}
		r.w = w
		err := copyStamped(rc, r.line)
		if err == nil {
			err = r.flush()
		}
		return err
	}, nil
}

// stampedLine is one log line and the time the engine gives it.
type stampedLine struct {
	at   time.Time // zero when the engine gave none that parses
	text string    // with its "\n", if it had one
}

// copyStamped demultiplexes an engine log stream asked with Timestamps and
// calls emit with each line, its time stripped. The engine sends a long
// line as several frames, each with its own time and only the last ending
// in "\n"; the line keeps the first frame's time.
func copyStamped(rc io.Reader, emit func(stampedLine) error) error {
	out, errs := &stamper{emit: emit}, &stamper{emit: emit}
	if _, err := stdcopy.StdCopy(out, errs, rc); err != nil {
		return err
	}
	if err := out.flush(); err != nil {
		return err
	}
	return errs.flush()
}

// stamper assembles one stream's lines. StdCopy writes one frame a Write.
type stamper struct {
	emit    func(stampedLine) error
	partial *stampedLine // a line whose last frame has not come yet
}

func (s *stamper) Write(frame []byte) (int, error) {
	var at time.Time
	text := frame
	if i := bytes.IndexByte(frame, ' '); i > 0 {
		if t, err := time.Parse(time.RFC3339Nano, string(frame[:i])); err == nil {
			at, text = t, frame[i+1:]
		}
	}
	if s.partial == nil {
		s.partial = &stampedLine{at: at}
	}
	s.partial.text += string(text)
	if bytes.HasSuffix(text, []byte("\n")) {
		if err := s.flush(); err != nil {
			return 0, err
		}
	}
	return len(frame), nil
}

func (s *stamper) flush() error {
	if s.partial == nil {
		return nil
	}
	l := *s.partial
	s.partial = nil
	return s.emit(l)
}

// resume passes on what a follow brings after the tail already sent. The
// follow starts a little before the tail's last time (at); lines before at
// were sent or are older than the tail. Several lines can share a time
// (the engine stamps what it reads at once), so the lines at exactly at
// are held until the ones the tail sent at that time (sent) have gone by,
// and the rest pass. Should sent never show up, the held lines are passed
// on: a line shown twice is better than a line lost.
type resume struct {
	w    io.Writer
	at   time.Time
	sent []string
	held []string
	done bool // past the tail: every line passes
}

func (r *resume) line(l stampedLine) error {
	switch {
	case r.done || l.at.IsZero():
	case l.at.Before(r.at):
		return nil
	case l.at.Equal(r.at):
		r.held = append(r.held, l.text)
		if n := len(r.held); n >= len(r.sent) && slices.Equal(r.held[n-len(r.sent):], r.sent) {
			r.held, r.done = nil, true
		}
		return nil
	default:
		if err := r.flush(); err != nil {
			return err
		}
	}
	_, err := io.WriteString(r.w, l.text)
	return err
}

// flush passes on held lines the tail did not account for.
func (r *resume) flush() error {
	r.done = true
	for _, text := range r.held {
		if _, err := io.WriteString(r.w, text); err != nil {
			return err
		}
	}
	r.held = nil
	return nil
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
