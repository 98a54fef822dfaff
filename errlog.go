package iii

import (
	"context"
	"log/slog"
	"slices"
)

// defaultLogHandler is the SDK's logger when InitOptions.Logger is nil: its
// warnings and errors (connection failures with their cause, refused
// triggers, rejected registrations, replies it could not send) go to
// whatever slog.Default() is when they are logged; records below
// slog.LevelWarn are discarded.
type defaultLogHandler struct {
	ops []func(slog.Handler) slog.Handler // WithAttrs and WithGroup, in order
}

func (h defaultLogHandler) Enabled(ctx context.Context, l slog.Level) bool {
	return l >= slog.LevelWarn && target().Enabled(ctx, l)
}

// target is slog.Default()'s handler, or the fallback on stderr when that
// is one of ours: the SDK's own records never travel to the engine as
// telemetry, which may be what is failing.
func target() slog.Handler {
	h := slog.Default().Handler()
	if _, ours := h.(*slogHandler); ours {
		return stderrHandler
	}
	return h
}

func (h defaultLogHandler) Handle(ctx context.Context, r slog.Record) error {
	t := target()
	for _, op := range h.ops {
		t = op(t)
	}
	return t.Handle(context.WithValue(ctx, fallbackKey{}, true), r)
}

func (h defaultLogHandler) WithAttrs(as []slog.Attr) slog.Handler {
	return defaultLogHandler{ops: append(slices.Clip(h.ops), func(t slog.Handler) slog.Handler { return t.WithAttrs(as) })}
}

func (h defaultLogHandler) WithGroup(name string) slog.Handler {
	return defaultLogHandler{ops: append(slices.Clip(h.ops), func(t slog.Handler) slog.Handler { return t.WithGroup(name) })}
}
