package iii

import "time"

// CallOption configures one call made with Call.
type CallOption func(*callConfig)

// callConfig is what the CallOptions of one call set (the namespace one,
// WithCallNamespace, is in namespace.go).
type callConfig struct {
	timeout   time.Duration
	metadata  any
	namespace string
}

// WithCallTimeout bounds the call: without its result after d, Call
// returns an error matching ErrTimeout. 0 means InitOptions.InvocationTimeout.
// The context's deadline applies too; the earlier of the two wins. It is
// TriggerRequest.Timeout for Call.
func WithCallTimeout(d time.Duration) CallOption {
	return func(c *callConfig) { c.timeout = d }
}

// WithCallMetadata sends m (any JSON value) beside the payload; the handler
// reads it with MetadataFromContext. It is TriggerRequest.Metadata for Call.
func WithCallMetadata(m any) CallOption {
	return func(c *callConfig) { c.metadata = m }
}

// callRequest builds the TriggerRequest of an awaited call with opts.
func callRequest(functionID string, payload any, opts []CallOption) TriggerRequest {
	var c callConfig
	for _, o := range opts {
		o(&c)
	}
	return TriggerRequest{FunctionID: functionID, Payload: payload, Timeout: c.timeout, Metadata: c.metadata, Namespace: c.namespace}
}
