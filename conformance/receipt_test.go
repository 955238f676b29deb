package conformance

import (
	"bufio"
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"testing"

	"github.com/nodevms/nodevms/hypercore"
	"github.com/nodevms/nodevms/receipt"
)

// TestReceiptsOfReferenceProofs: the proofs the reference sends a peer that
// has nothing of a feed, with the block and the reference's signature, are
// receipts that verify; with the block or a node changed they do not.
func TestReceiptsOfReferenceProofs(t *testing.T) {
	v := loadVectors(t)
	checked := 0
	for _, name := range v.FeedNames() {
		fv := v.Feeds[name]
		if len(fv.States) == 0 || fv.ValueEncoding != "" && fv.Batches == nil {
			continue
		}
		var blocks [][]byte
		for _, batch := range fv.Batches {
			for _, b := range batch {
				blocks = append(blocks, b.Bytes)
			}
		}
		length := fv.States[len(fv.States)-1].Length
		for _, p := range fv.Proofs {
			if p.Digest != 0 || p.Hash || p.Signature == nil || p.Index >= uint64(len(blocks)) {
				continue
			}
			t.Run(fmt.Sprintf("%s/%d", name, p.Index), func(t *testing.T) {
				t.Parallel()
				r := &receipt.Receipt{Log: []byte(fv.PublicKey), Index: p.Index, Length: length, Entry: blocks[p.Index], Nodes: nodesOf(p.Nodes), Signature: p.Signature}
				if err := r.Verify([]byte(fv.PublicKey)); err != nil {
					t.Fatalf("the reference's proof: %v", err)
				}
				r.Entry = append([]byte{0}, r.Entry...)
				if err := r.Verify([]byte(fv.PublicKey)); !errors.Is(err, receipt.ErrInvalid) {
					t.Errorf("another block with the reference's proof: %v, want ErrInvalid", err)
				}
				r.Entry = blocks[p.Index]
				if len(r.Nodes) > 0 {
					r.Nodes[len(r.Nodes)/2].Hash[5] ^= 0x40
					if err := r.Verify([]byte(fv.PublicKey)); !errors.Is(err, receipt.ErrInvalid) {
						t.Errorf("a changed proof node: %v, want ErrInvalid", err)
					}
				}
			})
			checked++
		}
	}
	if checked < 10 {
		t.Fatalf("only %d reference proofs made receipts", checked)
	}
}

// TestReferenceChecksReceipts: the reference, given a Go receipt's entry,
// nodes and signature as a downloaded block and its proof, accepts it into
// an empty feed of the log's key; with the entry changed it refuses it.
func TestReferenceChecksReceipts(t *testing.T) {
	dir := t.TempDir()
	kp := hypercore.KeyPairFromSeed(bytes.Repeat([]byte{7}, 32))
	log, err := hypercore.Open(hypercore.Config{Storage: hypercore.NewMemoryStorage(), SecretKey: kp.SecretKey, Create: true, DeferSignatures: true})
	if err != nil {
		t.Fatal(err)
	}
	defer log.Close()
	var files []string
	type expect struct {
		ok     bool
		length uint64
	}
	want := map[string]expect{}
	write := func(name string, r *receipt.Receipt, ok bool) {
		data, err := r.Marshal()
		if err != nil {
			t.Fatal(err)
		}
		path := filepath.Join(dir, name)
		if err := os.WriteFile(path, data, 0o644); err != nil {
			t.Fatal(err)
		}
		files = append(files, path)
		want[path] = expect{ok, r.Length}
	}
	for i := range uint64(100) {
		log.Append(fmt.Appendf(nil, `{"type":"call","n":%d}`+"\n", i))
		if i%9 != 0 && i != 63 && i != 99 {
			continue
		}
		// Receipts against several signed lengths, of the newest entry
		// and of one from before.
		if err := log.Sign(); err != nil {
			t.Fatal(err)
		}
		for _, j := range []uint64{i, i / 3} {
			r, err := receipt.Make(log, j)
			if err != nil {
				t.Fatal(err)
			}
			write(fmt.Sprintf("r%d-%d.json", j, i+1), r, true)
			r.Entry = bytes.Replace(r.Entry, []byte(`"n"`), []byte(`"m"`), 1)
			write(fmt.Sprintf("r%d-%d-edited.json", j, i+1), r, false)
		}
	}
	out := runNode(t, "check-receipt.js", files...)
	sc := bufio.NewScanner(bytes.NewReader(out))
	seen := 0
	for sc.Scan() {
		var res struct {
			File   string `json:"file"`
			OK     bool   `json:"ok"`
			Length uint64 `json:"length"`
			Error  string `json:"error"`
		}
		if err := json.Unmarshal(sc.Bytes(), &res); err != nil {
			t.Fatal(err)
		}
		seen++
		w := want[res.File]
		if res.OK != w.ok {
			t.Errorf("%s: the reference says ok=%v (%s), want %v", filepath.Base(res.File), res.OK, res.Error, w.ok)
		}
		if res.OK && res.Length != w.length {
			t.Errorf("%s: the reference's feed has length %d after the put, the receipt says %d", filepath.Base(res.File), res.Length, w.length)
		}
	}
	if seen != len(files) {
		t.Fatalf("the reference checked %d receipts of %d", seen, len(files))
	}
}
