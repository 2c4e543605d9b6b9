// Package connlimit bounds what clients can hold on a listener, so that a
// connection storm — thousands of idle connections, slowloris clients
// trickling their headers, a TLS handshake storm — cannot starve the other
// clients of connections, memory or CPU:
//
//   - open connections, in total and per client address (an IPv6 client
//     counts by its /64). At the total bound the listener makes room by
//     closing the connection that has been silent (no byte yet) or idle
//     (keep-alive, between requests) for longest, as nginx reuses its
//     "reusable" connections; with none, it refuses the new one. Past the
//     per-address bound it refuses.
//   - the wait for a new connection's first bytes (FirstByteTimeout): a
//     connection is handed to the HTTP server only once they arrived — with
//     TLS, once the whole first record (the ClientHello) did — so a silent
//     connection costs no server state and cannot hold a handshake slot. On
//     Linux one epoll instance watches all the silent connections, which
//     then hold no goroutine (no stack to scan at each garbage collection);
//     elsewhere each waits on a small goroutine.
//   - TLS handshakes computed at once, in total and per client address. A
//     slot is held from the ClientHello to the server's first flight, the
//     CPU-heavy part; waiting for one costs no CPU.
//
// Slow header reads and idle keep-alive connections are bounded by the
// http.Server's own ReadHeaderTimeout and IdleTimeout; Configure adds the
// connection-state hook and HTTP/2's stream limits.
//
// It imports nothing of plumbline's.
package connlimit

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"net/netip"
	"os"
	"runtime"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

// Defaults for the zero values of Config.
const (
	DefaultFirstByteTimeout = 10 * time.Second
	// DefaultMaxStreams is HTTP/2's concurrent streams per connection.
	DefaultMaxStreams = 100
	// maxFirstRecord bounds a TLS ClientHello record read before the
	// handshake (16 KiB of payload plus the record header and slack).
	maxFirstRecord = 5 + 16384 + 256
)

// Config bounds a listener. Zero values take the defaults.
type Config struct {
	// TLS, if set, serves TLS: Accept returns *tls.Conn, so that an
	// http.Server negotiates HTTP/2 with it as it would over
	// tls.NewListener.
	TLS *tls.Config
	// MaxConns bounds open connections. Zero: DefaultMaxConns().
	MaxConns int
	// MaxConnsPerAddr bounds one client address's open connections. Zero:
	// a quarter of MaxConns (at least 16).
	MaxConnsPerAddr int
	// MaxHandshakes bounds TLS handshakes computed at once. Zero: 4 per CPU
	// (at least 8).
	MaxHandshakes int
	// MaxHandshakesPerAddr bounds one client address's share of them; its
	// other handshakes wait their turn. Zero: one per CPU (at least 2).
	MaxHandshakesPerAddr int
	// FirstByteTimeout closes a new connection that sends nothing (with
	// TLS: not its whole first record) for this long. Zero:
	// DefaultFirstByteTimeout.
	FirstByteTimeout time.Duration
	// MaxStreams bounds concurrent HTTP/2 streams per connection (Configure
	// sets it). Zero: DefaultMaxStreams.
	MaxStreams int
	// Registerer receives the listener's metrics (nil: none are exposed).
	Registerer prometheus.Registerer
	// Logger receives a warning when the listener starts refusing
	// connections or cannot accept (at most one a second). Nil: none.
	Logger *slog.Logger
}

// DefaultMaxConns is half the process's open-file limit (the other half is
// for connections to instances, files and the instances' own pipes), at
// least 64 and at most 65 536.
func DefaultMaxConns() int {
	var rl syscall.Rlimit
	if err := syscall.Getrlimit(syscall.RLIMIT_NOFILE, &rl); err != nil || rl.Cur == 0 {
		return 1024
	}
	if rl.Cur <= 384 {
		return 64
	}
	return int(min((rl.Cur-256)/2, 65536))
}

func (c *Config) defaults() {
	if c.MaxConns <= 0 {
		c.MaxConns = DefaultMaxConns()
	}
	if c.MaxConnsPerAddr <= 0 {
		c.MaxConnsPerAddr = max(16, c.MaxConns/4)
	}
	cpus := runtime.GOMAXPROCS(0)
	if c.MaxHandshakes <= 0 {
		c.MaxHandshakes = max(8, 4*cpus)
	}
	if c.MaxHandshakesPerAddr <= 0 {
		c.MaxHandshakesPerAddr = max(2, cpus)
	}
	c.MaxHandshakesPerAddr = min(c.MaxHandshakesPerAddr, c.MaxHandshakes)
	if c.FirstByteTimeout <= 0 {
		c.FirstByteTimeout = DefaultFirstByteTimeout
	}
	if c.MaxStreams <= 0 {
		c.MaxStreams = DefaultMaxStreams
	}
}

// Listener is a net.Listener that enforces a Config. Use it with one
// http.Server, after Configure.
type Listener struct {
	inner net.Listener
	cfg   Config
	m     *metrics

	// handshakes is the semaphore of TLS handshakes in progress.
	handshakes chan struct{}
	// w watches silent connections for their first byte (nil: each waits
	// on a goroutine of its own).
	w *waiter
	// ready carries connections whose first bytes arrived to Accept.
	ready chan *Conn
	done  chan struct{} // closed by Close, or when the inner listener fails
	// doneOnce closes done; closeOnce runs Close.
	doneOnce, closeOnce sync.Once

	mu sync.Mutex // protects the fields below and every Conn's list links and state
	// open counts connections accepted and not yet closed.
	open   int
	byAddr map[netip.Prefix]*addrState
	// spare lists, oldest first, the connections that can be closed to make
	// room: silent ones (no byte yet) and idle keep-alive ones, by when they
	// became so — as nginx reuses its "reusable" connections.
	spare list
	// acceptErr ends Accept once the inner listener failed for good.
	acceptErr error
	// lastWarn rate-limits warnings.
	lastWarn time.Time
}

// addrState is one client address's share.
type addrState struct {
	conns int
	// handshakes is the address's semaphore of handshake slots.
	handshakes chan struct{}
}

// New wraps inner and starts accepting from it.
func New(inner net.Listener, cfg Config) (*Listener, error) {
	cfg.defaults()
	m, err := newMetrics(cfg.Registerer)
	if err != nil {
		return nil, err
	}
	l := &Listener{
		inner:      inner,
		cfg:        cfg,
		m:          m,
		handshakes: make(chan struct{}, cfg.MaxHandshakes),
		ready:      make(chan *Conn, 128),
		done:       make(chan struct{}),
		byAddr:     make(map[netip.Prefix]*addrState),
	}
	l.w = newWaiter(l)
	go l.acceptLoop()
	return l, nil
}

// Config returns the limits in force, defaults filled in.
func (l *Listener) Config() Config { return l.cfg }

// Configure makes srv report connection states to l (chaining any hook
// srv had) and sets HTTP/2's stream limit. Call it before srv.Serve(l).
func (l *Listener) Configure(srv *http.Server) {
	prev := srv.ConnState
	srv.ConnState = func(c net.Conn, s http.ConnState) {
		l.connState(c, s)
		if prev != nil {
			prev(c, s)
		}
	}
	h2 := srv.HTTP2
	if h2 == nil {
		h2 = &http.HTTP2Config{}
	}
	h2.MaxConcurrentStreams = l.cfg.MaxStreams
	if h2.CountError == nil {
		h2.CountError = l.m.h2Error
	}
	srv.HTTP2 = h2
	if srv.TLSConfig == nil && l.cfg.TLS != nil {
		srv.TLSConfig = l.cfg.TLS
	}
}

// Accept returns the next connection that has sent its first bytes.
func (l *Listener) Accept() (net.Conn, error) {
	select {
	case c := <-l.ready:
		if l.cfg.TLS != nil {
			c.tls = true
			return tls.Server(c, l.cfg.TLS), nil
		}
		return c, nil
	case <-l.done:
		l.mu.Lock()
		err := l.acceptErr
		l.mu.Unlock()
		if err == nil {
			err = net.ErrClosed
		}
		return nil, err
	}
}

// Close stops accepting and closes the connections not yet handed out.
// Connections handed out belong to the server, which closes them.
func (l *Listener) Close() error {
	err := net.ErrClosed
	l.closeOnce.Do(func() {
		err = l.inner.Close()
		l.doneOnce.Do(func() { close(l.done) })
		l.mu.Lock()
		var silent []*Conn
		for c := l.spare.front; c != nil; c = c.next {
			if c.state == stateSilent {
				silent = append(silent, c)
			}
		}
		l.mu.Unlock()
		for _, c := range silent {
			_ = c.Close()
		}
		if l.w != nil {
			l.w.close()
		}
		for {
			select {
			case c := <-l.ready:
				_ = c.Close()
			default:
				return
			}
		}
	})
	return err
}

// Addr is the inner listener's address.
func (l *Listener) Addr() net.Addr { return l.inner.Addr() }

// acceptLoop accepts from the inner listener until it is closed.
func (l *Listener) acceptLoop() {
	var delay time.Duration
	for {
		raw, err := l.inner.Accept()
		if err != nil {
			select {
			case <-l.done:
				return
			default:
			}
			if isTemporary(err) {
				// Out of file descriptors, most likely: make room if a
				// connection can go, and back off as net/http does.
				l.warn("cannot accept a connection; retrying", "err", err)
				l.makeRoom()
				delay = min(max(5*time.Millisecond, 2*delay), time.Second)
				select {
				case <-time.After(delay):
				case <-l.done:
					return
				}
				continue
			}
			l.mu.Lock()
			l.acceptErr = err
			l.mu.Unlock()
			l.doneOnce.Do(func() { close(l.done) })
			return
		}
		delay = 0
		if c := l.admit(raw); c != nil && (l.w == nil || !l.w.watch(c)) {
			go c.awaitFirstBytes()
		}
	}
}

func isTemporary(err error) bool {
	var ne interface{ Temporary() bool }
	return errors.Is(err, syscall.EMFILE) || errors.Is(err, syscall.ENFILE) ||
		errors.Is(err, syscall.ENOBUFS) || errors.Is(err, syscall.ENOMEM) ||
		(errors.As(err, &ne) && ne.Temporary())
}

// addrKey is the share a remote address counts against: the address, or
// its /64 for IPv6.
func addrKey(a net.Addr) netip.Prefix {
	var ip netip.Addr
	switch a := a.(type) {
	case *net.TCPAddr:
		ip = a.AddrPort().Addr().Unmap()
	default:
		return netip.Prefix{} // unix sockets and the like: one shared share
	}
	if ip.Is6() {
		p, _ := ip.Prefix(64)
		return p
	}
	return netip.PrefixFrom(ip, ip.BitLen())
}

// admit counts a new connection in, making room or refusing it.
func (l *Listener) admit(raw net.Conn) *Conn {
	key := addrKey(raw.RemoteAddr())
	var evict *Conn
	l.mu.Lock()
	st := l.byAddr[key]
	if st != nil && st.conns >= l.cfg.MaxConnsPerAddr {
		l.mu.Unlock()
		_ = raw.Close()
		l.m.refused[reasonPerAddr].Inc()
		l.warn("refusing connections: a client address holds its maximum", "addr", key.String(), "max_conns_per_addr", l.cfg.MaxConnsPerAddr)
		return nil
	}
	reason := 0
	if l.open >= l.cfg.MaxConns {
		evict, reason = l.victimLocked()
		if evict == nil {
			l.mu.Unlock()
			_ = raw.Close()
			l.m.refused[reasonMaxConns].Inc()
			l.warn("refusing connections: the listener holds its maximum, none idle", "max_conns", l.cfg.MaxConns)
			return nil
		}
		l.unlinkLocked(evict) // so that no one else picks it
	}
	if st == nil {
		st = &addrState{handshakes: make(chan struct{}, l.cfg.MaxHandshakesPerAddr)}
		l.byAddr[key] = st
	}
	st.conns++
	l.open++
	c := &Conn{Conn: raw, l: l, key: key, addr: st, accepted: time.Now()}
	c.state = stateSilent
	l.spare.pushBack(c)
	l.mu.Unlock()
	l.m.open.Inc()
	if evict != nil {
		_ = evict.Close()
		l.m.closed[reason].Inc()
	}
	return c
}

// victimLocked picks the connection to close to make room, and why: the
// one silent or idle for longest.
func (l *Listener) victimLocked() (*Conn, int) {
	c := l.spare.front
	if c == nil {
		return nil, 0
	}
	if c.state == stateIdle {
		return c, reasonEvictedIdle
	}
	return c, reasonEvictedSilent
}

// makeRoom closes one idle or silent connection, if there is one.
func (l *Listener) makeRoom() {
	l.mu.Lock()
	c, reason := l.victimLocked()
	if c != nil {
		l.unlinkLocked(c)
	}
	l.mu.Unlock()
	if c != nil {
		_ = c.Close()
		l.m.closed[reason].Inc()
	}
}

// connState follows the http.Server's view of a connection.
func (l *Listener) connState(nc net.Conn, s http.ConnState) {
	c := connOf(nc)
	if c == nil {
		return
	}
	switch {
	case s == http.StateHijacked:
		c.unpaced.Store(true) // no longer HTTP/1's: never paced
	case s == http.StateActive && c.protoSeen.CompareAndSwap(false, true):
		// The first Active comes after the TLS handshake (HTTP/2 reports one
		// right after the client's preface).
		if tc, ok := nc.(*tls.Conn); ok && tc.ConnectionState().NegotiatedProtocol == "h2" {
			c.unpaced.Store(true) // frames, small by nature: never paced
		}
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	if c.state == stateClosed {
		return
	}
	switch s {
	case http.StateIdle:
		l.unlinkLocked(c)
		c.state = stateIdle
		l.spare.pushBack(c)
		c.heads.Add(1) // the next request's head starts
	case http.StateActive, http.StateNew, http.StateHijacked:
		l.unlinkLocked(c)
		c.state = stateBusy
		if s != http.StateNew {
			c.heads.Add(1) // the head is in (or the connection is not HTTP/1's any more)
		}
	case http.StateClosed:
		l.unlinkLocked(c)
	}
}

// connOf finds the Conn under what Accept returned.
func connOf(nc net.Conn) *Conn {
	switch c := nc.(type) {
	case *Conn:
		return c
	case *tls.Conn:
		cc, _ := c.NetConn().(*Conn)
		return cc
	}
	return nil
}

// unlinkLocked takes c off the spare list if it is on it.
func (l *Listener) unlinkLocked(c *Conn) {
	if c.state == stateSilent || c.state == stateIdle {
		l.spare.remove(c)
		c.state = stateBusy
	}
}

// warn logs at most once a second.
func (l *Listener) warn(msg string, args ...any) {
	if l.cfg.Logger == nil {
		return
	}
	l.mu.Lock()
	now := time.Now()
	if now.Sub(l.lastWarn) < time.Second {
		l.mu.Unlock()
		return
	}
	l.lastWarn = now
	l.mu.Unlock()
	l.cfg.Logger.Warn(msg, args...)
}

// Connection states, as far as the listener cares.
const (
	stateSilent uint8 = iota // accepted, no byte yet
	stateBusy                // with the server, between requests or not known
	stateIdle                // a keep-alive connection between requests
	stateClosed
)

// Conn is an accepted connection counted by its Listener.
type Conn struct {
	net.Conn
	l        *Listener
	key      netip.Prefix
	addr     *addrState
	accepted time.Time

	// Guarded by Listener.mu:
	state      uint8
	prev, next *Conn

	// While the waiter watches it (guarded by waiter.mu): its descriptor,
	// and the timer of its FirstByteTimeout.
	watched bool
	fd      int32
	timer   *time.Timer

	tls bool // served as TLS: its first reads take a handshake slot
	// pending are bytes read before the connection was handed out.
	pending []byte
	// heads counts the HTTP/1 phase changes the server reported (connState):
	// odd while a request is being served, even while a head is awaited or
	// arriving. unpaced is set for HTTP/2 and hijacked connections;
	// protoSeen once the protocol was looked at.
	heads     atomic.Uint32
	unpaced   atomic.Bool
	protoSeen atomic.Bool
	// The reading goroutine's view of the head arriving (see paceHead).
	headGen   uint32
	tinyReads int
	tinyStart time.Time
	slowHead  bool
	// reads counts the bytes its reader has taken (Reads).
	reads atomic.Uint64
	// slotDone is set once the handshake no longer needs a slot.
	slotDone     atomic.Bool
	slotMu       sync.Mutex // protects holdsSlot and readDeadline
	holdsSlot    bool
	readDeadline time.Time

	closeOnce sync.Once
}

// awaitFirstBytes waits for the connection's first byte (with TLS: its
// whole first record) and hands it to Accept, or closes it after
// FirstByteTimeout.
func (c *Conn) awaitFirstBytes() {
	l := c.l
	_ = c.Conn.SetReadDeadline(c.accepted.Add(l.cfg.FirstByteTimeout))
	err := c.readFirst(l.cfg.TLS != nil)
	if err != nil {
		_ = c.Close()
		var ne net.Error
		if errors.As(err, &ne) && ne.Timeout() {
			l.m.closed[reasonFirstByteTimeout].Inc()
		}
		return
	}
	_ = c.Conn.SetReadDeadline(time.Time{})
	l.mu.Lock()
	if c.state != stateSilent { // evicted meanwhile
		l.mu.Unlock()
		return
	}
	l.unlinkLocked(c)
	l.mu.Unlock()
	select {
	case l.ready <- c:
	case <-l.done:
		_ = c.Close()
	}
}

// firstByteTimeout closes a watched connection that sent nothing in time.
func (c *Conn) firstByteTimeout() {
	if c.l.w.take(c) {
		_ = c.Close()
		c.l.m.closed[reasonFirstByteTimeout].Inc()
	}
}

// readFirst reads the first bytes into pending: at least one, and with TLS
// the whole first record.
func (c *Conn) readFirst(isTLS bool) error {
	buf := make([]byte, 0, 512)
	need := 1
	if isTLS {
		need = 5 // the record header
	}
	for len(buf) < need {
		n, err := c.Conn.Read(buf[len(buf):cap(buf)])
		buf = buf[:len(buf)+n]
		if err != nil && len(buf) < need {
			return err
		}
		if isTLS && need == 5 && len(buf) >= 5 {
			if buf[0] != 0x16 { // not a handshake record: crypto/tls will say so
				break
			}
			need = 5 + (int(buf[3])<<8 | int(buf[4]))
			if need > maxFirstRecord {
				break // crypto/tls will reject it
			}
			if need > cap(buf) {
				nb := make([]byte, len(buf), need)
				copy(nb, buf)
				buf = nb
			}
		}
	}
	c.pending = buf
	return nil
}

// Read serves the bytes read before the handoff first. A TLS connection's
// first read after them waits for a handshake slot.
func (c *Conn) Read(p []byte) (int, error) {
	if c.tls && !c.slotDone.Load() {
		if err := c.acquireSlot(); err != nil {
			return 0, err
		}
	}
	if len(c.pending) > 0 {
		n := copy(p, c.pending)
		c.pending = c.pending[n:]
		if len(c.pending) == 0 {
			c.pending = nil
		}
		c.reads.Add(uint64(n))
		return n, nil
	}
	inHead := c.heads.Load()%2 == 0 && !c.unpaced.Load()
	if inHead && c.slowHead {
		c.pauseHead()
	}
	n, err := c.Conn.Read(p)
	c.reads.Add(uint64(n))
	if inHead && n > 0 {
		c.noteHead(n)
	}
	return n, err
}

// Pacing slow request heads. A slowloris client sends its request head a
// byte or a few at a time, and each piece wakes the server: 200 such
// clients at ten pieces a second cost the server more CPU than the
// requests of a client at 1000/s (docs/benchmarks.md, section 8). A head
// that has come in small reads (under tinyRead bytes) for over slowAfter is
// from then on read once every slowPause, so its pieces pile up in the
// kernel and are taken in one read. ReadHeaderTimeout still bounds the
// whole head. Clients send heads in one piece (TCP carries a head in one
// segment), so only a trickling client ever waits; HTTP/2 connections,
// whose frames are small by nature, are never paced.
const (
	tinyRead  = 64
	tinyReads = 10
	slowAfter = time.Second
	slowPause = time.Second
)

// noteHead follows the head arriving: n bytes just read.
func (c *Conn) noteHead(n int) {
	if gen := c.heads.Load(); gen != c.headGen { // a new head: start over
		c.headGen, c.tinyReads, c.slowHead = gen, 0, false
	}
	if c.slowHead {
		return
	}
	if n >= tinyRead {
		c.tinyReads = 0
		return
	}
	now := time.Now()
	if c.tinyReads == 0 {
		c.tinyStart = now
	}
	c.tinyReads++
	if c.tinyReads >= tinyReads && now.Sub(c.tinyStart) >= slowAfter {
		c.slowHead = true
		c.l.m.slowHeads.Inc()
	}
}

// pauseHead waits slowPause before the next read of a slow head (not past
// the read deadline), unless the head ended meanwhile.
func (c *Conn) pauseHead() {
	if c.heads.Load() != c.headGen {
		c.slowHead = false
		return
	}
	d := slowPause
	c.slotMu.Lock()
	deadline := c.readDeadline
	c.slotMu.Unlock()
	if !deadline.IsZero() {
		d = min(d, time.Until(deadline))
	}
	if d > 0 {
		select {
		case <-time.After(d):
		case <-c.l.done:
		}
	}
}

// Write ends the CPU-heavy part of a TLS handshake: its first write is the
// server's flight.
func (c *Conn) Write(p []byte) (int, error) {
	if c.tls && !c.slotDone.Load() {
		c.releaseSlot()
	}
	return c.Conn.Write(p)
}

// SetReadDeadline and SetDeadline also bound the wait for a handshake slot.
func (c *Conn) SetReadDeadline(t time.Time) error {
	c.slotMu.Lock()
	c.readDeadline = t
	c.slotMu.Unlock()
	return c.Conn.SetReadDeadline(t)
}

func (c *Conn) SetDeadline(t time.Time) error {
	c.slotMu.Lock()
	c.readDeadline = t
	c.slotMu.Unlock()
	return c.Conn.SetDeadline(t)
}

// errSlotTimeout is the read deadline passing while waiting for a slot.
var errSlotTimeout = fmt.Errorf("waiting for a TLS handshake slot: %w", os.ErrDeadlineExceeded)

// acquireSlot takes one of the address's slots, then one of the listener's.
func (c *Conn) acquireSlot() error {
	c.slotMu.Lock()
	if c.holdsSlot || c.slotDone.Load() {
		c.slotMu.Unlock()
		return nil
	}
	deadline := c.readDeadline
	c.slotMu.Unlock()
	l := c.l
	ctx, cancel := context.Background(), context.CancelFunc(func() {})
	if !deadline.IsZero() {
		ctx, cancel = context.WithDeadline(ctx, deadline)
	}
	defer cancel()
	if err := take(ctx, c.addr.handshakes, l.done); err != nil {
		return err
	}
	if err := take(ctx, l.handshakes, l.done); err != nil {
		<-c.addr.handshakes
		return err
	}
	c.slotMu.Lock()
	c.holdsSlot = true
	c.slotMu.Unlock()
	l.m.handshakes.Inc()
	return nil
}

// take acquires a slot of sem, waiting until ctx or done ends.
func take(ctx context.Context, sem chan struct{}, done <-chan struct{}) error {
	select {
	case sem <- struct{}{}:
		return nil
	default:
	}
	select {
	case sem <- struct{}{}:
		return nil
	case <-ctx.Done():
		return errSlotTimeout
	case <-done:
		return net.ErrClosed
	}
}

// releaseSlot gives the handshake slot back, once.
func (c *Conn) releaseSlot() {
	c.slotMu.Lock()
	held := c.holdsSlot
	c.holdsSlot = false
	c.slotDone.Store(true)
	c.slotMu.Unlock()
	if held {
		<-c.l.handshakes
		<-c.addr.handshakes
		c.l.m.handshakes.Dec()
	}
}

// Close closes the connection and counts it out.
func (c *Conn) Close() error {
	if c.l.w != nil {
		c.l.w.take(c) // before the descriptor goes
	}
	err := c.Conn.Close()
	c.closeOnce.Do(func() {
		c.releaseSlot()
		l := c.l
		l.mu.Lock()
		l.unlinkLocked(c)
		c.state = stateClosed
		l.open--
		if c.addr.conns--; c.addr.conns == 0 {
			delete(l.byAddr, c.key)
		}
		l.mu.Unlock()
		l.m.open.Dec()
	})
	return err
}

// list is an intrusive doubly-linked list of Conns.
type list struct{ front, back *Conn }

func (q *list) pushBack(c *Conn) {
	c.prev, c.next = q.back, nil
	if q.back != nil {
		q.back.next = c
	} else {
		q.front = c
	}
	q.back = c
}

func (q *list) remove(c *Conn) {
	if c.prev != nil {
		c.prev.next = c.next
	} else if q.front == c {
		q.front = c.next
	}
	if c.next != nil {
		c.next.prev = c.prev
	} else if q.back == c {
		q.back = c.prev
	}
	c.prev, c.next = nil, nil
}

// CloseWrite half-closes a TCP connection, which net/http uses to let a
// client read an error answer before the connection goes.
func (c *Conn) CloseWrite() error {
	if cw, ok := c.Conn.(interface{ CloseWrite() error }); ok {
		return cw.CloseWrite()
	}
	return nil
}
