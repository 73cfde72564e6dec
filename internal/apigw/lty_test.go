package apigw_test

import (
	"context"
	"fmt"
	"net/http"
	"reflect"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-lambda-go/events"
	"github.com/aws/aws-sdk-go-v2/aws"
	sqsapi "github.com/aws/aws-sdk-go-v2/service/sqs"
	sqstypes "github.com/aws/aws-sdk-go-v2/service/sqs/types"

	"github.com/dispatcher-dev/dispatcher/internal/apigw"
	"github.com/dispatcher-dev/dispatcher/internal/command"
	"github.com/dispatcher-dev/dispatcher/internal/commandqueue"
	"github.com/dispatcher-dev/dispatcher/internal/dispatch"
	"github.com/dispatcher-dev/dispatcher/internal/obs"
	"github.com/dispatcher-dev/dispatcher/internal/sqs/signed"
	"github.com/dispatcher-dev/dispatcher/internal/testkit/testenv"
)

// padTo fills a command body to exactly n bytes: fill repeated inside the
// string at %s, then JSON whitespace (newlines) for what fill cannot match.
func padTo(t *testing.T, format, fill string, n int) string {
	t.Helper()
	base := len(fmt.Sprintf(format, ""))
	k := 0
	if fill != "" {
		k = (n - base) / len(fill)
	}
	body := fmt.Sprintf(format, strings.Repeat(fill, k))
	body += strings.Repeat("\n", n-len(body))
	if len(body) != n {
		t.Fatalf("body of %d bytes, want %d", len(body), n)
	}
	return body
}

// Listen to yourself answers what the outbox path answers, at the body
// limit and past it, for the bodies that grow most when escaped (issue 24:
// its message wrapped the body, escaped, in another JSON document and a
// body the outbox path took got a 500). Each accepted body is then read
// back from the commands queue byte for byte and applied by the consumer to
// the state the outbox path wrote.
func TestListenToYourselfAnswersAsTheOutboxAtTheBodyLimit(t *testing.T) {
	f := newFixture(t)
	env := testenv.Get(t)
	store := f.store
	svc := command.New(store, f.tmpl)
	queue := env.Stack.Physical("CommandsQueue")
	// The command function's own sender (internal/app/commandfn).
	lty := f.handler(command.NewListener(svc, commandqueue.New(signed.New(env.AWS), queue), []string{"DepositFunds", "Dispatch"}), store)
	modes := map[string]*apigw.Handler{"outbox": f.h, "listen-to-yourself": lty}
	ctx := context.Background()
	run := time.Now().UnixNano()

	const limit = dispatch.MaxBodyBytes
	order := `{"type":"Dispatch","aggregateId":"%s","data":{"aggregateType":"Order","state":{"s":"%%s"}}}`
	tests := []struct {
		name      string
		body      func(t *testing.T, id string) string // id: the aggregate's, per mode
		webhookID string                               // "" for the fixture's own
		want      int
	}{
		{"a deposit padded with newlines to the limit", func(t *testing.T, id string) string {
			return padTo(t, strings.ReplaceAll(deposit(id, 100, "pad"), "%", "%%")+"%s", "", limit)
		}, "", http.StatusAccepted},
		{"the same, one byte over", func(t *testing.T, id string) string {
			return padTo(t, strings.ReplaceAll(deposit(id, 100, "pad"), "%", "%%")+"%s", "", limit+1)
		}, "", http.StatusRequestEntityTooLarge},
		{"< to the limit (6 bytes each, JSON-escaped)", func(t *testing.T, id string) string { return padTo(t, fmt.Sprintf(order, id), "<", limit) }, "", http.StatusAccepted},
		{"< one byte over", func(t *testing.T, id string) string { return padTo(t, fmt.Sprintf(order, id), "<", limit+1) }, "", http.StatusRequestEntityTooLarge},
		{`\u0001 escapes to the limit`, func(t *testing.T, id string) string { return padTo(t, fmt.Sprintf(order, id), `\u0001`, limit) }, "", http.StatusAccepted},
		{`escaped newlines \n to the limit`, func(t *testing.T, id string) string { return padTo(t, fmt.Sprintf(order, id), `\n`, limit) }, "", http.StatusAccepted},
		{"U+FFFE, which SQS refuses in a message, to the limit", func(t *testing.T, id string) string {
			return padTo(t, fmt.Sprintf(order, id), "\uFFFE", limit)
		}, "", http.StatusAccepted},
		{"U+FFFE one byte over", func(t *testing.T, id string) string { return padTo(t, fmt.Sprintf(order, id), "\uFFFE", limit+1) }, "", http.StatusRequestEntityTooLarge},
		{"an emoji (beyond U+FFFF, which SQS takes) to the limit", func(t *testing.T, id string) string {
			return padTo(t, fmt.Sprintf(order, id), "\U0001F600", limit)
		}, "", http.StatusAccepted},
		{"a webhook-id holding U+FFFF, with an Idempotency-Key", func(t *testing.T, id string) string { return fmt.Sprintf(fmt.Sprintf(order, id), "x") }, "msg_\uFFFF_", http.StatusAccepted},
	}

	type sent struct{ id, body string }
	var queued []sent               // what listen-to-yourself accepted
	outboxOf := map[string]string{} // listen-to-yourself aggregate id -> the outbox mode's
	for i, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := map[string]int{}
			for _, mode := range []string{"outbox", "listen-to-yourself"} {
				id := fmt.Sprintf("edge-%d-%d-%s", run, i, mode[:3])
				if strings.HasPrefix(tt.name, "a deposit") || strings.HasPrefix(tt.name, "the same") {
					f.mustAccept(openAccount(id))
				}
				body := tt.body(t, id)
				req := f.post(body)
				if tt.webhookID != "" {
					// Recorded as a second key beside the Idempotency-Key,
					// which must be ASCII.
					sign(t, &req, secretNew, tt.webhookID+strconv.FormatInt(run, 10)+mode, time.Now())
					req.Headers["idempotency-key"] = id
				}
				resp, err := modes[mode].Handle(ctx, req)
				if err != nil {
					t.Fatal(err)
				}
				got[mode] = resp.StatusCode
				if resp.StatusCode >= 500 || resp.StatusCode != tt.want {
					t.Errorf("%s: %d %s, want %d", mode, resp.StatusCode, resp.Body, tt.want)
				}
				if resp.StatusCode == http.StatusRequestEntityTooLarge && !strings.Contains(resp.Body, strconv.Itoa(dispatch.MaxBodyBytes)) {
					t.Errorf("%s: the 413 does not name the limit: %s", mode, resp.Body)
				}
				if mode == "listen-to-yourself" && resp.StatusCode == http.StatusAccepted {
					queued = append(queued, sent{id, body})
					outboxOf[id] = fmt.Sprintf("edge-%d-%d-out", run, i)
				}
			}
			if got["outbox"] != got["listen-to-yourself"] {
				t.Errorf("outbox answered %d, listen-to-yourself %d: a request must get the same answer in both modes", got["outbox"], got["listen-to-yourself"])
			}
		})
	}

	// Read what was queued back, as Lambda hands it to the consumer, and
	// apply it: the same bodies, the same states as the outbox path's.
	records := receiveCommands(t, queue, len(queued))
	byID := map[string]events.SQSMessage{}
	for _, r := range records {
		q, err := commandqueue.Decode(r)
		if err != nil {
			t.Fatalf("message %s: %v", r.MessageId, err)
		}
		byID[q.AggregateID] = r
		for _, s := range queued {
			if s.id == q.AggregateID && string(q.Request().Body) != s.body {
				t.Errorf("%s: the queued body differs from the request body (%d bytes, sent %d)", s.id, len(q.Request().Body), len(s.body))
			}
		}
	}
	var logs, metrics testenv.SyncBuffer
	consumer := commandqueue.NewConsumer(svc, obs.NewLogger(&logs, 0), obs.NewMetrics(&metrics, "Dispatcher"))
	for _, s := range queued {
		r, ok := byID[s.id]
		if !ok {
			t.Errorf("%s: answered 202, not on the commands queue", s.id)
			continue
		}
		resp, err := consumer.Handle(ctx, events.SQSEvent{Records: []events.SQSMessage{r}})
		if err != nil || len(resp.BatchItemFailures) != 0 {
			t.Errorf("%s: the consumer failed it: %+v %v\n%s", s.id, resp, err, logs.String())
			continue
		}
		a, err := store.Load(ctx, s.id)
		if err != nil {
			t.Fatal(err)
		}
		want, err := store.Load(ctx, outboxOf[s.id])
		if err != nil {
			t.Fatal(err)
		}
		if a.Version != want.Version || !reflect.DeepEqual(a.Data, want.Data) {
			t.Errorf("%s: applied to version %d, the outbox path's is at %d (or the data differs)", s.id, a.Version, want.Version)
		}
	}
	if strings.Contains(logs.String(), "refused") {
		t.Errorf("the consumer refused a command:\n%s", logs.String())
	}
}

// receiveCommands takes n messages off the commands queue (and deletes
// them), as Lambda's SQS event source hands them over.
func receiveCommands(t *testing.T, queue string, n int) []events.SQSMessage {
	t.Helper()
	c := sqsapi.NewFromConfig(testenv.Get(t).AWS)
	ctx := context.Background()
	var out []events.SQSMessage
	for deadline := time.Now().Add(10 * time.Second); len(out) < n && time.Now().Before(deadline); {
		res, err := c.ReceiveMessage(ctx, &sqsapi.ReceiveMessageInput{QueueUrl: aws.String(queue), MaxNumberOfMessages: 10,
			MessageAttributeNames: []string{"All"}, MessageSystemAttributeNames: []sqstypes.MessageSystemAttributeName{sqstypes.MessageSystemAttributeNameAll}})
		if err != nil {
			t.Fatal(err)
		}
		for _, m := range res.Messages {
			r := events.SQSMessage{MessageId: aws.ToString(m.MessageId), Body: aws.ToString(m.Body), Attributes: m.Attributes,
				EventSourceARN: "arn:aws:sqs:us-east-1:000000000000:commands.fifo", MessageAttributes: map[string]events.SQSMessageAttribute{}}
			for k, v := range m.MessageAttributes {
				r.MessageAttributes[k] = events.SQSMessageAttribute{StringValue: v.StringValue, DataType: aws.ToString(v.DataType)}
			}
			out = append(out, r)
			if _, err := c.DeleteMessage(ctx, &sqsapi.DeleteMessageInput{QueueUrl: aws.String(queue), ReceiptHandle: m.ReceiptHandle}); err != nil {
				t.Fatal(err)
			}
		}
	}
	if len(out) != n {
		t.Fatalf("%d messages on the commands queue, want %d", len(out), n)
	}
	return out
}
