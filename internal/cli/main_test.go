package cli

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"testing"
	"time"
)

// envScorer makes the test binary a scoring server: the CLI tests deploy
// the binary itself (a generic runtime command) so they need no Python or R.
const envScorer = "PLUMBLINE_CLITEST_SCORER"

func TestMain(m *testing.M) {
	if os.Getenv(envScorer) == "1" {
		os.Exit(scorer())
	}
	code := m.Run()
	stopTestServer()
	os.Exit(code)
}

// scorer serves /live, /ready and /score on 127.0.0.1:$PORT until killed:
// /score answers {"model": <weights.json's name>, "bias": …, "sum": the sum
// of the numbers in "data"}, reading the model from AZUREML_MODEL_DIR as a
// real scoring server would.
func scorer() int {
	b, err := os.ReadFile(filepath.Join(os.Getenv("AZUREML_MODEL_DIR"), "model", "weights.json"))
	if err != nil {
		fmt.Println("scorer: no model:", err)
		return 1
	}
	var model struct {
		Name string  `json:"name"`
		Bias float64 `json:"bias"`
	}
	if err := json.Unmarshal(b, &model); err != nil {
		fmt.Println("scorer: bad model:", err)
		return 1
	}
	ln, err := net.Listen("tcp", "127.0.0.1:"+os.Getenv("PORT"))
	if err != nil {
		fmt.Println("scorer:", err)
		return 1
	}
	fmt.Printf("scorer: model %s loaded, serving\n", model.Name)
	mux := http.NewServeMux()
	ok := func(w http.ResponseWriter, r *http.Request) { fmt.Fprintln(w, `{"status": "ok"}`) }
	mux.HandleFunc("GET /live", ok)
	mux.HandleFunc("GET /ready", ok)
	mux.HandleFunc("POST /score", func(w http.ResponseWriter, r *http.Request) {
		var in struct{ Data [][]float64 }
		if err := json.NewDecoder(r.Body).Decode(&in); err != nil {
			http.Error(w, `{"error": "want {\"data\": [[numbers]]}"}`, http.StatusBadRequest)
			return
		}
		sum := model.Bias
		for _, row := range in.Data {
			for _, x := range row {
				sum += x
			}
		}
		fmt.Printf("scorer: scored %d rows\n", len(in.Data))
		w.Header().Set("Content-Type", "application/json")
		json.NewEncoder(w).Encode(map[string]any{"model": model.Name, "sum": sum})
	})
	_ = http.Serve(ln, mux)
	return 0
}

// testServer is one `plumbline serve`, run through Main like a user runs it,
// on a temporary data dir, shared by the package's tests. It stops its
// instances when it stops (--on-exit stop): the default keeps them running
// for a restart to re-adopt, which would leave them behind after the tests.
var testServer struct {
	dataDir string
	cancel  context.CancelFunc
	done    chan struct{}
	log     *bytes.Buffer
	err     error
}

// testDataDir starts the shared server on first use and returns its data dir.
func testDataDir(t *testing.T) string {
	t.Helper()
	if testServer.done == nil {
		startTestServer()
	}
	if testServer.err != nil {
		t.Fatalf("plumbline serve: %v\n%s", testServer.err, testServer.log)
	}
	return testServer.dataDir
}

func startTestServer() {
	s := &testServer
	s.done = make(chan struct{})
	s.log = &bytes.Buffer{}
	dd, err := os.MkdirTemp("", "plumbline-cli-test-")
	if err != nil {
		s.err = err
		close(s.done)
		return
	}
	s.dataDir = dd
	ctx, cancel := context.WithCancel(context.Background())
	s.cancel = cancel
	go func() {
		defer close(s.done)
		if code := Main(ctx, []string{"serve", "--listen", "127.0.0.1:0", "--data-dir", dd, "--log-level", "warn", "--on-exit", "stop"}, nil, s.log, s.log); code != 0 {
			s.err = fmt.Errorf("serve exited %d", code)
		}
	}()
	deadline := time.Now().Add(30 * time.Second)
	for time.Now().Before(deadline) {
		if _, err := os.Stat(filepath.Join(dd, "server.json")); err == nil {
			return
		}
		select {
		case <-s.done:
			if s.err == nil {
				s.err = fmt.Errorf("serve exited before it was ready")
			}
			return
		case <-time.After(50 * time.Millisecond):
		}
	}
	s.err = fmt.Errorf("serve did not write server.json within 30s")
}

func stopTestServer() {
	s := &testServer
	if s.cancel == nil {
		return
	}
	s.cancel()
	select {
	case <-s.done:
	case <-time.After(60 * time.Second):
		fmt.Fprintln(os.Stderr, "plumbline serve did not stop within 60s")
	}
	os.RemoveAll(s.dataDir)
}
