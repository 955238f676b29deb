package rpc

import (
	"io"
	"sync"
	"time"

	"github.com/gorilla/websocket"
)

// WebSocketStream is a WebSocket as a byte stream: what is written goes
// out as binary messages, and reads return the bytes of the binary
// messages received, in order. Dat replication runs over it.
type WebSocketStream struct {
	ws      *websocket.Conn
	readMu  sync.Mutex
	reader  io.Reader
	writeMu sync.Mutex
}

// NewWebSocketStream wraps ws.
func NewWebSocketStream(ws *websocket.Conn) *WebSocketStream {
	ws.SetReadLimit(16 << 20) // one replication frame is at most 8 MiB
	return &WebSocketStream{ws: ws}
}

// Read implements io.Reader.
func (s *WebSocketStream) Read(p []byte) (int, error) {
	s.readMu.Lock()
	defer s.readMu.Unlock()
	for {
		if s.reader != nil {
			n, err := s.reader.Read(p)
			if err == io.EOF {
				s.reader = nil
				if n > 0 {
					return n, nil
				}
				continue
			}
			return n, err
		}
		kind, r, err := s.ws.NextReader()
		if err != nil {
			if websocket.IsCloseError(err, websocket.CloseNormalClosure, websocket.CloseGoingAway) {
				return 0, io.EOF
			}
			return 0, err
		}
		if kind == websocket.BinaryMessage {
			s.reader = r
		}
	}
}

// Write implements io.Writer: each write is one binary message.
func (s *WebSocketStream) Write(p []byte) (int, error) {
	s.writeMu.Lock()
	defer s.writeMu.Unlock()
	s.ws.SetWriteDeadline(time.Now().Add(30 * time.Second))
	if err := s.ws.WriteMessage(websocket.BinaryMessage, p); err != nil {
		return 0, err
	}
	return len(p), nil
}

// Close implements io.Closer.
func (s *WebSocketStream) Close() error {
	s.writeMu.Lock()
	s.ws.WriteControl(websocket.CloseMessage, websocket.FormatCloseMessage(websocket.CloseNormalClosure, ""), time.Now().Add(time.Second))
	s.writeMu.Unlock()
	return s.ws.Close()
}
