package bufconn

import (
	"encoding/binary"
	"math/rand/v2"
)

// WebSocket opcodes of the data frames WriteFrame writes (RFC 6455, 5.2).
const (
	OpText   byte = 1
	OpBinary byte = 2
)

// maxHeader is the longest header of a frame: 2 bytes, an 8-byte length
// and a 4-byte masking key.
const maxHeader = 14

// WriteFrame writes p as one final, unfragmented WebSocket data frame of
// opcode op (OpText or OpBinary), masked with a fresh random key if masked
// (a client's frames must be, a server's must not). It is the write path of
// gorilla/websocket's WriteMessage without its intermediate buffer: the
// header goes straight into the coalescing buffer and the payload is copied
// into it once, masked on the way; an unmasked payload of FlushAt bytes or
// more is not copied at all but written to the network after the buffer.
// A masked payload that big is masked into the buffer FlushAt bytes at a
// time, each chunk a network write. p is neither retained nor modified.
//
// The Conn must carry the WebSocket itself: under TLS (the Conn below
// the tls.Conn) a frame must go through the TLS connection instead, with
// gorilla's writers.
//
// The frame is written whole under the Conn's lock, so frames written by
// gorilla/websocket on the same connection (WriteControl's ping, pong and
// close) never land inside it. It must only be called while buffering (a
// frame is not a plain Write), and the caller must not also use
// gorilla/websocket's own writers for data messages on the connection (a
// frame of WriteFrame's would interleave with the fragments of a
// NextWriter's message). Errors are Write's and Flush's.
func (c *Conn) WriteFrame(op byte, p []byte, masked bool) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.err != nil {
		return c.err
	}
	var hdr [maxHeader]byte
	hdr[0] = 0x80 | op // FIN
	n := 2
	switch l := len(p); {
	case l <= 125:
		hdr[1] = byte(l)
	case l <= 0xffff:
		hdr[1] = 126
		binary.BigEndian.PutUint16(hdr[2:], uint16(l))
		n = 4
	default:
		hdr[1] = 127
		binary.BigEndian.PutUint64(hdr[2:], uint64(l))
		n = 10
	}
	var key uint32
	if masked {
		hdr[1] |= 0x80
		key = rand.Uint32()
		binary.LittleEndian.PutUint32(hdr[n:], key)
		n += 4
	}
	if len(c.buf)+n+len(p) > FlushAt && len(c.buf) > 0 {
		if err := c.flushLocked(); err != nil {
			return err
		}
	}
	c.buf = append(c.buf, hdr[:n]...)
	if !masked && len(p) >= FlushAt {
		// Big and sent as is: the header in one write, p in the next,
		// with no copy of it.
		if err := c.flushLocked(); err != nil {
			return err
		}
		_, err := c.writeLocked(p)
		return err
	}
	// Masked (or small): copied into the buffer once, a chunk at a time
	// for a big payload so that the buffer stays at FlushAt.
	for off := 0; ; {
		room := len(p) - off
		if masked {
			room = min(room, max(FlushAt-len(c.buf), 0))
		}
		c.buf = c.grow(room)
		dst := c.buf[len(c.buf)-room:]
		if masked {
			maskCopy(dst, p[off:off+room], key, off)
		} else {
			copy(dst, p[off:off+room])
		}
		off += room
		if off == len(p) {
			return nil
		}
		if err := c.flushLocked(); err != nil {
			return err
		}
	}
}

// grow extends c.buf by n bytes (their content undefined).
func (c *Conn) grow(n int) []byte {
	if l := len(c.buf) + n; l <= cap(c.buf) {
		return c.buf[:l]
	}
	return append(c.buf, make([]byte, n)...)
}

// maskCopy writes src XOR the masking key into dst (len(dst) ==
// len(src)); pos is the offset of src[0] in the payload, which picks the
// key byte it starts with.
func maskCopy(dst, src []byte, key uint32, pos int) {
	if s := uint(pos&3) * 8; s != 0 {
		key = key>>s | key<<(32-s) // the key as seen from byte pos
	}
	k := uint64(key) | uint64(key)<<32
	src = src[:len(dst)]
	i := 0
	for ; i+32 <= len(src); i += 32 {
		d, s := dst[i:i+32:i+32], src[i:i+32:i+32]
		binary.LittleEndian.PutUint64(d[0:], binary.LittleEndian.Uint64(s[0:])^k)
		binary.LittleEndian.PutUint64(d[8:], binary.LittleEndian.Uint64(s[8:])^k)
		binary.LittleEndian.PutUint64(d[16:], binary.LittleEndian.Uint64(s[16:])^k)
		binary.LittleEndian.PutUint64(d[24:], binary.LittleEndian.Uint64(s[24:])^k)
	}
	for ; i+8 <= len(src); i += 8 {
		binary.LittleEndian.PutUint64(dst[i:], binary.LittleEndian.Uint64(src[i:])^k)
	}
	for ; i < len(src); i++ {
		dst[i] = src[i] ^ byte(k)
		k = k>>8 | k<<56
	}
}

// NoBufferPool is a gorilla/websocket BufferPool that is always empty.
// Set as the WriteBufferPool of a Dialer or Upgrader whose connections
// write their data frames with WriteFrame, it keeps gorilla from
// allocating a write buffer at the handshake; gorilla still allocates one
// if its own writers are ever used.
type NoBufferPool struct{}

// Get returns nil: the pool is empty.
func (NoBufferPool) Get() any { return nil }

// Put drops b.
func (NoBufferPool) Put(any) {}
