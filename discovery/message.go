package discovery

import (
	"crypto/sha256"
	"encoding/base64"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"fmt"
	"net/netip"
	"strings"

	"golang.org/x/net/dns/dnsmessage"
)

// Domain is the DNS domain under which the Dat tools name discovery keys
// (dat-swarm-defaults).
const Domain = "dat.local"

// NameSize is how many bytes of a discovery key name it: the DHT's info
// hashes are 20 bytes, and discovery-channel cuts every id to fit.
const NameSize = 20

// Name is the DNS name under which Dat peers announce a discovery key
// (discovery-channel with hash: false, as dat-node joins): the first 20
// bytes in hex, then ".dat.local". A key shorter than 20 bytes is used
// whole.
func Name(discoveryKey []byte) string {
	return hex.EncodeToString(discoveryKey[:min(len(discoveryKey), NameSize)]) + "." + Domain
}

// Limits on what a message may make this side do: questions and records
// looked at, peers taken from one record. Beyond them the rest of a message
// is ignored.
const (
	maxQuestions = 16
	maxRecords   = 32
	maxPeers     = 64
	// MaxMessageSize is the largest message read or written: a UDP
	// datagram that fits an Ethernet jumbo frame, as multicast-dns reads.
	MaxMessageSize = 9000
)

// ErrMessage is the error of a message that does not decode.
var ErrMessage = errors.New("discovery: bad message")

// Message is what this package reads of a DNS message: the TXT questions'
// names, and the peers that its TXT and SRV records name, with the name
// they are for.
type Message struct {
	ID        uint16
	Response  bool
	Questions []string      // names asked for (TXT), without the final dot
	Found     []FoundRecord // peers the records name
	// Token is the first token= of its TXT records: what a DNS discovery
	// server wants back with an announcement.
	Token string
}

// FoundRecord is a peer a record names for a name. An unspecified address
// (0.0.0.0) means the sender's own address, as dns-discovery announces.
type FoundRecord struct {
	Name string
	Peer netip.AddrPort
}

// ParseMessage decodes a DNS message, keeping what discovery uses. Records
// of other types are skipped; a message that is not DNS is an ErrMessage.
func ParseMessage(b []byte) (Message, error) {
	if len(b) > MaxMessageSize {
		return Message{}, fmt.Errorf("%w: %d bytes", ErrMessage, len(b))
	}
	var p dnsmessage.Parser
	h, err := p.Start(b)
	if err != nil {
		return Message{}, fmt.Errorf("%w: %w", ErrMessage, err)
	}
	m := Message{ID: h.ID, Response: h.Response}
	for i := 0; ; i++ {
		q, err := p.Question()
		if errors.Is(err, dnsmessage.ErrSectionDone) {
			break
		}
		if err != nil {
			return Message{}, fmt.Errorf("%w: %w", ErrMessage, err)
		}
		if i < maxQuestions && q.Type == dnsmessage.TypeTXT {
			m.Questions = append(m.Questions, strings.TrimSuffix(q.Name.String(), "."))
		}
	}
	// Answers and additionals alike can name peers (dns-discovery reads
	// both); authorities are skipped.
	records := 0
	for section := 0; section < 3; section++ {
		for {
			var h dnsmessage.ResourceHeader
			switch section {
			case 0:
				h, err = p.AnswerHeader()
			case 1:
				h, err = p.AuthorityHeader()
			case 2:
				h, err = p.AdditionalHeader()
			}
			if errors.Is(err, dnsmessage.ErrSectionDone) {
				break
			}
			if err != nil {
				return Message{}, fmt.Errorf("%w: %w", ErrMessage, err)
			}
			records++
			name := strings.TrimSuffix(h.Name.String(), ".")
			switch {
			case section == 1 || records > maxRecords:
				err = skip(&p, section)
			case h.Type == dnsmessage.TypeTXT:
				var r dnsmessage.TXTResource
				if r, err = p.TXTResource(); err == nil {
					m.Found = append(m.Found, txtPeers(name, r.TXT)...)
					for _, s := range r.TXT {
						if t, ok := strings.CutPrefix(s, "token="); ok && m.Token == "" && len(t) <= 128 {
							m.Token = t
						}
					}
				}
			case h.Type == dnsmessage.TypeSRV:
				var r dnsmessage.SRVResource
				if r, err = p.SRVResource(); err == nil {
					addr, perr := netip.ParseAddr(strings.TrimSuffix(r.Target.String(), "."))
					if perr == nil && addr.Is4() {
						m.Found = append(m.Found, FoundRecord{Name: name, Peer: netip.AddrPortFrom(addr, r.Port)})
					}
				}
			default:
				err = skip(&p, section)
			}
			if err != nil {
				return Message{}, fmt.Errorf("%w: %w", ErrMessage, err)
			}
		}
	}
	return m, nil
}

func skip(p *dnsmessage.Parser, section int) error {
	switch section {
	case 0:
		return p.SkipAnswer()
	case 1:
		return p.SkipAuthority()
	}
	return p.SkipAdditional()
}

// txtPeers reads a dns-discovery TXT record: strings key=value, of which
// peers= is base64 of 6 bytes a peer (IPv4 address, port big-endian).
func txtPeers(name string, txt []string) []FoundRecord {
	var found []FoundRecord
	for _, s := range txt {
		v, ok := strings.CutPrefix(s, "peers=")
		if !ok {
			continue
		}
		b, err := base64.StdEncoding.DecodeString(v)
		if err != nil {
			continue
		}
		for i := 0; i+6 <= len(b) && len(found) < maxPeers; i += 6 {
			addr := netip.AddrFrom4([4]byte(b[i : i+4]))
			found = append(found, FoundRecord{Name: name, Peer: netip.AddrPortFrom(addr, binary.BigEndian.Uint16(b[i+4:]))})
		}
	}
	return found
}

// Query is a multicast query for the TXT record of each name, as
// dns-discovery sends to look a key up or announce it.
func Query(names ...string) ([]byte, error) {
	b := dnsmessage.NewBuilder(nil, dnsmessage.Header{})
	if err := b.StartQuestions(); err != nil {
		return nil, err
	}
	for _, n := range names {
		dn, err := dnsmessage.NewName(n + ".")
		if err != nil {
			return nil, fmt.Errorf("discovery: name %q: %w", n, err)
		}
		if err := b.Question(dnsmessage.Question{Name: dn, Type: dnsmessage.TypeTXT, Class: dnsmessage.ClassINET}); err != nil {
			return nil, err
		}
	}
	return b.Finish()
}

// queryWithTXT is a unicast query for name's TXT record, as dns-discovery
// sends a DNS discovery server: with id, recursion desired (as dns-socket
// asks), and, if txt is not nil, an additional TXT record for name holding
// txt (subscribe=true, token=..., announce=PORT).
func queryWithTXT(id uint16, name string, txt []string) ([]byte, error) {
	dn, err := dnsmessage.NewName(name + ".")
	if err != nil {
		return nil, fmt.Errorf("discovery: name %q: %w", name, err)
	}
	b := dnsmessage.NewBuilder(nil, dnsmessage.Header{ID: id, RecursionDesired: true})
	if err := b.StartQuestions(); err != nil {
		return nil, err
	}
	if err := b.Question(dnsmessage.Question{Name: dn, Type: dnsmessage.TypeTXT, Class: dnsmessage.ClassINET}); err != nil {
		return nil, err
	}
	if txt != nil {
		if err := b.StartAdditionals(); err != nil {
			return nil, err
		}
		h := dnsmessage.ResourceHeader{Name: dn, Type: dnsmessage.TypeTXT, Class: dnsmessage.ClassINET}
		if err := b.TXTResource(h, dnsmessage.TXTResource{TXT: txt}); err != nil {
			return nil, err
		}
	}
	return b.Finish()
}

// emptyResponse answers a query with nothing, under its id: what a
// subscriber says to a server's push, so that it stops resending.
func emptyResponse(id uint16) ([]byte, error) {
	b := dnsmessage.NewBuilder(nil, dnsmessage.Header{ID: id, Response: true})
	return b.Finish()
}

// Answer is one name's answer: the peers that announce it here.
type Answer struct {
	Name  string
	Peers []netip.AddrPort // 0.0.0.0: "my own address"
}

// Response is a multicast response with one TXT record per answer, as
// dns-discovery answers a query for a name it announces: a token (which
// lets a DNS discovery server tell a real address from a spoofed one; here
// derived from the asker's address, so it never repeats across askers) and
// the peers.
func Response(token string, answers ...Answer) ([]byte, error) {
	b := dnsmessage.NewBuilder(nil, dnsmessage.Header{Response: true, Authoritative: true})
	if err := b.StartAnswers(); err != nil {
		return nil, err
	}
	for _, a := range answers {
		dn, err := dnsmessage.NewName(a.Name + ".")
		if err != nil {
			return nil, fmt.Errorf("discovery: name %q: %w", a.Name, err)
		}
		peers := make([]byte, 0, 6*len(a.Peers))
		for _, p := range a.Peers {
			if !p.Addr().Is4() {
				continue
			}
			ip := p.Addr().As4()
			peers = binary.BigEndian.AppendUint16(append(peers, ip[:]...), p.Port())
		}
		txt := []string{"token=" + token, "peers=" + base64.StdEncoding.EncodeToString(peers)}
		h := dnsmessage.ResourceHeader{Name: dn, Type: dnsmessage.TypeTXT, Class: dnsmessage.ClassINET}
		if err := b.TXTResource(h, dnsmessage.TXTResource{TXT: txt}); err != nil {
			return nil, err
		}
	}
	return b.Finish()
}

// token is what a response carries for an asker: a hash of a secret and
// the asker's address, in base64, as dns-discovery's.
func token(secret []byte, asker netip.Addr) string {
	h := sha256.New()
	h.Write(secret)
	h.Write([]byte(asker.String()))
	return base64.StdEncoding.EncodeToString(h.Sum(nil))
}
