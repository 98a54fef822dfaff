package iii_test

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"strings"
	"sync"
	"testing"

	"github.com/iii-go/iii"
	"github.com/iii-go/iii/test/iiitest"
)

// httpResult is a response as the engine's HTTP port would send it.
type httpResult struct {
	status   int
	header   http.Header
	body     []byte
	streamed bool // it came through the response channel
}

// invokeHTTP drives a function the way the engine's http trigger does
// (engine v0.22.1): it creates the request body and response channels,
// writes body (nil: none) into the first, invokes fn with the envelope,
// and reads the response from the result or, when there is none, from the
// response channel (set_status / set_headers messages, then the body).
func invokeHTTP(t *testing.T, eng *iiitest.Engine, w *iii.III, fn string, req iii.HTTPRequest, body []byte) httpResult {
	t.Helper()
	ctx, cancel := context.WithCancel(testCtx(t))
	defer cancel()
	// The engine may see the invocation before the registration otherwise.
	if err := w.WaitForFunction(ctx, fn); err != nil {
		t.Fatal(err)
	}
	reqCh, err := w.CreateChannel(ctx, 0)
	if err != nil {
		t.Fatal(err)
	}
	resCh, err := w.CreateChannel(ctx, 0)
	if err != nil {
		t.Fatal(err)
	}
	req.RequestBody, req.Response = reqCh.ReaderRef, resCh.WriterRef
	var wg sync.WaitGroup
	defer wg.Wait()
	if body != nil {
		wg.Go(func() {
			_, _ = reqCh.Writer.WriteContext(ctx, body)
			_ = reqCh.Writer.CloseContext(ctx)
		})
	}
	var mu sync.Mutex
	streamed := httpResult{status: 200, header: http.Header{}, streamed: true}
	resCh.Reader.OnMessage(func(m json.RawMessage) {
		var ctrl struct {
			Type       string            `json:"type"`
			StatusCode int               `json:"status_code"`
			Headers    map[string]string `json:"headers"`
		}
		if json.Unmarshal(m, &ctrl) != nil {
			return
		}
		mu.Lock()
		defer mu.Unlock()
		switch ctrl.Type {
		case "set_status":
			streamed.status = ctrl.StatusCode
		case "set_headers":
			for k, v := range ctrl.Headers {
				streamed.header.Set(k, v)
			}
		}
	})
	read := make(chan error, 1)
	wg.Go(func() {
		b, err := io.ReadAll(resCh.Reader)
		mu.Lock()
		streamed.body = b
		mu.Unlock()
		read <- err
	})
	data, err := json.Marshal(req)
	if err != nil {
		t.Fatal(err)
	}
	res, errb, err := eng.Invoke(ctx, fn, data)
	if err != nil || errb != nil {
		t.Fatalf("Invoke(%s) = %s, %+v, %v", fn, res, errb, err)
	}
	if string(res) != "null" && len(res) > 0 {
		_ = resCh.Reader.Close()
		<-read
		var env struct {
			StatusCode int             `json:"status_code"`
			Headers    json.RawMessage `json:"headers"` // lines or an object, as the engine takes
			Body       *string         `json:"body"`
		}
		if err := json.Unmarshal(res, &env); err != nil || env.Body == nil {
			t.Fatalf("result %s is not a response envelope with a string body: %v", res, err)
		}
		out := httpResult{status: env.StatusCode, header: http.Header{}, body: []byte(*env.Body)}
		var lines []string
		if json.Unmarshal(env.Headers, &lines) != nil {
			var m map[string]string
			if err := json.Unmarshal(env.Headers, &m); err != nil {
				t.Fatalf("headers %s: %v", env.Headers, err)
			}
			for k, v := range m {
				lines = append(lines, k+": "+v)
			}
		}
		for _, l := range lines {
			k, v, ok := strings.Cut(l, ":")
			if !ok {
				t.Fatalf("header line %q has no colon", l)
			}
			out.header.Add(k, strings.TrimSpace(v))
		}
		return out
	}
	if err := <-read; err != nil {
		t.Fatalf("reading the response channel: %v", err)
	}
	mu.Lock()
	defer mu.Unlock()
	return streamed
}

// logRequests is a middleware: it sets a header on every response.
func stampMiddleware(next http.Handler) http.Handler {
	return http.HandlerFunc(func(rw http.ResponseWriter, r *http.Request) {
		rw.Header().Set("X-Served-By", "iii-go")
		next.ServeHTTP(rw, r)
	})
}

// ordersMux is a REST API of three routes on http.ServeMux.
func ordersMux() http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("GET /orders/{id}", func(rw http.ResponseWriter, r *http.Request) {
		rw.Header().Set("Content-Type", "application/json")
		fmt.Fprintf(rw, `{"id":%q,"fields":%q}`, r.PathValue("id"), r.URL.Query().Get("fields"))
	})
	mux.HandleFunc("POST /orders", func(rw http.ResponseWriter, r *http.Request) {
		var in struct {
			Item string `json:"item"`
		}
		if err := json.NewDecoder(r.Body).Decode(&in); err != nil {
			http.Error(rw, "bad order: "+err.Error(), http.StatusBadRequest)
			return
		}
		rw.Header().Set("Location", "/orders/1")
		rw.WriteHeader(http.StatusCreated)
		fmt.Fprintf(rw, "created %s for %s", in.Item, r.Header.Get("X-Customer"))
	})
	mux.HandleFunc("DELETE /orders/{id}", func(rw http.ResponseWriter, r *http.Request) {
		rw.WriteHeader(http.StatusNoContent)
	})
	return stampMiddleware(mux)
}

func TestHandleHTTPServesAServeMuxWithMiddleware(t *testing.T) {
	eng := iiitest.NewEngine(t)
	w := newWorker(t, eng, iii.InitOptions{})
	h := ordersMux()
	for _, r := range []struct{ fn, method, path string }{
		{"orders::get", "GET", "/orders/:id"},
		{"orders::create", "POST", "/orders"},
		{"orders::delete", "DELETE", "/orders/:id"},
	} {
		if _, err := iii.HandleHTTP(w, r.fn, r.method, r.path, h); err != nil {
			t.Fatal(err)
		}
	}

	got := invokeHTTP(t, eng, w, "orders::get", iii.HTTPRequest{Method: "GET", Path: "/orders/:id",
		PathParams: map[string]string{"id": "42"}, QueryParams: map[string]string{"fields": "total"},
		Headers: map[string]string{"host": "api.example", "accept": "*/*"}}, nil)
	if got.status != 200 || string(got.body) != `{"id":"42","fields":"total"}` || got.header.Get("Content-Type") != "application/json" ||
		got.header.Get("X-Served-By") != "iii-go" || got.streamed {
		t.Errorf("GET /orders/42 = %+v (body %q)", got, got.body)
	}

	got = invokeHTTP(t, eng, w, "orders::create", iii.HTTPRequest{Method: "POST", Path: "/orders",
		Headers: map[string]string{"content-type": "application/json", "content-length": "15", "x-customer": "ada"},
		Body:    json.RawMessage(`{"item":"tea"}`)}, []byte(`{"item": "tea"}`))
	if got.status != 201 || string(got.body) != "created tea for ada" || got.header.Get("Location") != "/orders/1" ||
		got.header.Get("Content-Type") != "text/plain; charset=utf-8" || got.header.Get("X-Served-By") != "iii-go" {
		t.Errorf("POST /orders = %+v (body %q)", got, got.body)
	}

	// No body and no Content-Type: streamed, so that none is invented.
	got = invokeHTTP(t, eng, w, "orders::delete", iii.HTTPRequest{Method: "DELETE", Path: "/orders/:id",
		PathParams: map[string]string{"id": "42"}}, nil)
	if got.status != 204 || len(got.body) != 0 || got.header.Get("Content-Type") != "" || got.header.Get("X-Served-By") != "iii-go" {
		t.Errorf("DELETE /orders/42 = %+v (body %q)", got, got.body)
	}
}

func TestHandleHTTPBuildsTheRequest(t *testing.T) {
	eng := iiitest.NewEngine(t)
	w := newWorker(t, eng, iii.InitOptions{})
	type seen struct {
		method, path, rawPath, query, host, pattern, id, file, header, uri string
		inv                                                                bool
	}
	got := make(chan seen, 1)
	_, err := iii.HandleHTTP(w, "files::get", "get", "users/:id/files/:file", http.HandlerFunc(func(rw http.ResponseWriter, r *http.Request) {
		inv, ok := iii.InvocationFromContext(r.Context())
		got <- seen{r.Method, r.URL.Path, r.URL.RawPath, r.URL.RawQuery, r.Host, r.Pattern, r.PathValue("id"), r.PathValue("file"),
			r.Header.Get("X-Trace-Id"), r.RequestURI, ok && inv.FunctionID() == "files::get"}
		_, _ = io.WriteString(rw, "ok")
	}))
	if err != nil {
		t.Fatal(err)
	}
	res := invokeHTTP(t, eng, w, "files::get", iii.HTTPRequest{Method: "GET", Path: "users/:id/files/:file",
		PathParams:  map[string]string{"id": "7", "file": "a%20b%2Fc.txt"},
		QueryParams: map[string]string{"v": "1 2", "a": "x"},
		Headers:     map[string]string{"host": "h.example:3111", "x-trace-id": "t1"}}, nil)
	if res.status != 200 || string(res.body) != "ok" || res.header.Get("Content-Type") != "text/plain; charset=utf-8" {
		t.Errorf("response = %+v", res)
	}
	want := seen{"GET", "/users/7/files/a b/c.txt", "/users/7/files/a%20b%2Fc.txt", "a=x&v=1+2", "h.example:3111",
		"GET /users/{id}/files/{file}", "7", "a b/c.txt", "t1", "/users/7/files/a%20b%2Fc.txt?a=x&v=1+2", true}
	if s := <-got; s != want {
		t.Errorf("request = %+v\nwant      %+v", s, want)
	}
}

func TestHandleHTTPStreamsFlushedResponses(t *testing.T) {
	eng := iiitest.NewEngine(t)
	w := newWorker(t, eng, iii.InitOptions{})
	_, err := iii.HandleHTTP(w, "events::tail", "GET", "/events", http.HandlerFunc(func(rw http.ResponseWriter, r *http.Request) {
		rw.Header().Set("Content-Type", "text/event-stream")
		rw.Header().Add("Cache-Control", "no-cache")
		rw.Header().Add("Cache-Control", "no-store")
		rw.WriteHeader(http.StatusAccepted)
		rc := http.NewResponseController(rw)
		for i := range 3 {
			fmt.Fprintf(rw, "data: %d\n\n", i)
			if err := rc.Flush(); err != nil {
				t.Errorf("Flush: %v", err)
			}
		}
	}))
	if err != nil {
		t.Fatal(err)
	}
	got := invokeHTTP(t, eng, w, "events::tail", iii.HTTPRequest{Method: "GET", Path: "/events"}, nil)
	if !got.streamed || got.status != 202 || got.header.Get("Content-Type") != "text/event-stream" ||
		got.header.Get("Cache-Control") != "no-cache, no-store" || string(got.body) != "data: 0\n\ndata: 1\n\ndata: 2\n\n" {
		t.Errorf("response = %+v (body %q)", got, got.body)
	}
}

func TestHandleHTTPStreamsResponsesTooLargeOrBinary(t *testing.T) {
	eng := iiitest.NewEngine(t)
	w := newWorker(t, eng, iii.InitOptions{})
	big := bytes.Repeat([]byte("0123456789abcdef"), 1<<17) // 2 MiB
	binary := []byte{0xff, 0xfe, 0x00, 0x80}
	for path, body := range map[string][]byte{"/big": big, "/bin": binary} {
		_, err := iii.HandleHTTP(w, "blob"+path, "GET", path, http.HandlerFunc(func(rw http.ResponseWriter, r *http.Request) {
			rw.Header().Set("Content-Type", "application/octet-stream")
			for chunk := range slicesChunk(body, 100_000) {
				_, _ = rw.Write(chunk)
			}
		}))
		if err != nil {
			t.Fatal(err)
		}
	}
	for path, body := range map[string][]byte{"/big": big, "/bin": binary} {
		got := invokeHTTP(t, eng, w, "blob"+path, iii.HTTPRequest{Method: "GET", Path: path}, nil)
		if !got.streamed || got.status != 200 || got.header.Get("Content-Type") != "application/octet-stream" || !bytes.Equal(got.body, body) {
			t.Errorf("GET %s: streamed %v, status %d, header %v, %d bytes; want streamed 200, %d bytes", path, got.streamed, got.status, got.header, len(got.body), len(body))
		}
	}
}

// slicesChunk yields b in pieces of at most n bytes.
func slicesChunk(b []byte, n int) func(func([]byte) bool) {
	return func(yield func([]byte) bool) {
		for len(b) > 0 {
			k := min(n, len(b))
			if !yield(b[:k]) {
				return
			}
			b = b[k:]
		}
	}
}

func TestHandleHTTPStreamsAResponseLargerThanAFrame(t *testing.T) {
	eng := iiitest.NewEngine(t)
	w := newWorker(t, eng, iii.InitOptions{MaxMessageSize: 256 << 10})
	// Under the 1 MiB buffer, over the frame limit once escaped.
	body := strings.Repeat("\x01", 100<<10)
	_, err := iii.HandleHTTP(w, "ctl::dump", "GET", "/dump", http.HandlerFunc(func(rw http.ResponseWriter, r *http.Request) {
		rw.Header().Set("Content-Type", "text/plain")
		_, _ = io.WriteString(rw, body)
	}))
	if err != nil {
		t.Fatal(err)
	}
	got := invokeHTTP(t, eng, w, "ctl::dump", iii.HTTPRequest{Method: "GET", Path: "/dump"}, nil)
	if !got.streamed || got.status != 200 || string(got.body) != body {
		t.Errorf("streamed %v, status %d, %d bytes; want a streamed 200 of %d bytes", got.streamed, got.status, len(got.body), len(body))
	}
}

func TestHandleHTTPKeepsRepeatedHeaders(t *testing.T) {
	eng := iiitest.NewEngine(t)
	w := newWorker(t, eng, iii.InitOptions{})
	_, err := iii.HandleHTTP(w, "auth::login", "POST", "/login", http.HandlerFunc(func(rw http.ResponseWriter, r *http.Request) {
		http.SetCookie(rw, &http.Cookie{Name: "a", Value: "1"})
		http.SetCookie(rw, &http.Cookie{Name: "b", Value: "2"})
		rw.WriteHeader(http.StatusOK)
		rw.Header().Set("X-Too-Late", "1") // after WriteHeader: not sent, as with net/http
		_, _ = io.WriteString(rw, "<p>hi</p>")
	}))
	if err != nil {
		t.Fatal(err)
	}
	got := invokeHTTP(t, eng, w, "auth::login", iii.HTTPRequest{Method: "POST", Path: "/login"}, nil)
	if c := got.header.Values("Set-Cookie"); len(c) != 2 || c[0] != "a=1" || c[1] != "b=2" {
		t.Errorf("Set-Cookie = %q; want both cookies", c)
	}
	if got.header.Get("X-Too-Late") != "" || got.header.Get("Content-Type") != "text/html; charset=utf-8" {
		t.Errorf("header = %v; want a sniffed Content-Type and nothing set after WriteHeader", got.header)
	}
}

func TestHandleHTTPPanicIs500WithoutStackAndTheWorkerKeepsServing(t *testing.T) {
	eng := iiitest.NewEngine(t)
	logs := &logRecorder{}
	w := newWorker(t, eng, iii.InitOptions{Logger: slog.New(logs)})
	_, err := iii.HandleHTTP(w, "boom::get", "GET", "/boom", http.HandlerFunc(func(rw http.ResponseWriter, r *http.Request) {
		if r.URL.Query().Get("panic") != "" {
			rw.Header().Set("X-Half", "written")
			panic("secret internal state")
		}
		_, _ = io.WriteString(rw, "fine")
	}))
	if err != nil {
		t.Fatal(err)
	}
	got := invokeHTTP(t, eng, w, "boom::get", iii.HTTPRequest{Method: "GET", Path: "/boom", QueryParams: map[string]string{"panic": "1"}}, nil)
	if got.status != 500 || string(got.body) != "Internal Server Error\n" || got.header.Get("X-Half") != "" {
		t.Errorf("after a panic: %+v (body %q); want a bare 500", got, got.body)
	}
	if rec := logs.find("HTTP handler panicked", "secret internal state", "goroutine"); rec == "" {
		t.Errorf("the panic and its stack were not logged locally; logs:\n%s", logs.all())
	}
	got = invokeHTTP(t, eng, w, "boom::get", iii.HTTPRequest{Method: "GET", Path: "/boom"}, nil)
	if got.status != 200 || string(got.body) != "fine" {
		t.Errorf("the next request: %+v (body %q)", got, got.body)
	}
}

func TestHandleHTTPPanicSendsTheStackOnlyWhenAsked(t *testing.T) {
	eng := iiitest.NewEngine(t)
	w := newWorker(t, eng, iii.InitOptions{SendPanicStacks: true, Logger: slog.New(slog.DiscardHandler)})
	_, err := iii.HandleHTTP(w, "boom::get", "GET", "/boom", http.HandlerFunc(func(rw http.ResponseWriter, r *http.Request) {
		panic("kaboom")
	}))
	if err != nil {
		t.Fatal(err)
	}
	got := invokeHTTP(t, eng, w, "boom::get", iii.HTTPRequest{Method: "GET", Path: "/boom"}, nil)
	if got.status != 500 || !strings.HasPrefix(string(got.body), "panic: kaboom\n\ngoroutine ") {
		t.Errorf("got %d %q; want 500 with the panic and its stack", got.status, got.body)
	}
}

func TestHandleHTTPBoundsTheRequestBody(t *testing.T) {
	eng := iiitest.NewEngine(t)
	const limit = 256 << 10
	w := newWorker(t, eng, iii.InitOptions{MaxMessageSize: limit})
	_, err := iii.HandleHTTP(w, "up::load", "PUT", "/upload", http.HandlerFunc(func(rw http.ResponseWriter, r *http.Request) {
		n, err := io.Copy(io.Discard, r.Body)
		var mbe *http.MaxBytesError
		if errors.As(err, &mbe) {
			http.Error(rw, fmt.Sprintf("too large after %d bytes (limit %d)", n, mbe.Limit), http.StatusRequestEntityTooLarge)
			return
		}
		if err != nil {
			http.Error(rw, err.Error(), http.StatusInternalServerError)
			return
		}
		fmt.Fprintf(rw, "%d bytes", n)
	}))
	if err != nil {
		t.Fatal(err)
	}
	ok := bytes.Repeat([]byte("x"), limit)
	got := invokeHTTP(t, eng, w, "up::load", iii.HTTPRequest{Method: "PUT", Path: "/upload",
		Headers: map[string]string{"content-length": fmt.Sprint(len(ok))}}, ok)
	if got.status != 200 || string(got.body) != fmt.Sprintf("%d bytes", limit) {
		t.Errorf("a body at the limit: %d %q", got.status, got.body)
	}
	tooBig := append(ok, 'y')
	got = invokeHTTP(t, eng, w, "up::load", iii.HTTPRequest{Method: "PUT", Path: "/upload",
		Headers: map[string]string{"transfer-encoding": "chunked"}}, tooBig)
	if got.status != 413 || !strings.HasPrefix(string(got.body), fmt.Sprintf("too large after %d bytes (limit %d)", limit, limit)) {
		t.Errorf("a body over the limit: %d %q", got.status, got.body)
	}
}

func TestHandleHTTPReplacesTheRawEnvelope(t *testing.T) {
	// The raw types work with RegisterFunction as the engine's envelope.
	eng := iiitest.NewEngine(t)
	w := newWorker(t, eng, iii.InitOptions{})
	_, err := iii.RegisterFunction(w, "raw::echo", func(ctx context.Context, req iii.HTTPRequest) (iii.HTTPResponse, error) {
		return iii.HTTPResponse{StatusCode: 200, Headers: map[string]string{"content-type": "text/plain"},
			Body: req.Method + " " + req.Path + " " + req.PathParams["id"] + " " + string(req.Body)}, nil
	})
	if err != nil {
		t.Fatal(err)
	}
	got := invokeHTTP(t, eng, w, "raw::echo", iii.HTTPRequest{Method: "POST", Path: "/x/:id",
		PathParams: map[string]string{"id": "9"}, Body: json.RawMessage(`{"a":1}`)}, nil)
	if got.status != 200 || string(got.body) != `POST /x/:id 9 {"a":1}` {
		t.Errorf("got %+v (body %q)", got, got.body)
	}
}

func TestHandleHTTPRefusesBadRoutes(t *testing.T) {
	eng := iiitest.NewEngine(t)
	w := newWorker(t, eng, iii.InitOptions{})
	h := http.NotFoundHandler()
	for _, c := range []struct {
		method, path string
		h            http.Handler
	}{
		{"TRACE", "/x", h},
		{"GET", "", h},
		{"GET", "/x", nil},
	} {
		if _, err := iii.HandleHTTP(w, "bad::route", c.method, c.path, c.h); !errors.Is(err, iii.ErrInvalidHTTPConfig) {
			t.Errorf("HandleHTTP(%q, %q, handler %v) = %v; want ErrInvalidHTTPConfig", c.method, c.path, c.h != nil, err)
		}
	}
}

func TestHandleHTTPUnregisterRemovesRouteAndFunction(t *testing.T) {
	eng := iiitest.NewEngine(t)
	w := newWorker(t, eng, iii.InitOptions{})
	tr, err := iii.HandleHTTP(w, "gone::get", "GET", "/gone", http.NotFoundHandler())
	if err != nil {
		t.Fatal(err)
	}
	if err := tr.Unregister(); err != nil {
		t.Fatal(err)
	}
	// The id is free again: the function went with the route.
	if _, err := iii.HandleHTTP(w, "gone::get", "GET", "/gone", http.NotFoundHandler()); err != nil {
		t.Fatalf("registering the id again: %v", err)
	}
}

func TestHandleHTTPContextEndsWithTheInvocation(t *testing.T) {
	eng := iiitest.NewEngine(t)
	w := newWorker(t, eng, fastOptions())
	started, ended := make(chan struct{}), make(chan error, 1)
	_, err := iii.HandleHTTP(w, "slow::get", "GET", "/slow", http.HandlerFunc(func(rw http.ResponseWriter, r *http.Request) {
		close(started)
		<-r.Context().Done()
		ended <- r.Context().Err()
	}))
	if err != nil {
		t.Fatal(err)
	}
	if err := w.WaitForFunction(testCtx(t), "slow::get"); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(testCtx(t))
	done := make(chan struct{})
	go func() {
		defer close(done)
		// It ends with invocation_stopped once the socket dies.
		_, _, _ = eng.Invoke(ctx, "slow::get", json.RawMessage(`{"method":"GET","path":"/slow","headers":{},"query_params":{},"path_params":{},"body":null}`))
	}()
	select {
	case <-started:
	case <-done:
		t.Fatal("the handler never ran")
	}
	eng.Stop() // the socket the invocation came on dies
	if err := <-ended; !errors.Is(err, context.Canceled) {
		t.Errorf("the handler's context ended with %v; want context.Canceled", err)
	}
	cancel()
	<-done
}

func TestHandleHTTPDiscardsTheBodyOfAHEADRequest(t *testing.T) {
	// The engine's router serves HEAD on GET routes, with method HEAD.
	eng := iiitest.NewEngine(t)
	w := newWorker(t, eng, iii.InitOptions{})
	_, err := iii.HandleHTTP(w, "doc::get", "GET", "/doc", http.HandlerFunc(func(rw http.ResponseWriter, r *http.Request) {
		rw.Header().Set("Content-Type", "text/plain")
		n, err := io.WriteString(rw, "a body")
		rw.Header().Set("X-Written", fmt.Sprint(n, err)) // after the first write: not sent
	}))
	if err != nil {
		t.Fatal(err)
	}
	got := invokeHTTP(t, eng, w, "doc::get", iii.HTTPRequest{Method: "HEAD", Path: "/doc"}, nil)
	if got.streamed || got.status != 200 || len(got.body) != 0 || got.header.Get("Content-Type") != "text/plain" {
		t.Errorf("HEAD /doc = %+v (body %q); want a 200 in the result, with its Content-Type and no body", got, got.body)
	}
}
