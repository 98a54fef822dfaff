package iii_test

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"log"
	"log/slog"
	"net"
	"net/http"
	"net/http/httputil"
	"net/url"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/gorilla/websocket"

	"github.com/iii-go/iii"
	"github.com/iii-go/iii/test/iiitest"
)

// chokeFront stands in front of the double: it proxies everything to it
// but the channel path it serves itself, as an engine whose channel does
// not read: after the first frame it reads nothing until released, so the
// writer's frames back up in the kernel's buffers and then in its queue.
type chokeFront struct {
	url       string // the worker's engine URL
	streaming chan struct{}
	release   chan struct{}
	ended     chan error // the worker's end of the channel went away: why
}

func newChokeFront(t *testing.T, engineURL, channelPath string) *chokeFront {
	t.Helper()
	target, err := url.Parse(strings.Replace(engineURL, "ws://", "http://", 1))
	if err != nil {
		t.Fatal(err)
	}
	f := &chokeFront{streaming: make(chan struct{}), release: make(chan struct{}), ended: make(chan error, 1)}
	stop := make(chan struct{})
	var wg sync.WaitGroup
	proxy := httputil.NewSingleHostReverseProxy(target)
	proxy.ErrorLog = log.New(io.Discard, "", 0)
	up := websocket.Upgrader{}
	handler := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path != channelPath {
			proxy.ServeHTTP(w, r)
			return
		}
		ws, err := up.Upgrade(w, r, nil)
		if err != nil {
			return
		}
		wg.Add(1)
		defer wg.Done()
		defer ws.Close()
		// The first frame: the end is open and the stream started.
		if _, fr, err := ws.NextReader(); err == nil {
			_, _ = io.Copy(io.Discard, fr)
		}
		close(f.streaming)
		select {
		case <-f.release:
		case <-stop:
			return
		}
		for {
			_, fr, err := ws.NextReader()
			if err != nil {
				f.ended <- err
				return
			}
			if _, err := io.Copy(io.Discard, fr); err != nil {
				f.ended <- err
				return
			}
		}
	})
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	srv := &http.Server{Handler: handler, ErrorLog: log.New(io.Discard, "", 0)}
	go func() { _ = srv.Serve(ln) }()
	t.Cleanup(func() {
		close(stop)
		_ = srv.Close()
		wg.Wait()
	})
	f.url = "ws://" + ln.Addr().String()
	return f
}

// A streamed response whose channel opened and then failed (the
// invocation ended while the channel's writer was backed up) releases the
// channel at once; it used to hold it open until the worker shut down.
func TestHandleHTTPReleasesAResponseChannelThatFailed(t *testing.T) {
	eng := iiitest.NewEngine(t)
	front := newChokeFront(t, eng.URL, "/ws/channels/choked")
	logs := &logRecorder{}
	opts := fastOptions()
	opts.Logger = slog.New(logs)
	w := iii.RegisterWorker(front.url, opts)
	t.Cleanup(w.Shutdown)
	ctx := testCtx(t)
	if err := w.WaitConnected(ctx); err != nil {
		t.Fatal(err)
	}
	// Headers bigger than the kernel's socket buffers keep the writer on
	// its set_headers frame; the binary body (streamed, under the buffer
	// limit) then fills its queue.
	big := strings.Repeat("x", 16<<20)
	body := bytes.Repeat([]byte{0xff}, 900<<10)
	_, err := iii.HandleHTTP(w, "big::get", "GET", "/big", http.HandlerFunc(func(rw http.ResponseWriter, r *http.Request) {
		rw.Header().Set("Content-Type", "application/octet-stream")
		rw.Header().Set("X-Big", big)
		_, _ = rw.Write(body)
	}))
	if err != nil {
		t.Fatal(err)
	}
	if err := w.WaitForFunction(ctx, "big::get"); err != nil {
		t.Fatal(err)
	}
	data, _ := json.Marshal(iii.HTTPRequest{Method: "GET", Path: "/big",
		RequestBody: iii.StreamChannelRef{ChannelID: "body", AccessKey: "k", Direction: iii.ChannelRead},
		Response:    iii.StreamChannelRef{ChannelID: "choked", AccessKey: "k", Direction: iii.ChannelWrite}})
	ictx, cancel := context.WithCancel(ctx)
	done := make(chan struct{})
	go func() {
		defer close(done)
		_, _, _ = eng.Invoke(ictx, "big::get", data)
	}()
	defer func() { cancel(); <-done }()
	select {
	case <-front.streaming:
	case <-ctx.Done():
		t.Fatal("the response was not streamed")
	}
	// The invocation ends: the socket it came on dies.
	if !eng.DropWorker(w.WorkerID()) {
		t.Fatal("the worker is not connected")
	}
	waitFor(t, "the handler's failure", func() bool {
		return logs.find("handler returned an error", "big::get", "cannot stream the HTTP response") != ""
	})
	close(front.release)
	select {
	case <-front.ended:
	case <-time.After(10 * time.Second): // a failure bound: it ends at once
		t.Fatal("the failed response channel is still open")
	}
}
