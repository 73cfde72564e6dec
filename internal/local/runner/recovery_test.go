package runner_test

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"sort"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/aws/aws-lambda-go/events"
	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb"
	ddbtypes "github.com/aws/aws-sdk-go-v2/service/dynamodb/types"

	"github.com/dispatcher-dev/dispatcher/internal/dispatch"
	"github.com/dispatcher-dev/dispatcher/internal/dynamo"
	"github.com/dispatcher-dev/dispatcher/internal/local/runner"
	"github.com/dispatcher-dev/dispatcher/internal/testkit/flowtest"
	"github.com/dispatcher-dev/dispatcher/internal/testkit/testenv"
)

// dyingRelay is the relay as a kill -9 leaves it: in the first invocation
// that holds both watched aggregates' first emails, it claims a's (as the
// relay does before it sends), had parked b's (FAILED), and dies before
// sending anything: the runtime exits.
type dyingRelay struct {
	inner runner.Function
	store *dynamo.Store
	lease time.Duration
	a, b  string

	mu     sync.Mutex
	killed time.Time
}

func (d *dyingRelay) Invoke(ctx context.Context, reqID string, payload []byte) ([]byte, error) {
	d.mu.Lock()
	defer d.mu.Unlock()
	if !d.killed.IsZero() {
		return d.inner.Invoke(ctx, reqID, payload)
	}
	var ev events.DynamoDBEvent
	if err := json.Unmarshal(payload, &ev); err != nil {
		return nil, err
	}
	emails := map[string]dispatch.OutboxKey{}
	for _, rec := range ev.Records {
		if it, ok, err := dynamo.StreamRecord(rec); ok && err == nil && it.Target == dispatch.TargetEmail && it.Version == 1 {
			emails[it.AggregateID] = it.Key()
		}
	}
	ka, okA := emails[d.a]
	kb, okB := emails[d.b]
	if !okA || !okB {
		return d.inner.Invoke(ctx, reqID, payload)
	}
	now := time.Now()
	if err := d.store.Claim(ctx, ka, "relay-killed", now, now.Add(d.lease)); err != nil {
		return nil, err
	}
	if err := d.store.MarkFailed(ctx, kb, "", "MessageRejected"); err != nil {
		return nil, err
	}
	d.killed = time.Now()
	return nil, &runner.FunctionError{Type: "Runtime.ExitError", Message: "signal: killed"}
}

func (d *dyingRelay) killedAt() time.Time {
	d.mu.Lock()
	defer d.mu.Unlock()
	return d.killed
}

// Recovery needs no person (guarantee 10): a relay killed while it held an
// email's lease leaves that email and every later version of its aggregate
// undelivered; the mapping's retries meet the lease and give up on those
// batches. The stream recovery delivers them all, in order, within the
// lease plus 2 minutes of the kill, with no replay run by anyone; a FAILED
// email in the same batches is not sent (guarantee 7).
func TestARelayKilledHoldingAnEmailLeaseIsRecoveredInOrderWithNoPerson(t *testing.T) {
	const lease = 3 * time.Second
	s := freshStack(t)
	fns := realFunctionsWith(t, s, map[string]string{"EMAIL_LEASE_SECONDS": strconv.Itoa(int(lease / time.Second))})
	a, b := fmt.Sprintf("acc-a-%d", time.Now().UnixNano()), fmt.Sprintf("acc-b-%d", time.Now().UnixNano())
	relay := &dyingRelay{inner: fns["StreamRelayFunction"], store: dynamo.New(dynamodb.NewFromConfig(testenv.Get(t).AWS), s.Physical("OutboxTable"), 8), lease: lease, a: a, b: b}
	fns["StreamRelayFunction"] = relay
	// One lane and a window long enough that both openings share the batch
	// the relay dies in; the template's retries (5) and bisection.
	r := start(t, s, fns, func(m *runner.StreamMapping) { m.BatchingWindow, m.ParallelizationFactor = 2*time.Second, 1 })

	post := func(body string) {
		t.Helper()
		if resp, out := do(t, signed(t, http.MethodPost, r.URL()+"/v1/commands", body)); resp.StatusCode != http.StatusAccepted {
			t.Fatalf("POST %s: %d %s", body, resp.StatusCode, out)
		}
	}
	post(openAccount(a, a+"@example.com"))
	post(openAccount(b, b+"@example.com"))
	eventually(t, 20*time.Second, "the relay killed holding a's email", func() bool { return !relay.killedAt().IsZero() })
	// Later versions of a, committed after the crash: they wait behind the
	// lease, and the mapping gives up on their batches too.
	for i := 1; i <= 2; i++ {
		post(flowtest.Deposit(a, 100*i))
	}
	killed := relay.killedAt()
	bound := lease + 2*time.Minute
	eventually(t, bound+5*time.Second, "every item of a DELIVERED", func() bool {
		st := outboxStatuses(t, r.URL(), a)
		return len(st) == 6 && allDelivered(st)
	})
	took := time.Since(killed)
	t.Logf("from the kill to a's last item delivered: %s (lease %s, bound %s)", took.Round(time.Millisecond), lease, bound)
	if took > bound {
		t.Errorf("a's last item delivered %s after the kill, past the bound (lease + 2 min = %s)", took, bound)
	}
	if took < lease-time.Second {
		t.Errorf("a's items delivered %s after the kill, before the dead relay's %s lease lapsed", took, lease)
	}
	if st := r.Stats("StreamRelayFunction"); st.Discarded == 0 {
		t.Errorf("mapping stats %+v: the mapping never gave up on a batch, so the recovery was not what delivered", st)
	}

	// In order: a's events in its FIFO group, and its emails by the time
	// they were marked.
	var versions []string
	for _, m := range receiveAll(t, s.Physical("EventsQueue")) {
		if m.Attributes["MessageGroupId"] == a {
			versions = append(versions, fmt.Sprint(jsonOf(t, []byte(aws.ToString(m.Body)))["aggregateversion"]))
		}
	}
	if fmt.Sprint(versions) != "[1 2 3]" {
		t.Errorf("a's events arrived as versions %v, want [1 2 3]", versions)
	}
	items := tableItems(t, s, a)
	var marked []string
	for _, it := range items {
		if it["target"] == "email" {
			marked = append(marked, it["deliveredAt"]+" "+it["sk"])
		}
	}
	if !sort.StringsAreSorted(marked) || len(marked) != 3 {
		t.Errorf("a's emails marked %v, want versions 1, 2, 3 in time order", marked)
	}
	if n := emailsTo(t, a+"@example.com"); n != 3 {
		t.Errorf("%d emails to a, want 3 (one per version)", n)
	}

	// b's FAILED email waits for a person: never sent, still FAILED.
	time.Sleep(time.Second)
	if n := emailsTo(t, b+"@example.com"); n != 0 {
		t.Errorf("%d emails to b, whose email is FAILED: nothing scheduled may re-send it", n)
	}
	for _, it := range tableItems(t, s, b) {
		if it["target"] == "email" && it["status"] != "FAILED" {
			t.Errorf("b's email is %s, want FAILED", it["status"])
		}
	}
	if n := len(receiveAll(t, s.Physical("StreamRecoveryQueue"))) + len(receiveAll(t, s.Physical("DeadLetterQueue"))); n != 0 {
		t.Errorf("%d messages left in the recovery queue and the DLQ, want none", n)
	}
}

// tableItems reads an aggregate's outbox items (string and number
// attributes), consistently.
func tableItems(t *testing.T, s interface{ Physical(string) string }, aggregate string) []map[string]string {
	t.Helper()
	db := dynamodb.NewFromConfig(testenv.Get(t).AWS)
	out, err := db.Query(context.Background(), &dynamodb.QueryInput{
		TableName: aws.String(s.Physical("OutboxTable")), ConsistentRead: aws.Bool(true),
		KeyConditionExpression: aws.String("pk = :pk AND begins_with(sk, :o)"),
		ExpressionAttributeValues: map[string]ddbtypes.AttributeValue{
			":pk": &ddbtypes.AttributeValueMemberS{Value: "AGG#" + aggregate}, ":o": &ddbtypes.AttributeValueMemberS{Value: "OUTBOX#"},
		},
	})
	if err != nil {
		t.Fatal(err)
	}
	var items []map[string]string
	for _, it := range out.Items {
		items = append(items, flowtest.Scalars(it))
	}
	return items
}
