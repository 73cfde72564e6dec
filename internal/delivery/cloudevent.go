package delivery

import (
	"encoding/json"
	"fmt"
	"time"

	"github.com/dispatcher-dev/dispatcher/internal/dispatch"
)

// CloudEvent is a CloudEvents 1.0 event in structured JSON mode, with two
// extension attributes: aggregateversion (so that a consumer can check
// order per aggregate itself) and traceparent (W3C trace context, the
// CloudEvents distributed-tracing extension).
type CloudEvent struct {
	SpecVersion      string          `json:"specversion"`
	ID               string          `json:"id"`
	Source           string          `json:"source"`
	Type             string          `json:"type"`
	Subject          string          `json:"subject"`
	Time             string          `json:"time"`
	DataContentType  string          `json:"datacontenttype"`
	Data             json.RawMessage `json:"data"`
	AggregateType    string          `json:"aggregatetype,omitempty"`
	AggregateVersion int64           `json:"aggregateversion"`
	TraceParent      string          `json:"traceparent,omitempty"`
}

// NewCloudEvent builds the event an outbox item publishes.
func NewCloudEvent(o dispatch.OutboxItem, source string) (CloudEvent, error) {
	var p dispatch.EventPayload
	if err := json.Unmarshal(o.Payload, &p); err != nil {
		return CloudEvent{}, fmt.Errorf("event payload: %w", err)
	}
	data, err := json.Marshal(p.Data)
	if err != nil {
		return CloudEvent{}, err
	}
	if p.Data == nil {
		data = []byte("{}")
	}
	return CloudEvent{
		SpecVersion: "1.0", ID: o.EventID, Source: source, Type: o.EventType, Subject: o.AggregateID,
		Time: o.CreatedAt.UTC().Format(time.RFC3339Nano), DataContentType: "application/json", Data: data,
		AggregateType: o.AggregateType, AggregateVersion: o.Version, TraceParent: o.Traceparent,
	}, nil
}
