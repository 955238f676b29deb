package server

import (
	"context"
	"net"
	"net/http"
	"sync"
	"time"
)

// startingMessage is what a caller is told while a backend opens.
const startingMessage = "the backend is starting (checking its folder, or replaying its call log); try again in a few seconds"

// Starting answers every request on ln with 503 Service Unavailable, a
// Retry-After and a message saying that the backend is starting, until
// stop is called; stop then leaves ln open and unused, for Serve. It is
// for the time Open takes (a replay of a long log, for a backend whose
// memory is kept): a caller is told to try again, rather than left
// waiting on a connection nothing answers, or refused.
func Starting(ln net.Listener) (stop func()) {
	srv := &http.Server{
		Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			w.Header().Set("Retry-After", "2")
			http.Error(w, startingMessage, http.StatusServiceUnavailable)
		}),
		ReadHeaderTimeout: 10 * time.Second,
	}
	done := make(chan struct{})
	go func() {
		defer close(done)
		srv.Serve(keepOpen{ln})
	}()
	var once sync.Once
	return func() {
		once.Do(func() {
			ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
			defer cancel()
			if srv.Shutdown(ctx) != nil {
				srv.Close()
			}
			<-done
			if d, ok := ln.(deadliner); ok {
				d.SetDeadline(time.Time{}) // Accept as before, for Serve
			}
		})
	}
}

// keepOpen is a listener whose Close does not close the one under it
// (which Serve takes over), but still ends a pending Accept.
type keepOpen struct{ net.Listener }

func (k keepOpen) Close() error {
	// An Accept in progress returns once the deadline passes; the
	// listener itself stays open.
	if d, ok := k.Listener.(deadliner); ok {
		return d.SetDeadline(time.Unix(1, 0))
	}
	return nil
}

// deadliner is a listener with deadlines, as a TCP listener has.
type deadliner interface{ SetDeadline(time.Time) error }
