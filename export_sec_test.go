package iii

import (
	"encoding/json"

	"github.com/iii-go/iii/channel"
)

// EncodeJSON and RawResult expose how the SDK takes in a caller's JSON
// (payloads, metadata, channel messages) and a handler's raw result.
var (
	EncodeJSON = encodeJSON
	RawResult  = rawResult
)

// ensure the types stay what the tests expect.
var _ func(any) (json.RawMessage, error) = EncodeJSON

// ChannelURL exposes how an end's URL is built from a ref.
func ChannelURL(base string, ref StreamChannelRef, read bool) (string, error) {
	d := channel.Write
	if read {
		d = channel.Read
	}
	return channelURL(base, ref, d)
}
