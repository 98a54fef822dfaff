package iiitest

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/gorilla/websocket"

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

var httpClients sync.Map // testing.TB → *http.Client

// testHTTPClient is a client of its own for the test, whose idle
// connections are closed when the test ends.
func testHTTPClient(t testing.TB) *http.Client {
	if c, ok := httpClients.Load(t); ok {
		return c.(*http.Client)
	}
	tr := &http.Transport{}
	c := &http.Client{Transport: tr}
	httpClients.Store(t, c)
	t.Cleanup(func() {
		httpClients.Delete(t)
		tr.CloseIdleConnections()
	})
	return c
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
		res, err := testHTTPClient(t).Do(req)
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

// channelOf dials the end of a channel ref of a request envelope.
func channelOf(t *testing.T, e *Engine, ref any) *client {
	t.Helper()
	m, _ := ref.(map[string]any)
	return dialURL(t, fmt.Sprintf("%s/ws/channels/%s?key=%s&dir=%s", e.URL, m["channel_id"], m["access_key"], m["direction"]), nil)
}

// readAll reads a channel reader's binary frames until the engine closes it.
func readAll(t *testing.T, c *client) string {
	t.Helper()
	var b strings.Builder
	for {
		select {
		case f, ok := <-c.frames:
			if !ok {
				return b.String()
			}
			if f.typ == websocket.BinaryMessage {
				b.Write(f.data)
			}
		case <-time.After(testTimeout):
			t.Fatalf("channel not closed within %v", testTimeout)
		}
	}
}

func reply(t *testing.T, c *client, inv *wire.InvokeFunction, result string) {
	t.Helper()
	c.send(&wire.InvocationResult{InvocationID: inv.InvocationID, FunctionID: inv.FunctionID, Result: json.RawMessage(result)})
}

func TestHTTPRoutingFollowsTheEnginesRouter(t *testing.T) {
	e := NewEngine(t)
	w := dial(t, e)
	route(t, w, "p::get", "GET", "/p/:id")
	route(t, w, "p::static", "post", "p/static") // method case and leading slash do not matter
	base := e.HTTPURL()

	// A literal segment beats a parameter, and then the method decides.
	r := wait(t, do(t, "GET", base+"/p/static", "", "", nil))
	if r.status != 405 || r.header.Get("Allow") != "POST" || r.body != "" {
		t.Fatalf("GET /p/static: %d %v %q", r.status, r.header, r.body)
	}
	r = wait(t, do(t, "PUT", base+"/p/1", "", "", nil))
	if r.status != 405 || r.header.Get("Allow") != "GET,HEAD" {
		t.Fatalf("PUT /p/1: %d %v", r.status, r.header)
	}
	resp := do(t, "POST", base+"/p/static", "", "", nil)
	if inv, req := invocation(t, w); inv.FunctionID != "p::static" || req["path"] != "p/static" {
		t.Fatalf("POST /p/static called %s %s", inv.FunctionID, inv.Data)
	} else {
		reply(t, w, inv, `{"body":"ok"}`)
	}
	if r := wait(t, resp); r.status != 200 || r.body != `"ok"` {
		t.Fatalf("POST /p/static: %d %q", r.status, r.body)
	}
	// Parameters are raw segments.
	resp = do(t, "GET", base+"/p/a%2Fb", "", "", nil)
	inv, req := invocation(t, w)
	if pp := req["path_params"].(map[string]any); pp["id"] != "a%2Fb" {
		t.Fatalf("path_params %v", pp)
	}
	reply(t, w, inv, `{}`)
	wait(t, resp)
	// The query is form-decoded leniently.
	resp = do(t, "GET", base+"/p/q?a=%zz&b=x+y&b=z%21&&c", "", "", nil)
	inv, req = invocation(t, w)
	if b, _ := json.Marshal(req["query_params"]); string(b) != `{"a":"%zz","b":"z!","c":""}` {
		t.Fatalf("query_params %s", b)
	}
	reply(t, w, inv, `{}`)
	wait(t, resp)
	// No route: the engine's error envelope.
	for _, path := range []string{"/p/1/", "/p/", "//p/1", "/nothing"} {
		r := wait(t, do(t, "GET", base+path, "", "", nil))
		if r.status != 404 || r.body != `{"error":{"code":"NOT_FOUND","message":"Not Found"}}` || r.header.Get("Content-Type") != "application/json" ||
			r.header.Get("Access-Control-Allow-Origin") != "*" {
			t.Fatalf("GET %s: %d %v %q", path, r.status, r.header, r.body)
		}
	}
	// HEAD reaches the GET route, whose handler finds no HEAD route.
	if r := wait(t, do(t, "HEAD", base+"/p/1", "", "", nil)); r.status != 404 {
		t.Fatalf("HEAD: %d", r.status)
	}
	// OPTIONS is answered by the CORS layer.
	if r := wait(t, do(t, "OPTIONS", base+"/p/1", "", "", nil)); r.status != 200 || r.header.Get("Access-Control-Allow-Methods") != "*" || r.header.Get("Allow") != "GET,HEAD" {
		t.Fatalf("OPTIONS: %d %v", r.status, r.header)
	}
	w.expectQuiet()
	// Unregistering the binding removes the route.
	w.send(&wire.UnregisterTrigger{ID: "t-p::get", TriggerType: "http"})
	w.sync()
	if r := wait(t, do(t, "GET", base+"/p/1", "", "", nil)); r.status != 404 {
		t.Fatalf("after unregister: %d", r.status)
	}
}

func TestHTTPRequestBodies(t *testing.T) {
	e := NewEngine(t)
	w := dial(t, e)
	route(t, w, "b::post", "POST", "/b")

	// JSON is parsed into body (re-encoded as the engine does) and its raw
	// bytes are on the request_body channel too.
	raw := `{"z": [1.50, "x"], "a": {"k": true}}`
	resp := do(t, "POST", e.HTTPURL()+"/b", "application/json; charset=utf-8", raw, nil)
	inv, req := invocation(t, w)
	if b, _ := json.Marshal(req["body"]); string(b) != `{"a":{"k":true},"z":[1.5,"x"]}` {
		t.Fatalf("body %s", inv.Data)
	}
	if got := readAll(t, channelOf(t, e, req["request_body"])); got != raw {
		t.Fatalf("request_body channel %q", got)
	}
	reply(t, w, inv, `{"status_code":200}`)
	if r := wait(t, resp); r.status != 200 || r.body != `{}` {
		t.Fatalf("response %d %q", r.status, r.body)
	}
	// Invalid JSON: body null.
	resp = do(t, "POST", e.HTTPURL()+"/b", "application/json", `{"z":`, nil)
	inv, req = invocation(t, w)
	if req["body"] != nil {
		t.Fatalf("body %s", inv.Data)
	}
	reply(t, w, inv, `{}`)
	wait(t, resp)
	// Anything else: body null, the bytes on the channel only.
	big := strings.Repeat("0123456789", 20000)
	resp = do(t, "POST", e.HTTPURL()+"/b", "text/plain", big, nil)
	inv, req = invocation(t, w)
	if hd := req["headers"].(map[string]any); req["body"] != nil || hd["content-type"] != "text/plain" || hd["content-length"] != "200000" {
		t.Fatalf("envelope %.300s", inv.Data)
	}
	if got := readAll(t, channelOf(t, e, req["request_body"])); got != big {
		t.Fatalf("request_body channel: %d bytes", len(got))
	}
	reply(t, w, inv, `{"body":"done","headers":["Content-Type: text/plain"]}`)
	if r := wait(t, resp); r.status != 200 || r.body != "done" || r.header.Get("Content-Type") != "text/plain" {
		t.Fatalf("response %d %v %q", r.status, r.header, r.body)
	}
}

func TestHTTPResultEnvelopes(t *testing.T) {
	e := NewEngine(t)
	w := dial(t, e)
	route(t, w, "r::post", "POST", "/r")
	for _, tc := range []struct {
		result      string
		status      int
		contentType string
		body        string
		header      [2]string
	}{
		{`{"status_code":1000,"body":"x"}`, 200, "application/json", `"x"`, [2]string{}},
		{`{"headers":["X-A: 1","bad",7],"body":null}`, 200, "application/json", `null`, [2]string{"X-A", "1"}},
		{`{"headers":{"content-type":"text/plain"},"body":{"b":1,"a":0.5e1}}`, 200, "text/plain", `{"a":5.0,"b":1}`, [2]string{}},
		{`{"headers":{"Content-Type":"text/html"},"body":null}`, 200, "text/html", ``, [2]string{}},
		{`{"status_code":"201","body":[1e21,1e-7,-0.0,12345678901234567890123]}`, 200, "application/json", `[1e21,1e-7,-0.0,1.2345678901234568e22]`, [2]string{}},
		{`[1,2]`, 200, "application/json", `{}`, [2]string{}},
		{`"text"`, 200, "application/json", `{}`, [2]string{}},
		{`{"status_code":418,"headers":{"X-B":"2"},"body":{"s":"\u00e9\u2028<>\/"}}`, 418, "application/json", "{\"s\":\"é\u2028<>/\"}", [2]string{"X-B", "2"}},
	} {
		resp := do(t, "POST", e.HTTPURL()+"/r", "", "", nil)
		inv, _ := invocation(t, w)
		reply(t, w, inv, tc.result)
		r := wait(t, resp)
		if r.status != tc.status || r.header.Get("Content-Type") != tc.contentType || r.body != tc.body ||
			(tc.header[0] != "" && r.header.Get(tc.header[0]) != tc.header[1]) {
			t.Errorf("%s: %d %v %q", tc.result, r.status, r.header, r.body)
		}
	}
}

func TestHTTPErrorsAndTimeout(t *testing.T) {
	e := NewEngine(t, WithHTTPTimeout(200*time.Millisecond))
	w := dial(t, e)
	route(t, w, "e::fail", "GET", "/fail")
	route(t, w, "e::slow", "GET", "/slow")
	cfg := json.RawMessage(`{"api_path":"/ghost"}`)
	w.send(&wire.RegisterTrigger{ID: "t-ghost", TriggerType: "http", FunctionID: "e::ghost", Config: cfg})
	w.sync()

	resp := do(t, "GET", e.HTTPURL()+"/fail", "", "", nil)
	inv, _ := invocation(t, w)
	w.send(&wire.InvocationResult{InvocationID: inv.InvocationID, FunctionID: inv.FunctionID, Error: &wire.ErrorBody{Code: "boom", Message: "it broke"}})
	r := wait(t, resp)
	var env struct {
		Error struct {
			Code, Message string
			ErrorID       string `json:"error_id"`
		} `json:"error"`
	}
	json.Unmarshal([]byte(r.body), &env)
	if r.status != 500 || env.Error.Code != "boom" || env.Error.Message != "it broke" || env.Error.ErrorID == "" {
		t.Fatalf("handler error: %d %q", r.status, r.body)
	}
	// A binding to a function nobody registered.
	r = wait(t, do(t, "GET", e.HTTPURL()+"/ghost", "", "", nil))
	if json.Unmarshal([]byte(r.body), &env); r.status != 500 || env.Error.Code != "function_not_found" {
		t.Fatalf("missing function: %d %q", r.status, r.body)
	}
	// No answer in time: 504 with an empty body.
	resp = do(t, "GET", e.HTTPURL()+"/slow", "", "", nil)
	inv, _ = invocation(t, w)
	r = wait(t, resp)
	if r.status != 504 || r.body != "" {
		t.Fatalf("timeout: %d %q", r.status, r.body)
	}
	reply(t, w, inv, `{"body":"late"}`) // dropped
	w.expectQuiet()
}

func TestHTTPStreamingResponseFromTheResponseChannel(t *testing.T) {
	e := NewEngine(t)
	w := dial(t, e)
	route(t, w, "s::get", "GET", "/s")
	url := e.HTTPURL() + "/s"
	req, _ := http.NewRequest("GET", url, nil)
	type started struct {
		res *http.Response
		err error
	}
	st := make(chan started, 1)
	go func() {
		res, err := testHTTPClient(t).Do(req)
		st <- started{res, err}
	}()
	inv, env := invocation(t, w)
	out := channelOf(t, e, env["response"])
	out.ws.WriteMessage(websocket.TextMessage, []byte(`{"type":"set_status","status_code":206}`))
	out.ws.WriteMessage(websocket.TextMessage, []byte(`{"type":"set_status","status_code":99}`)) // out of range: ignored
	out.ws.WriteMessage(websocket.TextMessage, []byte(`{"type":"set_headers","headers":{"Content-Type":"text/event-stream","X-S":"1"}}`))
	out.ws.WriteMessage(websocket.BinaryMessage, []byte("first "))
	var s started
	select {
	case s = <-st:
	case <-time.After(testTimeout):
		t.Fatal("no response head")
	}
	if s.err != nil {
		t.Fatal(s.err)
	}
	defer s.res.Body.Close()
	if s.res.StatusCode != 206 || s.res.Header.Get("Content-Type") != "text/event-stream" || s.res.Header.Get("X-S") != "1" {
		t.Fatalf("head %d %v", s.res.StatusCode, s.res.Header)
	}
	// The first chunk arrives before the handler writes the next one.
	buf := make([]byte, len("first "))
	if _, err := io.ReadFull(s.res.Body, buf); err != nil || string(buf) != "first " {
		t.Fatalf("first chunk %q %v", buf, err)
	}
	out.ws.WriteMessage(websocket.TextMessage, []byte(`{"type":"set_status","status_code":500}`)) // too late: skipped
	out.ws.WriteMessage(websocket.BinaryMessage, []byte("second"))
	reply(t, w, inv, `{"body":"ignored"}`) // the stream has started: the result is ignored
	out.ws.WriteMessage(websocket.CloseMessage, websocket.FormatCloseMessage(websocket.CloseNormalClosure, ""))
	rest, err := io.ReadAll(s.res.Body)
	if err != nil || string(rest) != "second" {
		t.Fatalf("rest %q %v", rest, err)
	}
}

func TestHTTPNullResultWaitsForTheResponseChannel(t *testing.T) {
	e := NewEngine(t)
	w := dial(t, e)
	route(t, w, "n::get", "GET", "/n")
	resp := do(t, "GET", e.HTTPURL()+"/n", "", "", nil)
	inv, env := invocation(t, w)
	reply(t, w, inv, `null`)
	w.sync()
	out := channelOf(t, e, env["response"])
	out.ws.WriteMessage(websocket.TextMessage, []byte(`{"type":"set_status","status_code":201}`))
	out.ws.WriteMessage(websocket.BinaryMessage, []byte("a"))
	out.ws.WriteMessage(websocket.BinaryMessage, []byte("b"))
	out.ws.WriteMessage(websocket.CloseMessage, websocket.FormatCloseMessage(websocket.CloseNormalClosure, ""))
	r := wait(t, resp)
	if r.status != 201 || r.body != "ab" || r.header.Get("Content-Type") != "" {
		t.Fatalf("response %d %v %q", r.status, r.header, r.body)
	}
}

func TestHTTPConditionAndMiddleware(t *testing.T) {
	e := NewEngine(t)
	w := dial(t, e)
	w.register("m::handler")
	w.register("m::cond")
	w.register("m::mw")
	w.send(&wire.RegisterTrigger{ID: "t1", TriggerType: "http", FunctionID: "m::handler",
		Config: json.RawMessage(`{"api_path":"/m","http_method":"GET","condition_function_id":"m::cond","middleware_function_ids":["m::mw"]}`)})
	w.sync()
	// The condition says no: 422.
	resp := do(t, "GET", e.HTTPURL()+"/m?x=1", "", "", nil)
	inv, req := invocation(t, w)
	if inv.FunctionID != "m::cond" || req["request_body"] != nil || req["query_params"].(map[string]any)["x"] != "1" {
		t.Fatalf("condition got %s %s", inv.FunctionID, inv.Data)
	}
	reply(t, w, inv, `false`)
	if r := wait(t, resp); r.status != 422 || r.body != `{"error":{"code":"CONDITION_NOT_MET","message":"Request condition not met"},"skipped":true}` {
		t.Fatalf("condition false: %d %q", r.status, r.body)
	}
	// Condition passes, the middleware answers itself.
	resp = do(t, "GET", e.HTTPURL()+"/m", "", "", nil)
	inv, _ = invocation(t, w)
	reply(t, w, inv, `true`)
	inv, req = invocation(t, w)
	if inv.FunctionID != "m::mw" || req["phase"] != "preHandler" || req["request"].(map[string]any)["method"] != "GET" {
		t.Fatalf("middleware got %s %s", inv.FunctionID, inv.Data)
	}
	reply(t, w, inv, `{"action":"respond","response":{"status_code":401,"body":{"denied":true},"headers":{"X-M":"1"}}}`)
	if r := wait(t, resp); r.status != 401 || r.body != `{"denied":true}` || r.header.Get("X-M") != "1" {
		t.Fatalf("middleware respond: %d %v %q", r.status, r.header, r.body)
	}
	// Both let it through.
	resp = do(t, "GET", e.HTTPURL()+"/m", "", "", nil)
	inv, _ = invocation(t, w)
	reply(t, w, inv, `{"anything":1}`)
	inv, _ = invocation(t, w)
	reply(t, w, inv, `{"action":"continue"}`)
	inv, _ = invocation(t, w)
	if inv.FunctionID != "m::handler" {
		t.Fatalf("handler not called: %s", inv.FunctionID)
	}
	reply(t, w, inv, `{"body":1}`)
	if r := wait(t, resp); r.status != 200 || r.body != `1` {
		t.Fatalf("handler: %d %q", r.status, r.body)
	}
}

func TestHTTPPortKeepsItsAddressAcrossRestart(t *testing.T) {
	e := NewEngine(t)
	before := e.HTTPURL()
	if err := e.Restart(); err != nil {
		t.Fatal(err)
	}
	if e.HTTPURL() != before {
		t.Fatalf("HTTP URL %s, then %s", before, e.HTTPURL())
	}
	w := dial(t, e)
	route(t, w, "x::get", "GET", "/x")
	resp := do(t, "GET", before+"/x", "", "", nil)
	inv, _ := invocation(t, w)
	reply(t, w, inv, `{"body":"back"}`)
	if r := wait(t, resp); r.body != `"back"` {
		t.Fatalf("after restart: %d %q", r.status, r.body)
	}
}

func TestHTTPBindingsTheEngineRefuses(t *testing.T) {
	e := NewEngine(t)
	w := dial(t, e)
	w.register("v::fn")
	w.send(&wire.RegisterTrigger{ID: "bad", TriggerType: "http", FunctionID: "v::fn", Config: json.RawMessage(`{"http_method":"GET"}`)})
	w.send(&wire.RegisterTrigger{ID: "a1", TriggerType: "http", FunctionID: "v::fn", Config: json.RawMessage(`{"api_path":"/c/:a"}`)})
	w.send(&wire.RegisterTrigger{ID: "a2", TriggerType: "http", FunctionID: "v::fn", Config: json.RawMessage(`{"api_path":"/c/:b"}`)})
	got := w.sync()
	want := []string{
		`{"type":"triggerregistrationresult","id":"bad","trigger_type":"http","function_id":"v::fn","error":{"code":"trigger_registration_failed","message":"api_path is required for http triggers"}}`,
		`{"type":"triggerregistrationresult","id":"a2","trigger_type":"http","function_id":"v::fn","error":{"code":"trigger_registration_failed","message":"Route 'GET /c/:b' conflicts with already-registered route 'GET /c/:a': routes with identical structure but different path-parameter names are not supported"}}`,
	}
	if encodeAll(got) != strings.Join(want, "\n") {
		t.Fatalf("got\n%s", encodeAll(got))
	}
	errb := w.builtin("engine::register_trigger", `{"trigger_type":"http","function_id":"v::fn","config":{}}`, nil)
	if errb == nil || errb.Code != "trigger_registration_failed" || errb.Message != "api_path is required for http triggers" {
		t.Fatalf("engine::register_trigger: %+v", errb)
	}
	var list struct {
		Triggers []struct {
			ID string `json:"id"`
		} `json:"registered_triggers"`
	}
	w.builtin("engine::registered-triggers::list", `{}`, &list)
	if len(list.Triggers) != 1 || list.Triggers[0].ID != "a1" {
		t.Fatalf("registered triggers %+v", list)
	}
}

func TestHTTPChunkedRequestKeepsItsTransferEncodingHeader(t *testing.T) {
	e := NewEngine(t)
	w := dial(t, e)
	route(t, w, "c::post", "POST", "/c")
	req, _ := http.NewRequest("POST", e.HTTPURL()+"/c", struct{ io.Reader }{strings.NewReader("abc")}) // unknown length: chunked
	out := make(chan error, 1)
	go func() {
		res, err := testHTTPClient(t).Do(req)
		if err == nil {
			res.Body.Close()
		}
		out <- err
	}()
	inv, env := invocation(t, w)
	if hd := env["headers"].(map[string]any); hd["transfer-encoding"] != "chunked" {
		t.Fatalf("headers %v", hd)
	}
	if got := readAll(t, channelOf(t, e, env["request_body"])); got != "abc" {
		t.Fatalf("body %q", got)
	}
	reply(t, w, inv, `{}`)
	if err := <-out; err != nil {
		t.Fatal(err)
	}
}

func TestHTTPRequestWaitingForItsHandlerEndsWithTheEngine(t *testing.T) {
	e := NewEngine(t)
	w := dial(t, e)
	route(t, w, "h::get", "GET", "/h")
	resp := do(t, "GET", e.HTTPURL()+"/h", "", "", nil)
	invocation(t, w) // never answered
	closed := make(chan struct{})
	go func() {
		e.Close()
		close(closed)
	}()
	select {
	case <-closed:
	case <-time.After(testTimeout):
		t.Fatal("Close waited for the HTTP request")
	}
	if r := <-resp; r.err == nil {
		t.Fatalf("response %d %q from a closed engine", r.status, r.body)
	}
}

func TestHTTPKeepAliveConnectionSurvivesABodyTheHandlerNeverRead(t *testing.T) {
	e := NewEngine(t)
	w := dial(t, e)
	route(t, w, "k::post", "POST", "/k")
	for i := range 5 {
		resp := do(t, "POST", e.HTTPURL()+"/k", "text/plain", strings.Repeat("x", 1000*i), nil)
		inv, _ := invocation(t, w)
		reply(t, w, inv, fmt.Sprintf(`{"body":%d}`, i))
		if r := wait(t, resp); r.status != 200 || r.body != fmt.Sprint(i) {
			t.Fatalf("request %d: %d %q", i, r.status, r.body)
		}
	}
	w.expectQuiet() // no request was sent twice
}

func TestHTTPRequestWhoseClientGoesAwayIsDropped(t *testing.T) {
	e := NewEngine(t)
	w := dial(t, e)
	route(t, w, "g::get", "GET", "/g")
	ctx, cancel := context.WithCancel(context.Background())
	req, _ := http.NewRequestWithContext(ctx, "GET", e.HTTPURL()+"/g", nil)
	out := make(chan error, 1)
	go func() {
		res, err := testHTTPClient(t).Do(req)
		if err == nil {
			res.Body.Close()
		}
		out <- err
	}()
	inv, _ := invocation(t, w)
	cancel()
	if err := <-out; err == nil {
		t.Fatal("a cancelled request got a response")
	}
	reply(t, w, inv, `{"body":"late"}`) // nobody waits for it any more
	w.expectQuiet()
}

func TestHTTPCallCarriesTheRequestsTraceAndTheBindingsMetadata(t *testing.T) {
	e := NewEngine(t)
	w := dial(t, e)
	w.register("tp::get")
	w.send(&wire.RegisterTrigger{ID: "tp1", TriggerType: "http", FunctionID: "tp::get", Config: json.RawMessage(`{"api_path":"/tp"}`), Metadata: json.RawMessage(`{"m":1}`)})
	w.sync()
	const parent = "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"
	resp := do(t, "GET", e.HTTPURL()+"/tp", "", "", map[string]string{"traceparent": parent, "baggage": "k=v"})
	inv, _ := invocation(t, w)
	if p := strings.Split(inv.Traceparent, "-"); len(p) != 4 || p[1] != "0af7651916cd43dd8448eb211c80319c" || p[2] == "b7ad6b7169203331" || p[3] != "01" ||
		inv.Baggage != "k=v" || string(inv.Metadata) != `{"m":1}` {
		t.Fatalf("invocation %s", wire.Encode(inv))
	}
	reply(t, w, inv, `{}`)
	wait(t, resp)
	// Without one, the engine starts a trace of its own.
	resp = do(t, "GET", e.HTTPURL()+"/tp", "", "", nil)
	inv, _ = invocation(t, w)
	if normalizeTraceparent(inv.Traceparent) != inv.Traceparent || inv.Traceparent == "" || strings.Contains(inv.Traceparent, "0af7651916cd43dd8448eb211c80319c") {
		t.Fatalf("traceparent %q", inv.Traceparent)
	}
	reply(t, w, inv, `{}`)
	wait(t, resp)
}

func TestHTTPConcurrencyLimitHoldsRequestsBack(t *testing.T) {
	e := NewEngine(t, WithHTTPConcurrencyLimit(1))
	w := dial(t, e)
	route(t, w, "l::a", "GET", "/a")
	route(t, w, "l::b", "GET", "/b")
	respA := do(t, "GET", e.HTTPURL()+"/a", "", "", nil)
	invA, _ := invocation(t, w)
	respB := do(t, "GET", e.HTTPURL()+"/b", "", "", nil)
	// B waits for A's slot and reaches nobody meanwhile.
	deadline := time.Now().Add(testTimeout)
	for e.api.waiting.Load() != 1 {
		if time.Now().After(deadline) {
			t.Fatal("the second request never waited for a slot")
		}
		time.Sleep(time.Millisecond)
	}
	w.expectQuiet()
	reply(t, w, invA, `{"body":"a"}`)
	if r := wait(t, respA); r.body != `"a"` {
		t.Fatalf("A: %d %q", r.status, r.body)
	}
	invB, _ := invocation(t, w)
	if invB.FunctionID != "l::b" {
		t.Fatalf("got %s", invB.FunctionID)
	}
	reply(t, w, invB, `{"body":"b"}`)
	if r := wait(t, respB); r.body != `"b"` {
		t.Fatalf("B: %d %q", r.status, r.body)
	}
}
