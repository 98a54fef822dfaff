package iii_test

import (
	"context"
	"encoding/json"
	"errors"
	"io"
	"log/slog"
	"net"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/gorilla/websocket"

	"github.com/iii-go/iii"
	"github.com/iii-go/iii/connection/wire"
	"github.com/iii-go/iii/test/iiitest"
)

// captureHandler records the messages and levels it is given.
type captureHandler struct {
	mu   sync.Mutex
	recs []slog.Record
}

func (h *captureHandler) Enabled(context.Context, slog.Level) bool { return true }
func (h *captureHandler) Handle(_ context.Context, r slog.Record) error {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.recs = append(h.recs, r.Clone())
	return nil
}
func (h *captureHandler) WithAttrs([]slog.Attr) slog.Handler { return h }
func (h *captureHandler) WithGroup(string) slog.Handler      { return h }

func (h *captureHandler) find(msg string) (slog.Record, bool) {
	h.mu.Lock()
	defer h.mu.Unlock()
	for _, r := range h.recs {
		if strings.Contains(r.Message, msg) {
			return r, true
		}
	}
	return slog.Record{}, false
}

func (h *captureHandler) below(l slog.Level) int {
	h.mu.Lock()
	defer h.mu.Unlock()
	n := 0
	for _, r := range h.recs {
		if r.Level < l {
			n++
		}
	}
	return n
}

// closedAddr returns a ws:// address of a loopback port nobody listens on.
func closedAddr(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close()
	return "ws://" + addr
}

// With no Logger, the SDK's warnings reach slog.Default() (and nothing
// below Warn does); a discarding Logger silences them.
func TestSDKWarningsGoToSlogDefaultWithoutALogger(t *testing.T) {
	h := &captureHandler{}
	prev := slog.Default()
	slog.SetDefault(slog.New(h))
	defer slog.SetDefault(prev)

	addr := closedAddr(t)
	w := iii.RegisterWorker(addr, iii.InitOptions{Reconnect: &iii.ReconnectConfig{InitialDelay: 5 * time.Millisecond, MaxDelay: 10 * time.Millisecond}})
	waitFor(t, "the connection failure on slog.Default()", func() bool {
		_, ok := h.find("cannot connect to the engine")
		return ok
	})
	w.Shutdown()
	r, _ := h.find("cannot connect to the engine")
	var cause string
	r.Attrs(func(a slog.Attr) bool {
		if a.Key == "err" {
			cause = a.Value.String()
		}
		return true
	})
	if r.Level != slog.LevelWarn || cause == "" {
		t.Fatalf("record %v at %v with err %q", r.Message, r.Level, cause)
	}
	if n := h.below(slog.LevelWarn); n != 0 {
		t.Fatalf("%d records below Warn reached slog.Default()", n)
	}

	quiet := &captureHandler{}
	slog.SetDefault(slog.New(quiet))
	w = iii.RegisterWorker(addr, iii.InitOptions{Logger: slog.New(slog.DiscardHandler),
		Reconnect: &iii.ReconnectConfig{InitialDelay: 5 * time.Millisecond, MaxRetries: 1}})
	waitFor(t, "the worker to give up", func() bool { return w.State() == iii.Failed })
	w.Shutdown()
	if n := len(quiet.recs); n != 0 {
		t.Fatalf("a discarding Logger let %d records through", n)
	}
}

// A call that times out waiting for a connection says why there is none,
// on one line.
func TestConnectionTimeoutCarriesItsCauseOnOneLine(t *testing.T) {
	h := &captureHandler{}
	w := iii.RegisterWorker(closedAddr(t), iii.InitOptions{Logger: slog.New(h),
		Reconnect: &iii.ReconnectConfig{InitialDelay: 5 * time.Millisecond, MaxDelay: 10 * time.Millisecond}})
	defer w.Shutdown()
	waitFor(t, "a failed attempt", func() bool {
		_, ok := h.find("cannot connect to the engine")
		return ok
	})
	_, err := w.Trigger(testCtx(t), iii.TriggerRequest{FunctionID: "x::y", Timeout: 100 * time.Millisecond})
	if !errors.Is(err, iii.ErrTimeout) || !errors.Is(err, iii.ErrNotConnected) {
		t.Fatalf("got %v", err)
	}
	msg := err.Error()
	if !strings.Contains(msg, "timed out waiting for a connection to the engine: ") || !strings.Contains(msg, "refused") || strings.Contains(msg, "\n") {
		t.Fatalf("error text %q", msg)
	}
	if errors.Unwrap(err) == nil {
		t.Fatal("the cause does not unwrap")
	}
}

// Err says why a worker is unusable: nil while healthy, the address
// error, the exhausted retries with their cause, or shut down.
func TestErrSaysWhyTheWorkerIsUnusable(t *testing.T) {
	quiet := iii.InitOptions{Logger: slog.New(slog.DiscardHandler)}

	eng := iiitest.NewEngine(t)
	w := newWorker(t, eng, quiet)
	if err := w.Err(); err != nil {
		t.Fatalf("healthy worker: %v", err)
	}

	bad := iii.RegisterWorker("http://127.0.0.1:1", quiet)
	if err := bad.Err(); err == nil || !strings.Contains(err.Error(), "scheme must be ws or wss") {
		t.Fatalf("bad address: %v", err)
	}
	bad.Shutdown()

	opts := quiet
	opts.Reconnect = &iii.ReconnectConfig{InitialDelay: 5 * time.Millisecond, MaxRetries: 1}
	gone := iii.RegisterWorker(closedAddr(t), opts)
	waitFor(t, "the retries to run out", func() bool { return gone.Err() != nil })
	err := gone.Err()
	if !errors.Is(err, iii.ErrConnectionFailed) || !strings.Contains(err.Error(), "refused") || strings.Contains(err.Error(), "\n") {
		t.Fatalf("retries exhausted: %q", err)
	}
	var c io.Closer = gone
	if err := c.Close(); err != nil {
		t.Fatalf("Close: %v", err)
	}
	if err := gone.Err(); !errors.Is(err, iii.ErrShutdown) {
		t.Fatalf("after Close: %v", err)
	}
}

// SendText puts the text on the wire as it is, in a text frame; OnMessage
// hands it over unchanged.
func TestChannelSendTextSendsPlainText(t *testing.T) {
	eng := iiitest.NewEngine(t)
	w := newWorker(t, eng, iii.InitOptions{})
	ctx := testCtx(t)
	ch, err := w.CreateChannel(ctx, 0)
	if err != nil {
		t.Fatal(err)
	}
	raw := rawEnd(t, eng, ch.ReaderRef, "read")
	if err := ch.Writer.SendText("plain, not JSON ✓"); err != nil {
		t.Fatal(err)
	}
	if typ, m, err := raw.ReadMessage(); err != nil || typ != websocket.TextMessage || string(m) != "plain, not JSON ✓" {
		t.Fatalf("raw reader: type %d, %q, %v", typ, m, err)
	}
	if err := ch.Writer.SendText("\xff"); err == nil {
		t.Fatal("invalid UTF-8 was accepted")
	}
	raw.Close()
	_ = ch.Writer.Close()
	_ = ch.Reader.Close()

	// Through an SDK reader.
	ch2, err := w.CreateChannel(ctx, 0)
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	ch2.Reader.OnMessage(func(m json.RawMessage) { got = append(got, string(m)) })
	go func() {
		_ = ch2.Writer.SendText("hello")
		_ = ch2.Writer.SendMessage("hello")
		_ = ch2.Writer.Close()
	}()
	if _, err := ch2.Reader.ReadAll(ctx); err != nil {
		t.Fatal(err)
	}
	if len(got) != 2 || got[0] != "hello" || got[1] != `"hello"` {
		t.Fatalf("OnMessage got %q", got)
	}
}

// Errors read on one line, also when they combine two.
func TestCombinedErrorsAreOneLine(t *testing.T) {
	eng := iiitest.NewEngine(t)
	w := newWorker(t, eng, iii.InitOptions{})
	sub, err := w.OnWorkersAvailable("watch::workers", func(context.Context, iii.WorkersAvailableEvent) error { return nil })
	if err != nil {
		t.Fatal(err)
	}
	w.Shutdown()
	err = sub.Unregister() // both the binding and the function fail
	if !errors.Is(err, iii.ErrShutdown) || strings.Contains(err.Error(), "\n") {
		t.Fatalf("%q", err)
	}
}

// The values that go doc shows as comments beside the root package's
// constants defined elsewhere.
func TestDocumentedDefaults(t *testing.T) {
	if iii.DefaultDialTimeout != 10*time.Second || iii.DefaultPingInterval != 20*time.Second || iii.DefaultIdleTimeout != 60*time.Second ||
		iii.DefaultSpanFlushInterval != 100*time.Millisecond || iii.DefaultLogFlushInterval != 100*time.Millisecond ||
		iii.DefaultMaxQueuedSpans != 2048 || iii.DefaultMaxQueuedLogs != 2048 ||
		iii.DefaultMaxPendingFrames != 1000 || iii.DefaultMaxPendingBytes != 16<<20 {
		t.Fatal("a default differs from the value its doc comment gives")
	}
}

func TestAddressIsTheEngineURLWithoutCredentials(t *testing.T) {
	eng := iiitest.NewEngine(t)
	w := newWorker(t, eng, iii.InitOptions{})
	if got := w.Address(); got != eng.URL {
		t.Fatalf("Address() = %q, want %q", got, eng.URL)
	}
	t.Setenv("III_URL", "ws://user:secret@127.0.0.1:1/?token=abc")
	u := iii.RegisterWorker("", iii.InitOptions{Logger: slog.New(slog.DiscardHandler), Telemetry: &iii.TelemetryOptions{Enabled: new(bool)}})
	defer u.Shutdown()
	if got := u.Address(); strings.Contains(got, "secret") || strings.Contains(got, "abc") || !strings.HasPrefix(got, "ws://") || !strings.Contains(got, "127.0.0.1:1") {
		t.Fatalf("Address() = %q: want the $III_URL address with its credentials redacted", got)
	}
}

func TestWorkerTelemetryMetadataReachesTheEngine(t *testing.T) {
	eng := iiitest.NewEngine(t)
	w := newWorker(t, eng, iii.InitOptions{Metadata: &iii.WorkerMetadata{Name: "analytics",
		Telemetry: &iii.WorkerTelemetry{ProjectName: "shop", AmplitudeAPIKey: "amp-key"}}})
	waitFor(t, "engine::workers::register", func() bool {
		for _, m := range eng.Journal(w.WorkerID()) {
			if inv, ok := m.(*wire.InvokeFunction); ok && inv.FunctionID == "engine::workers::register" {
				var meta struct {
					Telemetry struct {
						ProjectName     string `json:"project_name"`
						AmplitudeAPIKey string `json:"amplitude_api_key"`
					} `json:"telemetry"`
				}
				if err := json.Unmarshal(inv.Data, &meta); err != nil {
					t.Fatal(err)
				}
				if meta.Telemetry.ProjectName != "shop" || meta.Telemetry.AmplitudeAPIKey != "amp-key" {
					t.Fatalf("metadata %s", inv.Data)
				}
				return true
			}
		}
		return false
	})
}
