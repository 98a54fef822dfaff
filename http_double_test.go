package iii_test

import (
	"context"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/iii-go/iii"
	"github.com/iii-go/iii/test/iiitest"
)

// The SDK's function, bound with an "http" trigger, serves requests on the
// engine double's HTTP port.
func TestSDKFunctionServesAnHTTPRouteOfTheDouble(t *testing.T) {
	eng := iiitest.NewEngine(t)
	w := iii.RegisterWorker(eng.URL, iii.InitOptions{})
	defer w.Shutdown()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	type request struct {
		PathParams  map[string]string `json:"path_params"`
		QueryParams map[string]string `json:"query_params"`
		Body        struct {
			Greeting string `json:"greeting"`
		} `json:"body"`
	}
	if _, err := w.RegisterFunctionRaw("api::greet", func(_ context.Context, in json.RawMessage) (any, error) {
		var req request
		if err := json.Unmarshal(in, &req); err != nil {
			return nil, err
		}
		return map[string]any{
			"status_code": 200,
			"headers":     map[string]string{"Content-Type": "text/plain"},
			"body":        req.Body.Greeting + ", " + req.PathParams["name"] + req.QueryParams["punct"],
		}, nil
	}); err != nil {
		t.Fatal(err)
	}
	if _, err := w.RegisterTrigger(iii.TriggerInput{Type: iii.TriggerTypeHTTP, FunctionID: "api::greet",
		Config: iii.HTTPConfig{APIPath: "/greet/:name", Method: "POST"}}); err != nil {
		t.Fatal(err)
	}
	if err := eng.WaitHTTPRoute(ctx, "POST", "/greet/:name"); err != nil {
		t.Fatal(err)
	}
	tr := &http.Transport{DisableKeepAlives: true}
	defer tr.CloseIdleConnections()
	req, _ := http.NewRequestWithContext(ctx, "POST", eng.HTTPURL()+"/greet/gopher?punct=!", strings.NewReader(`{"greeting":"hello"}`))
	req.Header.Set("Content-Type", "application/json")
	res, err := (&http.Client{Transport: tr}).Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer res.Body.Close()
	body, _ := io.ReadAll(res.Body)
	if res.StatusCode != 200 || res.Header.Get("Content-Type") != "text/plain" || string(body) != "hello, gopher!" {
		t.Fatalf("%d %v %q", res.StatusCode, res.Header, body)
	}
}

// The engine refuses an http binding without api_path; the SDK reports it.
func TestSDKTriggerOnErrorGetsTheHTTPRefusal(t *testing.T) {
	eng := iiitest.NewEngine(t)
	w := iii.RegisterWorker(eng.URL, iii.InitOptions{})
	defer w.Shutdown()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	tg, err := w.RegisterTrigger(iii.TriggerInput{Type: iii.TriggerTypeHTTP, FunctionID: "api::x", Config: map[string]string{"http_method": "GET"}})
	if err != nil {
		t.Fatal(err)
	}
	terr := tg.WaitError(ctx)
	var te *iii.TriggerError
	if !errors.As(terr, &te) || te.Code != "trigger_registration_failed" || te.Message != "api_path is required for http triggers" {
		t.Fatalf("refusal %v", terr)
	}
}
