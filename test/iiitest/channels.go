package iiitest

import (
	"bytes"
	"net/http"
	"strings"
	"sync"
	"time"

	"github.com/gorilla/websocket"

	"github.com/iii-go/iii/connection/wire"
)

// channel is a data channel created by engine::channels::create (§8): a
// bounded queue of items between a writer socket and a reader socket.
type channel struct {
	id, key string
	items   chan chItem
	created time.Time

	// guarded by Engine.mu
	writerTaken, readerTaken bool
	writerEnded, readerEnded bool

	readerGone chan struct{} // closed when the reader socket is gone
	goneOnce   sync.Once
	itemsOnce  sync.Once
}

type chItem struct {
	binary bool
	data   []byte
}

func (ch *channel) closeItems()     { ch.itemsOnce.Do(func() { close(ch.items) }) }
func (ch *channel) markReaderGone() { ch.goneOnce.Do(func() { close(ch.readerGone) }) }

func (e *Engine) newChannel(size int) *channel {
	ch := &channel{
		id:         wire.NewUUID().String(),
		key:        wire.NewUUID().String(),
		items:      make(chan chItem, size),
		created:    time.Now(),
		readerGone: make(chan struct{}),
	}
	e.mu.Lock()
	e.st.channels[ch.id] = ch
	e.mu.Unlock()
	return ch
}

// sweepChannels removes channels older than the TTL whose ends were not
// both connected (as the engine does), and finished ones. A waiting reader
// then gets a Close frame; a waiting writer is dropped.
func (e *Engine) sweepChannels() {
	now := time.Now()
	e.mu.Lock()
	defer e.mu.Unlock()
	for id, ch := range e.st.channels {
		if now.Sub(ch.created) <= e.cfg.channelTTL {
			continue
		}
		done := ch.writerEnded && ch.readerEnded
		if ch.writerTaken && ch.readerTaken && !done {
			continue
		}
		delete(e.st.channels, id)
		if !ch.writerTaken {
			ch.closeItems()
		}
		ch.markReaderGone()
	}
}

// Channels returns the number of channels the engine holds.
func (e *Engine) Channels() int {
	e.mu.Lock()
	defer e.mu.Unlock()
	return len(e.st.channels)
}

func (e *Engine) serveChannel(w http.ResponseWriter, r *http.Request, id string) {
	if id == "" || strings.Contains(id, "/") {
		http.NotFound(w, r)
		return
	}
	q := r.URL.Query()
	key, hasKey := q["key"]
	dir, hasDir := q["dir"]
	switch {
	case !hasKey:
		http.Error(w, "Failed to deserialize query string: missing field `key`", http.StatusBadRequest)
		return
	case !hasDir:
		http.Error(w, "Failed to deserialize query string: missing field `dir`", http.StatusBadRequest)
		return
	case dir[0] != "read" && dir[0] != "write":
		http.Error(w, "Failed to deserialize query string: dir: unknown variant `"+dir[0]+"`, expected `read` or `write`", http.StatusBadRequest)
		return
	}
	e.mu.Lock()
	ch := e.st.channels[id]
	e.mu.Unlock()
	if ch == nil || ch.key != key[0] {
		http.Error(w, "Channel not found", http.StatusNotFound)
		return
	}
	if !e.enter() {
		http.Error(w, "engine down", http.StatusServiceUnavailable)
		return
	}
	defer e.wg.Done()
	s := e.upgrade(w, r)
	if s == nil {
		return
	}
	defer e.removeSock(s)
	reading := dir[0] == "read"
	e.mu.Lock()
	taken := false
	if reading {
		taken, ch.readerTaken = ch.readerTaken, true
	} else {
		taken, ch.writerTaken = ch.writerTaken, true
	}
	e.notifyLocked()
	e.mu.Unlock()
	if taken {
		s.closeWith(nil)
		s.drain()
		s.finish()
		return
	}
	if reading {
		e.channelReader(s, ch)
	} else {
		s.echoClose.Store(true) // the engine reads on after the Close, which flushes the reply
		s.onePong = true        // only the library's automatic pong
		e.channelWriter(s, ch)
	}
}

// channelWriter moves the frames of the writer socket into the channel; a
// full channel stops it reading (back-pressure). When the socket closes the
// channel is closed, and the reader gets EOF once it has drained it.
func (e *Engine) channelWriter(s *sock, ch *channel) {
	readerGone := false
	var buf []byte // reused: ReadMessage would grow a new buffer from 512 bytes per frame
	for {
		typ, frame, err := s.readFrame(buf)
		if err != nil {
			break
		}
		buf = frame
		data := bytes.Clone(frame)
		if s.stalled.Load() {
			continue
		}
		it := chItem{binary: typ == websocket.BinaryMessage, data: data}
		select {
		case ch.items <- it:
			continue
		case <-ch.readerGone:
			readerGone = true
		case <-s.dead:
		}
		break
	}
	ch.closeItems()
	e.mu.Lock()
	ch.writerEnded = true
	e.mu.Unlock()
	if readerGone {
		s.kill() // the engine just drops the writer's socket
	}
	s.finish()
}

// channelReader writes the channel's items to the reader socket, one at a
// time, and a Close frame (no status code) at the end of the stream.
//
// Like the engine, it never reads the reader socket: pings are not
// answered, the reader's Close gets no reply, and a reader that has gone
// is noticed only when a write to it fails.
func (e *Engine) channelReader(s *sock, ch *channel) {
	defer func() {
		ch.markReaderGone()
		e.mu.Lock()
		ch.readerEnded = true
		e.mu.Unlock()
		s.finish()
	}()
	for {
		select {
		case it, ok := <-ch.items:
			if !ok {
				s.closeWith(nil)
				s.waitEmpty()
				return
			}
			fb := getBuf()
			fb.b = append(fb.b, it.data...)
			kind := itemText
			if it.binary {
				kind = itemBinary
			}
			s.push(kind, fb, false)
			if !s.waitEmpty() {
				return
			}
		case <-ch.readerGone: // swept
			return
		case <-s.dead:
			return
		}
	}
}

// waitEmpty waits until the writer has taken every queued frame; it
// returns false if the socket died.
func (s *sock) waitEmpty() bool {
	for {
		s.mu.Lock()
		if s.closed {
			s.mu.Unlock()
			return false
		}
		if len(s.items) == 0 {
			s.mu.Unlock()
			return true
		}
		if s.space == nil {
			s.space = make(chan struct{})
		}
		ch := s.space
		s.mu.Unlock()
		select {
		case <-ch:
		case <-s.dead:
			return false
		}
	}
}
