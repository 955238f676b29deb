package hypercore

import (
	"crypto/ed25519"
	"crypto/rand"
	"fmt"
	"io"

	"golang.org/x/crypto/blake2b"
)

// Key sizes, in the libsodium layout the JavaScript stack uses: a secret key
// is the 32-byte seed followed by the 32-byte public key.
const (
	PublicKeySize    = ed25519.PublicKeySize
	SecretKeySize    = ed25519.PrivateKeySize
	SeedSize         = ed25519.SeedSize
	SignatureSize    = ed25519.SignatureSize
	DiscoveryKeySize = 32
)

// KeyPair is a feed's Ed25519 key pair. Go's ed25519.PrivateKey has the same
// 64-byte layout as libsodium's secret key, so both are stored as they are.
type KeyPair struct {
	PublicKey ed25519.PublicKey
	SecretKey ed25519.PrivateKey
}

// GenerateKeyPair returns a new key pair read from rand (crypto/rand if nil).
func GenerateKeyPair(r io.Reader) (KeyPair, error) {
	if r == nil {
		r = rand.Reader
	}
	pub, sec, err := ed25519.GenerateKey(r)
	if err != nil {
		return KeyPair{}, fmt.Errorf("hypercore: generate key pair: %w", err)
	}
	return KeyPair{PublicKey: pub, SecretKey: sec}, nil
}

// KeyPairFromSeed returns the key pair that libsodium's
// crypto_sign_seed_keypair derives from a 32-byte seed.
//
// Precondition: len(seed) == SeedSize.
func KeyPairFromSeed(seed []byte) KeyPair {
	sec := ed25519.NewKeyFromSeed(seed)
	return KeyPair{PublicKey: sec.Public().(ed25519.PublicKey), SecretKey: sec}
}

// DiscoveryKey returns the hash of a feed's public key under which peers
// find each other without revealing the key: BLAKE2b-256 keyed with the
// public key over the bytes "hypercore".
func DiscoveryKey(publicKey []byte) [DiscoveryKeySize]byte {
	h, err := blake2b.New256(publicKey)
	if err != nil {
		// Only a key over 64 bytes fails; public keys are 32.
		panic(fmt.Sprintf("hypercore: discovery key of a %d-byte key", len(publicKey)))
	}
	h.Write([]byte("hypercore"))
	var out [DiscoveryKeySize]byte
	h.Sum(out[:0])
	return out
}

// secretKeyMatches reports whether sec is the secret key of pub.
func secretKeyMatches(sec ed25519.PrivateKey, pub ed25519.PublicKey) bool {
	if len(sec) != SecretKeySize || len(pub) != PublicKeySize {
		return false
	}
	derived := ed25519.NewKeyFromSeed(sec[:SeedSize])
	return derived.Public().(ed25519.PublicKey).Equal(pub) && string(sec[SeedSize:]) == string(pub)
}
