// sodium-native 3.4.1 lacks crypto_stream_xor_instance, which
// hypercore-protocol 6 uses for its stream cipher; it has the streaming
// crypto_stream_xor_init/update/final, on which the instance is built here.
// replicate.js checks its output against sodium-javascript's before use.
'use strict'
const sodium = require('sodium-native-real')

module.exports = Object.assign({}, sodium, {
  crypto_stream_xor_instance (nonce, key) {
    const state = Buffer.alloc(sodium.crypto_stream_xor_STATEBYTES)
    sodium.crypto_stream_xor_init(state, nonce, key)
    return {
      update (input, output) { sodium.crypto_stream_xor_update(state, output, input) },
      final () { sodium.crypto_stream_xor_final(state) }
    }
  }
})
