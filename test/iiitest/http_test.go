package iiitest

import (
	"encoding/json"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/iii-go/iii/connection/wire"
)

// route registers fn on c and binds it to method path on the HTTP port.
func route(t *testing.T, c *client, fn, method, path string) {
	t.Helper()
	c.register(fn)
	cfg, _ := json.Marshal(map[string]string{"api_path": path, "http_method": method})
	c.send(&wire.RegisterTrigger{ID: "t-" + fn, TriggerType: "http", FunctionID: fn, Config: cfg})
	c.sync()
}

type httpResp struct {
	status int
	header http.Header
	body   string
	err    error
}

// do sends an HTTP request in the background and returns the channel its
// response arrives on.
func do(t *testing.T, method, url, contentType, body string, hdr map[string]string) <-chan httpResp {
	t.Helper()
	out := make(chan httpResp, 1)
	req, err := http.NewRequest(method, url, strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	if contentType != "" {
		req.Header.Set("Content-Type", contentType)
	}
	for k, v := range hdr {
		req.Header.Set(k, v)
	}
	go func() {
		res, err := http.DefaultClient.Do(req)
		if err != nil {
			out <- httpResp{err: err}
			return
		}
		defer res.Body.Close()
		b, err := io.ReadAll(res.Body)
		out <- httpResp{status: res.StatusCode, header: res.Header, body: string(b), err: err}
	}()
	return out
}

func wait(t *testing.T, ch <-chan httpResp) httpResp {
	t.Helper()
	select {
	case r := <-ch:
		if r.err != nil {
			t.Fatalf("http: %v", r.err)
		}
		return r
	case <-time.After(testTimeout):
		t.Fatalf("no HTTP response within %v", testTimeout)
	}
	return httpResp{}
}

// invocation waits for the invokefunction of an HTTP request and decodes
// its request envelope.
func invocation(t *testing.T, c *client) (*wire.InvokeFunction, map[string]any) {
	t.Helper()
	inv := expectMsg[*wire.InvokeFunction](t, c)
	return inv, mustJSON(t, inv.Data)
}

func TestHTTPRouteGetsTheEnginesRequestEnvelopeAndAnswersWithTheResult(t *testing.T) {
	e := NewEngine(t)
	w := dial(t, e)
	route(t, w, "users::get", "GET", "/users/:id")
	resp := do(t, "GET", e.HTTPURL()+"/users/42?page=2&q=a%20b&page=3", "", "", map[string]string{"X-Token": "abc"})
	inv, req := invocation(t, w)
	if inv.FunctionID != "users::get" || !inv.HasInvocationID {
		t.Fatalf("invocation %s", wire.Encode(inv))
	}
	pp, _ := req["path_params"].(map[string]any)
	qp, _ := req["query_params"].(map[string]any)
	hd, _ := req["headers"].(map[string]any)
	tr, _ := req["trigger"].(map[string]any)
	if pp["id"] != "42" || qp["page"] != "3" || qp["q"] != "a b" || hd["x-token"] != "abc" || hd["host"] != e.HTTPAddr() ||
		req["path"] != "/users/:id" || req["method"] != "GET" || req["body"] != nil ||
		tr["type"] != "http" || tr["path"] != "/users/:id" || tr["method"] != "GET" {
		t.Fatalf("request envelope %s", inv.Data)
	}
	for k, dir := range map[string]string{"request_body": "read", "response": "write"} {
		ref, _ := req[k].(map[string]any)
		if ref["direction"] != dir || ref["channel_id"] == "" || ref["access_key"] == "" {
			t.Fatalf("%s = %v", k, req[k])
		}
	}
	w.send(&wire.InvocationResult{InvocationID: inv.InvocationID, FunctionID: inv.FunctionID,
		Result: json.RawMessage(`{"status_code":201,"headers":{"X-Answer":"yes"},"body":{"z":1.0,"a":[true,"<&>"]}}`)})
	r := wait(t, resp)
	if r.status != 201 || r.header.Get("X-Answer") != "yes" || r.header.Get("Content-Type") != "application/json" ||
		r.body != `{"a":[true,"<&>"],"z":1.0}` {
		t.Fatalf("response %d %v %s", r.status, r.header, r.body)
	}
}
