package iii_test

import (
	"bufio"
	"crypto/sha256"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/iii-go/iii"
	"github.com/iii-go/iii/test/iiitest"
)

// httpGet sends a request to the double's HTTP port.
func httpDo(t *testing.T, method, url, contentType string, body io.Reader) (*http.Response, string) {
	t.Helper()
	req, err := http.NewRequestWithContext(testCtx(t), method, url, body)
	if err != nil {
		t.Fatal(err)
	}
	if contentType != "" {
		req.Header.Set("Content-Type", contentType)
	}
	res, err := http.DefaultClient.Do(req)
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

// waitRoute waits until the double's HTTP port serves method apiPath.
func waitRoute(t *testing.T, eng *iiitest.Engine, method, apiPath string) {
	t.Helper()
	if err := eng.WaitHTTPRoute(testCtx(t), method, apiPath); err != nil {
		t.Fatalf("route %s %s: %v", method, apiPath, err)
	}
}

func TestHandleHTTPOverTheEnginesHTTPPort(t *testing.T) {
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
	base := eng.HTTPURL()
	waitRoute(t, eng, "GET", "/orders/:id")
	waitRoute(t, eng, "POST", "/orders")
	waitRoute(t, eng, "DELETE", "/orders/:id")

	res, body := httpDo(t, "GET", base+"/orders/42?fields=total", "", nil)
	if res.StatusCode != 200 || body != `{"id":"42","fields":"total"}` || res.Header.Get("Content-Type") != "application/json" ||
		res.Header.Get("X-Served-By") != "iii-go" {
		t.Errorf("GET /orders/42: %d %v %q", res.StatusCode, res.Header, body)
	}
	res, body = httpDo(t, "POST", base+"/orders", "application/json", strings.NewReader(`{"item": "tea"}`))
	if res.StatusCode != 201 || body != "created tea for " || res.Header.Get("Location") != "/orders/1" {
		t.Errorf("POST /orders: %d %v %q", res.StatusCode, res.Header, body)
	}
	res, body = httpDo(t, "POST", base+"/orders", "application/json", strings.NewReader(`{"item": `))
	if res.StatusCode != 400 || !strings.HasPrefix(body, "bad order: ") {
		t.Errorf("POST /orders with a broken body: %d %q", res.StatusCode, body)
	}
	res, body = httpDo(t, "DELETE", base+"/orders/42", "", nil)
	if res.StatusCode != 204 || body != "" || res.Header.Get("Content-Type") != "" || res.Header.Get("X-Served-By") != "iii-go" {
		t.Errorf("DELETE /orders/42: %d %v %q", res.StatusCode, res.Header, body)
	}
}

func TestHandleHTTPStreamsBothWaysOverTheEnginesHTTPPort(t *testing.T) {
	eng := iiitest.NewEngine(t)
	w := newWorker(t, eng, iii.InitOptions{})
	next := make(chan struct{})
	mux := http.NewServeMux()
	// A request body read as a stream: a checksum of an upload.
	mux.HandleFunc("PUT /blobs/{name}", func(rw http.ResponseWriter, r *http.Request) {
		h := sha256.New()
		n, err := io.Copy(h, r.Body)
		if err != nil {
			http.Error(rw, err.Error(), http.StatusBadRequest)
			return
		}
		fmt.Fprintf(rw, "%s: %d bytes, %x", r.PathValue("name"), n, h.Sum(nil)[:4])
	})
	// A response written in flushes: the client sees each line before the
	// handler writes the next.
	mux.HandleFunc("GET /ticks", func(rw http.ResponseWriter, r *http.Request) {
		rw.Header().Set("Content-Type", "text/plain")
		for i := range 3 {
			fmt.Fprintf(rw, "tick %d\n", i)
			rw.(http.Flusher).Flush()
			if i < 2 {
				select {
				case <-next:
				case <-r.Context().Done():
					return
				}
			}
		}
	})
	if _, err := iii.HandleHTTP(w, "blobs::put", "PUT", "/blobs/:name", mux); err != nil {
		t.Fatal(err)
	}
	if _, err := iii.HandleHTTP(w, "ticks::get", "GET", "/ticks", mux); err != nil {
		t.Fatal(err)
	}
	base := eng.HTTPURL()
	waitRoute(t, eng, "PUT", "/blobs/:name")
	waitRoute(t, eng, "GET", "/ticks")

	upload := strings.Repeat("iii ", 1<<19) // 2 MiB
	res, body := httpDo(t, "PUT", base+"/blobs/a.bin", "application/octet-stream", strings.NewReader(upload))
	sum := sha256.Sum256([]byte(upload))
	if want := fmt.Sprintf("a.bin: %d bytes, %x", len(upload), sum[:4]); res.StatusCode != 200 || body != want {
		t.Errorf("PUT /blobs/a.bin: %d %q; want %q", res.StatusCode, body, want)
	}

	req, _ := http.NewRequestWithContext(testCtx(t), "GET", base+"/ticks", nil)
	// On the keep-alive connection of the upload: the stream must not
	// be cut short by what the previous request left on it.
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != 200 || resp.Header.Get("Content-Type") != "text/plain" {
		t.Errorf("GET /ticks: %d %v", resp.StatusCode, resp.Header)
	}
	lines := bufio.NewReader(resp.Body)
	for i := range 3 {
		line, err := lines.ReadString('\n')
		if err != nil || line != fmt.Sprintf("tick %d\n", i) {
			t.Fatalf("line %d = %q, %v", i, line, err)
		}
		if i < 2 {
			next <- struct{}{} // only now does the handler write the next line
		}
	}
	if rest, err := io.ReadAll(lines); err != nil || len(rest) != 0 {
		t.Errorf("after the last tick: %q, %v", rest, err)
	}
}

func TestRegisterHTTPFunctionIsCalledThroughTheEngine(t *testing.T) {
	eng := iiitest.NewEngine(t)
	t.Setenv("IIIGO_TEST_BILLING_TOKEN", "s3cret")
	type seen struct{ method, auth, team, body string }
	calls := make(chan seen, 4)
	srv := httptest.NewServer(http.HandlerFunc(func(rw http.ResponseWriter, r *http.Request) {
		b, _ := io.ReadAll(r.Body)
		calls <- seen{r.Method, r.Header.Get("Authorization"), r.Header.Get("X-Team"), string(b)}
		rw.Header().Set("Content-Type", "application/json")
		_, _ = io.WriteString(rw, `{"charged":true}`)
	}))
	defer srv.Close()
	w := newWorker(t, eng, fastOptions())
	_, err := iii.RegisterHTTPFunction(w, "billing::charge", iii.HTTPInvocation{URL: srv.URL + "/charge", Method: "PUT",
		Timeout: 5 * time.Second, Headers: map[string]string{"X-Team": "billing"}, Auth: iii.BearerAuth("IIIGO_TEST_BILLING_TOKEN")})
	if err != nil {
		t.Fatal(err)
	}
	call := func() {
		t.Helper()
		if err := w.WaitForFunction(testCtx(t), "billing::charge"); err != nil {
			t.Fatal(err)
		}
		res, err := iii.Call[map[string]bool](testCtx(t), w, "billing::charge", map[string]int{"cents": 250})
		if err != nil || !res["charged"] {
			t.Fatalf("Call = %v, %v", res, err)
		}
		got := <-calls
		var body map[string]any
		if err := json.Unmarshal([]byte(got.body), &body); err != nil || body["cents"] != float64(250) {
			t.Errorf("the endpoint got body %q", got.body)
		}
		if got.method != "PUT" || got.auth != "Bearer s3cret" || got.team != "billing" {
			t.Errorf("the endpoint got %+v", got)
		}
	}
	call()
	// The registration is replayed on the next connection.
	old := w.WorkerID()
	if err := eng.Restart(); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "the reconnect", func() bool { return w.WorkerID() != old && w.State() == iii.Connected })
	call()
}

func TestHandleHTTPPanicAfterTheResponseStartedEndsItAndTheWorkerKeepsServing(t *testing.T) {
	eng := iiitest.NewEngine(t)
	logs := &logRecorder{}
	w := newWorker(t, eng, iii.InitOptions{Logger: slog.New(logs)})
	_, err := iii.HandleHTTP(w, "half::get", "GET", "/half", http.HandlerFunc(func(rw http.ResponseWriter, r *http.Request) {
		if r.URL.Query().Get("ok") != "" {
			_, _ = io.WriteString(rw, "fine")
			return
		}
		_, _ = io.WriteString(rw, "partial")
		rw.(http.Flusher).Flush()
		panic("secret internal state")
	}))
	if err != nil {
		t.Fatal(err)
	}
	base := eng.HTTPURL()
	waitRoute(t, eng, "GET", "/half")
	req, _ := http.NewRequestWithContext(testCtx(t), "GET", base+"/half", nil)
	res, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(res.Body)
	res.Body.Close()
	if res.StatusCode != 200 || string(body) != "partial" {
		t.Errorf("got %d %q; want the 200 and the part written before the panic", res.StatusCode, body)
	}
	waitFor(t, "the panic logged", func() bool { return logs.find("HTTP handler panicked", "secret internal state", "goroutine") != "" })
	if _, b := httpDo(t, "GET", base+"/half?ok=1", "", nil); b != "fine" {
		t.Errorf("the next request got %q", b)
	}
	if n := strings.Count(logs.all(), "ERROR iii: HTTP handler panicked"); n != 1 || logs.find("ERROR iii: handler panicked") != "" {
		t.Errorf("the panic was logged %d times, or again as a plain handler's; want once:\n%s", n, logs.all())
	}
}

func TestHandleHTTPHonoursASuppressedContentType(t *testing.T) {
	eng := iiitest.NewEngine(t)
	w := newWorker(t, eng, iii.InitOptions{})
	_, err := iii.HandleHTTP(w, "plain::get", "GET", "/plain", http.HandlerFunc(func(rw http.ResponseWriter, r *http.Request) {
		rw.Header()["Content-Type"] = nil // net/http: do not sniff
		_, _ = io.WriteString(rw, "<html>")
	}))
	if err != nil {
		t.Fatal(err)
	}
	waitRoute(t, eng, "GET", "/plain")
	res, body := httpDo(t, "GET", eng.HTTPURL()+"/plain", "", nil)
	if res.StatusCode != 200 || body != "<html>" || res.Header.Get("Content-Type") != "" {
		t.Errorf("got %d %v %q; want the body as written with no Content-Type", res.StatusCode, res.Header, body)
	}
}

// BenchmarkHandleHTTP measures a request through the double's HTTP port to
// a HandleHTTP route: a whole response (in the result) and a flushed one
// (through the response channel).
func BenchmarkHandleHTTP(b *testing.B) {
	eng := iiitest.NewEngine(b)
	w := newWorker(b, eng, iii.InitOptions{})
	mux := http.NewServeMux()
	mux.HandleFunc("GET /whole/{id}", func(rw http.ResponseWriter, r *http.Request) {
		rw.Header().Set("Content-Type", "application/json")
		fmt.Fprintf(rw, `{"id":%q}`, r.PathValue("id"))
	})
	mux.HandleFunc("GET /flushed/{id}", func(rw http.ResponseWriter, r *http.Request) {
		rw.Header().Set("Content-Type", "application/json")
		fmt.Fprintf(rw, `{"id":%q}`, r.PathValue("id"))
		rw.(http.Flusher).Flush()
	})
	for _, p := range []string{"whole", "flushed"} {
		if _, err := iii.HandleHTTP(w, "bench::"+p, "GET", "/"+p+"/:id", mux); err != nil {
			b.Fatal(err)
		}
		if err := eng.WaitHTTPRoute(testCtx(b), "GET", "/"+p+"/:id"); err != nil {
			b.Fatal(err)
		}
	}
	tr := &http.Transport{}
	defer tr.CloseIdleConnections()
	client := &http.Client{Transport: tr}
	for _, p := range []string{"whole", "flushed"} {
		b.Run(p, func(b *testing.B) {
			for b.Loop() {
				res, err := client.Get(eng.HTTPURL() + "/" + p + "/42")
				if err != nil {
					b.Fatal(err)
				}
				body, _ := io.ReadAll(res.Body)
				res.Body.Close()
				if res.StatusCode != 200 || string(body) != `{"id":"42"}` {
					b.Fatalf("%d %q", res.StatusCode, body)
				}
			}
		})
	}
}
