package apigw_test

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"net/http"
	"net/url"
	"os"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-lambda-go/events"
	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb/types"

	"github.com/dispatcher-dev/dispatcher/internal/apigw"
	"github.com/dispatcher-dev/dispatcher/internal/caller"
	"github.com/dispatcher-dev/dispatcher/internal/command"
	"github.com/dispatcher-dev/dispatcher/internal/dynamo"
	"github.com/dispatcher-dev/dispatcher/internal/emails"
	"github.com/dispatcher-dev/dispatcher/internal/obs"
	"github.com/dispatcher-dev/dispatcher/internal/testkit/testenv"
	"github.com/dispatcher-dev/dispatcher/internal/webhook"
)

func TestMain(m *testing.M) { testenv.Main(m) }

// Two secrets, as during a rotation; a third that is no longer active.
const (
	secretOld     = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"
	secretNew     = "whsec_C2FVsBQIhrscChlQIMV+b5sSYspob7oD"
	secretRetired = "whsec_dGhpcyBzZWNyZXQgd2FzIHJvdGF0ZWQgb3V0IQ=="
)

type fixture struct {
	t       testing.TB
	h       *apigw.Handler
	db      *dynamodb.Client
	table   string
	store   *dynamo.Store
	tmpl    *emails.Set
	auth    apigw.Authenticator // the default caller of secretOld and secretNew, unless a test sets others
	logs    *testenv.SyncBuffer
	metrics *testenv.SyncBuffer
}

// handler is a Handler on exec and reader with the fixture's callers, log
// and metrics.
func (f *fixture) handler(exec apigw.Executor, reader apigw.Reader) *apigw.Handler {
	return apigw.New(exec, reader, f.auth, obs.NewLogger(f.logs, 0), obs.NewMetrics(f.metrics, "Dispatcher"))
}

func newFixture(t testing.TB) *fixture {
	t.Helper()
	env := testenv.Get(t)
	f := &fixture{t: t, db: dynamodb.NewFromConfig(env.AWS), table: env.Stack.Physical("OutboxTable"), logs: &testenv.SyncBuffer{}, metrics: &testenv.SyncBuffer{}}
	f.store = dynamo.New(f.db, f.table, 8)
	var err error
	if f.tmpl, err = emails.Load(); err != nil {
		t.Fatal(err)
	}
	if f.auth, err = caller.New(caller.Config{DefaultSecrets: []string{secretOld, secretNew}}); err != nil {
		t.Fatal(err)
	}
	f.h = f.handler(command.New(f.store, f.tmpl), f.store)
	return f
}

func sample(t testing.TB, name string) events.APIGatewayV2HTTPRequest {
	t.Helper()
	b, err := os.ReadFile("testdata/" + name)
	if err != nil {
		t.Fatal(err)
	}
	var req events.APIGatewayV2HTTPRequest
	if err := json.Unmarshal(b, &req); err != nil {
		t.Fatal(err)
	}
	return req
}

var msgSeq int64

// post builds a signed POST /v1/commands from the API Gateway sample.
func (f *fixture) post(body string, mods ...func(*events.APIGatewayV2HTTPRequest)) events.APIGatewayV2HTTPRequest {
	f.t.Helper()
	req := sample(f.t, "post-command.json")
	req.Body = body
	req.Headers["content-length"] = strconv.Itoa(len(body))
	msgSeq++
	id := fmt.Sprintf("msg_%d_%d", time.Now().UnixNano(), msgSeq)
	sign(f.t, &req, secretNew, id, time.Now())
	for _, m := range mods {
		m(&req)
	}
	return req
}

// sign signs what the API checks: a POST's body, a GET's request line.
func sign(t testing.TB, req *events.APIGatewayV2HTTPRequest, secret, id string, ts time.Time) {
	t.Helper()
	body := []byte(req.Body)
	if req.IsBase64Encoded {
		body, _ = base64.StdEncoding.DecodeString(req.Body)
	}
	content := webhook.SignedContent(req.RequestContext.HTTP.Method, req.RawPath, req.RawQueryString, body)
	sig, err := webhook.Sign(secret, id, ts, content)
	if err != nil {
		t.Fatal(err)
	}
	req.Headers["webhook-id"] = id
	req.Headers["webhook-timestamp"] = strconv.FormatInt(ts.Unix(), 10)
	req.Headers["webhook-signature"] = sig
}

func (f *fixture) get(path string, id string, query map[string]string) events.APIGatewayV2HTTPRequest {
	f.t.Helper()
	req := sample(f.t, "get-aggregate.json")
	req.RawPath = path
	req.RequestContext.HTTP.Path = path
	req.PathParameters = map[string]string{"id": id}
	if strings.HasSuffix(path, "/outbox") {
		req.RouteKey = apigw.RouteAggregateOutbox
	}
	req.QueryStringParameters = query
	q := url.Values{}
	for k, v := range query {
		q.Set(k, v)
	}
	req.RawQueryString = q.Encode()
	sign(f.t, &req, secretOld, fmt.Sprintf("get_%d", time.Now().UnixNano()), time.Now())
	return req
}

func (f *fixture) do(req events.APIGatewayV2HTTPRequest) (events.APIGatewayV2HTTPResponse, map[string]any) {
	f.t.Helper()
	resp, err := f.h.Handle(context.Background(), req)
	if err != nil {
		f.t.Fatalf("Handle returned an error (it must answer instead): %v", err)
	}
	var body map[string]any
	if resp.Body != "" {
		if err := json.Unmarshal([]byte(resp.Body), &body); err != nil {
			f.t.Fatalf("response body is not JSON: %v: %s", err, resp.Body)
		}
	}
	return resp, body
}

// items returns every item of the table whose pk starts with AGG#<id> or IDEMP#.
func (f *fixture) count(aggregateID string) int {
	f.t.Helper()
	out, err := f.db.Query(context.Background(), &dynamodb.QueryInput{
		TableName: aws.String(f.table), ConsistentRead: aws.Bool(true),
		KeyConditionExpression:    aws.String("pk = :pk"),
		ExpressionAttributeValues: map[string]types.AttributeValue{":pk": &types.AttributeValueMemberS{Value: "AGG#" + aggregateID}},
	})
	if err != nil {
		f.t.Fatal(err)
	}
	return int(out.Count)
}

func (f *fixture) idempotencyRecords() int {
	f.t.Helper()
	n := 0
	p := dynamodb.NewScanPaginator(f.db, &dynamodb.ScanInput{
		TableName:                 aws.String(f.table),
		FilterExpression:          aws.String("begins_with(pk, :p)"),
		ExpressionAttributeValues: map[string]types.AttributeValue{":p": &types.AttributeValueMemberS{Value: "IDEMP#"}},
		ConsistentRead:            aws.Bool(true),
	})
	for p.HasMorePages() {
		out, err := p.NextPage(context.Background())
		if err != nil {
			f.t.Fatal(err)
		}
		n += int(out.Count)
	}
	return n
}

func newID(prefix string) string { return fmt.Sprintf("%s-%d", prefix, time.Now().UnixNano()) }

func openAccount(id string) string {
	return fmt.Sprintf(`{"type":"OpenAccount","aggregateId":%q,"data":{"owner":"Ada Lovelace","email":"ada@example.com","currency":"EUR"}}`, id)
}

func deposit(id string, amount int, ref string) string {
	return fmt.Sprintf(`{"type":"DepositFunds","aggregateId":%q,"data":{"amount":%d,"currency":"EUR","reference":%q}}`, id, amount, ref)
}

func (f *fixture) mustAccept(body string) map[string]any {
	f.t.Helper()
	resp, b := f.do(f.post(body))
	if resp.StatusCode != http.StatusAccepted {
		f.t.Fatalf("status %d, want 202: %s", resp.StatusCode, resp.Body)
	}
	return b
}
