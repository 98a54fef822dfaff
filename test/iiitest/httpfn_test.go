package iiitest

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"strconv"
	"testing"
	"time"

	"github.com/iii-go/iii/connection/wire"
)

type capturedRequest struct {
	method string
	header http.Header
	body   string
}

// endpoint is a loopback HTTP server answering every request with status
// and body; it reports each request it got.
func endpoint(t *testing.T, status int, body string) (string, <-chan capturedRequest) {
	t.Helper()
	got := make(chan capturedRequest, 16)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		b, _ := io.ReadAll(r.Body)
		got <- capturedRequest{r.Method, r.Header.Clone(), string(b)}
		if status == 0 { // hang until the client gives up
			<-r.Context().Done()
			return
		}
		w.WriteHeader(status)
		io.WriteString(w, body)
	}))
	t.Cleanup(srv.Close)
	return srv.URL, got
}

func captured(t *testing.T, ch <-chan capturedRequest) capturedRequest {
	t.Helper()
	select {
	case r := <-ch:
		return r
	case <-time.After(testTimeout):
		t.Fatal("the endpoint got no request")
	}
	return capturedRequest{}
}

func TestHTTPFunctionIsCalledAtItsURL(t *testing.T) {
	t.Setenv("IIITEST_HMAC", "s3cret")
	e := NewEngine(t)
	url, got := endpoint(t, 200, `{"ok": true, "n": 1.0}`)
	w := dial(t, e)
	w.send(&wire.RegisterFunction{ID: "ext::hook", Invocation: &wire.HTTPInvocationRef{
		URL: url + "/hook", Headers: map[string]string{"X-Custom": "c"},
		Auth: &wire.HTTPAuth{Type: "hmac", SecretKey: "IIITEST_HMAC"}}})
	waitFn(t, e, "ext::hook")

	// A worker's call: the data carries _caller_worker_id, as for any
	// function.
	r := w.callSync("ext::hook", `{"b":2,"a":1}`)
	if r.Error != nil || string(r.Result) != `{"n":1.0,"ok":true}` {
		t.Fatalf("result %s", wire.Encode(r))
	}
	req := captured(t, got)
	wantBody := `{"_caller_worker_id":"` + w.id + `","a":1,"b":2}`
	if req.method != "POST" || req.body != wantBody || req.header.Get("Content-Type") != "application/json" ||
		req.header.Get("X-Iii-Function-Path") != "ext::hook" || req.header.Get("X-Iii-Invocation-Id") == "" ||
		req.header.Get("X-Custom") != "c" || req.header.Get("Accept") != "*/*" || req.header.Get("User-Agent") != "" || req.header.Get("Accept-Encoding") != "" {
		t.Fatalf("request %s %v %s", req.method, req.header, req.body)
	}
	ts, _ := strconv.ParseInt(req.header.Get("X-Iii-Timestamp"), 10, 64)
	m := hmac.New(sha256.New, []byte("s3cret"))
	m.Write([]byte(strconv.FormatInt(ts, 10) + ":" + base64.StdEncoding.EncodeToString([]byte(wantBody))))
	if sig := req.header.Get("X-Iii-Signature"); sig != "sha256="+hex.EncodeToString(m.Sum(nil)) {
		t.Fatalf("signature %q", sig)
	}
	// Like a call of a worker's function, it is not journaled as a builtin.
	for _, m := range e.Journal(w.id) {
		if inv, ok := m.(*wire.InvokeFunction); ok {
			t.Fatalf("journal has %s", wire.Encode(inv))
		}
	}
	// The engine's own call (a trigger fire, Invoke): no caller id.
	res, errb, err := e.Invoke(ctxT(t), "ext::hook", json.RawMessage(`{"x":1}`))
	if err != nil || errb != nil || string(res) != `{"n":1.0,"ok":true}` {
		t.Fatalf("Invoke: %s %v %v", res, errb, err)
	}
	if req := captured(t, got); req.body != `{"x":1}` {
		t.Fatalf("Invoke body %s", req.body)
	}
	// The function goes with its worker.
	w.close()
	if err := e.WaitFunctionGone(ctxT(t), "ext::hook"); err != nil {
		t.Fatal(err)
	}
}

func TestHTTPFunctionAuthKinds(t *testing.T) {
	t.Setenv("IIITEST_TOKEN", "tok")
	t.Setenv("IIITEST_KEY", "k1")
	e := NewEngine(t)
	url, got := endpoint(t, 204, ``)
	w := dial(t, e)
	w.send(&wire.RegisterFunction{ID: "ext::bearer", Invocation: &wire.HTTPInvocationRef{URL: url, Method: "PUT", Auth: &wire.HTTPAuth{Type: "bearer", TokenKey: "IIITEST_TOKEN"}}})
	w.send(&wire.RegisterFunction{ID: "ext::key", Invocation: &wire.HTTPInvocationRef{URL: url, Method: "GET", Auth: &wire.HTTPAuth{Type: "api_key", Header: "X-Api-Key", ValueKey: "IIITEST_KEY"}}})
	// Refused as by the engine: a missing secret, a URL off loopback.
	w.send(&wire.RegisterFunction{ID: "ext::nosecret", Invocation: &wire.HTTPInvocationRef{URL: url, Auth: &wire.HTTPAuth{Type: "bearer", TokenKey: "IIITEST_UNSET_VAR"}}})
	w.send(&wire.RegisterFunction{ID: "ext::remote", Invocation: &wire.HTTPInvocationRef{URL: "http://192.0.2.1/x"}})
	w.sync()
	if r := w.callSync("ext::bearer", `null`); r.Error != nil || r.Result != nil {
		t.Fatalf("204: %s", wire.Encode(r))
	}
	if req := captured(t, got); req.method != "PUT" || req.header.Get("Authorization") != "Bearer tok" || req.body != "null" {
		t.Fatalf("bearer request %s %v %q", req.method, req.header, req.body)
	}
	w.callSync("ext::key", `{}`)
	if req := captured(t, got); req.method != "GET" || req.header.Get("X-Api-Key") != "k1" {
		t.Fatalf("api_key request %s %v", req.method, req.header)
	}
	for _, id := range []string{"ext::nosecret", "ext::remote"} {
		if r := w.callSync(id, `{}`); r.Error == nil || r.Error.Code != "function_not_found" {
			t.Fatalf("%s: %s", id, wire.Encode(r))
		}
	}
}

func TestHTTPFunctionErrors(t *testing.T) {
	e := NewEngine(t)
	w := dial(t, e)
	reg := func(id string, status int, body string, timeoutMS uint64) {
		url, _ := endpoint(t, status, body)
		ref := &wire.HTTPInvocationRef{URL: url}
		if timeoutMS > 0 {
			ref.TimeoutMS = &timeoutMS
		}
		w.send(&wire.RegisterFunction{ID: id, Invocation: ref})
	}
	reg("ext::upstream", 502, `{"error":{"code":"UPSTREAM","message":"upstream failed"}}`, 0)
	reg("ext::plain404", 404, `not here`, 0)
	reg("ext::partial", 500, `{"error":{"detail":1}}`, 0)
	reg("ext::notjson", 200, `not-json`, 0)
	reg("ext::redirect", 302, ``, 0)
	reg("ext::slow", 0, ``, 50)
	w.sync()
	for id, want := range map[string]wire.ErrorBody{
		"ext::upstream": {Code: "UPSTREAM", Message: "upstream failed"},
		"ext::plain404": {Code: "http_error", Message: "HTTP 404 Not Found"},
		"ext::partial":  {Code: "http_error", Message: "HTTP request failed"},
		"ext::notjson":  {Code: "invalid_response"},
		"ext::slow":     {Code: "http_request_failed"},
	} {
		r := w.callSync(id, `{}`)
		if r.Error == nil || r.Error.Code != want.Code || (want.Message != "" && r.Error.Message != want.Message) {
			t.Errorf("%s: %s", id, wire.Encode(r))
		}
	}
	if r := w.callSync("ext::redirect", `{}`); r.Error != nil || r.Result != nil {
		t.Errorf("redirect: %s", wire.Encode(r))
	}

}
