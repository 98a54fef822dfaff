package iiitest

import (
	"bytes"
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"os"
	"strconv"
	"strings"
	"time"

	"github.com/iii-go/iii/connection/wire"
)

// DefaultHTTPFunctionTimeout is how long the engine waits for an
// HTTP-invoked function's endpoint when the registration gives no
// timeout_ms.
const DefaultHTTPFunctionTimeout = 30 * time.Second

// httpFunctionClient calls the endpoints of HTTP-invoked functions; like
// the engine's, it follows no redirects. It keeps no idle connections, so
// that no goroutine outlives a call.
var httpFunctionClient = &http.Client{
	Transport:     &http.Transport{DisableKeepAlives: true, DisableCompression: true},
	CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
	Timeout:       60 * time.Second,
}

// httpAuth is a resolved auth config: the secret read from the environment.
type httpAuth struct {
	kind          string // hmac, bearer, api_key
	secret, token string
	header, value string
}

// resolveHTTPAuth reads the secret an auth config names, as the engine does
// when the function registers.
func resolveHTTPAuth(a *wire.HTTPAuth) (*httpAuth, *wire.ErrorBody) {
	if a == nil {
		return nil, nil
	}
	env := func(key, code, what string) (string, *wire.ErrorBody) {
		v, ok := os.LookupEnv(key)
		if !ok {
			return "", &wire.ErrorBody{Code: code, Message: what + " not found: " + key}
		}
		return v, nil
	}
	var err *wire.ErrorBody
	r := &httpAuth{kind: a.Type}
	switch a.Type {
	case "hmac":
		r.secret, err = env(a.SecretKey, "secret_not_found", "Secret")
	case "bearer":
		r.token, err = env(a.TokenKey, "token_not_found", "Token")
	case "api_key":
		r.header = a.Header
		r.value, err = env(a.ValueKey, "api_key_not_found", "API key")
	default:
		return nil, &wire.ErrorBody{Code: "invalid_auth", Message: "unknown auth type " + a.Type}
	}
	if err != nil {
		return nil, err
	}
	return r, nil
}

// validateFunctionURL is the double's URL check: an http(s) URL on a
// loopback host. (The engine's default policy wants https and refuses
// private addresses; its iii-http-functions config can relax both.)
func validateFunctionURL(raw string) *wire.ErrorBody {
	u, err := url.Parse(raw)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Hostname() == "" {
		return &wire.ErrorBody{Code: "url_validation_failed", Message: "Invalid URL"}
	}
	h := u.Hostname()
	if ip := net.ParseIP(h); !strings.EqualFold(h, "localhost") && (ip == nil || !ip.IsLoopback()) {
		return &wire.ErrorBody{Code: "url_validation_failed", Message: "URL not in allowlist"}
	}
	return nil
}

// registerHTTPFunctionLocked registers an HTTP-invoked function of c: the
// engine calls its URL whenever it is invoked. A registration the engine
// would refuse (bad URL, missing secret) is dropped and logged, as there.
func (e *Engine) registerHTTPFunctionLocked(c *worker, m *wire.RegisterFunction) {
	inv := *m.Invocation
	if errb := validateFunctionURL(inv.URL); errb != nil {
		e.log.Warn("iiitest: HTTP-invoked function refused", "function", m.ID, "code", errb.Code, "message", errb.Message)
		return
	}
	auth, errb := resolveHTTPAuth(inv.Auth)
	if errb != nil {
		e.log.Warn("iiitest: HTTP-invoked function refused", "function", m.ID, "code", errb.Code, "message", errb.Message)
		return
	}
	method := inv.Method
	if method == "" {
		method = "POST"
	}
	timeout := DefaultHTTPFunctionTimeout
	if inv.TimeoutMS != nil {
		timeout = time.Duration(*inv.TimeoutMS) * time.Millisecond
	}
	headers := make(map[string]string, len(inv.Headers))
	for k, v := range inv.Headers {
		headers[k] = v
	}
	fnID := m.ID
	call := func(e *Engine, caller *worker, _ string, data json.RawMessage, reply func(json.RawMessage, *wire.ErrorBody)) {
		if caller != nil {
			data = injectCaller(nil, data, caller.id)
		}
		body := canonicalJSON(data)
		if !e.enter() {
			reply(nil, &wire.ErrorBody{Code: "http_request_failed", Message: "engine shutting down"})
			return
		}
		go func() {
			defer e.wg.Done()
			reply(invokeHTTPFunction(fnID, inv.URL, method, timeout, headers, auth, body))
		}()
	}
	st := c.st
	st.functions[m.ID] = &function{
		id:             m.ID,
		owner:          c,
		builtin:        call,
		description:    m.Description,
		requestFormat:  m.RequestFormat,
		responseFormat: m.ResponseFormat,
		metadata:       m.Metadata,
	}
	c.fns[m.ID] = struct{}{}
}

// invokeHTTPFunction makes the engine's request to an HTTP-invoked
// function's endpoint and maps the answer to a result or an error.
func invokeHTTPFunction(fnID, target, method string, timeout time.Duration, headers map[string]string, auth *httpAuth, body []byte) (json.RawMessage, *wire.ErrorBody) {
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, method, target, bytes.NewReader(body))
	if err != nil {
		return nil, &wire.ErrorBody{Code: "http_request_failed", Message: err.Error()}
	}
	ts := time.Now().Unix()
	h := req.Header
	h.Set("Accept", "*/*")         // as the engine's HTTP client sends,
	h["User-Agent"] = []string{""} // with no User-Agent
	h.Set("Content-Type", "application/json")
	h.Set("x-iii-Function-Path", fnID)
	h.Set("x-iii-Invocation-ID", wire.NewUUID().String())
	h.Set("x-iii-Timestamp", strconv.FormatInt(ts, 10))
	for k, v := range headers {
		h.Add(k, v)
	}
	if auth != nil {
		switch auth.kind {
		case "hmac":
			h.Set("x-iii-Signature", signHTTPRequest(body, auth.secret, ts))
		case "bearer":
			h.Set("Authorization", "Bearer "+auth.token)
		case "api_key":
			h.Add(auth.header, auth.value)
		}
	}
	res, err := httpFunctionClient.Do(req)
	if err != nil {
		return nil, &wire.ErrorBody{Code: "http_request_failed", Message: err.Error()}
	}
	defer res.Body.Close()
	b, err := io.ReadAll(res.Body)
	if err != nil {
		return nil, &wire.ErrorBody{Code: "http_response_failed", Message: err.Error()}
	}
	switch {
	case res.StatusCode >= 200 && res.StatusCode < 300:
		if len(b) == 0 {
			return nil, nil
		}
		if !json.Valid(b) {
			return nil, &wire.ErrorBody{Code: "invalid_response", Message: "response body is not JSON"}
		}
		return canonicalJSON(b), nil
	case res.StatusCode < 400:
		if json.Valid(b) {
			return canonicalJSON(b), nil
		}
		return nil, nil
	}
	var env struct {
		Error json.RawMessage `json:"error"`
	}
	if json.Unmarshal(b, &env) == nil && env.Error != nil {
		var eo map[string]json.RawMessage
		json.Unmarshal(env.Error, &eo)
		str := func(k, def string) string {
			var s string
			if json.Unmarshal(eo[k], &s) == nil {
				return s
			}
			return def
		}
		return nil, &wire.ErrorBody{Code: str("code", "http_error"), Message: str("message", "HTTP request failed")}
	}
	return nil, &wire.ErrorBody{Code: "http_error", Message: fmt.Sprintf("HTTP %d %s", res.StatusCode, http.StatusText(res.StatusCode))}
}

// signHTTPRequest is the engine's x-iii-Signature: "sha256=" and the hex
// HMAC-SHA256, keyed by the secret, of "<timestamp>:<base64 body>".
func signHTTPRequest(body []byte, secret string, ts int64) string {
	m := hmac.New(sha256.New, []byte(secret))
	m.Write([]byte(strconv.FormatInt(ts, 10) + ":" + base64.StdEncoding.EncodeToString(body)))
	return "sha256=" + hex.EncodeToString(m.Sum(nil))
}
