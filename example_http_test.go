package iii_test

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"strings"
	"sync"

	"github.com/iii-go/iii"
	"github.com/iii-go/iii/test/iiitest"
)

// Purchase is a resource of the REST API below.
type Purchase struct {
	ID   string `json:"id"`
	Item string `json:"item"`
}

// A REST API of three routes on net/http's ServeMux, served on the
// engine's HTTP port: each route is a function bound to the engine's http
// trigger, and the same mux answers all three.
func ExampleHandleHTTP() {
	eng, _ := iiitest.Start("127.0.0.1:0")
	defer eng.Close()
	w := iii.RegisterWorker(eng.URL, iii.InitOptions{})
	defer w.Shutdown()
	ctx := context.Background()
	w.WaitConnected(ctx)

	var mu sync.Mutex
	orders := map[string]Purchase{}
	mux := http.NewServeMux()
	mux.HandleFunc("GET /orders/{id}", func(rw http.ResponseWriter, r *http.Request) {
		mu.Lock()
		o, ok := orders[r.PathValue("id")]
		mu.Unlock()
		if !ok {
			http.Error(rw, "no such order", http.StatusNotFound)
			return
		}
		rw.Header().Set("Content-Type", "application/json")
		json.NewEncoder(rw).Encode(o)
	})
	mux.HandleFunc("POST /orders", func(rw http.ResponseWriter, r *http.Request) {
		var o Purchase
		if err := json.NewDecoder(r.Body).Decode(&o); err != nil || o.ID == "" {
			http.Error(rw, "want {\"id\": ..., \"item\": ...}", http.StatusBadRequest)
			return
		}
		mu.Lock()
		orders[o.ID] = o
		mu.Unlock()
		rw.Header().Set("Location", "/orders/"+o.ID)
		rw.WriteHeader(http.StatusCreated)
	})
	mux.HandleFunc("DELETE /orders/{id}", func(rw http.ResponseWriter, r *http.Request) {
		mu.Lock()
		delete(orders, r.PathValue("id"))
		mu.Unlock()
		rw.WriteHeader(http.StatusNoContent)
	})
	iii.HandleHTTP(w, "orders::get", "GET", "/orders/:id", mux)
	iii.HandleHTTP(w, "orders::create", "POST", "/orders", mux)
	iii.HandleHTTP(w, "orders::delete", "DELETE", "/orders/:id", mux)
	// The engine handles a worker's messages in order: once a call made
	// after the registrations returns, the routes are live.
	w.ListTriggers(ctx, iii.TriggerFilter{})

	do := func(method, path, body string) {
		req, _ := http.NewRequest(method, eng.HTTPURL()+path, strings.NewReader(body))
		if body != "" {
			req.Header.Set("Content-Type", "application/json")
		}
		res, err := http.DefaultClient.Do(req)
		if err != nil {
			fmt.Println(err)
			return
		}
		defer res.Body.Close()
		b, _ := io.ReadAll(res.Body)
		line := fmt.Sprintf("%s %s: %d", method, path, res.StatusCode)
		if loc := res.Header.Get("Location"); loc != "" {
			line += " Location: " + loc
		}
		fmt.Println(strings.TrimSpace(line + " " + strings.TrimSpace(string(b))))
	}
	do("POST", "/orders", `{"id": "7", "item": "tea"}`)
	do("GET", "/orders/7", "")
	do("DELETE", "/orders/7", "")
	do("GET", "/orders/7", "")
	// Output:
	// POST /orders: 201 Location: /orders/7
	// GET /orders/7: 200 {"id":"7","item":"tea"}
	// DELETE /orders/7: 204
	// GET /orders/7: 404 no such order
}
