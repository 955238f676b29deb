package hypercore_test

import (
	"bytes"
	"errors"
	"testing"

	"github.com/nodevms/nodevms/hypercore"
)

// stageOps are the operations FuzzStagedAppends reads from its input, two
// bytes each: the operation, and its argument.
const (
	opAppend   = iota // arg%5+1 blocks, sizes from arg
	opHold            // a hold, or a save point within one
	opRelease         // keep the innermost hold's appends
	opRollback        // take them back
	opRead            // read a block, and the tree hash
	opCount
)

// FuzzStagedAppends: a feed driven through any sequence of appends, holds,
// releases and rollbacks reads, hashes and stores exactly what a feed
// given only the appends that were kept does; what is staged in a hold
// never reaches the files, and the files reopen with every kept block.
func FuzzStagedAppends(f *testing.F) {
	kp := seedKey(12)
	f.Fuzz(func(t *testing.T, ops []byte) {
		st := hypercore.NewMemoryStorage()
		feed := mustOpen(t, hypercore.Config{Storage: st, SecretKey: kp.SecretKey, Create: true})
		var kept [][]byte // the blocks as the feed should show them now
		var marks []int   // len(kept) at each open hold
		for i := 0; i+1 < len(ops) && i < 512; i += 2 {
			arg := ops[i+1]
			switch ops[i] % opCount {
			case opAppend:
				var batch [][]byte
				for k := range int(arg%5) + 1 {
					size := int(arg) * (k + 1) % 97
					if arg%7 == 0 {
						size += 65536 // a content-sized block now and then
					}
					batch = append(batch, bytes.Repeat([]byte{arg + byte(k)}, size))
				}
				start, err := feed.Append(batch...)
				if err != nil || start != uint64(len(kept)) {
					t.Fatalf("append at %d: %d, %v", len(kept), start, err)
				}
				kept = append(kept, batch...)
			case opHold:
				if err := feed.Hold(); err != nil {
					t.Fatal(err)
				}
				marks = append(marks, len(kept))
			case opRelease:
				feed.Release()
				if len(marks) > 0 {
					marks = marks[:len(marks)-1]
				}
			case opRollback:
				if err := feed.Rollback(); err != nil {
					t.Fatal(err)
				}
				if len(marks) > 0 {
					kept = kept[:marks[len(marks)-1]]
					marks = marks[:len(marks)-1]
				}
			case opRead:
				if len(kept) == 0 {
					continue
				}
				k := int(arg) % len(kept)
				if b, err := feed.Get(uint64(k)); err != nil || !bytes.Equal(b, kept[k]) {
					t.Fatalf("block %d of %d: %d bytes, %v; want %d bytes", k, len(kept), len(b), err, len(kept[k]))
				}
				compareTrees(t, feed, kept)
			}
			if feed.Length() != uint64(len(kept)) {
				t.Fatalf("length %d, want %d", feed.Length(), len(kept))
			}
			if len(marks) > 0 && feed.Published() > uint64(marks[0]) {
				t.Fatalf("published %d inside a hold begun at %d", feed.Published(), marks[0])
			}
		}
		for range marks {
			feed.Release()
		}
		compareTrees(t, feed, kept)
		if err := feed.Close(); err != nil {
			t.Fatal(err)
		}
		// The data and tree files as a feed that only ever appended the
		// kept blocks has them. (Signatures sign the lengths appends ended
		// at; the bitfield may hold a page of zeros a rolled-back append
		// had claimed, which the reopen below reads as nothing.)
		plainSt := hypercore.NewMemoryStorage()
		plain := mustOpen(t, hypercore.Config{Storage: plainSt, SecretKey: kp.SecretKey, Create: true})
		if len(kept) > 0 {
			if _, err := plain.Append(kept...); err != nil {
				t.Fatal(err)
			}
		}
		if err := plain.Close(); err != nil {
			t.Fatal(err)
		}
		for _, name := range []string{"data", "tree"} {
			if !bytes.Equal(st.Bytes(name), plainSt.Bytes(name)) {
				t.Errorf("%s differs from a plain feed's (%d vs %d bytes)", name, len(st.Bytes(name)), len(plainSt.Bytes(name)))
			}
		}
		again := mustOpen(t, hypercore.Config{Storage: st, PublicKey: kp.PublicKey})
		defer again.Close()
		if again.Length() != uint64(len(kept)) {
			t.Fatalf("reopened at length %d, want %d", again.Length(), len(kept))
		}
		for k, want := range kept {
			if b, err := again.Get(uint64(k)); err != nil || !bytes.Equal(b, want) {
				t.Fatalf("reopened, block %d: %d bytes, %v", k, len(b), err)
			}
		}
	})
}

// compareTrees checks that feed's tree hash is that of a feed holding
// exactly blocks.
func compareTrees(t *testing.T, feed *hypercore.Feed, blocks [][]byte) {
	t.Helper()
	plain := mustOpen(t, hypercore.Config{Storage: hypercore.NewMemoryStorage(), Create: true})
	defer plain.Close()
	if len(blocks) > 0 {
		if _, err := plain.Append(blocks...); err != nil {
			t.Fatal(err)
		}
	}
	n := uint64(len(blocks))
	want, err := plain.TreeHash(n)
	if err != nil && !errors.Is(err, hypercore.ErrNotFound) {
		t.Fatal(err)
	}
	got, err := feed.TreeHash(n)
	if err != nil && !errors.Is(err, hypercore.ErrNotFound) {
		t.Fatal(err)
	}
	if got != want {
		t.Fatalf("tree hash of %d blocks %x, want %x", n, got, want)
	}
}
