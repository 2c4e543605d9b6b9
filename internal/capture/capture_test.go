package capture

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"
)

func line(at time.Time, id string) []byte {
	b, _ := json.Marshal(map[string]any{"time": at, "request_id": id, "endpoint": "ep", "deployment": "blue"})
	return b
}

func TestWriteRotateRead(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "capture")
	w, err := New(Config{Dir: dir, Source: "gw/1"})
	if err != nil {
		t.Fatal(err)
	}
	tg := Target{Endpoint: "ep", Deployment: "blue", RollingRate: "minute"}
	t0 := time.Date(2026, 3, 1, 12, 0, 10, 0, time.UTC)
	for i := range 5 {
		at := t0.Add(time.Duration(i) * 20 * time.Second) // 12:00:10 … 12:01:30
		if err := w.Write(tg, at, line(at, fmt.Sprintf("r%d", i))); err != nil {
			t.Fatal(err)
		}
		time.Sleep(2 * time.Millisecond) // lumberjack names rotated files by the millisecond
	}
	if err := w.Close(context.Background()); err != nil {
		t.Fatal(err)
	}
	folder := Folder(dir, "ep", "blue")
	files, _ := os.ReadDir(folder)
	var names []string
	for _, f := range files {
		names = append(names, f.Name())
	}
	if len(files) != 2 || !strings.HasPrefix(names[0], "gw_1-") || names[1] != "gw_1.jsonl" {
		t.Errorf("files %v: want the 12:00 file rotated and the 12:01 one current", names)
	}
	for _, p := range []string{dir, filepath.Dir(folder), folder} {
		if st, _ := os.Stat(p); st.Mode().Perm() != 0o700 {
			t.Errorf("%s: mode %v, want 0700", p, st.Mode().Perm())
		}
	}
	for _, f := range files {
		if st, _ := os.Stat(filepath.Join(folder, f.Name())); st.Mode().Perm() != 0o600 {
			t.Errorf("%s: mode %v, want 0600", f.Name(), st.Mode().Perm())
		}
	}
	recs, err := Read(dir, "ep", "blue", ReadOptions{})
	if err != nil {
		t.Fatal(err)
	}
	var ids []string
	for _, r := range recs {
		var h struct {
			RequestID string `json:"request_id"`
		}
		_ = json.Unmarshal(r, &h)
		ids = append(ids, h.RequestID)
	}
	if strings.Join(ids, ",") != "r0,r1,r2,r3,r4" {
		t.Errorf("read back %v, want r0…r4 oldest first", ids)
	}
	if recs, _ := Read(dir, "ep", "blue", ReadOptions{Limit: 2}); len(recs) != 2 || !bytes.Contains(recs[1], []byte("r4")) {
		t.Errorf("the newest 2: %s", recs)
	}
	if recs, _ := Read(dir, "ep", "blue", ReadOptions{RequestID: "r2"}); len(recs) != 1 {
		t.Errorf("by request id: %s", recs)
	}
	if recs, _ := Read(dir, "ep", "blue", ReadOptions{Since: t0.Add(61 * time.Second)}); len(recs) != 1 {
		t.Errorf("since 12:01:11: %d records, want 1", len(recs))
	}
	if recs, err := Read(dir, "ep", "green", ReadOptions{}); err != nil || len(recs) != 0 {
		t.Errorf("a deployment without records: %v, %v", recs, err)
	}
}

func TestSink(t *testing.T) {
	var mu sync.Mutex
	var got []string
	var auth string
	fails := 1
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		mu.Lock()
		defer mu.Unlock()
		if fails > 0 {
			fails--
			http.Error(w, "busy", 503)
			return
		}
		b, _ := io.ReadAll(r.Body)
		auth = r.Header.Get("Authorization")
		if r.Header.Get("Content-Type") != "application/x-ndjson" {
			t.Errorf("content type %q", r.Header.Get("Content-Type"))
		}
		got = append(got, strings.Split(strings.TrimSpace(string(b)), "\n")...)
	}))
	defer srv.Close()
	w, err := New(Config{Dir: filepath.Join(t.TempDir(), "c")})
	if err != nil {
		t.Fatal(err)
	}
	tg := Target{Endpoint: "ep", Deployment: "blue", SinkURL: srv.URL, SinkHeaders: map[string]string{"Authorization": "Bearer s3cret"}}
	now := time.Now()
	for i := range 10 {
		if err := w.Write(tg, now, line(now, fmt.Sprint(i))); err != nil {
			t.Fatal(err)
		}
	}
	if err := w.Close(context.Background()); err != nil {
		t.Fatal(err)
	}
	mu.Lock()
	defer mu.Unlock()
	if len(got) != 10 || auth != "Bearer s3cret" {
		t.Errorf("the sink got %d lines with %q, want 10 (after one retry) with the configured header", len(got), auth)
	}
}

func TestRedactURL(t *testing.T) {
	if got := redactURL("https://user:pw@collector/in?token=x"); got != "https://collector/in" {
		t.Errorf("got %s", got)
	}
}
