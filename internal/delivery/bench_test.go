package delivery

import (
	"encoding/json"
	"testing"
	"time"

	"github.com/dispatcher-dev/dispatcher/internal/dispatch"
)

// BenchmarkEnvelope is the CloudEvent a delivered event becomes, encoded.
func BenchmarkEnvelope(b *testing.B) {
	it := dispatch.OutboxItem{AggregateID: "order-42", AggregateType: "Order", Version: 3, EventID: "01a21bee-202c-7d1c-86ae-c5a7256cfb5b",
		EventType: "OrderPaid", Target: dispatch.TargetEvents, Payload: json.RawMessage(`{"data":{"amount":1250,"currency":"EUR"}}`),
		CreatedAt: time.Now(), Traceparent: "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"}
	b.ReportAllocs()
	for b.Loop() {
		ce, err := NewCloudEvent(it, "dispatcher")
		if err != nil {
			b.Fatal(err)
		}
		if _, err := json.Marshal(ce); err != nil {
			b.Fatal(err)
		}
	}
}
