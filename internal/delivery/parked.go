package delivery

import (
	"encoding/json"
	"fmt"
	"time"

	"github.com/dispatcher-dev/dispatcher/internal/dispatch"
)

// ParkedKind marks a DLQ message written by the relay (the other shape in
// the DLQ is the event source mapping's on-failure record).
const ParkedKind = "dispatcher.parked.v1"

// ParkedMessage is the DLQ message for an outbox item that could not be delivered:
// the full key to reload it, the error, the attempt count and the trace
// context. It holds no payload (addresses, bodies): replay reloads the item.
type ParkedMessage struct {
	Kind        string    `json:"kind"`
	AggregateID string    `json:"aggregateId"`
	Version     int64     `json:"version"`
	Seq         int       `json:"seq"`
	History     bool      `json:"history,omitempty"` // an event-sourced aggregate's EVENT item
	EventID     string    `json:"eventId,omitempty"`
	EventType   string    `json:"eventType,omitempty"`
	Target      string    `json:"target,omitempty"`
	Reason      string    `json:"reason"` // an error code: MessageRejected, invalid-record, ...
	Error       string    `json:"error"`  // log-safe text
	Attempts    int       `json:"attempts"`
	TraceParent string    `json:"traceparent,omitempty"`
	ParkedAt    time.Time `json:"parkedAt"`
}

// Key returns the parked item's key.
func (p ParkedMessage) Key() dispatch.OutboxKey {
	return dispatch.OutboxKey{AggregateID: p.AggregateID, Version: p.Version, Seq: p.Seq, History: p.History}
}

// ParseParked decodes a DLQ message written by Park.
func ParseParked(body string) (ParkedMessage, error) {
	var p ParkedMessage
	if err := json.Unmarshal([]byte(body), &p); err != nil {
		return p, fmt.Errorf("parked message: %w", err)
	}
	if p.Kind != ParkedKind {
		return p, fmt.Errorf("parked message: kind %q is not %q", p.Kind, ParkedKind)
	}
	if !dispatch.ValidAggregateID(p.AggregateID) || p.Version < 1 || p.Seq < 0 {
		return p, fmt.Errorf("parked message: invalid outbox key")
	}
	return p, nil
}
