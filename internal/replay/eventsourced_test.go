package replay_test

import (
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-lambda-go/events"
	ddbtypes "github.com/aws/aws-sdk-go-v2/service/dynamodb/types"

	"github.com/dispatcher-dev/dispatcher/internal/dispatch"
	"github.com/dispatcher-dev/dispatcher/internal/testkit/flowtest"
)

func eventSourcedFlow(t *testing.T) *flowtest.Fixture {
	t.Helper()
	f := flowtest.New(t, nil)
	modes, err := dispatch.ParseModes("Account=event-sourced")
	if err != nil {
		t.Fatal(err)
	}
	f.Svc.WithModes(modes)
	return f
}

// checkKept fails unless every EVENT item of id is DELIVERED without a TTL.
func checkKept(t *testing.T, f *flowtest.Fixture, id string, want int) {
	t.Helper()
	evs := f.EventItems(id)
	if len(evs) != want {
		t.Fatalf("%d EVENT items, want %d", len(evs), want)
	}
	for _, it := range evs {
		if flowtest.S(it, "status") != "DELIVERED" {
			t.Errorf("%s is %s, want DELIVERED", flowtest.S(it, "sk"), flowtest.S(it, "status"))
		}
		if _, ok := it["expiresAt"]; ok {
			t.Errorf("%s has a TTL; an EVENT item is kept", flowtest.S(it, "sk"))
		}
	}
}

func TestTheSweeperDeliversEventSourcedEvents(t *testing.T) {
	f := eventSourcedFlow(t)
	id := flowtest.Unique("essweep")
	// Written while the stream trigger was off: no relay ever sees them.
	f.Command(flowtest.Open(id, id+"@example.com"))
	f.Command(flowtest.Deposit(id, 9))
	time.Sleep(1100 * time.Millisecond)
	if rep := run(t, f, `{"mode":"sweep","olderThanSeconds":1}`); rep.Swept < 4 {
		t.Fatalf("swept %d, want the 4 items of %s (report %+v)", rep.Swept, id, rep)
	}
	checkKept(t, f, id, 2)
	for _, it := range f.Items(id) {
		if _, ok := it["expiresAt"].(*ddbtypes.AttributeValueMemberN); !ok || flowtest.S(it, "status") != "DELIVERED" {
			t.Errorf("email %s: %s, TTL %v; want DELIVERED with a TTL", flowtest.S(it, "sk"), flowtest.S(it, "status"), it["expiresAt"])
		}
	}
	var versions []float64
	for _, m := range f.Drain(f.Events) {
		if m.Body["subject"] == id {
			versions = append(versions, m.Body["aggregateversion"].(float64))
		}
	}
	if fmt.Sprint(versions) != "[1 2]" {
		t.Errorf("events of %s arrived as versions %v, want [1 2]", id, versions)
	}
}

// The relay parks an EVENT record it cannot read; the DLQ message holds the
// EVENT item's key, so the replay reloads that item and delivers it.
func TestAParkedEventSourcedEventIsReplayedFromTheDLQ(t *testing.T) {
	f := eventSourcedFlow(t)
	id := flowtest.Unique("esdlq")
	f.Command(flowtest.Open(id, id+"@example.com"))
	var batch events.DynamoDBEvent
	for _, r := range f.Batch(id).Records {
		if strings.HasPrefix(r.Change.Keys["sk"].String(), "EVENT#") {
			delete(r.Change.NewImage, "eventId") // unreadable as the stream delivered it
			batch.Records = append(batch.Records, r)
		}
	}
	if len(batch.Records) != 1 {
		t.Fatalf("%d EVENT records in the stream, want 1", len(batch.Records))
	}
	f.Handle(batch)
	if msgs := f.Drain(f.Events); len(msgs) != 0 {
		t.Fatalf("%d events sent from an unreadable record", len(msgs))
	}
	rep := run(t, f, `{"mode":"dlq"}`)
	if rep.Replayed < 1 {
		t.Fatalf("replayed %d, want the parked event (report %+v); logs:\n%s", rep.Replayed, rep, f.Logs)
	}
	checkKept(t, f, id, 1)
	var types []any
	for _, m := range f.Drain(f.Events) {
		if m.Body["subject"] == id {
			types = append(types, m.Body["type"])
		}
	}
	if fmt.Sprint(types) != "[AccountOpened]" {
		t.Errorf("events of %s in the queue: %v, want [AccountOpened]", id, types)
	}
}
