package jsonrpc

import (
	"testing"

	"github.com/nodevms/nodevms/internal/fuzzcorpus"
)

// TestSeedCorpus checks that testdata/fuzz holds these seeds (go test .
// -run TestSeedCorpus -update-corpus rewrites it).
func TestSeedCorpus(t *testing.T) {
	var s fuzzcorpus.Seeds
	for _, req := range []string{
		`{"jsonrpc":"2.0","method":"increment","params":[],"id":1}`,
		`{"jsonrpc":"2.0","method":"add","params":[1,"two",{"three":[3,{"]":"}"}]}],"id":"x\"y"}`,
		`{"jsonrpc":"2.0","method":"m","params":null,"id":null,"auth":{"key":"ab","signature":"cd","seq":3}}`,
		" {\n\t\"method\" : \"m\" , \"id\" : -1.5e3 , \"extra\": [true, false, null] } ",
		`{"Method":"m","method":"\u0061","me\u0074hod":1}`,
		"{\"\u212a\":1,\"method\":\"\xff\"}",
		`{"jsonrpc":"2.0","method":"increment","params":[],"id":7,"receipt":true,"receiptParts":true}`,
		`{"jsonrpc":"2.0","method":"m","id":1,"receiptparts":true}`,
		`{"id":1 x"method":"m","params":[}`,
		`{"method"x"m"}x`,
	} {
		s.Add("FuzzParseRequest", []byte(req))
	}
	fuzzcorpus.Check(t, &s)
}
