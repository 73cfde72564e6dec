package dynamo

import (
	"testing"

	"github.com/aws/aws-lambda-go/events"
)

// BenchmarkStreamRecord is the decode of one outbox stream record into a
// validated outbox item, as the relay does for every record.
func BenchmarkStreamRecord(b *testing.B) {
	r := events.DynamoDBEventRecord{EventName: "INSERT", Change: events.DynamoDBStreamRecord{
		SequenceNumber: "100000000000000000001",
		Keys:           map[string]events.DynamoDBAttributeValue{"pk": events.NewStringAttribute("AGG#order-42"), "sk": events.NewStringAttribute("OUTBOX#00000000000000000003#000")},
		NewImage: map[string]events.DynamoDBAttributeValue{
			"pk": events.NewStringAttribute("AGG#order-42"), "sk": events.NewStringAttribute("OUTBOX#00000000000000000003#000"),
			"eventId": events.NewStringAttribute("01a21bee-202c-7d1c-86ae-c5a7256cfb5b"), "eventType": events.NewStringAttribute("OrderPaid"),
			"target": events.NewStringAttribute("events"), "payload": events.NewStringAttribute(`{"data":{"amount":1250}}`),
			"status": events.NewStringAttribute("PENDING"), "attempts": events.NewNumberAttribute("0"),
			"createdAt": events.NewStringAttribute("2026-11-27T07:00:00.123456789Z"), "version": events.NewNumberAttribute("3"), "seq": events.NewNumberAttribute("0"),
			"kind": events.NewStringAttribute("outbox"), "schemaVersion": events.NewNumberAttribute("1"),
			"aggregateId": events.NewStringAttribute("order-42"), "aggregateType": events.NewStringAttribute("Order"),
			"undeliveredShard": events.NewStringAttribute("PENDING#3"), "pendingSk": events.NewStringAttribute("OUTBOX#00000000000000000003#000"),
			"undeliveredSince": events.NewStringAttribute("2026-11-27T07:00:00.123456789Z#01a21bee-202c-7d1c-86ae-c5a7256cfb5b"),
			"traceparent":      events.NewStringAttribute("00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"),
		},
	}}
	b.ReportAllocs()
	for b.Loop() {
		if _, ok, err := StreamRecord(r); !ok || err != nil {
			b.Fatal(ok, err)
		}
	}
}
