package iii_test

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/url"
	"runtime"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/gorilla/websocket"

	"github.com/iii-go/iii"
	"github.com/iii-go/iii/test/iiitest"
)

// pattern fills p with the stream's bytes from offset off on: byte i of
// the stream is (i*31 + 7) & 0xff, as in the Node interop scripts.
func pattern(p []byte, off int64) {
	for i := range p {
		p[i] = byte((off+int64(i))*31 + 7)
	}
}

// writePattern writes n pattern bytes in writes of size step and returns
// their sha256.
func writePattern(t testing.TB, w io.Writer, n int64, step int) string {
	t.Helper()
	h := sha256.New()
	buf := make([]byte, step)
	for off := int64(0); off < n; {
		p := buf[:min(int64(step), n-off)]
		pattern(p, off)
		h.Write(p)
		if _, err := w.Write(p); err != nil {
			t.Errorf("Write at %d: %v", off, err)
			return ""
		}
		off += int64(len(p))
	}
	return hex.EncodeToString(h.Sum(nil))
}

type digest struct {
	Bytes  int64  `json:"bytes"`
	SHA256 string `json:"sha256"`
}

type upload struct {
	Name   string               `json:"name"`
	Upload iii.StreamChannelRef `json:"upload"`
}

func TestChannelStreams64MiBToAProcessorThroughAReaderRefInThePayload(t *testing.T) {
	eng := iiitest.NewEngine(t)
	sender := newWorker(t, eng, iii.InitOptions{})
	processor := newWorker(t, eng, iii.InitOptions{})
	// 64 MiB under -race on a loaded machine: a generous bound, not a
	// speed check.
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()

	iii.RegisterFunction(processor, "files::digest", func(ctx context.Context, in upload) (digest, error) {
		r, err := processor.OpenChannelReader(ctx, in.Upload)
		if err != nil {
			return digest{}, err
		}
		defer r.Close()
		h := sha256.New()
		n, err := io.Copy(h, r)
		return digest{Bytes: n, SHA256: hex.EncodeToString(h.Sum(nil))}, err
	})
	if err := eng.WaitFunction(ctx, "files::digest"); err != nil {
		t.Fatal(err)
	}

	ch, err := sender.CreateChannel(ctx, 0)
	if err != nil {
		t.Fatal(err)
	}
	type outcome struct {
		d   digest
		err error
	}
	res := make(chan outcome, 1)
	go func() {
		d, err := iii.Call[digest](ctx, sender, "files::digest", upload{Name: "blob", Upload: ch.ReaderRef}, iii.WithCallTimeout(3*time.Minute))
		res <- outcome{d, err}
	}()
	const total = 64 << 20
	want := writePattern(t, ch.Writer, total, 1<<20)
	if err := ch.Writer.Close(); err != nil {
		t.Fatalf("Close: %v", err)
	}
	got := <-res
	if got.err != nil {
		t.Fatalf("files::digest: %v", got.err)
	}
	if got.d.Bytes != total || got.d.SHA256 != want {
		t.Fatalf("processor read %d bytes with sha256 %s, want %d bytes with %s", got.d.Bytes, got.d.SHA256, total, want)
	}
}

func TestChannelKeepsMessagesInOrderWithTheData(t *testing.T) {
	eng := iiitest.NewEngine(t)
	w := newWorker(t, eng, iii.InitOptions{})
	ctx := testCtx(t)
	ch, err := w.CreateChannel(ctx, 4)
	if err != nil {
		t.Fatal(err)
	}

	// Parts of several frames, of one byte, and of none, each followed by
	// a message; two messages in a row at the end.
	parts := []int{200000, 1, 0, 65536, 3 * 65536, 7}
	var wantOffsets []int64
	var wantMsgs []string
	go func() {
		var off int64
		for k, n := range parts {
			p := make([]byte, n)
			pattern(p, off)
			if _, err := ch.Writer.Write(p); err != nil {
				t.Errorf("Write: %v", err)
			}
			off += int64(n)
			if err := ch.Writer.SendMessage(map[string]any{"seq": k, "text": fmt.Sprintf("message %d ✓", k)}); err != nil {
				t.Errorf("SendMessage: %v", err)
			}
		}
		if err := ch.Writer.SendMessage(json.RawMessage(`{"seq":"last"}`)); err != nil {
			t.Errorf("SendMessage: %v", err)
		}
		if err := ch.Writer.Close(); err != nil {
			t.Errorf("Close: %v", err)
		}
	}()
	var off int64
	for k, n := range parts {
		off += int64(n)
		wantOffsets = append(wantOffsets, off)
		wantMsgs = append(wantMsgs, fmt.Sprintf(`{"seq":%d,"text":"message %d ✓"}`, k, k))
	}
	wantOffsets = append(wantOffsets, off)
	wantMsgs = append(wantMsgs, `{"seq":"last"}`)

	var read int64
	var gotOffsets []int64
	var gotMsgs []string
	ch.Reader.OnMessage(func(m json.RawMessage) {
		gotOffsets = append(gotOffsets, read)
		gotMsgs = append(gotMsgs, string(m))
	})
	var all bytes.Buffer
	buf := make([]byte, 10000) // not a divisor of the frame sizes
	for {
		n, err := ch.Reader.Read(buf)
		all.Write(buf[:n])
		read += int64(n)
		if err == io.EOF {
			break
		}
		if err != nil {
			t.Fatalf("Read: %v", err)
		}
	}
	want := make([]byte, off)
	pattern(want, 0)
	if !bytes.Equal(all.Bytes(), want) {
		t.Fatalf("read %d bytes that differ from the %d written", all.Len(), len(want))
	}
	if fmt.Sprint(gotOffsets) != fmt.Sprint(wantOffsets) {
		t.Errorf("messages came after %v bytes, want %v", gotOffsets, wantOffsets)
	}
	if fmt.Sprint(gotMsgs) != fmt.Sprint(wantMsgs) {
		t.Errorf("messages %q, want %q", gotMsgs, wantMsgs)
	}
	if n, err := ch.Reader.Read(buf); n != 0 || err != io.EOF {
		t.Errorf("Read after EOF = %d, %v; want 0, io.EOF", n, err)
	}
	if err := ch.Reader.Close(); err != nil {
		t.Errorf("Close after EOF: %v", err)
	}
}

func TestChannelReaderGetsEOFWhenTheWriterClosesAnEmptyStream(t *testing.T) {
	eng := iiitest.NewEngine(t)
	w := newWorker(t, eng, iii.InitOptions{})
	ctx := testCtx(t)
	ch, err := w.CreateChannel(ctx, 0)
	if err != nil {
		t.Fatal(err)
	}
	if err := ch.Writer.Open(ctx); err != nil {
		t.Fatal(err)
	}
	if err := ch.Writer.Close(); err != nil {
		t.Fatal(err)
	}
	data, err := ch.Reader.ReadAll(ctx)
	if err != nil || len(data) != 0 {
		t.Fatalf("ReadAll = %d bytes, %v; want 0, nil", len(data), err)
	}
	if err := ch.Writer.Close(); err != nil {
		t.Errorf("second Close: %v", err)
	}
	if _, err := ch.Writer.Write([]byte("late")); !errors.Is(err, iii.ErrChannelClosed) {
		t.Errorf("Write after Close: %v, want ErrChannelClosed", err)
	}
}

func TestChannelWriterNeverOpenedIsNotConnectedByClose(t *testing.T) {
	eng := iiitest.NewEngine(t)
	w := newWorker(t, eng, iii.InitOptions{})
	ctx := testCtx(t)
	ch, err := w.CreateChannel(ctx, 0)
	if err != nil {
		t.Fatal(err)
	}
	if err := ch.Writer.Close(); err != nil { // the writer ref may be elsewhere
		t.Fatal(err)
	}
	other, err := w.OpenChannelWriter(ctx, ch.WriterRef) // as that party would
	if err != nil {
		t.Fatalf("the writer end was taken by Close: %v", err)
	}
	go func() {
		other.Write([]byte("from elsewhere"))
		other.Close()
	}()
	data, err := ch.Reader.ReadAll(ctx)
	if err != nil || string(data) != "from elsewhere" {
		t.Fatalf("ReadAll = %q, %v", data, err)
	}
}

// heapInUse returns the bytes of live heap after a collection.
func heapInUse() int64 {
	runtime.GC()
	var m runtime.MemStats
	runtime.ReadMemStats(&m)
	return int64(m.HeapAlloc)
}

func TestChannelSlowReaderBlocksTheWriterAndBoundsMemory(t *testing.T) {
	eng := iiitest.NewEngine(t)
	w := newWorker(t, eng, iii.InitOptions{})
	// A hang guard only: this test moves a lot of data, slowly.
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	ch, err := w.CreateChannel(ctx, 16)
	if err != nil {
		t.Fatal(err)
	}
	// Between the writer and the reader sit: the writer's queue (512 KiB),
	// the engine's buffer (16 frames), and the TCP buffers of two loopback
	// sockets (a few MiB each at most). The bound is generous and has
	// nothing to do with the size of the stream, which is unlimited here.
	const bound = 48 << 20
	base := heapInUse()

	var written atomic.Int64
	blocked := make(chan int64, 1)
	writeErr, closeErr := make(chan error, 1), make(chan error, 1)
	go func() {
		buf := make([]byte, 256<<10)
		probing := true
		for off := int64(0); ; {
			pattern(buf, off)
			for rest := buf; len(rest) > 0; {
				wctx, cancel := ctx, context.CancelFunc(func() {})
				if probing {
					// A write that cannot finish in a while is a blocked
					// writer. Timing decides when to look, not the verdict.
					wctx, cancel = context.WithTimeout(ctx, 100*time.Millisecond)
				}
				n, err := ch.Writer.WriteContext(wctx, rest)
				cancel()
				rest = rest[n:]
				off += int64(n)
				written.Store(off)
				if probing && errors.Is(err, context.DeadlineExceeded) && ctx.Err() == nil {
					probing = false
					blocked <- off
					continue
				}
				if err != nil {
					writeErr <- err
					// A reader waiting for more fails instead of hanging.
					closeErr <- ch.Writer.Close()
					return
				}
			}
		}
	}()

	// The reader reads nothing until the writer is blocked.
	var atBlock int64
	select {
	case atBlock = <-blocked:
	case err := <-writeErr:
		t.Fatalf("writer: %v", err)
	}
	if atBlock > bound {
		t.Fatalf("the writer got %d bytes ahead of a reader that read nothing (bound %d)", atBlock, bound)
	}
	if grown := heapInUse() - base; grown > bound {
		t.Fatalf("the heap grew by %d bytes while the writer was blocked (bound %d)", grown, bound)
	}

	// Now a slow reader: small reads, each checking how far ahead the
	// writer is, over a stream several times the bound.
	var read int64
	buf := make([]byte, 16<<10)
	want := make([]byte, len(buf))
	var maxAhead, maxHeap int64
	for read < 2*bound {
		n, err := ch.Reader.Read(buf)
		if err != nil {
			t.Fatalf("Read at %d: %v (writer: %v)", read, err, <-writeErr)
		}
		pattern(want[:n], read)
		if !bytes.Equal(buf[:n], want[:n]) {
			t.Fatalf("wrong bytes at %d", read)
		}
		read += int64(n)
		maxAhead = max(maxAhead, written.Load()-read)
		if read%(16<<20) < int64(n) {
			maxHeap = max(maxHeap, heapInUse()-base)
		}
	}
	if maxAhead > bound || maxHeap > bound {
		t.Fatalf("writer up to %d bytes ahead, heap up to %d bytes above the start (bound %d)", maxAhead, maxHeap, bound)
	}
	t.Logf("writer blocked %d bytes ahead; at most %d ahead and %d heap growth over %d bytes read", atBlock, maxAhead, maxHeap, read)

	// The reader leaves: the engine drops the writer, whose writes fail.
	if err := ch.Reader.Close(); err != nil {
		t.Fatal(err)
	}
	err = <-writeErr
	if !errors.Is(err, iii.ErrChannelLost) {
		t.Fatalf("write after the reader left: %v, want ErrChannelLost", err)
	}
	var ce *iii.ChannelError
	if !errors.As(err, &ce) || ce.Op != "write" || ce.ChannelID != ch.WriterRef.ChannelID {
		t.Fatalf("error %v is not a *ChannelError for the write", err)
	}
	if err := <-closeErr; !errors.Is(err, iii.ErrChannelLost) {
		t.Fatalf("Close after the loss: %v, want ErrChannelLost", err)
	}
}

func TestOpeningAnUnknownChannelOrWithAWrongKeyFailsWithChannelNotFound(t *testing.T) {
	eng := iiitest.NewEngine(t)
	w := newWorker(t, eng, iii.InitOptions{})
	ctx := testCtx(t)
	ch, err := w.CreateChannel(ctx, 0)
	if err != nil {
		t.Fatal(err)
	}
	wrongKey := ch.ReaderRef
	wrongKey.AccessKey = "not-the-key"
	unknown := iii.StreamChannelRef{ChannelID: "no-such-channel", AccessKey: ch.ReaderRef.AccessKey, Direction: iii.ChannelRead}
	for name, ref := range map[string]iii.StreamChannelRef{"wrong key": wrongKey, "unknown id": unknown} {
		_, err := w.OpenChannelReader(ctx, ref)
		if !errors.Is(err, iii.ErrChannelNotFound) {
			t.Errorf("%s: %v, want ErrChannelNotFound", name, err)
		}
		var ce *iii.ChannelError
		if !errors.As(err, &ce) || ce.StatusCode != 404 || ce.Op != "open" || ce.ChannelID != ref.ChannelID {
			t.Errorf("%s: %#v is not a *ChannelError with status 404", name, err)
		}
		wref := ref
		wref.Direction = iii.ChannelWrite
		cw := iii.NewChannelWriter(eng.URL, wref) // lazy: the first use reports it
		if _, err := cw.Write([]byte("x")); !errors.Is(err, iii.ErrChannelNotFound) {
			t.Errorf("%s: standalone Write: %v, want ErrChannelNotFound", name, err)
		}
	}
	// The right key still works: failed opens took nothing.
	go func() { ch.Writer.Write([]byte("ok")); ch.Writer.Close() }()
	if data, err := ch.Reader.ReadAll(ctx); err != nil || string(data) != "ok" {
		t.Fatalf("ReadAll = %q, %v", data, err)
	}
}

func TestOpeningARefOfTheWrongDirectionOrWithoutAKeyFails(t *testing.T) {
	eng := iiitest.NewEngine(t)
	w := newWorker(t, eng, iii.InitOptions{})
	ctx := testCtx(t)
	ch, err := w.CreateChannel(ctx, 0)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := w.OpenChannelReader(ctx, ch.WriterRef); !errors.Is(err, iii.ErrInvalidChannelRef) {
		t.Errorf("reader from a write ref: %v", err)
	}
	if _, err := w.OpenChannelWriter(ctx, ch.ReaderRef); !errors.Is(err, iii.ErrInvalidChannelRef) {
		t.Errorf("writer from a read ref: %v", err)
	}
	noKey := ch.ReaderRef
	noKey.AccessKey = ""
	if _, err := w.OpenChannelReader(ctx, noKey); !errors.Is(err, iii.ErrInvalidChannelRef) {
		t.Errorf("ref without a key: %v", err)
	}
	if _, err := iii.NewChannelReader("http://not-a-ws-url", ch.ReaderRef).Read(make([]byte, 1)); !errors.Is(err, iii.ErrInvalidChannelRef) {
		t.Errorf("standalone reader with a bad engine URL: %v", err)
	}
}

func TestOpeningAnEndTwiceInOneProcessFailsWithChannelTaken(t *testing.T) {
	eng := iiitest.NewEngine(t)
	w := newWorker(t, eng, iii.InitOptions{})
	ctx := testCtx(t)
	ch, err := w.CreateChannel(ctx, 0)
	if err != nil {
		t.Fatal(err)
	}
	r, err := w.OpenChannelReader(ctx, ch.ReaderRef)
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	if _, err := w.OpenChannelReader(ctx, ch.ReaderRef); !errors.Is(err, iii.ErrChannelTaken) {
		t.Errorf("second reader: %v, want ErrChannelTaken", err)
	}
	if _, err := ch.Reader.Read(make([]byte, 1)); !errors.Is(err, iii.ErrChannelTaken) {
		t.Errorf("the channel's own reader after the ref was opened: %v, want ErrChannelTaken", err)
	}
	cw, err := w.OpenChannelWriter(ctx, ch.WriterRef)
	if err != nil {
		t.Fatal(err)
	}
	defer cw.Close()
	if err := iii.NewChannelWriter(eng.URL, ch.WriterRef).Open(ctx); !errors.Is(err, iii.ErrChannelTaken) {
		t.Errorf("second writer: %v, want ErrChannelTaken", err)
	}
}

// rawEnd opens an end with a plain WebSocket, as another process would.
func rawEnd(t testing.TB, eng *iiitest.Engine, ref iii.StreamChannelRef, dir string) *websocket.Conn {
	t.Helper()
	u := eng.URL + "/ws/channels/" + ref.ChannelID + "?key=" + url.QueryEscape(ref.AccessKey) + "&dir=" + dir
	ws, _, err := websocket.DefaultDialer.Dial(u, nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ws.Close() })
	return ws
}

func TestWriterWhoseEndWasTakenElsewhereFailsWithChannelTaken(t *testing.T) {
	eng := iiitest.NewEngine(t)
	w := newWorker(t, eng, iii.InitOptions{})
	ctx := testCtx(t)
	ch, err := w.CreateChannel(ctx, 0)
	if err != nil {
		t.Fatal(err)
	}
	// Another process takes the writer; a message it sends reaching the
	// reader proves that it holds the end.
	raw := rawEnd(t, eng, ch.WriterRef, "write")
	if err := raw.WriteMessage(websocket.TextMessage, []byte(`"taken"`)); err != nil {
		t.Fatal(err)
	}
	got := make(chan string, 1)
	ch.Reader.OnMessage(func(m json.RawMessage) { got <- string(m) })
	readDone := make(chan error, 1)
	go func() {
		_, err := ch.Reader.ReadAll(ctx)
		readDone <- err
	}()
	if m := <-got; m != `"taken"` {
		t.Fatalf("message %s", m)
	}

	cw, err := w.OpenChannelWriter(ctx, ch.WriterRef)
	if err != nil {
		t.Fatalf("open: %v (the engine upgrades, then closes)", err)
	}
	// The engine closes the socket at once; a write or the Close reports it.
	_, werr := cw.Write(make([]byte, 1024))
	if werr == nil {
		werr = cw.Close()
	}
	if !errors.Is(werr, iii.ErrChannelTaken) {
		t.Fatalf("writer on a taken end: %v, want ErrChannelTaken", werr)
	}
	raw.WriteMessage(websocket.CloseMessage, websocket.FormatCloseMessage(websocket.CloseNormalClosure, ""))
	if err := <-readDone; err != nil {
		t.Fatalf("reader: %v", err)
	}
}

func TestReaderWhoseEndWasTakenElsewhereSeesAnEmptyStream(t *testing.T) {
	// The engine closes a second reader as it closes a finished one; the
	// SDK cannot tell them apart (documented on ErrChannelTaken).
	eng := iiitest.NewEngine(t)
	w := newWorker(t, eng, iii.InitOptions{})
	ctx := testCtx(t)
	ch, err := w.CreateChannel(ctx, 0)
	if err != nil {
		t.Fatal(err)
	}
	// Another process takes the reader; a message reaching it proves it.
	raw := rawEnd(t, eng, ch.ReaderRef, "read")
	if err := ch.Writer.SendMessage("first"); err != nil {
		t.Fatal(err)
	}
	if _, m, err := raw.ReadMessage(); err != nil || string(m) != `"first"` {
		t.Fatalf("raw reader: %s, %v", m, err)
	}
	data, err := ch.Reader.ReadAll(ctx)
	if err != nil || len(data) != 0 {
		t.Fatalf("ReadAll = %d bytes, %v; want an empty stream", len(data), err)
	}
	if err := ch.Writer.Close(); err != nil {
		t.Fatal(err)
	}
}

func TestEngineGoingAwayMidStreamFailsReadAndWrite(t *testing.T) {
	eng := iiitest.NewEngine(t)
	w := newWorker(t, eng, fastOptions())
	ctx := testCtx(t)
	// Two channels, so that each end under test has no live peer: the
	// engine takes a writer's drop for the end of the stream and would
	// send the reader a Close (EOF), racing with its own shutdown.
	up, err := w.CreateChannel(ctx, 4)
	if err != nil {
		t.Fatal(err)
	}
	down, err := w.CreateChannel(ctx, 4)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := up.Writer.Write(make([]byte, 100<<10)); err != nil {
		t.Fatal(err)
	}
	if err := down.Reader.Open(ctx); err != nil {
		t.Fatal(err)
	}
	readErr := make(chan error, 1)
	go func() {
		_, err := down.Reader.Read(make([]byte, 10)) // waits for a writer
		readErr <- err
	}()
	eng.Stop() // every socket dropped, no Close frames

	if err := <-readErr; !errors.Is(err, iii.ErrChannelLost) || !errors.Is(err, io.ErrUnexpectedEOF) {
		t.Errorf("Read after the engine left: %v, want ErrChannelLost and io.ErrUnexpectedEOF", err)
	}
	var werr error
	for werr == nil {
		_, werr = up.Writer.Write(make([]byte, 64<<10))
	}
	if !errors.Is(werr, iii.ErrChannelLost) {
		t.Errorf("Write after the engine left: %v, want ErrChannelLost", werr)
	}
	if err := up.Writer.Close(); !errors.Is(err, iii.ErrChannelLost) {
		t.Errorf("Close: %v, want ErrChannelLost", err)
	}
	if err := down.Reader.Close(); err != nil {
		t.Errorf("reader Close: %v", err)
	}
	// TestMain checks that no goroutine was left behind.
}

func TestClosingAReaderEndsABlockedRead(t *testing.T) {
	eng := iiitest.NewEngine(t)
	w := newWorker(t, eng, iii.InitOptions{})
	ctx := testCtx(t)
	ch, err := w.CreateChannel(ctx, 0)
	if err != nil {
		t.Fatal(err)
	}
	if err := ch.Reader.Open(ctx); err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() {
		_, err := ch.Reader.Read(make([]byte, 10))
		done <- err
	}()
	if err := ch.Reader.Close(); err != nil {
		t.Fatal(err)
	}
	if err := <-done; !errors.Is(err, iii.ErrChannelClosed) {
		t.Fatalf("Read: %v, want ErrChannelClosed", err)
	}
}

func TestShutdownClosesTheWorkersChannels(t *testing.T) {
	eng := iiitest.NewEngine(t)
	w := newWorker(t, eng, iii.InitOptions{})
	ctx := testCtx(t)
	ch, err := w.CreateChannel(ctx, 1)
	if err != nil {
		t.Fatal(err)
	}
	if err := ch.Reader.Open(ctx); err != nil {
		t.Fatal(err)
	}
	// A writer blocked on a full channel.
	writeDone := make(chan error, 1)
	go func() {
		_, err := ch.Writer.Write(make([]byte, 64<<20))
		writeDone <- err
	}()
	readDone := make(chan error, 1)
	go func() {
		_, err := ch.Reader.Read(make([]byte, 1)) // some data, then blocks
		if err == nil {
			_, err = ch.Reader.ReadAll(context.Background())
		}
		readDone <- err
	}()
	w.Shutdown()
	if err := <-writeDone; !errors.Is(err, iii.ErrShutdown) {
		t.Errorf("Write: %v, want ErrShutdown", err)
	}
	if err := <-readDone; !errors.Is(err, iii.ErrShutdown) && !errors.Is(err, iii.ErrChannelLost) {
		t.Errorf("Read: %v, want ErrShutdown", err)
	}
	if _, err := w.CreateChannel(ctx, 0); !errors.Is(err, iii.ErrShutdown) {
		t.Errorf("CreateChannel after Shutdown: %v", err)
	}
	if _, err := w.OpenChannelReader(ctx, ch.ReaderRef); !errors.Is(err, iii.ErrShutdown) {
		t.Errorf("OpenChannelReader after Shutdown: %v", err)
	}
}

func TestStandaloneEndsWorkWithoutAWorker(t *testing.T) {
	eng := iiitest.NewEngine(t)
	w := newWorker(t, eng, iii.InitOptions{})
	ctx := testCtx(t)
	ch, err := w.CreateChannel(ctx, 0)
	if err != nil {
		t.Fatal(err)
	}
	w.Shutdown() // the channel outlives the worker that created it

	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		cw := iii.NewChannelWriter(eng.URL+"/", ch.WriterRef)
		cw.SendMessage("hello")
		cw.Write([]byte("standalone"))
		if err := cw.Close(); err != nil {
			t.Errorf("Close: %v", err)
		}
	}()
	r := iii.NewChannelReader(eng.URL, ch.ReaderRef)
	var msgs []string
	r.OnMessage(func(m json.RawMessage) { msgs = append(msgs, string(m)) })
	data, err := r.ReadAll(ctx)
	wg.Wait()
	if err != nil || string(data) != "standalone" || fmt.Sprint(msgs) != `["hello"]` {
		t.Fatalf("ReadAll = %q, %v, messages %v", data, err, msgs)
	}
	if err := r.Close(); err != nil {
		t.Fatal(err)
	}
	// TestMain checks that the standalone system stopped with its last end.
}

func TestStreamChannelRefEncodesAsTheWireObject(t *testing.T) {
	in := upload{Name: "a", Upload: iii.StreamChannelRef{ChannelID: "c1", AccessKey: "k/1+", Direction: iii.ChannelRead}}
	b, err := json.Marshal(in)
	if err != nil {
		t.Fatal(err)
	}
	const want = `{"name":"a","upload":{"channel_id":"c1","access_key":"k/1+","direction":"read"}}`
	if string(b) != want {
		t.Fatalf("encoded %s, want %s", b, want)
	}
	var out upload
	if err := json.Unmarshal(b, &out); err != nil || out != in {
		t.Fatalf("decoded %+v, %v", out, err)
	}
	if !out.Upload.Valid() || (iii.StreamChannelRef{ChannelID: "c", AccessKey: "k", Direction: "both"}).Valid() {
		t.Fatal("Valid")
	}
}

func TestFindChannelRefsFindsRefsAnywhereInAValue(t *testing.T) {
	data := json.RawMessage(`{
		"upload": {"channel_id":"c1","access_key":"k1","direction":"read"},
		"files": [1, {"out": {"channel_id":"c2","access_key":"k2","direction":"write","extra":true}}],
		"a/b": {"channel_id":"c3","access_key":"k3","direction":"read"},
		"not1": {"channel_id":"c4","access_key":"k4","direction":"sideways"},
		"not2": {"channel_id":4,"access_key":"k5","direction":"read"},
		"not3": {"channel_id":"c6","direction":"read"}
	}`)
	got, err := iii.FindChannelRefs(data)
	if err != nil {
		t.Fatal(err)
	}
	want := []iii.ChannelRefAt{
		{Pointer: "/a~1b", Ref: iii.StreamChannelRef{ChannelID: "c3", AccessKey: "k3", Direction: iii.ChannelRead}},
		{Pointer: "/files/1/out", Ref: iii.StreamChannelRef{ChannelID: "c2", AccessKey: "k2", Direction: iii.ChannelWrite}},
		{Pointer: "/upload", Ref: iii.StreamChannelRef{ChannelID: "c1", AccessKey: "k1", Direction: iii.ChannelRead}},
	}
	if fmt.Sprint(got) != fmt.Sprint(want) {
		t.Fatalf("found %v\nwant  %v", got, want)
	}
	if refs, err := iii.FindChannelRefs(json.RawMessage(`{"channel_id":"c","access_key":"k","direction":"write"}`)); err != nil || len(refs) != 1 || refs[0].Pointer != "" {
		t.Fatalf("a ref at the root: %v, %v", refs, err)
	}
	if _, err := iii.FindChannelRefs(json.RawMessage(`{`)); !errors.Is(err, iii.ErrInvalidPayload) {
		t.Fatalf("invalid JSON: %v", err)
	}
}

func TestOpenChannelRefsOpensTheEndEachRefNames(t *testing.T) {
	eng := iiitest.NewEngine(t)
	caller := newWorker(t, eng, iii.InitOptions{})
	worker := newWorker(t, eng, iii.InitOptions{})
	ctx := testCtx(t)

	// An upper-casing function: it reads "in" and writes "out", both refs
	// found in its raw payload.
	worker.RegisterFunctionRaw("text::upper", func(ctx context.Context, payload json.RawMessage) (any, error) {
		ends, err := worker.OpenChannelRefs(ctx, payload)
		if err != nil {
			return nil, err
		}
		defer ends.Close()
		data, err := ends.Readers["/in"].ReadAll(ctx)
		if err != nil {
			return nil, err
		}
		if _, err := ends.Writers["/out"].Write(bytes.ToUpper(data)); err != nil {
			return nil, err
		}
		return len(data), ends.Writers["/out"].Close()
	})
	if err := eng.WaitFunction(ctx, "text::upper"); err != nil {
		t.Fatal(err)
	}
	in, err := caller.CreateChannel(ctx, 0)
	if err != nil {
		t.Fatal(err)
	}
	out, err := caller.CreateChannel(ctx, 0)
	if err != nil {
		t.Fatal(err)
	}
	res := make(chan error, 1)
	go func() {
		n, err := iii.Call[int](ctx, caller, "text::upper", map[string]any{"in": in.ReaderRef, "out": out.WriterRef})
		if err == nil && n != 11 {
			err = fmt.Errorf("function read %d bytes", n)
		}
		res <- err
	}()
	in.Writer.Write([]byte("hello world"))
	if err := in.Writer.Close(); err != nil {
		t.Fatal(err)
	}
	got, err := out.Reader.ReadAll(ctx)
	if err != nil || string(got) != "HELLO WORLD" {
		t.Fatalf("ReadAll = %q, %v", got, err)
	}
	if err := <-res; err != nil {
		t.Fatal(err)
	}

	// A ref that does not open: nothing stays open.
	bad := json.RawMessage(`{"a":{"channel_id":"nope","access_key":"k","direction":"read"}}`)
	if _, err := worker.OpenChannelRefs(ctx, bad); !errors.Is(err, iii.ErrChannelNotFound) {
		t.Fatalf("OpenChannelRefs with an unknown channel: %v", err)
	}
}

func TestCloseContextDropsAWriterBlockedByAReaderThatDoesNotRead(t *testing.T) {
	eng := iiitest.NewEngine(t)
	w := newWorker(t, eng, iii.InitOptions{})
	ctx := testCtx(t)
	ch, err := w.CreateChannel(ctx, 1)
	if err != nil {
		t.Fatal(err)
	}
	if err := ch.Reader.Open(ctx); err != nil { // opened, never read
		t.Fatal(err)
	}
	defer ch.Reader.Close()
	if err := ch.Writer.Open(ctx); err != nil {
		t.Fatal(err)
	}
	writeErr := make(chan error, 1)
	big := make([]byte, 256<<20) // far more than every buffer on the way
	go func() {
		_, err := ch.Writer.Write(big)
		writeErr <- err
	}()
	// Wait until the Write holds the writer: an empty write, which queues
	// nothing, then cannot get its turn (a probe: timing decides when to
	// look, not the verdict).
	for {
		pctx, cancel := context.WithTimeout(ctx, 50*time.Millisecond)
		_, err := ch.Writer.WriteContext(pctx, nil)
		cancel()
		if errors.Is(err, context.DeadlineExceeded) {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
	}
	// Close waits for its turn behind the blocked Write, until its
	// context ends; then it drops the socket, which ends the Write too.
	cctx, cancel := context.WithTimeout(ctx, 200*time.Millisecond)
	defer cancel()
	if err := ch.Writer.CloseContext(cctx); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("CloseContext: %v, want context.DeadlineExceeded", err)
	}
	if err := <-writeErr; !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("the blocked Write: %v, want the Close's context error", err)
	}
}
