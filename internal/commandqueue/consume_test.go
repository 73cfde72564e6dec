package commandqueue

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-lambda-go/events"

	"github.com/dispatcher-dev/dispatcher/internal/command"
	"github.com/dispatcher-dev/dispatcher/internal/dispatch"
	"github.com/dispatcher-dev/dispatcher/internal/obs"
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
	b, err := json.Marshal(command.Queued{AggregateID: group, CommandType: "DepositFunds", Command: `{}`, Scope: "webhook", IdempotencyKey: key, ReceivedAt: time.Now()})
	if err != nil {
		t.Fatal(err)
	}
	return events.SQSMessage{MessageId: "m-" + key, Body: string(b), EventSourceARN: arn, Attributes: map[string]string{"MessageGroupId": group}}
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
	for _, want := range []string{`"level":"WARN"`, `"aggregateId":"acc-1"`, `"messageId":"m-k1"`, `"commandType":"DepositFunds"`, `"outcome":"refused"`, "overdraw"} {
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
	q := command.Queued{AggregateID: "acc-1", CommandType: "DepositFunds", Command: body, Scope: "webhook", IdempotencyKey: "k"}
	m, err := Message(q)
	if err != nil {
		t.Fatal(err)
	}
	if m.GroupID != "acc-1" || m.DedupID != command.DedupID("webhook", "k") || len(m.DedupID) > 128 {
		t.Errorf("group %q dedup %q", m.GroupID, m.DedupID)
	}
	back, err := command.DecodeQueued(m.Body)
	if err != nil || string(back.Request().Body) != body {
		t.Errorf("round trip: %q, %v", back.Command, err)
	}
	if command.DedupID("webhook", "k") == command.DedupID("iam:arn", "k") {
		t.Error("the dedup id ignores the scope")
	}
}
