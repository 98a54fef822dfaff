package interop_test

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"testing"

	"github.com/iii-go/iii"
)

// writeLayout writes what channel.mjs writes (see node/NOTES.md, "Channel
// data layout"): total pattern bytes cut into count+1 parts, a message
// after each of the first count parts, then Close.
func writeLayout(t testing.TB, w *iii.ChannelWriter, total, count int) {
	t.Helper()
	data := make([]byte, total)
	for i := range data {
		data[i] = byte(i*31 + 7)
	}
	for k := 0; k <= count; k++ {
		if _, err := w.Write(data[k*total/(count+1) : (k+1)*total/(count+1)]); err != nil {
			t.Errorf("Write part %d: %v", k, err)
			return
		}
		if k < count {
			msg := fmt.Sprintf(`{"seq":%d,"text":"message %d ✓"}`, k, k)
			if err := w.SendMessage(json.RawMessage(msg)); err != nil {
				t.Errorf("SendMessage %d: %v", k, err)
				return
			}
		}
	}
	if err := w.Close(); err != nil {
		t.Errorf("Close: %v", err)
	}
}

// readSummary reads r to the end and summarises it as channel.mjs does.
func readSummary(t testing.TB, r *iii.ChannelReader) channelSummary {
	t.Helper()
	s := channelSummary{Messages: []string{}, Offsets: []int{}}
	h := sha256.New()
	r.OnMessage(func(m json.RawMessage) {
		s.Messages = append(s.Messages, string(m))
		s.Offsets = append(s.Offsets, s.Bytes)
	})
	n, err := io.Copy(countingWriter{h, &s.Bytes}, r)
	if err != nil {
		t.Fatalf("reading the channel: %v (after %d bytes)", err, n)
	}
	if err := r.Close(); err != nil {
		t.Errorf("reader Close: %v", err)
	}
	s.SHA256 = hex.EncodeToString(h.Sum(nil))
	return s
}

type countingWriter struct {
	w io.Writer
	n *int
}

func (c countingWriter) Write(p []byte) (int, error) {
	*c.n += len(p)
	return c.w.Write(p)
}

func TestGoWriterStreamsBytesAndMessagesToANodeReader(t *testing.T) {
	testGoWriterStreamsToAReader(t, nodeSDK, 1_000_000, 5)
}

// testGoWriterStreamsToAReader has a Go worker write total bytes and count
// messages into a channel (buffer 4) that a channel program of sdk reads.
func testGoWriterStreamsToAReader(t *testing.T, sdk foreignSDK, total, count int) {
	eng := routingEngine(t)
	w := goWorker(t, eng.URL, "interop-go-channel-writer")
	ch, err := w.CreateChannel(testCtx(t), 4) // the Go writer runs ahead and has to wait
	if err != nil {
		t.Fatal(err)
	}
	ref, err := json.Marshal(ch.ReaderRef)
	if err != nil {
		t.Fatal(err)
	}
	reader := sdk.start(t, eng.URL, "channel", "MODE=read", "READER_REF="+string(ref))
	writeLayout(t, ch.Writer, total, count)
	var got channelSummary
	reader.wait(ev("read")).decode(t, &got)
	requireJSON(t, "read by "+sdk.name, got, expectedChannel(total, count))
	reader.waitExit()
}

func TestNodeWriterStreamsBytesAndMessagesToAGoReader(t *testing.T) {
	testWriterStreamsToAGoReader(t, nodeSDK, 1_000_000, 5)
}

// testWriterStreamsToAGoReader has a channel program of sdk make a channel
// (buffer 4) and write total bytes and count messages into it, which Go
// reads.
func testWriterStreamsToAGoReader(t *testing.T, sdk foreignSDK, total, count int) {
	eng := routingEngine(t)
	writer := sdk.start(t, eng.URL, "channel", "MODE=create-and-write", "BUFFER_SIZE=4",
		fmt.Sprint("BYTES=", total), fmt.Sprint("MESSAGES=", count))
	var refs struct {
		Reader iii.StreamChannelRef `json:"reader"`
		Writer iii.StreamChannelRef `json:"writer"`
	}
	writer.wait(ev("channel")).decode(t, &refs)
	if !refs.Reader.Valid() || refs.Reader.Direction != iii.ChannelRead || refs.Writer.Direction != iii.ChannelWrite ||
		refs.Reader.ChannelID != refs.Writer.ChannelID {
		t.Fatalf("refs from %s: %+v / %+v", sdk.name, refs.Reader, refs.Writer)
	}
	// No worker on the Go side: a standalone reader from the ref.
	got := readSummary(t, iii.NewChannelReader(eng.URL, refs.Reader))
	want := expectedChannel(total, count)
	requireJSON(t, "read by Go", got, want)
	var written channelSummary
	writer.wait(ev("written")).decode(t, &written)
	requireJSON(t, "written by "+sdk.name, written, want)
	writer.waitExit()
}

func TestGoPassesChannelRefsToNodeFunctionsInPayloads(t *testing.T) {
	eng := routingEngine(t)
	node := startScript(t, eng.URL, "channel.mjs", "MODE=serve")
	readyID(t, node)
	goPassesChannelRefsInPayloads(t, eng, "Node")
	node.stop()
}

// goPassesChannelRefsInPayloads has a Go worker call the interop::channel-read
// and interop::channel-write functions of a channel program (MODE=serve) of
// the SDK called who, passing them a reader and a writer ref.
func goPassesChannelRefsInPayloads(t *testing.T, eng *testEngine, who string) {
	t.Helper()
	w := goWorker(t, eng.URL, "interop-go-channel-caller")
	ctx := testCtx(t)
	const total, count = 300_000, 3
	want := expectedChannel(total, count)
	type summaryOrErr struct {
		s   channelSummary
		err error
	}
	res := make(chan summaryOrErr, 1)

	// Go writes; the function reads the reader ref it was given.
	up, err := w.CreateChannel(ctx, 0)
	if err != nil {
		t.Fatal(err)
	}
	go func() {
		s, err := iii.Call[channelSummary](ctx, w, "interop::channel-read", map[string]any{"reader": up.ReaderRef})
		res <- summaryOrErr{s, err}
	}()
	writeLayout(t, up.Writer, total, count)
	r := <-res
	if r.err != nil {
		t.Fatalf("interop::channel-read: %v", r.err)
	}
	requireJSON(t, "read by the "+who+" function", r.s, want)

	// The function writes into the writer ref it was given; Go reads.
	down, err := w.CreateChannel(ctx, 0)
	if err != nil {
		t.Fatal(err)
	}
	go func() {
		s, err := iii.Call[channelSummary](ctx, w, "interop::channel-write",
			map[string]any{"writer": down.WriterRef, "bytes": total, "messages": count})
		res <- summaryOrErr{s, err}
	}()
	requireJSON(t, "read by Go", readSummary(t, down.Reader), want)
	r = <-res
	if r.err != nil {
		t.Fatalf("interop::channel-write: %v", r.err)
	}
	requireJSON(t, "written by the "+who+" function", r.s, want)
}
