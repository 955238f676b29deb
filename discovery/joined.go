package discovery

import (
	"context"
	"time"
)

// joinedKey is a key a finder looks up, and announces if port is not 0.
type joinedKey struct {
	key    []byte // the discovery key's first NameSize bytes
	port   uint16 // announced port; 0 for a lookup only
	cancel context.CancelFunc
}

// rejoin makes the key that replaces old (nil if the key was not joined):
// its work runs under the context returned, a child of parent, and old's
// is cancelled. Looking a key up again (Peers does when the peers it found
// failed) starts over, but does not stop its announcement: a lookup keeps
// old's port. The finder holds its lock.
func rejoin(parent context.Context, old *joinedKey, discoveryKey []byte, port uint16) (*joinedKey, context.Context) {
	if old != nil {
		if port == 0 {
			port = old.port
		}
		old.cancel()
	}
	ctx, cancel := context.WithCancel(parent)
	key := append([]byte(nil), discoveryKey[:min(len(discoveryKey), NameSize)]...)
	return &joinedKey{key: key, port: port, cancel: cancel}, ctx
}

// every runs f now, then again after first, and after waits that double up
// to most, until ctx ends.
func every(ctx context.Context, first, most time.Duration, f func()) {
	wait := first
	for {
		f()
		select {
		case <-ctx.Done():
			return
		case <-time.After(wait):
		}
		wait = min(2*wait, most)
	}
}
