package iiitest

import (
	"net/http"
	"testing"

	"github.com/gorilla/websocket"
)

func TestOriginHandshakesFromPagesOffLoopbackAreRefused(t *testing.T) {
	e := NewEngine(t)
	for origin, ok := range map[string]bool{
		"":                             true, // workers send none
		"http://127.0.0.1:3000":        true,
		"http://localhost:8080":        true,
		"http://[::1]:5173":            true,
		"https://evil.example":         false,
		"http://127.0.0.1.nip.example": false,
		"null":                         false,
	} {
		h := http.Header{}
		if origin != "" {
			h.Set("Origin", origin)
		}
		for _, path := range []string{"/", "/otel"} {
			ws, resp, err := websocket.DefaultDialer.Dial(e.URL+path, h)
			if ws != nil {
				ws.Close()
			}
			if ok != (err == nil) {
				status := 0
				if resp != nil {
					status = resp.StatusCode
				}
				t.Fatalf("Origin %q on %s: err %v (HTTP %d), want accepted=%v", origin, path, err, status, ok)
			}
		}
	}
}
