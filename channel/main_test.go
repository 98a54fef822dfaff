package channel_test

import (
	"bytes"
	"context"
	"errors"
	"io"
	"testing"
	"time"

	"go.uber.org/goleak"

	"github.com/iii-go/iii/channel"
	"github.com/iii-go/iii/test/iiitest"
)

// TestMain fails the run if any test leaves a goroutine behind.
func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m)
}

// Ends opened without an actor system run under the standalone one, which
// stops with the last of them (TestMain checks that nothing is left).
func TestStandaloneEndsStreamAndReleaseEverythingOnClose(t *testing.T) {
	eng := iiitest.NewEngine(t)
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	for range 2 { // the standalone system stops and starts again
		r := createChannel(t, eng)
		w := channel.NewWriter(channel.Config{URL: endURL(eng, r, "write"), ChannelID: r.id})
		rd := channel.NewReader(channel.Config{URL: endURL(eng, r, "read"), ChannelID: r.id})
		var texts []string
		rd.OnText(func(b []byte) { texts = append(texts, string(b)) })
		data := bytes.Repeat([]byte("0123456789"), 20000) // several chunks
		wrote := make(chan struct{})
		go func() {
			defer close(wrote)
			w.SendText(ctx, []byte(`"first"`))
			w.Write(data)
			if err := w.Close(); err != nil {
				t.Errorf("Close: %v", err)
			}
		}()
		got, err := rd.ReadAll(ctx)
		<-wrote
		if err != nil || !bytes.Equal(got, data) || len(texts) != 1 || texts[0] != `"first"` {
			t.Fatalf("ReadAll: %d bytes, %v, texts %q", len(got), err, texts)
		}
		if _, err := rd.Read(make([]byte, 1)); err != io.EOF {
			t.Fatalf("Read after EOF: %v", err)
		}
		rd.Close()
		if _, err := w.Write([]byte("x")); !errors.Is(err, channel.ErrClosed) {
			t.Fatalf("Write after Close: %v", err)
		}
	}
}
