package main

import (
	"context"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/url"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/gorilla/websocket"
)

// chunkSize is what each Write of the channel scenario carries: the
// largest frame the SDKs send on a channel.
const chunkSize = 64 << 10

// channelBuffer is the engine-side queue of the channel, in items.
const channelBuffer = 64

// runChannel streams chunks through one data channel for -duration: this
// process creates the channel and holds both ends, a writer goroutine
// writes chunks as fast as the channel takes them, a reader goroutine reads
// them. Each chunk carries its send time, so latency is the time a chunk
// spends in the pipeline (the channel's queue and the socket buffers:
// mostly queueing at full speed). An op is one 64 KiB chunk.
func (e *env) runChannel(ctx context.Context, impl string) (res result) {
	res = result{Scenario: scChannel, Impl: impl, Label: "64KiB chunks", Callers: 1, Concurrency: 1, PayloadBytes: chunkSize}
	ctx, cancel := context.WithTimeout(ctx, e.opt.warmup+e.opt.duration+time.Minute)
	defer cancel()
	resetPeakRSS()
	w, r, closeAll, err := e.openChannel(ctx, impl)
	if err != nil {
		res.Error = err.Error()
		return res
	}
	defer closeAll()
	var (
		phase   atomic.Int32
		ops     atomic.Uint64
		hist    Hist
		wg      sync.WaitGroup
		wErr    error
		rErr    error
		written atomic.Uint64
	)
	wg.Add(2)
	go func() {
		defer wg.Done()
		chunk := makeChunk()
		for phase.Load() != 2 && ctx.Err() == nil {
			binary.LittleEndian.PutUint64(chunk, uint64(time.Now().UnixNano()))
			if _, err := w.Write(chunk); err != nil {
				wErr = err
				break
			}
			written.Add(1)
		}
		if err := w.Close(); err != nil && wErr == nil {
			wErr = err
		}
	}()
	go func() {
		defer wg.Done()
		defer r.Close()
		buf := make([]byte, chunkSize)
		for {
			if _, err := io.ReadFull(r, buf); err != nil {
				if !errors.Is(err, io.EOF) {
					rErr = err
				}
				return
			}
			if phase.Load() == 1 {
				hist.Record(time.Duration(time.Now().UnixNano() - int64(binary.LittleEndian.Uint64(buf))))
				ops.Add(1)
			}
		}
	}()
	step := e.prog.start(fmt.Sprintf("%s %s %s", scChannel, res.Label, impl), e.opt.warmup, e.opt.duration, ops.Load)
	defer func() { step.done(res.summary()) }()
	var before, after sample
	sleepCtx(ctx, e.opt.warmup)
	before = e.sampleNoHandler()
	phase.Store(1)
	step.measuring()
	sleepCtx(ctx, e.opt.duration)
	phase.Store(2) // the reader stops counting: the hist is its own from here
	after = e.sampleNoHandler()
	done := make(chan struct{})
	go func() { wg.Wait(); close(done) }()
	select {
	case <-done:
	case <-time.After(20 * time.Second):
		cancel()
		r.Close()
		<-done
	}
	res.Seconds = after.at.Sub(before.at).Seconds()
	res.fill(ops.Load(), 0, &hist, before, after)
	res.MBPerSec = res.OpsPerSec * chunkSize / 1e6
	if wErr != nil {
		res.Notes = append(res.Notes, "writer: "+wErr.Error())
	}
	if rErr != nil {
		res.Notes = append(res.Notes, "reader: "+rErr.Error())
	}
	if res.Ops == 0 {
		res.Error = "no chunk arrived"
		if len(res.Notes) > 0 {
			res.Error += ": " + strings.Join(res.Notes, "; ")
		}
	}
	res.PeakRSSBytes = peakRSS()
	return res
}

func makeChunk() []byte {
	b := make([]byte, chunkSize)
	for i := range b {
		b[i] = byte(i * 7)
	}
	return b
}

// sampleNoHandler samples this process and the engine double.
func (e *env) sampleNoHandler() sample {
	var s sample
	if e.double != nil {
		if d, err := e.double.stats(); err == nil {
			s.double = &d
		}
	}
	s.self = sampleSelf()
	s.at = time.Now()
	return s
}

// openChannel creates a channel and opens both of its ends; closeAll
// releases what they needed once both are closed.
func (e *env) openChannel(ctx context.Context, impl string) (w io.WriteCloser, r io.ReadCloser, closeAll func(), err error) {
	if impl == "sdk" {
		return openSDKChannel(ctx, e.url)
	}
	w, r, err = openRawChannel(ctx, e.ctl, e.url)
	return w, r, func() {}, err
}

// channelRef is one end of a channel as engine::channels::create returns it.
type channelRef struct {
	ChannelID string `json:"channel_id"`
	AccessKey string `json:"access_key"`
	Direction string `json:"direction"`
}

// endURL is the WebSocket URL of an end: <engine>/ws/channels/<id>?key=..&dir=..
func (r channelRef) endURL(engine string) string {
	return strings.TrimSuffix(engine, "/") + "/ws/channels/" + url.PathEscape(r.ChannelID) +
		"?key=" + url.QueryEscape(r.AccessKey) + "&dir=" + r.Direction
}

// openRawChannel creates a channel with engine::channels::create and dials
// its two ends as plain WebSockets.
func openRawChannel(ctx context.Context, rc *rawCaller, engine string) (io.WriteCloser, io.ReadCloser, error) {
	slot := &rawCall{done: make(chan struct{}, 1)}
	if err := rc.call(ctx, slot, "engine::channels::create", mustJSON(map[string]int{"buffer_size": channelBuffer}), noAction); err != nil {
		return nil, nil, fmt.Errorf("engine::channels::create: %w", err)
	}
	var refs struct{ Writer, Reader channelRef }
	if err := json.Unmarshal(slot.res, &refs); err != nil {
		return nil, nil, fmt.Errorf("engine::channels::create: %w", err)
	}
	d := websocket.Dialer{HandshakeTimeout: 10 * time.Second, WriteBufferSize: chunkSize + 64}
	wws, resp, err := d.DialContext(ctx, refs.Writer.endURL(engine), nil)
	if resp != nil && resp.Body != nil {
		resp.Body.Close()
	}
	if err != nil {
		return nil, nil, fmt.Errorf("channel writer: %w", err)
	}
	rws, resp, err := d.DialContext(ctx, refs.Reader.endURL(engine), nil)
	if resp != nil && resp.Body != nil {
		resp.Body.Close()
	}
	if err != nil {
		wws.Close()
		return nil, nil, fmt.Errorf("channel reader: %w", err)
	}
	return &rawChanWriter{ws: wws}, &rawChanReader{ws: rws}, nil
}

// rawChanWriter sends each Write as one binary frame.
type rawChanWriter struct{ ws *websocket.Conn }

func (w *rawChanWriter) Write(p []byte) (int, error) {
	if err := w.ws.WriteMessage(websocket.BinaryMessage, p); err != nil {
		return 0, err
	}
	return len(p), nil
}

// Close ends the stream with a Close frame and waits (up to 5 s) for the
// engine's answer, so that the socket is not reset under frames the
// engine has not read yet.
func (w *rawChanWriter) Close() error {
	err := w.ws.WriteControl(websocket.CloseMessage, websocket.FormatCloseMessage(websocket.CloseNormalClosure, "stream_complete"), time.Now().Add(5*time.Second))
	_ = w.ws.SetReadDeadline(time.Now().Add(5 * time.Second))
	for err == nil {
		if _, _, rerr := w.ws.NextReader(); rerr != nil {
			break
		}
	}
	w.ws.Close()
	return err
}

// rawChanReader reads the frames of the reader end as one byte stream.
type rawChanReader struct {
	ws *websocket.Conn
	r  io.Reader
}

func (r *rawChanReader) Read(p []byte) (int, error) {
	for {
		if r.r == nil {
			_, fr, err := r.ws.NextReader()
			if err != nil {
				if websocket.IsCloseError(err, websocket.CloseNormalClosure, websocket.CloseNoStatusReceived) {
					return 0, io.EOF
				}
				return 0, err
			}
			r.r = fr
		}
		n, err := r.r.Read(p)
		if err == io.EOF {
			r.r = nil
			if n > 0 {
				return n, nil
			}
			continue
		}
		return n, err
	}
}

func (r *rawChanReader) Close() error { return r.ws.Close() }
