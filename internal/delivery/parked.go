package delivery

import (
	"encoding/json"
	"fmt"
	"time"

	"github.com/dispatcher-dev/dispatcher/internal/dispatch"
	"github.com/dispatcher-dev/dispatcher/outbox"
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
	PK          string    `json:"pk,omitempty"`      // the table key as written: set when the relay refuses a stream record,
	SK          string    `json:"sk,omitempty"`      // the only way to find an item under a non-canonical key (Key is not its key)
	EventID     string    `json:"eventId,omitempty"`
	EventType   string    `json:"eventType,omitempty"`
	Target      string    `json:"target,omitempty"`
	Reason      string    `json:"reason"` // an error code: MessageRejected, a contract rule (non-canonical-key, ...), invalid-record, ...
	Error       string    `json:"error"`  // log-safe text
	Attempts    int       `json:"attempts"`
	TraceParent string    `json:"traceparent,omitempty"`
	ParkedAt    time.Time `json:"parkedAt"`
}

// Reasons of items parked because they cannot be trusted, when the error
// names no rule of the outbox contract (ParkReason).
const (
	ReasonInvalidRecord = "invalid-record" // a stream record the relay cannot read
	ReasonInvalidItem   = "invalid-item"   // a table copy the engine cannot send
)

// ParkReason is the DLQ reason of an item refused as untrustworthy: the rule
// of the outbox contract err breaks (outbox.RuleOf: non-canonical-key,
// missing-index-attributes, unknown-schema-version, invalid-envelope,
// over-limit), or fallback for an error that is not a contract error.
func ParkReason(err error, fallback string) string {
	if rule, ok := outbox.RuleOf(err); ok {
		return string(rule)
	}
	return fallback
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
		if p.SK != "" {
			// Refused by the relay under a key it never computes: no replay
			// can deliver it, its writer must write it again.
			return p, fmt.Errorf("parked message: %s: the item under pk %q, sk %q cannot be delivered; write it again under its canonical key and delete it", p.Reason, p.PK, p.SK)
		}
		return p, fmt.Errorf("parked message: invalid outbox key")
	}
	return p, nil
}
