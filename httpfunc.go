package iii

import (
	"fmt"
	"maps"
	"net/url"
	"slices"
	"strings"
	"time"

	"github.com/iii-go/iii/connection/wire"
)

// HTTPInvocation says how the engine reaches an HTTP-invoked function
// (RegisterHTTPFunction): it sends each invocation's payload as the JSON
// body of a request to URL and takes the JSON response as the result.
type HTTPInvocation struct {
	// URL is the endpoint, http:// or https://. Required. The engine
	// validates it: by default its iii-http-functions worker takes only
	// https URLs and refuses private and loopback addresses (its security
	// settings, url_allowlist, require_https and block_private_ips, relax
	// that).
	URL string
	// Method is GET, POST, PUT, PATCH or DELETE; empty means POST.
	Method string
	// Timeout bounds each request, rounded up to a millisecond; 0 means
	// the engine's default.
	Timeout time.Duration
	// Headers are sent with every request.
	Headers map[string]string
	// Auth, if set, makes the engine authenticate its requests.
	Auth *HTTPAuth
}

// HTTPAuthType is the kind of an HTTPAuth.
type HTTPAuthType string

// The kinds of HTTPAuth the engine (v0.22.1) knows.
const (
	// HTTPAuthHMAC signs each request with HMAC using the secret in
	// environment variable SecretKey.
	HTTPAuthHMAC HTTPAuthType = "hmac"
	// HTTPAuthBearer sends "Authorization: Bearer <token>", the token taken
	// from environment variable TokenKey.
	HTTPAuthBearer HTTPAuthType = "bearer"
	// HTTPAuthAPIKey sends header Header with the value of environment
	// variable ValueKey.
	HTTPAuthAPIKey HTTPAuthType = "api_key"
)

// HTTPAuth is how the engine authenticates its requests to an
// HTTP-invoked function. Secrets never travel: the *Key fields name
// environment variables on the engine's host, which the engine reads (it
// refuses the function if one is unset). Build one with HMACAuth,
// BearerAuth or APIKeyAuth.
type HTTPAuth struct {
	Type      HTTPAuthType
	SecretKey string // HTTPAuthHMAC: the variable holding the HMAC secret
	TokenKey  string // HTTPAuthBearer: the variable holding the token
	Header    string // HTTPAuthAPIKey: the header to send
	ValueKey  string // HTTPAuthAPIKey: the variable holding its value
}

// HMACAuth signs requests with the secret in environment variable
// secretKey of the engine's host.
func HMACAuth(secretKey string) *HTTPAuth { return &HTTPAuth{Type: HTTPAuthHMAC, SecretKey: secretKey} }

// BearerAuth sends the token in environment variable tokenKey of the
// engine's host as a bearer token.
func BearerAuth(tokenKey string) *HTTPAuth {
	return &HTTPAuth{Type: HTTPAuthBearer, TokenKey: tokenKey}
}

// APIKeyAuth sends header with the value of environment variable valueKey
// of the engine's host.
func APIKeyAuth(header, valueKey string) *HTTPAuth {
	return &HTTPAuth{Type: HTTPAuthAPIKey, Header: header, ValueKey: valueKey}
}

// wire checks a and converts it.
func (a *HTTPAuth) wire() (*wire.HTTPAuth, error) {
	var missing string
	switch a.Type {
	case HTTPAuthHMAC:
		if a.SecretKey == "" {
			missing = "SecretKey"
		}
	case HTTPAuthBearer:
		if a.TokenKey == "" {
			missing = "TokenKey"
		}
	case HTTPAuthAPIKey:
		if a.Header == "" {
			missing = "Header"
		} else if a.ValueKey == "" {
			missing = "ValueKey"
		}
	default:
		return nil, fmt.Errorf("%w: auth type %q (want hmac, bearer or api_key)", ErrInvalidHTTPConfig, a.Type)
	}
	if missing != "" {
		return nil, fmt.Errorf("%w: %s auth needs %s", ErrInvalidHTTPConfig, a.Type, missing)
	}
	// Only the fields of its type: the engine reads no others.
	out := &wire.HTTPAuth{Type: string(a.Type)}
	switch a.Type {
	case HTTPAuthHMAC:
		out.SecretKey = a.SecretKey
	case HTTPAuthBearer:
		out.TokenKey = a.TokenKey
	default:
		out.Header, out.ValueKey = a.Header, a.ValueKey
	}
	return out, nil
}

// The methods of an HTTP-invoked function.
var httpInvocationMethods = []string{"GET", "POST", "PUT", "PATCH", "DELETE"}

// RegisterHTTPFunction registers function id, served not by this worker
// but by an HTTP endpoint the engine calls itself (a serverless function,
// another service): inv says where and how. Anyone calls it like any
// function; this worker owns the registration, which is replayed on every
// reconnect and withdrawn by Unregister or when the worker leaves.
//
// The engine needs its iii-http-functions worker for this. It refuses a
// registration it cannot honour (a URL its security settings forbid, an
// auth variable unset on its host) without telling the worker: it logs
// the reason, and the function stays unknown (FunctionInfo reports it).
// Options set the description, schemas and metadata; ValidateInput does
// not apply (the payload does not pass through this worker).
func RegisterHTTPFunction(w *III, id string, inv HTTPInvocation, opts ...FunctionOption) (*FunctionRef, error) {
	if err := w.err(); err != nil {
		return nil, err
	}
	ref, err := inv.wire()
	if err != nil {
		return nil, fmt.Errorf("HTTP function %q: %w", id, err)
	}
	return w.registerFunction(id, nil, ref, nil, nil, opts)
}

// wire checks inv and converts it.
func (inv HTTPInvocation) wire() (*wire.HTTPInvocationRef, error) {
	u, err := url.Parse(inv.URL)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		// Not the URL itself: it may carry credentials.
		return nil, fmt.Errorf("%w: the URL must be an absolute http:// or https:// URL", ErrInvalidHTTPConfig)
	}
	ref := &wire.HTTPInvocationRef{URL: inv.URL, Method: strings.ToUpper(inv.Method)}
	if ref.Method != "" && !slices.Contains(httpInvocationMethods, ref.Method) {
		return nil, fmt.Errorf("%w: method %q (want GET, POST, PUT, PATCH or DELETE)", ErrInvalidHTTPConfig, inv.Method)
	}
	switch {
	case inv.Timeout < 0:
		return nil, fmt.Errorf("%w: negative timeout", ErrInvalidHTTPConfig)
	case inv.Timeout > 0:
		ms := uint64((inv.Timeout + time.Millisecond - 1) / time.Millisecond)
		ref.TimeoutMS = &ms
	}
	if len(inv.Headers) > 0 {
		ref.Headers = maps.Clone(inv.Headers)
	}
	if inv.Auth != nil {
		if ref.Auth, err = inv.Auth.wire(); err != nil {
			return nil, err
		}
	}
	return ref, nil
}
