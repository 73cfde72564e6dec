package runner_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"reflect"
	"regexp"
	"slices"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/aws/aws-lambda-go/events"
	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb"
	ddbtypes "github.com/aws/aws-sdk-go-v2/service/dynamodb/types"

	"github.com/dispatcher-dev/dispatcher/internal/local/provision"
	"github.com/dispatcher-dev/dispatcher/internal/local/runner"
	"github.com/dispatcher-dev/dispatcher/internal/replay"
	"github.com/dispatcher-dev/dispatcher/internal/testkit/testenv"
)

func outbox(n int) string { return "OUTBOX#0000000000000000000" + string(rune('0'+n)) + "#0" }

func TestTheTemplateSettingsAreWhatTheMappingUses(t *testing.T) {
	s := freshStack(t)
	spec, err := runner.ReadSpec(s)
	if err != nil {
		t.Fatal(err)
	}
	if len(spec.Streams) != 1 {
		t.Fatalf("%d stream mappings, want 1", len(spec.Streams))
	}
	m := spec.Streams[0]
	got := []any{m.Function, m.StartingPosition, m.BatchSize, m.BatchingWindow, m.Bisect, m.MaxRetryAttempts, m.MaxRecordAge, m.ReportBatchItemFailure, len(m.Filters), m.Filters[0].String()}
	want := []any{"StreamRelayFunction", "TRIM_HORIZON", 100, time.Second, true, 5, 6 * time.Hour, true, 1, templatePattern}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("mapping %v, want %v", got, want)
	}
	if m.StreamArn != s.Attr("OutboxTable", "StreamArn") || m.OnFailureQueueURL != s.Physical("StreamRecoveryQueue") {
		t.Errorf("stream %s -> on failure %s: not the provisioned table and recovery queue", m.StreamArn, m.OnFailureQueueURL)
	}
	for _, n := range spec.Notes {
		if strings.Contains(n, "StreamRelayFunction") {
			t.Errorf("a stream setting is not emulated: %s", n)
		}
	}
	var keys []string
	for _, r := range spec.Routes {
		keys = append(keys, r.Key())
	}
	slices.Sort(keys)
	if want := []string{"$default", "GET /v1/aggregates/{id}", "GET /v1/aggregates/{id}/events", "GET /v1/aggregates/{id}/outbox", "POST /v1/commands"}; !slices.Equal(keys, want) {
		t.Errorf("routes %v, want %v", keys, want)
	}
}

func TestTheFilterKeepsNonOutboxRecordsFromTheFunction(t *testing.T) {
	s := freshStack(t)
	var seen batchLog
	relay := funcOf(func(_ context.Context, ev events.DynamoDBEvent) (events.DynamoDBEventResponse, error) {
		seen.add(ev)
		return events.DynamoDBEventResponse{}, nil
	})
	r := start(t, s, map[string]runner.Function{"CommandFunction": stub, "StreamRelayFunction": relay}, func(m *runner.StreamMapping) { m.BatchingWindow = 0 })
	putItems(t, s, "f1", "STATE", outbox(1))
	// A MODIFY of the outbox item (as when it is marked DELIVERED).
	db := dynamodb.NewFromConfig(testenv.Get(t).AWS)
	_, err := db.UpdateItem(context.Background(), &dynamodb.UpdateItemInput{
		TableName: aws.String(s.Physical("OutboxTable")),
		Key: map[string]ddbtypes.AttributeValue{
			"pk": &ddbtypes.AttributeValueMemberS{Value: "AGG#f1"}, "sk": &ddbtypes.AttributeValueMemberS{Value: outbox(1)},
		},
		UpdateExpression:          aws.String("SET #s = :d"),
		ExpressionAttributeNames:  map[string]string{"#s": "status"},
		ExpressionAttributeValues: map[string]ddbtypes.AttributeValue{":d": &ddbtypes.AttributeValueMemberS{Value: "DELIVERED"}},
	})
	if err != nil {
		t.Fatal(err)
	}
	putItems(t, s, "f1", outbox(2))
	eventually(t, 10*time.Second, "two outbox inserts delivered", func() bool { return r.Stats("StreamRelayFunction").Delivered == 2 })
	eventually(t, 5*time.Second, "four records read", func() bool { return r.Stats("StreamRelayFunction").Read == 4 })
	var got []string
	for _, b := range seen.get() {
		got = append(got, b...)
	}
	if want := []string{outbox(1), outbox(2)}; !slices.Equal(got, want) {
		t.Errorf("the function saw %v, want only the outbox inserts %v", got, want)
	}
	if st := r.Stats("StreamRelayFunction"); st.Filtered != 2 {
		t.Errorf("%d records filtered out, want 2 (the STATE insert and the MODIFY): %+v", st.Filtered, st)
	}
}

func TestAPartialBatchFailureRetriesFromTheFailedRecordOnly(t *testing.T) {
	s := freshStack(t)
	// Written before the mapping starts: one read, one batch.
	putItems(t, s, "p1", outbox(1), outbox(2), outbox(3), outbox(4), outbox(5))
	var seen batchLog
	var failedOnce atomic.Bool
	relay := funcOf(func(_ context.Context, ev events.DynamoDBEvent) (events.DynamoDBEventResponse, error) {
		seen.add(ev)
		if len(ev.Records) >= 3 && !failedOnce.Swap(true) {
			return events.DynamoDBEventResponse{BatchItemFailures: []events.DynamoDBBatchItemFailure{{ItemIdentifier: ev.Records[2].Change.SequenceNumber}}}, nil
		}
		return events.DynamoDBEventResponse{}, nil
	})
	r := start(t, s, map[string]runner.Function{"CommandFunction": stub, "StreamRelayFunction": relay}, nil)
	eventually(t, 10*time.Second, "all five records done", func() bool { return r.Stats("StreamRelayFunction").Delivered == 5 })
	want := [][]string{
		{outbox(1), outbox(2), outbox(3), outbox(4), outbox(5)},
		{outbox(3), outbox(4), outbox(5)},
	}
	if got := seen.get(); !reflect.DeepEqual(got, want) {
		t.Errorf("batches %v,\nwant %v (records before the failed one are checkpointed)", got, want)
	}
}

func TestAFunctionErrorBisectsTheBatchUntilThePoisonRecordIsAlone(t *testing.T) {
	s := freshStack(t)
	putItems(t, s, "b1", outbox(1), outbox(2), outbox(3), outbox(4))
	var seen batchLog
	relay := funcOf(func(_ context.Context, ev events.DynamoDBEvent) (events.DynamoDBEventResponse, error) {
		seen.add(ev)
		for _, r := range ev.Records {
			if r.Change.Keys["sk"].String() == outbox(3) {
				return events.DynamoDBEventResponse{}, errors.New("poison record")
			}
		}
		return events.DynamoDBEventResponse{}, nil
	})
	r := start(t, s, map[string]runner.Function{"CommandFunction": stub, "StreamRelayFunction": relay}, func(m *runner.StreamMapping) { m.MaxRetryAttempts = 1 })
	eventually(t, 10*time.Second, "every record delivered or discarded", func() bool {
		st := r.Stats("StreamRelayFunction")
		return st.Delivered+st.Discarded == 4
	})
	want := [][]string{
		{outbox(1), outbox(2), outbox(3), outbox(4)}, // error: bisect (no retry used)
		{outbox(1), outbox(2)},                       // ok
		{outbox(3), outbox(4)},                       // error: bisect
		{outbox(3)},                                  // error: retry 1
		{outbox(3)},                                  // error: retries exhausted, to the on-failure destination
		{outbox(4)},                                  // ok
	}
	if got := seen.get(); !reflect.DeepEqual(got, want) {
		t.Errorf("batches\n%v,\nwant\n%v", got, want)
	}
	msgs := receiveAll(t, s.Physical("StreamRecoveryQueue"))
	if len(msgs) != 1 {
		t.Fatalf("%d on-failure records, want 1", len(msgs))
	}
	rec, ok, err := replay.ParseOnFailure(aws.ToString(msgs[0].Body))
	if !ok || err != nil {
		t.Fatalf("not an on-failure record (%v): %s", err, aws.ToString(msgs[0].Body))
	}
	b := rec.DDBStreamBatchInfo
	if b.BatchSize != 1 || b.StartSequenceNumber != seen.seqs[3][0] || b.EndSequenceNumber != seen.seqs[3][0] {
		t.Errorf("on-failure batch %+v, want only the poison record %s", b, seen.seqs[3][0])
	}
	if rec.RequestContext.ApproximateInvokeCount != 4 {
		t.Errorf("approximateInvokeCount %d, want 4 (two batches holding it, then two alone)", rec.RequestContext.ApproximateInvokeCount)
	}
}

func TestExhaustedRetriesSendTheOnFailureRecordInAWSShape(t *testing.T) {
	s := freshStack(t)
	putItems(t, s, "x1", outbox(1), outbox(2))
	var calls atomic.Int32
	relay := funcOf(func(_ context.Context, ev events.DynamoDBEvent) (events.DynamoDBEventResponse, error) {
		calls.Add(1)
		return events.DynamoDBEventResponse{}, errors.New("always fails")
	})
	// The template's settings as they are: bisect, 5 retries.
	r := start(t, s, map[string]runner.Function{"CommandFunction": stub, "StreamRelayFunction": relay}, nil)
	eventually(t, 15*time.Second, "both records discarded", func() bool { return r.Stats("StreamRelayFunction").Discarded == 2 })
	// [1,2] bisected; then each alone: 1 + 5 retries.
	if n := calls.Load(); n != 1+6+6 {
		t.Errorf("%d invocations, want 13", n)
	}
	msgs := receiveAll(t, s.Physical("StreamRecoveryQueue"))
	if len(msgs) != 2 {
		t.Fatalf("%d on-failure records, want 2", len(msgs))
	}
	example, err := os.ReadFile("testdata/onfailure-dynamodb-aws-example.json")
	if err != nil {
		t.Fatal(err)
	}
	body := aws.ToString(msgs[0].Body)
	if got, want := shape(t, []byte(body)), shape(t, example); !reflect.DeepEqual(got, want) {
		t.Errorf("record shape\n%v\nAWS's documented example\n%v", got, want)
	}
	rec, ok, err := replay.ParseOnFailure(body)
	if !ok || err != nil {
		t.Fatalf("replay cannot parse it (%v): %s", err, body)
	}
	rc, resp, b := rec.RequestContext, rec.ResponseContext, rec.DDBStreamBatchInfo
	checks := []struct {
		what      string
		got, want any
	}{
		{"condition", rc.Condition, "RetryAttemptsExhausted"},
		{"approximateInvokeCount", rc.ApproximateInvokeCount, 7},
		{"functionArn", rc.FunctionArn, "arn:aws:lambda:us-east-1:000000000000:function:" + s.Eval.StackName() + "-StreamRelayFunction"},
		{"statusCode", resp.StatusCode, 200},
		{"executedVersion", resp.ExecutedVersion, "$LATEST"},
		{"functionError", resp.FunctionError, "Unhandled"},
		{"version", rec.Version, "1.0"},
		{"batchSize", b.BatchSize, 1},
		{"streamArn", b.StreamArn, s.Attr("OutboxTable", "StreamArn")},
	}
	for _, c := range checks {
		if c.got != c.want {
			t.Errorf("%s = %v, want %v", c.what, c.got, c.want)
		}
	}
	if !regexp.MustCompile(`^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$`).MatchString(rec.Timestamp) {
		t.Errorf("timestamp %q is not like AWS's 2019-11-14T00:13:49.717Z", rec.Timestamp)
	}
	if !regexp.MustCompile(`^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ$`).MatchString(b.ApproximateArrivalOfFirstRecord) {
		t.Errorf("approximateArrivalOfFirstRecord %q is not like AWS's 2019-11-14T00:13:19Z", b.ApproximateArrivalOfFirstRecord)
	}
	if !strings.HasPrefix(b.ShardID, "shardId-") || b.StartSequenceNumber == "" || b.StartSequenceNumber != b.EndSequenceNumber {
		t.Errorf("batch info %+v", b)
	}
}

func TestRecordsOlderThanTheMaximumAgeGoToTheDestination(t *testing.T) {
	s := freshStack(t)
	putItems(t, s, "a1", outbox(1))
	relay := funcOf(func(_ context.Context, ev events.DynamoDBEvent) (events.DynamoDBEventResponse, error) {
		return events.DynamoDBEventResponse{}, errors.New("down")
	})
	r := start(t, s, map[string]runner.Function{"CommandFunction": stub, "StreamRelayFunction": relay}, func(m *runner.StreamMapping) {
		m.MaxRecordAge, m.MaxRetryAttempts, m.BatchingWindow = time.Second, -1, 0
	})
	eventually(t, 10*time.Second, "the record discarded", func() bool { return r.Stats("StreamRelayFunction").Discarded == 1 })
	msgs := receiveAll(t, s.Physical("StreamRecoveryQueue"))
	if len(msgs) != 1 {
		t.Fatalf("%d on-failure records, want 1", len(msgs))
	}
	// DynamoDB Local's ApproximateCreationDateTime is coarse (seconds to
	// tens of seconds early), so the record may look too old before its
	// first invocation: how many invocations it got is not checked.
	rec, _, _ := replay.ParseOnFailure(aws.ToString(msgs[0].Body))
	if rec.RequestContext.Condition != "RecordAgeExceeded" {
		t.Errorf("condition %s, want RecordAgeExceeded", rec.RequestContext.Condition)
	}
}

// shape maps every key path of a JSON document to its JSON type.
func shape(t *testing.T, b []byte) map[string]string {
	t.Helper()
	var v any
	if err := json.Unmarshal(b, &v); err != nil {
		t.Fatal(err)
	}
	out := map[string]string{}
	var walk func(string, any)
	walk = func(p string, v any) {
		switch x := v.(type) {
		case map[string]any:
			for k, c := range x {
				walk(p+"."+k, c)
			}
		case string:
			out[p] = "string"
		case float64:
			out[p] = "number"
		default:
			out[p] = reflect.TypeOf(v).String()
		}
	}
	walk("", v)
	return out
}

func TestAChangedTemplateSettingIsWhatTheRunnerUses(t *testing.T) {
	env := testenv.Get(t)
	src, err := os.ReadFile(filepath.Join(env.Root, "infra", "template.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	changed := strings.Replace(string(src), "BatchSize: 100", "BatchSize: 7", 1)
	changed = strings.Replace(changed, "MaximumRetryAttempts: 5", "MaximumRetryAttempts: 2", 1)
	if changed == string(src) {
		t.Fatal("the template no longer says BatchSize: 100; update this test")
	}
	path := filepath.Join(t.TempDir(), "template.yaml")
	if err := os.WriteFile(path, []byte(changed), 0o644); err != nil {
		t.Fatal(err)
	}
	s, err := provision.Apply(context.Background(), env.AWS, provision.Options{TemplatePath: path, StackName: fmt.Sprintf("chg%d", os.Getpid()%100000)})
	if err != nil {
		t.Fatal(err)
	}
	spec, err := runner.ReadSpec(s)
	if err != nil {
		t.Fatal(err)
	}
	if m := spec.Streams[0]; m.BatchSize != 7 || m.MaxRetryAttempts != 2 {
		t.Errorf("the runner uses batch size %d and %d retries, want the template's 7 and 2", m.BatchSize, m.MaxRetryAttempts)
	}
}

// CaughtUp is what a caller waits for to know that everything written so
// far has been handled: false while a batch waits in the window or runs,
// true once it is settled and the shard is read to its end.
func TestCaughtUpHoldsOnlyWhenEveryRecordIsSettled(t *testing.T) {
	s := freshStack(t)
	release := make(chan struct{})
	var calls atomic.Int32
	relay := funcOf(func(ctx context.Context, ev events.DynamoDBEvent) (events.DynamoDBEventResponse, error) {
		if calls.Add(1) == 1 {
			select {
			case <-release:
			case <-ctx.Done():
			}
		}
		return events.DynamoDBEventResponse{}, nil
	})
	r := start(t, s, map[string]runner.Function{"CommandFunction": stub, "StreamRelayFunction": relay}, func(m *runner.StreamMapping) { m.BatchingWindow = 0 })
	eventually(t, 10*time.Second, "caught up on an empty stream", func() bool { return r.CaughtUp("StreamRelayFunction") })
	putItems(t, s, "c1", outbox(1))
	eventually(t, 10*time.Second, "the first batch in flight", func() bool { return calls.Load() == 1 })
	for range 5 { // several polls while the batch runs
		if r.CaughtUp("StreamRelayFunction") {
			t.Fatal("CaughtUp while a batch is in flight")
		}
		time.Sleep(30 * time.Millisecond)
	}
	close(release)
	eventually(t, 10*time.Second, "caught up after the batch", func() bool { return r.CaughtUp("StreamRelayFunction") })
	if st := r.Stats("StreamRelayFunction"); st.Delivered != 1 {
		t.Errorf("stats %+v, want the one record delivered", st)
	}
	if r.CaughtUp("NoSuchFunction") {
		t.Error("CaughtUp for a function with no mapping")
	}
}

// The API's routes come from the template's AWS::ApiGatewayV2::Route
// resources: their keys, their function, and their authorization, which
// follows the ApiAuth parameter as it does in AWS. Without a $default route,
// a request that matches no route is API Gateway's 404, and the function
// never sees it.
func TestTheTemplatesRoutesAndTheirAuthorizationAreWhatTheRunnerServes(t *testing.T) {
	env := testenv.Get(t)
	src, err := os.ReadFile(filepath.Join(env.Root, "infra", "template.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	apply := func(t *testing.T, tmpl string, params map[string]string) *provision.Stack {
		path := filepath.Join(t.TempDir(), "template.yaml")
		if err := os.WriteFile(path, []byte(tmpl), 0o644); err != nil {
			t.Fatal(err)
		}
		s, err := provision.Apply(context.Background(), env.AWS, provision.Options{TemplatePath: path, StackName: fmt.Sprintf("rt%d", time.Now().UnixNano()%1e9), Parameters: params})
		if err != nil {
			t.Fatal(err)
		}
		return s
	}
	for _, auth := range []string{"webhook", "iam"} {
		t.Run("ApiAuth="+auth, func(t *testing.T) {
			spec, err := runner.ReadSpec(apply(t, string(src), map[string]string{"ApiAuth": auth}))
			if err != nil {
				t.Fatal(err)
			}
			if len(spec.Routes) != 5 {
				t.Fatalf("%d routes, want 5", len(spec.Routes))
			}
			for _, r := range spec.Routes {
				if r.IAM != (auth == "iam") || r.Function != "CommandFunction" {
					t.Errorf("route %s: IAM %v, function %s; want IAM %v, CommandFunction", r.Key(), r.IAM, r.Function, auth == "iam")
				}
			}
		})
	}
	t.Run("without $default", func(t *testing.T) {
		i := strings.Index(string(src), "  DefaultRoute:\n")
		j := strings.Index(string(src), "  CommandApiPermission:\n")
		if i < 0 || j < i {
			t.Fatal("the template no longer has DefaultRoute before CommandApiPermission; update this test")
		}
		c := &capture{}
		r := start(t, apply(t, string(src[:i])+string(src[j:]), nil), map[string]runner.Function{"CommandFunction": c.fn(), "StreamRelayFunction": noop()}, nil)
		for _, req := range []*http.Request{
			mustReq(t, http.MethodGet, r.URL()+"/v2/nothing", nil),
			mustReq(t, http.MethodDelete, r.URL()+"/v1/commands", nil),
			mustReq(t, http.MethodGet, r.URL()+"/v1/aggregates/a/outbox/more", nil),
			mustReq(t, http.MethodGet, r.URL()+"/v1/aggregates/", nil),
		} {
			resp, body := do(t, req)
			if resp.StatusCode != 404 || string(body) != `{"message":"Not Found"}` {
				t.Errorf("%s %s: %d %s, want API Gateway's 404", req.Method, req.URL.Path, resp.StatusCode, body)
			}
		}
		if n := c.count(); n != 0 {
			t.Errorf("the function ran %d times for unmatched routes, want 0", n)
		}
	})
}
