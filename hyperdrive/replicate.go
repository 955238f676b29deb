package hyperdrive

import (
	"context"
	"fmt"
	"io"

	"github.com/nodevms/nodevms/hypercore"
	"github.com/nodevms/nodevms/hypercore/protocol"
)

// Lookup finds the archive's feeds by discovery key, for protocol.Serve and
// protocol.ServeListener: a peer can ask for the metadata feed, the content
// feed or both.
func (a *Archive) Lookup() protocol.Lookup {
	return func(dk [32]byte) *hypercore.Feed {
		if a.metadata.DiscoveryKey() == dk {
			return a.metadata
		}
		if c := a.Content(); c != nil && c.DiscoveryKey() == dk {
			return c
		}
		return nil
	}
}

// Replicate replicates both feeds with the peer at the other end of conn,
// the metadata on channel 0 and the content on channel 1 of one stream, as
// the reference does. The content feed must be known; a replica that has
// not seen metadata block 0 yet uses Pull.
func (a *Archive) Replicate(ctx context.Context, conn io.ReadWriteCloser, opts protocol.Options) error {
	content := a.Content()
	if content == nil {
		conn.Close()
		return fmt.Errorf("%w: the content feed is not known yet; use Pull", ErrNotFound)
	}
	return protocol.Replicate(ctx, conn, opts, a.metadata, content)
}

// Pull downloads the archive from a peer: dial opens a connection to it,
// once, or twice when this replica does not know the content feed yet (the
// first connection fetches the metadata, whose block 0 names the content
// feed). With opts.Live it then follows the archive until ctx ends.
func (a *Archive) Pull(ctx context.Context, dial func(context.Context) (io.ReadWriteCloser, error), opts protocol.Options) error {
	if a.Content() == nil {
		conn, err := dial(ctx)
		if err != nil {
			return err
		}
		first := opts
		first.Live = false
		if err := protocol.Replicate(ctx, conn, first, a.metadata); err != nil {
			return fmt.Errorf("hyperdrive: metadata: %w", err)
		}
		a.mu.Lock()
		err = a.openContent()
		a.mu.Unlock()
		if err != nil {
			return err
		}
		if a.Content() == nil {
			return fmt.Errorf("%w: the peer did not send metadata block 0", ErrNotFound)
		}
	}
	conn, err := dial(ctx)
	if err != nil {
		return err
	}
	return a.Replicate(ctx, conn, opts)
}
