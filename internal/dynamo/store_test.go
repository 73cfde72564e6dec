package dynamo_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb/types"

	"github.com/dispatcher-dev/dispatcher/internal/dispatch"
	"github.com/dispatcher-dev/dispatcher/internal/dynamo"
	"github.com/dispatcher-dev/dispatcher/internal/testkit/faults"
	"github.com/dispatcher-dev/dispatcher/internal/testkit/testenv"
)

func TestMain(m *testing.M) { testenv.Main(m) }

type fixture struct {
	store *dynamo.Store
	db    *dynamodb.Client
	table string
}

func newFixture(t *testing.T) fixture {
	env := testenv.Get(t)
	db := dynamodb.NewFromConfig(env.AWS)
	table := env.Stack.Physical("OutboxTable")
	return fixture{store: dynamo.New(db, table, 8), db: db, table: table}
}

// commit builds a first commit of an aggregate with n outbox items whose
// payloads are payloadBytes long.
func commit(id string, n, payloadBytes int) dispatch.Commit {
	now := time.Now().UTC()
	c := dispatch.Commit{
		State:       dispatch.Aggregate{ID: id, Type: "Test", Version: 1, Data: map[string]any{"n": json.Number("1")}, CreatedAt: now, UpdatedAt: now},
		PrevVersion: 0,
		Idempotency: dispatch.Idempotency{Scope: "test", Key: "k-" + id, RequestHash: "h", Response: dispatch.Accepted{AggregateID: id, Version: 1}, CreatedAt: now, ExpiresAt: now.Add(time.Hour)},
	}
	payload, _ := json.Marshal(map[string]map[string]string{"data": {"pad": strings.Repeat("x", payloadBytes)}})
	for i := range n {
		c.Outbox = append(c.Outbox, dispatch.OutboxItem{
			AggregateID: id, AggregateType: "Test", Version: 1, Seq: i, EventID: dispatch.NewEventID(now),
			EventType: "T", Target: dispatch.TargetEvents, Payload: payload, Status: dispatch.Pending, CreatedAt: now,
		})
	}
	return c
}

func (f fixture) countAggregate(t *testing.T, id string) int {
	t.Helper()
	out, err := f.db.Query(context.Background(), &dynamodb.QueryInput{
		TableName: aws.String(f.table), ConsistentRead: aws.Bool(true),
		KeyConditionExpression:    aws.String("pk = :pk"),
		ExpressionAttributeValues: map[string]types.AttributeValue{":pk": &types.AttributeValueMemberS{Value: "AGG#" + id}},
	})
	if err != nil {
		t.Fatal(err)
	}
	return int(out.Count)
}

func TestCommitRefusesWhatDynamoDBWouldRefuse(t *testing.T) {
	f := newFixture(t)
	tests := []struct {
		name string
		c    dispatch.Commit
		want string
	}{
		{"refuses more than 100 actions in one transaction", commit(fmt.Sprintf("many-%d", time.Now().UnixNano()), 99, 10), "at most 100"},
		{"refuses an item over 400 KB", commit(fmt.Sprintf("big-%d", time.Now().UnixNano()), 1, dispatch.MaxItemBytes), "item limit of 400 KB"},
		{"refuses a transaction over 4 MB", commit(fmt.Sprintf("huge-%d", time.Now().UnixNano()), 12, 380<<10), "at most 4194304"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := f.store.Commit(context.Background(), tt.c)
			if dispatch.KindOf(err) != dispatch.TooLarge || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("err = %v, want a TooLarge error mentioning %q", err, tt.want)
			}
			if n := f.countAggregate(t, tt.c.State.ID); n != 0 {
				t.Errorf("%d items written", n)
			}
		})
	}
}

// An item the relay would park is refused with a 422's kind before
// anything is written, not committed to be parked later, and never a 500.
func TestCommitRefusesAnItemTheRelayWouldPark(t *testing.T) {
	f := newFixture(t)
	c := commit(fmt.Sprintf("park-%d", time.Now().UnixNano()), 1, 10)
	c.Outbox[0].Target, c.Outbox[0].EventType = dispatch.TargetEmail, "email.notification"
	c.Outbox[0].Payload = json.RawMessage(`{"to":["ada@example.com"],"template":"notification","subject":"Hi","text":"","html":""}`)
	_, err := f.store.Commit(context.Background(), c)
	if dispatch.KindOf(err) != dispatch.Unprocessable || !strings.Contains(err.Error(), "neither a text nor an HTML body") {
		t.Fatalf("err = %v, want Unprocessable naming the rule", err)
	}
	if n := f.countAggregate(t, c.State.ID); n != 0 {
		t.Errorf("%d items written", n)
	}
}

func TestCommitAtTheLimitsIsAccepted(t *testing.T) {
	f := newFixture(t)
	// 98 outbox items + state + idempotency record = exactly 100 actions.
	c := commit(fmt.Sprintf("edge-%d", time.Now().UnixNano()), dispatch.MaxTransactActions-2, 10)
	res, err := f.store.Commit(context.Background(), c)
	if err != nil {
		t.Fatal(err)
	}
	if n := f.countAggregate(t, c.State.ID); n != 1+len(c.Outbox) {
		t.Errorf("%d items, want %d", n, 1+len(c.Outbox))
	}
	// DynamoDB charges 2 WCU per transactional write of an item up to 1 KB;
	// DynamoDB Local undercounts transactions (it reports 4 WCU for any
	// number of plain items), so only the plumbing is checked here.
	if !testenv.Skip(t, testenv.MotoReturnsNoConsumedCapacity) && res.WriteUnits <= 0 {
		t.Errorf("consumed %.1f WCU: ReturnConsumedCapacity was not read", res.WriteUnits)
	}
}

func TestCommitConflicts(t *testing.T) {
	f := newFixture(t)
	ctx := context.Background()
	id := fmt.Sprintf("conf-%d", time.Now().UnixNano())
	first := commit(id, 1, 10)
	if _, err := f.store.Commit(ctx, first); err != nil {
		t.Fatal(err)
	}
	t.Run("a second first version is a version conflict", func(t *testing.T) {
		again := commit(id, 1, 10)
		again.Idempotency.Key = "other"
		_, err := f.store.Commit(ctx, again)
		if !errors.Is(err, dispatch.ErrVersionConflict) {
			t.Fatalf("err = %v, want ErrVersionConflict", err)
		}
	})
	t.Run("a used idempotency key is reported as such", func(t *testing.T) {
		next := commit(id, 1, 10)
		next.PrevVersion, next.State.Version = 1, 2
		for i := range next.Outbox {
			next.Outbox[i].Version = 2
		}
		_, err := f.store.Commit(ctx, next) // same key as the first commit
		if !errors.Is(err, dispatch.ErrKeyInUse) {
			t.Fatalf("err = %v, want ErrKeyInUse", err)
		}
	})
	if n := f.countAggregate(t, id); n != 2 {
		t.Errorf("%d items, want the first commit's 2", n)
	}
}

// A server-side failure that outlives the SDK's retries is Transient (the
// command answers 503 and retries with the same token), whatever code, if
// any, the 5xx carries; moto's HTML 500 under concurrent transactions found
// this, where the store had called anything unknown Internal (a 500).
func TestAServerFailureOfACommitIsTransient(t *testing.T) {
	f := newFixture(t)
	for _, fault := range []faults.Fault{
		{Status: 500, Code: "InternalFailure", Message: "internal failure"},
		{Status: 502, Code: "BadGateway", Message: "no code DynamoDB documents"},
	} {
		t.Run(fault.Code, func(t *testing.T) {
			fault.Match = faults.Target("TransactWriteItems")
			tr := faults.New(http.DefaultTransport)
			tr.Add(fault)
			cfg := testenv.Get(t).AWS.Copy()
			cfg.HTTPClient = tr
			store := dynamo.New(dynamodb.NewFromConfig(cfg), f.table, 8)
			c := commit(fmt.Sprintf("fail-%d", time.Now().UnixNano()), 1, 10)
			_, err := store.Commit(context.Background(), c)
			if k := dispatch.KindOf(err); k != dispatch.Transient {
				t.Errorf("kind %v (%v), want Transient", k, err)
			}
			if n := f.countAggregate(t, c.State.ID); n != 0 {
				t.Errorf("%d items written, want none", n)
			}
		})
	}
}

func TestStateNumbersSurviveExactly(t *testing.T) {
	f := newFixture(t)
	id := fmt.Sprintf("num-%d", time.Now().UnixNano())
	c := commit(id, 0, 0)
	c.State.Data = map[string]any{"balance": json.Number("999999999999999999"), "rate": json.Number("0.1"), "nested": map[string]any{"list": []any{json.Number("1"), "a", true, nil}}}
	if _, err := f.store.Commit(context.Background(), c); err != nil {
		t.Fatal(err)
	}
	a, err := f.store.Load(context.Background(), id)
	if err != nil {
		t.Fatal(err)
	}
	got, _ := json.Marshal(a.Data)
	want := `{"balance":999999999999999999,"nested":{"list":[1,"a",true,null]},"rate":0.1}`
	if string(got) != want {
		t.Errorf("data = %s, want %s", got, want)
	}
	if a.Version != 1 || a.Type != "Test" {
		t.Errorf("loaded %+v", a)
	}
}

func TestIdempotencyRecordIsReadBackUntilItExpires(t *testing.T) {
	f := newFixture(t)
	ctx := context.Background()
	live := commit(fmt.Sprintf("idem-%d", time.Now().UnixNano()), 0, 0)
	live.Idempotency.Response.EventIDs = []string{"e1"}
	expired := commit(fmt.Sprintf("idem-old-%d", time.Now().UnixNano()), 0, 0)
	expired.Idempotency.ExpiresAt = time.Now().Add(-time.Minute)
	for _, c := range []dispatch.Commit{live, expired} {
		if _, err := f.store.Commit(ctx, c); err != nil {
			t.Fatal(err)
		}
	}
	rec, err := f.store.Idempotency(ctx, "test", live.Idempotency.Key)
	if err != nil || rec == nil || rec.RequestHash != "h" || len(rec.Response.EventIDs) != 1 {
		t.Fatalf("live record = %+v, %v", rec, err)
	}
	if rec, err := f.store.Idempotency(ctx, "test", expired.Idempotency.Key); err != nil || rec != nil {
		t.Errorf("an expired record (DynamoDB deletes lazily) must read as absent: %+v, %v", rec, err)
	}
	// A new command may reuse the expired key: the lingering record is replaced.
	reuse := commit(fmt.Sprintf("idem-new-%d", time.Now().UnixNano()), 0, 0)
	reuse.Idempotency.Key = expired.Idempotency.Key
	if _, err := f.store.Commit(ctx, reuse); err != nil {
		t.Fatalf("reusing an expired key: %v", err)
	}
	// The TTL attribute must be a Number of epoch seconds, or TTL never fires.
	out, err := f.db.GetItem(ctx, &dynamodb.GetItemInput{TableName: aws.String(f.table), Key: map[string]types.AttributeValue{
		"pk": &types.AttributeValueMemberS{Value: "IDEMP#test#" + live.Idempotency.Key}, "sk": &types.AttributeValueMemberS{Value: "IDEMP"},
	}})
	if err != nil {
		t.Fatal(err)
	}
	if _, ok := out.Item["expiresAt"].(*types.AttributeValueMemberN); !ok {
		t.Errorf("expiresAt is %T, want a Number", out.Item["expiresAt"])
	}
}

func TestARetriedCommitWithTheSameTokenAppliesOnce(t *testing.T) {
	f := newFixture(t)
	c := commit(fmt.Sprintf("tok-%d", time.Now().UnixNano()), 2, 10)
	c.Token = fmt.Sprintf("token-%d", time.Now().UnixNano())
	if _, err := f.store.Commit(context.Background(), c); err != nil {
		t.Fatal(err)
	}
	// The SDK resends the same input after a lost response: DynamoDB must
	// recognise the token and write nothing again.
	if testenv.Skip(t, testenv.MotoIgnoresClientRequestToken) {
		return
	}
	if _, err := f.store.Commit(context.Background(), c); err != nil {
		t.Fatalf("the retry with the same ClientRequestToken failed: %v", err)
	}
	if n := f.countAggregate(t, c.State.ID); n != 3 {
		t.Errorf("%d items, want 3", n)
	}
}

func TestListOutboxPagesInVersionOrder(t *testing.T) {
	f := newFixture(t)
	id := fmt.Sprintf("page-%d", time.Now().UnixNano())
	if _, err := f.store.Commit(context.Background(), commit(id, 5, 10)); err != nil {
		t.Fatal(err)
	}
	var seqs []int
	cursor := ""
	pages := 0
	for {
		items, next, err := f.store.ListOutbox(context.Background(), id, 2, cursor)
		if err != nil {
			t.Fatal(err)
		}
		pages++
		for _, it := range items {
			seqs = append(seqs, it.Seq)
			if it.Status != dispatch.Pending || it.EventID == "" {
				t.Errorf("item %+v", it)
			}
		}
		if next == "" || pages > 10 {
			break
		}
		cursor = next
	}
	if fmt.Sprint(seqs) != "[0 1 2 3 4]" {
		t.Errorf("seqs = %v", seqs)
	}
}
