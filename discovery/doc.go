// Package discovery finds Dat peers by a feed's discovery key alone, as the
// Dat tools of Dat 1.0 do (discovery-swarm with dat-swarm-defaults, through
// discovery-channel): so that `dat clone dat://KEY` finds a NodeVMS host,
// and a NodeVMS peer finds a JavaScript one.
//
// A discovery key is named in DNS as its first 20 bytes in hex under
// "dat.local" (Name). On the local network (MDNS), a node that looks a name
// up or announces it multicasts a DNS query for the name's TXT record to
// 224.0.0.251:5353; a node that announces the name answers, to the group,
// with a TXT record "token=...", "peers=BASE64", where the peers are six
// bytes each (an IPv4 address and a big-endian port) and the address
// 0.0.0.0 means the answering node's own. This is dns-discovery's multicast
// protocol, byte for byte what multicast-dns sends.
//
// What it promises:
//   - Nothing is sent unless a caller asks: an MDNS node exists only when
//     made, and queries only for the keys it is given.
//   - Messages from the network are decoded by ParseMessage, which reads at
//     most a bounded number of questions, records and peers and never
//     panics (FuzzParseMessage); what it does not use it skips.
//   - A node answers only for the keys it announces, with one small record
//     per question, at most AnswersPerSecond times a second to any one
//     address, and to the multicast group only (never to an address a
//     packet names); it remembers a bounded number of peers and askers.
//
// A peer found is only an address: connect to it over TCP and speak the
// Dat wire protocol (package protocol), whose handshake and the feed's
// signatures say whether it holds the feed.
package discovery
