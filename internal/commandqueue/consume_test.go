package commandqueue

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"reflect"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-lambda-go/events"

	"github.com/dispatcher-dev/dispatcher/internal/caller"
	"github.com/dispatcher-dev/dispatcher/internal/command"
	"github.com/dispatcher-dev/dispatcher/internal/dispatch"
	"github.com/dispatcher-dev/dispatcher/internal/obs"
	"github.com/dispatcher-dev/dispatcher/internal/sqs/sqsspec"
)

// scripted answers each command by its idempotency key.
type scripted struct {
	errs  map[string]error
	tried []string
}

func (s *scripted) Execute(_ context.Context, req command.Request) (command.Result, error) {
	s.tried = append(s.tried, req.IdempotencyKey)
	return command.Result{}, s.errs[req.IdempotencyKey]
}

const fifoArn = "arn:aws:sqs:us-east-1:000000000000:x-commands.fifo"

func msg(t *testing.T, arn, group, key string) events.SQSMessage {
	t.Helper()
	m, err := Message(command.Queued{AggregateID: group, CommandType: "DepositFunds", Command: `{}`, Caller: command.LegacyCaller("webhook"), IdempotencyKey: key, ReceivedAt: time.Now(), Traceparent: "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"})
	if err != nil {
		t.Fatal(err)
	}
	return record(m, "m-"+key, arn)
}

// record is a sent message as Lambda hands it to the consumer.
func record(m dispatch.QueueMessage, id, arn string) events.SQSMessage {
	r := events.SQSMessage{MessageId: id, Body: m.Body, EventSourceARN: arn, Attributes: map[string]string{"MessageGroupId": m.GroupID},
		MessageAttributes: map[string]events.SQSMessageAttribute{}}
	for k, v := range m.Attributes {
		r.MessageAttributes[k] = events.SQSMessageAttribute{StringValue: &v, DataType: "String"}
	}
	return r
}

func TestHandleReportsPartialBatchFailures(t *testing.T) {
	transient := dispatch.E("dynamo.Commit", dispatch.Transient, "throttled", nil)
	overdraw := dispatch.UnprocessableField("data.amount", "the withdrawal would overdraw the account")
	tests := []struct {
		name      string
		arn       string
		batch     [][2]string // group, key
		errs      map[string]error
		wantFail  []string
		wantTried []string
	}{
		{"acknowledges a batch that applied", fifoArn, [][2]string{{"a", "1"}, {"b", "2"}}, nil, nil, []string{"1", "2"}},
		{"holds the later messages of a failed group and goes on with the others", fifoArn,
			[][2]string{{"a", "1"}, {"b", "2"}, {"a", "3"}, {"b", "4"}, {"a", "5"}},
			map[string]error{"1": transient}, []string{"m-1", "m-3", "m-5"}, []string{"1", "2", "4"}},
		{"fails from the failed message on, not before it", fifoArn,
			[][2]string{{"a", "1"}, {"a", "2"}, {"a", "3"}},
			map[string]error{"2": transient}, []string{"m-2", "m-3"}, []string{"1", "2"}},
		{"acknowledges a command its caller's grant refuses", fifoArn,
			[][2]string{{"a", "1"}, {"a", "2"}},
			map[string]error{"1": dispatch.E("dispatch.CheckSends", dispatch.Forbidden, "caller team-a may not send template \"deposit-receipt\"", nil)}, nil, []string{"1", "2"}},
		{"acknowledges a command the domain refuses and goes on with its group", fifoArn,
			[][2]string{{"a", "1"}, {"a", "2"}},
			map[string]error{"1": overdraw}, nil, []string{"1", "2"}},
		{"retries an unexpected error", fifoArn, [][2]string{{"a", "1"}},
			map[string]error{"1": fmt.Errorf("boom")}, []string{"m-1"}, []string{"1"}},
		{"holds nothing back on a standard queue", "arn:aws:sqs:us-east-1:000000000000:x-commands",
			[][2]string{{"a", "1"}, {"a", "2"}},
			map[string]error{"1": transient}, []string{"m-1"}, []string{"1", "2"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			exec := &scripted{errs: tt.errs}
			c := NewConsumer(exec, slog.New(slog.NewTextHandler(io.Discard, nil)), obs.NewMetrics(io.Discard, "test"))
			var ev events.SQSEvent
			for _, m := range tt.batch {
				ev.Records = append(ev.Records, msg(t, tt.arn, m[0], m[1]))
			}
			resp, err := c.Handle(context.Background(), ev)
			if err != nil {
				t.Fatal(err)
			}
			var got []string
			for _, f := range resp.BatchItemFailures {
				got = append(got, f.ItemIdentifier)
			}
			if !slices.Equal(got, tt.wantFail) {
				t.Errorf("failures %v, want %v", got, tt.wantFail)
			}
			if !slices.Equal(exec.tried, tt.wantTried) {
				t.Errorf("tried %v, want %v", exec.tried, tt.wantTried)
			}
		})
	}
}

func TestARefusalIsLoggedAtWarnWithItsIdsAndCounted(t *testing.T) {
	var logs, metrics bytes.Buffer
	exec := &scripted{errs: map[string]error{"k1": dispatch.UnprocessableField("data.amount", "the withdrawal would overdraw the account")}}
	c := NewConsumer(exec, slog.New(slog.NewJSONHandler(&logs, nil)), obs.NewMetrics(&metrics, "test"))
	resp, _ := c.Handle(context.Background(), events.SQSEvent{Records: []events.SQSMessage{msg(t, fifoArn, "acc-1", "k1")}})
	if len(resp.BatchItemFailures) != 0 {
		t.Errorf("a refusal was reported failed: %+v", resp)
	}
	l := logs.String()
	for _, want := range []string{`"level":"WARN"`, `"callerId":"default"`, `"aggregateId":"acc-1"`, `"messageId":"m-k1"`, `"commandType":"DepositFunds"`, `"outcome":"refused"`, "overdraw"} {
		if !strings.Contains(l, want) {
			t.Errorf("log %s lacks %s", l, want)
		}
	}
	if !strings.Contains(metrics.String(), "QueuedCommandRefused") {
		t.Errorf("metrics %s: no QueuedCommandRefused", metrics.String())
	}
}

func TestAnUnreadableMessageIsRetriedToTheDLQ(t *testing.T) {
	c := NewConsumer(&scripted{}, slog.New(slog.NewTextHandler(io.Discard, nil)), obs.NewMetrics(io.Discard, "test"))
	resp, _ := c.Handle(context.Background(), events.SQSEvent{Records: []events.SQSMessage{{MessageId: "x", Body: "not json", EventSourceARN: fifoArn}}})
	if len(resp.BatchItemFailures) != 1 {
		t.Errorf("response %+v: want the unreadable message failed", resp)
	}
}

func TestTheMessageCarriesGroupDedupAndTheBodyVerbatim(t *testing.T) {
	body := `{ "type":"DepositFunds", "aggregateId":"acc-1", "data":{"amount":1} }`
	q := command.Queued{AggregateID: "acc-1", CommandType: "DepositFunds", Command: body, Caller: command.LegacyCaller("webhook"), IdempotencyKey: "k", ReceivedAt: time.Now()}
	m, err := Message(q)
	if err != nil {
		t.Fatal(err)
	}
	if m.GroupID != "acc-1" || m.DedupID != command.DedupID("webhook", "k", command.RequestHash([]byte(body))) || len(m.DedupID) > 128 {
		t.Errorf("group %q dedup %q", m.GroupID, m.DedupID)
	}
	if m.Body != body {
		t.Errorf("message body %q, want the request body byte for byte", m.Body)
	}
	back, err := Decode(record(m, "m", fifoArn))
	if err != nil || string(back.Request().Body) != body {
		t.Errorf("round trip: %q, %v", back.Command, err)
	}
}

// The queue drops a message whose dedup id it saw in the last 5 minutes:
// the same command sent again, and nothing else. A key reused with another
// body is another message, which the consumer refuses (issue 24: it was
// dropped, after a 202).
func TestTheDedupIDIsTheSameOnlyForTheSameScopeKeyAndBody(t *testing.T) {
	h1, h2 := command.RequestHash([]byte(`{"a":1}`)), command.RequestHash([]byte(`{"a":2}`))
	id := command.DedupID("webhook", "k", h1)
	if command.DedupID("webhook", "k", h1) != id {
		t.Error("the same command gets two dedup ids")
	}
	for name, other := range map[string]string{
		"another body":  command.DedupID("webhook", "k", h2),
		"another key":   command.DedupID("webhook", "k2", h1),
		"another scope": command.DedupID("iam:arn", "k", h1),
	} {
		if other == id {
			t.Errorf("%s: the same dedup id: the queue would drop a command answered 202", name)
		}
	}
}

// Whatever the command function queues comes back as it was sent: the body
// byte for byte (its request hash is the synchronous path's), and the
// metadata. A body, scope or webhook-id holding a character SQS refuses
// travels base64.
func TestAQueuedCommandDecodesAsItWasQueued(t *testing.T) {
	at := time.Date(2026, 12, 7, 10, 11, 12, 123456789, time.UTC)
	teamA := dispatch.Caller{ID: "team-a", Scope: "caller:team-a", Aggregates: []string{"Order/team-a-*"}, Grant: dispatch.Grant{Templates: []string{"notification"}, Events: []string{"order.*"}}}
	base := command.Queued{AggregateID: "acc-1", CommandType: "Dispatch", Command: `{"type":"Dispatch"}`, Caller: teamA,
		IdempotencyKey: "key-1", WebhookID: "msg_1", ReceivedAt: at, Traceparent: "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"}
	tests := []struct {
		name   string
		change func(*command.Queued)
		base64 bool
	}{
		{"plain", func(*command.Queued) {}, false},
		{"no webhook-id (an IAM caller of a deployment without callers)", func(q *command.Queued) {
			q.WebhookID, q.Caller = "", command.LegacyCaller("iam:arn:aws:iam::123456789012:user/ops")
		}, false},
		{"the default caller", func(q *command.Queued) { q.Caller = command.LegacyCaller("webhook") }, false},
		{"newlines, quotes, < and escapes stay as they are", func(q *command.Queued) { q.Command = "{\"s\":\"<\\n\\u0001\\\"\"}\n\n\t" }, false},
		{"characters outside the BMP", func(q *command.Queued) { q.Command = `{"s":"😀"}` }, false},
		{"U+FFFE in the body", func(q *command.Queued) { q.Command = "{\"s\":\"\uFFFE\"}" }, true},
		{"U+FFFF in the webhook-id", func(q *command.Queued) { q.WebhookID = "msg_\uFFFF" }, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			q := base
			tt.change(&q)
			m, err := Message(q)
			if err != nil {
				t.Fatal(err)
			}
			if got := m.Attributes["encoding"] == "base64"; got != tt.base64 {
				t.Errorf("base64 = %v, want %v", got, tt.base64)
			}
			if !sqsspec.ValidText(m.Body) {
				t.Errorf("body %q holds a character SQS refuses", m.Body)
			}
			for k, v := range m.Attributes {
				if v == "" || !sqsspec.ValidText(v) {
					t.Errorf("attribute %s = %q: empty, or a character SQS refuses", k, v)
				}
			}
			if !tt.base64 && m.Body != q.Command {
				t.Errorf("body %q, want the command byte for byte", m.Body)
			}
			back, err := Decode(record(m, "m", fifoArn))
			if err != nil {
				t.Fatal(err)
			}
			if !back.ReceivedAt.Equal(q.ReceivedAt) {
				t.Errorf("receivedAt %v, want %v", back.ReceivedAt, q.ReceivedAt)
			}
			back.ReceivedAt = q.ReceivedAt
			if !reflect.DeepEqual(back, q) {
				t.Errorf("decoded %+v\nwant    %+v", back, q)
			}
		})
	}
}

// The largest command the command function accepts, with the longest
// metadata, base64: it fits the commands queue, so the only size refusal in
// the listen-to-yourself mode is the body's 413, the one the outbox path
// answers (issue 24: it was a 500).
func TestTheLargestCommandFitsTheQueue(t *testing.T) {
	q := command.Queued{
		AggregateID:    strings.Repeat("a", dispatch.MaxAggregateIDLen),
		CommandType:    strings.Repeat("T", dispatch.MaxTypeLen),
		Command:        strings.Repeat("\uFFFF", dispatch.MaxBodyBytes/3) + "x", // the most base64 (and U+FFFF forces it)
		Caller:         largestCaller(),
		IdempotencyKey: strings.Repeat("k", dispatch.MaxIdempotencyKeyLen),
		WebhookID:      strings.Repeat("w", 256), // webhook.maxIDLen
		ReceivedAt:     time.Now(),
		Traceparent:    "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
	}
	if len(q.Command) != dispatch.MaxBodyBytes {
		t.Fatalf("body of %d bytes, want %d", len(q.Command), dispatch.MaxBodyBytes)
	}
	m, err := Message(q)
	if err != nil {
		t.Fatalf("the largest command does not fit: %v", err)
	}
	if n := sqsspec.Size(m); n > MaxMessageBytes {
		t.Errorf("%d bytes, over %d", n, MaxMessageBytes)
	}
	// The check that would refuse a longer one (a bug, so Internal).
	q.Command = strings.Repeat("x", MaxMessageBytes)
	if _, err := Message(q); dispatch.KindOf(err) != dispatch.Internal {
		t.Errorf("a message over %d bytes: %v, want an Internal error", MaxMessageBytes, err)
	}
}

// largestCaller has the longest id (an IAM ARN is at most 2048
// characters) and every list at its longest.
func largestCaller() dispatch.Caller {
	arn := strings.Repeat("r", 2048)
	c := dispatch.Caller{ID: arn, Scope: "iam:" + arn}
	for range caller.MaxPatterns {
		c.Aggregates = append(c.Aggregates, strings.Repeat("T", dispatch.MaxTypeLen)+"/"+strings.Repeat("a", dispatch.MaxAggregateIDLen))
		c.Templates = append(c.Templates, strings.Repeat("t", 64))
		c.Events = append(c.Events, strings.Repeat("e", dispatch.MaxTypeLen))
	}
	return c
}

// A message queued by the command function before callers existed (no
// caller attribute) is applied as the caller it came from then: its scope,
// every grant.
func TestAMessageQueuedBeforeCallersIsAppliedWithItsScope(t *testing.T) {
	m, err := Message(command.Queued{AggregateID: "acc-1", CommandType: "DepositFunds", Command: `{}`, Caller: command.LegacyCaller("webhook"), IdempotencyKey: "k", ReceivedAt: time.Now()})
	if err != nil {
		t.Fatal(err)
	}
	delete(m.Attributes, "caller")
	got := &recording{}
	c := NewConsumer(got, slog.New(slog.NewTextHandler(io.Discard, nil)), obs.NewMetrics(io.Discard, "test"))
	resp, _ := c.Handle(context.Background(), events.SQSEvent{Records: []events.SQSMessage{record(m, "m", fifoArn)}})
	if len(resp.BatchItemFailures) != 0 || len(got.reqs) != 1 || !reflect.DeepEqual(got.reqs[0].Caller, dispatch.Caller{ID: "default", Scope: "webhook", All: true}) {
		t.Errorf("failures %+v, executed %+v", resp.BatchItemFailures, got.reqs)
	}
}

// A message queued before the body travelled as the message body (one JSON
// document, attributes commandType and traceparent only) is still applied
// after a deploy: the queue may hold some for up to 4 days.
func TestAMessageInTheFormatQueuedBeforeIsStillApplied(t *testing.T) {
	body := `{"type":"DepositFunds","aggregateId":"acc-1","data":{"amount":1}}`
	b, err := json.Marshal(map[string]any{"aggregateId": "acc-1", "commandType": "DepositFunds", "command": body, "scope": "webhook", "idempotencyKey": "old-1", "receivedAt": time.Now()})
	if err != nil {
		t.Fatal(err)
	}
	tp := "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"
	r := events.SQSMessage{MessageId: "m-old", Body: string(b), EventSourceARN: fifoArn, Attributes: map[string]string{"MessageGroupId": "acc-1"},
		MessageAttributes: map[string]events.SQSMessageAttribute{"commandType": {StringValue: aws("DepositFunds"), DataType: "String"}, "traceparent": {StringValue: &tp, DataType: "String"}}}
	got := &recording{}
	c := NewConsumer(got, slog.New(slog.NewTextHandler(io.Discard, nil)), obs.NewMetrics(io.Discard, "test"))
	resp, _ := c.Handle(context.Background(), events.SQSEvent{Records: []events.SQSMessage{r}})
	if len(resp.BatchItemFailures) != 0 || len(got.reqs) != 1 || string(got.reqs[0].Body) != body || got.reqs[0].IdempotencyKey != "old-1" || !reflect.DeepEqual(got.reqs[0].Caller, command.LegacyCaller("webhook")) {
		t.Errorf("failures %+v, executed %+v", resp.BatchItemFailures, got.reqs)
	}
}

type recording struct{ reqs []command.Request }

func (r *recording) Execute(_ context.Context, req command.Request) (command.Result, error) {
	r.reqs = append(r.reqs, req)
	return command.Result{}, nil
}

func aws(s string) *string { return &s }
