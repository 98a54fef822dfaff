package iii_test

import (
	"context"
	"errors"
	"log/slog"
	"strings"
	"sync"
	"testing"

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
