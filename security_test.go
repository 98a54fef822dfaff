package iii_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"net/url"
	"runtime"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/iii-go/iii"
	"github.com/iii-go/iii/test/iiitest"
)

// logRecorder is a slog handler that keeps every record, with its
// attributes flattened to "key=value" text.
type logRecorder struct {
	mu   sync.Mutex
	recs []string
}

func (l *logRecorder) Enabled(context.Context, slog.Level) bool { return true }
func (l *logRecorder) Handle(_ context.Context, r slog.Record) error {
	var b strings.Builder
	b.WriteString(r.Level.String() + " " + r.Message)
	r.Attrs(func(a slog.Attr) bool {
		b.WriteString(" " + a.Key + "=" + a.Value.String())
		return true
	})
	l.mu.Lock()
	l.recs = append(l.recs, b.String())
	l.mu.Unlock()
	return nil
}
func (l *logRecorder) WithAttrs([]slog.Attr) slog.Handler { return l }
func (l *logRecorder) WithGroup(string) slog.Handler      { return l }

// find returns the first record containing every one of subs, or "".
func (l *logRecorder) find(subs ...string) string {
	l.mu.Lock()
	defer l.mu.Unlock()
next:
	for _, r := range l.recs {
		for _, s := range subs {
			if !strings.Contains(r, s) {
				continue next
			}
		}
		return r
	}
	return ""
}

func (l *logRecorder) all() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return strings.Join(l.recs, "\n")
}

func TestHandlerPanicSendsNoStackByDefaultAndLogsItLocally(t *testing.T) {
	for _, send := range []bool{false, true} {
		eng := iiitest.NewEngine(t)
		rec := &logRecorder{}
		opts := fastOptions()
		opts.Logger, opts.SendPanicStacks = slog.New(rec), send
		handler := newWorker(t, eng, opts)
		caller := newWorker(t, eng, fastOptions())
		mustRegister(t, eng, handler, "sec::panic", func(ctx context.Context, _ any) (any, error) { panic("secret-free value") })
		_, err := caller.Trigger(testCtx(t), iii.TriggerRequest{FunctionID: "sec::panic"})
		var re *iii.RemoteError
		if !errors.As(err, &re) || re.Code != iii.CodeInvocationFailed || re.Message != "panic: secret-free value" {
			t.Fatalf("SendPanicStacks=%v: %v", send, err)
		}
		if send != (re.Stacktrace != "") || send && !strings.Contains(re.Stacktrace, "security_test.go") {
			t.Fatalf("SendPanicStacks=%v: the caller got stack %q", send, re.Stacktrace)
		}
		if rec.find("ERROR", "panicked", "sec::panic", "security_test.go") == "" {
			t.Fatalf("SendPanicStacks=%v: the stack was not logged at Error:\n%s", send, rec.all())
		}
	}
}

func TestTriggerProviderPanicSendsNoStackByDefault(t *testing.T) {
	for _, send := range []bool{false, true} {
		eng := iiitest.NewEngine(t)
		rec := &logRecorder{}
		opts := fastOptions()
		opts.Logger, opts.SendPanicStacks = slog.New(rec), send
		p := newWorker(t, eng, opts)
		b := newWorker(t, eng, fastOptions())
		if _, err := iii.RegisterTriggerType[any, any](p, "sec::panicky", "panics", iii.TriggerHandlerFuncs[any]{
			Register: func(context.Context, iii.TriggerBinding[any]) error { panic("provider value") },
		}); err != nil {
			t.Fatal(err)
		}
		mustRegister(t, eng, b, "sec::bound", noop)
		trig, err := b.RegisterTrigger(iii.TriggerInput{Type: "sec::panicky", FunctionID: "sec::bound"})
		if err != nil {
			t.Fatal(err)
		}
		err = trig.WaitError(testCtx(t))
		var te *iii.TriggerError
		if !errors.As(err, &te) || te.Message != "panic: provider value" {
			t.Fatalf("SendPanicStacks=%v: refusal %v", send, err)
		}
		if send != (te.Stacktrace != "") {
			t.Fatalf("SendPanicStacks=%v: the binder got stack %q", send, te.Stacktrace)
		}
		if rec.find("ERROR", "panicked", "sec::panicky", "security_test.go") == "" {
			t.Fatalf("SendPanicStacks=%v: the stack was not logged at Error:\n%s", send, rec.all())
		}
	}
}

func TestVoidCallDoesNotReadTheCallersBufferAfterReturning(t *testing.T) {
	eng := iiitest.NewEngine(t)
	handler := newWorker(t, eng, fastOptions())
	caller := newWorker(t, eng, iii.InitOptions{Reconnect: &iii.ReconnectConfig{InitialDelay: 300 * time.Millisecond, Jitter: -1}})
	got := make(chan string, 10)
	mustRegister(t, eng, handler, "sec::sink", func(ctx context.Context, s string) (any, error) {
		got <- s
		return nil, nil
	})
	// Disconnected, the Void call's frame waits for the connection after
	// Trigger has returned.
	eng.DropWorker(caller.WorkerID())
	waitFor(t, "the caller to notice", func() bool { return caller.State() != iii.Connected })
	buf := json.RawMessage(`"first"`)
	if _, err := caller.Trigger(testCtx(t), iii.TriggerRequest{FunctionID: "sec::sink", Payload: buf, Action: iii.Void()}); err != nil {
		t.Fatal(err)
	}
	copy(buf, `"other"`) // the caller reuses its buffer
	select {
	case s := <-got:
		if s != "first" {
			t.Fatalf("the handler got %q: the SDK read the caller's buffer after Trigger returned", s)
		}
	case <-testCtx(t).Done():
		t.Fatal("the Void call never arrived")
	}
}

func TestRawJSONIsCopiedWhereTheSDKKeepsIt(t *testing.T) {
	// Payloads, metadata and channel messages (EncodeJSON) and raw
	// handler results (RawResult) are written after the call returned.
	for name, f := range map[string]func(json.RawMessage) (json.RawMessage, error){
		"EncodeJSON": func(r json.RawMessage) (json.RawMessage, error) { return iii.EncodeJSON(r) },
		"RawResult": func(r json.RawMessage) (json.RawMessage, error) {
			return iii.RawResult(r, json.RawMessage(`{"other":1}`))
		},
	} {
		buf := json.RawMessage(` {"a":1} `)
		out, err := f(buf)
		if err != nil {
			t.Fatal(err)
		}
		copy(buf, ` {"b":2} `)
		if string(out) != `{"a":1}` {
			t.Fatalf("%s: kept %s, aliasing the caller's buffer", name, out)
		}
	}
}

func TestRawResultWithinTheInvocationsDataIsNotCopied(t *testing.T) {
	// The invocation's data is the SDK's own buffer, made for its frame:
	// a handler that echoes it (or part of it) needs no copy.
	in := json.RawMessage(`{"order":{"id":7}}`)
	part := in[9 : len(in)-1]
	for _, r := range []json.RawMessage{in, part} {
		out, err := iii.RawResult(r, in)
		if err != nil {
			t.Fatal(err)
		}
		if &out[0] != &r[0] || string(out) != string(r) {
			t.Fatalf("RawResult(%s) = %s, a copy", r, out)
		}
	}
}

// headerLog records the handshake headers of requests by path.
type headerLog struct {
	mu   sync.Mutex
	seen []http.Header
}

func (h *headerLog) add(r *http.Request) {
	h.mu.Lock()
	h.seen = append(h.seen, r.Header.Clone())
	h.mu.Unlock()
}

func (h *headerLog) first() http.Header {
	h.mu.Lock()
	defer h.mu.Unlock()
	if len(h.seen) == 0 {
		return nil
	}
	return h.seen[0]
}

func TestWorkerAuthHeadersGoOnlyToTheEnginesOwnHost(t *testing.T) {
	var otelAtEngine headerLog
	eng := iiitest.NewEngine(t, iiitest.WithAuth(func(r *http.Request) error {
		if r.URL.Path == "/otel" {
			otelAtEngine.add(r)
		}
		return nil
	}))
	var elsewhere headerLog
	other := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		elsewhere.add(r)
		http.NotFound(w, r)
	}))
	defer other.Close()
	auth := http.Header{"Authorization": {"Bearer worker-secret"}}

	// A telemetry endpoint on another host (here: another port) over ws://.
	opts := telemetryOptions(iii.TelemetryOptions{Endpoint: "ws://" + other.Listener.Addr().String() + "/otel",
		Headers: http.Header{"X-Otel-Key": {"otel-only"}}})
	opts.Headers = auth
	w := newWorker(t, eng, opts)
	waitFor(t, "the telemetry endpoint to be dialled", func() bool { return elsewhere.first() != nil })
	if h := elsewhere.first(); h.Get("Authorization") != "" || h.Get("X-Otel-Key") != "otel-only" {
		t.Fatalf("another host's telemetry endpoint got %v", h)
	}
	w.Shutdown()

	// The engine's own /otel endpoint gets the worker's headers.
	opts = telemetryOptions(iii.TelemetryOptions{Endpoint: eng.URL + "/otel"})
	opts.Headers = auth
	newWorker(t, eng, opts)
	waitFor(t, "the engine's telemetry endpoint to be dialled", func() bool { return otelAtEngine.first() != nil })
	if h := otelAtEngine.first(); h.Get("Authorization") != "Bearer worker-secret" {
		t.Fatalf("the engine's own telemetry endpoint got %v", h)
	}
}

func TestCallerWorkerIDIsOnlyTheMemberTheEngineWrites(t *testing.T) {
	eng, handler, caller := twoWorkers(t)
	ids := make(chan string, 1)
	mustRegister(t, eng, handler, "sec::who", func(ctx context.Context, _ json.RawMessage) (any, error) {
		inv, _ := iii.InvocationFromContext(ctx)
		ids <- inv.CallerWorkerID()
		return nil, nil
	})
	// Members encoding/json would match case-insensitively (the second
	// with a Kelvin sign for the k): not the member the engine writes.
	for _, forged := range []string{`{"_CALLER_WORKER_ID":"forged"}`, `{"_caller_wor` + "\u212a" + `er_id":"forged"}`} {
		if _, err := caller.Trigger(testCtx(t), iii.TriggerRequest{FunctionID: "sec::who", Payload: json.RawMessage(forged)}); err != nil {
			t.Fatal(err)
		}
		if id := <-ids; id != caller.WorkerID() {
			t.Fatalf("payload %s: CallerWorkerID %q, want %q", forged, id, caller.WorkerID())
		}
	}
}

func TestCredentialsInTheEngineURLStayOutOfLogsAndErrors(t *testing.T) {
	secrets := []string{"url-pass", "url-token", "hdr-secret"}
	leaked := func(s string) string {
		for _, sec := range secrets {
			if strings.Contains(s, sec) {
				return sec
			}
		}
		return ""
	}
	// An engine that refuses the handshake, and one that is gone.
	refusing := iiitest.NewEngine(t, iiitest.WithAuth(func(*http.Request) error { return errors.New("no") }))
	gone := iiitest.NewEngine(t)
	goneURL := gone.URL
	gone.Close()
	for _, base := range []string{refusing.URL, goneURL} {
		addr := strings.Replace(base, "ws://", "ws://user:url-pass@", 1) + "/?token=url-token&v=1"
		rec := &logRecorder{}
		w := iii.RegisterWorker(addr, iii.InitOptions{Logger: slog.New(rec), Headers: http.Header{"Authorization": {"hdr-secret"}},
			Reconnect: &iii.ReconnectConfig{InitialDelay: time.Millisecond, MaxRetries: 2}})
		err := w.WaitConnected(testCtx(t))
		w.Shutdown()
		if err == nil {
			t.Fatalf("%s: connected", base)
		}
		if s := leaked(err.Error()); s != "" {
			t.Fatalf("the error leaks %q: %v", s, err)
		}
		if rec.find("url=") == "" {
			t.Fatalf("no record names the URL:\n%s", rec.all())
		}
		if s := leaked(rec.all()); s != "" {
			t.Fatalf("the logs leak %q:\n%s", s, rec.all())
		}
	}
	// An address that does not parse.
	w := iii.RegisterWorker("ws://user:url-pass@127.0.0.1:1/%zz?token=url-token", iii.InitOptions{})
	defer w.Shutdown()
	_, err := w.Trigger(testCtx(t), iii.TriggerRequest{FunctionID: "x::y"})
	if err == nil || leaked(err.Error()) != "" {
		t.Fatalf("invalid address: %v", err)
	}
}

func TestChannelRefsPerValueAreCapped(t *testing.T) {
	var b strings.Builder
	b.WriteString("[")
	for i := range 200 {
		if i > 0 {
			b.WriteString(",")
		}
		fmt.Fprintf(&b, `{"channel_id":"c%d","access_key":"k","direction":"read"}`, i)
	}
	b.WriteString("]")
	data := json.RawMessage(b.String())
	if _, err := iii.FindChannelRefs(data); !errors.Is(err, iii.ErrTooManyChannelRefs) {
		t.Fatalf("200 refs: %v", err)
	}
	if refs, err := iii.FindChannelRefsLimit(data, 200); err != nil || len(refs) != 200 || refs[199].Pointer != "/199" {
		t.Fatalf("200 refs under a limit of 200: %d, %v", len(refs), err)
	}
	eng := iiitest.NewEngine(t)
	w := newWorker(t, eng, fastOptions())
	if ends, err := w.OpenChannelRefs(testCtx(t), data); !errors.Is(err, iii.ErrTooManyChannelRefs) || ends != nil {
		t.Fatalf("OpenChannelRefs of 200 refs: %v", err)
	}
	opts := fastOptions()
	opts.MaxChannelRefs = 1
	w = newWorker(t, eng, opts)
	two := json.RawMessage(`[{"channel_id":"a","access_key":"k","direction":"read"},{"channel_id":"b","access_key":"k","direction":"read"}]`)
	if _, err := w.OpenChannelRefs(testCtx(t), two); !errors.Is(err, iii.ErrTooManyChannelRefs) {
		t.Fatalf("OpenChannelRefs of 2 refs with MaxChannelRefs 1: %v", err)
	}
}

func TestFindChannelRefsScansABigValueInBoundedMemory(t *testing.T) {
	data := make([]byte, 0, 16<<20)
	data = append(data, '[')
	for len(data) < 16<<20-4 {
		data = append(data, "[0],"...)
	}
	data = append(data, "0]"...)
	var before, after runtime.MemStats
	runtime.ReadMemStats(&before)
	refs, err := iii.FindChannelRefs(data)
	runtime.ReadMemStats(&after)
	if err != nil || len(refs) != 0 {
		t.Fatalf("%v, %v", refs, err)
	}
	// What it allocates does not grow with the value (before: ~900 MiB).
	if n := after.TotalAlloc - before.TotalAlloc; n > 1<<20 {
		t.Fatalf("scanning 16 MiB allocated %d bytes", n)
	}
}

func TestChannelIDsAreEscapedInTheURLPath(t *testing.T) {
	for _, id := range []string{"../../otel", "a/b", "x?dir=write#", "%2e%2e"} {
		u, err := iii.ChannelURL("ws://127.0.0.1:1/prefix", iii.StreamChannelRef{ChannelID: id, AccessKey: "k", Direction: iii.ChannelRead}, true)
		if err != nil {
			t.Fatal(err)
		}
		pu, err := url.Parse(u)
		if err != nil {
			t.Fatal(err)
		}
		seg := strings.TrimPrefix(pu.EscapedPath(), "/prefix/ws/channels/")
		if strings.Contains(seg, "/") || pu.Path != "/prefix/ws/channels/"+id || pu.Query().Get("dir") != "read" || pu.Fragment != "" {
			t.Fatalf("id %q: URL %s", id, u)
		}
	}
}

func TestChannelReaderLimits(t *testing.T) {
	eng := iiitest.NewEngine(t)
	opts := fastOptions()
	opts.ChannelReadLimit = 1024
	w := newWorker(t, eng, opts)
	ctx := testCtx(t)

	// A JSON message over the reader's read limit.
	ch, err := w.CreateChannel(ctx, 0)
	if err != nil {
		t.Fatal(err)
	}
	go func() {
		_ = ch.Writer.SendMessage(strings.Repeat("m", 4096))
		_ = ch.Writer.Close()
	}()
	if _, err := ch.Reader.ReadAll(ctx); !errors.Is(err, iii.ErrChannelTooLarge) {
		t.Fatalf("a 4 KiB message with a 1 KiB read limit: %v", err)
	}
	_ = ch.Reader.Close()

	// A stream over ReadAllLimit's bound (in messages under the limit).
	ch2, err := w.CreateChannel(ctx, 0)
	if err != nil {
		t.Fatal(err)
	}
	go func() {
		for range 10 {
			if _, err := ch2.Writer.Write(make([]byte, 1000)); err != nil {
				break
			}
		}
		_ = ch2.Writer.Close()
	}()
	got, err := ch2.Reader.ReadAllLimit(ctx, 5000)
	if !errors.Is(err, iii.ErrChannelTooLarge) || len(got) != 5000 {
		t.Fatalf("ReadAllLimit(5000) of 10000 bytes: %d bytes, %v", len(got), err)
	}
	_ = ch2.Reader.Close()
}

func TestRefusedWorkerBacksOffAndMaxRetriesEndsIt(t *testing.T) {
	var mu sync.Mutex
	var tries []time.Time
	eng := iiitest.NewEngine(t, iiitest.WithAuth(func(*http.Request) error {
		mu.Lock()
		tries = append(tries, time.Now())
		mu.Unlock()
		return errors.New("bad credentials")
	}))
	w := iii.RegisterWorker(eng.URL, iii.InitOptions{Reconnect: &iii.ReconnectConfig{
		InitialDelay: 5 * time.Millisecond, MaxDelay: time.Second, Multiplier: 2, Jitter: -1, MaxRetries: 4}})
	defer w.Shutdown()
	err := w.WaitConnected(testCtx(t))
	if !errors.Is(err, iii.ErrConnectionFailed) || w.State() != iii.Failed {
		t.Fatalf("a worker the engine refuses: %v in state %v, want ErrConnectionFailed", err, w.State())
	}
	mu.Lock()
	defer mu.Unlock()
	if len(tries) != 5 { // the first attempt and 4 retries
		t.Fatalf("%d handshakes, want 5", len(tries))
	}
	// The waits grow: 5, 10, 20, 40 ms (at least; never back to 5 ms).
	for i := 1; i < len(tries); i++ {
		if gap, want := tries[i].Sub(tries[i-1]), 5*time.Millisecond<<(i-1); gap < want {
			t.Fatalf("retry %d came after %v, want at least %v", i, gap, want)
		}
	}
}

func TestZeroLoggerSendsToTheInvocationsWorkerOrToSlog(t *testing.T) {
	var buf syncBuffer
	prev := slog.Default()
	slog.SetDefault(slog.New(slog.NewTextHandler(&buf, nil)))
	t.Cleanup(func() { slog.SetDefault(prev) })

	engA, engB := iiitest.NewEngine(t), iiitest.NewEngine(t)
	a := newWorker(t, engA, telemetryOn())
	b := newWorker(t, engB, telemetryOn()) // registered last
	var zero iii.Logger
	mustRegister(t, engA, a, "log::here", func(ctx context.Context, _ any) (any, error) {
		zero.Info(ctx, "tenant-a record")
		return nil, nil
	})
	if _, _, err := engA.Invoke(testCtx(t), "log::here", []byte(`null`)); err != nil {
		t.Fatal(err)
	}
	if _, err := engA.WaitLogs(testCtx(t), 1); err != nil {
		t.Fatalf("the invocation's worker got no record: %v", err)
	}
	// Outside an invocation: slog, not the last registered worker.
	zero.Info(context.Background(), "no invocation record")
	if !strings.Contains(buf.String(), "no invocation record") {
		t.Fatalf("slog got %q", buf.String())
	}
	b.Shutdown() // flushes B's telemetry
	for _, r := range engB.Logs() {
		t.Fatalf("the last registered worker's engine got a record: %+v", r)
	}
}

func TestStacksFromOtherWorkersAreNotPassedOnByDefault(t *testing.T) {
	eng := iiitest.NewEngine(t)
	devOpts := fastOptions()
	devOpts.SendPanicStacks = true
	dev := newWorker(t, eng, devOpts) // a development worker that sends stacks
	relay := newWorker(t, eng, fastOptions())
	caller := newWorker(t, eng, fastOptions())
	mustRegister(t, eng, dev, "sec::deep", func(ctx context.Context, _ any) (any, error) { panic("deep") })
	mustRegister(t, eng, relay, "sec::relay", func(ctx context.Context, _ any) (any, error) {
		_, err := relay.Trigger(ctx, iii.TriggerRequest{FunctionID: "sec::deep"})
		var re *iii.RemoteError
		if !errors.As(err, &re) || re.Stacktrace == "" {
			return nil, fmt.Errorf("the development worker sent no stack: %v", err)
		}
		return nil, err // passed on as it came
	})
	_, err := caller.Trigger(testCtx(t), iii.TriggerRequest{FunctionID: "sec::relay"})
	var re *iii.RemoteError
	if !errors.As(err, &re) || re.Message != "panic: deep" || re.Stacktrace != "" {
		t.Fatalf("through a relay: %+v", err)
	}
}
