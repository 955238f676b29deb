package rpc

import (
	"context"
	"io"
	"net"
	"strconv"
	"testing"
	"time"
)

// tcpPair returns the two ends of a loopback TCP connection.
func tcpPair(t *testing.T) (server, client net.Conn) {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	accepted := make(chan net.Conn, 1)
	go func() {
		c, err := ln.Accept()
		if err != nil {
			close(accepted)
			return
		}
		accepted <- c
	}()
	client, err = net.Dial("tcp", ln.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	server, ok := <-accepted
	if !ok {
		t.Fatal("accept failed")
	}
	t.Cleanup(func() { server.Close(); client.Close() })
	return server, client
}

// readOne reads through r and checks that it got want.
func readOne(t *testing.T, r *pollingReader, c net.Conn, want string) {
	t.Helper()
	buf := make([]byte, 64)
	n, err := r.read(func() (int, error) { return c.Read(buf) })
	if err != nil || string(buf[:n]) != want {
		t.Fatalf("read %q, %v; want %q", buf[:n], err, want)
	}
}

// A reader polls only while its caller is quick: after a wait shorter than
// the window, not after a longer one.
func TestPollingFollowsTheCaller(t *testing.T) {
	t.Parallel()
	server, client := tcpPair(t)
	const window = 500 * time.Millisecond // wide: a loaded machine must not make a quick caller slow
	p := &poller{window: window}
	r := newPollingReader(p, server)
	if r == nil {
		t.Fatal("a TCP connection gave no polling reader")
	}
	send := func(after time.Duration, msg string) {
		go func() {
			time.Sleep(after) // the caller's pause is what is under test
			client.Write([]byte(msg))
		}()
	}

	// The first wait does not poll: nothing is known of the caller yet.
	send(0, "a")
	readOne(t, r, server, "a")
	if got := p.polls.Load(); got != 0 {
		t.Fatalf("the first read polled %d times", got)
	}
	// A quick caller: the next waits poll, and the request polled for is
	// read.
	send(5*time.Millisecond, "b")
	readOne(t, r, server, "b")
	send(0, "c")
	readOne(t, r, server, "c")
	if got := p.polls.Load(); got != 2 {
		t.Fatalf("after quick reads, %d polls; want 2", got)
	}
	// A caller that pauses past the window: that wait polls (it could not
	// know), and then it waits as usual and gets the request...
	send(2*window, "d")
	readOne(t, r, server, "d")
	if got := p.polls.Load(); got != 3 {
		t.Fatalf("%d polls; want 3", got)
	}
	// ...and the next wait does not poll.
	send(0, "e")
	readOne(t, r, server, "e")
	if got := p.polls.Load(); got != 3 {
		t.Fatalf("after a slow caller, the next wait polled (%d polls; want 3)", got)
	}
}

// One reader polls at a time: another one waits as usual.
func TestOneReaderPollsAtATime(t *testing.T) {
	t.Parallel()
	server, client := tcpPair(t)
	p := &poller{window: time.Hour} // a window the test would notice
	r := newPollingReader(p, server)
	r.quick = true
	p.busy.Store(true) // another reader is polling
	client.Write([]byte("x"))
	readOne(t, r, server, "x")
	// Had it polled, it would have counted (and, with nothing more sent, a
	// second read would poll for an hour).
	if got := p.polls.Load(); got != 0 {
		t.Fatalf("a reader polled while another held the token (%d polls)", got)
	}
	if !p.busy.Load() {
		t.Fatal("a reader that did not poll let the other's token go")
	}
}

// A caller that hangs up while its reader polls is seen at once.
func TestPollingSeesAHangUp(t *testing.T) {
	t.Parallel()
	server, client := tcpPair(t)
	p := &poller{window: time.Hour}
	r := newPollingReader(p, server)
	r.quick = true
	go func() {
		time.Sleep(10 * time.Millisecond) // let the reader start polling
		client.Close()
	}()
	done := make(chan error, 1)
	go func() {
		buf := make([]byte, 8)
		_, err := r.read(func() (int, error) { return server.Read(buf) })
		done <- err
	}()
	select {
	case err := <-done:
		if err != io.EOF {
			t.Fatalf("read after a hang-up: %v; want EOF", err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("a reader polling for an hour did not see its caller hang up")
	}
	if !p.busy.CompareAndSwap(false, true) {
		t.Fatal("the token was not given back")
	}
}

// Connections that are not sockets do not poll.
func TestNoPollingWithoutASocket(t *testing.T) {
	t.Parallel()
	a, b := net.Pipe()
	defer a.Close()
	defer b.Close()
	if r := newPollingReader(&poller{window: time.Millisecond}, a); r != nil {
		t.Fatal("a pipe got a polling reader")
	}
	if r := newPollingReader(nil, a); r != nil {
		t.Fatal("no poller, and yet a polling reader")
	}
}

// A server with PollFor polls for a quick caller's calls, and answers them
// as before; without it, it does not poll.
func TestServerPollsForAQuickCaller(t *testing.T) {
	t.Parallel()
	for _, pollFor := range []time.Duration{0, 50 * time.Millisecond} {
		t.Run(pollFor.String(), func(t *testing.T) {
			ts, _ := serve(t, Options{PollFor: pollFor})
			c := dial(t, ts.URL, ClientOptions{})
			for i := 1; i <= 20; i++ {
				got, err := c.Call(context.Background(), "increment")
				if err != nil || string(got) != strconv.Itoa(i) {
					t.Fatalf("increment %d: %s, %v", i, got, err)
				}
			}
			s := ts.Config.Handler.(*Server)
			if pollFor == 0 {
				if s.poller != nil {
					t.Fatal("a server without PollFor has a poller")
				}
				return
			}
			if n := s.poller.polls.Load(); n == 0 {
				t.Fatal("20 calls back to back, and the reader never polled")
			}
		})
	}
}

// A client with a poll window polls for its answers while they come
// quickly (under the widest window: a loaded machine must not make them
// slow); one without has no poller. Windows outside 0 to 10 ms are
// refused.
func TestClientPollsForQuickAnswers(t *testing.T) {
	t.Parallel()
	ts, _ := serve(t, Options{})
	for _, pollFor := range []time.Duration{0, maxPollFor} {
		t.Run(pollFor.String(), func(t *testing.T) {
			c := dial(t, ts.URL, ClientOptions{PollFor: pollFor})
			before := 0
			if pollFor == 0 {
				if c.poller != nil {
					t.Fatal("a client without PollFor has a poller")
				}
			} else {
				before = int(c.poller.polls.Load())
			}
			for i := 1; i <= 20; i++ {
				if _, err := c.Call(context.Background(), "increment"); err != nil {
					t.Fatalf("call %d: %v", i, err)
				}
			}
			if pollFor != 0 && int(c.poller.polls.Load()) == before {
				t.Fatal("20 calls back to back, and the client's reader never polled")
			}
		})
	}
	for _, bad := range []time.Duration{-time.Microsecond, 11 * time.Millisecond} {
		if c, err := Dial(context.Background(), ts.URL, ClientOptions{PollFor: bad}); err == nil {
			c.Close()
			t.Errorf("PollFor %v was taken", bad)
		}
	}
}
