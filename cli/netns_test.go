package main

import (
	"bytes"
	"encoding/json"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
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

// datClone runs the dat command of Dat 1.0 (13.13.1) in netns: `dat clone
// URL DIR extra...`, and returns the files archive's dat.json as cloned.
func datClone(t *testing.T, netns, url string, extra ...string) (datJSON struct{ URL, Title string }) {
	t.Helper()
	modules := jsModules(t, "datjs", "datjs", "discovery-channel")
	home := t.TempDir() // dat keeps its settings there
	dir := filepath.Join(home, "clone")
	cmd := commandIn(netns, "node", append([]string{filepath.Join(modules, "dat", "bin", "cli.js"), "clone", url, dir}, extra...)...)
	cmd.Env = append(os.Environ(), "HOME="+home)
	timer := time.AfterFunc(90*time.Second, func() { cmd.Process.Kill() })
	defer timer.Stop()
	out, err := cmd.CombinedOutput()
	if err != nil || !strings.Contains(string(out), "dat sync complete") {
		t.Fatalf("dat clone %s: %v\n%s", url, err, out)
	}
	raw, err := os.ReadFile(filepath.Join(dir, "dat.json"))
	if err != nil {
		t.Fatalf("dat clone %s: %v\n%s", url, err, out)
	}
	if err := json.Unmarshal(raw, &datJSON); err != nil {
		t.Fatalf("the cloned dat.json: %v: %s", err, raw)
	}
	return datJSON
}

// TestDatToolsFindTheHostByKeyOnTheLAN: a host serving with --mdns is found
// by the Dat tools of Dat 1.0 by key alone, over multicast DNS on the LAN:
// `dat clone dat://FILES-KEY` clones its files archive, and hypercore 6,
// finding the call log as dat-node finds a key, downloads the log.
func TestDatToolsFindTheHostByKeyOnTheLAN(t *testing.T) {
	if testing.Short() {
		t.Skip("network namespaces and node: not in -short")
	}
	lan := makeLAN(t, "host", "peer")
	s := startServerIn(t, lan.netns["host"], exampleFile(t, "counter.js"), filepath.Join(t.TempDir(), "counter"), "--host", "0.0.0.0", "--mdns")
	if !strings.Contains(strings.Join(s.lines, "\n"), "Announcing both feeds on the Dat network") {
		t.Errorf("the banner does not say the feeds are announced:\n%s", strings.Join(s.lines, "\n"))
	}
	if got := datClone(t, lan.netns["peer"], s.files); got.URL != s.files || got.Title != "counter.js files" {
		t.Errorf("dat clone %s: dat.json says %+v", s.files, got)
	}
	var log struct {
		Via, Peer string
		Length    int
		First     struct{ Type string }
	}
	datTool(t, lan.netns["peer"], &log, "find.js", "feed", strings.TrimPrefix(s.callLog, "dat://"))
	if log.Via != "dns" || !strings.HasPrefix(log.Peer, lan.addr["host"]+":") || log.Length < 1 || log.First.Type != "init" {
		t.Errorf("the call log, found by key: %+v; want it by dns from %s, starting with its init entry", log, lan.addr["host"])
	}
}

// callIn makes n calls of increment on the host in netns whose RPC port is
// port, with nodevms-client.
func callIn(t *testing.T, netns, port string, n int) {
	t.Helper()
	nodePath := jsClient(t)
	for range n {
		cmd := commandIn(netns, "node", filepath.Join("testdata", "js", "client.js"), "ws://127.0.0.1:"+port, "increment", "[]")
		cmd.Env = append(os.Environ(), "NODE_PATH="+nodePath)
		if out, err := cmd.CombinedOutput(); err != nil {
			t.Fatalf("a call: %v\n%s", err, out)
		}
	}
}

// followIn runs a monitor in netns, `nodevms -a ADDR --out DIR --host
// 0.0.0.0 extra...`, until the test ends (or the caller stops it), and
// waits until it rehosts; it returns the command and its output.
func followIn(t *testing.T, netns, addr string, extra ...string) (*exec.Cmd, *syncBuffer) {
	t.Helper()
	cmd := commandIn(netns, nodevmsBin(t), append([]string{"-a", addr, "--out", t.TempDir(), "--host", "0.0.0.0"}, extra...)...)
	var text syncBuffer
	cmd.Stdout, cmd.Stderr = &text, &text
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		cmd.Process.Signal(syscall.SIGINT)
		cmd.Wait()
	})
	deadline := time.Now().Add(60 * time.Second)
	for !strings.Contains(text.String(), "rehosting at") {
		if time.Now().After(deadline) {
			t.Fatalf("the monitor in %s never rehosted:\n%s", netns, text.String())
		}
		time.Sleep(50 * time.Millisecond)
	}
	return cmd, &text
}

// auditIn runs `nodevms -a args...` in netns, for at most 90 s, and
// returns its output.
func auditIn(t *testing.T, netns string, args ...string) (string, error) {
	t.Helper()
	cmd := commandIn(netns, nodevmsBin(t), append([]string{"-a"}, args...)...)
	timer := time.AfterFunc(90*time.Second, func() { cmd.Process.Kill() })
	defer timer.Stop()
	out, err := cmd.CombinedOutput()
	return string(out), err
}

// rpcPort is the port of a served backend's RPC address.
func rpcPort(t *testing.T, s *served) string {
	t.Helper()
	_, port, err := net.SplitHostPort(s.addr)
	if err != nil {
		t.Fatal(err)
	}
	return port
}

// TestAuditByKeyThroughARehostingMonitor: a monitor follows a host by its
// address and rehosts both feeds with --mdns; with the host stopped,
// `nodevms -a dat://CALL-LOG-KEY --mdns` on a third machine finds the call
// log by its key alone, reads the files archive's key from it, downloads
// both from the monitor, and verifies every call.
func TestAuditByKeyThroughARehostingMonitor(t *testing.T) {
	if testing.Short() {
		t.Skip("network namespaces and node: not in -short")
	}
	lan := makeLAN(t, "host", "monitor", "auditor")
	s := startServerIn(t, lan.netns["host"], exampleFile(t, "counter.js"), filepath.Join(t.TempDir(), "counter"), "--host", "0.0.0.0", "--mdns")
	port := rpcPort(t, s)
	callIn(t, lan.netns["host"], port, 3)
	_, monitor := followIn(t, lan.netns["monitor"], net.JoinHostPort(lan.addr["host"], port), "--mdns")
	s.stop(t)

	out, err := auditIn(t, lan.netns["auditor"], s.callLog, "--mdns")
	if err != nil || !strings.Contains(out, "VERIFIED 3 calls") {
		t.Fatalf("the audit by key, with the host stopped: %v\n%s\nthe monitor:\n%s", err, out, monitor.String())
	}
}

// TestAuditByKeyThroughAJavaScriptPeer: the JavaScript Dat tools find a
// host's feeds by key, download and rehost them; with the host stopped,
// `nodevms -a dat://CALL-LOG-KEY --mdns` finds that JavaScript copy by key
// alone and verifies every call from it.
func TestAuditByKeyThroughAJavaScriptPeer(t *testing.T) {
	if testing.Short() {
		t.Skip("network namespaces and node: not in -short")
	}
	lan := makeLAN(t, "host", "jspeer", "auditor")
	s := startServerIn(t, lan.netns["host"], exampleFile(t, "counter.js"), filepath.Join(t.TempDir(), "counter"), "--host", "0.0.0.0", "--mdns")
	callIn(t, lan.netns["host"], rpcPort(t, s), 2)
	// The calls are in the log the host shows once it has signed them, a
	// few milliseconds after the answers.
	time.Sleep(100 * time.Millisecond)
	var ready struct {
		Ready     bool
		LogLength int
	}
	rehost := startJS(t, lan.netns["jspeer"], &ready, "rehost.js", strings.TrimPrefix(s.callLog, "dat://"))
	if !ready.Ready || ready.LogLength != 3 {
		t.Fatalf("the JavaScript peer did not rehost the 3 entries: %+v\n%s", ready, rehost.String())
	}
	s.stop(t)

	out, err := auditIn(t, lan.netns["auditor"], s.callLog, "--mdns")
	if err != nil || !strings.Contains(out, "VERIFIED 2 calls") {
		t.Fatalf("the audit by key from the JavaScript copy: %v\n%s\nthe JavaScript peer:\n%s", err, out, rehost.String())
	}
}

// startJS runs testdata/datjs/SCRIPT with node in netns, waits for the
// JSON line it prints when ready, decodes it into ready, and kills it when
// the test ends; it returns the script's standard error.
func startJS(t *testing.T, netns string, ready any, script string, args ...string) *syncBuffer {
	t.Helper()
	modules := jsModules(t, "datjs", "datjs", "discovery-channel")
	path, err := filepath.Abs(filepath.Join("testdata", "datjs", script))
	if err != nil {
		t.Fatal(err)
	}
	cmd := commandIn(netns, "node", append([]string{path}, args...)...)
	cmd.Env = append(os.Environ(), "NODE_PATH="+modules)
	var stderr syncBuffer
	cmd.Stderr = &stderr
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		cmd.Process.Kill()
		cmd.Wait()
	})
	if err := json.NewDecoder(stdout).Decode(ready); err != nil {
		t.Fatalf("node %s: %v\n%s", script, err, stderr.String())
	}
	return &stderr
}

// TestTheDHTFindsTheHostByKey: with no multicast DNS, a host announced on
// the mainline DHT (its bootstrap node a JavaScript bittorrent-dht node on
// a machine of its own) is found by the Dat tools by key alone: hypercore
// 6 downloads the call log, `dat clone` the files archive; and with the
// host stopped, an audit by key finds a rehosting monitor through the DHT
// and verifies every call.
func TestTheDHTFindsTheHostByKey(t *testing.T) {
	if testing.Short() {
		t.Skip("network namespaces and node: not in -short")
	}
	lan := makeLAN(t, "bootstrap", "host", "peer", "monitor", "auditor")
	var boot struct{ Ready bool }
	startJS(t, lan.netns["bootstrap"], &boot, "dht-node.js", "6881")
	bootstrap := lan.addr["bootstrap"] + ":6881"
	s := startServerIn(t, lan.netns["host"], exampleFile(t, "counter.js"), filepath.Join(t.TempDir(), "counter"), "--host", "0.0.0.0", "--dht-bootstrap", bootstrap)
	port := rpcPort(t, s)
	callIn(t, lan.netns["host"], port, 2)

	var log struct {
		Via, Peer string
		Length    int
	}
	datTool(t, lan.netns["peer"], &log, "find.js", "feed", strings.TrimPrefix(s.callLog, "dat://"), bootstrap)
	if log.Via != "dht" || !strings.HasPrefix(log.Peer, lan.addr["host"]+":") || log.Length < 1 {
		t.Errorf("the call log, found by key: %+v; want it by dht from %s", log, lan.addr["host"])
	}
	// dat clone with multicast DNS off (--no-dns), from the test's own
	// bootstrap node rather than the Dat tools' (--dht.bootstrap).
	if got := datClone(t, lan.netns["peer"], s.files, "--no-dns", "--dht.bootstrap="+bootstrap); got.URL != s.files {
		t.Errorf("dat clone %s over the DHT: dat.json says %+v", s.files, got)
	}

	_, monitor := followIn(t, lan.netns["monitor"], net.JoinHostPort(lan.addr["host"], port), "--dht-bootstrap", bootstrap)
	s.stop(t)
	out, err := auditIn(t, lan.netns["auditor"], s.callLog, "--dht-bootstrap", bootstrap)
	if err != nil || !strings.Contains(out, "VERIFIED 2 calls") {
		t.Fatalf("the audit by key through the DHT, with the host stopped: %v\n%s\nthe monitor:\n%s", err, out, monitor.String())
	}
}

// TestADNSDiscoveryServerFindsTheHostByKey: a host announced at a DNS
// discovery server (the JavaScript dns-discovery server, on a machine of
// its own) is found through it by key alone: by `dat clone`, with the DHT
// off, and by an audit by key.
func TestADNSDiscoveryServerFindsTheHostByKey(t *testing.T) {
	if testing.Short() {
		t.Skip("network namespaces and node: not in -short")
	}
	lan := makeLAN(t, "dns", "host", "peer", "auditor")
	var ready struct{ Ready bool }
	startJS(t, lan.netns["dns"], &ready, "dns-server.js", "5300")
	server := lan.addr["dns"] + ":5300"
	s := startServerIn(t, lan.netns["host"], exampleFile(t, "counter.js"), filepath.Join(t.TempDir(), "counter"), "--host", "0.0.0.0", "--dns-server", server)
	if got := datClone(t, lan.netns["peer"], s.files, "--no-dht", "--dns.server="+server, "--dns.domain=dat.local"); got.URL != s.files {
		t.Errorf("dat clone %s through the DNS discovery server: dat.json says %+v", s.files, got)
	}
	out, err := auditIn(t, lan.netns["auditor"], s.callLog, "--dns-server", server)
	if err != nil || !strings.Contains(out, "VERIFIED 0 calls") {
		t.Fatalf("the audit by key through the DNS discovery server: %v\n%s", err, out)
	}
}

// TestTheDatToolsQueryTheHostsDHTNode: the host's own DHT node is the
// network's only one (--dht-port, and itself as the bootstrap node), so
// every DHT query of the JavaScript Dat tools goes to the Go node: they
// find the host's feeds through it, and dat clone clones the archive.
func TestTheDatToolsQueryTheHostsDHTNode(t *testing.T) {
	if testing.Short() {
		t.Skip("network namespaces and node: not in -short")
	}
	lan := makeLAN(t, "host", "peer")
	node := lan.addr["host"] + ":6881"
	s := startServerIn(t, lan.netns["host"], exampleFile(t, "counter.js"), filepath.Join(t.TempDir(), "counter"), "--host", "0.0.0.0", "--dht-port", "6881", "--dht-bootstrap", node)
	var log struct {
		Via, Peer string
		Length    int
	}
	datTool(t, lan.netns["peer"], &log, "find.js", "feed", strings.TrimPrefix(s.callLog, "dat://"), node)
	if log.Via != "dht" || !strings.HasPrefix(log.Peer, lan.addr["host"]+":") || log.Length < 1 {
		t.Errorf("the call log, found through the host's DHT node: %+v", log)
	}
	if got := datClone(t, lan.netns["peer"], s.files, "--no-dns", "--dht.bootstrap="+node); got.URL != s.files {
		t.Errorf("dat clone %s through the host's DHT node: dat.json says %+v", s.files, got)
	}
}

// TestAFollowerByKeyRehostsToo: an auditor that follows by key alone (no
// host address) keeps its copy live from whoever has the feeds and
// rehosts them in turn: with the host and the first monitor stopped, an
// audit by key verifies from the second.
func TestAFollowerByKeyRehostsToo(t *testing.T) {
	if testing.Short() {
		t.Skip("network namespaces and node: not in -short")
	}
	lan := makeLAN(t, "host", "first", "second", "auditor")
	s := startServerIn(t, lan.netns["host"], exampleFile(t, "counter.js"), filepath.Join(t.TempDir(), "counter"), "--host", "0.0.0.0", "--mdns")
	first, _ := followIn(t, lan.netns["first"], net.JoinHostPort(lan.addr["host"], rpcPort(t, s)), "--mdns")
	_, second := followIn(t, lan.netns["second"], s.callLog, "--mdns")
	s.stop(t)
	first.Process.Signal(syscall.SIGINT)
	first.Wait()

	out, err := auditIn(t, lan.netns["auditor"], s.callLog, "--mdns")
	if err != nil || !strings.Contains(out, "VERIFIED 0 calls") {
		t.Fatalf("the audit by key through the second monitor: %v\n%s\nthe second monitor:\n%s", err, out, second.String())
	}
}
