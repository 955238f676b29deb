package conformance

import (
	"bytes"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/nodevms/nodevms/hypercore/wire"
)

// WireVectors are the reference's encodings of messages, frames, run-length
// encoded bitfields and XSalsa20 keystreams (testdata/wire/vectors.json).
type WireVectors struct {
	Reference string `json:"reference"`
	Messages  []struct {
		Type   wire.Type                  `json:"type"`
		Name   string                     `json:"name"`
		Fields map[string]json.RawMessage `json:"fields"`
		Body   HexBytes                   `json:"body"`
	} `json:"messages"`
	Frames []struct {
		Channel uint64    `json:"channel"`
		Type    wire.Type `json:"type"`
		Body    HexBytes  `json:"body"`
		Frame   HexBytes  `json:"frame"`
	} `json:"frames"`
	RLE []struct {
		Bitfield HexBytes `json:"bitfield"`
		Encoded  HexBytes `json:"encoded"`
	} `json:"rle"`
	Keystreams []struct {
		Key    HexBytes `json:"key"`
		Nonce  HexBytes `json:"nonce"`
		Chunks []int    `json:"chunks"`
		Output []string `json:"output"`
	} `json:"keystreams"`
}

func loadWireVectors(t *testing.T) *WireVectors {
	t.Helper()
	b, err := os.ReadFile(filepath.Join("testdata", "wire", "vectors.json"))
	if err != nil {
		t.Fatal(err)
	}
	var v WireVectors
	if err := json.Unmarshal(b, &v); err != nil {
		t.Fatal(err)
	}
	return &v
}

// messageFromFields builds the Go message for the reference's field object;
// a field the reference left null or out stays unset.
func messageFromFields(t *testing.T, typ wire.Type, fields map[string]json.RawMessage) wire.Message {
	t.Helper()
	has := func(k string) bool { v, ok := fields[k]; return ok && string(v) != "null" }
	u := func(k string) uint64 {
		var v uint64
		if err := json.Unmarshal(fields[k], &v); err != nil {
			t.Fatalf("%s: %v", k, err)
		}
		return v
	}
	optU := func(k string) *uint64 {
		if !has(k) {
			return nil
		}
		return wire.Uint64(u(k))
	}
	optB := func(k string) *bool {
		if !has(k) {
			return nil
		}
		var v bool
		if err := json.Unmarshal(fields[k], &v); err != nil {
			t.Fatalf("%s: %v", k, err)
		}
		return &v
	}
	bs := func(k string) []byte {
		if !has(k) {
			return nil
		}
		var v struct{ Hex HexBytes }
		if err := json.Unmarshal(fields[k], &v); err != nil {
			t.Fatalf("%s: %v", k, err)
		}
		if v.Hex == nil {
			return []byte{}
		}
		return v.Hex
	}
	switch typ {
	case wire.TypeFeed:
		return &wire.Feed{DiscoveryKey: bs("discoveryKey"), Nonce: bs("nonce")}
	case wire.TypeHandshake:
		m := &wire.Handshake{ID: bs("id"), Live: optB("live"), UserData: bs("userData"), Ack: optB("ack")}
		if has("extensions") {
			if err := json.Unmarshal(fields["extensions"], &m.Extensions); err != nil {
				t.Fatal(err)
			}
		}
		return m
	case wire.TypeInfo:
		return &wire.Info{Uploading: optB("uploading"), Downloading: optB("downloading")}
	case wire.TypeHave:
		return &wire.Have{Start: u("start"), Length: optU("length"), Bitfield: bs("bitfield"), Ack: optB("ack")}
	case wire.TypeUnhave:
		return &wire.Unhave{Start: u("start"), Length: optU("length")}
	case wire.TypeWant:
		return &wire.Want{Start: u("start"), Length: optU("length")}
	case wire.TypeUnwant:
		return &wire.Unwant{Start: u("start"), Length: optU("length")}
	case wire.TypeRequest:
		return &wire.Request{Index: u("index"), Bytes: optU("bytes"), Hash: optB("hash"), Nodes: optU("nodes")}
	case wire.TypeCancel:
		return &wire.Cancel{Index: u("index"), Bytes: optU("bytes"), Hash: optB("hash")}
	case wire.TypeData:
		m := &wire.Data{Index: u("index"), Value: bs("value"), Signature: bs("signature")}
		if has("nodes") {
			var nodes []struct {
				Index uint64
				Hash  struct{ Hex HexBytes }
				Size  uint64
			}
			if err := json.Unmarshal(fields["nodes"], &nodes); err != nil {
				t.Fatal(err)
			}
			for _, n := range nodes {
				m.Nodes = append(m.Nodes, wire.Node{Index: n.Index, Hash: n.Hash.Hex, Size: n.Size})
			}
		}
		return m
	}
	t.Fatalf("no message type %d", typ)
	return nil
}

func TestWireMessageVectors(t *testing.T) {
	t.Parallel()
	v := loadWireVectors(t)
	for i, mv := range v.Messages {
		t.Run(fmt.Sprintf("%d-%s", i, mv.Name), func(t *testing.T) {
			t.Parallel()
			m := messageFromFields(t, mv.Type, mv.Fields)
			if got := m.AppendBody(nil); !bytes.Equal(got, mv.Body) {
				t.Errorf("body %x, reference %x", got, []byte(mv.Body))
			}
			decoded, err := wire.Decode(mv.Type, mv.Body)
			if err != nil {
				t.Fatalf("Decode: %v", err)
			}
			if got := decoded.AppendBody(nil); !bytes.Equal(got, mv.Body) {
				t.Errorf("decoded and re-encoded %x, reference %x", got, []byte(mv.Body))
			}
		})
	}
}

func TestWireFrameVectors(t *testing.T) {
	t.Parallel()
	v := loadWireVectors(t)
	var stream []byte
	for _, fv := range v.Frames {
		m, err := wire.Decode(fv.Type, fv.Body)
		if err != nil {
			t.Fatal(err)
		}
		got := wire.AppendFrame(nil, fv.Channel, m)
		if !bytes.Equal(got, fv.Frame) {
			t.Errorf("channel %d %v: frame %x, reference %x", fv.Channel, fv.Type, got, []byte(fv.Frame))
		}
		stream = append(stream, fv.Frame...)
	}
	fr := wire.NewFrameReader(bytes.NewReader(stream))
	for _, fv := range v.Frames {
		f, keepAlive, err := fr.Next()
		if err != nil || keepAlive {
			t.Fatalf("Next = %v, keep-alive %v", err, keepAlive)
		}
		if f.Channel != fv.Channel || f.Type != fv.Type || !bytes.Equal(f.Body, fv.Body) {
			t.Errorf("read frame %d/%v/%x, want %d/%v/%x", f.Channel, f.Type, f.Body, fv.Channel, fv.Type, []byte(fv.Body))
		}
	}
}

func TestRLEVectors(t *testing.T) {
	t.Parallel()
	v := loadWireVectors(t)
	for _, rv := range v.RLE {
		if got := wire.EncodeRLE(rv.Bitfield); !bytes.Equal(got, rv.Encoded) {
			t.Errorf("EncodeRLE(%.40x...) = %x, reference %x", []byte(rv.Bitfield), got, []byte(rv.Encoded))
		}
		got, err := wire.DecodeRLE(rv.Encoded, 1<<20)
		if err != nil {
			t.Fatal(err)
		}
		want := bytes.TrimRight(rv.Bitfield, "\x00")
		if diff := cmp.Diff(want, got, cmp.Comparer(bytes.Equal)); diff != "" {
			t.Errorf("DecodeRLE(%x) (-want +got):\n%s", []byte(rv.Encoded), diff)
		}
	}
}

func TestKeystreamVectors(t *testing.T) {
	t.Parallel()
	v := loadWireVectors(t)
	for _, kv := range v.Keystreams {
		s := wire.NewStream(kv.Key, kv.Nonce)
		for i, n := range kv.Chunks {
			buf := make([]byte, n)
			for j := range buf {
				buf[j] = byte(i + 13*j)
			}
			s.XORKeyStream(buf, buf)
			if got := hex.EncodeToString(buf); got != kv.Output[i] {
				t.Errorf("chunk %d of %d bytes differs from the reference", i, n)
			}
		}
	}
}
