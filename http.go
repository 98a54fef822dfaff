package iii

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"runtime/debug"
	"slices"
	"strconv"
	"strings"
	"sync"
	"unicode/utf8"

	"github.com/iii-go/iii/connection/wire"
)

// ErrInvalidHTTPConfig: an HTTP route (HandleHTTP) or an HTTP-invoked
// function (RegisterHTTPFunction) is malformed: no handler, an empty path,
// a method or URL the engine does not take, an incomplete HTTPAuth.
var ErrInvalidHTTPConfig = errors.New("iii: invalid HTTP route or invocation")

// HTTPRequest is what the engine's http trigger (TriggerTypeHTTP) delivers
// to its function for each request (engine v0.22.1). Register a function
// taking it (RegisterFunction[HTTPRequest, HTTPResponse]) to handle the raw
// envelope; HandleHTTP turns it into an *http.Request instead.
type HTTPRequest struct {
	// QueryParams are the query parameters, decoded; of a repeated one the
	// engine keeps one value.
	QueryParams map[string]string `json:"query_params"`
	// PathParams are the route's path parameters ("/orders/:id" gives
	// "id"), as they appear in the request's path (percent-encoded).
	PathParams map[string]string `json:"path_params"`
	// Headers are the request headers, names in lower case; of a repeated
	// one the engine keeps one value.
	Headers map[string]string `json:"headers"`
	// Path is the route as registered (e.g. "/orders/:id"), not the
	// request's path.
	Path   string `json:"path"`
	Method string `json:"method"`
	// Body is the request body parsed as JSON when its Content-Type is
	// application/json (null when it does not parse), else null. The raw
	// bytes of any body arrive through RequestBody.
	Body json.RawMessage `json:"body"`
	// Trigger says which trigger delivered the request.
	Trigger *HTTPTriggerInfo `json:"trigger,omitempty"`
	// RequestBody is the read end of a channel carrying the request body's
	// bytes (open it with III.OpenChannelReader). The engine drops it once
	// the response has started.
	RequestBody StreamChannelRef `json:"request_body"`
	// Response is the write end of a channel for a streamed response: send
	// {"type":"set_status","status_code":N} and
	// {"type":"set_headers","headers":{...}} (ChannelWriter.SendMessage),
	// then the body as binary data, close it, and return no result. The
	// engine starts the response at the first binary data; a function that
	// returns an HTTPResponse instead leaves it unused.
	Response StreamChannelRef `json:"response"`
}

// HTTPTriggerInfo is the "trigger" member of an HTTPRequest.
type HTTPTriggerInfo struct {
	Type   string `json:"type"` // "http"
	Path   string `json:"path,omitempty"`
	Method string `json:"method,omitempty"`
}

// HTTPResponse is a whole response returned by the function of an http
// trigger. The engine answers with StatusCode (0 means 200), Headers and
// Body: with no Content-Type header, Body is sent as JSON with Content-Type
// application/json; with one, a string Body is sent as it is (other values
// as JSON text).
type HTTPResponse struct {
	StatusCode int               `json:"status_code,omitempty"`
	Headers    map[string]string `json:"headers,omitempty"`
	Body       any               `json:"body,omitempty"`
}

// The HTTP methods the engine's http trigger routes.
var httpRouteMethods = []string{"GET", "POST", "PUT", "DELETE", "PATCH", "HEAD", "OPTIONS"}

// HandleHTTP serves HTTP requests to method and path on the engine's HTTP
// port with h: it registers function functionID and binds it to the
// engine's http trigger (TriggerTypeHTTP) with HTTPConfig{APIPath: path,
// Method: method}. path takes path parameters as ":name"
// ("/orders/:id"); method is one of GET, POST, PUT, DELETE, PATCH, HEAD
// and OPTIONS (empty means GET).
//
// Each request reaches h as an *http.Request: its method, URL (path and
// query), Host, headers and body, with the path parameters in r.PathValue
// and r.Pattern in ServeMux syntax ("GET /orders/{id}"). Its context is the
// invocation's. What h writes (status, headers, body) is the response, so
// any net/http router or middleware works unchanged; an http.ServeMux
// matches the request path as usual. The engine passes one value per
// header and query parameter; path parameters arrive percent-decoded in
// r.PathValue.
//
// Routing happens twice: the engine routes a request to the function of
// the route it matches (method and path given here), and h then routes it
// again by its own rules. One handler (a ServeMux) may serve every route
// of a worker, as in the README, when its patterns describe the same
// routes ("GET /orders/{id}" for GET "/orders/:id"); if they disagree, h
// answers what it would answer any request it does not route (a
// ServeMux: 404 or 405). The engine answers by itself what reaches no
// route: 404 with {"error":{"code":"NOT_FOUND",...}}, 405 with Allow for
// a path served under other methods, 200 to every OPTIONS (CORS
// preflight); it adds CORS headers to every response, and sends a HEAD
// request to a HEAD route only (engine v0.22.1 answers HEAD for a path
// with only a GET route with 404).
//
// A response h completes without flushing, with a body of valid UTF-8 that
// fits in one frame (the result's frame, which also carries the
// invocation's traceparent and baggage), returns in the invocation's
// result. A response h flushes (http.Flusher, http.ResponseController),
// one larger than 1 MiB (or than the frame limit,
// InitOptions.MaxMessageSize), one with a binary body, and one with
// neither body nor Content-Type, is streamed through
// the engine's response channel: status and headers first, then the body
// as it is written. A stream costs a WebSocket to the engine and about
// 10 ms to end (the engine drains a channel for 10 ms after its Close):
// give a bodiless response (a 204) a Content-Type to keep it in the
// result. In a streamed response, a header with several values goes out
// as one line, joined by ", ". Read the request body before
// writing the response's: the engine drops the request body's channel
// once the response has started.
//
// The request body is read on first use, and reading more than
// InitOptions.MaxMessageSize bytes fails with an *http.MaxBytesError. A
// read is bounded by the invocation: once its context ends (the socket it
// came on dies, the worker shuts down), Read returns a *ChannelError
// matching the context's error (context.Canceled) and its cause. As
// with net/http, a Content-Type not set by h is sniffed from the body. A
// panic in h is logged with its stack and answered 500 Internal Server
// Error (the panic value and stack are sent only with
// InitOptions.SendPanicStacks); the worker keeps serving.
//
// The returned Trigger is the route: its Unregister removes the route and
// the function. Both are re-registered on every reconnect until then. The
// engine acknowledges nothing on success; a route it refuses (one that
// clashes with another worker's) is reported by the Trigger's Err and
// WaitError. It handles a worker's messages in order, so a call made
// after HandleHTTP returns reaches it after the route.
func HandleHTTP(w *III, functionID, method, path string, h http.Handler, opts ...FunctionOption) (*Trigger, error) {
	if err := w.err(); err != nil {
		return nil, err
	}
	if h == nil {
		return nil, fmt.Errorf("%w: nil handler for route %s %s", ErrInvalidHTTPConfig, method, path)
	}
	method = strings.ToUpper(method)
	if method == "" {
		method = http.MethodGet
	}
	if !slices.Contains(httpRouteMethods, method) {
		return nil, fmt.Errorf("%w: method %q (the engine routes %s)", ErrInvalidHTTPConfig, method, strings.Join(httpRouteMethods, ", "))
	}
	if strings.Trim(path, "/") == "" && path != "/" {
		return nil, fmt.Errorf("%w: empty path", ErrInvalidHTTPConfig)
	}
	s := &httpServer{w: w, h: h, method: method, route: path}
	ref, err := w.register(functionID, s.serve, schemaOf[HTTPRequest], schemaOf[HTTPResponse], opts)
	if err != nil {
		return nil, err
	}
	t, err := w.RegisterTrigger(TriggerInput{Type: TriggerTypeHTTP, FunctionID: functionID,
		Config: HTTPConfig{APIPath: path, Method: method}})
	if err != nil {
		_ = ref.Unregister()
		return nil, err
	}
	t.owned = ref
	return t, nil
}

// httpServer serves one route.
type httpServer struct {
	w      *III
	h      http.Handler
	method string
	route  string
}

// httpBufferSize bounds the body a response holds back to send in the
// invocation's result; a larger one is streamed.
const httpBufferSize = 1 << 20

// serve runs one request.
func (s *httpServer) serve(ctx context.Context, m *wire.InvokeFunction) (out json.RawMessage, err error) {
	var in HTTPRequest
	if err := json.Unmarshal(m.Data, &in); err != nil {
		return nil, decodeError(m.FunctionID, err)
	}
	rw := &httpResponseWriter{s: s, ctx: ctx, ref: in.Response, header: http.Header{}, head: in.Method == http.MethodHead}
	rw.limit = min(httpBufferSize, s.w.maxMessage/2)
	r := s.request(ctx, &in, rw)
	defer r.Body.Close()
	if p := s.run(r, rw); p != nil {
		return rw.panicked(m.FunctionID, p)
	}
	return rw.finish(m)
}

// run calls the handler, returning its panic, if any.
func (s *httpServer) run(r *http.Request, rw *httpResponseWriter) (p *panicError) {
	defer func() {
		if v := recover(); v != nil {
			p = &panicError{value: v, stack: debug.Stack()}
		}
	}()
	s.h.ServeHTTP(rw, r)
	return nil
}

// request builds the *http.Request of an envelope.
func (s *httpServer) request(ctx context.Context, in *HTTPRequest, rw http.ResponseWriter) *http.Request {
	method, route := in.Method, in.Path
	if method == "" {
		method = s.method
	}
	if route == "" {
		route = s.route
	}
	path, rawPath := fillRoute(route, in.PathParams)
	u := &url.URL{Path: path}
	if rawPath != path {
		u.RawPath = rawPath
	}
	if len(in.QueryParams) > 0 {
		q := make(url.Values, len(in.QueryParams))
		for k, v := range in.QueryParams {
			q[k] = []string{v}
		}
		u.RawQuery = q.Encode()
	}
	r := &http.Request{Method: method, URL: u, Proto: "HTTP/1.1", ProtoMajor: 1, ProtoMinor: 1,
		Header: make(http.Header, len(in.Headers)), RequestURI: u.RequestURI(), Body: http.NoBody}
	for k, v := range in.Headers {
		if strings.EqualFold(k, "host") {
			r.Host = v
			continue
		}
		r.Header[http.CanonicalHeaderKey(k)] = []string{v}
	}
	r = r.WithContext(ctx)
	for k, v := range in.PathParams {
		if d, err := url.PathUnescape(v); err == nil {
			v = d
		}
		r.SetPathValue(k, v)
	}
	r.Pattern = method + " " + goPattern(route)
	// A body without a length follows a Transfer-Encoding, or comes over
	// HTTP/2 with any method but those that take none.
	switch cl := r.Header.Get("Content-Length"); {
	case cl != "":
		n, err := strconv.ParseInt(cl, 10, 64)
		if err != nil || n <= 0 {
			return r
		}
		r.ContentLength = n
	case r.Header.Get("Transfer-Encoding") != "":
		r.ContentLength = -1
	case method == http.MethodGet || method == http.MethodHead || method == http.MethodDelete || method == http.MethodOptions:
		return r
	default:
		r.ContentLength = -1
	}
	r.Body = http.MaxBytesReader(rw, &channelBody{w: s.w, ctx: ctx, ref: in.RequestBody}, int64(s.w.maxMessage))
	return r
}

// fillRoute puts the path parameters into route: the request's path,
// decoded and as sent.
func fillRoute(route string, params map[string]string) (path, raw string) {
	segs := strings.Split(strings.TrimPrefix(route, "/"), "/")
	dec := make([]string, len(segs))
	for i, seg := range segs {
		if name, ok := strings.CutPrefix(seg, ":"); ok {
			if v, ok := params[name]; ok {
				segs[i] = v
			}
		}
		dec[i] = segs[i]
		if d, err := url.PathUnescape(segs[i]); err == nil {
			dec[i] = d
		}
	}
	return "/" + strings.Join(dec, "/"), "/" + strings.Join(segs, "/")
}

// goPattern writes an engine route in ServeMux syntax: ":id" as "{id}".
func goPattern(route string) string {
	segs := strings.Split(route, "/")
	for i, seg := range segs {
		if name, ok := strings.CutPrefix(seg, ":"); ok {
			segs[i] = "{" + name + "}"
		}
	}
	p := strings.Join(segs, "/")
	if !strings.HasPrefix(p, "/") {
		p = "/" + p
	}
	return p
}

// channelBody is a request body read from the engine's channel, opened on
// first read. It is bounded by the invocation's context: once that ends
// (the socket the invocation came on dies, the worker shuts down), the
// channel is closed and Read returns the context's error, even if the
// engine keeps the channel open.
type channelBody struct {
	w   *III
	ctx context.Context
	ref StreamChannelRef

	mu     sync.Mutex
	r      *ChannelReader
	stop   func() bool // unregisters the close on the context's end
	err    error
	closed bool
}

func (b *channelBody) Read(p []byte) (int, error) {
	b.mu.Lock()
	r, err := b.r, b.err
	if r == nil && err == nil {
		switch {
		case b.closed:
			err = http.ErrBodyReadAfterClose
		case b.ctx.Err() != nil:
			err = b.ctxErr()
		default:
			r, err = b.w.OpenChannelReader(b.ctx, b.ref)
			if err == nil {
				b.stop = context.AfterFunc(b.ctx, func() { _ = r.Close() })
			}
			b.r, b.err = r, err
		}
	}
	b.mu.Unlock()
	if err != nil {
		if b.ctx.Err() != nil {
			return 0, b.ctxErr()
		}
		return 0, err
	}
	n, err := r.Read(p)
	if err != nil && err != io.EOF && b.ctx.Err() != nil {
		// The reader was closed because the invocation ended.
		err = b.ctxErr()
	}
	return n, err
}

// ctxErr is the error of a read cut by the end of the invocation: it
// matches the context's error and its cause (why the socket died).
func (b *channelBody) ctxErr() error {
	err := b.ctx.Err()
	if cause := context.Cause(b.ctx); cause != nil && cause != err {
		err = fmt.Errorf("%w: %w", err, cause)
	}
	return &ChannelError{Op: "read", ChannelID: b.ref.ChannelID, Dir: dirOf(ChannelRead), Err: err}
}

func (b *channelBody) Close() error {
	b.mu.Lock()
	r, stop := b.r, b.stop
	b.closed = true
	b.mu.Unlock()
	if stop != nil {
		stop()
	}
	if r != nil {
		return r.Close()
	}
	return nil
}

// httpResponseWriter is the http.ResponseWriter of one request: it holds
// the response back until it is complete (then it goes in the result) or
// it streams it through the response channel.
type httpResponseWriter struct {
	s    *httpServer
	ctx  context.Context
	ref  StreamChannelRef
	head bool // a HEAD request: the body is discarded

	header      http.Header
	sent        http.Header // the headers as of WriteHeader
	status      int
	wroteHeader bool
	buf         bytes.Buffer
	limit       int

	streaming bool
	cw        *ChannelWriter // nil if it did not open
	bw        *bufio.Writer
	err       error // the stream's first error
}

var (
	_ http.Flusher                    = (*httpResponseWriter)(nil)
	_ interface{ FlushError() error } = (*httpResponseWriter)(nil)
)

func (rw *httpResponseWriter) Header() http.Header { return rw.header }

func (rw *httpResponseWriter) WriteHeader(code int) {
	if code < 100 || code > 999 {
		panic(fmt.Sprintf("invalid WriteHeader code %v", code)) // as net/http
	}
	if rw.wroteHeader {
		rw.s.w.log.Debug("iii: superfluous WriteHeader call in an HTTP handler", "route", rw.s.route, "code", code)
		return
	}
	if code < 200 {
		return // the engine has no way to send informational responses
	}
	rw.status, rw.wroteHeader = code, true
	rw.sent = rw.header.Clone()
}

// bodyAllowed reports whether the status permits a body, as net/http.
func (rw *httpResponseWriter) bodyAllowed() bool {
	return rw.status != http.StatusNoContent && rw.status != http.StatusNotModified
}

func (rw *httpResponseWriter) Write(p []byte) (int, error) {
	if !rw.wroteHeader {
		rw.WriteHeader(http.StatusOK)
	}
	if !rw.bodyAllowed() {
		return 0, http.ErrBodyNotAllowed
	}
	if rw.head {
		return len(p), nil
	}
	if rw.streaming {
		if rw.err != nil {
			return 0, rw.err
		}
		n, err := rw.bw.Write(p)
		if err != nil {
			rw.err = err
		}
		return n, err
	}
	rw.buf.Write(p)
	if rw.buf.Len() > rw.limit {
		if err := rw.stream(); err != nil {
			return 0, err
		}
	}
	return len(p), nil
}

// Flush sends the status, the headers and the body written so far.
func (rw *httpResponseWriter) Flush() { _ = rw.FlushError() }

// FlushError is Flush reporting the stream's error (http.ResponseController).
func (rw *httpResponseWriter) FlushError() error {
	if !rw.wroteHeader {
		rw.WriteHeader(http.StatusOK)
	}
	if !rw.streaming {
		return rw.stream()
	}
	if rw.err == nil {
		rw.err = rw.bw.Flush()
	}
	return rw.err
}

// sniff sets the Content-Type a handler left unset, as net/http does.
func (rw *httpResponseWriter) sniff() {
	if _, set := rw.sent["Content-Type"]; !set && rw.buf.Len() > 0 && rw.bodyAllowed() {
		rw.sent.Set("Content-Type", http.DetectContentType(rw.buf.Bytes()[:min(rw.buf.Len(), 512)]))
	}
}

// stream starts the streamed response: status, headers, then what is
// buffered.
func (rw *httpResponseWriter) stream() error {
	rw.sniff()
	rw.streaming = true
	cw, err := rw.s.w.OpenChannelWriter(rw.ctx, rw.ref)
	if err != nil {
		rw.err = err
		rw.bw = bufio.NewWriterSize(io.Discard, 16)
		return err
	}
	rw.cw, rw.bw = cw, bufio.NewWriterSize(ctxWriter{cw, rw.ctx}, 64<<10)
	headers := make(map[string]string, len(rw.sent))
	for k, vs := range rw.sent {
		if len(vs) > 0 {
			headers[k] = strings.Join(vs, ", ")
		}
	}
	if err := cw.SendMessageContext(rw.ctx, map[string]any{"type": "set_status", "status_code": rw.status}); err != nil {
		rw.err = err
		return err
	}
	if len(headers) > 0 {
		if err := cw.SendMessageContext(rw.ctx, map[string]any{"type": "set_headers", "headers": headers}); err != nil {
			rw.err = err
			return err
		}
	}
	if rw.buf.Len() > 0 {
		if _, err := rw.bw.Write(rw.buf.Bytes()); err != nil {
			rw.err = err
			return err
		}
		rw.buf = bytes.Buffer{}
	}
	if rw.err = rw.bw.Flush(); rw.err != nil {
		return rw.err
	}
	return nil
}

// finish completes the response after the handler returned: the result
// for a whole response, or the end of the stream.
func (rw *httpResponseWriter) finish(m *wire.InvokeFunction) (json.RawMessage, error) {
	functionID := m.FunctionID
	if !rw.wroteHeader {
		rw.WriteHeader(http.StatusOK)
	}
	if !rw.streaming {
		rw.sniff()
		// Without a Content-Type the engine would send the body as JSON
		// and add one; a Content-Type suppressed by a nil value is
		// honoured by streaming too.
		if rw.sent.Get("Content-Type") != "" && utf8.Valid(rw.buf.Bytes()) {
			out := rw.envelope()
			// The result must fit in its frame, which also carries the
			// invocation's traceparent and baggage (see execute).
			if wire.FrameFits(&wire.InvocationResult{InvocationID: m.InvocationID, FunctionID: functionID,
				Traceparent: m.Traceparent, Baggage: m.Baggage, Result: out}, rw.s.w.maxMessage) {
				return out, nil
			}
		}
		// A stream that failed once its channel was open is ended by
		// close too: it holds a socket until then.
		_ = rw.stream()
	}
	return nil, rw.close(functionID)
}

// close ends the stream and releases its channel, whatever happened; it
// returns the stream's first error. A stream that failed is dropped at
// once, without waiting for its queued data.
func (rw *httpResponseWriter) close(functionID string) error {
	if rw.err == nil {
		rw.err = rw.bw.Flush()
	}
	if rw.cw != nil {
		ctx := rw.ctx
		if rw.err != nil {
			ctx = canceled // CloseContext drops the socket at once
		}
		if cerr := rw.cw.CloseContext(ctx); rw.err == nil {
			rw.err = cerr
		}
	}
	if rw.err != nil {
		return rw.streamErr(functionID, rw.err)
	}
	return nil
}

func (rw *httpResponseWriter) streamErr(functionID string, err error) error {
	return &InvocationError{Code: CodeInvocationFailed, Err: err,
		Message: fmt.Sprintf("function %s: cannot stream the HTTP response: %v", functionID, err)}
}

// envelope encodes the whole response as the engine's result: headers as
// "Name: value" lines (a repeated header stays repeated), the body as a
// JSON string (the engine sends a string as it is when there is a
// Content-Type).
func (rw *httpResponseWriter) envelope() json.RawMessage {
	lines := make([]string, 0, len(rw.sent))
	for k, vs := range rw.sent {
		for _, v := range vs {
			lines = append(lines, k+": "+v)
		}
	}
	slices.Sort(lines)
	body := rw.buf.String()
	if rw.head || !rw.bodyAllowed() {
		body = ""
	}
	out, _ := json.Marshal(struct {
		StatusCode int      `json:"status_code"`
		Headers    []string `json:"headers"`
		Body       string   `json:"body"`
	}{rw.status, lines, body})
	return out
}

// panicked answers a request whose handler panicked: 500 when nothing was
// sent yet; a started stream is ended where it stands.
func (rw *httpResponseWriter) panicked(functionID string, p *panicError) (json.RawMessage, error) {
	if p.value != http.ErrAbortHandler {
		rw.s.w.log.Error("iii: HTTP handler panicked", "function", functionID, "panic", p.value, "stack", string(p.stack))
	}
	if rw.streaming {
		// The status went out already: end the body where it stands.
		_ = rw.close(functionID)
		return nil, &InvocationError{Code: CodeInvocationFailed,
			Message: fmt.Sprintf("function %s: the HTTP handler panicked after its response started", functionID)}
	}
	msg := http.StatusText(http.StatusInternalServerError) + "\n"
	if rw.s.w.opts.SendPanicStacks {
		msg = p.Error() + "\n\n" + string(p.stack)
	}
	out, _ := json.Marshal(struct {
		StatusCode int      `json:"status_code"`
		Headers    []string `json:"headers"`
		Body       string   `json:"body"`
	}{http.StatusInternalServerError, []string{"Content-Type: text/plain; charset=utf-8", "X-Content-Type-Options: nosniff"}, strings.ToValidUTF8(msg, "\uFFFD")})
	return out, nil
}

// ctxWriter writes to a channel bounded by the invocation's context.
type ctxWriter struct {
	cw  *ChannelWriter
	ctx context.Context
}

func (c ctxWriter) Write(p []byte) (int, error) { return c.cw.WriteContext(c.ctx, p) }
