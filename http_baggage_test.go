package iii_test

import (
	"io"
	"net/http"
	"strings"
	"testing"

	"github.com/iii-go/iii"
	"github.com/iii-go/iii/test/iiitest"
)

// A whole response that would fit in the result alone, but not in the
// result's frame, which also carries the invocation's baggage, is
// streamed instead of failing as too large.
func TestHandleHTTPCountsTheBaggageInTheResultFrame(t *testing.T) {
	eng := iiitest.NewEngine(t)
	const limit = 256 << 10
	w := newWorker(t, eng, iii.InitOptions{MaxMessageSize: limit})
	body := strings.Repeat("a", 100<<10) // under the 128 KiB buffer and the frame limit
	baggage := "big=" + strings.Repeat("b", 200<<10)
	seen := make(chan string, 1)
	_, err := iii.HandleHTTP(w, "docs::get", "GET", "/doc", http.HandlerFunc(func(rw http.ResponseWriter, r *http.Request) {
		inv, _ := iii.InvocationFromContext(r.Context())
		seen <- inv.Baggage()
		rw.Header().Set("Content-Type", "text/plain")
		_, _ = io.WriteString(rw, body)
	}))
	if err != nil {
		t.Fatal(err)
	}
	ctx := testCtx(t)
	if err := eng.WaitHTTPRoute(ctx, "GET", "/doc"); err != nil {
		t.Fatal(err)
	}
	tr := &http.Transport{DisableKeepAlives: true}
	defer tr.CloseIdleConnections()
	req, _ := http.NewRequestWithContext(ctx, "GET", eng.HTTPURL()+"/doc", nil)
	req.Header.Set("Baggage", baggage)
	res, err := (&http.Client{Transport: tr}).Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer res.Body.Close()
	got, err := io.ReadAll(res.Body)
	if err != nil {
		t.Fatal(err)
	}
	if b := <-seen; b != baggage {
		t.Fatalf("the invocation's baggage has %d bytes; want the request's %d", len(b), len(baggage))
	}
	if res.StatusCode != 200 || res.Header.Get("Content-Type") != "text/plain" || string(got) != body {
		t.Errorf("GET /doc = %d %v, %d bytes (%.100q); want 200 text/plain with the %d-byte body", res.StatusCode, res.Header, len(got), got, len(body))
	}
}
