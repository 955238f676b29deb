// Package discovery finds Dat peers by a feed's discovery key alone, as the
// Dat tools of Dat 1.0 do (discovery-swarm with dat-swarm-defaults, through
// discovery-channel with hash: false): so that `dat clone dat://KEY` finds a
// NodeVMS host, and a NodeVMS auditor finds whoever holds a feed.
//
// Three finders, each usable alone, feed one Peers:
//
//   - MDNS, on the local network. A discovery key is named in DNS as its
//     first 20 bytes in hex under "dat.local" (Name). A node that looks a
//     name up or announces it multicasts a DNS query for the name's TXT
//     record to 224.0.0.251:5353; a node that announces the name answers,
//     to the group, with a TXT record "token=...", "peers=BASE64", where
//     the peers are six bytes each (an IPv4 address and a big-endian port)
//     and 0.0.0.0 means the answering node's own address. This is
//     dns-discovery's multicast protocol, as multicast-dns sends it.
//   - DHT, a node of the BitTorrent mainline DHT (BEP 5) as bittorrent-dht
//     runs one: the info hash of a discovery key is its first 20 bytes. It
//     answers ping, find_node, get_peers and announce_peer, looks keys up
//     with get_peers and announces them with announce_peer and the tokens
//     the closest nodes gave. It starts from bootstrap nodes (the Dat
//     tools' are DefaultBootstrap) and from the routing table it saved.
//   - DNSServers, a client of DNS discovery servers (the Dat tools' are
//     DefaultDNSServers), as dns-discovery's: it asks a server for a token,
//     then for a name's TXT record with an additional record
//     "subscribe=true", "token=...", and to announce "announce=PORT"; the
//     answer's peers= are the key's peers, and the server pushes new ones
//     as SRV records, which only the servers asked may send.
//
// Peers keeps what they find per key and dials it over TCP; a peer found
// is only an address: the Dat wire protocol's handshake and the feed's
// signatures say whether it holds the feed.
//
// What it promises:
//   - Nothing is sent unless a caller asks: a finder exists only when
//     made, and sends only for the keys it is given (and, for the DHT,
//     the answers and the lookups that keep its routing table).
//   - Messages from the network are decoded by ParseMessage and the KRPC
//     decoder, which read a bounded number of questions, records, nodes
//     and peers, bounded nesting, and never panic (FuzzParseMessage,
//     FuzzParseKRPC); what they do not use they skip.
//   - Tables are bounded: peers remembered per key, DHT buckets of 8
//     nodes, info hashes and peers stored for others, askers counted.
//   - Answers are rate-limited per address (token buckets), and small: an
//     MDNS answer is one record per question, sent to the group only; a
//     DHT answer holds at most 8 nodes or 50 peers (about 500 bytes, a
//     few times the smallest query), so a spoofed query cannot turn this
//     node into much of an amplifier.
package discovery
