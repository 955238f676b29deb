package main

import (
	"errors"
	"flag"
	"fmt"
	"net/netip"
	"strings"

	"github.com/nodevms/nodevms/discovery"
)

// networkFlags are how a command finds and announces feeds on the Dat
// network: nothing unless asked, since it sends packets to other machines.
type networkFlags struct {
	mdns, discovery bool
	dhtBootstrap    string // host:port,... (replaces the Dat tools' nodes)
	dnsServers      string // host[:port],... (replaces the Dat tools' servers)
	dhtPort         int    // the DHT node's UDP port (0: any)
}

func (n *networkFlags) register(fs *flag.FlagSet) {
	fs.BoolVar(&n.mdns, "mdns", false, "")
	fs.BoolVar(&n.discovery, "discovery", false, "")
	fs.StringVar(&n.dhtBootstrap, "dht-bootstrap", "", "")
	fs.StringVar(&n.dnsServers, "dns-server", "", "")
	fs.IntVar(&n.dhtPort, "dht-port", 0, "")
}

// on reports whether any discovery was asked for.
func (n *networkFlags) on() bool {
	return n.mdns || n.discovery || n.dhtBootstrap != "" || n.dnsServers != ""
}

// bootstrap is the DHT's bootstrap nodes, or nil for no DHT: --discovery
// alone uses the Dat tools' nodes.
func (n *networkFlags) bootstrap() []string {
	if n.dhtBootstrap != "" {
		return strings.Split(n.dhtBootstrap, ",")
	}
	if n.discovery {
		return discovery.DefaultBootstrap
	}
	return nil
}

// servers is the DNS discovery servers, or nil for none: --discovery alone
// uses the Dat tools' servers.
func (n *networkFlags) servers() []string {
	if n.dnsServers != "" {
		return strings.Split(n.dnsServers, ",")
	}
	if n.discovery {
		return discovery.DefaultDNSServers
	}
	return nil
}

// check refuses discovery that could not work: announcing an address the
// network cannot reach, or a bootstrap list that names no node.
func (n *networkFlags) check(host string, announces bool) error {
	if !n.on() {
		return nil
	}
	for _, b := range strings.Split(n.dhtBootstrap, ",") {
		if n.dhtBootstrap != "" && !strings.Contains(b, ":") {
			return fmt.Errorf("--dht-bootstrap: %q is not HOST:PORT", b)
		}
	}
	if n.dhtPort < 0 || n.dhtPort > 65535 {
		return fmt.Errorf("--dht-port: %d is not a port", n.dhtPort)
	}
	if ip, err := netip.ParseAddr(host); announces && (host == "localhost" || err == nil && ip.IsLoopback()) {
		return fmt.Errorf("discovery announces this machine to the network, which cannot reach %s: listen on an address it can (say --host 0.0.0.0)", host)
	}
	return nil
}

// start starts what the flags ask for, all finding into one Peers; host is
// the address to use for the DHT's socket (its port is any); statePath,
// if not "", keeps the DHT's routing table. stop closes them.
func (n *networkFlags) start(host, statePath string) (peers *discovery.Peers, stop func() error, err error) {
	peers = discovery.NewPeers()
	var closers []func() error
	stop = func() error {
		var errs []error
		for _, c := range closers {
			errs = append(errs, c())
		}
		return errors.Join(errs...)
	}
	if n.mdns || n.discovery {
		m, err := discovery.ListenMDNS(discovery.MDNSConfig{Found: peers.Found})
		if err != nil {
			return nil, nil, err
		}
		closers = append(closers, m.Close)
		peers.Use(m)
	}
	if servers := n.servers(); servers != nil {
		d, err := discovery.ListenDNS(discovery.DNSConfig{Servers: servers, Found: peers.Found})
		if err != nil {
			stop()
			return nil, nil, err
		}
		closers = append(closers, d.Close)
		peers.Use(d)
	}
	if boot := n.bootstrap(); boot != nil {
		// The DHT is the wide network's: its socket is on every address,
		// unless --host names one that reaches beyond this machine.
		ip := netip.IPv4Unspecified()
		if a, err := netip.ParseAddr(host); err == nil && a.Is4() && !a.IsLoopback() && !a.IsUnspecified() {
			ip = a
		}
		addr := netip.AddrPortFrom(ip, uint16(n.dhtPort)).String()
		d, err := discovery.ListenDHT(discovery.DHTConfig{Addr: addr, Bootstrap: boot, StatePath: statePath, Found: peers.Found})
		if err != nil {
			stop()
			return nil, nil, err
		}
		closers = append(closers, d.Close)
		peers.Use(d)
	}
	return peers, stop, nil
}

// describe says what is on, for the banner.
func (n *networkFlags) describe() string {
	var on []string
	if n.mdns || n.discovery {
		on = append(on, "multicast DNS on the LAN")
	}
	if boot := n.bootstrap(); boot != nil {
		on = append(on, "the DHT from "+strings.Join(boot, ", "))
	}
	if servers := n.servers(); servers != nil {
		on = append(on, "DNS discovery at "+strings.Join(servers, ", "))
	}
	return strings.Join(on, "; ")
}

// networkUsage is the help for networkFlags.
const networkUsage = `  --mdns             find and announce feeds on the local network by
                     multicast DNS, as the Dat tools do
  --discovery        as the Dat tools: --mdns, the BitTorrent mainline DHT
                     from their bootstrap nodes (bootstrap1-4.datprotocol
                     .com:6881), and their DNS discovery servers
                     (discovery1-2.datprotocol.com)
  --dht-bootstrap HOST:PORT,...
                     the DHT from these nodes instead (turns the DHT on)
  --dht-port N       the DHT node's UDP port (default: any), for a node
                     others bootstrap from, or a firewall
  --dns-server HOST[:PORT],...
                     these DNS discovery servers instead (port 5300 if
                     not given; turns them on)
`
