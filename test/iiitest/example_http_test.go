package iiitest_test

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"time"

	"github.com/iii-go/iii"
	"github.com/iii-go/iii/test/iiitest"
)

// A worker's function bound with an "http" trigger answers requests on the
// double's HTTP port, as on the engine's iii-http port.
func ExampleEngine_HTTPURL() {
	eng, err := iiitest.Start("127.0.0.1:0")
	if err != nil {
		panic(err)
	}
	defer eng.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()

	w := iii.RegisterWorker(eng.URL, iii.InitOptions{})
	defer w.Shutdown()
	w.RegisterFunctionRaw("orders::get", func(_ context.Context, in json.RawMessage) (any, error) {
		var req struct {
			PathParams map[string]string `json:"path_params"`
		}
		if err := json.Unmarshal(in, &req); err != nil {
			return nil, err
		}
		return map[string]any{"status_code": 200, "body": map[string]string{"order": req.PathParams["id"]}}, nil
	})
	w.RegisterTrigger(iii.TriggerInput{Type: iii.TriggerTypeHTTP, FunctionID: "orders::get",
		Config: iii.HTTPConfig{APIPath: "/orders/:id", Method: "GET"}})
	if err := eng.WaitHTTPRoute(ctx, "GET", "/orders/:id"); err != nil {
		panic(err)
	}

	tr := &http.Transport{}
	defer tr.CloseIdleConnections()
	res, err := (&http.Client{Transport: tr}).Get(eng.HTTPURL() + "/orders/42")
	if err != nil {
		panic(err)
	}
	defer res.Body.Close()
	body, _ := io.ReadAll(res.Body)
	fmt.Println(res.StatusCode, res.Header.Get("Content-Type"), string(body))
	// Output: 200 application/json {"order":"42"}
}
