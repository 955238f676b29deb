package main

import (
	"bytes"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// The network tests turn discovery on, which sends packets to other
// machines. They run only inside Linux network namespaces that the test
// makes: a bridge in a namespace of its own, and one namespace per machine
// joined to it by a veth pair, with addresses on the bridge's subnet and no
// route out of it. They need root and iproute2. Where namespaces cannot be
// made they are skipped with the reason, unless NODEVMS_NETNS=required (as
// CI sets), where that is a failure.

// lan is the test's own network: machine names to their namespaces and
// addresses.
type lan struct {
	netns map[string]string
	addr  map[string]string
}

// makeLAN makes a namespace for each machine, on one bridge; the test's
// cleanup removes them all.
func makeLAN(t *testing.T, machines ...string) *lan {
	t.Helper()
	fail := func(format string, args ...any) {
		t.Helper()
		msg := fmt.Sprintf(format, args...)
		if os.Getenv("NODEVMS_NETNS") == "required" {
			t.Fatalf("network namespaces are required (NODEVMS_NETNS): %s", msg)
		}
		t.Skipf("skipping: this test needs network namespaces (root and iproute2): %s", msg)
	}
	if _, err := exec.LookPath("ip"); err != nil {
		fail("ip is not installed")
	}
	if os.Geteuid() != 0 {
		fail("not root")
	}
	// Names unique to this process, short enough for interface names.
	prefix := fmt.Sprintf("nv%d", os.Getpid()%100000)
	bridge := prefix + "br"
	l := &lan{netns: map[string]string{}, addr: map[string]string{}}
	var made []string
	t.Cleanup(func() {
		for _, ns := range made {
			exec.Command("ip", "netns", "del", ns).Run()
		}
	})
	ip := func(args ...string) error {
		out, err := exec.Command("ip", args...).CombinedOutput()
		if err != nil {
			return fmt.Errorf("ip %s: %v: %s", strings.Join(args, " "), err, bytes.TrimSpace(out))
		}
		return nil
	}
	if err := ip("netns", "add", bridge); err != nil {
		fail("%v", err)
	}
	made = append(made, bridge)
	steps := [][]string{
		{"-n", bridge, "link", "add", "br0", "type", "bridge", "mcast_snooping", "0"},
		{"-n", bridge, "link", "set", "br0", "up"},
	}
	for i, m := range machines {
		ns := fmt.Sprintf("%s%d", prefix, i)
		if err := ip("netns", "add", ns); err != nil {
			t.Fatal(err)
		}
		made = append(made, ns)
		addr := fmt.Sprintf("10.213.0.%d", i+1)
		port := fmt.Sprintf("p%d", i)
		l.netns[m], l.addr[m] = ns, addr
		steps = append(steps,
			[]string{"-n", bridge, "link", "add", port, "type", "veth", "peer", "name", "eth0", "netns", ns},
			[]string{"-n", bridge, "link", "set", port, "master", "br0", "up"},
			[]string{"-n", ns, "link", "set", "lo", "up"},
			[]string{"-n", ns, "addr", "add", addr + "/24", "dev", "eth0"},
			[]string{"-n", ns, "link", "set", "eth0", "up"},
			// Multicast leaves by eth0; nothing else has a route.
			[]string{"-n", ns, "route", "add", "224.0.0.0/4", "dev", "eth0"},
		)
	}
	for _, s := range steps {
		if err := ip(s...); err != nil {
			t.Fatal(err)
		}
	}
	return l
}

// commandIn is a command run in the network namespace netns ("": this
// one). ip netns exec execs the program, so the command's process is it.
func commandIn(netns, name string, args ...string) *exec.Cmd {
	if netns == "" {
		return exec.Command(name, args...)
	}
	return exec.Command("ip", append([]string{"netns", "exec", netns, name}, args...)...)
}

// datTool runs testdata/datjs/SCRIPT with node in netns, with the pinned
// Dat tools, and decodes the JSON it prints into out.
func datTool(t *testing.T, netns string, out any, script string, args ...string) {
	t.Helper()
	modules := jsModules(t, "datjs", "datjs", "discovery-channel")
	path, err := filepath.Abs(filepath.Join("testdata", "datjs", script))
	if err != nil {
		t.Fatal(err)
	}
	cmd := commandIn(netns, "node", append([]string{path}, args...)...)
	cmd.Env = append(os.Environ(), "NODE_PATH="+modules)
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	timer := time.AfterFunc(90*time.Second, func() { cmd.Process.Kill() })
	defer timer.Stop()
	stdout, err := cmd.Output()
	if err != nil {
		t.Fatalf("node %s %s: %v\nstdout: %s\nstderr: %s", script, strings.Join(args, " "), err, stdout, stderr.String())
	}
	if err := json.Unmarshal(stdout, out); err != nil {
		t.Fatalf("node %s: %v: %s", script, err, stdout)
	}
}

// TestDatToolsFindTheHostByKeyOnTheLAN: a host serving with --mdns is found
// by the JavaScript Dat tools of Dat 1.0 by key alone, over multicast DNS
// on the LAN, and both its feeds download from it: the call log with
// hypercore 6, the files archive with hyperdrive 9.
func TestDatToolsFindTheHostByKeyOnTheLAN(t *testing.T) {
	if testing.Short() {
		t.Skip("network namespaces and node: not in -short")
	}
	net := makeLAN(t, "host", "peer")
	s := startServerIn(t, net.netns["host"], exampleFile(t, "counter.js"), filepath.Join(t.TempDir(), "counter"), "--host", "0.0.0.0", "--mdns")
	if !strings.Contains(strings.Join(s.lines, "\n"), "Announcing both feeds by multicast DNS") {
		t.Errorf("the banner does not say the feeds are announced:\n%s", strings.Join(s.lines, "\n"))
	}
	var log struct {
		Via, Peer string
		Length    int
		First     struct{ Type string }
	}
	datTool(t, net.netns["peer"], &log, "find.js", "feed", strings.TrimPrefix(s.callLog, "dat://"))
	if log.Via != "dns" || !strings.HasPrefix(log.Peer, net.addr["host"]+":") || log.Length < 1 || log.First.Type != "init" {
		t.Errorf("the call log, found by key: %+v; want it by dns from %s, starting with its init entry", log, net.addr["host"])
	}
	var archive struct {
		Via, Peer string
		Version   int
		DatJSON   struct{ URL, Title string }
	}
	datTool(t, net.netns["peer"], &archive, "find.js", "archive", strings.TrimPrefix(s.files, "dat://"))
	if archive.Via != "dns" || archive.DatJSON.URL != s.files || archive.Version < 1 {
		t.Errorf("the files archive, found by key: %+v; want its dat.json naming %s", archive, s.files)
	}
}
