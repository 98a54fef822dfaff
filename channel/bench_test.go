package channel_test

import (
	"context"
	"encoding/json"
	"io"
	"net/url"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/asynkron/protoactor-go/actor"
	"github.com/gorilla/websocket"

	"github.com/iii-go/iii/actors"
	"github.com/iii-go/iii/channel"
	"github.com/iii-go/iii/test/iiitest"
)

// streamSize is the data streamed per benchmark iteration.
const streamSize = 64 << 20

type ref struct{ id, key string }

func createChannel(tb testing.TB, eng *iiitest.Engine) ref {
	tb.Helper()
	res, eb, err := eng.Invoke(context.Background(), "engine::channels::create", json.RawMessage(`{}`))
	if err != nil || eb != nil {
		tb.Fatalf("engine::channels::create: %v %v", err, eb)
	}
	var r struct {
		Writer struct {
			ChannelID string `json:"channel_id"`
			AccessKey string `json:"access_key"`
		} `json:"writer"`
	}
	if err := json.Unmarshal(res, &r); err != nil {
		tb.Fatal(err)
	}
	return ref{r.Writer.ChannelID, r.Writer.AccessKey}
}

func endURL(eng *iiitest.Engine, r ref, dir string) string {
	return eng.URL + "/ws/channels/" + r.id + "?key=" + url.QueryEscape(r.key) + "&dir=" + dir
}

func rawDial(tb testing.TB, u string) *websocket.Conn {
	tb.Helper()
	d := websocket.Dialer{ReadBufferSize: channel.ChunkSize, WriteBufferSize: channel.ChunkSize}
	ws, _, err := d.Dial(u, nil)
	if err != nil {
		tb.Fatal(err)
	}
	return ws
}

func streamData() []byte {
	data := make([]byte, streamSize)
	for i := range data {
		data[i] = byte(i*31 + 7)
	}
	return data
}

// rawRead reads binary frames straight into a reused buffer: the least a
// gorilla/websocket reader can do.
func rawRead(ws *websocket.Conn) int64 {
	buf := make([]byte, channel.ChunkSize)
	var n int64
	for {
		_, r, err := ws.NextReader()
		if err != nil {
			return n
		}
		for {
			m, err := r.Read(buf)
			n += int64(m)
			if err != nil {
				break
			}
		}
	}
}

// rawWrite writes 64 KiB binary frames from the caller's goroutine.
func rawWrite(ws *websocket.Conn, data []byte) {
	for off := 0; off < len(data); off += channel.ChunkSize {
		_ = ws.WriteMessage(websocket.BinaryMessage, data[off:off+channel.ChunkSize])
	}
}

// BenchmarkThroughput streams 64 MiB from a writer to a reader through the
// engine double: "raw" with plain gorilla/websocket connections, "sdk" with
// this package's Writer and Reader (actors, queue, copy and all). The ratio
// sdk/raw is what the SDK costs.
func BenchmarkThroughput(b *testing.B) {
	eng, err := iiitest.Start("127.0.0.1:0")
	if err != nil {
		b.Fatal(err)
	}
	defer eng.Close()
	data := streamData()

	b.Run("raw", func(b *testing.B) {
		b.SetBytes(streamSize)
		defer reportCPU(b)()
		for range b.N {
			r := createChannel(b, eng)
			wws := rawDial(b, endURL(eng, r, "write"))
			rws := rawDial(b, endURL(eng, r, "read"))
			got := make(chan int64)
			go func() { got <- rawRead(rws) }()
			rawWrite(wws, data)
			_ = wws.WriteMessage(websocket.CloseMessage, websocket.FormatCloseMessage(websocket.CloseNormalClosure, ""))
			if n := <-got; n != streamSize {
				b.Fatalf("read %d bytes", n)
			}
			wws.Close()
			rws.Close()
		}
	})

	b.Run("sdk", func(b *testing.B) {
		sys := actors.NewSystem(nil)
		defer sys.Stop(5 * time.Second)
		ctx := context.Background()
		b.SetBytes(streamSize)
		defer reportCPU(b)()
		for range b.N {
			r := createChannel(b, eng)
			w := channel.NewWriter(channel.Config{URL: endURL(eng, r, "write"), ChannelID: r.id, Sys: sys})
			rd := channel.NewReader(channel.Config{URL: endURL(eng, r, "read"), ChannelID: r.id, Sys: sys})
			if err := rd.Open(ctx); err != nil {
				b.Fatal(err)
			}
			got := make(chan int64)
			go func() {
				n, _ := io.CopyBuffer(io.Discard, readerOnly{rd}, make([]byte, channel.ChunkSize))
				got <- n
			}()
			if _, err := w.Write(data); err != nil {
				b.Fatal(err)
			}
			if err := w.Close(); err != nil {
				b.Fatal(err)
			}
			if n := <-got; n != streamSize {
				b.Fatalf("read %d bytes", n)
			}
			rd.Close()
		}
	})
}

// reportCPU reports the process's CPU time (user+system) per iteration,
// which other load on a shared machine disturbs far less than wall time.
// It counts the engine double too, the same for every variant.
func reportCPU(b *testing.B) func() {
	cpu := func() time.Duration {
		var ru syscall.Rusage
		_ = syscall.Getrusage(syscall.RUSAGE_SELF, &ru)
		return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
	}
	start := cpu()
	b.ResetTimer()
	return func() {
		b.StopTimer()
		b.ReportMetric(float64(cpu()-start)/float64(b.N)/1e6, "cpu-ms/op")
	}
}

// readerOnly hides io.WriterTo-like fast paths (there are none) so that
// io.CopyBuffer uses the given buffer.
type readerOnly struct{ io.Reader }

// BenchmarkDataPath compares ways to move 64 KiB chunks between the API
// and the socket, end to end through the engine double, to choose the
// data path of the per-channel actors (see the package documentation).
// Writers: "direct" writes on the caller's goroutine; "queue" copies each
// chunk into a bounded Go channel drained by a writer goroutine (the
// design kept); "actor" copies each chunk into a protoactor message to an
// actor that writes it (a mailbox hop per chunk, bounded by a semaphore).
// Readers: "direct" reads frames straight into the caller's buffer (the
// design kept); "queue" has a goroutine read each frame into a pooled
// buffer and pass it on through a channel, and the caller copies it out.
func BenchmarkDataPath(b *testing.B) {
	eng, err := iiitest.Start("127.0.0.1:0")
	if err != nil {
		b.Fatal(err)
	}
	defer eng.Close()
	data := streamData()
	as := actor.NewActorSystem()
	writers := []struct {
		name  string
		write func(*websocket.Conn, []byte)
	}{
		{"direct", rawWrite},
		{"queue", queueWrite},
		{"actor", func(ws *websocket.Conn, d []byte) { actorWrite(as, ws, d) }},
	}
	readers := []struct {
		name string
		read func(*websocket.Conn) int64
	}{
		{"direct", rawRead},
		{"queue", queueRead},
	}
	for _, w := range writers {
		for _, r := range readers {
			b.Run("writer="+w.name+"/reader="+r.name, func(b *testing.B) {
				b.SetBytes(streamSize)
				defer reportCPU(b)()
				for range b.N {
					ch := createChannel(b, eng)
					wws := rawDial(b, endURL(eng, ch, "write"))
					rws := rawDial(b, endURL(eng, ch, "read"))
					got := make(chan int64)
					go func() { got <- r.read(rws) }()
					w.write(wws, data)
					_ = wws.WriteMessage(websocket.CloseMessage, websocket.FormatCloseMessage(websocket.CloseNormalClosure, ""))
					if n := <-got; n != streamSize {
						b.Fatalf("read %d bytes", n)
					}
					wws.Close()
					rws.Close()
				}
			})
		}
	}
}

var pool = sync.Pool{New: func() any { b := make([]byte, channel.ChunkSize); return &b }}

func queueRead(ws *websocket.Conn) int64 {
	q := make(chan *[]byte, 8)
	go func() {
		defer close(q)
		for {
			_, r, err := ws.NextReader()
			if err != nil {
				return
			}
			bp := pool.Get().(*[]byte)
			n, _ := io.ReadFull(r, (*bp)[:cap(*bp)])
			*bp = (*bp)[:n]
			q <- bp
		}
	}()
	p := make([]byte, channel.ChunkSize)
	var n int64
	for bp := range q {
		n += int64(copy(p, *bp))
		pool.Put(bp)
	}
	return n
}

func queueWrite(ws *websocket.Conn, data []byte) {
	q := make(chan *[]byte, channel.DefaultQueueChunks)
	done := make(chan struct{})
	go func() {
		defer close(done)
		for bp := range q {
			_ = ws.WriteMessage(websocket.BinaryMessage, *bp)
			pool.Put(bp)
		}
	}()
	for off := 0; off < len(data); off += channel.ChunkSize {
		bp := pool.Get().(*[]byte)
		*bp = append((*bp)[:0], data[off:off+channel.ChunkSize]...)
		q <- bp
	}
	close(q)
	<-done
}

type chunkMsg struct{ b *[]byte }

type writeActor struct {
	ws   *websocket.Conn
	sem  chan struct{}
	done chan struct{}
}

func (a *writeActor) Receive(c actor.Context) {
	if m, ok := c.Message().(*chunkMsg); ok {
		if m.b == nil {
			close(a.done)
			return
		}
		_ = a.ws.WriteMessage(websocket.BinaryMessage, *m.b)
		pool.Put(m.b)
		<-a.sem
	}
}

func actorWrite(as *actor.ActorSystem, ws *websocket.Conn, data []byte) {
	a := &writeActor{ws: ws, sem: make(chan struct{}, channel.DefaultQueueChunks), done: make(chan struct{})}
	pid := as.Root.Spawn(actor.PropsFromProducer(func() actor.Actor { return a }))
	for off := 0; off < len(data); off += channel.ChunkSize {
		bp := pool.Get().(*[]byte)
		*bp = append((*bp)[:0], data[off:off+channel.ChunkSize]...)
		a.sem <- struct{}{}
		as.Root.Send(pid, &chunkMsg{bp})
	}
	as.Root.Send(pid, &chunkMsg{})
	<-a.done
	_ = as.Root.StopFuture(pid).Wait()
}

// BenchmarkChunkHandoff isolates what the data path adds per 64 KiB chunk,
// without network or engine: "chan" copies the chunk into a pooled buffer
// and hands it to a goroutine through a bounded channel (the Writer's
// path); "actor" hands the same copy to a protoactor actor on the pooled
// dispatcher, one message per chunk.
func BenchmarkChunkHandoff(b *testing.B) {
	data := make([]byte, channel.ChunkSize)
	b.Run("chan", func(b *testing.B) {
		q := make(chan *[]byte, channel.DefaultQueueChunks)
		done := make(chan struct{})
		go func() {
			for bp := range q {
				pool.Put(bp)
			}
			close(done)
		}()
		b.SetBytes(channel.ChunkSize)
		for range b.N {
			bp := pool.Get().(*[]byte)
			*bp = append((*bp)[:0], data...)
			q <- bp
		}
		close(q)
		<-done
	})
	b.Run("actor", func(b *testing.B) {
		sys := actors.NewSystem(nil)
		defer sys.Stop(5 * time.Second)
		sem := make(chan struct{}, channel.DefaultQueueChunks)
		pid, err := sys.Spawn("", actor.PropsFromFunc(func(c actor.Context) {
			if m, ok := c.Message().(*chunkMsg); ok {
				pool.Put(m.b)
				<-sem
			}
		}, actor.WithDispatcher(sys.Dispatcher)))
		if err != nil {
			b.Fatal(err)
		}
		b.SetBytes(channel.ChunkSize)
		for range b.N {
			bp := pool.Get().(*[]byte)
			*bp = append((*bp)[:0], data...)
			sem <- struct{}{}
			sys.Send(pid, &chunkMsg{bp})
		}
	})
}
