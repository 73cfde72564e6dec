package runner_test

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"math/rand/v2"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb"
	sqsapi "github.com/aws/aws-sdk-go-v2/service/sqs"
	sqstypes "github.com/aws/aws-sdk-go-v2/service/sqs/types"

	"github.com/dispatcher-dev/dispatcher/internal/command"
	"github.com/dispatcher-dev/dispatcher/internal/dispatch"
	"github.com/dispatcher-dev/dispatcher/internal/dynamo"
	"github.com/dispatcher-dev/dispatcher/internal/emails"
	"github.com/dispatcher-dev/dispatcher/internal/local/provision"
	"github.com/dispatcher-dev/dispatcher/internal/local/runner"
	"github.com/dispatcher-dev/dispatcher/internal/testkit/testenv"
	"github.com/dispatcher-dev/dispatcher/internal/webhook"
)

// commitRecorder keeps the last commit the command service made, so the
// baseline can write the very same items bare.
type commitRecorder struct {
	*dynamo.Store
	mu   sync.Mutex
	last dispatch.Commit
}

func (r *commitRecorder) Commit(ctx context.Context, c dispatch.Commit) (dispatch.CommitResult, error) {
	res, err := r.Store.Commit(ctx, c)
	r.mu.Lock()
	r.last = c
	r.mu.Unlock()
	return res, err
}

// BenchmarkEndToEnd measures a signed OpenAccount command posted to the
// local runner's API (functions in-process, the template's stream mapping
// polling at the runner's default interval, as Lambda polls a shard about
// four times a second) until its event is receivable in the events queue.
// Beside it, in the same run and interleaved, the sum of its parts bare:
// the poll interval + the batching window + one TransactWriteItems of the
// same items + one SendMessageBatch of the same event. Commands arrive at a
// random point of the poll cycle and wait on average half an interval, so
// the p50 sits below the sum and the p99 near it; what goes above the sum
// is the runner's and the relay's own work (stream read, status read,
// marks). "template" keeps the template's MaximumBatchingWindowInSeconds
// (1 s: the mapping waits that long for a fuller batch); "nowindow" sets it
// to 0, the latency floor of the design.
func BenchmarkEndToEnd(b *testing.B) {
	b.Run("template", func(b *testing.B) { benchEndToEnd(b, false) })
	b.Run("nowindow", func(b *testing.B) { benchEndToEnd(b, true) })
}

func benchEndToEnd(b *testing.B, noWindow bool) {
	env := testenv.Get(b)
	poll := runner.DefaultPollInterval
	var window time.Duration
	tune := func(m *runner.StreamMapping) {
		if noWindow {
			m.BatchingWindow = 0
		}
		if m.Function == "StreamRelayFunction" {
			window = m.BatchingWindow
		}
	}
	s := benchStack(b)
	fns, err := inProcess(b, s)
	if err != nil {
		b.Fatal(err)
	}
	r, err := runner.New(runner.Options{Stack: s, AWS: env.AWS, Functions: fns, Addr: "127.0.0.1:0", PollInterval: poll, RetryDelay: 5 * time.Millisecond, Tune: tune, Log: slog.New(slog.NewTextHandler(io.Discard, nil))})
	if err != nil {
		b.Fatal(err)
	}
	if err := r.Start(context.Background()); err != nil {
		b.Fatal(err)
	}
	defer r.Close()

	ctx := context.Background()
	sqs := sqsapi.NewFromConfig(env.AWS)
	db := dynamodb.NewFromConfig(env.AWS)
	queue := s.Physical("EventsQueue")
	// The bare parts write to the package's shared stack, which no runner
	// polls, so they never reach the measured queue.
	bareTable, bareQueue := env.Stack.Physical("OutboxTable"), env.Stack.Physical("EventsQueue")
	tmpl, err := emails.Load()
	if err != nil {
		b.Fatal(err)
	}
	rec := &commitRecorder{Store: dynamo.New(db, bareTable, 8)}
	svc := command.New(rec, tmpl)

	receive := func(id string) (sqstypes.Message, time.Time) {
		deadline := time.Now().Add(20 * time.Second)
		for time.Now().Before(deadline) {
			out, err := sqs.ReceiveMessage(ctx, &sqsapi.ReceiveMessageInput{QueueUrl: aws.String(queue), MaxNumberOfMessages: 10, WaitTimeSeconds: 1,
				MessageAttributeNames: []string{"All"}})
			if err != nil {
				b.Fatal(err)
			}
			at := time.Now()
			var mine *sqstypes.Message
			for _, m := range out.Messages {
				var ce struct {
					Subject string `json:"subject"`
				}
				_ = json.Unmarshal([]byte(aws.ToString(m.Body)), &ce)
				if ce.Subject == id {
					mine = &m
				}
				if _, err := sqs.DeleteMessage(ctx, &sqsapi.DeleteMessageInput{QueueUrl: aws.String(queue), ReceiptHandle: m.ReceiptHandle}); err != nil {
					b.Fatal(err)
				}
			}
			if mine != nil {
				return *mine, at
			}
		}
		b.Fatalf("the event of %s never reached the queue", id)
		return sqstypes.Message{}, time.Time{}
	}

	run := func(i int) (e2e, tx, send time.Duration) {
		id := fmt.Sprintf("e2e-%d-%d", time.Now().UnixNano(), i)
		body := openAccount(id, id+"@example.com")
		req := signedTB(b, r.URL()+"/v1/commands", body) // signing is the client's work
		// Commands arrive at any point of the mapping's poll cycle: without
		// this the loop locks onto the cycle and measures one phase only.
		time.Sleep(rand.N(poll))
		t0 := time.Now()
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			b.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != http.StatusAccepted {
			b.Fatalf("POST: %d", resp.StatusCode)
		}
		msg, at := receive(id)
		e2e = at.Sub(t0)

		// Bare: the same transaction shape (recorded from the real command
		// service, not timed), then timed on a fresh aggregate.
		bareID := id + "-bare"
		if _, err := svc.Execute(ctx, command.Request{Body: []byte(openAccount(bareID, bareID+"@example.com")), Caller: dispatch.Caller{ID: "bench", Scope: "bench", All: true}, IdempotencyKey: "rec-" + bareID}); err != nil {
			b.Fatal(err)
		}
		in, err := rec.TransactInput(rekeyCommit(rec.last, bareID+"-tx"))
		if err != nil {
			b.Fatal(err)
		}
		t1 := time.Now()
		if _, err := db.TransactWriteItems(ctx, in); err != nil {
			b.Fatal(err)
		}
		tx = time.Since(t1)

		// Bare: the relay's send of that event, as one SendMessageBatch.
		t2 := time.Now()
		out, err := sqs.SendMessageBatch(ctx, &sqsapi.SendMessageBatchInput{QueueUrl: aws.String(bareQueue), Entries: []sqstypes.SendMessageBatchRequestEntry{{
			Id: aws.String("0"), MessageBody: msg.Body, MessageAttributes: msg.MessageAttributes,
			MessageGroupId: aws.String(bareID), MessageDeduplicationId: aws.String(bareID),
		}}})
		send = time.Since(t2)
		if err != nil || len(out.Failed) > 0 {
			b.Fatalf("SendMessageBatch: %v %+v", err, out)
		}
		return e2e, tx, send
	}
	for i := range 5 { // warm connections, the JVM and the code paths
		run(-1 - i)
	}
	var e2es, sums, txs, sends []time.Duration
	b.ResetTimer()
	for i := 0; b.Loop(); i++ {
		e, tx, send := run(i)
		e2es, txs, sends = append(e2es, e), append(txs, tx), append(sends, send)
		sums = append(sums, poll+window+tx+send)
	}
	b.StopTimer()
	pct := func(d []time.Duration, p float64) time.Duration {
		s := slices.Clone(d)
		slices.Sort(s)
		return s[int(float64(len(s)-1)*p)]
	}
	ms := func(d time.Duration) float64 { return float64(d.Microseconds()) / 1000 }
	b.ReportMetric(ms(pct(e2es, 0.5)), "e2e-p50-ms")
	b.ReportMetric(ms(pct(e2es, 0.99)), "e2e-p99-ms")
	b.ReportMetric(ms(poll), "poll-ms")
	b.ReportMetric(ms(window), "window-ms")
	b.ReportMetric(ms(pct(txs, 0.5)), "bare-tx-p50-ms")
	b.ReportMetric(ms(pct(sends, 0.5)), "bare-send-p50-ms")
	b.ReportMetric(ms(pct(sums, 0.5)), "parts-p50-ms")
	b.ReportMetric(ms(pct(sums, 0.99)), "parts-p99-ms")
	b.ReportMetric(float64(pct(e2es, 0.5))/float64(pct(sums, 0.5)), "p50-ratio")
	b.ReportMetric(float64(pct(e2es, 0.99))/float64(pct(sums, 0.99)), "p99-ratio")
	b.ReportMetric(0, "ns/op")
}

// rekeyCommit moves a commit to a fresh aggregate and key, so that the
// bare write has the same shape without colliding.
func rekeyCommit(c dispatch.Commit, id string) dispatch.Commit {
	c.State.ID = id
	c.Idempotency.Key = "bare-" + id
	c.Idempotency.Response.AggregateID = id
	c.Token = ""
	c.PrevVersion = 0
	out := make([]dispatch.OutboxItem, len(c.Outbox))
	for i, o := range c.Outbox {
		o.AggregateID, o.EventID = id, dispatch.NewEventID(time.Now())
		out[i] = o
	}
	c.Outbox = out
	return c
}

// benchStack provisions the template under a new stack name: its own
// table, stream and queues.
func benchStack(b *testing.B) *provision.Stack {
	b.Helper()
	env := testenv.Get(b)
	s, err := provision.Apply(context.Background(), env.AWS, provision.Options{
		TemplatePath: filepath.Join(env.Root, "infra", "template.yaml"),
		StackName:    fmt.Sprintf("rb%d-%d", os.Getpid()%100000, stackSeq.Add(1)),
	})
	if err != nil {
		b.Fatal(err)
	}
	return s
}

func inProcess(b *testing.B, s *provision.Stack) (map[string]runner.Function, error) {
	env := testenv.Get(b)
	spec, err := runner.ReadSpec(s)
	if err != nil {
		return nil, err
	}
	dirs, err := runner.FunctionDirs(env.Root)
	if err != nil {
		return nil, err
	}
	return runner.InProcessFunctions(context.Background(), env.AWS, spec, s.Eval.StackName(), dirs, map[string]string{"WEBHOOK_SECRETS": testSecret})
}

func signedTB(b *testing.B, url, body string) *http.Request {
	b.Helper()
	req, err := http.NewRequest(http.MethodPost, url, strings.NewReader(body))
	if err != nil {
		b.Fatal(err)
	}
	id := fmt.Sprintf("msg_%d", time.Now().UnixNano())
	now := time.Now()
	sig, err := webhook.Sign(testSecret, id, now, []byte(body))
	if err != nil {
		b.Fatal(err)
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("webhook-id", id)
	req.Header.Set("webhook-timestamp", strconv.FormatInt(now.Unix(), 10))
	req.Header.Set("webhook-signature", sig)
	return req
}
