package rpc

import (
	"encoding/json"
	"fmt"

	"github.com/nodevms/nodevms/internal/jsonrpc"
	"github.com/nodevms/nodevms/receipt"
)

// The wire format is JSON-RPC 2.0 over a WebSocket, one message per text
// frame, as rpc-websockets 3 (and so nodevms-client 2) speaks it: requests
// {"jsonrpc": "2.0", "method", "params": [args] or null, "id"}, answers
// {"jsonrpc": "2.0", "id", "result"} or {"jsonrpc": "2.0", "id", "error":
// {"code", "message", "data"}}. A signed call adds an "auth" member.
//
// NodeVMS's receipts extend both: a request with "receipt": true is
// answered once its entry is signed, and its answer (a result or a script
// error) carries a "receipt" member, the receipt in its one-line form
// (calllog/RECEIPTS.md), or "receiptError" if there is none. The method
// ReceiptMethod, with params [index], answers the receipt of any entry.

// ReceiptMethod is the server's method that answers the receipt of a log
// entry: params [index], result the receipt. A backend's export of the
// same name is not reachable over RPC.
const ReceiptMethod = "nodevms.receipt"

type request struct {
	JSONRPC string          `json:"jsonrpc"`
	Method  string          `json:"method"`
	Params  json.RawMessage `json:"params,omitempty"`
	ID      json.RawMessage `json:"id,omitempty"`
	Auth    *CallAuth       `json:"auth,omitempty"`
	Receipt bool            `json:"receipt,omitempty"`
	// ReceiptParts asks for the call's receipt in parts (receipt.Part):
	// the connection's answers carry only what earlier ones did not, and
	// the client assembles each receipt whole. It overrides Receipt.
	ReceiptParts bool `json:"receiptParts,omitempty"`
}

type response struct {
	JSONRPC      string           `json:"jsonrpc"`
	ID           json.RawMessage  `json:"id"`
	Result       json.RawMessage  `json:"result,omitempty"`
	Error        *wireError       `json:"error,omitempty"`
	Receipt      *receipt.Receipt `json:"receipt,omitempty"`
	ReceiptPart  *receipt.Part    `json:"receiptPart,omitempty"`
	ReceiptError string           `json:"receiptError,omitempty"`
}

type wireError struct {
	Code    int             `json:"code"`
	Message string          `json:"message"`
	Data    json.RawMessage `json:"data,omitempty"`
}

// Error codes. The JSON-RPC ones, and NodeVMS's own in the range the spec
// leaves to servers.
const (
	codeParse          = -32700
	codeInvalidRequest = -32600
	codeNoMethod       = -32601
	codeInvalidParams  = -32602
	codeInternal       = -32603

	// CodeScriptError: the backend's method threw; data is {name, message}.
	CodeScriptError = -32000
	// CodeBusy: the backend's queue, or this connection's calls in
	// flight, are full; try again later.
	CodeBusy = -32001
	// CodeAuth: the call's identity was refused.
	CodeAuth = -32002
	// CodeAborted: the host stopped the call (a budget); it left no trace.
	CodeAborted = -32003
	// CodeUnavailable: the backend is shutting down.
	CodeUnavailable = -32004
)

// Handshake is what the handshake method answers: nodevms-client needs
// methods, callLogUrl and filesArchiveUrl; the rest helps other clients.
type Handshake struct {
	Methods         []string `json:"methods"`
	CallLogURL      string   `json:"callLogUrl"`
	FilesArchiveURL string   `json:"filesArchiveUrl"`
	Title           string   `json:"title,omitempty"`
	Version         string   `json:"version,omitempty"`
	// Auth is "debug" (callers name themselves) or "signed" (callers sign
	// their calls; unsigned ones are anonymous unless RequireSigned).
	Auth          string `json:"auth"`
	RequireSigned bool   `json:"requireSigned,omitempty"`
	// Replication is where the archive and the log replicate: a TCP
	// address (host:port) and a WebSocket path on this server.
	ReplicationAddr string `json:"replicationAddr,omitempty"`
	ReplicationPath string `json:"replicationPath,omitempty"`
}

// parseFlag reads a boolean member's raw JSON (nil when absent) as
// json.Unmarshal would, without its reflection for the usual values.
func parseFlag(name string, raw json.RawMessage) (bool, error) {
	switch string(raw) {
	case "", "null", "false":
		return false, nil
	case "true":
		return true, nil
	}
	var b bool
	if err := json.Unmarshal(raw, &b); err != nil {
		return false, fmt.Errorf("%s: %w", name, err)
	}
	return b, nil
}

// parseRequest decodes a request as json.Unmarshal into a request would
// (internal/jsonrpc does the common shape without reflection).
func parseRequest(data []byte) (request, error) {
	r, err := jsonrpc.ParseRequest(data)
	if err != nil {
		return request{}, err
	}
	req := request{JSONRPC: r.JSONRPC, Method: r.Method, Params: r.Params, ID: r.ID}
	if len(r.Auth) > 0 && string(r.Auth) != "null" {
		req.Auth = new(CallAuth)
		if err := json.Unmarshal(r.Auth, req.Auth); err != nil {
			return request{}, fmt.Errorf("auth: %w", err)
		}
	}
	if req.Receipt, err = parseFlag("receipt", r.Receipt); err != nil {
		return request{}, err
	}
	if req.ReceiptParts, err = parseFlag("receiptParts", r.ReceiptParts); err != nil {
		return request{}, err
	}
	return req, nil
}
