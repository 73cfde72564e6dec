package dispatch

import (
	"bytes"
	"encoding/json"
	"github.com/dispatcher-dev/dispatcher/outbox"
	"time"
)

// Aggregate is the current state of one aggregate. Version 0 means it does
// not exist yet. Data holds JSON-compatible values; numbers are json.Number
// so that no amount ever passes through a float.
type Aggregate struct {
	ID        string
	Type      string
	Version   int64
	Data      map[string]any
	CreatedAt time.Time
	UpdatedAt time.Time
}

// Exists reports whether the aggregate has been created.
func (a Aggregate) Exists() bool { return a.Version > 0 }

// ValidAggregateID reports whether id is a usable aggregate id: 1 to
// MaxAggregateIDLen characters of [A-Za-z0-9_-], starting with a letter or
// digit (no dots or slashes, so it can never climb a path).
func ValidAggregateID(id string) bool { return outbox.ValidAggregateID(id) }

// decodeData turns aggregate data into a typed struct.
func decodeData(data map[string]any, v any) error {
	b, err := json.Marshal(data)
	if err != nil {
		return err
	}
	return json.Unmarshal(b, v)
}

// encodeData turns a typed struct into aggregate data, keeping numbers exact.
func encodeData(v any) (map[string]any, error) {
	b, err := json.Marshal(v)
	if err != nil {
		return nil, err
	}
	return DecodeJSONObject(b)
}

// DecodeJSONObject decodes a JSON object with numbers as json.Number.
func DecodeJSONObject(b []byte) (map[string]any, error) {
	var m map[string]any
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.UseNumber()
	if err := dec.Decode(&m); err != nil {
		return nil, err
	}
	if m == nil {
		m = map[string]any{}
	}
	return m, nil
}
