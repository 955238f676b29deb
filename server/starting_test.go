package server

import (
	"context"
	"errors"
	"io"
	"net"
	"net/http"
	"path/filepath"
	"strings"
	"testing"

	"github.com/nodevms/nodevms/rpc"
)

// TestStartingThenServing: while a backend opens, a caller is told it is
// starting (503, Retry-After) rather than refused or left waiting; once it
// serves, the same listener answers calls.
func TestStartingThenServing(t *testing.T) {
	rpcLn, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	datLn, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	stop := Starting(rpcLn)
	addr := rpcLn.Addr().String()
	resp, err := http.Get("http://" + addr + "/")
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != http.StatusServiceUnavailable || resp.Header.Get("Retry-After") == "" || !strings.Contains(string(body), "starting") {
		t.Errorf("while starting: %d, Retry-After %q, %q", resp.StatusCode, resp.Header.Get("Retry-After"), body)
	}
	_, err = rpc.Dial(context.Background(), addr, rpc.ClientOptions{})
	var se *rpc.StatusError
	if !errors.As(err, &se) || se.StatusCode != http.StatusServiceUnavailable || !strings.Contains(err.Error(), "starting") {
		t.Errorf("a client dialing while starting: %v", err)
	}

	b, err := Open(context.Background(), Options{Dir: filepath.Join(t.TempDir(), "b"), Code: []byte(`exports.ping = () => 'pong'`)})
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()
	stop()
	serving, err := b.Serve(rpcLn, datLn, ServeOptions{})
	if err != nil {
		t.Fatal(err)
	}
	defer serving.Shutdown(context.Background())
	c, err := rpc.Dial(context.Background(), addr, rpc.ClientOptions{})
	if err != nil {
		t.Fatalf("once serving: %v", err)
	}
	defer c.Close()
	if got, err := c.Call(context.Background(), "ping"); err != nil || string(got) != `"pong"` {
		t.Errorf("ping: %s, %v", got, err)
	}
}
