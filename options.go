package iii

import (
	"crypto/tls"
	"encoding/json"
	"fmt"
	"log/slog"
	"net/http"
	"os"
	"runtime"
	"runtime/debug"
	"strings"
	"time"

	"github.com/iii-go/iii/channel"
	"github.com/iii-go/iii/connection"
)

// DefaultEngineURL is the engine's default worker endpoint. It names the
// IPv4 loopback address, as the official SDKs of engine v0.23 do: the
// engine listens on 127.0.0.1, which "localhost" may not resolve to first.
const DefaultEngineURL = "ws://127.0.0.1:49134"

// Defaults of InitOptions.
const (
	DefaultInvocationTimeout        = 30 * time.Second
	DefaultMaxConcurrentInvocations = 1024
	DefaultMaxQueuedInvocations     = 65536
	// DefaultMaxQueuedInvocationBytes bounds the payload and metadata
	// bytes of the invocations waiting for a handler slot (64 MiB).
	DefaultMaxQueuedInvocationBytes = 64 << 20
	DefaultDialTimeout              = connection.DefaultDialTimeout  // 10 s
	DefaultPingInterval             = connection.DefaultPingInterval // 20 s
	DefaultIdleTimeout              = connection.DefaultIdleTimeout  // 60 s
	// DefaultMaxMessageSize is the engine's limit on an incoming WebSocket
	// message: 64 MiB, the default max_message_size of the engine's
	// WebSocket library (tungstenite), which the engine (v0.22.1) leaves
	// as is. A bigger message makes the engine drop the connection without
	// a Close frame. Its other limit, 16 MiB per WebSocket frame
	// (max_frame_size), never applies: the SDK sends a message as
	// fragments of at most 64 KiB.
	DefaultMaxMessageSize = 64 << 20
	// DefaultChannelReadLimit bounds one message a channel reader reads
	// (16 MiB). SDK writers send binary data in messages of 64 KiB.
	DefaultChannelReadLimit = channel.DefaultReadLimit
)

// ConnectionState is the state of a worker's connection to the engine:
// Disconnected, Connecting, Connected, Reconnecting or Failed (below). Its
// String method gives "disconnected", "connecting", "connected",
// "reconnecting" and "failed". It is defined in an implementation package;
// everything a program needs of it is here.
type ConnectionState = connection.State

// The connection states.
const (
	Disconnected = connection.Disconnected // not started, or shut down
	Connecting   = connection.Connecting   // first connection attempt in progress
	Connected    = connection.Connected    // connected and registered
	Reconnecting = connection.Reconnecting // lost the connection; retrying with backoff
	Failed       = connection.Failed       // gave up; see InitOptions.Reconnect
)

// InitOptions configures a worker. The zero value works.
type InitOptions struct {
	// Metadata describes the worker to the engine (engine::workers::list).
	// Unset fields take defaults: Name from $III_WORKER_NAME or
	// hostname:pid, Isolation from $III_ISOLATION, Runtime "go", and so on.
	Metadata *WorkerMetadata
	// Namespace is the namespace the worker registers its functions, its
	// name and its trigger types in (engine v0.23): empty means
	// $III_NAMESPACE, else the default namespace. Its calls and bindings
	// resolve in it too unless they name another (TriggerRequest.Namespace,
	// TriggerInput.Namespace). The engine allows one live worker of a name
	// per namespace: a second one fails with a *RegistrationRejectedError.
	// A blank (spaces only) value fails the worker with ErrInvalidNamespace.
	// An engine v0.22.1 ignores it.
	Namespace string
	// Headers are sent with the WebSocket handshake (e.g. credentials for
	// the engine's auth function).
	Headers http.Header
	// TLSConfig is used for wss:// addresses.
	TLSConfig *tls.Config
	// Reconnect is the reconnect schedule; nil means 1 s doubling to 30 s,
	// ±30 % jitter, forever.
	Reconnect *ReconnectConfig
	// InvocationTimeout bounds each awaited call unless the call sets its
	// own; default 30 s.
	InvocationTimeout time.Duration
	// DialTimeout bounds each connection attempt; default 10 s.
	DialTimeout time.Duration
	// PingInterval is the WebSocket keepalive ping interval; default 20 s,
	// and at most IdleTimeout/2 (a longer one is shortened to that).
	PingInterval time.Duration
	// IdleTimeout bounds how long a dead or stalled engine goes unnoticed:
	// the worker drops the connection, and reconnects, once nothing (a
	// frame, a ping or a pong) has arrived for IdleTimeout, or once a write
	// to the engine has made no progress for IdleTimeout (an engine that
	// stopped reading). A live engine answers the worker's pings, so an
	// idle but healthy connection stays up. Default 60 s.
	IdleTimeout time.Duration
	// MaxConcurrentInvocations bounds the handlers running at once; default 1024.
	MaxConcurrentInvocations int
	// MaxQueuedInvocations bounds the invocations waiting for a free handler
	// slot. An invocation that arrives while every slot is busy and the
	// backlog is full is refused at once with a CodeWorkerOverloaded error
	// reply (counted in Stats.Refused); the worker never stops reading from
	// the engine, so results of the handlers' own calls and pongs still get
	// through. Default 65536.
	MaxQueuedInvocations int
	// MaxQueuedInvocationBytes bounds the payload plus metadata bytes of
	// the invocations waiting for a free handler slot, as
	// MaxQueuedInvocations bounds their number (an invocation always fits
	// in an empty backlog). Default 64 MiB.
	MaxQueuedInvocationBytes int
	// InvocationIdleTimeout is how long a handler's goroutine (its
	// invocation actor) is kept once idle: after a burst, the pool shrinks
	// back to KeepIdleInvocations, the most recently used kept. Default 1
	// minute; negative keeps every one for the life of the worker.
	InvocationIdleTimeout time.Duration
	// KeepIdleInvocations is how many idle handler goroutines are never
	// stopped for being idle, ready for the next invocations. Default 16.
	KeepIdleInvocations int
	// MaxMessageSize bounds the encoded frame of a call (payload, metadata,
	// function id, trace context and the JSON around them) and of a
	// handler's result, so that nothing the worker accepts exceeds the
	// engine's limit, which would make the engine drop the connection and
	// every call on it. A call over it fails with ErrPayloadTooLarge before
	// anything is sent; a result over it is replaced by an
	// invocation_failed error. Default DefaultMaxMessageSize (64 MiB), the
	// engine's limit; a larger value lets through frames the engine drops.
	MaxMessageSize int
	// Logger receives the SDK's logs. nil means its warnings and errors
	// (connection failures with their cause, refused triggers, rejected
	// registrations, replies it could not send) go to slog.Default() at
	// slog.LevelWarn and above. To silence the SDK, pass
	// slog.New(slog.DiscardHandler).
	Logger *slog.Logger
	// OnStateChange is called, in order and on a goroutine of its own, at
	// every change of the connection state. A callback that does not
	// return holds back at most 1,024 changes: beyond that the oldest it
	// has not seen are dropped (with a warning), and the latest state
	// always reaches it.
	OnStateChange func(ConnectionState)
	// Telemetry configures traces, logs and metrics; nil means the defaults.
	Telemetry *TelemetryOptions

	// SendPanicStacks sends callers the Go stack of a handler's panic (and
	// of a trigger provider's panic in RegisterTrigger), and passes on the
	// stacks that errors of other workers' functions carry. Stacks show
	// build paths, function names and addresses to whoever made the call,
	// often another team's worker: use it for development only. Default
	// false: the caller gets invocation_failed with the panic value only
	// ("panic: <value>"), and the stack is logged locally at Error.
	SendPanicStacks bool
	// MaxChannelRefs bounds the channel refs OpenChannelRefs accepts in
	// one JSON value (each is a socket); default DefaultMaxChannelRefs (16).
	MaxChannelRefs int
	// ChannelReadLimit bounds one WebSocket message a channel reader of
	// this worker reads: a JSON message (which is buffered whole) or a
	// binary one. A bigger message fails the reader with an error matching
	// ErrChannelTooLarge. Default DefaultChannelReadLimit.
	ChannelReadLimit int64
}

// ReconnectConfig is the reconnect schedule: the n-th consecutive failed
// attempt waits min(InitialDelay·Multiplier^n, MaxDelay), randomised by
// ±Jitter. An attempt succeeds only once the engine registered the worker
// (it accepted its credentials) and the connection stayed up for
// StableAfter; then the count resets. A worker the engine refuses, or one
// whose connection keeps dropping at once, backs off, and MaxRetries
// counts those attempts.
type ReconnectConfig struct {
	InitialDelay time.Duration // default 1 s
	MaxDelay     time.Duration // default 30 s
	Multiplier   float64       // default 2
	Jitter       float64       // fraction; default 0.3; negative for none
	// MaxRetries is the number of consecutive failed attempts after which
	// the worker gives up (state Failed); 0 retries forever.
	MaxRetries int
	// StableAfter is how long a registered connection must stay up for
	// the count to reset; default 10 s.
	StableAfter time.Duration
}

func (r *ReconnectConfig) backoff() connection.Backoff {
	b := connection.DefaultBackoff
	if r == nil {
		return b
	}
	if r.InitialDelay > 0 {
		b.Initial = r.InitialDelay
	}
	if r.MaxDelay > 0 {
		b.Max = r.MaxDelay
	}
	if r.Multiplier > 0 {
		b.Multiplier = r.Multiplier
	}
	if r.Jitter != 0 {
		b.Jitter = max(r.Jitter, 0)
	}
	if r.MaxRetries > 0 {
		b.MaxRetries = r.MaxRetries
	}
	if r.StableAfter > 0 {
		b.Stable = r.StableAfter
	}
	return b
}

// WorkerMetadata describes a worker, as sent to engine::workers::register.
type WorkerMetadata struct {
	Runtime     string           `json:"runtime"`
	Version     string           `json:"version"`
	Name        string           `json:"name"`
	Description string           `json:"description,omitempty"`
	OS          string           `json:"os"`
	PID         int              `json:"pid"`
	Isolation   *string          `json:"isolation"`
	Telemetry   *WorkerTelemetry `json:"telemetry,omitempty"`
}

// WorkerTelemetry is the telemetry part of WorkerMetadata.
type WorkerTelemetry struct {
	Language    string `json:"language,omitempty"`
	ProjectName string `json:"project_name,omitempty"`
	Framework   string `json:"framework,omitempty"`
	// AmplitudeAPIKey is passed on to the engine, which may report product
	// analytics with it (as in the Rust and Node SDKs); empty sends none.
	AmplitudeAPIKey string `json:"amplitude_api_key,omitempty"`
}

// metadataWithDefaults fills the unset fields of m.
func metadataWithDefaults(m *WorkerMetadata) WorkerMetadata {
	var out WorkerMetadata
	if m != nil {
		out = *m
	}
	if out.Runtime == "" {
		out.Runtime = "go"
	}
	if out.Version == "" {
		out.Version = Version
	}
	if out.Name == "" {
		out.Name = os.Getenv("III_WORKER_NAME")
	}
	if out.Name == "" {
		host, _ := os.Hostname()
		out.Name = fmt.Sprintf("%s:%d", host, os.Getpid())
	}
	if out.OS == "" {
		out.OS = osDescription()
	}
	if out.PID == 0 {
		out.PID = os.Getpid()
	}
	if out.Isolation == nil {
		if v, ok := os.LookupEnv("III_ISOLATION"); ok {
			out.Isolation = &v
		}
	}
	if out.Telemetry == nil {
		out.Telemetry = &WorkerTelemetry{}
	}
	if out.Telemetry.Framework == "" {
		out.Telemetry.Framework = "iii-go"
	}
	if out.Telemetry.Language == "" {
		out.Telemetry.Language = language()
	}
	if out.Telemetry.ProjectName == "" {
		if bi, ok := debug.ReadBuildInfo(); ok {
			out.Telemetry.ProjectName = bi.Main.Path
		}
	}
	return out
}

// osDescription is like the Node SDK's "linux 6.8.0 (x64)".
func osDescription() string {
	rel, _ := os.ReadFile("/proc/sys/kernel/osrelease")
	if r := strings.TrimSpace(string(rel)); r != "" {
		return fmt.Sprintf("%s %s (%s)", runtime.GOOS, r, runtime.GOARCH)
	}
	return fmt.Sprintf("%s (%s)", runtime.GOOS, runtime.GOARCH)
}

// language returns the locale from LC_ALL or LANG as a BCP 47 tag ("en-US").
func language() string {
	for _, k := range []string{"LC_ALL", "LANG"} {
		v := os.Getenv(k)
		if v == "" || v == "C" || v == "POSIX" {
			continue
		}
		v, _, _ = strings.Cut(v, ".")
		return strings.ReplaceAll(v, "_", "-")
	}
	return ""
}

// FunctionOption configures a function registration.
type FunctionOption func(*functionConfig)

type functionConfig struct {
	description    string
	metadata       any
	requestSchema  json.RawMessage
	responseSchema json.RawMessage
	noSchemas      bool
	validate       bool // ValidateInput
}

// WithDescription sets the function's description, shown in introspection.
func WithDescription(d string) FunctionOption { return func(c *functionConfig) { c.description = d } }

// WithFunctionMetadata attaches metadata to the function (any JSON value;
// by convention an object). {"internal": true} hides it from listings.
func WithFunctionMetadata(m any) FunctionOption { return func(c *functionConfig) { c.metadata = m } }

// WithRequestSchema replaces the request schema derived from the Go type.
func WithRequestSchema(s json.RawMessage) FunctionOption {
	return func(c *functionConfig) { c.requestSchema = s }
}

// WithResponseSchema replaces the response schema derived from the Go type.
func WithResponseSchema(s json.RawMessage) FunctionOption {
	return func(c *functionConfig) { c.responseSchema = s }
}

// WithoutSchemas sends no request or response schema.
func WithoutSchemas() FunctionOption { return func(c *functionConfig) { c.noSchemas = true } }
