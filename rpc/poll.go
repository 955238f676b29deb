package rpc

import (
	"errors"
	"runtime"
	"sync/atomic"
	"syscall"
	"time"

	"golang.org/x/sys/unix"
)

// Polling for a caller's next request. A caller that sends its next call
// as soon as it has the last answer leaves the connection idle for about
// one round trip. Waiting for it the usual way parks the reader's thread
// and, when the request lands, wakes it again; on virtual machines that
// wake-up costs tens of microseconds, as much as the call itself. So a
// reader that expects its caller back soon asks the socket whether the
// request is there, over and over, for a short window before it parks.
//
// The window is spent only where it pays, and bounded three ways:
//   - a reader polls only if its last wait for input was shorter than the
//     window, so a caller that pauses longer turns polling off for its
//     connection until it is quick again;
//   - one reader at a time polls, server-wide, so that polling costs at
//     most one core however many connections are open;
//   - between two looks at the socket the reader yields to the other
//     goroutines, so a host with work to do is not held up.
//
// A Client can poll the same way for its answers (ClientOptions.PollFor),
// with a poller of its own: a caller that waits on each answer otherwise
// pays the same wake-up on its side of every round trip.

// maxPollFor bounds a client's poll window: past a few milliseconds an
// answer is not coming soon, and polling only burns a core.
const maxPollFor = 10 * time.Millisecond

// poller is the server-wide token and window for polling readers.
type poller struct {
	window time.Duration
	busy   atomic.Bool
	polls  atomic.Int64 // windows entered, for tests
}

// wait polls rc for input for up to the window, unless another reader is
// polling. It returns once input (or a hang-up) is there, or the window
// has passed; the caller then reads as usual.
func (p *poller) wait(rc syscall.RawConn) {
	if !p.busy.CompareAndSwap(false, true) {
		return
	}
	defer p.busy.Store(false)
	p.polls.Add(1)
	deadline := time.Now().Add(p.window)
	rc.Control(func(fd uintptr) {
		fds := []unix.PollFd{{Fd: int32(fd), Events: unix.POLLIN}}
		for {
			n, err := unix.Poll(fds, 0)
			if n != 0 || (err != nil && !errors.Is(err, unix.EINTR)) {
				return
			}
			if time.Now().After(deadline) {
				return
			}
			runtime.Gosched()
		}
	})
}

// pollingReader is a connection's side of polling: whether its caller has
// been quick, so that its next wait starts with a window.
type pollingReader struct {
	p     *poller
	rc    syscall.RawConn
	quick bool // the last wait for input was shorter than the window
}

// newPollingReader returns nil, which does not poll, if p is nil or c has
// no file descriptor to poll.
func newPollingReader(p *poller, c any) *pollingReader {
	if p == nil {
		return nil
	}
	sc, ok := c.(syscall.Conn)
	if !ok {
		return nil
	}
	rc, err := sc.SyscallConn()
	if err != nil {
		return nil
	}
	return &pollingReader{p: p, rc: rc}
}

// read reads with read, first polling if the caller has been quick, and
// notes whether it was quick this time.
func (r *pollingReader) read(read func() (int, error)) (int, error) {
	start := time.Now()
	if r.quick {
		r.p.wait(r.rc)
	}
	n, err := read()
	r.quick = time.Since(start) < r.p.window
	return n, err
}
