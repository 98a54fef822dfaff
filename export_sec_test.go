package iii

import "encoding/json"

// EncodeJSON and RawResult expose how the SDK takes in a caller's JSON
// (payloads, metadata, channel messages) and a handler's raw result.
var (
	EncodeJSON = encodeJSON
	RawResult  = rawResult
)

// ensure the types stay what the tests expect.
var _ func(any) (json.RawMessage, error) = EncodeJSON
