// Package capture writes captured request/response records (already
// redacted by the gateway) as JSON Lines: to rotating files in the data
// dir, <data dir>/capture/<endpoint>/<deployment>/<gateway>.jsonl (0600,
// in 0700 folders; rotated by size with gopkg.in/natefinch/lumberjack.v2,
// and every minute, hour or day), and to an HTTP sink in batches. It also
// reads the files back, newest last.
//
// It must not import the gateway or the store: the server hands it lines.
package capture

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"os"
	"path/filepath"
	"regexp"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"gopkg.in/natefinch/lumberjack.v2"
)

// Target is where one deployment's records go.
type Target struct {
	Endpoint, Deployment string
	// RollingRate is "minute", "hour" (zero) or "day": a new file each.
	RollingRate string
	// MaxFileBytes starts a new file at this size (zero: 100 MB);
	// MaxFiles files are kept per gateway (zero: 48).
	MaxFileBytes int64
	MaxFiles     int
	// SinkURL, if set, also receives the records by HTTP POST, with
	// SinkHeaders.
	SinkURL     string
	SinkHeaders map[string]string
}

// Writer writes records. Safe for concurrent use; Close flushes.
type Writer struct {
	dir    string
	source string
	log    *slog.Logger
	client *http.Client
	sent   *prometheus.CounterVec

	mu    sync.Mutex // protects files, sinks and closed
	files map[string]*file
	sinks map[string]*sink
	done  bool
	wg    sync.WaitGroup
}

// file is one deployment's current file.
type file struct {
	lj     *lumberjack.Logger
	period string // the rolling period of what it holds
}

// Config configures a Writer.
type Config struct {
	// Dir is the capture folder (<data dir>/capture).
	Dir string
	// Source names this gateway in file names (its replica id).
	Source string
	Logger *slog.Logger
	// Client posts to sinks (nil: a client with a 10 s timeout).
	Client *http.Client
	// Registerer receives plumbline_capture_sink_records_total (nil: none).
	Registerer prometheus.Registerer
}

var unsafeName = regexp.MustCompile(`[^A-Za-z0-9._-]`)

// New returns a Writer.
func New(cfg Config) (*Writer, error) {
	if err := os.MkdirAll(cfg.Dir, 0o700); err != nil {
		return nil, fmt.Errorf("capture folder: %w", err)
	}
	if err := os.Chmod(cfg.Dir, 0o700); err != nil {
		return nil, fmt.Errorf("capture folder: %w", err)
	}
	w := &Writer{
		dir: cfg.Dir, source: unsafeName.ReplaceAllString(cfg.Source, "_"), log: cfg.Logger, client: cfg.Client,
		files: map[string]*file{}, sinks: map[string]*sink{},
	}
	if w.source == "" {
		w.source = "gateway"
	}
	if w.log == nil {
		w.log = slog.New(slog.DiscardHandler)
	}
	if w.client == nil {
		w.client = &http.Client{Timeout: 10 * time.Second}
	}
	w.sent = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "plumbline_capture_sink_records_total",
		Help: "Captured records for HTTP sinks by result: sent, dropped (the sink's queue was full) or failed (the sink refused them after retries).",
	}, []string{"endpoint", "deployment", "result"})
	if cfg.Registerer != nil {
		if err := cfg.Registerer.Register(w.sent); err != nil {
			var are prometheus.AlreadyRegisteredError
			if !errors.As(err, &are) {
				return nil, err
			}
			w.sent = are.ExistingCollector.(*prometheus.CounterVec)
		}
	}
	return w, nil
}

// Folder is where a deployment's files are.
func Folder(dir, endpoint, deployment string) string {
	return filepath.Join(dir, unsafeName.ReplaceAllString(endpoint, "_"), unsafeName.ReplaceAllString(deployment, "_"))
}

// Write appends one record (a JSON object, no newline) for t, taken at
// at. The HTTP sink gets it later, in a batch.
func (w *Writer) Write(t Target, at time.Time, line []byte) error {
	w.mu.Lock()
	if w.done {
		w.mu.Unlock()
		return errors.New("capture writer closed")
	}
	key := t.Endpoint + "/" + t.Deployment
	f := w.files[key]
	period := periodOf(at, t.RollingRate)
	if f == nil {
		folder := Folder(w.dir, t.Endpoint, t.Deployment)
		if err := os.MkdirAll(folder, 0o700); err != nil {
			w.mu.Unlock()
			return err
		}
		_ = os.Chmod(filepath.Dir(folder), 0o700)
		_ = os.Chmod(folder, 0o700)
		name := filepath.Join(folder, w.source+".jsonl")
		f = &file{lj: &lumberjack.Logger{Filename: name}, period: period}
		if st, err := os.Stat(name); err == nil {
			f.period = periodOf(st.ModTime(), t.RollingRate)
		}
		w.files[key] = f
	}
	f.lj.MaxSize = int(max(1, (t.MaxFileBytes+(1<<20)-1)>>20))
	if t.MaxFileBytes <= 0 {
		f.lj.MaxSize = 100
	}
	f.lj.MaxBackups = max(1, t.MaxFiles) - 1
	if t.MaxFiles <= 0 {
		f.lj.MaxBackups = 47
	}
	if f.period != period {
		if err := f.lj.Rotate(); err != nil {
			w.log.Warn("capture: rotate", "file", f.lj.Filename, "err", err)
		}
		f.period = period
	}
	buf := make([]byte, 0, len(line)+1)
	buf = append(append(buf, line...), '\n')
	_, err := f.lj.Write(buf)
	if t.SinkURL != "" {
		w.sinkLocked(t).add(t, buf) // never waits: a full queue drops
	}
	w.mu.Unlock()
	return err
}

// periodOf names the rolling period at falls in.
func periodOf(at time.Time, rate string) string {
	at = at.UTC()
	switch strings.ToLower(rate) {
	case "minute":
		return at.Format("2006-01-02T15:04")
	case "day":
		return at.Format("2006-01-02")
	}
	return at.Format("2006-01-02T15")
}

// Close flushes the sinks (waiting up to ctx) and closes the files.
func (w *Writer) Close(ctx context.Context) error {
	w.mu.Lock()
	w.done = true
	for _, s := range w.sinks {
		close(s.in)
	}
	files := w.files
	w.mu.Unlock()
	waited := make(chan struct{})
	go func() { w.wg.Wait(); close(waited) }()
	select {
	case <-waited:
	case <-ctx.Done():
	}
	var errs []error
	for _, f := range files {
		errs = append(errs, f.lj.Close())
	}
	return errors.Join(errs...)
}

// sink posts batches of lines to one URL.
type sink struct {
	w   *Writer
	url string
	in  chan sinkLine
}

type sinkLine struct {
	t    Target
	line []byte
}

// sinkQueue bounds the lines waiting for a sink; past it they are dropped.
const sinkQueue = 4096

// sinkBatch is the most lines one POST carries.
const sinkBatch = 256

func (w *Writer) sinkLocked(t Target) *sink {
	s := w.sinks[t.SinkURL]
	if s == nil {
		s = &sink{w: w, url: t.SinkURL, in: make(chan sinkLine, sinkQueue)}
		w.sinks[t.SinkURL] = s
		w.wg.Add(1)
		go s.run()
	}
	return s
}

func (s *sink) add(t Target, line []byte) {
	select {
	case s.in <- sinkLine{t, line}:
	default:
		s.w.sent.WithLabelValues(t.Endpoint, t.Deployment, "dropped").Inc()
	}
}

// run sends what arrived every second, or sooner at sinkBatch lines.
func (s *sink) run() {
	defer s.w.wg.Done()
	tick := time.NewTicker(time.Second)
	defer tick.Stop()
	var batch []sinkLine
	flush := func() {
		if len(batch) > 0 {
			s.post(batch)
			batch = batch[:0]
		}
	}
	for {
		select {
		case l, ok := <-s.in:
			if !ok {
				flush()
				return
			}
			batch = append(batch, l)
			if len(batch) >= sinkBatch {
				flush()
			}
		case <-tick.C:
			flush()
		}
	}
}

// post sends a batch, retrying three times with backoff.
func (s *sink) post(batch []sinkLine) {
	var body bytes.Buffer
	for _, l := range batch {
		body.Write(l.line)
	}
	t := batch[0].t
	var err error
	for attempt, wait := 0, 200*time.Millisecond; attempt < 4; attempt, wait = attempt+1, wait*4 {
		if attempt > 0 {
			time.Sleep(wait)
		}
		err = s.send(t, body.Bytes())
		if err == nil {
			break
		}
	}
	result := "sent"
	if err != nil {
		result = "failed"
		s.w.log.Warn("capture: the HTTP sink refused a batch; its records are lost for the sink (the files keep them)", "url", redactURL(s.url), "records", len(batch), "err", err)
	}
	for _, l := range batch {
		s.w.sent.WithLabelValues(l.t.Endpoint, l.t.Deployment, result).Inc()
	}
}

func (s *sink) send(t Target, body []byte) error {
	req, err := http.NewRequest(http.MethodPost, s.url, bytes.NewReader(body))
	if err != nil {
		return err
	}
	req.Header.Set("Content-Type", "application/x-ndjson")
	req.Header.Set("User-Agent", "plumbline-capture")
	for k, v := range t.SinkHeaders {
		req.Header.Set(k, v)
	}
	res, err := s.w.client.Do(req)
	if err != nil {
		return err
	}
	defer res.Body.Close()
	_, _ = io.Copy(io.Discard, io.LimitReader(res.Body, 1<<16))
	if res.StatusCode < 200 || res.StatusCode > 299 {
		return fmt.Errorf("status %d", res.StatusCode)
	}
	return nil
}

// redactURL drops a URL's user info and query, which may hold secrets.
func redactURL(u string) string {
	if i := strings.IndexAny(u, "?#"); i >= 0 {
		u = u[:i]
	}
	if i := strings.Index(u, "@"); i >= 0 {
		if j := strings.Index(u, "://"); j >= 0 && j < i {
			u = u[:j+3] + u[i+1:]
		}
	}
	return u
}

// ReadOptions select records in Read.
type ReadOptions struct {
	// Limit keeps the newest Limit records (0: 100).
	Limit int
	// Since keeps records at or after it; RequestID one request's.
	Since     time.Time
	RequestID string
}

// maxLine bounds one record's line when reading.
const maxLine = 64 << 20

// Read returns a deployment's records from every gateway's files in dir,
// oldest first.
func Read(dir, endpoint, deployment string, o ReadOptions) ([]json.RawMessage, error) {
	folder := Folder(dir, endpoint, deployment)
	entries, err := os.ReadDir(folder)
	if errors.Is(err, os.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	limit := o.Limit
	if limit <= 0 {
		limit = 100
	}
	type rec struct {
		at   time.Time
		line json.RawMessage
	}
	var recs []rec
	for _, e := range entries {
		if e.IsDir() || !strings.HasSuffix(e.Name(), ".jsonl") {
			continue
		}
		f, err := os.Open(filepath.Join(folder, e.Name()))
		if err != nil {
			return nil, err
		}
		sc := bufio.NewScanner(f)
		sc.Buffer(make([]byte, 64<<10), maxLine)
		for sc.Scan() {
			var head struct {
				Time      time.Time `json:"time"`
				RequestID string    `json:"request_id"`
			}
			line := sc.Bytes()
			if json.Unmarshal(line, &head) != nil {
				continue // a line cut by a crash
			}
			if head.Time.Before(o.Since) || (o.RequestID != "" && head.RequestID != o.RequestID) {
				continue
			}
			recs = append(recs, rec{head.Time, append(json.RawMessage(nil), line...)})
		}
		err = sc.Err()
		f.Close()
		if err != nil {
			return nil, fmt.Errorf("read %s: %w", e.Name(), err)
		}
	}
	sort.SliceStable(recs, func(i, j int) bool { return recs[i].at.Before(recs[j].at) })
	if len(recs) > limit {
		recs = recs[len(recs)-limit:]
	}
	out := make([]json.RawMessage, len(recs))
	for i, r := range recs {
		out[i] = r.line
	}
	return out, nil
}
