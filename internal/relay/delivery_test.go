package relay_test

import (
	"context"
	"fmt"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/aws/aws-lambda-go/events"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb/types"

	"github.com/dispatcher-dev/dispatcher/internal/app/deliveryfn"
	"github.com/dispatcher-dev/dispatcher/internal/delivery"
	"github.com/dispatcher-dev/dispatcher/internal/testkit/faults"
	"github.com/dispatcher-dev/dispatcher/internal/testkit/flowtest"
	"github.com/dispatcher-dev/dispatcher/internal/testkit/testenv"
)

func TestMain(m *testing.M) { testenv.Main(m) }

var (
	unique  = flowtest.Unique
	open    = flowtest.Open
	deposit = flowtest.Deposit
	s       = flowtest.S
)

func TestAMixedBatchIsDeliveredCompletelyInOrder(t *testing.T) {
	f := flowtest.New(t, nil)
	var aggs []string
	for i := range 3 {
		id := unique(fmt.Sprintf("mix%d", i))
		aggs = append(aggs, id)
		f.Command(open(id, id+"@example.com"))
		for n := 1; n <= 3; n++ {
			f.Command(deposit(id, n*100))
		}
	}
	ev := f.Batch(aggs...)
	if got := len(flowtest.OutboxRecords(ev)); got != 3*4*2 {
		t.Fatalf("%d outbox records in the stream, want 24", got)
	}
	if resp := f.Handle(ev); len(resp.BatchItemFailures) != 0 {
		t.Fatalf("failures %+v; logs:\n%s", resp.BatchItemFailures, f.Logs)
	}
	msgs := f.Drain(f.Events)
	if len(msgs) != 12 {
		t.Fatalf("%d events in the queue, want 12", len(msgs))
	}
	last := map[string]float64{}
	for _, m := range msgs {
		subj, _ := m.Body["subject"].(string)
		v, _ := m.Body["aggregateversion"].(float64)
		if m.GroupID != subj {
			t.Errorf("MessageGroupId %q, want the aggregate id %q", m.GroupID, subj)
		}
		if v <= last[subj] {
			t.Errorf("aggregate %s: version %v after %v: out of order", subj, v, last[subj])
		}
		last[subj] = v
		if m.Body["specversion"] != "1.0" || m.Body["id"] == "" || m.Body["type"] == "" || m.Body["source"] == "" || m.Body["data"] == nil {
			t.Errorf("not a CloudEvent: %v", m.Body)
		}
	}
	for _, id := range aggs {
		if n := f.EmailsTo(id + "@example.com"); n != 4 {
			t.Errorf("%s: %d emails in the SES store, want 4 (welcome + 3 receipts)", id, n)
		}
		for _, it := range f.Items(id) {
			if s(it, "status") != "DELIVERED" {
				t.Errorf("%s %s: status %s", id, s(it, "sk"), s(it, "status"))
			}
			if _, ok := it["expiresAt"].(*types.AttributeValueMemberN); !ok {
				t.Errorf("%s: delivered item has no numeric TTL", s(it, "sk"))
			}
			if _, ok := it["undeliveredShard"]; ok {
				t.Errorf("%s: delivered item still in the sparse index", s(it, "sk"))
			}
		}
	}

	t.Run("re-running the same batch sends nothing twice", func(t *testing.T) {
		if resp := f.Handle(ev); len(resp.BatchItemFailures) != 0 {
			t.Fatalf("failures %+v", resp.BatchItemFailures)
		}
		if again := f.Drain(f.Events); len(again) != 0 {
			t.Errorf("%d events sent again", len(again))
		}
		for _, id := range aggs {
			if n := f.EmailsTo(id + "@example.com"); n != 4 {
				t.Errorf("%s: %d emails after the rerun, want still 4", id, n)
			}
		}
	})
}

func TestThrottlingIsSurvivedWithoutLossOrDuplicateEmail(t *testing.T) {
	f := flowtest.New(t, nil)
	id := unique("throttle")
	f.Command(open(id, id+"@example.com"))
	f.Command(deposit(id, 5))
	f.Faults.Add(faults.Fault{Match: faults.Target("SendMessageBatch"), Times: 2, Status: 400, Code: "ThrottlingException", Message: "Rate exceeded"})
	f.Faults.Add(faults.Fault{Match: faults.Path("/v2/email/outbound-emails"), Times: 2, Status: 429, Code: "TooManyRequestsException", Message: "Maximum sending rate exceeded"})
	if resp := f.Handle(f.Batch(id)); len(resp.BatchItemFailures) != 0 {
		t.Fatalf("failures %+v; logs:\n%s", resp.BatchItemFailures, f.Logs)
	}
	if f.Faults.Injected() != 4 {
		t.Errorf("%d faults injected, want 4", f.Faults.Injected())
	}
	if got := len(f.Drain(f.Events)); got != 2 {
		t.Errorf("%d events, want 2", got)
	}
	if n := f.EmailsTo(id + "@example.com"); n != 2 {
		t.Errorf("%d emails, want exactly 2", n)
	}
}

func TestAPermanentRejectionParksOneItemAndTheRestIsDelivered(t *testing.T) {
	f := flowtest.New(t, nil)
	bad, good := unique("reject"), unique("fine")
	f.Command(open(bad, "blocked-"+bad+"@example.com"))
	f.Command(open(good, good+"@example.com"))
	// SES only: AccountOpened carries the address too, and SQS must take it.
	f.Faults.Add(faults.Fault{Match: faults.All(faults.Path("/v2/email/outbound-emails"), faults.BodyContains("blocked-"+bad)), Status: 400, Code: "MessageRejected", Message: "Email address is on the suppression list"})
	resp := f.Handle(f.Batch(bad, good))
	if len(resp.BatchItemFailures) != 0 {
		t.Fatalf("a parked item is done for the batch; failures %+v", resp.BatchItemFailures)
	}
	dlq := f.Drain(f.DLQ)
	if len(dlq) != 1 {
		t.Fatalf("%d DLQ messages, want 1", len(dlq))
	}
	p := dlq[0].Body
	if p["kind"] != delivery.ParkedKind || p["aggregateId"] != bad || p["reason"] != "MessageRejected" || p["attempts"] != float64(1) || p["traceparent"] == "" || p["seq"] != float64(1) {
		t.Errorf("parked message = %v", p)
	}
	if strings.Contains(fmt.Sprint(p), "@example.com") {
		t.Errorf("the DLQ message holds an address: %v", p)
	}
	for _, it := range f.Items(bad) {
		want := "DELIVERED"
		if strings.HasSuffix(s(it, "sk"), "#001") {
			want = "FAILED"
		}
		if s(it, "status") != want {
			t.Errorf("%s: %s, want %s (lastError %q)", s(it, "sk"), s(it, "status"), want, s(it, "lastError"))
		}
	}
	if n := f.EmailsTo(good + "@example.com"); n != 1 {
		t.Errorf("the other aggregate's email: %d, want 1", n)
	}
	if got := len(f.Drain(f.Events)); got != 2 {
		t.Errorf("%d events, want both", got)
	}
}

func TestTheFailureResponseNamesTheFirstFailedSequenceNumber(t *testing.T) {
	f := flowtest.New(t, func(c *deliveryfn.Config) { c.Delivery.MaxSendAttempts = 2 })
	id := unique("seq")
	f.Command(open(id, id+"@example.com"))
	f.Command(deposit(id, 7))
	ev := f.Batch(id)
	f.Faults.Add(faults.Fault{Match: faults.Target("SendMessageBatch"), Status: 500, Code: "InternalError", Message: "boom"})
	resp := f.Handle(ev)
	if len(resp.BatchItemFailures) != 1 {
		t.Fatalf("failures %+v, want exactly one entry", resp.BatchItemFailures)
	}
	var first string
	for _, r := range ev.Records {
		if r.EventName == "INSERT" && strings.HasPrefix(r.Change.Keys["sk"].String(), "OUTBOX#") && r.Change.NewImage["target"].String() == "events" {
			first = r.Change.SequenceNumber
			break
		}
	}
	if got := resp.BatchItemFailures[0].ItemIdentifier; got != first {
		t.Errorf("ItemIdentifier = %s, want the first event record's sequence number %s", got, first)
	}
	for _, it := range f.Items(id) {
		if s(it, "target") != "events" {
			continue
		}
		// The first event failed and carries its error; the aggregate's next
		// event was not attempted at all (order per aggregate).
		wantErr := strings.HasPrefix(s(it, "sk"), "OUTBOX#00000000000000000001#")
		if s(it, "status") != "PENDING" || (s(it, "lastError") != "") != wantErr {
			t.Errorf("event %s: status %s lastError %q; want PENDING, with an error only on the first", s(it, "sk"), s(it, "status"), s(it, "lastError"))
		}
	}
	// The retry Lambda makes (from the failed record on) delivers the rest.
	f.Faults.Reset()
	var retry events.DynamoDBEvent
	for i, r := range ev.Records {
		if r.Change.SequenceNumber == first {
			retry.Records = ev.Records[i:]
		}
	}
	if resp := f.Handle(retry); len(resp.BatchItemFailures) != 0 {
		t.Fatalf("retry failures %+v", resp.BatchItemFailures)
	}
	if got := len(f.Drain(f.Events)); got != 2 {
		t.Errorf("%d events after the retry, want 2", got)
	}
	if n := f.EmailsTo(id + "@example.com"); n != 2 {
		t.Errorf("%d emails, want 2 (none twice)", n)
	}
}

func TestAnAccountWideStopBurnsNoRetries(t *testing.T) {
	f := flowtest.New(t, nil)
	id := unique("paused")
	f.Command(open(id, id+"@example.com"))
	f.Command(deposit(id, 1))
	f.Faults.Add(faults.Fault{Match: faults.Path("/v2/email/outbound-emails"), Status: 400, Code: "SendingPausedException", Message: "sending paused"})
	resp := f.Handle(f.Batch(id))
	if len(resp.BatchItemFailures) != 1 {
		t.Fatalf("failures %+v, want the batch reported failed", resp.BatchItemFailures)
	}
	if n := f.Faults.Injected(); n != 1 {
		t.Errorf("SES was called %d times after SendingPaused, want 1", n)
	}
	for _, it := range f.Items(id) {
		if s(it, "target") == "email" && s(it, "status") != "PENDING" {
			t.Errorf("email %s left %s, want PENDING (lease released)", s(it, "sk"), s(it, "status"))
		}
	}
	f.Drain(f.Events)
}

func TestInvalidRecordsAreParkedUnderTheirRuleAndOthersIgnored(t *testing.T) {
	f := flowtest.New(t, nil)
	id := unique("bad")
	mk := func(seq, sk string, img map[string]events.DynamoDBAttributeValue, name string) events.DynamoDBEventRecord {
		return events.DynamoDBEventRecord{EventName: name, Change: events.DynamoDBStreamRecord{
			SequenceNumber: seq, Keys: map[string]events.DynamoDBAttributeValue{"pk": events.NewStringAttribute("AGG#" + id), "sk": events.NewStringAttribute(sk)}, NewImage: img,
		}}
	}
	ev := events.DynamoDBEvent{Records: []events.DynamoDBEventRecord{
		mk("100", "STATE", nil, "INSERT"),                           // not an outbox item: ignored
		mk("101", "OUTBOX#00000000000000000001#000", nil, "MODIFY"), // not an INSERT: ignored
		mk("102", "OUTBOX#00000000000000000001#000", map[string]events.DynamoDBAttributeValue{"eventId": events.NewStringAttribute("e1"), "target": events.NewStringAttribute("fax"), "eventType": events.NewStringAttribute("X"), "payload": events.NewStringAttribute("{}")}, "INSERT"),
		mk("103", "OUTBOX#garbage", map[string]events.DynamoDBAttributeValue{}, "INSERT"),
		mk("104", "EVENT#garbage", map[string]events.DynamoDBAttributeValue{}, "INSERT"), // no rule of the outbox contract
	}}
	resp := f.Handle(ev)
	if len(resp.BatchItemFailures) != 0 {
		t.Fatalf("failures %+v: an invalid record must be parked, not retried forever", resp.BatchItemFailures)
	}
	dlq := f.Drain(f.DLQ)
	want := map[string]string{ // sort key as written: reason
		"OUTBOX#00000000000000000001#000": "non-canonical-key", // its attributes are not its key's
		"OUTBOX#garbage":                  "non-canonical-key",
		"EVENT#garbage":                   "invalid-record",
	}
	if len(dlq) != len(want) {
		t.Fatalf("%d DLQ messages, want %d (the invalid inserts)", len(dlq), len(want))
	}
	for _, m := range dlq {
		sk, _ := m.Body["sk"].(string)
		if m.Body["reason"] != want[sk] {
			t.Errorf("parked %v, want reason %q", m.Body, want[sk])
		}
	}
	// Each is counted where the item-failed alarm looks: Failed, by reason.
	for reason, n := range map[string]int{"non-canonical-key": 2, "invalid-record": 1} {
		if got := strings.Count(f.Metrics.String(), `"Failed":1,"Reason":"`+reason+`"`); got != n {
			t.Errorf("%d Failed metrics for %s, want %d; metrics:\n%s", got, reason, n, f.Metrics)
		}
	}
}

func TestConcurrentRelaysSendEachEmailOnce(t *testing.T) {
	f := flowtest.New(t, nil)
	g := flowtest.New(t, nil)
	var ids []string
	for i := range 4 {
		id := unique(fmt.Sprintf("race%d", i))
		ids = append(ids, id)
		f.Command(open(id, id+"@example.com"))
	}
	ev := f.Batch(ids...)
	var wg sync.WaitGroup
	for _, h := range []*flowtest.Fixture{f, g} {
		wg.Add(1)
		go func() {
			defer wg.Done()
			h.Relay.Handle(context.Background(), ev)
		}()
	}
	wg.Wait()
	// Whatever a racing relay left (lease held by the other) a retry finishes.
	f.Handle(ev)
	for _, id := range ids {
		if n := f.EmailsTo(id + "@example.com"); n != 1 {
			t.Errorf("%s: %d emails, want exactly 1", id, n)
		}
	}
	f.Drain(f.Events)
}

func TestAnEventSentButNotMarkedIsReportedAndNotDuplicatedByTheRetry(t *testing.T) {
	// Two tries of the mark (each through the SDK's own retries) are enough
	// to see it fail past them.
	f := flowtest.New(t, func(c *deliveryfn.Config) { c.Delivery.MaxMarkAttempts = 2 })
	id := unique("unmarked")
	f.Command(`{"type":"Dispatch","aggregateId":"` + id + `","data":{"aggregateType":"Order","events":[{"type":"A","data":{}}]}}`)
	f.Command(`{"type":"Dispatch","aggregateId":"` + id + `","data":{"aggregateType":"Order","events":[{"type":"B","data":{}}]}}`)
	f.Command(`{"type":"Dispatch","aggregateId":"` + id + `","data":{"aggregateType":"Order","events":[{"type":"C","data":{}}]}}`)
	ev := f.Batch(id)
	// The first event's mark fails through the SDK's own retries, every time.
	f.Faults.Add(faults.Fault{
		Match:  faults.All(faults.Target("UpdateItem"), faults.BodyContains("OUTBOX#00000000000000000001#000"), faults.BodyContains("DELIVERED")),
		Status: 500, Code: "InternalServerError", Message: "boom",
	})
	resp := f.Handle(ev)
	f.Faults.Reset()
	var first string
	for _, r := range ev.Records {
		if r.Change.Keys["sk"].String() == "OUTBOX#00000000000000000001#000" {
			first = r.Change.SequenceNumber
		}
	}
	if len(resp.BatchItemFailures) != 1 || resp.BatchItemFailures[0].ItemIdentifier != first {
		t.Fatalf("failures %+v, want the unmarked event's record %s", resp.BatchItemFailures, first)
	}
	var retry events.DynamoDBEvent
	for i, r := range ev.Records {
		if r.Change.SequenceNumber == first {
			retry.Records = ev.Records[i:]
		}
	}
	if resp := f.Handle(retry); len(resp.BatchItemFailures) != 0 {
		t.Fatalf("retry failures %+v", resp.BatchItemFailures)
	}
	var types []string
	for _, m := range f.Drain(f.Events) {
		if m.Body["subject"] == id {
			types = append(types, m.Body["type"].(string))
		}
	}
	if strings.Join(types, ",") != "A,B,C" {
		t.Errorf("the queue holds %v, want A,B,C once each in order (FIFO drops the resent A)", types)
	}
	for _, it := range f.Items(id) {
		if s(it, "status") != "DELIVERED" {
			t.Errorf("%s is %s", s(it, "sk"), s(it, "status"))
		}
	}
}

// SES took the email, then its DELIVERED mark failed through the SDK's own
// retries (a 5xx each time): the engine retries the mark in the invocation,
// so nothing is left for a retry of the batch to send again. Without that,
// the email stays SENDING under its lease, the batch is reported failed,
// and Lambda's retry after the lease lapsed sends the email a second time.
// The lease is short so that the redelivery comes after it lapsed.
func TestATransientMarkFailureAloneSendsNoSecondEmail(t *testing.T) {
	const lease = 2 * time.Second
	f := flowtest.New(t, func(c *deliveryfn.Config) { c.Delivery.Lease = lease })
	id := unique("markretry")
	f.Command(open(id, id+"@example.com")) // an event (seq 0) and an email (seq 1)
	ev := f.Batch(id)
	// As many faults per mark as the DynamoDB client makes attempts: the
	// engine sees each mark fail once.
	sdkAttempts := f.DB.Options().Retryer.MaxAttempts()
	for _, sk := range []string{"OUTBOX#00000000000000000001#000", "OUTBOX#00000000000000000001#001"} {
		f.Faults.Add(faults.Fault{
			Match: faults.All(faults.Target("UpdateItem"), faults.BodyContains(sk), faults.BodyContains("SET #st = :delivered")),
			Times: sdkAttempts, Status: 500, Code: "InternalServerError", Message: "boom",
		})
	}
	if resp := f.Handle(ev); len(resp.BatchItemFailures) != 0 {
		t.Errorf("failures %+v: a mark that fails once is retried in the invocation; logs:\n%s", resp.BatchItemFailures, f.Logs)
	}
	if n := f.Faults.Injected(); n != 2*sdkAttempts {
		t.Errorf("%d faults injected, want %d: each mark failed once after the SDK's retries", n, 2*sdkAttempts)
	}
	if n := strings.Count(f.Metrics.String(), `"MarkRetried":1`); n != 2 {
		t.Errorf("%d MarkRetried metrics, want 2; metrics:\n%s", n, f.Metrics)
	}
	for _, it := range f.Items(id) {
		if s(it, "status") != "DELIVERED" {
			t.Errorf("%s is %s after the invocation, want DELIVERED", s(it, "sk"), s(it, "status"))
		}
	}
	if n := f.EmailsTo(id + "@example.com"); n != 1 {
		t.Errorf("%d emails after the invocation, want 1", n)
	}
	// Lambda may hand the batch over again (a reported failure, or its own
	// at-least-once): once the lease has lapsed, nothing but the mark keeps
	// the email from going twice.
	time.Sleep(lease)
	f.Faults.Reset()
	if resp := f.Handle(ev); len(resp.BatchItemFailures) != 0 {
		t.Errorf("redelivery failures %+v", resp.BatchItemFailures)
	}
	if n := f.EmailsTo(id + "@example.com"); n != 1 {
		t.Errorf("%d emails after the batch was delivered again, want still 1", n)
	}
	if got := len(f.Drain(f.Events)); got != 1 {
		t.Errorf("%d events in the queue, want 1", got)
	}
}

// An email's lease covers its send, not its wait for the SES send rate: a
// batch of emails behind a low rate never shows an email SENDING under a
// lease that has already lapsed (which would let another relay, or the
// replay, send it too).
//
// The lease (1 s) is half the last email's wait for the rate (about 2 s), so
// a relay that claimed before waiting shows lapsed leases. On a slow backend
// (moto under CI's load) the claim itself can eat the lease's send window;
// the relay then rightly cuts the send off ("lease-bound") and reports the
// record failed. Such records are handed to the relay once more, as Lambda
// retries a partial batch failure, and each address must still get exactly
// one email; any other failure fails the test.
func TestAnEmailLeaseIsTakenAfterTheRateWait(t *testing.T) {
	const lease = time.Second
	// 2 emails a second (burst 2): the last of 6 waits about 2 s.
	f := flowtest.New(t, func(c *deliveryfn.Config) { c.Delivery.EmailRate, c.Delivery.Lease = 2, lease })
	var ids []string
	for i := range 6 {
		id := unique(fmt.Sprintf("rate%d", i))
		ids = append(ids, id)
		f.Command(open(id, id+"@example.com"))
	}
	ev := f.Batch(ids...)
	done := make(chan events.DynamoDBEventResponse, 1)
	go func() { done <- f.Handle(ev) }()
	lapsed := map[string]bool{}
	var resp events.DynamoDBEventResponse
	for polling := true; polling; {
		select {
		case resp = <-done:
			polling = false
		case <-time.After(20 * time.Millisecond):
		}
		now := time.Now()
		for _, id := range ids {
			for _, it := range f.Items(id) {
				n, ok := it["leaseUntil"].(*types.AttributeValueMemberN)
				if s(it, "status") != "SENDING" || !ok {
					continue
				}
				ms, _ := strconv.ParseInt(n.Value, 10, 64)
				// 100 ms of slack for the send itself and this poll.
				if until := time.UnixMilli(ms); now.Sub(until) > 100*time.Millisecond {
					lapsed[id] = true
				}
			}
		}
	}
	if len(lapsed) > 0 {
		t.Errorf("emails of %v were SENDING under a lapsed lease while they waited for the rate", lapsed)
	}
	if len(resp.BatchItemFailures) > 0 {
		logs := f.Logs.String()
		if !strings.Contains(logs, "lease-bound") {
			t.Fatalf("failures %+v not cut off by the lease bound; logs:\n%s", resp.BatchItemFailures, logs)
		}
		var again []string
		for _, id := range ids {
			if f.EmailsTo(id+"@example.com") == 0 {
				again = append(again, id)
			}
		}
		t.Logf("slow backend: %d sends cut off by the lease bound, handed to the relay again: %v", len(resp.BatchItemFailures), again)
		if r := f.Handle(f.Batch(again...)); len(r.BatchItemFailures) > 0 {
			t.Fatalf("the retry failed too: %+v; logs:\n%s", r.BatchItemFailures, f.Logs)
		}
	}
	for _, id := range ids {
		if n := f.EmailsTo(id + "@example.com"); n != 1 {
			t.Errorf("%s: %d emails, want 1", id, n)
		}
	}
	f.Drain(f.Events)
}
