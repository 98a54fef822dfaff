// Package kvwire decodes the answers of the engine's state and stream
// functions for packages state and stream.
package kvwire

import (
	"encoding/json"
	"fmt"

	"github.com/iii-go/iii/update"
)

// Write is the engine's answer to a set or an update.
type Write struct {
	OldValue json.RawMessage `json:"old_value"`
	NewValue json.RawMessage `json:"new_value"`
	Errors   []update.Error  `json:"errors"`
}

// DecodeWrite decodes raw, the answer of functionID, into old (nil when
// there was no value), new and the skipped operations.
func DecodeWrite[T any](functionID string, raw json.RawMessage) (old *T, nv T, errs []update.Error, err error) {
	var w Write
	if err := json.Unmarshal(raw, &w); err != nil {
		return nil, nv, nil, fmt.Errorf("result of %s: %w", functionID, err)
	}
	if old, err = Optional[T](functionID, w.OldValue); err != nil {
		return nil, nv, nil, err
	}
	if len(w.NewValue) > 0 {
		if err := json.Unmarshal(w.NewValue, &nv); err != nil {
			return nil, nv, nil, fmt.Errorf("new value of %s does not decode into %T: %w", functionID, nv, err)
		}
	}
	return old, nv, w.Errors, nil
}

// Optional decodes a value that may be absent: nil for no data or JSON
// null.
func Optional[T any](what string, raw json.RawMessage) (*T, error) {
	if IsNull(raw) {
		return nil, nil
	}
	v := new(T)
	if err := json.Unmarshal(raw, v); err != nil {
		return nil, fmt.Errorf("value of %s does not decode into %T: %w", what, *v, err)
	}
	return v, nil
}

// IsNull reports whether raw is empty or the JSON null.
func IsNull(raw json.RawMessage) bool {
	for _, c := range raw {
		switch c {
		case ' ', '\t', '\r', '\n':
			continue
		case 'n':
			return true
		}
		return false
	}
	return true
}
