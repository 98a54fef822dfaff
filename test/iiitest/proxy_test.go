package iiitest_test

import (
	"errors"
	"io"
	"net"
	"os"
	"testing"
	"time"

	"github.com/iii-go/iii/test/iiitest"
)

// pair is one connection through a proxy: the client's end and the
// target's accepted end.
type pair struct{ client, server net.Conn }

// proxied starts a TCP target and a proxy in front of it, and returns a
// function that opens a connection through the proxy.
func proxied(t *testing.T) (*iiitest.Proxy, func() pair) {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ln.Close() })
	accepted := make(chan net.Conn, 4)
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			accepted <- c
		}
	}()
	p := iiitest.NewProxy(t, ln.Addr().String())
	return p, func() pair {
		t.Helper()
		c, err := net.Dial("tcp", p.Addr)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { c.Close() })
		select {
		case s := <-accepted:
			t.Cleanup(func() { s.Close() })
			return pair{c, s}
		case <-time.After(10 * time.Second):
			t.Fatal("the proxy did not connect to the target")
			return pair{}
		}
	}
}

// send writes s on w and reads it back from r.
func roundTrip(t *testing.T, w, r net.Conn, s string) {
	t.Helper()
	if _, err := w.Write([]byte(s)); err != nil {
		t.Fatalf("write: %v", err)
	}
	b := make([]byte, len(s))
	_ = r.SetReadDeadline(time.Now().Add(10 * time.Second))
	if _, err := io.ReadFull(r, b); err != nil || string(b) != s {
		t.Fatalf("read %q, %v; want %q", b, err, s)
	}
	_ = r.SetReadDeadline(time.Time{})
}

// nothingArrives checks that r receives nothing for a short while.
func nothingArrives(t *testing.T, r net.Conn) {
	t.Helper()
	_ = r.SetReadDeadline(time.Now().Add(100 * time.Millisecond))
	n, err := r.Read(make([]byte, 1))
	if n != 0 || !errors.Is(err, os.ErrDeadlineExceeded) {
		t.Fatalf("read %d bytes, %v; want nothing", n, err)
	}
	_ = r.SetReadDeadline(time.Time{})
}

func TestProxyForwardsBothWaysAndPassesAnOrderlyClose(t *testing.T) {
	p, dial := proxied(t)
	c := dial()
	roundTrip(t, c.client, c.server, "hello")
	roundTrip(t, c.server, c.client, "world")
	if p.Accepted() != 1 || p.Open() != 1 {
		t.Fatalf("Accepted() = %d, Open() = %d", p.Accepted(), p.Open())
	}
	c.client.(*net.TCPConn).CloseWrite()
	if n, err := c.server.Read(make([]byte, 1)); n != 0 || err != io.EOF {
		t.Fatalf("the target read %d, %v after the client's close; want EOF", n, err)
	}
	roundTrip(t, c.server, c.client, "still open the other way")
}

func TestProxyStallHoldsBothWaysAndResumeDeliversEverything(t *testing.T) {
	p, dial := proxied(t)
	c := dial()
	roundTrip(t, c.client, c.server, "before")
	p.Stall()
	if _, err := c.client.Write([]byte("up")); err != nil {
		t.Fatal(err)
	}
	if _, err := c.server.Write([]byte("down")); err != nil {
		t.Fatal(err)
	}
	nothingArrives(t, c.server)
	nothingArrives(t, c.client)

	// A stalled peer stops reading: a sender's writes eventually block.
	_ = c.client.SetWriteDeadline(time.Now().Add(500 * time.Millisecond))
	big := make([]byte, 1<<20)
	var err error
	for i := 0; i < 1024 && err == nil; i++ {
		_, err = c.client.Write(big)
	}
	if !errors.Is(err, os.ErrDeadlineExceeded) {
		t.Fatalf("writes through a stalled proxy: %v; want them to block until the deadline", err)
	}

	p.Resume()
	b := make([]byte, 2)
	if _, err := io.ReadFull(c.server, b); err != nil || string(b) != "up" {
		t.Fatalf("after Resume the target read %q, %v", b, err)
	}
	b = make([]byte, 4)
	if _, err := io.ReadFull(c.client, b); err != nil || string(b) != "down" {
		t.Fatalf("after Resume the client read %q, %v", b, err)
	}
}

func TestProxyStallOpenHoldsOnlyTheConnectionsOpenNow(t *testing.T) {
	p, dial := proxied(t)
	old := dial()
	roundTrip(t, old.client, old.server, "before")
	p.StallOpen()
	if _, err := old.client.Write([]byte("up")); err != nil {
		t.Fatal(err)
	}
	nothingArrives(t, old.server)

	// A connection accepted after StallOpen forwards both ways.
	fresh := dial()
	roundTrip(t, fresh.client, fresh.server, "new up")
	roundTrip(t, fresh.server, fresh.client, "new down")
	nothingArrives(t, old.server)

	p.Resume()
	b := make([]byte, 2)
	if _, err := io.ReadFull(old.server, b); err != nil || string(b) != "up" {
		t.Fatalf("after Resume the target read %q, %v", b, err)
	}
	roundTrip(t, old.server, old.client, "down again")
}

func TestProxyBlackholeDiscardsOneDirection(t *testing.T) {
	for _, d := range []iiitest.Direction{iiitest.Upstream, iiitest.Downstream} {
		t.Run(d.String(), func(t *testing.T) {
			p, dial := proxied(t)
			c := dial()
			from, to := c.client, c.server
			if d == iiitest.Downstream {
				from, to = to, from
			}
			p.Blackhole(d)
			if _, err := from.Write([]byte("lost")); err != nil {
				t.Fatalf("a write into the black hole failed: %v", err)
			}
			nothingArrives(t, to)
			roundTrip(t, to, from, "the other way works") // the other direction forwards
			p.Resume()
			roundTrip(t, from, to, "after") // "lost" is gone for good
		})
	}
}

func TestProxyCutResetsConnectionsAndAcceptsNewOnes(t *testing.T) {
	p, dial := proxied(t)
	c := dial()
	roundTrip(t, c.client, c.server, "x")
	p.Cut()
	for name, conn := range map[string]net.Conn{"client": c.client, "target": c.server} {
		_ = conn.SetReadDeadline(time.Now().Add(10 * time.Second))
		if _, err := conn.Read(make([]byte, 1)); err == nil || errors.Is(err, os.ErrDeadlineExceeded) {
			t.Fatalf("the %s read %v after Cut; want the connection gone", name, err)
		}
	}
	c2 := dial()
	roundTrip(t, c2.client, c2.server, "new connection")
	if p.Accepted() != 2 {
		t.Fatalf("Accepted() = %d, want 2", p.Accepted())
	}
}

func TestProxyKeepsTheTargetURLPath(t *testing.T) {
	p := iiitest.NewProxy(t, "ws://127.0.0.1:1/ws/channels/x?key=1")
	if want := "ws://" + p.Addr + "/ws/channels/x?key=1"; p.URL != want {
		t.Fatalf("URL = %q, want %q", p.URL, want)
	}
}
