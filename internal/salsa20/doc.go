// Package salsa20 XORs a Salsa20/20 keystream over bytes, the block function
// the Dat wire protocol's XSalsa20 runs on, as fast as the CPU allows.
//
// On amd64 with AVX-512 it computes 16 blocks (1 KiB) of keystream at once,
// one block in each lane of sixteen 512-bit registers, about four times the
// speed of x/crypto's one-block-at-a-time assembly; elsewhere, and for the
// last partial kilobyte, it calls x/crypto. Replication decrypts and
// encrypts every byte it moves, so this is most of its CPU time.
//
// The output is identical to golang.org/x/crypto/salsa20/salsa.XORKeyStream
// for every input, counter and key; the tests check that against x/crypto.
package salsa20
