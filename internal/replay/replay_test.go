package replay_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/aws/aws-lambda-go/events"
	"github.com/aws/aws-sdk-go-v2/aws"
	sqsapi "github.com/aws/aws-sdk-go-v2/service/sqs"
	sqstypes "github.com/aws/aws-sdk-go-v2/service/sqs/types"

	"github.com/dispatcher-dev/dispatcher/internal/replay"
	"github.com/dispatcher-dev/dispatcher/internal/testkit/faults"
	"github.com/dispatcher-dev/dispatcher/internal/testkit/flowtest"
	"github.com/dispatcher-dev/dispatcher/internal/testkit/testenv"
)

func TestMain(m *testing.M) { testenv.Main(m) }

func run(t *testing.T, f *flowtest.Fixture, req string) replay.Report {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	rep, err := f.Replay.Invoke(ctx, json.RawMessage(req))
	if err != nil {
		t.Fatalf("replay %s: %v\nlogs:\n%s", req, err, f.Logs)
	}
	return rep
}

// dlqDepth counts the visible messages in the DLQ without taking them.
func dlqDepth(t *testing.T, f *flowtest.Fixture) string {
	t.Helper()
	out, err := f.SQS.GetQueueAttributes(context.Background(), &sqsapi.GetQueueAttributesInput{
		QueueUrl: aws.String(f.DLQ), AttributeNames: []sqstypes.QueueAttributeName{sqstypes.QueueAttributeNameApproximateNumberOfMessages, sqstypes.QueueAttributeNameApproximateNumberOfMessagesNotVisible},
	})
	if err != nil {
		t.Fatal(err)
	}
	return out.Attributes["ApproximateNumberOfMessages"] + "/" + out.Attributes["ApproximateNumberOfMessagesNotVisible"]
}

func TestAFailedEmailIsReplayedOnceTheCauseIsFixed(t *testing.T) {
	f := flowtest.New(t, nil)
	id := flowtest.Unique("replay")
	addr := id + "@example.com"
	f.Command(flowtest.Open(id, addr))
	// The sender is not verified yet: SES rejects the email for good.
	f.Faults.Add(faults.Fault{Match: faults.Path("/v2/email/outbound-emails"), Status: 400, Code: "MessageRejected", Message: "Email address is not verified"})
	f.Handle(f.Batch(id))
	if dlqDepth(t, f) != "1/0" {
		t.Fatalf("DLQ depth %s, want one parked email", dlqDepth(t, f))
	}
	f.Drain(f.Events)

	// The sender is verified now.
	f.Faults.Reset()
	rep := run(t, f, `{"mode":"dlq"}`)
	if rep.Replayed != 1 || len(rep.FailedAgain) != 0 || rep.Left != 0 {
		t.Fatalf("report %+v", rep)
	}
	if n := f.EmailsTo(addr); n != 1 {
		t.Errorf("%d emails in the SES store, want exactly 1", n)
	}
	for _, it := range f.Items(id) {
		if flowtest.S(it, "status") != "DELIVERED" {
			t.Errorf("%s is %s", flowtest.S(it, "sk"), flowtest.S(it, "status"))
		}
	}
	if d := dlqDepth(t, f); d != "0/0" {
		t.Errorf("DLQ depth %s after the replay, want empty", d)
	}
	t.Run("a second replay finds nothing and sends nothing", func(t *testing.T) {
		rep := run(t, f, `{"mode":"dlq"}`)
		if rep.Messages != 0 || rep.Replayed != 0 {
			t.Errorf("report %+v", rep)
		}
		if n := f.EmailsTo(addr); n != 1 {
			t.Errorf("%d emails, want still 1", n)
		}
	})
}

// onFailure builds the record a Lambda event source mapping sends to its
// on-failure destination, in AWS's exact shape, for a real range of the
// local stream.
func onFailure(batch events.DynamoDBEvent, shard string) string {
	first, last := batch.Records[0], batch.Records[len(batch.Records)-1]
	rec := map[string]any{
		"requestContext": map[string]any{
			"requestId":              "316aa6d0-8154-xmpl-9af7-85d5f4a6bc81",
			"functionArn":            "arn:aws:lambda:us-east-1:000000000000:function:dispatcher-test-StreamRelayFunction",
			"condition":              "RetryAttemptsExhausted",
			"approximateInvokeCount": 6,
		},
		"responseContext": map[string]any{"statusCode": 200, "executedVersion": "$LATEST", "functionError": "Unhandled"},
		"version":         "1.0",
		"timestamp":       time.Now().UTC().Format("2006-01-02T15:04:05.000Z"),
		"DDBStreamBatchInfo": map[string]any{
			"shardId":                         shard,
			"startSequenceNumber":             first.Change.SequenceNumber,
			"endSequenceNumber":               last.Change.SequenceNumber,
			"approximateArrivalOfFirstRecord": first.Change.ApproximateCreationDateTime.UTC().Format(time.RFC3339),
			"approximateArrivalOfLastRecord":  last.Change.ApproximateCreationDateTime.UTC().Format(time.RFC3339),
			"batchSize":                       len(batch.Records),
			"streamArn":                       first.EventSourceArn,
		},
	}
	b, _ := json.Marshal(rec)
	return string(b)
}

func TestAnOnFailureRecordIsReplayedByReReadingTheStream(t *testing.T) {
	f := flowtest.New(t, nil)
	id := flowtest.Unique("esm")
	f.Command(flowtest.Open(id, id+"@example.com"))
	f.Command(flowtest.Deposit(id, 42))
	batch := f.Batch(id)
	// The relay never ran on this batch: the mapping gave up on it.
	shard := f.ShardOf(batch.Records[0].Change.SequenceNumber)
	if _, err := f.SQS.SendMessage(context.Background(), &sqsapi.SendMessageInput{QueueUrl: aws.String(f.DLQ), MessageBody: aws.String(onFailure(batch, shard))}); err != nil {
		t.Fatal(err)
	}
	rep := run(t, f, `{}`)
	if rep.StreamRanges != 1 || rep.Replayed != 4 || rep.Left != 0 {
		t.Fatalf("report %+v\nlogs:\n%s", rep, f.Logs)
	}
	if got := len(f.Drain(f.Events)); got != 2 {
		t.Errorf("%d events, want 2", got)
	}
	if n := f.EmailsTo(id + "@example.com"); n != 2 {
		t.Errorf("%d emails, want 2", n)
	}
	if d := dlqDepth(t, f); d != "0/0" {
		t.Errorf("DLQ depth %s, want empty", d)
	}
}

func TestTheSweeperDeliversWhatTheStreamTriggerMissed(t *testing.T) {
	f := flowtest.New(t, nil)
	id := flowtest.Unique("sweep")
	// Written while the stream trigger was off: no relay ever sees them.
	f.Command(flowtest.Open(id, id+"@example.com"))
	f.Command(flowtest.Deposit(id, 9))
	time.Sleep(1100 * time.Millisecond)
	rep := run(t, f, `{"mode":"sweep","olderThanSeconds":1}`)
	if rep.Swept < 4 {
		t.Fatalf("swept %d, want the 4 items of %s (report %+v)", rep.Swept, id, rep)
	}
	for _, it := range f.Items(id) {
		if flowtest.S(it, "status") != "DELIVERED" {
			t.Errorf("%s is %s", flowtest.S(it, "sk"), flowtest.S(it, "status"))
		}
	}
	if n := f.EmailsTo(id + "@example.com"); n != 2 {
		t.Errorf("%d emails, want 2", n)
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
	t.Run("items younger than the threshold are left to the relay", func(t *testing.T) {
		young := flowtest.Unique("young")
		f.Command(flowtest.Open(young, young+"@example.com"))
		rep := run(t, f, `{"mode":"sweep","olderThanSeconds":3600}`)
		if rep.Swept != 0 {
			t.Errorf("swept %d young items", rep.Swept)
		}
	})
}

func TestADryRunChangesNothing(t *testing.T) {
	f := flowtest.New(t, nil)
	id := flowtest.Unique("dry")
	f.Command(flowtest.Open(id, id+"@example.com"))
	f.Faults.Add(faults.Fault{Match: faults.Path("/v2/email/outbound-emails"), Status: 400, Code: "MessageRejected", Message: "rejected"})
	f.Handle(f.Batch(id))
	f.Faults.Reset()
	snapshot := func() string {
		var b strings.Builder
		for _, it := range f.Items(id) {
			fmt.Fprintf(&b, "%s=%s/%s;", flowtest.S(it, "sk"), flowtest.S(it, "status"), flowtest.S(it, "lastError"))
		}
		all, _ := f.SentEmails()
		fmt.Fprintf(&b, " dlq=%s emails=%d", dlqDepth(t, f), all)
		return b.String()
	}
	before := snapshot()
	rep := run(t, f, `{"mode":"all","dryRun":true,"olderThanSeconds":1}`)
	if !rep.DryRun || rep.WouldReplay < 1 || rep.Replayed != 0 {
		t.Errorf("report %+v", rep)
	}
	if after := snapshot(); after != before {
		t.Errorf("a dry run changed something:\nbefore %s\nafter  %s", before, after)
	}
	// Clean up for the next test: replay for real.
	run(t, f, `{}`)
	f.Drain(f.Events)
}

func TestTwoConcurrentReplaysDeliverEachItemOnce(t *testing.T) {
	f := flowtest.New(t, nil)
	g := flowtest.New(t, nil)
	var ids []string
	f.Faults.Add(faults.Fault{Match: faults.Path("/v2/email/outbound-emails"), Status: 400, Code: "MessageRejected", Message: "rejected"})
	for i := range 5 {
		id := flowtest.Unique(fmt.Sprintf("twice%d", i))
		ids = append(ids, id)
		f.Command(flowtest.Open(id, id+"@example.com"))
	}
	f.Handle(f.Batch(ids...))
	f.Faults.Reset()
	var wg sync.WaitGroup
	for _, fx := range []*flowtest.Fixture{f, g} {
		wg.Add(1)
		go func() {
			defer wg.Done()
			fx.Replay.Invoke(context.Background(), json.RawMessage(`{"mode":"all","olderThanSeconds":1}`))
		}()
	}
	wg.Wait()
	run(t, f, `{"mode":"all","olderThanSeconds":1}`) // whatever a racing lease left
	for _, id := range ids {
		if n := f.EmailsTo(id + "@example.com"); n != 1 {
			t.Errorf("%s: %d emails, want exactly 1", id, n)
		}
	}
	f.Drain(f.Events)
}

func TestBadRequestsAreRefused(t *testing.T) {
	f := flowtest.New(t, nil)
	for _, req := range []string{`{"mode":"everything"}`, `{"maxMessages":-1}`, `{"maxMessages":100000}`, `{"targets":["fax"]}`, `{"dryrun":true}`, `[1]`,
		`{"maxAttempts":1001}`, `{"maxItems":10001}`, `{"maxAttempts":-1}`} {
		_, err := f.Replay.Invoke(context.Background(), json.RawMessage(req))
		var re *replay.RequestError
		if !errors.As(err, &re) {
			t.Errorf("%s: error %v, want a *replay.RequestError (the caller's to fix)", req, err)
		}
	}
	// A scheduled event sweeps, with the defaults: it never re-sends a FAILED item.
	rep, err := f.Replay.Invoke(context.Background(), json.RawMessage(`{"version":"0","id":"x","detail-type":"Scheduled Event","source":"aws.events","detail":{}}`))
	if err != nil || rep.Mode != "sweep" {
		t.Errorf("scheduled event: %+v %v", rep, err)
	}
}

func TestAnExpiredStreamRangeFallsBackToTheSweeper(t *testing.T) {
	f := flowtest.New(t, nil)
	id := flowtest.Unique("expired")
	f.Command(flowtest.Open(id, id+"@example.com"))
	batch := f.Batch(id)
	shard := f.ShardOf(batch.Records[0].Change.SequenceNumber)
	rec := onFailure(batch, shard)
	// A range the stream no longer holds (as after its 24-hour retention).
	rec = strings.Replace(rec, batch.Records[0].Change.SequenceNumber, "999999999999999999990", 1)
	rec = strings.Replace(rec, batch.Records[len(batch.Records)-1].Change.SequenceNumber, "999999999999999999991", 1)
	if _, err := f.SQS.SendMessage(context.Background(), &sqsapi.SendMessageInput{QueueUrl: aws.String(f.DLQ), MessageBody: aws.String(rec)}); err != nil {
		t.Fatal(err)
	}
	time.Sleep(1100 * time.Millisecond) // the range's last arrival is in the past
	rep := run(t, f, `{}`)
	// SQS is at least once: a send the SDK retried after a slow answer (moto
	// under load once did) leaves the same record twice, and each copy is an
	// expired range; the one email below is what must not repeat.
	if rep.RangesExpired < 1 || rep.RangesExpired != rep.Messages || rep.Swept < 2 || rep.Left != 0 {
		t.Fatalf("report %+v\nlogs:\n%s", rep, f.Logs)
	}
	if n := f.EmailsTo(id + "@example.com"); n != 1 {
		t.Errorf("%d emails, want 1", n)
	}
	f.Drain(f.Events)
}
