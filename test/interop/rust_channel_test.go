package interop_test

import (
	"encoding/json"
	"fmt"
	"testing"
)

// rustChannelBytes is what the channel tests between Go and Rust stream:
// 8 MiB, 128 frames of the Rust SDK's 64 KiB, with messages between them.
const rustChannelBytes, rustChannelMessages = 8 << 20, 7

func TestGoWriterStreams8MiBAndMessagesToARustReader(t *testing.T) {
	testGoWriterStreamsToAReader(t, rustSDK, rustChannelBytes, rustChannelMessages)
}

func TestRustWriterStreams8MiBAndMessagesToAGoReader(t *testing.T) {
	testWriterStreamsToAGoReader(t, rustSDK, rustChannelBytes, rustChannelMessages)
}

func TestGoPassesChannelRefsToRustFunctionsInPayloads(t *testing.T) {
	eng := routingEngine(t)
	rust := startRust(t, eng.URL, "channel", "MODE=serve")
	eng.workerID(rust)
	goPassesChannelRefsInPayloads(t, eng, "Rust")
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
