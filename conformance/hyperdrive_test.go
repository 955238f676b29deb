package conformance

import (
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/nodevms/nodevms/hypercore"
	"github.com/nodevms/nodevms/hyperdrive"
)

func loadHyperdriveVectors(t *testing.T) *HyperdriveVectors {
	t.Helper()
	v, err := LoadHyperdriveVectors("testdata")
	if err != nil {
		t.Fatal(err)
	}
	return v
}

// applyStep runs one vector step on a.
func applyStep(a *hyperdrive.Archive, s HyperdriveStep) error {
	o := hyperdrive.WriteOptions{Mtime: time.UnixMilli(s.Time), Ctime: time.UnixMilli(s.Time)}
	switch s.Op {
	case "writeFile":
		var data []byte
		if s.Data != nil {
			data = s.Data.Bytes
		}
		return a.WriteFile(s.Path, data, o)
	case "mkdir":
		return a.Mkdir(s.Path, o)
	case "unlink":
		return a.Unlink(s.Path)
	case "rmdir":
		return a.Rmdir(s.Path)
	}
	return fmt.Errorf("unknown op %q", s.Op)
}

// TestArchiveVectors replays the reference's scripted archive and checks
// every block, root and signature both feeds get, and what stat and readdir
// answer after each step.
func TestArchiveVectors(t *testing.T) {
	v := loadHyperdriveVectors(t)
	kp := hypercore.KeyPairFromSeed(v.Seed)
	if hex.EncodeToString(kp.PublicKey) != hex.EncodeToString(v.MetadataKey) {
		t.Fatal("metadata key differs from the seed's")
	}
	if got := hyperdrive.ContentKeyPair(kp.SecretKey).PublicKey; hex.EncodeToString(got) != hex.EncodeToString(v.ContentKey) {
		t.Fatalf("content key = %x, want %x", got, v.ContentKey)
	}
	a, err := hyperdrive.Open(hyperdrive.Options{Storage: hyperdrive.MemoryStorage(), SecretKey: kp.SecretKey, Create: true})
	if err != nil {
		t.Fatal(err)
	}
	defer a.Close()
	for i, s := range v.Steps {
		t.Run(fmt.Sprintf("%02d-%s-%s", i, s.Op, s.Path), func(t *testing.T) {
			err := applyStep(a, s)
			if (err != nil) != (s.Error != nil) {
				t.Fatalf("error = %v, want %v", err, s.Error)
			}
			if a.Version() != s.Version {
				t.Errorf("version = %d, want %d", a.Version(), s.Version)
			}
			checkFeedStep(t, "metadata", a.Metadata(), s.Metadata, nil)
			checkFeedStep(t, "content", a.Content(), s.Content, s.ContentSignatures)
			for dir, raw := range s.Readdir {
				checkReaddir(t, a, dir, raw)
			}
			for name, raw := range s.Stat {
				checkStat(t, a, name, raw)
			}
		})
	}
	for _, ver := range v.Versions {
		co, err := a.Checkout(ver.Version)
		if err != nil {
			t.Fatal(err)
		}
		for dir, raw := range ver.Readdir {
			t.Run(fmt.Sprintf("checkout-%d%s", ver.Version, dir), func(t *testing.T) { checkReaddir(t, co, dir, raw) })
		}
	}
	hist, err := a.History(1)
	if err != nil {
		t.Fatal(err)
	}
	type h struct {
		Version    uint64
		Type, Name string
	}
	var got, want []h
	for _, e := range hist {
		got = append(got, h{e.Version, e.Type, e.Name})
	}
	for _, e := range v.History {
		want = append(want, h{e.Version, e.Type, e.Name})
	}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("history (-want +got):\n%s", diff)
	}
}

func checkFeedStep(t *testing.T, what string, f *hypercore.Feed, want FeedStep, sigs map[string]HexBytes) {
	t.Helper()
	if f.Length() != want.Length || f.ByteLength() != want.ByteLength {
		t.Fatalf("%s: length %d/%d bytes, want %d/%d", what, f.Length(), f.ByteLength(), want.Length, want.ByteLength)
	}
	for j, b := range want.Blocks {
		i := want.From + uint64(j)
		got, err := f.Get(i)
		if err != nil {
			t.Fatalf("%s block %d: %v", what, i, err)
		}
		if hex.EncodeToString(got) != hex.EncodeToString(b) {
			t.Errorf("%s block %d:\n got %x\nwant %x", what, i, got, []byte(b))
		}
	}
	if f.Length() == 0 {
		return
	}
	roots, err := f.Roots(f.Length())
	if err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff(nodesOf(want.Roots), roots); diff != "" {
		t.Errorf("%s roots (-want +got):\n%s", what, diff)
	}
	sig, _, err := f.Signature(f.Length() - 1)
	if err != nil {
		t.Fatal(err)
	}
	if hex.EncodeToString(sig) != hex.EncodeToString(want.Signature) {
		t.Errorf("%s signature = %x, want %x", what, sig, []byte(want.Signature))
	}
	for k, wantSig := range sigs {
		i, _ := strconv.ParseUint(k, 10, 64)
		got, at, err := f.Signature(i)
		if err != nil || at != i || hex.EncodeToString(got) != hex.EncodeToString(wantSig) {
			t.Errorf("%s signature at %d: %x (at %d, %v), want %x", what, i, got, at, err, []byte(wantSig))
		}
	}
}

// refError is how the vectors record a failed call.
type refError struct {
	Error string `json:"error"`
}

func checkReaddir(t *testing.T, a *hyperdrive.Archive, dir string, raw json.RawMessage) {
	t.Helper()
	got, err := a.Readdir(dir)
	var wantErr refError
	if json.Unmarshal(raw, &wantErr) == nil && wantErr.Error != "" {
		if !errors.Is(err, hyperdrive.ErrNotFound) {
			t.Errorf("readdir %s = %q, %v; want %s", dir, got, err, wantErr.Error)
		}
		return
	}
	var want []string
	if err := json.Unmarshal(raw, &want); err != nil {
		t.Fatal(err)
	}
	if err != nil {
		t.Errorf("readdir %s: %v", dir, err)
		return
	}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("readdir %s (-want +got):\n%s", dir, diff)
	}
}

func checkStat(t *testing.T, a *hyperdrive.Archive, name string, raw json.RawMessage) {
	t.Helper()
	st, err := a.Stat(name)
	var wantErr refError
	if json.Unmarshal(raw, &wantErr) == nil && wantErr.Error != "" {
		if !errors.Is(err, hyperdrive.ErrNotFound) {
			t.Errorf("stat %s = %+v, %v; want %s", name, st, err, wantErr.Error)
		}
		return
	}
	var want struct {
		Mode                             uint32
		Size, Blocks, Offset, ByteOffset uint64
		Mtime, Ctime                     int64
	}
	if err := json.Unmarshal(raw, &want); err != nil {
		t.Fatal(err)
	}
	if err != nil {
		t.Errorf("stat %s: %v", name, err)
		return
	}
	got := want
	got.Mode, got.Size, got.Blocks, got.Offset, got.ByteOffset, got.Mtime, got.Ctime =
		st.Mode, st.Size, st.Blocks, st.Offset, st.ByteOffset, st.Mtime, st.Ctime
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("stat %s (-want +got):\n%s", name, diff)
	}
}
