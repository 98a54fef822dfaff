package iiitest

import (
	"io"
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/gorilla/websocket"
)

type chRefs struct {
	Writer struct {
		ChannelID string `json:"channel_id"`
		AccessKey string `json:"access_key"`
		Direction string `json:"direction"`
	} `json:"writer"`
	Reader struct {
		ChannelID string `json:"channel_id"`
		AccessKey string `json:"access_key"`
		Direction string `json:"direction"`
	} `json:"reader"`
}

func createChannel(t *testing.T, c *client, in string) chRefs {
	t.Helper()
	var refs chRefs
	if errb := c.builtin("engine::channels::create", in, &refs); errb != nil {
		t.Fatal(errb)
	}
	return refs
}

func channelURL(e *Engine, id, key, dir string) string {
	return e.URL + "/ws/channels/" + id + "?key=" + url.QueryEscape(key) + "&dir=" + dir
}

func TestChannelCreateReturnsTwoRefsWithOneIDAndKey(t *testing.T) {
	e := NewEngine(t)
	c := dial(t, e)
	r := createChannel(t, c, `{}`)
	if r.Writer.ChannelID == "" || r.Writer.ChannelID != r.Reader.ChannelID || r.Writer.AccessKey != r.Reader.AccessKey ||
		r.Writer.Direction != "write" || r.Reader.Direction != "read" {
		t.Fatalf("refs = %+v", r)
	}
	for in, want := range map[string]int{`{}`: 64, `{"buffer_size":0}`: 1, `{"buffer_size":5000}`: 1024, `{"buffer_size":7}`: 7} {
		r := createChannel(t, c, in)
		e.mu.Lock()
		got := cap(e.st.channels[r.Writer.ChannelID].items)
		e.mu.Unlock()
		if got != want {
			t.Fatalf("%s: buffer %d, want %d", in, got, want)
		}
	}
}

func TestChannelStreamsTextAndBinaryInOrderThenEOF(t *testing.T) {
	e := NewEngine(t)
	c := dial(t, e)
	r := createChannel(t, c, `{"buffer_size":2}`)
	rd := dialURL(t, channelURL(e, r.Reader.ChannelID, r.Reader.AccessKey, "read"), nil)
	wr := dialURL(t, channelURL(e, r.Writer.ChannelID, r.Writer.AccessKey, "write"), nil)
	const n = 50
	go func() {
		for i := range n {
			typ := websocket.BinaryMessage
			if i%3 == 0 {
				typ = websocket.TextMessage
			}
			wr.ws.WriteMessage(typ, []byte(strings.Repeat("x", i)))
		}
		wr.ws.WriteMessage(websocket.CloseMessage, websocket.FormatCloseMessage(websocket.CloseNormalClosure, "stream_complete"))
	}()
	for i := range n {
		f := rd.next()
		want := websocket.BinaryMessage
		if i%3 == 0 {
			want = websocket.TextMessage
		}
		if f.typ != want || len(f.data) != i {
			t.Fatalf("item %d: type %d len %d", i, f.typ, len(f.data))
		}
	}
	err := rd.waitClosed()
	if !websocket.IsCloseError(err, websocket.CloseNoStatusReceived) {
		t.Fatalf("reader EOF: %v", err)
	}
	wr.waitClosed()
}

func TestChannelWrongKeyOrUnknownIDIs404(t *testing.T) {
	e := NewEngine(t)
	c := dial(t, e)
	r := createChannel(t, c, `{}`)
	for _, u := range []string{
		channelURL(e, r.Reader.ChannelID, "wrong", "read"),
		channelURL(e, "no-such-channel", r.Reader.AccessKey, "read"),
	} {
		_, resp, err := websocket.DefaultDialer.Dial(u, nil)
		if err == nil || resp == nil || resp.StatusCode != http.StatusNotFound {
			t.Fatalf("%s: %v %v", u, resp, err)
		}
		body, _ := io.ReadAll(resp.Body)
		if string(body) != "Channel not found\n" {
			t.Fatalf("body %q", body)
		}
	}
}

func TestChannelBadQueryIs400(t *testing.T) {
	e := NewEngine(t)
	c := dial(t, e)
	r := createChannel(t, c, `{}`)
	base := e.URL + "/ws/channels/" + r.Reader.ChannelID
	for _, q := range []string{"", "?key=" + r.Reader.AccessKey, "?dir=read", "?key=" + r.Reader.AccessKey + "&dir=sideways"} {
		_, resp, err := websocket.DefaultDialer.Dial(base+q, nil)
		if err == nil || resp == nil || resp.StatusCode != http.StatusBadRequest {
			t.Fatalf("%q: %v %v", q, resp, err)
		}
	}
}

func TestChannelSecondOpenOfAnEndIsUpgradedThenClosed(t *testing.T) {
	e := NewEngine(t)
	c := dial(t, e)
	r := createChannel(t, c, `{}`)
	u := channelURL(e, r.Reader.ChannelID, r.Reader.AccessKey, "read")
	first := dialURL(t, u, nil)
	ch := func() *channel { return e.st.channels[r.Reader.ChannelID] }
	if err := e.waitFor(ctxT(t), func() bool { return ch().readerTaken }); err != nil {
		t.Fatal(err)
	}
	second := dialURL(t, u, nil)
	if err := second.waitClosed(); !websocket.IsCloseError(err, websocket.CloseNoStatusReceived) {
		t.Fatalf("second reader: %v", err)
	}
	wr := dialURL(t, channelURL(e, r.Writer.ChannelID, r.Writer.AccessKey, "write"), nil)
	if err := e.waitFor(ctxT(t), func() bool { return ch().writerTaken }); err != nil {
		t.Fatal(err)
	}
	wr2 := dialURL(t, channelURL(e, r.Writer.ChannelID, r.Writer.AccessKey, "write"), nil)
	wr2.waitClosed()
	wr.ws.WriteMessage(websocket.TextMessage, []byte("still works"))
	if f := first.next(); string(f.data) != "still works" {
		t.Fatalf("got %q", f.data)
	}
}

func TestChannelReaderGoneEndsTheWriter(t *testing.T) {
	e := NewEngine(t)
	c := dial(t, e)
	r := createChannel(t, c, `{"buffer_size":1}`)
	rd := dialURL(t, channelURL(e, r.Reader.ChannelID, r.Reader.AccessKey, "read"), nil)
	wr := dialURL(t, channelURL(e, r.Writer.ChannelID, r.Writer.AccessKey, "write"), nil)
	rd.close()
	go func() {
		for range 100 {
			if wr.ws.WriteMessage(websocket.BinaryMessage, []byte("data")) != nil {
				return
			}
		}
	}()
	err := wr.waitClosed()
	if ce, ok := err.(*websocket.CloseError); ok && ce.Code != websocket.CloseAbnormalClosure {
		t.Fatalf("the writer got a Close frame: %v", err)
	}
}

func TestHalfConnectedChannelsAreSwept(t *testing.T) {
	e := NewEngine(t, WithChannelTTL(50*time.Millisecond))
	c := dial(t, e)
	r := createChannel(t, c, `{}`)
	rd := dialURL(t, channelURL(e, r.Reader.ChannelID, r.Reader.AccessKey, "read"), nil)
	if err := rd.waitClosed(); !websocket.IsCloseError(err, websocket.CloseNoStatusReceived) {
		t.Fatalf("waiting reader: %v", err)
	}
	if err := e.waitFor(ctxT(t), func() bool { return len(e.st.channels) == 0 }); err != nil {
		t.Fatal(err)
	}
	_, resp, err := websocket.DefaultDialer.Dial(channelURL(e, r.Writer.ChannelID, r.Writer.AccessKey, "write"), nil)
	if err == nil || resp.StatusCode != http.StatusNotFound {
		t.Fatalf("swept channel: %v %v", resp, err)
	}
}

// The engine never reads a channel reader's socket: a ping from the
// reader gets no pong, and the reader's Close gets no reply; the reader
// still gets the stream and the final Close (no status code).
func TestChannelReaderSocketIsNeverRead(t *testing.T) {
	e := NewEngine(t)
	c := dial(t, e)
	r := createChannel(t, c, `{}`)
	rd, _, err := websocket.DefaultDialer.Dial(channelURL(e, r.Reader.ChannelID, r.Reader.AccessKey, "read"), nil)
	if err != nil {
		t.Fatal(err)
	}
	defer rd.Close()
	pongs := 0
	rd.SetPongHandler(func(string) error { pongs++; return nil })
	if err := rd.WriteControl(websocket.PingMessage, []byte("p"), time.Time{}); err != nil {
		t.Fatal(err)
	}
	if err := rd.WriteControl(websocket.CloseMessage, websocket.FormatCloseMessage(websocket.CloseNormalClosure, ""), time.Time{}); err != nil {
		t.Fatal(err)
	}
	wr := dialURL(t, channelURL(e, r.Writer.ChannelID, r.Writer.AccessKey, "write"), nil)
	wr.ws.WriteMessage(websocket.TextMessage, []byte("a"))
	wr.ws.WriteControl(websocket.CloseMessage, websocket.FormatCloseMessage(websocket.CloseNormalClosure, ""), time.Time{})
	rd.SetReadDeadline(time.Now().Add(testTimeout))
	_, b, err := rd.ReadMessage()
	if err != nil || string(b) != "a" {
		t.Fatalf("reader got %q, %v; want the item (no Close reply)", b, err)
	}
	_, _, err = rd.ReadMessage()
	if !websocket.IsCloseError(err, websocket.CloseNoStatusReceived) {
		t.Fatalf("end of stream: %v", err)
	}
	if pongs != 0 {
		t.Fatalf("the reader socket answered %d pings", pongs)
	}
}
