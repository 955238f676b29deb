// Package rpc serves NodeVMS backends over WebSocket JSON-RPC and calls
// them: the server, the Go client, and the call signatures.
//
// The wire format is what nodevms-client 2 (rpc-websockets 3) speaks:
// JSON-RPC 2.0 requests in text frames, params being the argument array.
// A connection first calls handshake, which answers the methods (init is
// not one: it ran at deploy), the call log and files archive URLs, and the
// authentication mode. A script's exception comes back as error code
// CodeScriptError, with the error's message and {name, message} as data.
//
// # Who is calling
//
// In debug mode (Options.Debug) a caller names itself with ?user=NAME on
// the URL or with Basic Auth. Otherwise a caller signs each call with its
// Ed25519 key (an "auth" member on the request: key, signature, sequence
// number; see SignedBytes): its id is its public key in hex, the host logs
// key and signature, and an auditor can check every one. Signatures are
// checked on the connection's goroutine, before the call is queued, so
// they use every core. A call that claims a key without a valid signature,
// or reuses a sequence number, is refused; an unsigned call is anonymous
// (caller null) unless Options.RequireSigned.
//
// # Limits
//
// A request is at most Options.MaxMessage bytes; a connection has at most
// Options.MaxInFlight calls waiting; the backend's queue is bounded (see
// package core). Over a limit the caller gets CodeBusy and the server
// carries on. A client that goes away with calls queued has them dropped.
// Requests are read as their bytes arrive, never into a buffer sized by
// the length a frame claims.
//
// At most Options.MaxConnections JSON-RPC connections (1024 by default)
// and Options.Peers replication peers are served at once; one more gets
// HTTP 503, with a body saying which limit, instead of the upgrade. The
// refusals are logged at most once every ten seconds. The replication cap
// may be shared with the Dat listener (protocol.Options.Peers).
//
// A connection hands the calls it has read to the host when it is about
// to wait for more input, so that calls that arrived together share a
// group commit. When the host is idle they run on the connection's own
// goroutine, which then sends their answers itself; meanwhile it reads
// nothing more, so a flood on one connection waits in TCP rather than in
// the queue, which fills when the host is busy with other connections.
//
// # Replication
//
// Each backend's files archive and call log also replicate over a
// WebSocket at PATH/.dat, binary frames carrying the Dat protocol stream
// (WebSocketStream), for clients that cannot open TCP. A message there is
// at most 16 MiB (the WebSocket's read limit); the Dat frames in it are
// read, and limited, as package protocol reads any stream.
package rpc
