package apigw_test

import (
	"context"
	"testing"
	"time"

	"github.com/dispatcher-dev/dispatcher/internal/dispatch"
	"github.com/dispatcher-dev/dispatcher/internal/dynamo"
)

// The outbox view says why an item is not delivered yet: a SENDING email
// shows its lease's expiry, and every later version shows the earlier item
// it waits for, also across pages.
func TestTheOutboxShowsLeasesAndWhatEachItemWaitsFor(t *testing.T) {
	f := newFixture(t)
	id := newID("wait")
	f.mustAccept(openAccount(id))
	f.mustAccept(deposit(id, 100, "r1"))
	store := dynamo.New(f.db, f.table, 8)
	until := time.Now().Add(time.Minute)
	if err := store.Claim(context.Background(), dispatch.OutboxKey{AggregateID: id, Version: 1, Seq: 1}, "relay-x", time.Now(), until); err != nil {
		t.Fatal(err)
	}
	if err := store.MarkDelivered(context.Background(), dispatch.OutboxKey{AggregateID: id, Version: 1, Seq: 0}, "", time.Now(), time.Hour); err != nil {
		t.Fatal(err)
	}
	var items []map[string]any
	cursor := ""
	for {
		q := map[string]string{"limit": "2"}
		if cursor != "" {
			q["cursor"] = cursor
		}
		resp, page := f.do(f.get("/v1/aggregates/"+id+"/outbox", id, q))
		if resp.StatusCode != 200 {
			t.Fatalf("outbox: %d %s", resp.StatusCode, resp.Body)
		}
		for _, it := range page["items"].([]any) {
			items = append(items, it.(map[string]any))
		}
		if cursor, _ = page["nextCursor"].(string); cursor == "" {
			break
		}
	}
	if len(items) != 4 {
		t.Fatalf("%d items, want 4", len(items))
	}
	v1email := items[1]
	lease, _ := v1email["leaseUntil"].(string)
	if got, err := time.Parse(time.RFC3339Nano, lease); v1email["status"] != "SENDING" || err != nil || !got.Equal(until.Truncate(time.Millisecond)) {
		t.Errorf("version 1's email %v: want SENDING with leaseUntil %s", v1email, until.UTC().Format(time.RFC3339Nano))
	}
	if items[0]["waitingFor"] != nil || v1email["waitingFor"] != nil {
		t.Errorf("version 1's items wait for nothing: %v", items[:2])
	}
	for _, it := range items[2:] {
		w, _ := it["waitingFor"].(map[string]any)
		if w["version"] != float64(1) || w["seq"] != float64(1) || w["reason"] == "" {
			t.Errorf("version 2's %s: waitingFor %v, want version 1 seq 1 (the leased email)", it["target"], it["waitingFor"])
		}
	}
}
