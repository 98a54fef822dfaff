package channel_test

import (
	"context"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/gorilla/websocket"

	"github.com/iii-go/iii/channel"
)

// closingEngine serves one reading end: it sends data, then a Close frame
// with the given payload (nil: no status code, as the engine ends a stream).
func closingEngine(t *testing.T, data string, closePayload []byte) string {
	t.Helper()
	up := websocket.Upgrader{}
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		ws, err := up.Upgrade(w, r, nil)
		if err != nil {
			return
		}
		defer ws.Close()
		_ = ws.WriteMessage(websocket.BinaryMessage, []byte(data))
		_ = ws.WriteControl(websocket.CloseMessage, closePayload, time.Now().Add(time.Second))
		_ = ws.SetReadDeadline(time.Now().Add(2 * time.Second))
		for { // until the reader answers the Close (or goes)
			if _, _, err := ws.NextReader(); err != nil {
				return
			}
		}
	}))
	t.Cleanup(srv.Close)
	return "ws" + strings.TrimPrefix(srv.URL, "http") + "/ws/channels/c?key=k&dir=read"
}

func TestReaderTakesOnlyANormalCloseAsTheEndOfTheStream(t *testing.T) {
	for _, tc := range []struct {
		name    string
		payload []byte
		eof     bool
	}{
		{"no status (the engine's end of stream)", nil, true},
		{"1000 normal", websocket.FormatCloseMessage(websocket.CloseNormalClosure, "stream_complete"), true},
		{"1001 going away", websocket.FormatCloseMessage(websocket.CloseGoingAway, "shutdown"), false},
		{"1009 too big", websocket.FormatCloseMessage(websocket.CloseMessageTooBig, ""), false},
		{"1011 internal error", websocket.FormatCloseMessage(websocket.CloseInternalServerErr, "boom"), false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			rd := channel.NewReader(channel.Config{URL: closingEngine(t, "partial", tc.payload), ChannelID: "c-" + tc.name})
			defer rd.Close()
			ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
			defer cancel()
			got, err := rd.ReadAll(ctx)
			if string(got) != "partial" {
				t.Fatalf("read %q", got)
			}
			if tc.eof {
				if err != nil {
					t.Fatalf("a clean end gave %v", err)
				}
				return
			}
			var ce *websocket.CloseError
			var ee *channel.Error
			if err == nil || !errors.Is(err, channel.ErrLost) || !errors.Is(err, io.ErrUnexpectedEOF) ||
				!errors.As(err, &ce) || !errors.As(err, &ee) {
				t.Fatalf("an abnormal close gave %v (%T)", err, err)
			}
			if ce.Code != closeCode(tc.payload) {
				t.Fatalf("close code %d", ce.Code)
			}
		})
	}
}

func closeCode(p []byte) int { return int(p[0])<<8 | int(p[1]) }
