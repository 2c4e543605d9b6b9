// Command testserver is the HTTP scoring server the driver conformance suite
// runs under real drivers. drivertest.BuildTestServer builds it.
//
// It listens on -host (default 127.0.0.1; 0.0.0.0 inside a container) at
// -port, or at $PORT when -port is not given, and answers:
//
//	GET  /live   200 "alive"
//	GET  /ready  200 "ready"
//	POST /score  {"env": ["NAME", …], "log": "text"}: writes text as one
//	             line to stdout (when not empty) and answers a JSON object
//	             with each named environment variable's value ("" if unset)
//	GET  /child  the host:port of the child process started by -child, 404
//	             without one
//
// -print TEXT prints TEXT and exits 0 (a build step's output in tests).
// Flags shape its misbehaviour: -exit-after and -exit-code make it exit on
// its own; -ignore-term makes it ignore SIGTERM; -child starts a child
// process in the same process group that also ignores SIGTERM and serves
// HTTP on a port of its own, so a test can see whether a stop reached it.
package main

import (
	"bufio"
	"encoding/json"
	"flag"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"os/signal"
	"strings"
	"syscall"
	"time"
)

func main() {
	host := flag.String("host", "127.0.0.1", "address to listen on")
	port := flag.String("port", "", "port to listen on; default $PORT")
	exitAfter := flag.Duration("exit-after", 0, "exit on its own after this long (0: never)")
	exitCode := flag.Int("exit-code", 0, "exit code for -exit-after")
	ignoreTerm := flag.Bool("ignore-term", false, "ignore SIGTERM")
	child := flag.Bool("child", false, "start a child process that ignores SIGTERM")
	childMode := flag.Bool("child-mode", false, "internal: run as the child")
	print := flag.String("print", "", "print this text and exit 0 (no server)")
	flag.Parse()

	if *print != "" {
		fmt.Println(*print)
		return
	}

	if *ignoreTerm {
		signal.Ignore(syscall.SIGTERM)
	}
	if *childMode {
		runChild()
		return
	}
	if *port == "" {
		*port = os.Getenv("PORT")
	}
	l, err := net.Listen("tcp", net.JoinHostPort(*host, *port))
	if err != nil {
		fmt.Fprintln(os.Stderr, "testserver:", err)
		os.Exit(2)
	}
	childAddr := ""
	if *child {
		childAddr = startChild()
	}
	if *exitAfter > 0 {
		time.AfterFunc(*exitAfter, func() {
			fmt.Printf("testserver: exiting with code %d as asked\n", *exitCode)
			os.Exit(*exitCode)
		})
	}

	mux := http.NewServeMux()
	mux.HandleFunc("GET /live", func(w http.ResponseWriter, r *http.Request) { fmt.Fprint(w, "alive") })
	mux.HandleFunc("GET /ready", func(w http.ResponseWriter, r *http.Request) { fmt.Fprint(w, "ready") })
	mux.HandleFunc("POST /score", func(w http.ResponseWriter, r *http.Request) {
		var req struct {
			Env []string `json:"env"`
			Log string   `json:"log"`
		}
		if err := json.NewDecoder(r.Body).Decode(&req); err != nil {
			http.Error(w, err.Error(), http.StatusBadRequest)
			return
		}
		if req.Log != "" {
			fmt.Println(req.Log)
		}
		out := map[string]string{}
		for _, k := range req.Env {
			out[k] = os.Getenv(k)
		}
		w.Header().Set("Content-Type", "application/json")
		json.NewEncoder(w).Encode(out)
	})
	mux.HandleFunc("GET /child", func(w http.ResponseWriter, r *http.Request) {
		if childAddr == "" {
			http.NotFound(w, r)
			return
		}
		fmt.Fprint(w, childAddr)
	})
	fmt.Printf("testserver: pid %d listening on %s\n", os.Getpid(), l.Addr())
	fmt.Fprintln(os.Stderr, "testserver: stderr goes to the same log")
	http.Serve(l, mux)
}

// startChild starts this program again as a child in the same process
// group, and returns the address it serves on.
func startChild() string {
	exe, err := os.Executable()
	if err != nil {
		fmt.Fprintln(os.Stderr, "testserver:", err)
		os.Exit(2)
	}
	cmd := exec.Command(exe, "-child-mode", "-ignore-term")
	cmd.Stderr = os.Stderr
	out, err := cmd.StdoutPipe()
	if err != nil {
		fmt.Fprintln(os.Stderr, "testserver:", err)
		os.Exit(2)
	}
	if err := cmd.Start(); err != nil {
		fmt.Fprintln(os.Stderr, "testserver:", err)
		os.Exit(2)
	}
	line, err := bufio.NewReader(out).ReadString('\n')
	if err != nil {
		fmt.Fprintln(os.Stderr, "testserver: child:", err)
		os.Exit(2)
	}
	return strings.TrimSpace(line)
}

// runChild answers "child <pid>" on every path on a port of its own,
// printing its address once on stdout.
func runChild() {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		fmt.Fprintln(os.Stderr, "testserver child:", err)
		os.Exit(2)
	}
	fmt.Println(l.Addr())
	http.Serve(l, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { fmt.Fprintf(w, "child %d", os.Getpid()) }))
}
