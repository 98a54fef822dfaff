package iiitest

import (
	"errors"
	"io"
	"net"
	"net/url"
	"sync"
	"testing"
)

// Direction is one way through a Proxy.
type Direction int

// The directions of a Proxy.
const (
	// Upstream is from the client (the worker) to the target (the engine).
	Upstream Direction = iota
	// Downstream is from the target (the engine) to the client (the worker).
	Downstream
)

// String returns "upstream" or "downstream".
func (d Direction) String() string {
	if d == Upstream {
		return "upstream"
	}
	return "downstream"
}

// flow is what a Proxy does with the bytes of one direction.
type flow int

const (
	forward   flow = iota
	stall          // neither read nor forwarded: the sender's writes back up
	blackhole      // read and discarded: the sender's writes succeed
)

// Proxy is a fault-injecting TCP proxy on a loopback port, to put between
// a worker and an engine (the double or a real one) and break the network
// in the ways real networks break:
//
//   - Stall stops forwarding in both directions but keeps every socket
//     open: a half-open connection, as after a peer's host froze or a
//     middlebox lost its state. Neither side sees an error; the bytes one
//     side sends back up in the kernel buffers until its writes block.
//   - StallOpen does the same to the connections open now only: those
//     accepted later forward, as when one connection's path breaks and a
//     new one would work.
//   - Blackhole discards one direction silently: the sender's writes
//     succeed, nothing arrives.
//   - Cut resets the current connections (TCP RST to both sides); new
//     connections are accepted as before.
//   - Resume forwards both directions again, on the current connections
//     and new ones.
//
// The faults but StallOpen apply to connections already open and to those
// accepted later. A stalled connection that is resumed continues where it
// stopped, without losing a byte.
//
//	eng := iiitest.NewEngine(t)
//	p := iiitest.NewProxy(t, eng.URL)
//	w := iii.RegisterWorker(p.URL, iii.InitOptions{IdleTimeout: time.Second})
//	...
//	p.Stall() // the worker must notice within its idle timeout
//
// Its methods are safe for concurrent use.
type Proxy struct {
	// Addr is the proxy's "127.0.0.1:PORT".
	Addr string
	// URL is the target URL with its host replaced by Addr (a target
	// given as host:port yields "ws://" + Addr).
	URL string

	target string
	ln     net.Listener

	mu       sync.Mutex
	flows    [2]flow
	changed  chan struct{} // closed and replaced when flows change
	conns    map[*proxyConn]struct{}
	accepted int
	closed   bool
	wg       sync.WaitGroup
}

// proxyConn is one proxied connection: the client's socket and ours to
// the target.
type proxyConn struct {
	client, server net.Conn
	done           chan struct{} // closed by close
	once           sync.Once
	stalled        bool // by StallOpen, until Resume; guarded by the Proxy's mu
}

func (c *proxyConn) close(reset bool) {
	c.once.Do(func() {
		if reset {
			for _, nc := range []net.Conn{c.client, c.server} {
				if tc, ok := nc.(*net.TCPConn); ok {
					_ = tc.SetLinger(0) // close with RST
				}
			}
		}
		close(c.done)
		c.client.Close()
		c.server.Close()
	})
}

// NewProxy starts a proxy to target, "host:port" or a ws:// or http:// URL,
// on a loopback port. It is closed when the test ends.
func NewProxy(t testing.TB, target string) *Proxy {
	t.Helper()
	p, err := StartProxy(target)
	if err != nil {
		t.Fatalf("iiitest: proxy: %v", err)
	}
	t.Cleanup(p.Close)
	return p
}

// StartProxy starts a proxy to target ("host:port" or a URL) on a loopback
// port; Close stops it. NewProxy is the form for tests.
func StartProxy(target string) (*Proxy, error) {
	host, u := target, (*url.URL)(nil)
	if pu, err := url.Parse(target); err == nil && pu.Host != "" {
		host, u = pu.Host, pu
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, err
	}
	p := &Proxy{Addr: ln.Addr().String(), target: host, ln: ln,
		changed: make(chan struct{}), conns: make(map[*proxyConn]struct{})}
	if u != nil {
		v := *u
		v.Host = p.Addr
		p.URL = v.String()
	} else {
		p.URL = "ws://" + p.Addr
	}
	p.wg.Add(1)
	go p.acceptLoop()
	return p, nil
}

// Stall stops forwarding in both directions and keeps the sockets open.
func (p *Proxy) Stall() { p.set(stall, stall) }

// Blackhole discards the bytes of direction d; the other direction
// forwards.
func (p *Proxy) Blackhole(d Direction) {
	f := [2]flow{forward, forward}
	f[d] = blackhole
	p.set(f[0], f[1])
}

// StallOpen stalls the connections open now, in both directions, as Stall
// does, and leaves the ones accepted later alone. Resume ends it.
func (p *Proxy) StallOpen() {
	p.mu.Lock()
	defer p.mu.Unlock()
	for c := range p.conns {
		c.stalled = true
	}
	p.changedLocked()
}

// Resume forwards both directions again, on every connection (those
// StallOpen stalled too).
func (p *Proxy) Resume() { p.set(forward, forward) }

func (p *Proxy) set(up, down flow) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.flows = [2]flow{up, down}
	if up == forward && down == forward {
		for c := range p.conns {
			c.stalled = false
		}
	}
	p.changedLocked()
}

// changedLocked wakes the pumps waiting for a change of flow.
func (p *Proxy) changedLocked() {
	close(p.changed)
	p.changed = make(chan struct{})
}

// Cut resets every current connection: both sides get a TCP RST.
// Connections accepted afterwards work as before.
func (p *Proxy) Cut() {
	p.mu.Lock()
	conns := make([]*proxyConn, 0, len(p.conns))
	for c := range p.conns {
		conns = append(conns, c)
	}
	p.mu.Unlock()
	for _, c := range conns {
		c.close(true)
	}
}

// Accepted returns the number of connections accepted so far.
func (p *Proxy) Accepted() int {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.accepted
}

// Open returns the number of proxied connections currently open.
func (p *Proxy) Open() int {
	p.mu.Lock()
	defer p.mu.Unlock()
	return len(p.conns)
}

// Close stops accepting, closes every connection and waits for the
// proxy's goroutines to exit.
func (p *Proxy) Close() {
	p.mu.Lock()
	p.closed = true
	p.mu.Unlock()
	p.ln.Close()
	p.Cut()
	p.wg.Wait()
}

func (p *Proxy) acceptLoop() {
	defer p.wg.Done()
	for {
		client, err := p.ln.Accept()
		if err != nil {
			if errors.Is(err, net.ErrClosed) {
				return
			}
			continue
		}
		server, err := net.Dial("tcp", p.target)
		if err != nil {
			if tc, ok := client.(*net.TCPConn); ok {
				_ = tc.SetLinger(0)
			}
			client.Close() // as if the target refused the connection
			continue
		}
		c := &proxyConn{client: client, server: server, done: make(chan struct{})}
		p.mu.Lock()
		if p.closed {
			p.mu.Unlock()
			c.close(false)
			return
		}
		p.conns[c] = struct{}{}
		p.accepted++
		p.wg.Add(2)
		p.mu.Unlock()
		var halves sync.WaitGroup
		halves.Add(2)
		pump := func(d Direction, src, dst net.Conn) {
			defer p.wg.Done()
			defer halves.Done()
			p.pump(c, d, src, dst)
		}
		go pump(Upstream, client, server)
		go pump(Downstream, server, client)
		p.wg.Add(1)
		go func() {
			defer p.wg.Done()
			halves.Wait()
			c.close(false)
			p.mu.Lock()
			delete(p.conns, c)
			p.mu.Unlock()
		}()
	}
}

// flow waits until direction d is not stalled (or c is closed) and
// returns what to do with its bytes; ok is false once c is closed.
func (p *Proxy) flow(c *proxyConn, d Direction) (f flow, ok bool) {
	for {
		p.mu.Lock()
		f, ch := p.flows[d], p.changed
		if c.stalled {
			f = stall
		}
		p.mu.Unlock()
		if f != stall {
			return f, true
		}
		select {
		case <-ch:
		case <-c.done:
			return stall, false
		}
	}
}

// pump copies src to dst under the faults of direction d. At src's end of
// stream it half-closes dst, so that an orderly close passes through.
func (p *Proxy) pump(c *proxyConn, d Direction, src, dst net.Conn) {
	buf := make([]byte, 32<<10)
	for {
		if _, ok := p.flow(c, d); !ok {
			return
		}
		n, rerr := src.Read(buf)
		if n > 0 {
			f, ok := p.flow(c, d) // a stall that began during the read holds the bytes
			if !ok {
				return
			}
			if f == forward {
				if _, err := dst.Write(buf[:n]); err != nil {
					c.close(false)
					return
				}
			}
		}
		if rerr != nil {
			if tc, ok := dst.(*net.TCPConn); ok && !isReset(rerr) {
				_ = tc.CloseWrite()
				return
			}
			c.close(isReset(rerr))
			return
		}
	}
}

// isReset reports whether err is anything but an orderly end of stream.
func isReset(err error) bool { return err != nil && !errors.Is(err, io.EOF) }
