package iii_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"testing"

	"github.com/iii-go/iii"
	"github.com/iii-go/iii/test/iiitest"
)

// A handler blocked reading a request body whose channel the engine keeps
// open is released when the invocation ends (here: the socket it came on
// dies): Read returns the context's error, and the worker serves on.
func TestHandleHTTPBodyReadEndsWithTheInvocation(t *testing.T) {
	eng := iiitest.NewEngine(t)
	w := newWorker(t, eng, fastOptions())
	reading, readErr := make(chan struct{}, 1), make(chan error, 1)
	_, err := iii.HandleHTTP(w, "up::load", "POST", "/upload", http.HandlerFunc(func(rw http.ResponseWriter, r *http.Request) {
		buf := make([]byte, 1024)
		n := 0
		for {
			k, err := r.Body.Read(buf)
			n += k
			if k > 0 {
				select {
				case reading <- struct{}{}:
				default:
				}
			}
			if err == io.EOF {
				fmt.Fprintf(rw, "%d bytes", n)
				return
			}
			if err != nil {
				readErr <- err
				http.Error(rw, err.Error(), http.StatusBadRequest)
				return
			}
		}
	}))
	if err != nil {
		t.Fatal(err)
	}
	ctx := testCtx(t)
	if err := w.WaitForFunction(ctx, "up::load"); err != nil {
		t.Fatal(err)
	}
	// The request body's channel: some bytes, and it stays open (its
	// writer is this test's, outside the worker).
	reqCh, err := w.CreateChannel(ctx, 0)
	if err != nil {
		t.Fatal(err)
	}
	resCh, err := w.CreateChannel(ctx, 0)
	if err != nil {
		t.Fatal(err)
	}
	bw := iii.NewChannelWriter(eng.URL, reqCh.WriterRef)
	defer bw.Close()
	if _, err := bw.WriteContext(ctx, []byte("the first part")); err != nil {
		t.Fatal(err)
	}
	data, _ := json.Marshal(iii.HTTPRequest{Method: "POST", Path: "/upload",
		Headers:     map[string]string{"transfer-encoding": "chunked"},
		RequestBody: reqCh.ReaderRef, Response: resCh.WriterRef})
	ictx, cancel := context.WithCancel(ctx)
	done := make(chan struct{})
	go func() {
		defer close(done)
		_, _, _ = eng.Invoke(ictx, "up::load", data)
	}()
	defer func() { cancel(); <-done }()
	select {
	case <-reading:
	case <-ctx.Done():
		t.Fatal("the handler read nothing")
	}
	first := w.WorkerID()
	if !eng.DropWorker(first) {
		t.Fatal("the worker is not connected")
	}
	select {
	case err := <-readErr:
		var ce *iii.ChannelError
		if !errors.Is(err, context.Canceled) || !errors.As(err, &ce) || ce.Op != "read" {
			t.Errorf("Read = %v; want a read *ChannelError matching context.Canceled", err)
		}
	case <-ctx.Done():
		t.Fatal("the body's Read did not return when the invocation ended")
	}

	// The worker reconnects and serves the next request.
	waitFor(t, "the worker to reconnect", func() bool { return w.State() == iii.Connected && w.WorkerID() != first })
	got := invokeHTTP(t, eng, w, "up::load", iii.HTTPRequest{Method: "POST", Path: "/upload",
		Headers: map[string]string{"content-length": "5"}}, []byte("hello"))
	if got.status != 200 || string(got.body) != "5 bytes" {
		t.Errorf("the next request: %d %q", got.status, got.body)
	}
}
