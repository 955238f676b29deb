// Command startup measures how long a nodevms build takes to serve again
// on a backend folder: from starting the process to the first call
// answered, and the process's peak resident memory over that time. It
// prints one JSON line. bench/compare-startup runs it for two builds.
//
//	go run ./bench/startup -bin ./nodevms -dir DIR [-method increment]
package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"syscall"
	"time"

	"github.com/nodevms/nodevms/rpc"
)

type result struct {
	FirstAnswerSeconds float64 `json:"firstAnswerSeconds"`
	PeakRSSMiB         float64 `json:"peakRSSMiB"`
	LogLength          int     `json:"-"`
}

func main() {
	bin := flag.String("bin", "nodevms", "the nodevms binary")
	dir := flag.String("dir", "", "the backend's folder (holding backend.js)")
	method := flag.String("method", "increment", "the method of the first call (no arguments)")
	timeout := flag.Duration("timeout", 10*time.Minute, "how long to wait for the first answer")
	flag.Parse()
	r, err := measure(*bin, *dir, *method, *timeout)
	if err != nil {
		fmt.Fprintln(os.Stderr, "startup:", err)
		os.Exit(1)
	}
	out, _ := json.Marshal(r)
	fmt.Println(string(out))
}

// freePort returns a TCP port of 127.0.0.1 nothing listens on now.
func freePort() (int, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, err
	}
	defer ln.Close()
	return ln.Addr().(*net.TCPAddr).Port, nil
}

func measure(bin, dir, method string, timeout time.Duration) (result, error) {
	port, err := freePort()
	if err != nil {
		return result{}, err
	}
	cmd := exec.Command(bin, "-e", filepath.Join(dir, "backend.js"), dir, "--port", strconv.Itoa(port), "--dat-port", "0")
	cmd.Stderr = os.Stderr
	start := time.Now()
	if err := cmd.Start(); err != nil {
		return result{}, err
	}
	exited := make(chan error, 1)
	go func() { exited <- cmd.Wait() }()
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	addr := "127.0.0.1:" + strconv.Itoa(port)
	var answered time.Duration
	for answered == 0 {
		select {
		case err := <-exited:
			return result{}, fmt.Errorf("%s exited before answering: %v", bin, err)
		case <-ctx.Done():
			cmd.Process.Kill()
			return result{}, errors.New("no answer in time")
		default:
		}
		c, err := rpc.Dial(ctx, addr, rpc.ClientOptions{Timeout: timeout})
		if err != nil {
			time.Sleep(10 * time.Millisecond) // nothing listens yet: a process starting
			continue
		}
		_, err = c.Call(ctx, method)
		c.Close()
		if err != nil {
			time.Sleep(10 * time.Millisecond) // listening, but not serving yet
			continue
		}
		answered = time.Since(start)
	}
	cmd.Process.Signal(os.Interrupt)
	<-exited
	var rss float64
	if u, ok := cmd.ProcessState.SysUsage().(*syscall.Rusage); ok {
		rss = float64(u.Maxrss) / 1024 // KiB on Linux
	}
	return result{FirstAnswerSeconds: answered.Seconds(), PeakRSSMiB: rss}, nil
}
