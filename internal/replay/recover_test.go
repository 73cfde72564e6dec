package replay_test

import (
	"context"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-lambda-go/events"
	ddbtypes "github.com/aws/aws-sdk-go-v2/service/dynamodb/types"

	"github.com/dispatcher-dev/dispatcher/internal/app/deliveryfn"
	"github.com/dispatcher-dev/dispatcher/internal/dispatch"
	"github.com/dispatcher-dev/dispatcher/internal/dynamo"
	"github.com/dispatcher-dev/dispatcher/internal/testkit/faults"
	"github.com/dispatcher-dev/dispatcher/internal/testkit/flowtest"
)

// recoveryLease is the email lease of these tests: short, so that a lease
// left by a dead relay lapses within them.
const recoveryLease = 2 * time.Second

// deadRelayFlow commits an account a (opened, then a deposit: two events,
// two emails) and an account b (opened), then leaves what a relay that died
// mid-batch leaves: a's first email claimed under a lease that runs for
// lease, never sent; b's email FAILED (parked before the crash).
// It returns the on-failure record of the batch the mapping gave up on, as
// the recovery queue hands it over, and when the lease lapses.
func deadRelayFlow(t *testing.T, f *flowtest.Fixture, a, b string, lease time.Duration) (events.SQSEvent, time.Time) {
	t.Helper()
	f.Command(flowtest.Open(a, a+"@example.com"))
	f.Command(flowtest.Open(b, b+"@example.com"))
	f.Command(flowtest.Deposit(a, 42))
	store := dynamo.New(f.DB, f.Table, 8)
	ctx := context.Background()
	now := time.Now()
	for _, it := range append(f.Items(a), f.Items(b)...) {
		if flowtest.S(it, "target") != string(dispatch.TargetEmail) || !strings.HasPrefix(flowtest.S(it, "sk"), "OUTBOX#00000000000000000001#") {
			continue
		}
		k := outboxKey(t, it)
		var err error
		if k.AggregateID == a {
			err = store.Claim(ctx, k, "relay-killed", now, now.Add(lease))
		} else {
			err = store.MarkFailed(ctx, k, "", "MessageRejected")
		}
		if err != nil {
			t.Fatal(err)
		}
	}
	batch := f.Batch(a, b)
	shard := f.ShardOf(batch.Records[0].Change.SequenceNumber)
	ev := events.SQSEvent{Records: []events.SQSMessage{{MessageId: "m-1", ReceiptHandle: "r-1", Body: onFailure(batch, shard), EventSource: "aws:sqs",
		Attributes: map[string]string{"SentTimestamp": "1700000000000"}}}}
	return ev, now.Add(lease)
}

// outboxKey reads an outbox item's key from its sort key
// (OUTBOX#<version>#<n>).
func outboxKey(t *testing.T, it map[string]ddbtypes.AttributeValue) dispatch.OutboxKey {
	t.Helper()
	parts := strings.Split(flowtest.S(it, "sk"), "#")
	v, err1 := strconv.ParseInt(parts[1], 10, 64)
	n, err2 := strconv.Atoi(parts[2])
	if len(parts) != 3 || err1 != nil || err2 != nil {
		t.Fatalf("sort key %q", flowtest.S(it, "sk"))
	}
	return dispatch.OutboxKey{AggregateID: strings.TrimPrefix(flowtest.S(it, "pk"), "AGG#"), Version: v, Seq: n}
}

func TestTheRecoveryWaitsOutADeadRelaysLeaseAndDeliversInOrderButNeverAFailedItem(t *testing.T) {
	f := flowtest.New(t, func(c *deliveryfn.Config) { c.Delivery.Lease = recoveryLease })
	a, b := flowtest.Unique("rec-a"), flowtest.Unique("rec-b")
	ev, lapses := deadRelayFlow(t, f, a, b, recoveryLease)

	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	resp, err := f.Replay.Recover(ctx, ev)
	if err != nil || len(resp.BatchItemFailures) != 0 {
		t.Fatalf("recover: %v, failures %v\nlogs:\n%s", err, resp.BatchItemFailures, f.Logs)
	}
	done := time.Now()
	if done.Before(lapses) {
		t.Errorf("settled at %s, before the dead relay's lease lapsed (%s): an email was taken from under a lease", done.Format(time.RFC3339Nano), lapses.Format(time.RFC3339Nano))
	}
	// Held at most one poll after the lapse (and the bound of guarantee 10
	// is the lease plus 2 minutes).
	if late := done.Sub(lapses); late > 10*time.Second {
		t.Errorf("settled %s after the lease lapsed, want within a poll (5 s) and the sends", late)
	}
	var emailsAt []string
	for _, it := range f.Items(a) {
		if st := flowtest.S(it, "status"); st != "DELIVERED" {
			t.Errorf("%s/%s is %s, want DELIVERED", a, flowtest.S(it, "sk"), st)
		}
		if flowtest.S(it, "target") == "email" {
			emailsAt = append(emailsAt, flowtest.S(it, "sk")+" "+flowtest.S(it, "deliveredAt"))
		}
	}
	if len(emailsAt) != 2 || strings.Fields(emailsAt[0])[1] > strings.Fields(emailsAt[1])[1] {
		t.Errorf("emails of %s delivered at %v, want version 1 before version 2", a, emailsAt)
	}
	if n := f.EmailsTo(a + "@example.com"); n != 2 {
		t.Errorf("%d emails to %s, want 2 (one each)", n, a)
	}
	if n := f.EmailsTo(b + "@example.com"); n != 0 {
		t.Errorf("%d emails to %s, whose email is FAILED: nothing scheduled may re-send it", n, b)
	}
	for _, it := range f.Items(b) {
		want := "DELIVERED"
		if flowtest.S(it, "target") == "email" {
			want = "FAILED"
		}
		if st := flowtest.S(it, "status"); st != want {
			t.Errorf("%s/%s is %s, want %s", b, flowtest.S(it, "sk"), st, want)
		}
	}
}

// A record the recovery cannot settle before its deadline (the lease
// outlasts the invocation) is reported failed, to come back; nothing behind
// the held email overtakes it meanwhile.
func TestTheRecoveryReportsARecordItCannotSettleInTime(t *testing.T) {
	f := flowtest.New(t, func(c *deliveryfn.Config) { c.Delivery.Lease = recoveryLease })
	a, b := flowtest.Unique("rec-a"), flowtest.Unique("rec-b")
	// The dead relay's lease outlasts the invocation however slow the
	// backend: a 2 s lease could lapse during the setup on a loaded moto run
	// (seen: the record settled, nothing reported failed).
	ev, _ := deadRelayFlow(t, f, a, b, time.Minute)
	t.Cleanup(func() {
		// Give the email back, as a lapsed lease would: the tests of this
		// package share a table, and a sweep elsewhere must not meet a
		// lease that outlives this test.
		store := dynamo.New(f.DB, f.Table, 8)
		for _, it := range f.Items(a) {
			if flowtest.S(it, "status") == "SENDING" {
				if err := store.Release(context.Background(), outboxKey(t, it), "relay-killed", ""); err != nil {
					t.Error(err)
				}
			}
		}
	})

	// Less than the 5 s the recovery keeps to answer: no wait fits.
	ctx, cancel := context.WithTimeout(context.Background(), 5500*time.Millisecond)
	defer cancel()
	resp, err := f.Replay.Recover(ctx, ev)
	if err != nil || len(resp.BatchItemFailures) != 1 || resp.BatchItemFailures[0].ItemIdentifier != "m-1" {
		t.Fatalf("recover: %v, failures %v; want m-1 reported failed\nlogs:\n%s", err, resp.BatchItemFailures, f.Logs)
	}
	for _, it := range f.Items(a) {
		if v2 := strings.HasPrefix(flowtest.S(it, "sk"), "OUTBOX#00000000000000000002#"); v2 && flowtest.S(it, "status") == "DELIVERED" {
			t.Errorf("%s/%s DELIVERED while version 1's email was held", a, flowtest.S(it, "sk"))
		}
	}
	if n := f.EmailsTo(a + "@example.com"); n != 0 {
		t.Errorf("%d emails to %s while the dead relay's lease held, want 0", n, a)
	}
}

// With sending paused, waiting within the invocation cannot help: the
// recovery answers at once, the record reported failed, the email released
// for a later try, not parked.
func TestTheRecoveryDoesNotWaitOutSendingPaused(t *testing.T) {
	f := flowtest.New(t, nil)
	id := flowtest.Unique("rec-paused")
	f.Command(flowtest.Open(id, id+"@example.com"))
	batch := f.Batch(id)
	ev := events.SQSEvent{Records: []events.SQSMessage{{MessageId: "m-1", ReceiptHandle: "r-1", EventSource: "aws:sqs",
		Body: onFailure(batch, f.ShardOf(batch.Records[0].Change.SequenceNumber))}}}
	f.Faults.Add(faults.Fault{Match: faults.Path("/v2/email/outbound-emails"), Status: 400, Code: "SendingPausedException", Message: "sending paused"})

	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	start := time.Now()
	resp, err := f.Replay.Recover(ctx, ev)
	if err != nil || len(resp.BatchItemFailures) != 1 {
		t.Fatalf("recover: %v, failures %v; want the record reported failed\nlogs:\n%s", err, resp.BatchItemFailures, f.Logs)
	}
	if took := time.Since(start); took > 10*time.Second {
		t.Errorf("answered after %s: it waited for a pause that polling cannot end", took.Round(time.Millisecond))
	}
	for _, it := range f.Items(id) {
		if flowtest.S(it, "target") == "email" && flowtest.S(it, "status") != "PENDING" {
			t.Errorf("the email is %s, want PENDING (released for a later try, never parked for a pause)", flowtest.S(it, "status"))
		}
	}
}
