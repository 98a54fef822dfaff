package iii_test

import (
	"encoding/json"
	"errors"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/gorilla/websocket"

	"github.com/iii-go/iii"
)

// registrationSink is a fake engine that records the registerfunction
// frames of each connection; drop ends the current connection.
type registrationSink struct {
	srv      *httptest.Server
	handlers sync.WaitGroup
	stop     chan struct{}

	mu    sync.Mutex
	conns [][]json.RawMessage // per connection, its registerfunction frames
	drop  chan struct{}
}

func newRegistrationSink(t *testing.T) *registrationSink {
	s := &registrationSink{stop: make(chan struct{})}
	s.srv = httptest.NewServer(http.HandlerFunc(func(rw http.ResponseWriter, r *http.Request) {
		s.handlers.Add(1)
		defer s.handlers.Done()
		ws, err := (&websocket.Upgrader{}).Upgrade(rw, r, nil)
		if err != nil {
			return
		}
		defer ws.Close()
		s.mu.Lock()
		n := len(s.conns)
		s.conns = append(s.conns, nil)
		drop := make(chan struct{})
		s.drop = drop
		s.mu.Unlock()
		_ = ws.WriteMessage(websocket.TextMessage, []byte(`{"type":"workerregistered","worker_id":"w1"}`))
		go func() {
			select {
			case <-drop:
			case <-s.stop:
			}
			ws.Close()
		}()
		for {
			_, b, err := ws.ReadMessage()
			if err != nil {
				return
			}
			var f struct {
				Type string `json:"type"`
			}
			if json.Unmarshal(b, &f) == nil && f.Type == "registerfunction" {
				s.mu.Lock()
				s.conns[n] = append(s.conns[n], b)
				s.mu.Unlock()
			}
		}
	}))
	t.Cleanup(func() {
		close(s.stop)
		s.srv.CloseClientConnections()
		s.srv.Close()
		s.handlers.Wait()
	})
	return s
}

func (s *registrationSink) url() string { return "ws" + strings.TrimPrefix(s.srv.URL, "http") }

// frames returns the registerfunction frames of connection i.
func (s *registrationSink) frames(i int) []json.RawMessage {
	s.mu.Lock()
	defer s.mu.Unlock()
	if i >= len(s.conns) {
		return nil
	}
	return append([]json.RawMessage(nil), s.conns[i]...)
}

func (s *registrationSink) dropConn() {
	s.mu.Lock()
	defer s.mu.Unlock()
	close(s.drop)
}

func TestRegisterHTTPFunctionSendsTheInvocationAndReplaysIt(t *testing.T) {
	sink := newRegistrationSink(t)
	w := iii.RegisterWorker(sink.url(), fastOptions())
	t.Cleanup(w.Shutdown)
	if err := w.WaitConnected(testCtx(t)); err != nil {
		t.Fatal(err)
	}
	ref, err := iii.RegisterHTTPFunction(w, "billing::charge", iii.HTTPInvocation{
		URL: "https://billing.internal/charge", Method: "put", Timeout: 1500*time.Millisecond + 1,
		Headers: map[string]string{"X-Team": "billing"}, Auth: iii.HMACAuth("BILLING_SECRET"),
	}, iii.WithDescription("charges a card"))
	if err != nil {
		t.Fatal(err)
	}
	if ref.ID() != "billing::charge" {
		t.Errorf("ID = %q", ref.ID())
	}
	want := `{"type":"registerfunction","id":"billing::charge","description":"charges a card",` +
		`"invocation":{"url":"https://billing.internal/charge","method":"PUT","timeout_ms":1501,` +
		`"headers":{"X-Team":"billing"},"auth":{"type":"hmac","secret_key":"BILLING_SECRET"}}}`
	waitFor(t, "the registration", func() bool { return len(sink.frames(0)) == 1 })
	if got := string(sink.frames(0)[0]); got != want {
		t.Errorf("frame = %s\nwant    %s", got, want)
	}
	sink.dropConn()
	waitFor(t, "the replay on the new connection", func() bool { return len(sink.frames(1)) == 1 })
	if got := string(sink.frames(1)[0]); got != want {
		t.Errorf("replayed frame = %s\nwant             %s", got, want)
	}
}

func TestRegisterHTTPFunctionAuthKinds(t *testing.T) {
	sink := newRegistrationSink(t)
	w := iii.RegisterWorker(sink.url(), fastOptions())
	t.Cleanup(w.Shutdown)
	if _, err := iii.RegisterHTTPFunction(w, "a::bearer", iii.HTTPInvocation{URL: "http://127.0.0.1:1/x", Auth: iii.BearerAuth("TOKEN")}); err != nil {
		t.Fatal(err)
	}
	if _, err := iii.RegisterHTTPFunction(w, "a::key", iii.HTTPInvocation{URL: "http://127.0.0.1:1/x", Auth: iii.APIKeyAuth("X-Api-Key", "KEY")}); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "the registrations", func() bool { return len(sink.frames(0)) == 2 })
	want := []string{
		`{"type":"registerfunction","id":"a::bearer","invocation":{"url":"http://127.0.0.1:1/x","auth":{"type":"bearer","token_key":"TOKEN"}}}`,
		`{"type":"registerfunction","id":"a::key","invocation":{"url":"http://127.0.0.1:1/x","auth":{"type":"api_key","header":"X-Api-Key","value_key":"KEY"}}}`,
	}
	for i, f := range sink.frames(0) {
		if string(f) != want[i] {
			t.Errorf("frame %d = %s\nwant      %s", i, f, want[i])
		}
	}
}

func TestRegisterHTTPFunctionRefusesBadInvocations(t *testing.T) {
	sink := newRegistrationSink(t)
	w := iii.RegisterWorker(sink.url(), fastOptions())
	t.Cleanup(w.Shutdown)
	for name, inv := range map[string]iii.HTTPInvocation{
		"no URL":            {},
		"relative URL":      {URL: "/charge"},
		"ws URL":            {URL: "ws://127.0.0.1/x"},
		"method":            {URL: "http://127.0.0.1/x", Method: "HEAD"},
		"negative timeout":  {URL: "http://127.0.0.1/x", Timeout: -time.Second},
		"auth type":         {URL: "http://127.0.0.1/x", Auth: &iii.HTTPAuth{Type: "basic"}},
		"hmac without key":  {URL: "http://127.0.0.1/x", Auth: iii.HMACAuth("")},
		"api key no header": {URL: "http://127.0.0.1/x", Auth: iii.APIKeyAuth("", "K")},
	} {
		if _, err := iii.RegisterHTTPFunction(w, "bad::fn", inv); !errors.Is(err, iii.ErrInvalidHTTPConfig) {
			t.Errorf("%s: err = %v; want ErrInvalidHTTPConfig", name, err)
		}
	}
	if _, err := iii.RegisterHTTPFunction(w, "", iii.HTTPInvocation{URL: "http://127.0.0.1/x"}); !errors.Is(err, iii.ErrInvalidID) {
		t.Errorf("empty id: err = %v; want ErrInvalidID", err)
	}
}
