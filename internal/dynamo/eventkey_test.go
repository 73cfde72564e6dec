package dynamo

import (
	"testing"
	"time"

	"github.com/aws/aws-lambda-go/events"

	"github.com/dispatcher-dev/dispatcher/internal/dispatch"
)

func insert(sk string) events.DynamoDBEventRecord {
	return events.DynamoDBEventRecord{EventName: "INSERT", Change: events.DynamoDBStreamRecord{
		Keys: map[string]events.DynamoDBAttributeValue{"pk": events.NewStringAttribute("AGG#acc-1"), "sk": events.NewStringAttribute(sk)},
		NewImage: map[string]events.DynamoDBAttributeValue{
			"eventId": events.NewStringAttribute("e-1"), "eventType": events.NewStringAttribute("FundsDeposited"),
			"target": events.NewStringAttribute("events"), "payload": events.NewStringAttribute(`{"data":{"amount":5}}`),
		},
	}}
}

// An event-sourced aggregate's EVENT item is read from the stream as an
// outbox event whose key says it is history, and addresses the EVENT item
// again; its order key sorts with the OUTBOX items of its version.
func TestEventItemsAreOutboxEventsWithAHistoryKey(t *testing.T) {
	item, ok, err := StreamRecord(insert(EventSK(7)))
	if !ok || err != nil {
		t.Fatalf("ok %v err %v, want an outbox event", ok, err)
	}
	want := dispatch.OutboxKey{AggregateID: "acc-1", Version: 7, Seq: 0, History: true}
	if item.Key() != want {
		t.Errorf("key %+v, want %+v", item.Key(), want)
	}
	if sk := getS(key(item.Key()), attrSK); sk != EventSK(7) {
		t.Errorf("the key addresses %s, want %s", sk, EventSK(7))
	}
	s := New(nil, "t", 8)
	item.Status, item.CreatedAt = dispatch.Pending, time.Now()
	stored, err := s.outboxItem(item)
	if err != nil {
		t.Fatal(err)
	}
	if sk := getS(stored, attrSK); sk != "EVENT#00000000000000000007" {
		t.Errorf("sk %s, want the EVENT item's", sk)
	}
	if psk := getS(stored, attrPendingSK); psk != OutboxSK(7, 0) || !(OutboxSK(6, 1) < psk && psk < OutboxSK(7, 1)) {
		t.Errorf("pendingSk %s: want %s, between version 6's email and version 7's", psk, OutboxSK(7, 0))
	}
	if getS(stored, attrKind) != kindEvent {
		t.Errorf("kind %s, want %s", getS(stored, attrKind), kindEvent)
	}
	for _, sk := range []string{SnapshotSK(50), "STATE", "EVENT#7"} {
		if _, ok, err := StreamRecord(insert(sk)); sk != "EVENT#7" && ok {
			t.Errorf("%s: read as an outbox item", sk)
		} else if sk == "EVENT#7" && err == nil {
			t.Errorf("%s: a malformed EVENT key was accepted", sk)
		}
	}
}
