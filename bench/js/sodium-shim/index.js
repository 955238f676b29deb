// sodium-native 3.4.1 lacks crypto_stream_xor_instance, which
// hypercore-protocol 6 uses for its stream cipher; it has the streaming
// crypto_stream_xor_init/update/final, on which the instance is built here.
// replicate.js checks its output against sodium-javascript's before use.
//
// Its crypto_kdf_derive_from_key also insists on a key of exactly
// crypto_kdf_KEYBYTES, where hyperdrive 9 passes the whole 64-byte secret
// key (the sodium-native of its day took it); libsodium reads only the
// first crypto_kdf_KEYBYTES bytes either way, so those are passed on.
// drive.js checks the derived content key against sodium-javascript's.
'use strict'
const sodium = require('sodium-native-real')

module.exports = Object.assign({}, sodium, {
  crypto_kdf_derive_from_key (out, id, context, key) {
    sodium.crypto_kdf_derive_from_key(out, id, context, key.subarray(0, sodium.crypto_kdf_KEYBYTES))
  },
  crypto_stream_xor_instance (nonce, key) {
    const state = Buffer.alloc(sodium.crypto_stream_xor_STATEBYTES)
    sodium.crypto_stream_xor_init(state, nonce, key)
    return {
      update (input, output) { sodium.crypto_stream_xor_update(state, output, input) },
      final () { sodium.crypto_stream_xor_final(state) }
    }
  }
})
