package iii

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/url"
	"strings"
	"unicode/utf8"

	"github.com/iii-go/iii/channel"
	"github.com/iii-go/iii/connection"
)

// ChannelDirection is the direction of a StreamChannelRef.
type ChannelDirection string

// The channel directions.
const (
	ChannelRead  ChannelDirection = "read"  // the ref opens the reading end
	ChannelWrite ChannelDirection = "write" // the ref opens the writing end
)

// StreamChannelRef is a capability for one end of a data channel, as it
// travels in payloads and results:
// {"channel_id": "...", "access_key": "...", "direction": "read"|"write"}.
// A field of this type in a request or result type encodes and decodes as
// that object; open the end with [III.OpenChannelReader] or
// [III.OpenChannelWriter]. Hand the other party the end it should use:
// the reader ref to a consumer, the writer ref to a producer.
type StreamChannelRef struct {
	ChannelID string           `json:"channel_id"`
	AccessKey string           `json:"access_key"`
	Direction ChannelDirection `json:"direction" jsonschema:"enum=read,enum=write"`
}

// Valid reports whether r has a channel id, an access key and a known
// direction.
func (r StreamChannelRef) Valid() bool {
	return r.ChannelID != "" && r.AccessKey != "" && (r.Direction == ChannelRead || r.Direction == ChannelWrite)
}

// Errors of data channels. Every error of a channel end other than io.EOF
// is a *ChannelError wrapping one of these (or a network error).
var (
	// ErrChannelNotFound: the engine answered HTTP 404 when the end was
	// opened: no channel has this id, or the access key is wrong.
	ErrChannelNotFound = channel.ErrNotFound
	// ErrChannelTaken: the end is open already. The engine hands out each
	// end once. A second open in this process fails at once; for a writer
	// opened elsewhere the engine closes the new socket, and the next Write
	// or Close reports it. (A reader opened elsewhere cannot be told from
	// an empty stream: the engine closes the second reader as it closes a
	// finished one.)
	ErrChannelTaken = channel.ErrTaken
	// ErrChannelClosed: the end was closed by its user.
	ErrChannelClosed = channel.ErrClosed
	// ErrChannelLost: the end's socket dropped mid-stream: the engine went
	// away, or, for a writer, the reader went away. A reader's error then
	// also matches io.ErrUnexpectedEOF.
	ErrChannelLost = channel.ErrLost
	// ErrInvalidChannelRef: a ref lacks its id or key, or has the wrong
	// direction for the end being opened.
	ErrInvalidChannelRef = channel.ErrInvalid
	// ErrChannelTooLarge: a stream exceeded ReadAllLimit's bound, or a
	// message (a text or binary WebSocket message) exceeded the reader's
	// read limit (InitOptions.ChannelReadLimit).
	ErrChannelTooLarge = channel.ErrTooLarge
)

// ChannelError is an error of one end of a data channel: the operation,
// the channel, the HTTP status if the engine refused the WebSocket upgrade,
// and the cause (one of the ErrChannel* sentinels, ErrShutdown, a context
// error or a network error). Use errors.As to read it.
//
// Its fields: Op ("open", "read", "write" or "close"), ChannelID, Dir (the
// end: its String is "read" or "write"), StatusCode (the engine's HTTP
// status when opening failed before the WebSocket upgrade, 404 for
// ErrChannelNotFound; else 0) and Err (the cause, which Unwrap returns).
// It is defined in an implementation package; everything a program needs
// of it is here.
type ChannelError = channel.Error

// Channel is a new data channel: both ends, not connected yet, and their
// refs. Use one end here and pass the other's ref on, or use both.
type Channel struct {
	Writer    *ChannelWriter
	Reader    *ChannelReader
	WriterRef StreamChannelRef
	ReaderRef StreamChannelRef
}

// CreateChannel creates a data channel with engine::channels::create.
// bufferSize is the number of frames the engine buffers between the ends
// (1 to 1024; 0 means the engine's default, 64). The ends connect on first
// use, so a ref passed to another worker can still be opened there.
func (w *III) CreateChannel(ctx context.Context, bufferSize int) (*Channel, error) {
	var in any = struct{}{}
	if bufferSize > 0 {
		in = struct {
			BufferSize int `json:"buffer_size"`
		}{bufferSize}
	}
	refs, err := Call[struct {
		Writer StreamChannelRef `json:"writer"`
		Reader StreamChannelRef `json:"reader"`
	}](ctx, w, "engine::channels::create", in)
	if err != nil {
		return nil, err
	}
	if !refs.Writer.Valid() || !refs.Reader.Valid() {
		// Not the refs themselves: their access keys are secrets.
		return nil, fmt.Errorf("%w: engine::channels::create returned refs without an id, key or direction", ErrInvalidChannelRef)
	}
	return &Channel{
		Writer:    newChannelWriter(w.channelConfig(refs.Writer, channel.Write), refs.Writer),
		Reader:    newChannelReader(w.channelConfig(refs.Reader, channel.Read), refs.Reader),
		WriterRef: refs.Writer, ReaderRef: refs.Reader,
	}, nil
}

// OpenChannelReader opens the reading end of a channel from a read ref
// (the engine is the worker's). The end is a per-channel actor under the
// worker's supervisor: Shutdown closes it.
func (w *III) OpenChannelReader(ctx context.Context, ref StreamChannelRef) (*ChannelReader, error) {
	if err := w.err(); err != nil {
		return nil, err
	}
	if err := checkRef(ref, ChannelRead); err != nil {
		return nil, err
	}
	r := newChannelReader(w.channelConfig(ref, channel.Read), ref)
	if err := r.r.Open(ctx); err != nil {
		return nil, err
	}
	return r, nil
}

// OpenChannelWriter opens the writing end of a channel from a write ref
// (the engine is the worker's). The end is a per-channel actor under the
// worker's supervisor: Shutdown closes it.
func (w *III) OpenChannelWriter(ctx context.Context, ref StreamChannelRef) (*ChannelWriter, error) {
	if err := w.err(); err != nil {
		return nil, err
	}
	if err := checkRef(ref, ChannelWrite); err != nil {
		return nil, err
	}
	cw := newChannelWriter(w.channelConfig(ref, channel.Write), ref)
	if err := cw.w.Open(ctx); err != nil {
		return nil, err
	}
	return cw, nil
}

// NewChannelReader returns the reading end of a channel from a read ref,
// for use without a worker; engineBase is the engine's worker URL (e.g.
// "ws://127.0.0.1:49134"). It connects on first use (or Open), and an
// invalid URL or ref is reported then. With no worker to supervise it, its
// actor runs under a standalone actor system shared by all such ends,
// started with the first and stopped when the last one is closed: close
// every end you open.
func NewChannelReader(engineBase string, ref StreamChannelRef) *ChannelReader {
	return newChannelReader(standaloneConfig(engineBase, ref, channel.Read, ChannelRead), ref)
}

// NewChannelWriter returns the writing end of a channel from a write ref,
// for use without a worker; see NewChannelReader.
func NewChannelWriter(engineBase string, ref StreamChannelRef) *ChannelWriter {
	return newChannelWriter(standaloneConfig(engineBase, ref, channel.Write, ChannelWrite), ref)
}

func (w *III) channelConfig(ref StreamChannelRef, dir channel.Dir) channel.Config {
	u, _ := channelURL(w.address, ref, dir)
	cfg := channel.Config{URL: u, ChannelID: ref.ChannelID, Sys: w.sys, Ctx: w.ctx, StopErr: ErrShutdown,
		TLSConfig: w.opts.TLSConfig, DialTimeout: w.opts.DialTimeout, Log: w.log, ReadLimit: w.opts.ChannelReadLimit}
	if w.initErr != nil {
		cfg.Ctx, cfg.StopErr = canceled, w.initErr
	}
	return cfg
}

// canceled is a context that has ended, for ends of a worker that failed
// to start: they fail at once with the worker's error.
var canceled = func() context.Context {
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	return ctx
}()

func standaloneConfig(engineBase string, ref StreamChannelRef, dir channel.Dir, want ChannelDirection) channel.Config {
	u, err := channelURL(engineBase, ref, dir)
	if err == nil {
		err = checkRef(ref, want)
	}
	cfg := channel.Config{URL: u, ChannelID: ref.ChannelID}
	if err != nil {
		cfg.Ctx, cfg.StopErr = canceled, err
	}
	return cfg
}

func checkRef(ref StreamChannelRef, want ChannelDirection) error {
	if ref.ChannelID == "" || ref.AccessKey == "" || ref.Direction != want {
		return &ChannelError{Op: "open", ChannelID: ref.ChannelID, Dir: dirOf(want),
			Err: fmt.Errorf("%w: want a %s ref with an id and a key, got direction %q", ErrInvalidChannelRef, want, ref.Direction)}
	}
	return nil
}

func dirOf(d ChannelDirection) channel.Dir {
	if d == ChannelWrite {
		return channel.Write
	}
	return channel.Read
}

// channelURL derives an end's URL from the engine's worker URL:
// <base>/ws/channels/<id>?key=<key>&dir=read|write. A path in base is kept
// (an engine behind a proxy prefix); its query is not.
func channelURL(base string, ref StreamChannelRef, dir channel.Dir) (string, error) {
	u, err := url.Parse(base)
	if err != nil {
		return "", fmt.Errorf("%w: engine address %q is not a URL", ErrInvalidChannelRef, connection.RedactURL(base))
	}
	if (u.Scheme != "ws" && u.Scheme != "wss") || u.Host == "" {
		return "", fmt.Errorf("%w: engine address %q is not a ws:// or wss:// URL", ErrInvalidChannelRef, connection.RedactURL(base))
	}
	// The id comes from a ref another worker sent: escaped, it stays one
	// path segment ("../x" or "a/b" cannot reach another endpoint).
	prefix := strings.TrimSuffix(u.EscapedPath(), "/") + "/ws/channels/"
	u.Path = strings.TrimSuffix(u.Path, "/") + "/ws/channels/" + ref.ChannelID
	u.RawPath = prefix + url.PathEscape(ref.ChannelID)
	u.RawQuery = "key=" + url.QueryEscape(ref.AccessKey) + "&dir=" + dir.String()
	u.Fragment = ""
	return u.String(), nil
}

// ChannelWriter is the writing end of a data channel: an io.WriteCloser
// whose binary data goes out in frames of at most 64 KiB, plus
// SendMessage (JSON) and SendText (plain text) for messages interleaved with
// the data. It connects on
// first use (or Open). Write returns once its data is queued (at most
// 512 KiB per writer) and blocks while the queue is full, so a slow reader
// slows the writer down; an error of the socket is reported by the next
// call or by Close. Its methods are safe for concurrent use.
type ChannelWriter struct {
	w   *channel.Writer
	ref StreamChannelRef
}

func newChannelWriter(cfg channel.Config, ref StreamChannelRef) *ChannelWriter {
	return &ChannelWriter{w: channel.NewWriter(cfg), ref: ref}
}

var _ io.WriteCloser = (*ChannelWriter)(nil)

// Ref returns the ref this end was made from.
func (c *ChannelWriter) Ref() StreamChannelRef { return c.ref }

// Open connects the end now if it is not connected yet; it reports
// ErrChannelNotFound, ErrChannelTaken and the like at once.
func (c *ChannelWriter) Open(ctx context.Context) error { return c.w.Open(ctx) }

// Write writes p as binary data (io.Writer).
func (c *ChannelWriter) Write(p []byte) (int, error) { return c.w.Write(p) }

// WriteContext is Write bounded by ctx: if ctx ends while Write waits for
// queue space it returns the number of bytes queued and ctx's error; the
// stream stays usable.
func (c *ChannelWriter) WriteContext(ctx context.Context, p []byte) (int, error) {
	return c.w.WriteContext(ctx, p)
}

// SendMessage sends v as JSON in one text frame, in order with the binary
// data. A json.RawMessage is sent as it is (it must be valid JSON); the
// writer queues a copy, so the caller may reuse it once SendMessage returns.
func (c *ChannelWriter) SendMessage(v any) error {
	return c.SendMessageContext(context.Background(), v)
}

// SendMessageContext is SendMessage bounded by ctx.
func (c *ChannelWriter) SendMessageContext(ctx context.Context, v any) error {
	b, err := encodeJSON(v)
	if err != nil {
		return &ChannelError{Op: "write", ChannelID: c.ref.ChannelID, Dir: channel.Write, Err: err}
	}
	return c.w.SendText(ctx, b)
}

// SendText sends text as it is, in one text frame, in order with the binary
// data: what the Rust and Node SDKs' sendMessage send. The reader's
// OnMessage callbacks get the same bytes. text must be valid UTF-8 (the
// WebSocket rule for text frames).
func (c *ChannelWriter) SendText(text string) error {
	return c.SendTextContext(context.Background(), text)
}

// SendTextContext is SendText bounded by ctx.
func (c *ChannelWriter) SendTextContext(ctx context.Context, text string) error {
	if !utf8.ValidString(text) {
		return &ChannelError{Op: "write", ChannelID: c.ref.ChannelID, Dir: channel.Write, Err: errTextNotUTF8}
	}
	return c.w.SendText(ctx, []byte(text))
}

// errTextNotUTF8 is SendText's refusal of invalid UTF-8.
var errTextNotUTF8 = errors.New("iii: a text message must be valid UTF-8")

// Close ends the stream: queued data is written, then, 10 ms later (the
// engine drains frames for 10 ms after a Close), a Close frame (1000); the
// reader gets io.EOF once it has read everything. It returns the first
// error the end met. A writer never opened is not connected by Close (its
// ref may be in someone else's hands): Open it first to send an empty
// stream.
func (c *ChannelWriter) Close() error { return c.w.Close() }

// CloseContext is Close bounded by ctx: if ctx ends before the data is
// written, the socket is dropped and ctx's error returned.
func (c *ChannelWriter) CloseContext(ctx context.Context) error { return c.w.CloseContext(ctx) }

// ChannelReader is the reading end of a data channel: an io.Reader over
// its binary data, with the messages (text frames: JSON from SendMessage,
// plain text from SendText) interleaved in it delivered to OnMessage
// callbacks in stream order. It connects on first use (or Open).
// Read returns io.EOF once the writer closed the stream and everything was
// read. Read and ReadAll must not be called concurrently; Close and
// OnMessage may be called at any time.
type ChannelReader struct {
	r   *channel.Reader
	ref StreamChannelRef
}

func newChannelReader(cfg channel.Config, ref StreamChannelRef) *ChannelReader {
	return &ChannelReader{r: channel.NewReader(cfg), ref: ref}
}

var _ io.ReadCloser = (*ChannelReader)(nil)

// Ref returns the ref this end was made from.
func (c *ChannelReader) Ref() StreamChannelRef { return c.ref }

// Open connects the end now if it is not connected yet; it reports
// ErrChannelNotFound, ErrChannelTaken and the like at once.
func (c *ChannelReader) Open(ctx context.Context) error { return c.r.Open(ctx) }

// Read reads binary data (io.Reader). It reads straight from the socket;
// the messages met on the way go to the OnMessage callbacks first.
func (c *ChannelReader) Read(p []byte) (int, error) { return c.r.Read(p) }

// ReadAll reads the stream to its end and returns its binary data. If ctx
// ends first the reader is closed and ctx's error returned. It keeps
// whatever the writer sends: for a stream from another worker, prefer
// ReadAllLimit.
func (c *ChannelReader) ReadAll(ctx context.Context) ([]byte, error) { return c.r.ReadAll(ctx) }

// ReadAllLimit is ReadAll for a stream of at most max bytes of binary
// data: once the stream exceeds max, the reader is closed and an error
// matching ErrChannelTooLarge returned (with the first max bytes).
func (c *ChannelReader) ReadAllLimit(ctx context.Context, max int64) ([]byte, error) {
	return c.r.ReadAllLimit(ctx, max)
}

// OnMessage adds a callback for the messages (text frames) of the stream.
// Callbacks run on the goroutine that calls Read (or ReadAll), in
// registration order, after Read has returned every byte that precedes
// the message and before it returns any byte that follows it. Messages
// read while no callback is set are dropped.
//
// msg holds the frame's text exactly as the writer sent it, unchecked: JSON
// from SendMessage, any text from SendText and from the Rust and Node SDKs'
// sendMessage (which send the caller's string as is). Use string(msg) for
// text, json.Unmarshal for JSON.
func (c *ChannelReader) OnMessage(fn func(msg json.RawMessage)) {
	if fn == nil {
		return
	}
	c.r.OnText(func(b []byte) { fn(json.RawMessage(b)) })
}

// Close closes the reader: the engine stops forwarding (the writer's next
// write fails) and a Read in progress returns an error matching
// ErrChannelClosed. A reader never opened is not connected by Close.
func (c *ChannelReader) Close() error { return c.r.Close() }

// ChannelRefAt is a channel ref found in a JSON value.
type ChannelRefAt struct {
	// Pointer locates the ref in the value (RFC 6901), e.g. "/upload" or
	// "/files/0"; "" is the value itself.
	Pointer string
	Ref     StreamChannelRef
}

// FindChannelRefs returns the channel refs in a JSON value: every object,
// at any depth, with a string channel_id, a string access_key and a
// direction of "read" or "write" (other members are allowed; a ref's
// members are not searched further), ordered by pointer with object keys
// sorted. A value holding more than DefaultMaxChannelRefs refs is refused
// with an error matching ErrTooManyChannelRefs (see FindChannelRefsLimit).
func FindChannelRefs(data json.RawMessage) ([]ChannelRefAt, error) {
	return FindChannelRefsLimit(data, DefaultMaxChannelRefs)
}

var pointerEscaper = strings.NewReplacer("~", "~0", "/", "~1")

func escapePointer(s string) string { return pointerEscaper.Replace(s) }

// ChannelEnds are the ends opened for the refs of a JSON value, by the
// pointer of each ref (see FindChannelRefs).
type ChannelEnds struct {
	Readers map[string]*ChannelReader
	Writers map[string]*ChannelWriter
}

// Close closes every end and returns the first error.
func (e *ChannelEnds) Close() error {
	var first error
	for _, w := range e.Writers {
		if err := w.Close(); err != nil && first == nil {
			first = err
		}
	}
	for _, r := range e.Readers {
		if err := r.Close(); err != nil && first == nil {
			first = err
		}
	}
	return first
}

// OpenChannelRefs finds the channel refs in a JSON value (a payload or a
// result) and opens the end each one names: a reader for a read ref, a
// writer for a write ref. If one fails to open, those already open are
// closed and the error returned.
//
// A value holding more than InitOptions.MaxChannelRefs refs (default
// DefaultMaxChannelRefs) is refused with an error matching
// ErrTooManyChannelRefs before any end is opened.
func (w *III) OpenChannelRefs(ctx context.Context, data json.RawMessage) (*ChannelEnds, error) {
	refs, err := FindChannelRefsLimit(data, w.opts.MaxChannelRefs)
	if err != nil {
		return nil, err
	}
	ends := &ChannelEnds{Readers: map[string]*ChannelReader{}, Writers: map[string]*ChannelWriter{}}
	for _, f := range refs {
		if f.Ref.Direction == ChannelRead {
			var r *ChannelReader
			if r, err = w.OpenChannelReader(ctx, f.Ref); err == nil {
				ends.Readers[f.Pointer] = r
			}
		} else {
			var cw *ChannelWriter
			if cw, err = w.OpenChannelWriter(ctx, f.Ref); err == nil {
				ends.Writers[f.Pointer] = cw
			}
		}
		if err != nil {
			_ = ends.Close()
			return nil, err
		}
	}
	return ends, nil
}
