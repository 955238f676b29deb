package rpc

import (
	"bufio"
	"errors"
	"net"
	"net/http"
	"sync"
)

// batchConn is a connection whose writes can be held and sent together:
// between begin and end, what the WebSocket library writes (a frame per
// answer) is collected and goes out in one system call. Outside a batch,
// writes go straight through, so the library's own replies (pongs, the
// closing handshake) are never held back.
type batchConn struct {
	net.Conn

	beforeRead func()         // called by Read before it reads
	polling    *pollingReader // nil: Read waits for input without polling

	mu       sync.Mutex
	batching bool
	buf      []byte
}

// Read is called by the WebSocket library's reader only, when it has used
// up what it read before.
func (b *batchConn) Read(p []byte) (int, error) {
	if b.beforeRead != nil {
		b.beforeRead()
	}
	if b.polling != nil {
		return b.polling.read(func() (int, error) { return b.Conn.Read(p) })
	}
	return b.Conn.Read(p)
}

func (b *batchConn) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.batching {
		b.buf = append(b.buf, p...)
		return len(p), nil
	}
	return b.Conn.Write(p)
}

func (b *batchConn) begin() {
	b.mu.Lock()
	b.batching = true
	b.mu.Unlock()
}

// end sends what the batch collected.
func (b *batchConn) end() error {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.batching = false
	if len(b.buf) == 0 {
		return nil
	}
	_, err := b.Conn.Write(b.buf)
	if cap(b.buf) > 1<<20 {
		b.buf = nil // a burst of large answers: do not keep its buffer
	} else {
		b.buf = b.buf[:0]
	}
	return err
}

// hijacker hands the WebSocket library a batchConn when it takes over the
// connection.
type hijacker struct {
	http.ResponseWriter
	conn       *batchConn
	beforeRead func()
	poller     *poller // nil: no polling
}

func (h *hijacker) Hijack() (net.Conn, *bufio.ReadWriter, error) {
	hj, ok := h.ResponseWriter.(http.Hijacker)
	if !ok {
		return nil, nil, errors.New("rpc: the connection cannot be taken over")
	}
	c, brw, err := hj.Hijack()
	if err != nil {
		return nil, nil, err
	}
	h.conn = &batchConn{Conn: c, beforeRead: h.beforeRead, polling: newPollingReader(h.poller, c)}
	return h.conn, brw, nil
}
