package runner_test

import (
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"net/http"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/aws/aws-lambda-go/events"
	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb"
	sqsapi "github.com/aws/aws-sdk-go-v2/service/sqs"
	sqstypes "github.com/aws/aws-sdk-go-v2/service/sqs/types"

	appenv "github.com/dispatcher-dev/dispatcher/internal/app/env"
	"github.com/dispatcher-dev/dispatcher/internal/command"
	"github.com/dispatcher-dev/dispatcher/internal/commandqueue"
	"github.com/dispatcher-dev/dispatcher/internal/dynamo"
	"github.com/dispatcher-dev/dispatcher/internal/emails"
	"github.com/dispatcher-dev/dispatcher/internal/local/provision"
	"github.com/dispatcher-dev/dispatcher/internal/local/runner"
	"github.com/dispatcher-dev/dispatcher/internal/obs"
	"github.com/dispatcher-dev/dispatcher/internal/testkit/testenv"
)

// ltyStack provisions the template with ListenToYourselfCommands set.
func ltyStack(t *testing.T, types string) *provision.Stack {
	t.Helper()
	return stackOf(t, "lty", provision.Options{Parameters: map[string]string{"ListenToYourselfCommands": types}})
}

// gated holds the consumer's invocations while closed, and can make the
// next invocations fail after applying (a crash before the acknowledgement).
type gated struct {
	inner      runner.Function
	open       chan struct{}
	crashAfter atomic.Int32 // this many invocations apply, then fail
	calls      atomic.Int32
}

func newGated(inner runner.Function, open bool) *gated {
	g := &gated{inner: inner, open: make(chan struct{})}
	if open {
		close(g.open)
	}
	return g
}

func (g *gated) Invoke(ctx context.Context, reqID string, payload []byte) ([]byte, error) {
	select {
	case <-g.open:
	case <-ctx.Done():
		return nil, ctx.Err()
	}
	g.calls.Add(1)
	out, err := g.inner.Invoke(ctx, reqID, payload)
	if err == nil && g.crashAfter.Add(-1) >= 0 {
		return nil, &runner.FunctionError{Type: "Runtime.ExitError", Message: "crashed after applying (test)"}
	}
	return out, err
}

func movement(typ, id string, amount int64, ref string) string {
	return fmt.Sprintf(`{"type":%q,"aggregateId":%q,"data":{"amount":%d,"currency":"EUR","reference":%q}}`, typ, id, amount, ref)
}

func aggregateOf(t *testing.T, base, id string) (version, balance float64) {
	t.Helper()
	resp, body := do(t, signed(t, http.MethodGet, base+"/v1/aggregates/"+id, ""))
	if resp.StatusCode != 200 {
		t.Fatalf("GET aggregate: %d %s", resp.StatusCode, body)
	}
	m := jsonOf(t, body)
	data, _ := m["data"].(map[string]any)
	b, _ := data["balance"].(float64)
	return m["version"].(float64), b
}

func postOK(t *testing.T, base, body, key string) map[string]any {
	t.Helper()
	req := signed(t, http.MethodPost, base+"/v1/commands", body)
	if key != "" {
		req.Header.Set("Idempotency-Key", key)
	}
	resp, b := do(t, req)
	if resp.StatusCode != http.StatusAccepted {
		t.Fatalf("POST %s: %d %s", body, resp.StatusCode, b)
	}
	return jsonOf(t, b)
}

// eventTypes drains the events queue and returns the event types of id's
// events, in the order received.
func eventTypes(t *testing.T, s *provision.Stack, id string, into *[]string) {
	t.Helper()
	for _, m := range receiveAll(t, s.Physical("EventsQueue")) {
		ce := jsonOf(t, []byte(aws.ToString(m.Body)))
		if ce["subject"] == id {
			*into = append(*into, ce["type"].(string))
		}
	}
}

func TestListenToYourselfAnswers202BeforeTheConsumerAppliesTheCommand(t *testing.T) {
	s := ltyStack(t, "DepositFunds")
	fns := realFunctions(t, s)
	consumer := newGated(fns["CommandConsumerFunction"], false)
	fns["CommandConsumerFunction"] = consumer
	r := start(t, s, fns, nil)

	id := fmt.Sprintf("lty-%d", time.Now().UnixNano())
	email := id + "@example.com"
	if got := postOK(t, r.URL(), openAccount(id, email), ""); got["version"] != float64(1) {
		t.Fatalf("OpenAccount (not queued) answered %v, want version 1", got)
	}
	got := postOK(t, r.URL(), movement("DepositFunds", id, 500, "first"), "dep-1")
	if got["status"] != "queued" || got["aggregateId"] != id || got["version"] != nil {
		t.Errorf("queued deposit answered %v: want status queued, the aggregate id and no version", got)
	}
	if v, b := aggregateOf(t, r.URL(), id); v != 1 || b != 0 {
		t.Errorf("right after the 202: version %v balance %v, want the state before the deposit", v, b)
	}
	// The same key again: one command.
	postOK(t, r.URL(), movement("DepositFunds", id, 500, "first"), "dep-1")
	close(consumer.open)

	eventually(t, 20*time.Second, "the deposit applied", func() bool { v, _ := aggregateOf(t, r.URL(), id); return v == 2 })
	var types []string
	eventually(t, 20*time.Second, "both events in the events queue", func() bool { eventTypes(t, s, id, &types); return len(types) >= 2 })
	eventually(t, 20*time.Second, "the welcome email and the receipt", func() bool { return emailsTo(t, email) == 2 })
	time.Sleep(500 * time.Millisecond)
	if v, b := aggregateOf(t, r.URL(), id); v != 2 || b != 500 {
		t.Errorf("after the consumer: version %v balance %v, want 2 and 500 (the key sent twice applied once)", v, b)
	}
	if eventTypes(t, s, id, &types); len(types) != 2 {
		t.Errorf("events %v, want 2", types)
	}

	// A redelivery (the same message again, past the queue's dedup window)
	// is answered by the idempotency record and writes nothing.
	// It is sent in the JSON format queued before callers, which the
	// consumer still reads.
	body, _ := json.Marshal(map[string]any{"aggregateId": id, "commandType": "DepositFunds", "command": movement("DepositFunds", id, 500, "first"),
		"scope": "webhook", "idempotencyKey": "dep-1", "receivedAt": time.Now()})
	payload, _ := json.Marshal(events.SQSEvent{Records: []events.SQSMessage{{MessageId: "redelivered", Body: string(body), EventSourceARN: "arn:aws:sqs:us-east-1:000000000000:x.fifo", Attributes: map[string]string{"MessageGroupId": id}}}})
	out, err := consumer.Invoke(context.Background(), "redelivery", payload)
	if err != nil || string(out) != `{"batchItemFailures":null}` && string(out) != `{"batchItemFailures":[]}` {
		t.Errorf("redelivery: %s, %v", out, err)
	}
	if v, _ := aggregateOf(t, r.URL(), id); v != 2 {
		t.Errorf("after a redelivery: version %v, want 2", v)
	}
}

// queueDepth is how many messages a queue holds, visible or in flight.
func queueDepth(t *testing.T, url string) int {
	t.Helper()
	out, err := sqsapi.NewFromConfig(testenv.Get(t).AWS).GetQueueAttributes(context.Background(), &sqsapi.GetQueueAttributesInput{QueueUrl: aws.String(url),
		AttributeNames: []sqstypes.QueueAttributeName{sqstypes.QueueAttributeNameApproximateNumberOfMessages, sqstypes.QueueAttributeNameApproximateNumberOfMessagesNotVisible}})
	if err != nil {
		t.Fatal(err)
	}
	a, _ := strconv.Atoi(out.Attributes["ApproximateNumberOfMessages"])
	b, _ := strconv.Atoi(out.Attributes["ApproximateNumberOfMessagesNotVisible"])
	return a + b
}

// Every command answered 202 is applied, or refused with its WARN line and
// its QueuedCommandRefused count; never neither (issue 24: an
// Idempotency-Key reused with another body within 5 minutes was dropped by
// the queue's deduplication, silently, after its 202). A retry of the same
// body is still one message.
func TestListenToYourselfRefusesAKeyReusedWithAnotherBodyAfterIts202(t *testing.T) {
	s := ltyStack(t, "DepositFunds")
	fns := realFunctions(t, s)
	// The consumer as consumerfn builds it, with its log and metrics here.
	env := testenv.Get(t)
	var logs, metrics testenv.SyncBuffer
	store := dynamo.New(dynamodb.NewFromConfig(env.AWS), s.Physical("OutboxTable"), appenv.DefaultIndexShards)
	svc := command.New(store, emails.Embedded{})
	h := commandqueue.NewConsumer(svc, obs.NewLogger(&logs, slog.LevelInfo), obs.NewMetrics(&metrics, "Dispatcher"))
	consumer := newGated(runner.NewInProcess("arn:aws:lambda:us-east-1:000000000000:function:consumer", 30*time.Second, h.Handle), false)
	fns["CommandConsumerFunction"] = consumer
	r := start(t, s, fns, nil)
	queue := s.Physical("CommandsQueue")
	// The queues as provisioned take what the command function sends.
	for _, q := range []string{"CommandsQueue", "CommandsDeadLetterQueue"} {
		out, err := sqsapi.NewFromConfig(env.AWS).GetQueueAttributes(context.Background(), &sqsapi.GetQueueAttributesInput{QueueUrl: aws.String(s.Physical(q)),
			AttributeNames: []sqstypes.QueueAttributeName{sqstypes.QueueAttributeNameMaximumMessageSize}})
		if err != nil || out.Attributes["MaximumMessageSize"] != strconv.Itoa(commandqueue.MaxMessageBytes) {
			t.Errorf("%s MaximumMessageSize %v (%v), want %d", q, out, err, commandqueue.MaxMessageBytes)
		}
	}

	id := fmt.Sprintf("lty-%d", time.Now().UnixNano())
	postOK(t, r.URL(), openAccount(id, id+"@example.com"), "")
	postOK(t, r.URL(), movement("DepositFunds", id, 500, "first"), "dep-1")
	postOK(t, r.URL(), movement("DepositFunds", id, 500, "first"), "dep-1") // a retry: one command
	if n := queueDepth(t, queue); n != 1 {
		t.Errorf("%d messages after a POST and its retry, want 1 (the queue drops the retry)", n)
	}
	got := postOK(t, r.URL(), movement("DepositFunds", id, 9999, "other"), "dep-1") // the key again, another body
	if got["status"] != "queued" {
		t.Fatalf("the reused key answered %v, want 202 queued", got)
	}
	if n := queueDepth(t, queue); n != 2 {
		t.Errorf("%d messages after the reused key, want 2: a command answered 202 was dropped", n)
	}
	close(consumer.open)

	eventually(t, 20*time.Second, "both commands consumed", func() bool { return r.QueueStats("CommandConsumerFunction").Deleted >= 2 })
	time.Sleep(300 * time.Millisecond)
	if v, b := aggregateOf(t, r.URL(), id); v != 2 || b != 500 {
		t.Errorf("version %v balance %v, want 2 and 500: the first applied, the other body refused", v, b)
	}
	if st := r.QueueStats("CommandConsumerFunction"); st.Received != 2 || st.Failed != 0 {
		t.Errorf("consumer mapping stats %+v: want 2 messages, none retried", st)
	}
	var refused []map[string]any
	for _, line := range strings.Split(logs.String(), "\n") {
		if strings.Contains(line, "queued command refused after its 202") {
			refused = append(refused, jsonOf(t, []byte(line)))
		}
	}
	if len(refused) != 1 || refused[0]["level"] != "WARN" || refused[0]["aggregateId"] != id || refused[0]["reason"] != "unprocessable" ||
		!strings.Contains(fmt.Sprint(refused[0]["error"]), "Idempotency-Key") {
		t.Errorf("refusal lines %v, want one WARN line for %s naming the reused Idempotency-Key\n%s", refused, id, logs.String())
	}
	if n := strings.Count(metrics.String(), `"QueuedCommandRefused":1`); n != 1 {
		t.Errorf("QueuedCommandRefused emitted %d times, want 1:\n%s", n, metrics.String())
	}
	if n := strings.Count(metrics.String(), `"QueuedCommandApplied":1`); n != 1 {
		t.Errorf("QueuedCommandApplied emitted %d times, want 1:\n%s", n, metrics.String())
	}
}

func TestListenToYourselfAppliesOnceWhenTheConsumerFailsAfterWriting(t *testing.T) {
	s := ltyStack(t, "DepositFunds")
	fns := realFunctions(t, s)
	consumer := newGated(fns["CommandConsumerFunction"], true)
	consumer.crashAfter.Store(1)
	fns["CommandConsumerFunction"] = consumer
	r := start(t, s, fns, nil)

	id := fmt.Sprintf("lty-%d", time.Now().UnixNano())
	postOK(t, r.URL(), openAccount(id, id+"@example.com"), "")
	postOK(t, r.URL(), movement("DepositFunds", id, 700, "retried"), "")
	eventually(t, 20*time.Second, "the message retried and acknowledged", func() bool {
		st := r.QueueStats("CommandConsumerFunction")
		return st.Failed >= 1 && st.Deleted >= 1
	})
	if v, b := aggregateOf(t, r.URL(), id); v != 2 || b != 700 {
		t.Errorf("version %v balance %v, want 2 and 700: applied once", v, b)
	}
	if n := consumer.calls.Load(); n < 2 {
		t.Errorf("%d invocations, want the retry", n)
	}
}

func TestListenToYourselfAcknowledgesARefusalAndKeepsOrderPerAggregate(t *testing.T) {
	s := ltyStack(t, "DepositFunds,WithdrawFunds")
	fns := realFunctions(t, s)
	consumer := newGated(fns["CommandConsumerFunction"], false)
	fns["CommandConsumerFunction"] = consumer
	r := start(t, s, fns, nil)

	id := fmt.Sprintf("lty-%d", time.Now().UnixNano())
	postOK(t, r.URL(), openAccount(id, id+"@example.com"), "")
	// Refused by the domain after the 202: acknowledged, nothing written.
	postOK(t, r.URL(), movement("WithdrawFunds", id, 1, "overdraw"), "")
	// Deposits and withdrawals alternate: out of order, a withdrawal would
	// overdraw and be refused, and the balance would not end at 0.
	for i := 0; i < 10; i++ {
		typ := "DepositFunds"
		if i%2 == 1 {
			typ = "WithdrawFunds"
		}
		postOK(t, r.URL(), movement(typ, id, 100, fmt.Sprintf("step-%d", i)), "")
	}
	// Invalid data is still refused synchronously, and nothing is queued.
	req := signed(t, http.MethodPost, r.URL()+"/v1/commands", movement("WithdrawFunds", id, -5, "bad"))
	if resp, b := do(t, req); resp.StatusCode != http.StatusBadRequest {
		t.Errorf("invalid withdrawal: %d %s, want 400", resp.StatusCode, b)
	}
	close(consumer.open)

	eventually(t, 30*time.Second, "the 11 queued commands consumed", func() bool {
		return r.QueueStats("CommandConsumerFunction").Deleted >= 11
	})
	if v, b := aggregateOf(t, r.URL(), id); v != 11 || b != 0 {
		t.Errorf("version %v balance %v, want 11 and 0: the refusal wrote nothing and the 10 applied in order", v, b)
	}
	if st := r.QueueStats("CommandConsumerFunction"); st.Failed != 0 || st.Deleted != 11 {
		t.Errorf("consumer mapping stats %+v: want 11 acknowledged, none retried", st)
	}
	var types []string
	eventually(t, 20*time.Second, "11 events", func() bool { eventTypes(t, s, id, &types); return len(types) >= 11 })
	for i, typ := range types[1:] {
		want := "FundsDeposited"
		if i%2 == 1 {
			want = "FundsWithdrawn"
		}
		if !strings.HasSuffix(typ, want) {
			t.Errorf("event %d is %s, want %s (events %v)", i+1, typ, want, types)
			break
		}
	}
}

// The SQS mapping relies on the queue for FIFO order: while a group's
// message is in flight, no later message of that group is handed out.
func TestTheCommandsQueueHoldsAGroupWhileItsMessageIsInFlight(t *testing.T) {
	s := ltyStack(t, "DepositFunds")
	url := s.Physical("CommandsQueue")
	c := sqsapi.NewFromConfig(testenv.Get(t).AWS)
	ctx := context.Background()
	for i, g := range []string{"a", "a", "b"} {
		if _, err := c.SendMessage(ctx, &sqsapi.SendMessageInput{QueueUrl: aws.String(url), MessageBody: aws.String(fmt.Sprint(i)),
			MessageGroupId: aws.String(g), MessageDeduplicationId: aws.String(fmt.Sprint("d", i))}); err != nil {
			t.Fatal(err)
		}
	}
	first, err := c.ReceiveMessage(ctx, &sqsapi.ReceiveMessageInput{QueueUrl: aws.String(url), MaxNumberOfMessages: 1})
	if err != nil || len(first.Messages) != 1 || aws.ToString(first.Messages[0].Body) != "0" {
		t.Fatalf("first receive: %v %v", first, err)
	}
	rest, err := c.ReceiveMessage(ctx, &sqsapi.ReceiveMessageInput{QueueUrl: aws.String(url), MaxNumberOfMessages: 10})
	if err != nil {
		t.Fatal(err)
	}
	for _, m := range rest.Messages {
		if aws.ToString(m.Body) == "1" {
			t.Errorf("group a's second message was handed out while its first is in flight")
		}
	}
}
