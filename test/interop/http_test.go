package interop_test

import (
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"strings"
	"testing"
)

// TestNodeHTTPRoutesAnswerOnTheDoublesHTTPPort: a Node worker binds two
// functions with "http" triggers; requests to the double's HTTP port reach
// them, one answering with a result envelope, the other streaming its
// answer with the http() helper of @iii-dev/helpers after reading the
// request body from its channel. (The same script gives the same answers on
// engine v0.22.1's iii-http port: III_ENGINE_HTTP_URL with III_ENGINE_URL.)
func TestNodeHTTPRoutesAnswerOnTheDoublesHTTPPort(t *testing.T) {
	eng := routingEngine(t)
	base := ""
	if eng.double != nil {
		base = eng.double.HTTPURL()
	} else if base = os.Getenv("III_ENGINE_HTTP_URL"); base == "" {
		t.Skip("III_ENGINE_URL is set but III_ENGINE_HTTP_URL (the engine's iii-http base URL) is not")
	}
	const chunks = 200
	node := startScript(t, eng.URL, "http-route.mjs", fmt.Sprintf("CHUNKS=%d", chunks))
	readyID(t, node)
	tr := &http.Transport{DisableKeepAlives: true}
	t.Cleanup(tr.CloseIdleConnections)
	client := &http.Client{Transport: tr}
	post := func(path, contentType, body string) (*http.Response, string) {
		t.Helper()
		req, _ := http.NewRequest("POST", base+path, strings.NewReader(body))
		req.Header.Set("Content-Type", contentType)
		req.Header.Set("X-Test", "t")
		res, err := client.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer res.Body.Close()
		b, err := io.ReadAll(res.Body)
		if err != nil {
			t.Fatal(err)
		}
		return res, string(b)
	}

	res, body := post("/node/items/7?q=x", "application/json", `{"a":1}`)
	if res.StatusCode != 201 || res.Header.Get("X-Node") != "yes" || res.Header.Get("Content-Type") != "application/json" ||
		body != `{"body":{"a":1},"id":"7","q":"x"}` {
		t.Fatalf("echo route: %d %v %s", res.StatusCode, res.Header, body)
	}
	var seen invoked
	node.wait(ev("invoked", "function_id", "interop::http::echo")).decode(t, &seen)
	requireJSON(t, "what the Node handler saw", seen.Input, json.RawMessage(
		`{"path":"/node/items/:id","method":"POST","path_params":{"id":"7"},"query_params":{"q":"x"},"body":{"a":1},"x_test":"t",`+
			`"trigger":{"type":"http","path":"/node/items/:id","method":"POST"}}`))

	res, body = post("/node/stream", "text/plain", "hello")
	var want strings.Builder
	for i := range chunks {
		fmt.Fprintf(&want, "chunk %d of 5\n", i)
	}
	if res.StatusCode != 202 || res.Header.Get("Content-Type") != "text/plain" || res.Header.Get("X-Streamed") != "1" || body != want.String() {
		t.Fatalf("stream route: %d %v %d bytes %.200q", res.StatusCode, res.Header, len(body), body)
	}
	node.wait(ev("invoked", "function_id", "interop::http::stream")).decode(t, &seen)
	requireJSON(t, "the stream handler's request", seen.Input, json.RawMessage(`{"bytes":5,"body":null}`))
}
