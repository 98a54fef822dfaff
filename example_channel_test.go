package iii_test

import (
	"context"
	"crypto/sha256"
	"encoding/json"
	"fmt"
	"io"
	"strings"

	"github.com/iii-go/iii"
	"github.com/iii-go/iii/test/iiitest"
)

// CountRequest carries the reading end of a channel to a function.
type CountRequest struct {
	Upload iii.StreamChannelRef `json:"upload"`
}

// Streaming data to a function: create a channel, pass the reader's ref in
// the payload, and write into the writer while the function reads. The
// function gets the ref as a typed field and opens its end.
func ExampleIII_CreateChannel() {
	eng, _ := iiitest.Start("127.0.0.1:0")
	defer eng.Close()
	w := iii.RegisterWorker(eng.URL, iii.InitOptions{})
	defer w.Shutdown()
	ctx := context.Background()

	iii.RegisterFunction(w, "files::checksum", func(ctx context.Context, req CountRequest) (string, error) {
		r, err := w.OpenChannelReader(ctx, req.Upload)
		if err != nil {
			return "", err
		}
		defer r.Close()
		h := sha256.New()
		n, err := io.Copy(h, r)
		return fmt.Sprintf("%d bytes, sha256 %x", n, h.Sum(nil)[:4]), err
	})

	ch, _ := w.CreateChannel(ctx, 0)
	result := make(chan string)
	go func() {
		sum, err := iii.Call[string](ctx, w, "files::checksum", CountRequest{Upload: ch.ReaderRef})
		if err != nil {
			sum = err.Error()
		}
		result <- sum
	}()
	io.Copy(ch.Writer, strings.NewReader(strings.Repeat("iii ", 1<<20))) // 4 MiB
	ch.Writer.Close()                                                    // the reader's EOF
	fmt.Println(<-result)
	// Output: 4194304 bytes, sha256 14a9385f
}

// Messages (JSON in text frames) travel in order with the binary data; the
// reader's callbacks run between the bytes that precede and follow them.
func ExampleChannelReader_OnMessage() {
	eng, _ := iiitest.Start("127.0.0.1:0")
	defer eng.Close()
	w := iii.RegisterWorker(eng.URL, iii.InitOptions{})
	defer w.Shutdown()
	ctx := context.Background()

	ch, _ := w.CreateChannel(ctx, 0)
	go func() {
		ch.Writer.SendMessage(map[string]any{"type": "set_status", "status_code": 201})
		ch.Writer.Write([]byte("hello, "))
		ch.Writer.SendMessage(map[string]string{"type": "progress"})
		ch.Writer.Write([]byte("world"))
		ch.Writer.Close()
	}()

	var body strings.Builder
	ch.Reader.OnMessage(func(m json.RawMessage) {
		fmt.Printf("message after %q: %s\n", body.String(), m)
	})
	io.Copy(&body, ch.Reader)
	fmt.Println(body.String())
	// Output:
	// message after "": {"status_code":201,"type":"set_status"}
	// message after "hello, ": {"type":"progress"}
	// hello, world
}

// Refs can sit anywhere in a raw payload: OpenChannelRefs finds them and
// opens the end each one names, by its JSON Pointer.
func ExampleIII_OpenChannelRefs() {
	eng, _ := iiitest.Start("127.0.0.1:0")
	defer eng.Close()
	w := iii.RegisterWorker(eng.URL, iii.InitOptions{})
	defer w.Shutdown()
	ctx := context.Background()

	w.RegisterFunctionRaw("text::shout", func(ctx context.Context, payload json.RawMessage) (any, error) {
		ends, err := w.OpenChannelRefs(ctx, payload)
		if err != nil {
			return nil, err
		}
		defer ends.Close()
		out := ends.Writers["/jobs/0/out"]
		_, err = io.WriteString(out, "HELLO")
		return nil, err
	})

	ch, _ := w.CreateChannel(ctx, 0)
	payload := map[string]any{"jobs": []any{map[string]any{"out": ch.WriterRef}}}
	go w.Trigger(ctx, iii.TriggerRequest{FunctionID: "text::shout", Payload: payload})
	data, err := ch.Reader.ReadAll(ctx)
	fmt.Println(string(data), err)
	// Output: HELLO <nil>
}
