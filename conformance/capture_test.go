package conformance

import (
	"bytes"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/nodevms/nodevms/hypercore"
	"github.com/nodevms/nodevms/hypercore/protocol"
	"github.com/nodevms/nodevms/hypercore/wire"
)

// captureVector is testdata/wire/capture.json: what the reference server
// sent in a scripted download (js/capture.js).
type captureVector struct {
	Seed        HexBytes   `json:"seed"`
	Batches     [][]string `json:"batches"`
	ServerNonce HexBytes   `json:"serverNonce"`
	ServerID    HexBytes   `json:"serverId"`
	Key         HexBytes   `json:"key"`
	Server      HexBytes   `json:"server"`
}

// TestCaptureMatchesReference: a Go server with the reference server's
// nonce and id, downloaded from by the same scripted client, sends the same
// bytes as the reference did.
func TestCaptureMatchesReference(t *testing.T) {
	t.Parallel()
	jsReference(t)
	raw, err := os.ReadFile(filepath.Join("testdata", "wire", "capture.json"))
	if err != nil {
		t.Fatal(err)
	}
	var cv captureVector
	if err := json.Unmarshal(raw, &cv); err != nil {
		t.Fatal(err)
	}
	var batches [][][]byte
	for _, b := range cv.Batches {
		var batch [][]byte
		for _, x := range b {
			v, _ := hex.DecodeString(x)
			batch = append(batch, v)
		}
		batches = append(batches, batch)
	}
	kp := hypercore.KeyPairFromSeed(cv.Seed)
	feed, err := hypercore.Open(hypercore.Config{Storage: hypercore.NewMemoryStorage(), SecretKey: kp.SecretKey, Create: true})
	if err != nil {
		t.Fatal(err)
	}
	defer feed.Close()
	for _, b := range batches {
		if _, err := feed.Append(b...); err != nil {
			t.Fatal(err)
		}
	}
	addr := goServer(t, protocol.Options{Nonce: cv.ServerNonce, ID: cv.ServerID}, feed)
	_, port, _ := net.SplitHostPort(addr)
	var got struct{ Server HexBytes }
	if err := json.Unmarshal(runNode(t, "capture.js", "client", port, hex.EncodeToString(kp.PublicKey)), &got); err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(got.Server, cv.Server) {
		t.Errorf("the Go server's bytes differ from the reference's at byte %d of %d/%d\nreference: %s\ngo:        %s",
			firstDiff(got.Server, cv.Server), len(cv.Server), len(got.Server),
			describeStream(cv.Server, kp.PublicKey), describeStream(got.Server, kp.PublicKey))
	}
}

// describeStream decrypts a server's byte stream into a readable list of
// its messages, for failure reports.
func describeStream(b, key []byte) string {
	fr := wire.NewFrameReader(bytes.NewReader(b))
	var out []string
	first := true
	for {
		f, keepAlive, err := fr.Next()
		if err != nil {
			break
		}
		if keepAlive {
			out = append(out, "keep-alive")
			continue
		}
		m, err := wire.Decode(f.Type, f.Body)
		if err != nil {
			out = append(out, fmt.Sprintf("%v(undecodable %x)", f.Type, f.Body))
		} else {
			out = append(out, fmt.Sprintf("%v%+v", f.Type, m))
		}
		if first {
			first = false
			if feed, ok := m.(*wire.Feed); ok {
				fr.Decrypt(wire.NewStream(key, feed.Nonce))
			}
		}
	}
	return strings.Join(out, "\n  ")
}
