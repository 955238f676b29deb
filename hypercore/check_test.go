package hypercore_test

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/nodevms/nodevms/hypercore"
	"github.com/nodevms/nodevms/hypercore/sleep"
)

// TestCheckStored: a writer's files pass; one changed byte in any of them
// is found, and named.
func TestCheckStored(t *testing.T) {
	kp := seedKey(12)
	const pageHeader = sleep.HeaderSize
	for _, c := range []struct {
		name   string
		file   string
		offset int64 // from the end if negative
		want   error
		says   string
	}{
		{"intact", "", 0, nil, ""},
		{"a data byte", "data", 50, hypercore.ErrDataChanged, "block 6 (bytes 48 to 56)"},
		{"a leaf", "tree", sleep.TreeOffset(20) + 3, hypercore.ErrCorrupt, "node"},
		{"a parent", "tree", sleep.TreeOffset(19) + 3, hypercore.ErrCorrupt, "node"},
		{"a block bit past the end", "bitfield", pageHeader + 100, hypercore.ErrCorrupt, "block 803 is marked present"},
		{"a tree bit past the end", "bitfield", pageHeader + 1024 + 200, hypercore.ErrCorrupt, "tree node"},
		{"an index leaf", "bitfield", pageHeader + 1024 + 2048 + 2, hypercore.ErrCorrupt, "index"},
		{"the last signature", "signatures", -10, hypercore.ErrCorrupt, "signature"},
		{"an earlier signature", "signatures", sleep.HeaderSize + 9*hypercore.SignatureSize + 5, hypercore.ErrCorrupt, "signature of block 9"},
	} {
		t.Run(c.name, func(t *testing.T) {
			dir := t.TempDir()
			f := mustOpen(t, hypercore.Config{Storage: hypercore.DirStorage{Dir: dir}, SecretKey: kp.SecretKey, Create: true})
			for b := range 4 {
				if _, err := f.Append(blocks(fmt.Sprint("batch", b), 10)...); err != nil {
					t.Fatal(err)
				}
			}
			if err := f.Close(); err != nil {
				t.Fatal(err)
			}
			if c.file != "" {
				path := filepath.Join(dir, c.file)
				b, err := os.ReadFile(path)
				if err != nil {
					t.Fatal(err)
				}
				off := c.offset
				if off < 0 {
					off += int64(len(b))
				}
				b[off] ^= 0x10
				if err := os.WriteFile(path, b, 0o644); err != nil {
					t.Fatal(err)
				}
			}
			// Read-only, as an offline check opens it: a writer's Open
			// would rebuild the damaged bitfields (see TestReclaim).
			f, err := hypercore.Open(hypercore.Config{Storage: hypercore.DirStorage{Dir: dir}, ReadOnly: true})
			if err == nil {
				defer f.Close()
				err = f.CheckStored(hypercore.CheckOptions{Data: true, AllBlocks: true, Signatures: true})
			}
			switch {
			case c.want == nil && err != nil:
				t.Fatalf("an intact feed: %v", err)
			case c.want != nil && (!errors.Is(err, c.want) || !strings.Contains(err.Error(), c.says)):
				t.Fatalf("got %v, want %v saying %q", err, c.want, c.says)
			}
		})
	}
}
