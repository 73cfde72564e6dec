package replay_test

import (
	"context"
	"fmt"
	"slices"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/service/dynamodb"
	ddbtypes "github.com/aws/aws-sdk-go-v2/service/dynamodb/types"

	"github.com/dispatcher-dev/dispatcher/internal/app/deliveryfn"
	"github.com/dispatcher-dev/dispatcher/internal/dispatch"
	"github.com/dispatcher-dev/dispatcher/internal/dynamo"
	"github.com/dispatcher-dev/dispatcher/internal/testkit/flowtest"
	"github.com/dispatcher-dev/dispatcher/outbox"
)

// A writer may spread its items over 1 to outbox.MaxShards shards, whatever
// the deployment's own setting: the sweeper finds them all. The items of a
// 64-shard writer land in shards 8 and up, which a sweeper that read only
// its store's 8 shards never queried: lost to "no loss" once the stream
// trigger missed them, and invisible to the oldest-undelivered alarm.
func TestTheSweeperFindsTheItemsOfAWriterWithAnyShardSetting(t *testing.T) {
	f := flowtest.New(t, func(c *deliveryfn.Config) { c.Shards = 8 })
	ctx := context.Background()
	// Older than anything else in the shared table, so that it is the oldest.
	written := time.Date(2001, 1, 1, 0, 0, 0, 0, time.UTC).Add(time.Duration(time.Now().UnixNano() % int64(time.Hour)))
	write := func(shards int, id string, at time.Time) {
		t.Helper()
		w := outbox.Writer{Table: f.Table, Shards: shards, Now: func() time.Time { return at }}
		puts, _, err := w.Items(outbox.Aggregate{Type: "Order", ID: id, Version: 1}, outbox.Event{Type: "OrderPlaced", Data: map[string]any{"n": shards}})
		if err != nil {
			t.Fatal(err)
		}
		if _, err := f.DB.TransactWriteItems(ctx, &dynamodb.TransactWriteItemsInput{TransactItems: puts}); err != nil {
			t.Fatal(err)
		}
	}
	var wide []string // written with 64 shards, each in a shard numbered 8 or more
	for i := 0; len(wide) < 3; i++ {
		id := flowtest.Unique(fmt.Sprintf("wide%d", i))
		if n, _ := outbox.ShardNumber(outbox.Shard(id, 1, 0, 64)); n >= 8 {
			write(64, id, written)
			wide = append(wide, id)
		}
	}
	narrow := flowtest.Unique("narrow") // written with 1 shard, a second later
	write(1, narrow, written.Add(time.Second))
	all := append(slices.Clone(wide), narrow)

	store := dynamo.New(f.DB, f.Table, 8)
	t.Run("Undelivered lists them", func(t *testing.T) {
		keys, err := store.Undelivered(ctx, written.Add(2*time.Second), 1000)
		if err != nil {
			t.Fatal(err)
		}
		for _, id := range all {
			if !slices.Contains(keys, dispatch.OutboxKey{AggregateID: id, Version: 1}) {
				t.Errorf("%s (shard %s) not found among %d undelivered keys", id, outbox.Shard(id, 1, 0, 64), len(keys))
			}
		}
	})
	t.Run("Undelivered stops at its limit", func(t *testing.T) {
		keys, err := store.Undelivered(ctx, written.Add(2*time.Second), 2)
		if err != nil || len(keys) != 2 {
			t.Errorf("%d keys (err %v) with limit 2", len(keys), err)
		}
	})
	t.Run("OldestUndelivered sees them", func(t *testing.T) {
		oldest, ok, err := store.OldestUndelivered(ctx)
		if err != nil || !ok || !oldest.Equal(written) {
			t.Errorf("oldest undelivered %v (ok %v, err %v), want %v", oldest, ok, err, written)
		}
	})
	rep := run(t, f, `{"mode":"sweep","olderThanSeconds":60}`)
	for _, id := range all {
		if items := f.Items(id); len(items) != 1 || flowtest.S(items[0], "status") != "DELIVERED" {
			t.Errorf("%s not delivered by the sweep (report %+v)", id, rep)
		}
	}
	var sent []string
	for _, m := range f.Drain(f.Events) {
		if id, _ := m.Body["subject"].(string); slices.Contains(all, id) {
			sent = append(sent, id)
		}
	}
	if len(sent) != len(all) {
		t.Errorf("events sent for %v, want one each for %v", sent, all)
	}
}

// The sweeper reads the table's copy, not the stream's, and refuses to guess
// as the relay does: an item of a schemaVersion it does not know is parked
// under that rule and marked FAILED, never sent.
func TestTheSweeperParksAnItemOfAnUnknownSchemaVersion(t *testing.T) {
	f := flowtest.New(t, nil)
	ctx := context.Background()
	id := flowtest.Unique("schema2")
	w := outbox.Writer{Table: f.Table, Now: func() time.Time { return time.Now().Add(-time.Hour) }}
	puts, _, err := w.Items(outbox.Aggregate{Type: "Order", ID: id, Version: 1}, outbox.Event{Type: "OrderPlaced"})
	if err != nil {
		t.Fatal(err)
	}
	puts[0].Put.Item["schemaVersion"] = &ddbtypes.AttributeValueMemberN{Value: "2"} // a later contract's item
	if _, err := f.DB.TransactWriteItems(ctx, &dynamodb.TransactWriteItemsInput{TransactItems: puts}); err != nil {
		t.Fatal(err)
	}
	run(t, f, `{"mode":"sweep","olderThanSeconds":60}`)
	for _, m := range f.Drain(f.Events) {
		if m.Body["subject"] == id {
			t.Errorf("sent %v", m.Body)
		}
	}
	if it := f.Items(id); len(it) != 1 || flowtest.S(it[0], "status") != "FAILED" {
		t.Errorf("item %v, want FAILED", it)
	}
	var parked bool
	for _, m := range f.Drain(f.DLQ) {
		parked = parked || (m.Body["aggregateId"] == id && m.Body["reason"] == "unknown-schema-version")
	}
	if !parked {
		t.Errorf("no DLQ message with reason unknown-schema-version for %s; logs:\n%s", id, f.Logs)
	}
}
