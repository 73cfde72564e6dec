package replay

import "github.com/dispatcher-dev/dispatcher/internal/streams"

// OnFailure is the event source mapping's on-failure record (see streams).
type OnFailure = streams.OnFailure

// BatchInfo locates a discarded batch in the stream.
type BatchInfo = streams.BatchInfo

// ParseOnFailure decodes an on-failure record; ok is false when the body is
// not one.
func ParseOnFailure(body string) (OnFailure, bool, error) { return streams.ParseOnFailure(body) }
