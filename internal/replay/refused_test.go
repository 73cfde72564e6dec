package replay_test

import (
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/service/dynamodb/types"

	"github.com/dispatcher-dev/dispatcher/internal/testkit/flowtest"
)

// What the replay does with the DLQ message of an item the relay refused
// (docs/delivery.md, "Refused items").
func TestTheReplayOfARefusedItem(t *testing.T) {
	refuse := func(t *testing.T, f *flowtest.Fixture, edit func(map[string]types.AttributeValue)) string {
		t.Helper()
		id := flowtest.Unique("refused")
		it := flowtest.HandWritten(id, "n", time.Now())
		edit(it)
		f.Put(it)
		f.Handle(f.Batch(id))
		if d := dlqDepth(t, f); d != "1/0" {
			t.Fatalf("DLQ depth %s, want the refused item's message", d)
		}
		return id
	}
	t.Run("under a non-canonical key, it is left in the DLQ with the key to rewrite, not counted delivered", func(t *testing.T) {
		f := flowtest.New(t, nil)
		id := refuse(t, f, func(m map[string]types.AttributeValue) { m["sk"] = &types.AttributeValueMemberS{Value: "OUTBOX#1#0"} })
		rep := run(t, f, `{"mode":"dlq"}`)
		if rep.Unrecognized != 1 || rep.SkippedDelivered != 0 || rep.Replayed != 0 || len(rep.LeftReasons) != 1 ||
			!strings.Contains(rep.LeftReasons[0].Reason, `sk "OUTBOX#1#0"`) || !strings.Contains(rep.LeftReasons[0].Reason, "non-canonical-key") {
			t.Errorf("report %+v", rep)
		}
		if d := dlqDepth(t, f); d != "1/0" {
			t.Errorf("DLQ depth %s, want the message kept", d)
		}
		if it := f.Items(id); len(it) != 1 || flowtest.S(it[0], "status") != "PENDING" {
			t.Errorf("item %v", it)
		}
		f.Drain(f.DLQ)
	})
	t.Run("without its index attributes, it is delivered as it is", func(t *testing.T) {
		f := flowtest.New(t, nil)
		id := refuse(t, f, func(m map[string]types.AttributeValue) {
			delete(m, "undeliveredShard")
			delete(m, "undeliveredSince")
			delete(m, "pendingSk")
		})
		rep := run(t, f, `{"mode":"dlq"}`)
		if rep.Replayed != 1 || rep.Left != 0 {
			t.Errorf("report %+v", rep)
		}
		if it := f.Items(id); len(it) != 1 || flowtest.S(it[0], "status") != "DELIVERED" {
			t.Errorf("item %v", it)
		}
		if d := dlqDepth(t, f); d != "0/0" {
			t.Errorf("DLQ depth %s, want empty", d)
		}
		f.Drain(f.Events)
	})
}
