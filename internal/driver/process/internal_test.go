package process

import (
	"bufio"
	"context"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/plumbline/plumbline/internal/driver"
)

func TestEnviron(t *testing.T) {
	parent := []string{
		"PATH=/bin", "HOME=/root", "LANG=C.UTF-8", "LC_ALL=C", "R_LIBS_USER=/r",
		"PLUMBLINE_ADMIN_TOKEN=secret", "AWS_SECRET_ACCESS_KEY=x", "EXTRA=yes", "AZUREML_MODEL_DIR=/parent",
	}
	tests := []struct {
		name    string
		passEnv []string
		spec    driver.InstanceSpec
		want    []string
	}{
		{
			name: "contract after the basics",
			spec: driver.InstanceSpec{ModelDir: "/m", CodeDir: "/c", EntryScript: "plumber.R"},
			want: []string{"PATH=/bin", "HOME=/root", "LANG=C.UTF-8", "LC_ALL=C", "R_LIBS_USER=/r",
				"AZUREML_MODEL_DIR=/m", "AML_APP_ROOT=/c", "AZUREML_ENTRY_SCRIPT=plumber.R", "PORT=8123"},
		},
		{
			name: "user values win, in place, new ones sorted at the end",
			spec: driver.InstanceSpec{ModelDir: "/m", Env: map[string]string{"ZED": "z", "AZUREML_MODEL_DIR": "/mine", "PATH": "/opt/bin", "ALPHA": "a"}},
			want: []string{"PATH=/opt/bin", "HOME=/root", "LANG=C.UTF-8", "LC_ALL=C", "R_LIBS_USER=/r",
				"AZUREML_MODEL_DIR=/mine", "PORT=8123", "ALPHA=a", "ZED=z"},
		},
		{
			name:    "PassEnv",
			passEnv: []string{"EXTRA"},
			want:    []string{"PATH=/bin", "HOME=/root", "LANG=C.UTF-8", "LC_ALL=C", "R_LIBS_USER=/r", "EXTRA=yes", "PORT=8123"},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := environ(parent, tt.passEnv, tt.spec, 8123)
			if diff := cmp.Diff(tt.want, got); diff != "" {
				t.Errorf("environ() mismatch (-want +got):\n%s", diff)
			}
		})
	}
	t.Run("no PATH in plumbline", func(t *testing.T) {
		got := environ(nil, nil, driver.InstanceSpec{}, 1)
		if diff := cmp.Diff([]string{"PATH=" + defaultPath, "PORT=1"}, got); diff != "" {
			t.Errorf("environ() mismatch (-want +got):\n%s", diff)
		}
	})
}

func TestConfigValidate(t *testing.T) {
	tests := []struct {
		name  string
		cfg   Config
		field string // "" when valid
	}{
		{"zero but state dir", Config{StateDir: "/x"}, ""},
		{"no state dir", Config{}, "StateDir"},
		{"negative log size", Config{StateDir: "/x", LogMaxBytes: -1}, "LogMaxBytes"},
		{"negative log files", Config{StateDir: "/x", LogFiles: -1}, "LogFiles"},
		{"negative interval", Config{StateDir: "/x", LogCheckInterval: -time.Second}, "LogCheckInterval"},
		{"host name", Config{StateDir: "/x", BindHost: "example.com"}, "BindHost"},
		{"any address", Config{StateDir: "/x", BindHost: "0.0.0.0"}, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := tt.cfg.Validate()
			switch {
			case tt.field == "" && err != nil:
				t.Errorf("Validate() = %v, want nil", err)
			case tt.field != "" && (err == nil || !strings.Contains(err.Error(), tt.field)):
				t.Errorf("Validate() = %v, want an error naming %s", err, tt.field)
			}
		})
	}
	if got := (Config{BindHost: "0.0.0.0"}).dialHost(); got != "127.0.0.1" {
		t.Errorf("dialHost() for 0.0.0.0 = %q, want 127.0.0.1", got)
	}
}

// fakeInstance registers an instance with no process behind it, whose log
// the test writes like a server would (O_APPEND), so rotation and reading
// can be checked byte for byte.
func fakeInstance(t *testing.T, d *Driver, id string) (*instance, *os.File) {
	t.Helper()
	in := &instance{id: id, dir: filepath.Join(d.cfg.StateDir, "instances", id), removed: make(chan struct{})}
	if err := os.MkdirAll(in.dir, 0o700); err != nil {
		t.Fatal(err)
	}
	w, err := os.OpenFile(in.logPath(), os.O_WRONLY|os.O_CREATE|os.O_APPEND, 0o600)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { w.Close() })
	d.mu.Lock()
	d.instances[id] = in
	d.mu.Unlock()
	return in, w
}

func newTestDriver(t *testing.T, cfg Config) *Driver {
	t.Helper()
	cfg.StateDir = t.TempDir()
	cfg.LogCheckInterval = time.Hour // rotation is called by the test
	cfg.Logger = slog.New(slog.NewTextHandler(io.Discard, nil))
	d, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { d.Close() })
	return d
}

func readAll(t *testing.T, d *Driver, id string, opts driver.LogOptions) string {
	t.Helper()
	r, err := d.Logs(t.Context(), id, opts)
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	b, err := io.ReadAll(r)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

func TestRotateAndRead(t *testing.T) {
	d := newTestDriver(t, Config{LogMaxBytes: 10, LogFiles: 2})
	in, w := fakeInstance(t, d, "log.blue.blue-0")
	write := func(s string) {
		if _, err := w.WriteString(s); err != nil {
			t.Fatal(err)
		}
	}
	rotate := func() {
		if err := in.rotate(d.cfg.LogMaxBytes, d.cfg.LogFiles); err != nil {
			t.Fatal(err)
		}
	}
	write("a1\na2\na3\na4\n") // 12 bytes > 10
	rotate()
	write("b1\nb2\nb3\nb4\n")
	rotate()
	write("c1\nc2\nc3\nc4\n")
	rotate() // a* falls off: only 2 rotated files are kept
	write("d1\nd2")

	files := map[string]string{}
	for _, name := range []string{"output.log", "output.log.1", "output.log.2", "output.log.3"} {
		b, _ := os.ReadFile(filepath.Join(in.dir, name))
		files[name] = string(b)
	}
	wantFiles := map[string]string{
		"output.log":   "d1\nd2",
		"output.log.1": "c1\nc2\nc3\nc4\n",
		"output.log.2": "b1\nb2\nb3\nb4\n",
		"output.log.3": "",
	}
	if diff := cmp.Diff(wantFiles, files); diff != "" {
		t.Errorf("files after rotation (-want +got):\n%s", diff)
	}

	all := "b1\nb2\nb3\nb4\nc1\nc2\nc3\nc4\nd1\nd2"
	tests := []struct {
		tail int
		want string
	}{
		{0, all},
		{1, "d2"},
		{2, "d1\nd2"},
		{3, "c4\nd1\nd2"},
		{6, "c1\nc2\nc3\nc4\nd1\nd2"},
		{7, "b4\nc1\nc2\nc3\nc4\nd1\nd2"},
		{100, all},
	}
	for _, tt := range tests {
		if got := readAll(t, d, in.id, driver.LogOptions{Tail: tt.tail}); got != tt.want {
			t.Errorf("Logs(Tail %d) = %q, want %q", tt.tail, got, tt.want)
		}
	}

	write("\n")
	if got := readAll(t, d, in.id, driver.LogOptions{Tail: 1}); got != "d2\n" {
		t.Errorf("Logs(Tail 1) with a final newline = %q, want %q", got, "d2\n")
	}
	rotate() // "d1\nd2\n" is 6 bytes: under the cap, nothing moves
	if b, _ := os.ReadFile(in.logPath()); string(b) != "d1\nd2\n" {
		t.Errorf("a log under the cap was rotated: live file %q", b)
	}
}

func TestTailOfEmptyLog(t *testing.T) {
	d := newTestDriver(t, Config{})
	in, _ := fakeInstance(t, d, "empty.blue.blue-0")
	if got := readAll(t, d, in.id, driver.LogOptions{Tail: 5}); got != "" {
		t.Errorf("Logs(Tail 5) of an empty log = %q, want empty", got)
	}
}

// TestFollowAcrossRotation: a follower loses no line when the live file is
// copy-truncated under it, and ends when the instance is removed.
func TestFollowAcrossRotation(t *testing.T) {
	d := newTestDriver(t, Config{LogMaxBytes: 1, LogFiles: 2})
	in, w := fakeInstance(t, d, "follow.blue.blue-0")
	w.WriteString("before\n")
	r, err := d.Logs(t.Context(), in.id, driver.LogOptions{Follow: true})
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	lines := make(chan string, 100)
	go func() {
		defer close(lines)
		sc := bufio.NewScanner(r)
		for sc.Scan() {
			lines <- sc.Text()
		}
	}()
	next := func() string {
		select {
		case l, ok := <-lines:
			if !ok {
				t.Fatal("follow ended early")
			}
			return l
		case <-time.After(5 * time.Second):
			t.Fatal("follow delivered nothing in 5s")
		}
		return ""
	}
	if got := next(); got != "before" {
		t.Fatalf("first line = %q, want %q", got, "before")
	}
	// Written and rotated away before the follower's next poll: it must
	// still come, from .1.
	w.WriteString("rotated-away\n")
	if err := in.rotate(d.cfg.LogMaxBytes, d.cfg.LogFiles); err != nil {
		t.Fatal(err)
	}
	w.WriteString("after\n")
	for _, want := range []string{"rotated-away", "after"} {
		if got := next(); got != want {
			t.Errorf("line = %q, want %q", got, want)
		}
	}
	// Stop's removal ends the follower after what is left.
	w.WriteString("last\n")
	d.mu.Lock()
	delete(d.instances, in.id)
	d.mu.Unlock()
	close(in.removed)
	if got := next(); got != "last" {
		t.Errorf("line = %q, want %q", got, "last")
	}
	select {
	case _, ok := <-lines:
		if ok {
			t.Error("follow delivered more after the end")
		}
	case <-time.After(5 * time.Second):
		t.Error("follow did not end after the instance was removed")
	}
}

// TestFollowEndsOnClose: closing the reader ends the follow goroutine even
// when nothing is written.
func TestFollowEndsOnClose(t *testing.T) {
	d := newTestDriver(t, Config{})
	in, _ := fakeInstance(t, d, "close.blue.blue-0")
	ctx, cancel := context.WithCancel(t.Context())
	defer cancel()
	r, err := d.Logs(ctx, in.id, driver.LogOptions{Follow: true})
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() {
		_, err := io.ReadAll(r)
		done <- err
	}()
	time.Sleep(2 * followPoll)
	r.Close()
	select {
	case <-done:
	case <-time.After(5 * time.Second):
		t.Fatal("Read did not return after Close")
	}
}

// TestFollowEndsWhenCtxEnds, many times over: the follow goroutine can see
// ctx end before the context runs its AfterFunc, and must still end the
// reader.
func TestFollowEndsWhenCtxEnds(t *testing.T) {
	d := newTestDriver(t, Config{})
	in, w := fakeInstance(t, d, "ctx.blue.blue-0")
	w.WriteString("line\n")
	for range 200 {
		ctx, cancel := context.WithCancel(t.Context())
		r, err := d.Logs(ctx, in.id, driver.LogOptions{Tail: 1, Follow: true})
		if err != nil {
			t.Fatal(err)
		}
		// Wait for the follower to send what exists, so that it sits in its
		// wait loop when ctx ends.
		if _, err := io.ReadFull(r, make([]byte, len("line\n"))); err != nil {
			t.Fatal(err)
		}
		done := make(chan struct{})
		go func() {
			io.Copy(io.Discard, r)
			close(done)
		}()
		cancel()
		select {
		case <-done:
		case <-time.After(5 * time.Second):
			t.Fatal("a following reader did not end after its ctx ended")
		}
		r.Close()
	}
}
