package replay_test

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb"
	ddbtypes "github.com/aws/aws-sdk-go-v2/service/dynamodb/types"
	sqsapi "github.com/aws/aws-sdk-go-v2/service/sqs"

	"github.com/dispatcher-dev/dispatcher/internal/testkit/faults"
	"github.com/dispatcher-dev/dispatcher/internal/testkit/flowtest"
)

var scheduled = `{"version":"0","id":"x","detail-type":"Scheduled Event","source":"aws.events","detail":{}}`

func rejectEmails(f *flowtest.Fixture) {
	f.Faults.Add(faults.Fault{Match: faults.Path("/v2/email/outbound-emails"), Status: 400, Code: "MessageRejected", Message: "Email address is not verified"})
}

// failedEmail opens an account whose welcome email SES rejects for good:
// the relay parks it (FAILED, one DLQ message) and delivers the event. It
// returns the aggregate id; SES still rejects until f.Faults.Reset().
func failedEmail(f *flowtest.Fixture, prefix string) string {
	id := flowtest.Unique(prefix)
	f.Command(flowtest.Open(id, id+"@example.com"))
	rejectEmails(f)
	f.Handle(f.Batch(id))
	f.Drain(f.Events)
	return id
}

// item returns an aggregate's outbox item of a target.
func item(t *testing.T, f *flowtest.Fixture, id, target string) map[string]ddbtypes.AttributeValue {
	t.Helper()
	for _, it := range f.Items(id) {
		if flowtest.S(it, "target") == target {
			return it
		}
	}
	t.Fatalf("%s has no %s item", id, target)
	return nil
}

func attempts(it map[string]ddbtypes.AttributeValue) int {
	n, _ := it["attempts"].(*ddbtypes.AttributeValueMemberN)
	if n == nil {
		return 0
	}
	v, _ := strconv.Atoi(n.Value)
	return v
}

// A FAILED item waits for a person: the schedule sweeps, and never sends
// it again, however often it runs (it used to drain the DLQ and requeue
// FAILED items on every run: an item SES rejected was sent every 5 minutes).
func TestTheScheduleNeverResendsAFailedItem(t *testing.T) {
	f := flowtest.New(t, nil)
	id := failedEmail(f, "sched")
	if st := flowtest.S(item(t, f, id, "email"), "status"); st != "FAILED" {
		t.Fatalf("email is %s, want FAILED", st)
	}
	sends := f.Faults.Injected()
	for range 3 {
		run(t, f, scheduled)
	}
	it := item(t, f, id, "email")
	if flowtest.S(it, "status") != "FAILED" || attempts(it) != 1 {
		t.Errorf("after three scheduled runs the email is %s with %d attempts, want FAILED with 1", flowtest.S(it, "status"), attempts(it))
	}
	if n := f.Faults.Injected() - sends; n != 0 {
		t.Errorf("the schedule tried SES %d times, want 0", n)
	}
	if d := dlqDepth(t, f); d != "1/0" {
		t.Errorf("DLQ depth %s, want the parked email still there", d)
	}
	f.Drain(f.DLQ)
}

// A person's replay re-sends a FAILED item at most until it has failed
// DefaultMaxAttempts times, unless they say more.
func TestAReplayStopsAtMaxAttemptsUnlessToldMore(t *testing.T) {
	f := flowtest.New(t, nil)
	id := failedEmail(f, "maxatt")
	sk := flowtest.S(item(t, f, id, "email"), "sk")
	if _, err := f.DB.UpdateItem(context.Background(), &dynamodb.UpdateItemInput{
		TableName:        aws.String(f.Table),
		Key:              map[string]ddbtypes.AttributeValue{"pk": &ddbtypes.AttributeValueMemberS{Value: "AGG#" + id}, "sk": &ddbtypes.AttributeValueMemberS{Value: sk}},
		UpdateExpression: aws.String("SET attempts = :n"), ExpressionAttributeValues: map[string]ddbtypes.AttributeValue{":n": &ddbtypes.AttributeValueMemberN{Value: "10"}},
	}); err != nil {
		t.Fatal(err)
	}
	f.Faults.Reset()
	rep := run(t, f, `{"mode":"dlq"}`)
	if rep.Replayed != 0 || rep.Left != 1 || len(rep.LeftReasons) != 1 || !strings.Contains(rep.LeftReasons[0].Reason, "maxAttempts") {
		t.Errorf("report %+v: want the item left, over maxAttempts", rep)
	}
	if n := f.EmailsTo(id + "@example.com"); n != 0 {
		t.Errorf("%d emails, want 0", n)
	}
	rep = run(t, f, `{"mode":"dlq","maxAttempts":20}`)
	if rep.Replayed != 1 || rep.Left != 0 {
		t.Errorf("report %+v: want it replayed with maxAttempts 20", rep)
	}
	if n := f.EmailsTo(id + "@example.com"); n != 1 {
		t.Errorf("%d emails, want 1", n)
	}
}

// FAILED items live in shards of their own: however many there are, more
// than the sweeper takes at once, they never crowd out a PENDING item.
func TestFailedItemsDoNotStarveTheSweeper(t *testing.T) {
	f := flowtest.New(t, nil)
	// What other tests left undelivered in the shared table is swept first.
	time.Sleep(1100 * time.Millisecond)
	run(t, f, `{"mode":"sweep","olderThanSeconds":1,"maxItems":10000}`)
	f.Drain(f.Events)
	const failed, maxItems = 8, 5
	var ids []string
	rejectEmails(f)
	for i := range failed {
		id := flowtest.Unique("starve" + strconv.Itoa(i))
		ids = append(ids, id)
		f.Command(flowtest.Open(id, id+"@example.com"))
	}
	f.Handle(f.Batch(ids...))
	f.Drain(f.Events)
	f.Drain(f.DLQ)
	f.Faults.Reset()
	for _, id := range ids {
		if st := flowtest.S(item(t, f, id, "email"), "status"); st != "FAILED" {
			t.Fatalf("%s email is %s, want FAILED", id, st)
		}
	}
	// Written after the failed ones; its stream record never reached a relay.
	late := flowtest.Unique("late")
	f.Command(flowtest.Open(late, late+"@example.com"))
	time.Sleep(1100 * time.Millisecond)
	rep := run(t, f, fmt.Sprintf(`{"mode":"sweep","olderThanSeconds":1,"maxItems":%d}`, maxItems))
	if rep.Swept != 2 {
		t.Errorf("swept %d items with %d FAILED ones older than them and maxItems %d, want the 2 PENDING ones: %+v", rep.Swept, failed, maxItems, rep)
	}
	if n := f.EmailsTo(late + "@example.com"); n != 1 {
		t.Errorf("%d emails to the pending command's address, want 1", n)
	}
	if rep.OldestFailedSeconds <= 0 {
		t.Errorf("report %+v: want the age of the oldest FAILED item", rep)
	}
	if !strings.Contains(f.Metrics.String(), `"OldestFailedAge"`) {
		t.Errorf("no OldestFailedAge metric")
	}
	for _, id := range ids {
		if n := f.EmailsTo(id + "@example.com"); n != 0 {
			t.Errorf("the sweeper sent %d emails for FAILED items, want 0", n)
		}
	}
	f.Drain(f.Events)
}

// The DLQ keeps a message 14 days; a FAILED item outlives it in the table,
// and a person finds and replays it there (mode "failed").
func TestAFailedItemWhoseDLQMessageExpiredIsFoundAndReplayed(t *testing.T) {
	f := flowtest.New(t, nil)
	id := failedEmail(f, "expired")
	addr := id + "@example.com"
	f.Drain(f.DLQ) // expired
	f.Faults.Reset()
	if rep := run(t, f, `{"mode":"dlq"}`); rep.Messages != 0 || rep.Replayed != 0 {
		t.Fatalf("dlq report %+v: the DLQ is empty", rep)
	}
	if rep := run(t, f, `{"mode":"failed","dryRun":true}`); rep.WouldReplay < 1 || rep.FailedFound < 1 {
		t.Fatalf("dry run %+v: want the FAILED item found", rep)
	}
	if n := f.EmailsTo(addr); n != 0 {
		t.Fatalf("the dry run sent %d emails", n)
	}
	rep := run(t, f, `{"mode":"failed"}`)
	if rep.Replayed < 1 || len(rep.FailedAgain) != 0 {
		t.Errorf("report %+v: want the FAILED item replayed", rep)
	}
	if n := f.EmailsTo(addr); n != 1 {
		t.Errorf("%d emails, want 1", n)
	}
	if st := flowtest.S(item(t, f, id, "email"), "status"); st != "DELIVERED" {
		t.Errorf("email is %s, want DELIVERED", st)
	}
}

// AWS's documented on-failure record names another table's stream: the
// replay must not act on it, must not delete it, and says so (log, metric).
func TestAnOnFailureRecordOfAnotherTableIsLeftAndReported(t *testing.T) {
	f := flowtest.New(t, nil)
	body, err := os.ReadFile("testdata/onfailure-aws-sample.json")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := f.SQS.SendMessage(context.Background(), &sqsapi.SendMessageInput{QueueUrl: aws.String(f.DLQ), MessageBody: aws.String(string(body))}); err != nil {
		t.Fatal(err)
	}
	rep := run(t, f, `{"mode":"dlq"}`)
	if rep.OtherStreams != 1 || rep.Left != 1 || rep.StreamRanges != 0 {
		t.Errorf("report %+v: want it counted as another stream's and left", rep)
	}
	if d := dlqDepth(t, f); d != "1/0" {
		t.Errorf("DLQ depth %s, want the record still there", d)
	}
	if !strings.Contains(f.Logs.String(), "DLQ message left in the DLQ") || !strings.Contains(f.Logs.String(), "other-stream") {
		t.Errorf("no WARN for the record; logs:\n%s", f.Logs)
	}
	if !strings.Contains(f.Metrics.String(), `"DLQMessages":1,"Outcome":"left","Service":"replay","Shape":"other-stream"`) {
		t.Errorf("no DLQMessages metric for it; metrics:\n%s", f.Metrics)
	}
	f.Drain(f.DLQ)
}

// Each DLQ message a replay receives is said once, in the log and in the
// DLQMessages metric, by its shape and what became of it.
func TestEveryDLQMessageIsAccountedFor(t *testing.T) {
	f := flowtest.New(t, nil)
	failedEmail(f, "acct")
	f.Faults.Reset()
	if _, err := f.SQS.SendMessage(context.Background(), &sqsapi.SendMessageInput{QueueUrl: aws.String(f.DLQ), MessageBody: aws.String(`{"hello":"world"}`)}); err != nil {
		t.Fatal(err)
	}
	rep := run(t, f, `{"mode":"dlq"}`)
	if rep.Messages != 2 || rep.Replayed != 1 || rep.Unrecognized != 1 {
		t.Fatalf("report %+v", rep)
	}
	for _, want := range []string{
		`"DLQMessages":1,"Outcome":"deleted","Service":"replay","Shape":"parked"`,
		`"DLQMessages":1,"Outcome":"left","Service":"replay","Shape":"unrecognized"`,
	} {
		if !strings.Contains(f.Metrics.String(), want) {
			t.Errorf("no metric line with %s; metrics:\n%s", want, f.Metrics)
		}
	}
	var lines int
	for _, l := range strings.Split(f.Logs.String(), "\n") {
		var m map[string]any
		if json.Unmarshal([]byte(l), &m) == nil && (m["msg"] == "DLQ message handled" || m["msg"] == "DLQ message left in the DLQ") {
			lines++
		}
	}
	if lines != 2 {
		t.Errorf("%d log lines about DLQ messages, want one per message (2)", lines)
	}
	f.Drain(f.DLQ)
}
