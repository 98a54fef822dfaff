package iiitest

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log"
	"net"
	"net/http"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/iii-go/iii/connection/wire"
)

// DefaultHTTPTimeout bounds an HTTP request on the double's HTTP port until
// its response starts, as the engine's iii-http default_timeout (30 s).
const DefaultHTTPTimeout = 30 * time.Second

// triggerHTTP is the engine-provided trigger type of the iii-http worker.
const triggerHTTP = "http"

// WithHTTPAddr sets the address of the double's HTTP port, the stand-in for
// the engine's iii-http worker (default "127.0.0.1:0", a free loopback
// port). The port keeps its address across Stop, Resume and Restart.
func WithHTTPAddr(addr string) Option { return func(c *config) { c.httpAddr = addr } }

// WithHTTPTimeout sets how long a request on the HTTP port may take until
// its response starts (middleware, condition and handler together) before
// it is answered 504 with an empty body, like the engine's iii-http
// default_timeout (default 30 s). A streamed body, once started, is not
// bounded.
func WithHTTPTimeout(d time.Duration) Option { return func(c *config) { c.httpTimeout = d } }

// HTTPURL returns the base URL of the double's HTTP port,
// "http://127.0.0.1:PORT", where functions bound with "http" triggers are
// served (the engine's iii-http worker, by default on port 3111).
func (e *Engine) HTTPURL() string { return "http://" + e.HTTPAddr() }

// HTTPAddr returns the address of the double's HTTP port, "127.0.0.1:PORT".
func (e *Engine) HTTPAddr() string {
	e.mu.Lock()
	defer e.mu.Unlock()
	return e.api.addr
}

// WaitHTTPRoute waits until an "http" binding serves method (GET when
// empty, any case) and apiPath, the path as bound (e.g. "/orders/:id").
func (e *Engine) WaitHTTPRoute(ctx context.Context, method, apiPath string) error {
	if method == "" {
		method = "GET"
	}
	key := routeKey(method, apiPath)
	return e.waitFor(ctx, func() bool {
		if tt := e.st.ttypes[triggerHTTP]; tt != nil {
			if p, ok := tt.engine.(*httpProvider); ok {
				return p.routes[key] != nil
			}
		}
		return false
	})
}

// DefaultHTTPConcurrencyLimit is how many requests the HTTP port serves
// at once, as the engine's iii-http concurrency_request_limit; more wait.
const DefaultHTTPConcurrencyLimit = 1024

// WithHTTPConcurrencyLimit sets how many requests the HTTP port serves at
// once (default 1024, as the engine); more wait for a free slot before
// their timeout starts. A streamed response frees its slot when it starts.
func WithHTTPConcurrencyLimit(n int) Option {
	return func(c *config) { c.httpConcurrency = max(n, 1) }
}

// apiSlots returns the permits of the concurrency limit.
func (e *Engine) apiSlots() chan struct{} {
	e.mu.Lock()
	defer e.mu.Unlock()
	if e.api.slots == nil {
		e.api.slots = make(chan struct{}, e.cfg.httpConcurrency)
	}
	return e.api.slots
}

// apiServer is the HTTP port of one engine.
type apiServer struct {
	addr string       // fixed after the first listen
	srv  *http.Server // of the current listen cycle

	slots   chan struct{} // the concurrency limit's permits
	waiting atomic.Int64  // requests waiting for a permit
}

func init() {
	registerEngineTriggerType(engineTriggerType{
		id:          triggerHTTP,
		description: "HTTP API trigger",
		newProvider: func(*Engine) engineProvider {
			return &httpProvider{routes: make(map[string]*httpRoute), done: make(chan struct{})}
		},
	})
}

// listenAPI opens the HTTP port's listener, on the address of the previous
// cycle if there was one. Called with e.mu not held.
func (e *Engine) listenAPI() (net.Listener, error) {
	e.mu.Lock()
	addr := e.api.addr
	e.mu.Unlock()
	if addr == "" {
		addr = e.cfg.httpAddr
	}
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return nil, fmt.Errorf("http port: %w", err)
	}
	return ln, nil
}

// serveAPILocked starts serving the HTTP port on ln. Called with e.mu held
// by listen.
func (e *Engine) serveAPILocked(ln net.Listener) {
	e.api.addr = ln.Addr().String()
	srv := &http.Server{
		Handler:           http.HandlerFunc(e.serveAPI),
		ReadHeaderTimeout: e.cfg.handshakeTimeout,
		ErrorLog:          log.New(io.Discard, "", 0),
		ConnState: func(_ net.Conn, cs http.ConnState) {
			switch cs {
			case http.StateNew:
				e.wg.Add(1)
			case http.StateClosed, http.StateHijacked:
				e.wg.Done()
			}
		},
	}
	e.api.srv = srv
	e.wg.Add(1)
	go func() {
		defer e.wg.Done()
		srv.Serve(ln)
	}()
}

// httpRoute is an http binding, as the engine's router keeps it.
type httpRoute struct {
	bindingID  string
	method     string   // upper case
	path       string   // api_path as registered
	pattern    []string // the path's segments; ":x" segments are parameters
	function   string
	condition  string
	middleware []string
	metadata   json.RawMessage
}

// httpProvider is the double's iii-http worker: the route table of the
// "http" trigger type. Its fields are guarded by Engine.mu.
type httpProvider struct {
	routes map[string]*httpRoute // by routeKey
	done   chan struct{}         // closed when the engine state goes away
	closed bool
}

// httpMethods are the methods the engine's router serves; a binding with
// another method is accepted but never served.
var httpMethods = map[string]bool{"GET": true, "POST": true, "PUT": true, "DELETE": true, "PATCH": true, "HEAD": true, "OPTIONS": true}

func (p *httpProvider) close() {
	if !p.closed {
		p.closed = true
		close(p.done)
	}
}

// routeKey is the engine's key of a route: one route per method and path,
// leading slashes ignored.
func routeKey(method, path string) string {
	if path != "/" {
		path = strings.TrimLeft(path, "/")
	}
	return strings.ToUpper(method) + ":" + path
}

// axumPath is the path as the engine's router matches it: with a leading
// slash, parameters in place.
func axumPath(path string) string {
	if !strings.HasPrefix(path, "/") {
		return "/" + path
	}
	return path
}

// routeSignature is the route's shape: two routes with the same signature
// and different keys collide in the engine's router.
func routeSignature(method, path string) string {
	segs := strings.Split(axumPath(path), "/")
	for i, s := range segs {
		if strings.HasPrefix(s, ":") {
			segs[i] = "{}"
		}
	}
	return strings.ToUpper(method) + ":" + strings.Join(segs, "/")
}

func (p *httpProvider) bind(e *Engine, ob *outbox, st *state, b *binding) *wire.ErrorBody {
	var cfg map[string]json.RawMessage
	_ = json.Unmarshal(b.config, &cfg)
	str := func(k string) (string, bool) {
		var s string
		if raw, ok := cfg[k]; ok && json.Unmarshal(raw, &s) == nil {
			return s, true
		}
		return "", false
	}
	path, ok := str("api_path")
	if !ok {
		return &wire.ErrorBody{Code: "trigger_registration_failed", Message: "api_path is required for http triggers"}
	}
	method, ok := str("http_method")
	if !ok {
		method = "GET"
	}
	method = strings.ToUpper(method)
	r := &httpRoute{bindingID: b.id, method: method, path: path, function: b.function, metadata: b.metadata}
	r.condition, _ = str("condition_function_id")
	var mws []json.RawMessage
	if raw, ok := cfg["middleware_function_ids"]; ok && json.Unmarshal(raw, &mws) == nil {
		for _, m := range mws {
			var s string
			if json.Unmarshal(m, &s) == nil {
				r.middleware = append(r.middleware, s)
			}
		}
	}
	r.pattern = strings.Split(axumPath(path), "/")[1:]
	key := routeKey(method, path)
	sig := routeSignature(method, path)
	for k, o := range p.routes {
		if k != key && routeSignature(o.method, o.path) == sig {
			return &wire.ErrorBody{Code: "trigger_registration_failed", Message: fmt.Sprintf(
				"Route '%s %s' conflicts with already-registered route '%s %s': routes with identical structure but different path-parameter names are not supported",
				method, path, method, o.path)}
		}
	}
	if !httpMethods[method] {
		e.log.Warn("iiitest: http binding with a method the engine's router does not serve", "id", b.id, "method", method)
	}
	p.routes[key] = r
	return nil
}

func (p *httpProvider) unbind(e *Engine, ob *outbox, st *state, b *binding) {
	var cfg struct {
		APIPath    *string `json:"api_path"`
		HTTPMethod *string `json:"http_method"`
	}
	_ = json.Unmarshal(b.config, &cfg)
	path, method := "", "GET"
	if cfg.APIPath != nil {
		path = *cfg.APIPath
	}
	if cfg.HTTPMethod != nil {
		method = *cfg.HTTPMethod
	}
	key := routeKey(method, path)
	if r := p.routes[key]; r != nil && r.bindingID == b.id {
		delete(p.routes, key)
	}
}

// match finds the route for a request as the engine's router does: the
// path picks a route shape (a literal segment beats a parameter at the
// same place; a parameter matches one non-empty segment), then the method
// picks the route. found is false when no shape matches; route is nil when
// one does but not for this method (allow lists the methods it has).
func (p *httpProvider) match(method, path string) (route *httpRoute, allow []string, found bool) {
	segs := strings.Split(path, "/")[1:]
	var best []string
	var cands []*httpRoute
	for _, r := range p.routes {
		if !httpMethods[r.method] || !patternMatches(r.pattern, segs) {
			continue
		}
		switch c := comparePatterns(r.pattern, best); {
		case best == nil || c < 0:
			best, cands = r.pattern, []*httpRoute{r}
		case c == 0:
			cands = append(cands, r)
		}
	}
	if best == nil {
		return nil, nil, false
	}
	var get *httpRoute
	has := map[string]bool{}
	for _, r := range cands {
		if r.method == method {
			return r, nil, true
		}
		if r.method == "GET" {
			get = r
			has["HEAD"] = true
		}
		has[r.method] = true
	}
	for _, m := range []string{"GET", "HEAD", "POST", "PUT", "DELETE", "PATCH"} {
		if has[m] {
			allow = append(allow, m)
		}
	}
	if method == "HEAD" && get != nil {
		// The router serves HEAD with the GET route, whose handler then
		// finds no HEAD route.
		return &httpRoute{method: "HEAD", path: get.path}, nil, true
	}
	return nil, allow, true
}

func patternMatches(pattern, segs []string) bool {
	if len(pattern) != len(segs) {
		return false
	}
	for i, p := range pattern {
		if strings.HasPrefix(p, ":") {
			if segs[i] == "" {
				return false
			}
		} else if p != segs[i] {
			return false
		}
	}
	return true
}

// comparePatterns orders two matching patterns of the same length: the one
// with a literal segment first where they differ wins (-1 when a wins).
func comparePatterns(a, b []string) int {
	if b == nil {
		return -1
	}
	for i := range a {
		pa, pb := strings.HasPrefix(a[i], ":"), strings.HasPrefix(b[i], ":")
		switch {
		case !pa && pb:
			return -1
		case pa && !pb:
			return 1
		}
	}
	return 0
}

// pathParams extracts the parameters of a registered path from a request
// path, as the engine does: raw (not percent-decoded) segments, empty
// segments ignored on both sides.
func pathParams(registered, actual string) map[string]string {
	nonEmpty := func(s string) []string {
		var out []string
		for _, p := range strings.Split(s, "/") {
			if p != "" {
				out = append(out, p)
			}
		}
		return out
	}
	rs, as := nonEmpty(registered), nonEmpty(actual)
	params := map[string]string{}
	if len(rs) != len(as) {
		return params
	}
	for i, r := range rs {
		if name, ok := strings.CutPrefix(r, ":"); ok {
			params[name] = as[i]
		}
	}
	return params
}

// errorID is the engine's error_id of a 5xx answer: the low 48 bits of the
// wall clock in nanoseconds, in hex.
func errorID() string {
	return fmt.Sprintf("%x", uint64(time.Now().UnixNano())&0xFFFFFFFFFFFF)
}

// errorEnvelope is the engine's body of an error it raises itself.
func errorEnvelope(code, message, id string) []byte {
	b := []byte(`{"error":{"code":`)
	b = appendJSONString(b, code)
	if id != "" {
		b = append(b, `,"error_id":`...)
		b = appendJSONString(b, id)
	}
	b = append(b, `,"message":`...)
	b = appendJSONString(b, message)
	return append(b, "}}"...)
}

// writeJSON answers with a JSON body, as axum's Json does.
func writeJSON(w http.ResponseWriter, status int, body []byte) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	w.Write(body)
}

// apiOutcome is the outcome of a function called for a request.
type apiOutcome struct {
	res  json.RawMessage
	errb *wire.ErrorBody
}

// apiCall invokes fnID like the engine's HTTP worker does (an engine call, with
// the binding's metadata) and returns the channel its outcome arrives on.
func (e *Engine) apiCall(fnID string, data, metadata json.RawMessage, traceparent, baggage string) <-chan apiOutcome {
	ch := make(chan apiOutcome, 1)
	ob := outbox{}
	e.mu.Lock()
	e.callLocked(&ob, e.st, fnID, data, metadata, traceparent, baggage, func(res json.RawMessage, errb *wire.ErrorBody) {
		ch <- apiOutcome{bytes.Clone(res), errb}
	})
	e.mu.Unlock()
	e.flush(&ob)
	return ch
}

// apiRequest is the request envelope the engine hands an http-bound
// function (its HttpRequest).
type apiRequest struct {
	QueryParams map[string]string `json:"query_params"`
	PathParams  map[string]string `json:"path_params"`
	Headers     map[string]string `json:"headers"`
	Path        string            `json:"path"`
	Method      string            `json:"method"`
	Body        json.RawMessage   `json:"body"`
	Trigger     *apiTrigger       `json:"trigger,omitempty"`
	RequestBody *channelRef       `json:"request_body,omitempty"`
	Response    *channelRef       `json:"response,omitempty"`
}

type apiTrigger struct {
	Type   string `json:"type"`
	Path   string `json:"path"`
	Method string `json:"method"`
}

type channelRef struct {
	ChannelID string `json:"channel_id"`
	AccessKey string `json:"access_key"`
	Direction string `json:"direction"`
}

// requestHeaders are the request's headers as the engine passes them:
// lower-case names, the last value of a repeated header.
func requestHeaders(r *http.Request) map[string]string {
	h := make(map[string]string, len(r.Header)+1)
	if r.Host != "" {
		h["host"] = r.Host
	}
	for k, vs := range r.Header {
		if len(vs) > 0 {
			h[strings.ToLower(k)] = vs[len(vs)-1]
		}
	}
	if te := r.TransferEncoding; len(te) > 0 { // net/http takes it out of Header
		h["transfer-encoding"] = te[len(te)-1]
	}
	return h
}

// queryParams are the query parameters as the engine decodes them
// (application/x-www-form-urlencoded: "+" is a space, a malformed escape
// stays as it is, invalid UTF-8 becomes U+FFFD; the last value of a
// repeated name wins).
func queryParams(raw string) map[string]string {
	q := map[string]string{}
	for raw != "" {
		var kv string
		kv, raw, _ = strings.Cut(raw, "&")
		if kv == "" {
			continue
		}
		k, v, _ := strings.Cut(kv, "=")
		q[formDecode(k)] = formDecode(v)
	}
	return q
}

func formDecode(s string) string {
	b := make([]byte, 0, len(s))
	for i := 0; i < len(s); i++ {
		switch c := s[i]; {
		case c == '+':
			b = append(b, ' ')
		case c == '%' && i+2 < len(s) && isHex(s[i+1]) && isHex(s[i+2]):
			b = append(b, unhex(s[i+1])<<4|unhex(s[i+2]))
			i += 2
		default:
			b = append(b, c)
		}
	}
	return strings.ToValidUTF8(string(b), "\uFFFD")
}

func isHex(c byte) bool {
	return '0' <= c && c <= '9' || 'a' <= c && c <= 'f' || 'A' <= c && c <= 'F'
}

func unhex(c byte) byte {
	switch {
	case c <= '9':
		return c - '0'
	case c >= 'a':
		return c - 'a' + 10
	}
	return c - 'A' + 10
}

// serveAPI serves one request on the HTTP port, as the engine's iii-http
// worker does.
func (e *Engine) serveAPI(w http.ResponseWriter, r *http.Request) {
	// The engine's concurrency limit is its outermost layer: a request
	// waits for a permit before anything else, its timeout included, and
	// gives it back once its response starts.
	slots := e.apiSlots()
	e.api.waiting.Add(1)
	select {
	case slots <- struct{}{}:
		e.api.waiting.Add(-1)
	case <-r.Context().Done():
		e.api.waiting.Add(-1)
		return
	}
	var releaseOnce sync.Once
	release := func() { releaseOnce.Do(func() { <-slots }) }
	defer release()
	timer := time.NewTimer(e.cfg.httpTimeout)
	defer timer.Stop()
	timeout := func() {
		w.WriteHeader(http.StatusGatewayTimeout)
	}
	// The engine's permissive CORS layer (its default) marks every answer.
	h := w.Header()
	h.Set("Vary", "origin, access-control-request-method, access-control-request-headers")
	h.Set("Access-Control-Allow-Origin", "*")
	e.mu.Lock()
	var p *httpProvider
	if tt := e.st.ttypes[triggerHTTP]; tt != nil {
		p, _ = tt.engine.(*httpProvider)
	}
	var route *httpRoute
	var allow []string
	found := false
	if p != nil {
		route, allow, found = p.match(r.Method, r.URL.EscapedPath())
	}
	var rt httpRoute
	var engineGone chan struct{}
	if route != nil {
		rt = *route
		engineGone = p.done
	}
	e.mu.Unlock()
	if r.Method == "OPTIONS" {
		// The CORS layer answers every OPTIONS request as a preflight:
		// OPTIONS routes are never called.
		h.Set("Access-Control-Allow-Headers", "*")
		h.Set("Access-Control-Allow-Methods", "*")
		if found && route == nil {
			h.Set("Allow", strings.Join(allow, ","))
		}
		w.WriteHeader(http.StatusOK)
		return
	}
	h.Set("Access-Control-Expose-Headers", "*")
	switch {
	case found && route == nil:
		h.Set("Allow", strings.Join(allow, ","))
		w.WriteHeader(http.StatusMethodNotAllowed)
		return
	case !found || rt.function == "":
		writeJSON(w, http.StatusNotFound, errorEnvelope("NOT_FOUND", "Not Found", ""))
		return
	}
	query := queryParams(r.URL.RawQuery)
	actual := r.URL.EscapedPath()
	req := apiRequest{
		QueryParams: query,
		PathParams:  pathParams(rt.path, actual),
		Headers:     requestHeaders(r),
		Path:        rt.path,
		Method:      r.Method,
		Body:        json.RawMessage("null"),
		Trigger:     &apiTrigger{Type: "http", Path: rt.path, Method: r.Method},
	}
	// The engine's HTTP span is the parent of the calls it makes; the
	// request's baggage goes along.
	traceparent := childTraceparent(r.Header.Get("traceparent"))
	baggage := strings.TrimSpace(r.Header.Get("baggage"))
	// done ends every wait: the engine's state is gone, or the client (or
	// the server's shutdown) ended the request.
	done := make(chan struct{})
	// (The request's context ends when serveAPI returns, which ends the
	// goroutine.)
	stopDone := context.AfterFunc(r.Context(), func() { close(done) })
	go func() {
		select {
		case <-engineGone:
			if stopDone() {
				close(done)
			}
		case <-done:
		}
	}()

	// The two channels: the engine writes the request body into one and
	// reads the response from the other.
	reqCh, resCh := e.newChannel(64), e.newChannel(64)
	e.mu.Lock()
	reqCh.writerTaken = true
	resCh.readerTaken = true
	e.mu.Unlock()
	removeChannels := func() {
		e.mu.Lock()
		delete(e.st.channels, reqCh.id)
		delete(e.st.channels, resCh.id)
		e.mu.Unlock()
	}
	// When the request is over, nobody reads the response channel any more.
	defer resCh.markReaderGone()
	req.RequestBody = &channelRef{reqCh.id, reqCh.key, "read"}
	req.Response = &channelRef{resCh.id, resCh.key, "write"}

	// The request body goes to the request_body channel: parsed too when
	// it is JSON, else streamed by a pump goroutine. When the request ends
	// the pump discards the rest (as net/http would); an aborted request
	// stops it at once.
	var pump sync.WaitGroup
	stopPump := make(chan struct{})
	aborting := false
	defer func() {
		close(stopPump)
		if aborting {
			http.NewResponseController(w).SetReadDeadline(time.Now())
		}
		pump.Wait()
	}()
	if strings.Contains(r.Header.Get("Content-Type"), "application/json") {
		body, _ := io.ReadAll(r.Body)
		if len(body) > 0 {
			reqCh.items <- chItem{binary: true, data: body}
		}
		reqCh.closeItems()
		if json.Valid(body) {
			req.Body = canonicalJSON(body)
		}
	} else if r.Body == nil || r.Body == http.NoBody {
		reqCh.closeItems()
	} else {
		pump.Add(1)
		go func() {
			defer pump.Done()
			defer reqCh.closeItems()
			buf := make([]byte, 32<<10)
			stopped := false
			for {
				n, err := r.Body.Read(buf)
				if n > 0 && !stopped {
					select {
					case reqCh.items <- chItem{binary: true, data: bytes.Clone(buf[:n])}:
					case <-reqCh.readerGone:
						stopped = true
					case <-stopPump:
						stopped = true
					}
				}
				if err != nil {
					return
				}
			}
		}()
	}
	abort := func() {
		aborting = true
		panic(http.ErrAbortHandler) // the connection just drops
	}

	if rt.condition != "" {
		cond := req
		cond.RequestBody, cond.Response = nil, nil
		select {
		case o := <-e.apiCall(rt.condition, marshal(cond), nil, traceparent, baggage):
			switch {
			case o.errb != nil:
				removeChannels()
				writeJSON(w, http.StatusInternalServerError, errorEnvelope(o.errb.Code, o.errb.Message, errorID()))
				return
			case bytes.Equal(bytes.TrimSpace(o.res), []byte("false")):
				removeChannels()
				writeJSON(w, http.StatusUnprocessableEntity, []byte(`{"error":{"code":"CONDITION_NOT_MET","message":"Request condition not met"},"skipped":true}`))
				return
			}
		case <-timer.C:
			timeout()
			return
		case <-done:
			abort()
		}
	}
	for _, mw := range rt.middleware {
		if !e.runMiddleware(w, mw, &req, traceparent, baggage, timer, done, abort) {
			removeChannels()
			return
		}
	}

	outcome := e.apiCall(rt.function, marshal(req), rt.metadata, traceparent, baggage)
	var status = 200
	headers := map[string]string{}
	var first []byte
	var pending *apiOutcome
	called := false
	// Phase 1: the response channel and the call race; an item that is
	// ready goes first.
phase1:
	for {
		if pending == nil {
			select {
			case o := <-outcome:
				pending = &o
			default:
			}
		}
		select {
		case it, ok := <-resCh.items:
			if !ok {
				break phase1
			}
			if !it.binary {
				applyControl(it.data, &status, headers)
				continue
			}
			first = it.data
			break phase1
		default:
		}
		if pending != nil {
			o := *pending
			switch {
			case o.errb != nil:
				removeChannels()
				writeJSON(w, http.StatusInternalServerError, errorEnvelope(o.errb.Code, o.errb.Message, errorID()))
				return
			case !wire.IsNull(o.res) && len(o.res) > 0:
				removeChannels()
				writeResult(w, o.res)
				return
			}
			called = true
			break phase1
		}
		select {
		case o := <-outcome:
			pending = &o
		case it, ok := <-resCh.items:
			if !ok {
				break phase1
			}
			if !it.binary {
				applyControl(it.data, &status, headers)
				continue
			}
			first = it.data
			break phase1
		case <-timer.C:
			timeout()
			return
		case <-done:
			abort()
		}
	}
	// Phase 2: the call returned nothing: the response comes from the
	// channel alone.
	if called {
	drain:
		for first == nil {
			select {
			case it, ok := <-resCh.items:
				if !ok {
					break drain
				}
				if !it.binary {
					applyControl(it.data, &status, headers)
					continue
				}
				first = it.data
			case <-timer.C:
				timeout()
				return
			case <-done:
				abort()
			}
		}
	}
	removeChannels()
	h["Content-Type"] = nil // no sniffing: the engine sets only what it was told
	for k, v := range headers {
		if validHeader(k, v) {
			h.Set(k, v)
		}
	}
	w.WriteHeader(status)
	release()
	rc := http.NewResponseController(w)
	if first != nil {
		if _, err := w.Write(first); err != nil {
			return
		}
		rc.Flush()
	}
	for {
		select {
		case it, ok := <-resCh.items:
			if !ok {
				return
			}
			if !it.binary {
				continue
			}
			if _, err := w.Write(it.data); err != nil {
				return
			}
			rc.Flush()
		case <-done:
			abort()
		case <-r.Context().Done():
			return
		}
	}
}

// applyControl applies a text message of the response channel:
// set_status (100-599) or set_headers.
func applyControl(msg []byte, status *int, headers map[string]string) {
	var c struct {
		Type       string                     `json:"type"`
		StatusCode json.RawMessage            `json:"status_code"`
		Headers    map[string]json.RawMessage `json:"headers"`
	}
	if json.Unmarshal(msg, &c) != nil {
		return
	}
	switch c.Type {
	case "set_status":
		var code uint64
		if json.Unmarshal(c.StatusCode, &code) == nil && code >= 100 && code <= 599 {
			*status = int(code)
		}
	case "set_headers":
		for k, raw := range c.Headers {
			var v string
			if json.Unmarshal(raw, &v) == nil {
				headers[k] = v
			}
		}
	}
}

func validHeader(k, v string) bool {
	if k == "" {
		return false
	}
	for i := 0; i < len(k); i++ {
		c := k[i]
		if c <= ' ' || c >= 0x7f || strings.IndexByte("\"(),/:;<=>?@[\\]{}", c) >= 0 {
			return false
		}
	}
	for i := 0; i < len(v); i++ {
		if c := v[i]; (c < ' ' && c != '\t') || c == 0x7f {
			return false
		}
	}
	return true
}

// writeResult answers with a function's result envelope (status_code,
// headers, body), as the engine's HttpResponse does: the status defaults
// to 200; headers are "Name: value" strings or an object of strings; a
// string body with a Content-Type is sent as is, a null one as nothing,
// any other body as JSON (with Content-Type application/json unless one
// was given).
func writeResult(w http.ResponseWriter, res json.RawMessage) {
	var env map[string]json.RawMessage
	if json.Unmarshal(res, &env) != nil {
		env = nil
	}
	status := 200
	if raw, ok := env["status_code"]; ok {
		var n uint64
		if json.Unmarshal(raw, &n) == nil {
			status = int(uint16(n))
		}
	}
	if status < 100 || status > 999 {
		status = 200
	}
	type kv struct{ k, v string }
	var hs []kv
	if raw, ok := env["headers"]; ok {
		var arr []json.RawMessage
		var obj map[string]json.RawMessage
		switch {
		case json.Unmarshal(raw, &arr) == nil && arr != nil:
			for _, it := range arr {
				var line string
				if json.Unmarshal(it, &line) != nil {
					continue
				}
				k, v, ok := strings.Cut(line, ":")
				if k = strings.TrimSpace(k); ok && k != "" {
					hs = append(hs, kv{k, strings.TrimSpace(v)})
				}
			}
		case json.Unmarshal(raw, &obj) == nil && obj != nil:
			for _, k := range sortedKeys(obj) {
				var v string
				if json.Unmarshal(obj[k], &v) == nil {
					hs = append(hs, kv{k, v})
				}
			}
		}
	}
	body, ok := env["body"]
	if !ok {
		body = json.RawMessage("{}")
	}
	userCT := ""
	for _, h := range hs {
		if strings.EqualFold(h.k, "content-type") {
			userCT = h.v
			break
		}
	}
	var out []byte
	defaultCT := false
	var s string
	switch {
	case userCT != "" && json.Unmarshal(body, &s) == nil && bytes.HasPrefix(bytes.TrimSpace(body), []byte(`"`)):
		out = []byte(s)
	case userCT != "" && wire.IsNull(body):
	case userCT != "" && !strings.Contains(strings.ToLower(userCT), "application/json"):
		out = canonicalJSON(body)
	default:
		out = canonicalJSON(body)
		defaultCT = true
	}
	h := w.Header()
	h["Content-Type"] = nil
	ctSet := false
	for _, x := range hs {
		if !validHeader(x.k, x.v) {
			continue
		}
		if strings.EqualFold(x.k, "content-type") {
			if !ctSet {
				h.Del("Content-Type")
			}
			ctSet = true
		}
		h.Add(x.k, x.v)
	}
	if !ctSet && defaultCT {
		h.Set("Content-Type", "application/json")
	}
	w.WriteHeader(status)
	w.Write(out)
}

// runMiddleware runs a route's middleware function; it answers the request
// and returns false when the middleware responds, fails or times out.
func (e *Engine) runMiddleware(w http.ResponseWriter, fnID string, req *apiRequest, traceparent, baggage string, timer *time.Timer, done <-chan struct{}, abort func()) bool {
	in := marshal(struct {
		Phase   string `json:"phase"`
		Request struct {
			PathParams  map[string]string `json:"path_params"`
			QueryParams map[string]string `json:"query_params"`
			Headers     map[string]string `json:"headers"`
			Method      string            `json:"method"`
		} `json:"request"`
		Context struct{} `json:"context"`
	}{Phase: "preHandler", Request: struct {
		PathParams  map[string]string `json:"path_params"`
		QueryParams map[string]string `json:"query_params"`
		Headers     map[string]string `json:"headers"`
		Method      string            `json:"method"`
	}{req.PathParams, req.QueryParams, req.Headers, req.Method}})
	var o apiOutcome
	select {
	case o = <-e.apiCall(fnID, in, nil, traceparent, baggage):
	case <-timer.C:
		writeJSON(w, http.StatusGatewayTimeout, errorEnvelope("MIDDLEWARE_TIMEOUT", "Middleware timeout", ""))
		return false
	case <-done:
		abort()
		return false
	}
	if o.errb != nil {
		writeJSON(w, http.StatusInternalServerError, errorEnvelope(o.errb.Code, o.errb.Message, errorID()))
		return false
	}
	var res struct {
		Action   *string `json:"action"`
		Response *struct {
			StatusCode json.RawMessage `json:"status_code"`
			Body       json.RawMessage `json:"body"`
			Headers    json.RawMessage `json:"headers"`
		} `json:"response"`
	}
	if json.Unmarshal(o.res, &res) != nil || res.Action == nil || *res.Action != "respond" {
		return true
	}
	status, body := 200, json.RawMessage("null")
	var hs map[string]string
	if rp := res.Response; rp != nil {
		var n uint64
		if json.Unmarshal(rp.StatusCode, &n) == nil {
			status = int(uint16(n))
		}
		if len(rp.Body) > 0 {
			body = rp.Body
		}
		if json.Unmarshal(rp.Headers, &hs) != nil {
			hs = nil
		}
	}
	if status < 100 || status > 999 {
		status = 200
	}
	h := w.Header()
	h.Set("Content-Type", "application/json")
	for _, k := range sortedKeys(hs) {
		if validHeader(k, hs[k]) {
			h.Set(k, hs[k])
		}
	}
	w.WriteHeader(status)
	w.Write(canonicalJSON(body))
	return false
}
