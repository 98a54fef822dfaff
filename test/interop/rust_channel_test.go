package interop_test

import (
	"encoding/json"
	"fmt"
	"testing"

	"github.com/iii-go/iii"
)

// rustChannelBytes is what the channel tests between Go and Rust stream:
// 8 MiB, 128 frames of the Rust SDK's 64 KiB, with messages between them.
const rustChannelBytes, rustChannelMessages = 8 << 20, 7

func TestGoWriterStreams8MiBAndMessagesToARustReader(t *testing.T) {
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
	reader := startRust(t, eng.URL, "channel", "MODE=read", "READER_REF="+string(ref))
	writeLayout(t, ch.Writer, rustChannelBytes, rustChannelMessages)
	var got channelSummary
	reader.wait(ev("read")).decode(t, &got)
	requireJSON(t, "read by Rust", got, expectedChannel(rustChannelBytes, rustChannelMessages))
	reader.waitExit()
}

func TestRustWriterStreams8MiBAndMessagesToAGoReader(t *testing.T) {
	eng := routingEngine(t)
	writer := startRust(t, eng.URL, "channel", "MODE=create-and-write", "BUFFER_SIZE=4",
		fmt.Sprint("BYTES=", rustChannelBytes), fmt.Sprint("MESSAGES=", rustChannelMessages))
	var refs struct {
		Reader iii.StreamChannelRef `json:"reader"`
		Writer iii.StreamChannelRef `json:"writer"`
	}
	writer.wait(ev("channel")).decode(t, &refs)
	if !refs.Reader.Valid() || refs.Reader.Direction != iii.ChannelRead || refs.Writer.Direction != iii.ChannelWrite ||
		refs.Reader.ChannelID != refs.Writer.ChannelID {
		t.Fatalf("refs from Rust: %+v / %+v", refs.Reader, refs.Writer)
	}
	got := readSummary(t, iii.NewChannelReader(eng.URL, refs.Reader))
	want := expectedChannel(rustChannelBytes, rustChannelMessages)
	requireJSON(t, "read by Go", got, want)
	var written channelSummary
	writer.wait(ev("written")).decode(t, &written)
	requireJSON(t, "written by Rust", written, want)
	writer.waitExit()
}

func TestGoPassesChannelRefsToRustFunctionsInPayloads(t *testing.T) {
	eng := routingEngine(t)
	rust := startRust(t, eng.URL, "channel", "MODE=serve")
	eng.workerID(rust)
	w := goWorker(t, eng.URL, "interop-go-channel-caller")
	ctx := testCtx(t)
	const total, count = 300_000, 3
	want := expectedChannel(total, count)
	type summaryOrErr struct {
		s   channelSummary
		err error
	}
	res := make(chan summaryOrErr, 1)

	// Go writes; the Rust function reads the reader ref it was given.
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
	requireJSON(t, "read by the Rust function", r.s, want)

	// The Rust function writes into the writer ref it was given; Go reads.
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
	requireJSON(t, "written by the Rust function", r.s, want)
	if code := rust.stop(); code != 0 {
		t.Fatalf("Rust channel server exited with %d", code)
	}
}

func TestRustWriterStreamsToANodeReaderAndBack(t *testing.T) {
	eng := routingEngine(t)
	const total, count = 1_000_000, 5
	want := expectedChannel(total, count)
	bytesEnv, messagesEnv := fmt.Sprint("BYTES=", total), fmt.Sprint("MESSAGES=", count)
	var refs struct {
		Reader json.RawMessage `json:"reader"`
	}

	// Rust → Node. Without a buffer size the Rust SDK asks
	// engine::channels::create for {"buffer_size":null}.
	rw := startRust(t, eng.URL, "channel", "MODE=create-and-write", bytesEnv, messagesEnv)
	rw.wait(ev("channel")).decode(t, &refs)
	nr := startScript(t, eng.URL, "channel.mjs", "MODE=read", "READER_REF="+string(refs.Reader))
	var got channelSummary
	nr.wait(ev("read")).decode(t, &got)
	requireJSON(t, "read by Node from Rust", got, want)
	rw.waitExit()
	nr.waitExit()

	// Node → Rust.
	nw := startScript(t, eng.URL, "channel.mjs", "MODE=create-and-write", "BUFFER_SIZE=4", bytesEnv, messagesEnv)
	nw.wait(ev("channel")).decode(t, &refs)
	rr := startRust(t, eng.URL, "channel", "MODE=read", "READER_REF="+string(refs.Reader))
	rr.wait(ev("read")).decode(t, &got)
	requireJSON(t, "read by Rust from Node", got, want)
	nw.waitExit()
	rr.waitExit()
}
