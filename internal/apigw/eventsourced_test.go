package apigw_test

import (
	"context"
	"fmt"
	"net/http"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-lambda-go/events"
	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb/types"

	"github.com/dispatcher-dev/dispatcher/internal/apigw"
	"github.com/dispatcher-dev/dispatcher/internal/command"
	"github.com/dispatcher-dev/dispatcher/internal/dispatch"
	"github.com/dispatcher-dev/dispatcher/internal/dynamo"
	"github.com/dispatcher-dev/dispatcher/internal/emails"
)

// eventSourced is AGGREGATE_MODES=Account=event-sourced.
func eventSourced(t testing.TB) map[string]dispatch.Mode {
	t.Helper()
	m, err := dispatch.ParseModes("Account=event-sourced")
	if err != nil {
		t.Fatal(err)
	}
	return m
}

// inBothModes runs test with Account aggregates in outbox mode, then in
// event-sourced mode, each on a fixture of its own.
func inBothModes(t *testing.T, test func(t *testing.T, f *fixture)) {
	modes := map[string]map[string]dispatch.Mode{"outbox": dispatch.DefaultModes(), "event-sourced": eventSourced(t)}
	for name, m := range modes {
		t.Run(name, func(t *testing.T) { test(t, newModeFixture(t, m)) })
	}
}

// newModeFixture is newFixture with the command service in the given modes.
func newModeFixture(t testing.TB, modes map[string]dispatch.Mode) *fixture {
	t.Helper()
	f := newFixture(t)
	f.h = f.handler(command.New(f.store, f.tmpl).WithModes(modes), f.store)
	return f
}

func withdraw(id string, amount int, ref string) string {
	return fmt.Sprintf(`{"type":"WithdrawFunds","aggregateId":%q,"data":{"amount":%d,"currency":"EUR","reference":%q}}`, id, amount, ref)
}

// history is the command sequence both modes run: an opening and 60
// movements, past the snapshot at version 50.
func history(id string) []string {
	cmds := []string{openAccount(id)}
	for i := 1; i <= 60; i++ {
		if i%3 == 0 {
			cmds = append(cmds, withdraw(id, 50+i, fmt.Sprintf("w%d", i)))
		} else {
			cmds = append(cmds, deposit(id, 100+i, fmt.Sprintf("d%d", i)))
		}
	}
	return cmds
}

// sks returns the sort keys of an aggregate's items, in order.
func (f *fixture) sks(id string) []string {
	f.t.Helper()
	var out []string
	p := dynamodb.NewQueryPaginator(f.db, &dynamodb.QueryInput{
		TableName: aws.String(f.table), ConsistentRead: aws.Bool(true),
		KeyConditionExpression:    aws.String("pk = :pk"),
		ExpressionAttributeValues: map[string]types.AttributeValue{":pk": &types.AttributeValueMemberS{Value: "AGG#" + id}},
	})
	for p.HasMorePages() {
		page, err := p.NextPage(context.Background())
		if err != nil {
			f.t.Fatal(err)
		}
		for _, it := range page.Items {
			out = append(out, it["sk"].(*types.AttributeValueMemberS).Value)
		}
	}
	return out
}

func countPrefix(sks []string, prefix string) int {
	n := 0
	for _, sk := range sks {
		if strings.HasPrefix(sk, prefix) {
			n++
		}
	}
	return n
}

func TestEventSourcedAccountsFoldToTheOutboxModesState(t *testing.T) {
	es := newModeFixture(t, eventSourced(t))
	ob := newFixture(t)
	esID, obID := newID("es"), newID("ob")
	for _, c := range history(esID) {
		es.mustAccept(c)
	}
	for _, c := range history(obID) {
		ob.mustAccept(c)
	}

	sks := es.sks(esID)
	if n := countPrefix(sks, "STATE"); n != 0 {
		t.Errorf("%d STATE items, want none in event-sourced mode", n)
	}
	if n := countPrefix(sks, "EVENT#"); n != 61 {
		t.Errorf("%d EVENT items, want 61", n)
	}
	if n := countPrefix(sks, "OUTBOX#"); n != 61 {
		t.Errorf("%d OUTBOX items (emails), want 61", n)
	}
	if want := fmt.Sprintf("SNAPSHOT#%020d", dispatch.SnapshotEvery); countPrefix(sks, "SNAPSHOT#") != 1 || !contains(sks, want) {
		t.Errorf("snapshots %v, want one: %s", filter(sks, "SNAPSHOT#"), want)
	}
	h, err := dynamo.New(es.db, es.table, 8).LoadHistory(context.Background(), esID)
	if err != nil {
		t.Fatal(err)
	}
	if h.Snapshot == nil || h.Snapshot.Version != dispatch.SnapshotEvery || len(h.Events) != 61-dispatch.SnapshotEvery || h.Events[0].Version != dispatch.SnapshotEvery+1 {
		t.Errorf("LoadHistory read snapshot %+v and %d events; want the version %d snapshot and the %d events after it", h.Snapshot, len(h.Events), dispatch.SnapshotEvery, 61-dispatch.SnapshotEvery)
	}

	resp, esBody := es.do(es.get("/v1/aggregates/"+esID, esID, nil))
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("GET event-sourced: %d %s", resp.StatusCode, resp.Body)
	}
	resp, obBody := ob.do(ob.get("/v1/aggregates/"+obID, obID, nil))
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("GET outbox: %d %s", resp.StatusCode, resp.Body)
	}
	for _, k := range []string{"type", "version", "data"} {
		if !reflect.DeepEqual(esBody[k], obBody[k]) {
			t.Errorf("%s: event-sourced %v, outbox %v", k, esBody[k], obBody[k])
		}
	}
	if esBody["version"] != float64(61) || esBody["createdAt"] == nil || esBody["updatedAt"] == nil {
		t.Errorf("event-sourced aggregate %v: want version 61 with its timestamps", esBody)
	}
	if d, _ := esBody["data"].(map[string]any); d["email"] != "ada@example.com" || d["balance"] == nil {
		t.Errorf("folded data %v: want the owner's email and the balance", esBody["data"])
	}
}

func TestEventSourcedHistoryIsPagedAndOutboxModeHasNone(t *testing.T) {
	f := newModeFixture(t, eventSourced(t))
	id := newID("hist")
	cmds := history(id)[:7]
	for _, c := range cmds {
		f.mustAccept(c)
	}
	var got []map[string]any
	cursor, pages := "", 0
	for {
		q := map[string]string{"limit": "3"}
		if cursor != "" {
			q["cursor"] = cursor
		}
		resp, page := f.do(f.events(id, q))
		if resp.StatusCode != http.StatusOK {
			t.Fatalf("events: %d %s", resp.StatusCode, resp.Body)
		}
		pages++
		for _, e := range page["events"].([]any) {
			got = append(got, e.(map[string]any))
		}
		if cursor, _ = page["nextCursor"].(string); cursor == "" {
			break
		}
	}
	if len(got) != 7 || pages < 3 {
		t.Fatalf("%d events in %d pages, want 7 in at least 3", len(got), pages)
	}
	for i, e := range got {
		if e["version"] != float64(i+1) || e["status"] != "PENDING" || e["eventId"] == "" {
			t.Errorf("event %d: %v, want version %d, PENDING, with an id", i, e, i+1)
		}
	}
	if got[0]["eventType"] != "AccountOpened" || got[1]["eventType"] != "FundsDeposited" || got[3]["eventType"] != "FundsWithdrawn" {
		t.Errorf("event types %v %v %v", got[0]["eventType"], got[1]["eventType"], got[3]["eventType"])
	}
	// The owner's address is personal data: the fold reads it from the
	// EVENT item's private data; the published event does not carry it.
	if d, _ := got[0]["data"].(map[string]any); d["owner"] != "Ada Lovelace" || d["email"] != nil {
		t.Errorf("AccountOpened data %v: want the owner and no email", got[0]["data"])
	}

	t.Run("refuses a cursor of another route", func(t *testing.T) {
		resp, _ := f.do(f.events(id, map[string]string{"cursor": "T1VUQk9YIzE"}))
		if resp.StatusCode != http.StatusBadRequest {
			t.Errorf("status %d, want 400: %s", resp.StatusCode, resp.Body)
		}
	})
	t.Run("answers an empty list for an outbox-mode aggregate", func(t *testing.T) {
		ob := newFixture(t)
		oid := newID("obhist")
		ob.mustAccept(openAccount(oid))
		resp, page := ob.do(ob.events(oid, nil))
		if resp.StatusCode != http.StatusOK || len(page["events"].([]any)) != 0 {
			t.Errorf("status %d body %s: want 200 and no events", resp.StatusCode, resp.Body)
		}
	})
}

func TestEventSourcedIdempotencyReplaysAndWritesNothing(t *testing.T) {
	f := newModeFixture(t, eventSourced(t))
	id := newID("esidem")
	f.mustAccept(openAccount(id))
	key := func(r *events.APIGatewayV2HTTPRequest) { r.Headers["idempotency-key"] = "key-" + id }
	resp, first := f.do(f.post(deposit(id, 100, "once"), key))
	if resp.StatusCode != http.StatusAccepted || first["replayed"] != false {
		t.Fatalf("first: %d %s", resp.StatusCode, resp.Body)
	}
	before, records := f.count(id), f.idempotencyRecords()
	resp, again := f.do(f.post(deposit(id, 100, "once"), key))
	if resp.StatusCode != http.StatusAccepted || again["replayed"] != true || again["version"] != first["version"] ||
		!reflect.DeepEqual(again["eventIds"], first["eventIds"]) {
		t.Errorf("repeat: %d %s, want the first answer (%v) replayed", resp.StatusCode, resp.Body, first)
	}
	if after := f.count(id); after != before || f.idempotencyRecords() != records {
		t.Errorf("the repeat wrote: %d items before, %d after", before, after)
	}
	_, agg := f.do(f.get("/v1/aggregates/"+id, id, nil))
	if d, _ := agg["data"].(map[string]any); agg["version"] != float64(2) || d["balance"] != float64(100) {
		t.Errorf("aggregate %v: want version 2 with balance 100 (one deposit)", agg)
	}
}

// racing is a store whose first commit loses to a concurrent command
// written just before it, for the same version.
type racing struct {
	*dynamo.Store
	calls  int
	before func()
}

func (r *racing) Commit(ctx context.Context, c dispatch.Commit) (dispatch.CommitResult, error) {
	r.calls++
	if r.calls == 1 {
		r.before()
	}
	return r.Store.Commit(ctx, c)
}

func TestEventSourcedConcurrentCommandConflictsAndIsRetried(t *testing.T) {
	f := newModeFixture(t, eventSourced(t))
	id := newID("esrace")
	f.mustAccept(openAccount(id))
	tmpl, err := emails.Load()
	if err != nil {
		t.Fatal(err)
	}
	store := dynamo.New(f.db, f.table, 8)
	other := command.New(store, tmpl).WithModes(eventSourced(t))
	r := &racing{Store: store}
	r.before = func() {
		if _, err := other.Execute(context.Background(), command.Request{Body: []byte(deposit(id, 30, "other")), Caller: dispatch.Caller{ID: "test", Scope: "test", All: true}, IdempotencyKey: "other-" + id}); err != nil {
			t.Fatalf("the concurrent command: %v", err)
		}
	}
	svc := command.New(r, tmpl).WithModes(eventSourced(t))
	res, err := svc.Execute(context.Background(), command.Request{Body: []byte(deposit(id, 70, "mine")), Caller: dispatch.Caller{ID: "test", Scope: "test", All: true}, IdempotencyKey: "mine-" + id})
	if err != nil {
		t.Fatal(err)
	}
	if res.Attempts != 2 || res.Version != 3 {
		t.Errorf("attempts %d version %d: want the conflict on version 2 retried as version 3", res.Attempts, res.Version)
	}
	a, err := svc.Read(context.Background(), id)
	if err != nil {
		t.Fatal(err)
	}
	if a.Version != 3 || fmt.Sprint(a.Data["balance"]) != "100" {
		t.Errorf("aggregate version %d data %v: want version 3 with both deposits (balance 100)", a.Version, a.Data)
	}
}

func (f *fixture) events(id string, q map[string]string) events.APIGatewayV2HTTPRequest {
	req := f.get("/v1/aggregates/"+id+"/events", id, q)
	req.RouteKey = apigw.RouteAggregateEvents
	return req
}

func contains(list []string, s string) bool {
	for _, x := range list {
		if x == s {
			return true
		}
	}
	return false
}

func filter(list []string, prefix string) []string {
	var out []string
	for _, x := range list {
		if strings.HasPrefix(x, prefix) {
			out = append(out, x)
		}
	}
	return out
}

// The order check reads one index of an aggregate's undelivered items: its
// EVENT and OUTBOX items must sort there by version together, so that an
// email of version 1 comes before the event of version 2.
func TestEventSourcedEventsSortWithTheEmailsByVersion(t *testing.T) {
	f := newModeFixture(t, eventSourced(t))
	id := newID("esorder")
	f.mustAccept(openAccount(id))
	f.mustAccept(deposit(id, 100, "r1"))
	store := dynamo.New(f.db, f.table, 8)
	ctx := context.Background()
	steps := []struct {
		deliver dispatch.OutboxKey
		want    dispatch.OutboxKey
	}{
		{dispatch.OutboxKey{AggregateID: id, Version: 1, Seq: 0, History: true}, dispatch.OutboxKey{AggregateID: id, Version: 1, Seq: 1}},
		{dispatch.OutboxKey{AggregateID: id, Version: 1, Seq: 1}, dispatch.OutboxKey{AggregateID: id, Version: 2, Seq: 0, History: true}},
		{dispatch.OutboxKey{AggregateID: id, Version: 2, Seq: 0, History: true}, dispatch.OutboxKey{AggregateID: id, Version: 2, Seq: 1}},
	}
	for _, st := range steps {
		if err := store.MarkDelivered(ctx, st.deliver, "", time.Now(), time.Hour); err != nil {
			t.Fatalf("deliver %+v: %v", st.deliver, err)
		}
		got, ok, err := store.FirstUnsettled(ctx, id)
		if err != nil || !ok || got != st.want {
			t.Errorf("after delivering %+v: first unsettled %+v (%v, %v), want %+v", st.deliver, got, ok, err, st.want)
		}
	}
}
