package runner_test

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/aws/aws-lambda-go/events"
	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb"
	ddbtypes "github.com/aws/aws-sdk-go-v2/service/dynamodb/types"
	sqsapi "github.com/aws/aws-sdk-go-v2/service/sqs"
	sqstypes "github.com/aws/aws-sdk-go-v2/service/sqs/types"

	"github.com/dispatcher-dev/dispatcher/internal/local/provision"
	"github.com/dispatcher-dev/dispatcher/internal/local/runner"
	"github.com/dispatcher-dev/dispatcher/internal/testkit/testenv"
	"github.com/dispatcher-dev/dispatcher/internal/webhook"
)

// testSecret signs the requests of these tests.
const testSecret = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"

var stackSeq atomic.Int32

// freshStack provisions the template again under a new stack name in the
// test binary's emulators: its own table, stream and queues, so that no
// test sees another's records.
func freshStack(t *testing.T) *provision.Stack {
	t.Helper()
	return stackOf(t, "rt", provision.Options{})
}

// stackOf provisions the template as freshStack does, under a name that
// starts with prefix, with opts' parameters and template folder.
func stackOf(t *testing.T, prefix string, opts provision.Options) *provision.Stack {
	t.Helper()
	env := testenv.Get(t)
	opts.TemplatePath = filepath.Join(env.Root, "infra", "template.yaml")
	opts.StackName = fmt.Sprintf("%s%d-%d", prefix, os.Getpid()%100000, stackSeq.Add(1))
	s, err := provision.Apply(context.Background(), env.AWS, opts)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

// testLog sends the runner's and functions' logs to the test log.
func testLog(t *testing.T) *slog.Logger {
	return slog.New(slog.NewTextHandler(tlogWriter{t}, &slog.HandlerOptions{Level: slog.LevelDebug}))
}

type tlogWriter struct{ t *testing.T }

func (w tlogWriter) Write(p []byte) (int, error) {
	w.t.Log(strings.TrimRight(string(p), "\n"))
	return len(p), nil
}

// start runs a runner on a free loopback port with fast polling.
func start(t *testing.T, s *provision.Stack, fns map[string]runner.Function, tune func(*runner.StreamMapping)) *runner.Runner {
	t.Helper()
	env := testenv.Get(t)
	r, err := runner.New(runner.Options{
		Stack: s, AWS: env.AWS, Functions: fns, Addr: "127.0.0.1:0",
		PollInterval: 20 * time.Millisecond, RetryDelay: 5 * time.Millisecond, Log: testLog(t), Tune: tune,
	})
	if err != nil {
		t.Fatal(err)
	}
	if err := r.Start(context.Background()); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(r.Close)
	return r
}

// funcOf makes a Function of a typed handler, run in-process.
func funcOf(h any) runner.Function {
	return runner.NewInProcess("arn:aws:lambda:us-east-1:000000000000:function:test", 30*time.Second, h)
}

// stub answers every request with 200 (for tests that do not use the API).
var stub = funcOf(func(context.Context, events.APIGatewayV2HTTPRequest) (events.APIGatewayV2HTTPResponse, error) {
	return events.APIGatewayV2HTTPResponse{StatusCode: 200}, nil
})

// batchLog records the batches a fake stream function receives.
type batchLog struct {
	mu      sync.Mutex
	batches [][]string // sort keys of each batch's records
	seqs    [][]string
	names   []string // eventName of every record received
}

func (b *batchLog) add(ev events.DynamoDBEvent) {
	b.mu.Lock()
	defer b.mu.Unlock()
	var sks, seqs []string
	for _, r := range ev.Records {
		sks = append(sks, r.Change.Keys["sk"].String())
		seqs = append(seqs, r.Change.SequenceNumber)
		b.names = append(b.names, r.EventName)
	}
	b.batches = append(b.batches, sks)
	b.seqs = append(b.seqs, seqs)
}

func (b *batchLog) get() [][]string {
	b.mu.Lock()
	defer b.mu.Unlock()
	out := make([][]string, len(b.batches))
	copy(out, b.batches)
	return out
}

// eventually polls cond until it holds or the time is up.
func eventually(t *testing.T, within time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(within)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("after %s: %s", within, what)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// putOutbox writes raw items with the given sort keys under one aggregate,
// in order (each is one stream record).
func putItems(t *testing.T, s *provision.Stack, agg string, sks ...string) {
	t.Helper()
	db := dynamodb.NewFromConfig(testenv.Get(t).AWS)
	for _, sk := range sks {
		_, err := db.PutItem(context.Background(), &dynamodb.PutItemInput{
			TableName: aws.String(s.Physical("OutboxTable")),
			Item: map[string]ddbtypes.AttributeValue{
				"pk": &ddbtypes.AttributeValueMemberS{Value: "AGG#" + agg},
				"sk": &ddbtypes.AttributeValueMemberS{Value: sk},
			},
		})
		if err != nil {
			t.Fatal(err)
		}
	}
}

// receiveAll takes every message from a queue (and deletes them).
func receiveAll(t *testing.T, url string) []sqstypes.Message {
	t.Helper()
	c := sqsapi.NewFromConfig(testenv.Get(t).AWS)
	var out []sqstypes.Message
	for {
		res, err := c.ReceiveMessage(context.Background(), &sqsapi.ReceiveMessageInput{
			QueueUrl: aws.String(url), MaxNumberOfMessages: 10,
			MessageSystemAttributeNames: []sqstypes.MessageSystemAttributeName{sqstypes.MessageSystemAttributeNameAll},
		})
		if err != nil {
			t.Fatal(err)
		}
		if len(res.Messages) == 0 {
			return out
		}
		for _, m := range res.Messages {
			out = append(out, m)
			if _, err := c.DeleteMessage(context.Background(), &sqsapi.DeleteMessageInput{QueueUrl: aws.String(url), ReceiptHandle: m.ReceiptHandle}); err != nil {
				t.Fatal(err)
			}
		}
	}
}

// signed builds a request signed with testSecret.
func signed(t *testing.T, method, url, body string) *http.Request {
	t.Helper()
	req, err := http.NewRequest(method, url, strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	id := fmt.Sprintf("msg_%d", time.Now().UnixNano())
	now := time.Now()
	sig, err := webhook.Sign(testSecret, id, now, webhook.SignedContent(method, req.URL.EscapedPath(), req.URL.RawQuery, []byte(body)))
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("webhook-id", id)
	req.Header.Set("webhook-timestamp", strconv.FormatInt(now.Unix(), 10))
	req.Header.Set("webhook-signature", sig)
	return req
}

func do(t *testing.T, req *http.Request) (*http.Response, []byte) {
	t.Helper()
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return resp, b
}

func jsonOf(t *testing.T, b []byte) map[string]any {
	t.Helper()
	var m map[string]any
	if err := json.Unmarshal(b, &m); err != nil {
		t.Fatalf("not JSON: %v: %s", err, b)
	}
	return m
}
