// Package wire is the codec for the iii worker protocol (engine v0.22.1, with
// the optional v0.23 additions): one JSON object per WebSocket frame,
// discriminated by its "type" field, plus the binary telemetry frames.
//
// Decode reads a frame in one pass straight into its concrete message. Fields
// that carry arbitrary JSON (payloads, results, schemas, configs, metadata)
// are kept as json.RawMessage sub-slices of the frame, so a decoded message
// aliases the buffer it was decoded from: the buffer must not be reused while
// the message is in use. Each message's AppendJSON writes "type" first and then
// the fields in the engine's declaration order, omitting absent optional
// fields, so frames the engine sends re-encode byte for byte.
//
// It is an implementation package of the iii SDK (github.com/iii-go/iii),
// importable for the SDK's own use: it follows the SDK's version (iii.Version)
// and its API may change in any release. Programs use the root package iii,
// which documents every type they need.
package wire

import (
	"encoding/json"
)

// Kind identifies a message type.
type Kind uint8

// The message kinds. KindError and KindUnregisterTriggerType are not variants
// of the engine's Message enum: the first is the connection-level auth failure
// frame, the second is sent by the Node and Rust SDKs but cannot be decoded by
// a v0.22.1 engine (which drops it).
const (
	KindInvalid Kind = iota
	KindRegisterTriggerType
	KindRegisterTrigger
	KindTriggerRegistrationResult
	KindUnregisterTrigger
	KindRegisterFunction
	KindUnregisterFunction
	KindInvokeFunction
	KindInvocationResult
	KindRegisterService
	KindPing
	KindPong
	KindReattach
	KindWorkerRegistered
	KindRegistrationRejected
	KindError
	KindUnregisterTriggerType
	numKinds
)

var kindNames = [numKinds]string{
	KindInvalid:                   "",
	KindRegisterTriggerType:       "registertriggertype",
	KindRegisterTrigger:           "registertrigger",
	KindTriggerRegistrationResult: "triggerregistrationresult",
	KindUnregisterTrigger:         "unregistertrigger",
	KindRegisterFunction:          "registerfunction",
	KindUnregisterFunction:        "unregisterfunction",
	KindInvokeFunction:            "invokefunction",
	KindInvocationResult:          "invocationresult",
	KindRegisterService:           "registerservice",
	KindPing:                      "ping",
	KindPong:                      "pong",
	KindReattach:                  "reattach",
	KindWorkerRegistered:          "workerregistered",
	KindRegistrationRejected:      "registrationrejected",
	KindError:                     "error",
	KindUnregisterTriggerType:     "unregistertriggertype",
}

// String returns the wire name of k (the value of the "type" field).
func (k Kind) String() string {
	if k < numKinds {
		return kindNames[k]
	}
	return ""
}

// KindOf returns the kind whose wire name is name, or KindInvalid.
func KindOf(name string) Kind {
	for k := KindRegisterTriggerType; k < numKinds; k++ {
		if kindNames[k] == name {
			return k
		}
	}
	return KindInvalid
}

// Message is one protocol frame.
type Message interface {
	// Kind returns the message type.
	Kind() Kind
	// AppendJSON appends the frame's JSON encoding to dst.
	AppendJSON(dst []byte) []byte
}

// ErrorBody is the error object of invocation and trigger registration results.
type ErrorBody struct {
	Code       string `json:"code"`
	Message    string `json:"message"`
	Stacktrace string `json:"stacktrace,omitempty"`
}

// ActionKind says how an invokefunction is to be handled.
type ActionKind uint8

// The actions of an invokefunction. ActionNone (no "action" field) is an
// ordinary call: awaited when it has an invocation id.
const (
	ActionNone ActionKind = iota
	ActionVoid
	ActionEnqueue
)

// TriggerAction is the "action" of an invokefunction. The zero value means
// the field is absent.
type TriggerAction struct {
	Kind  ActionKind
	Queue string // for ActionEnqueue; an empty name is still sent
}

// HTTPAuth is the "auth" object of an HTTP-invoked function. The *Key fields
// name environment variables on the engine host.
type HTTPAuth struct {
	Type      string // "hmac", "bearer" or "api_key"
	SecretKey string // hmac
	TokenKey  string // bearer
	Header    string // api_key
	ValueKey  string // api_key
}

// HTTPInvocationRef makes a function HTTP-invoked: the engine calls URL itself.
type HTTPInvocationRef struct {
	URL       string
	Method    string // GET, POST, PUT, PATCH or DELETE; empty means absent (POST)
	TimeoutMS *uint64
	Headers   map[string]string
	Auth      *HTTPAuth
}

// RegisterFunction announces a function this worker serves (W→E).
type RegisterFunction struct {
	ID             string
	Description    string
	RequestFormat  json.RawMessage
	ResponseFormat json.RawMessage
	Metadata       json.RawMessage
	Invocation     *HTTPInvocationRef
}

// UnregisterFunction withdraws a function (W→E).
type UnregisterFunction struct {
	ID string
}

// RegisterTriggerType makes this worker the provider of a trigger type (W→E).
type RegisterTriggerType struct {
	ID                   string
	Description          string
	TriggerRequestFormat json.RawMessage
	CallRequestFormat    json.RawMessage
	Namespace            string // v0.23; empty means absent
}

// RegisterTrigger binds a trigger to a function (W→E), or asks a provider to
// start firing a binding (E→W).
type RegisterTrigger struct {
	ID               string
	TriggerType      string
	FunctionID       string
	Config           json.RawMessage // required; "null" is a value
	Metadata         json.RawMessage
	Namespace        string // v0.23; empty means absent
	TriggerNamespace string // v0.23; empty means absent
}

// UnregisterTrigger removes a binding (W→E) or tells its provider (E→W).
type UnregisterTrigger struct {
	ID          string
	TriggerType string // optional on input; always sent by the engine
}

// TriggerRegistrationResult is a provider's answer to registertrigger (W→E),
// or a rejection forwarded to the binder (E→W). A nil Error means success.
type TriggerRegistrationResult struct {
	ID          string
	TriggerType string
	FunctionID  string
	Error       *ErrorBody
}

// InvokeFunction is a call (W→E) or a dispatch to a handler (E→W).
type InvokeFunction struct {
	InvocationID    UUID
	HasInvocationID bool // false: "no reply wanted"
	nullID          bool // decoded from an explicit "invocation_id":null, re-encoded as such (kept beside HasInvocationID: TestInvokeFunctionIsSmall)
	FunctionID      string
	Data            json.RawMessage // required; "null" is a value
	Traceparent     string
	Baggage         string
	Action          TriggerAction // W→E only
	Metadata        json.RawMessage
	Namespace       string // v0.23; empty means absent
}

// InvocationResult answers an invokefunction. Error, when set, takes
// precedence over Result.
type InvocationResult struct {
	InvocationID UUID
	FunctionID   string
	Result       json.RawMessage
	Error        *ErrorBody
	Traceparent  string
	Baggage      string
}

// RegisterService groups functions for the dashboard (W→E).
type RegisterService struct {
	ID              string
	Name            string
	Description     string
	ParentServiceID string
}

// Ping asks for a Pong.
type Ping struct{}

// Pong answers a Ping.
type Pong struct{}

// Reattach is the first frame of a reconnect: it retires the previous
// connection of the same worker (W→E).
type Reattach struct {
	PreviousWorkerID string
	ReattachToken    string
}

// WorkerRegistered is the engine's first frame on every connection (E→W).
type WorkerRegistered struct {
	WorkerID      string
	ReattachToken string
}

// Codes of RegistrationRejected (engine v0.23).
const (
	FunctionNamespaceConflict = "FUNCTION_NAMESPACE_CONFLICT"
	WorkerNamespaceConflict   = "WORKER_NAMESPACE_CONFLICT"
)

// RegistrationRejected refuses a registration (E→W, engine v0.23).
type RegistrationRejected struct {
	Code          string
	Namespace     string
	WorkerName    string
	FunctionID    string
	OwnerWorkerID string
}

// ErrorFrame is the connection-level error the engine sends before closing a
// connection whose authentication failed. It is not a Message variant.
type ErrorFrame struct {
	Error ErrorBody
}

// UnregisterTriggerType is sent by the Node and Rust SDKs; a v0.22.1 engine
// cannot decode it and drops it. It is here so that it can be recognised.
type UnregisterTriggerType struct {
	ID string
}

// Kind implements Message.
func (*RegisterFunction) Kind() Kind { return KindRegisterFunction }

// Kind implements Message.
func (*UnregisterFunction) Kind() Kind { return KindUnregisterFunction }

// Kind implements Message.
func (*RegisterTriggerType) Kind() Kind { return KindRegisterTriggerType }

// Kind implements Message.
func (*RegisterTrigger) Kind() Kind { return KindRegisterTrigger }

// Kind implements Message.
func (*UnregisterTrigger) Kind() Kind { return KindUnregisterTrigger }

// Kind implements Message.
func (*TriggerRegistrationResult) Kind() Kind { return KindTriggerRegistrationResult }

// Kind implements Message.
func (*InvokeFunction) Kind() Kind { return KindInvokeFunction }

// Kind implements Message.
func (*InvocationResult) Kind() Kind { return KindInvocationResult }

// Kind implements Message.
func (*RegisterService) Kind() Kind { return KindRegisterService }

// Kind implements Message.
func (*Ping) Kind() Kind { return KindPing }

// Kind implements Message.
func (*Pong) Kind() Kind { return KindPong }

// Kind implements Message.
func (*Reattach) Kind() Kind { return KindReattach }

// Kind implements Message.
func (*WorkerRegistered) Kind() Kind { return KindWorkerRegistered }

// Kind implements Message.
func (*RegistrationRejected) Kind() Kind { return KindRegistrationRejected }

// Kind implements Message.
func (*ErrorFrame) Kind() Kind { return KindError }

// Kind implements Message.
func (*UnregisterTriggerType) Kind() Kind { return KindUnregisterTriggerType }

// IsNull reports whether raw is absent or the JSON literal null (the engine
// reads both as "no value" for optional fields).
func IsNull(raw json.RawMessage) bool {
	if len(raw) == 0 {
		return true
	}
	i := 0
	for i < len(raw) && isSpace(raw[i]) {
		i++
	}
	return len(raw)-i >= 4 && string(raw[i:i+4]) == "null"
}
