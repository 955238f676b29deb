// Package nodevms holds what the whole NodeVMS tree shares: its version.
//
// NodeVMS runs a JavaScript backend in a deterministic sandbox and records
// every call with its result in a signed, append-only Dat log (a hypercore),
// so that anyone can replay the log and check that the host ran the declared
// code honestly. The pieces live in their own packages: hypercore (Dat 1.0
// feeds), and, as they land, hyperdrive, sandbox, core, rpc and the nodevms
// command in cli.
package nodevms

// Version is the NodeVMS release this tree builds. It follows semantic
// versioning; it is printed by `nodevms --version`.
const Version = "0.1.0-dev"
