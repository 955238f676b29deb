package hyperdrive

import (
	"crypto/ed25519"
	"encoding/binary"

	"github.com/dchest/blake2b"

	"github.com/nodevms/nodevms/hypercore"
)

// ContentKeyPair derives the content feed's key pair from the metadata
// feed's secret key, as the reference does: the seed is libsodium's
// crypto_kdf_derive_from_key(subkey id 1, context "hyperdri") keyed with the
// metadata seed, which is BLAKE2b-256 with that key, the id as salt and the
// context as personalisation. x/crypto's BLAKE2b has no salt or
// personalisation, hence github.com/dchest/blake2b here.
func ContentKeyPair(metadataSecret ed25519.PrivateKey) hypercore.KeyPair {
	salt := make([]byte, 16)
	binary.LittleEndian.PutUint64(salt, 1)
	person := make([]byte, 16)
	copy(person, "hyperdri")
	h, err := blake2b.New(&blake2b.Config{Size: 32, Key: metadataSecret.Seed(), Salt: salt, Person: person})
	if err != nil {
		panic("hyperdrive: blake2b config: " + err.Error()) // fixed sizes: cannot happen
	}
	return hypercore.KeyPairFromSeed(h.Sum(nil))
}
