// Command bench-flood holds a connection flood against a server, in a
// process of its own: the storm benchmark (bench/cmd/plumbline-bench,
// scenario 8) measures another client's latency during the flood, and that
// client must not share a process — its scheduler and garbage collector —
// with thousands of flood connections.
//
//	bench-flood --addr 127.0.0.1:8443 --silent 5000 --slowloris 200 \
//	    [--sources 24] [--path /endpoints/x/score] [--ca ca.pem]
//
// It opens the flood (bench/internal/load.Flood), prints "ready <duration>"
// on stdout, holds it until stdin closes or SIGTERM, then prints
// "closed <n>" (the flood connections the server closed) and exits.
package main

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"flag"
	"fmt"
	"io"
	"net"
	"os"
	"os/signal"
	"syscall"
	"time"

	"github.com/plumbline/plumbline/bench/internal/load"
)

func main() {
	addr := flag.String("addr", "", "server address, host:port")
	silent := flag.Int("silent", 5000, "connections that never send a byte")
	slowloris := flag.Int("slowloris", 200, "clients sending a request head one byte every 100 ms")
	sources := flag.Int("sources", 24, "loopback source addresses, from 127.0.0.20 on")
	path := flag.String("path", "/", "the path the slowloris clients' request heads name")
	ca := flag.String("ca", "", "CA certificate (PEM) to trust: the slowloris clients speak TLS (default: plain TCP)")
	flag.Parse()
	if *addr == "" {
		fmt.Fprintln(os.Stderr, "bench-flood: give --addr")
		os.Exit(2)
	}
	if err := run(*addr, *silent, *slowloris, *sources, *path, *ca); err != nil {
		fmt.Fprintln(os.Stderr, "bench-flood:", err)
		os.Exit(1)
	}
}

func run(addr string, silent, slowloris, sources int, path, ca string) error {
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, syscall.SIGINT)
	defer stop()
	f := load.Flood{Addr: addr, Silent: silent, Slowloris: slowloris, Path: path}
	for i := range max(1, sources) {
		f.Sources = append(f.Sources, net.IPv4(127, 0, 0, byte(20+i)))
	}
	if ca != "" {
		pem, err := os.ReadFile(ca)
		if err != nil {
			return err
		}
		pool := x509.NewCertPool()
		if !pool.AppendCertsFromPEM(pem) {
			return fmt.Errorf("%s: no certificate", ca)
		}
		f.TLS = &tls.Config{RootCAs: pool, ServerName: "localhost", MinVersion: tls.VersionTLS12}
	}
	start := time.Now()
	r, err := f.Start(ctx)
	if err != nil {
		return err
	}
	fmt.Printf("ready %s\n", time.Since(start))
	go func() { // the harness closes stdin to end the flood
		_, _ = io.Copy(io.Discard, os.Stdin)
		stop()
	}()
	<-ctx.Done()
	closed := r.ClosedByServer()
	r.Stop()
	fmt.Printf("closed %d\n", closed)
	return nil
}
