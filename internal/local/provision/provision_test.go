package provision_test

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb"
	ddbtypes "github.com/aws/aws-sdk-go-v2/service/dynamodb/types"
	"github.com/aws/aws-sdk-go-v2/service/dynamodbstreams"
	streamtypes "github.com/aws/aws-sdk-go-v2/service/dynamodbstreams/types"
	"github.com/aws/aws-sdk-go-v2/service/sesv2"
	sestypes "github.com/aws/aws-sdk-go-v2/service/sesv2/types"
	"github.com/aws/aws-sdk-go-v2/service/sqs"
	sqstypes "github.com/aws/aws-sdk-go-v2/service/sqs/types"

	"github.com/dispatcher-dev/dispatcher/internal/local/provision"
	"github.com/dispatcher-dev/dispatcher/internal/testkit/testenv"
)

func TestMain(m *testing.M) { testenv.Main(m) }

func ctx(t *testing.T) context.Context {
	c, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	t.Cleanup(cancel)
	return c
}

func s(v string) ddbtypes.AttributeValue { return &ddbtypes.AttributeValueMemberS{Value: v} }

// describeStackTable describes the table the template declares as logical,
// after checking its name is the stack's.
func describeStackTable(t *testing.T, logical string) (*testenv.Env, context.Context, *dynamodb.Client, string, *dynamodb.DescribeTableOutput) {
	t.Helper()
	env := testenv.Get(t)
	c := ctx(t)
	db := dynamodb.NewFromConfig(env.AWS)
	name := env.Stack.Physical(logical)
	if want := testenv.StackName + "-" + logical; name != want {
		t.Fatalf("table name = %q, want %q", name, want)
	}
	out, err := db.DescribeTable(c, &dynamodb.DescribeTableInput{TableName: aws.String(name)})
	if err != nil {
		t.Fatal(err)
	}
	return env, c, db, name, out
}

func TestTableComesFromTheTemplate(t *testing.T) {
	env, c, db, name, out := describeStackTable(t, "OutboxTable")
	tbl := out.Table
	var keys []string
	for _, k := range tbl.KeySchema {
		keys = append(keys, aws.ToString(k.AttributeName)+":"+string(k.KeyType))
	}
	if got := strings.Join(keys, ","); got != "pk:HASH,sk:RANGE" {
		t.Errorf("key schema = %s", got)
	}
	if tbl.StreamSpecification == nil || tbl.StreamSpecification.StreamViewType != ddbtypes.StreamViewTypeNewImage {
		t.Errorf("stream = %+v, want NEW_IMAGE", tbl.StreamSpecification)
	}
	if env.Stack.Attr("OutboxTable", "StreamArn") != aws.ToString(tbl.LatestStreamArn) || tbl.LatestStreamArn == nil {
		t.Errorf("StreamArn attribute %q does not match the table's %q", env.Stack.Attr("OutboxTable", "StreamArn"), aws.ToString(tbl.LatestStreamArn))
	}
	if len(tbl.GlobalSecondaryIndexes) != 1 || aws.ToString(tbl.GlobalSecondaryIndexes[0].IndexName) != "undelivered" {
		t.Fatalf("GSIs = %+v, want the sparse index 'undelivered'", tbl.GlobalSecondaryIndexes)
	}
	ttl, err := db.DescribeTimeToLive(c, &dynamodb.DescribeTimeToLiveInput{TableName: aws.String(name)})
	if err != nil {
		t.Fatal(err)
	}
	if d := ttl.TimeToLiveDescription; d == nil || aws.ToString(d.AttributeName) != "expiresAt" || d.TimeToLiveStatus != ddbtypes.TimeToLiveStatusEnabled {
		t.Errorf("TTL = %+v, want expiresAt ENABLED", ttl.TimeToLiveDescription)
	}
}

func TestQueuesComeFromTheTemplate(t *testing.T) {
	env := testenv.Get(t)
	c := ctx(t)
	q := sqs.NewFromConfig(env.AWS)
	attrs := func(id string) map[string]string {
		t.Helper()
		out, err := q.GetQueueAttributes(c, &sqs.GetQueueAttributesInput{
			QueueUrl:       aws.String(env.Stack.Physical(id)),
			AttributeNames: []sqstypes.QueueAttributeName{sqstypes.QueueAttributeNameAll},
		})
		if err != nil {
			t.Fatalf("%s: %v", id, err)
		}
		return out.Attributes
	}
	events := attrs("EventsQueue")
	if events["FifoQueue"] != "true" || events["ContentBasedDeduplication"] != "false" {
		t.Errorf("events queue: FifoQueue=%q ContentBasedDeduplication=%q, want a FIFO queue with explicit dedup ids", events["FifoQueue"], events["ContentBasedDeduplication"])
	}
	if !strings.HasSuffix(env.Stack.Attr("EventsQueue", "QueueName"), "-events.fifo") {
		t.Errorf("events queue name = %q", env.Stack.Attr("EventsQueue", "QueueName"))
	}
	consumerDLQ := env.Stack.Attr("EventsConsumerDeadLetterQueue", "Arn")
	if rp := events["RedrivePolicy"]; !strings.Contains(rp, consumerDLQ) || !strings.Contains(rp, "maxReceiveCount") {
		t.Errorf("events queue RedrivePolicy = %q, want it to target %s", rp, consumerDLQ)
	}
	dlq := attrs("DeadLetterQueue")
	if dlq["FifoQueue"] == "true" {
		t.Error("the delivery DLQ must be a standard queue: ESM on-failure destinations cannot be FIFO")
	}
	if dlq["MessageRetentionPeriod"] != "1209600" {
		t.Errorf("DLQ retention = %s, want 14 days (1209600)", dlq["MessageRetentionPeriod"])
	}
}

func TestFailedTransactionConditionWritesNothing(t *testing.T) {
	env := testenv.Get(t)
	c := ctx(t)
	db := dynamodb.NewFromConfig(env.AWS)
	table := aws.String(env.Stack.Physical("OutboxTable"))
	agg := fmt.Sprintf("AGG#tx-%d", time.Now().UnixNano())

	// The state item expects version 0 but is absent; the condition on the
	// third action fails, so neither the state nor the outbox item may appear.
	_, err := db.TransactWriteItems(c, &dynamodb.TransactWriteItemsInput{TransactItems: []ddbtypes.TransactWriteItem{
		{Put: &ddbtypes.Put{TableName: table, Item: map[string]ddbtypes.AttributeValue{"pk": s(agg), "sk": s("STATE"), "version": &ddbtypes.AttributeValueMemberN{Value: "1"}}}},
		{Put: &ddbtypes.Put{TableName: table, Item: map[string]ddbtypes.AttributeValue{"pk": s(agg), "sk": s("OUTBOX#00000000000000000001#0")}}},
		{ConditionCheck: &ddbtypes.ConditionCheck{TableName: table, Key: map[string]ddbtypes.AttributeValue{"pk": s("IDEMP#x"), "sk": s("IDEMP")}, ConditionExpression: aws.String("attribute_exists(pk)")}},
	}})
	var canceled *ddbtypes.TransactionCanceledException
	if !errors.As(err, &canceled) {
		t.Fatalf("err = %v, want TransactionCanceledException", err)
	}
	reasons := canceled.CancellationReasons
	if len(reasons) != 3 || aws.ToString(reasons[2].Code) != "ConditionalCheckFailed" {
		t.Errorf("cancellation reasons = %+v, want ConditionalCheckFailed on the third action", reasons)
	}
	out, err := db.Query(c, &dynamodb.QueryInput{
		TableName: table, ConsistentRead: aws.Bool(true),
		KeyConditionExpression:    aws.String("pk = :pk"),
		ExpressionAttributeValues: map[string]ddbtypes.AttributeValue{":pk": s(agg)},
	})
	if err != nil {
		t.Fatal(err)
	}
	if out.Count != 0 {
		t.Fatalf("a canceled transaction left %d items behind: %v", out.Count, out.Items)
	}
}

func TestEachOutboxInsertYieldsOneStreamRecord(t *testing.T) {
	env := testenv.Get(t)
	c := ctx(t)
	db := dynamodb.NewFromConfig(env.AWS)
	table := aws.String(env.Stack.Physical("OutboxTable"))
	agg := fmt.Sprintf("AGG#stream-%d", time.Now().UnixNano())
	items := []ddbtypes.TransactWriteItem{
		{Put: &ddbtypes.Put{TableName: table, Item: map[string]ddbtypes.AttributeValue{"pk": s(agg), "sk": s("STATE")}}},
	}
	want := map[string]bool{}
	for i := range 3 {
		sk := fmt.Sprintf("OUTBOX#00000000000000000001#%d", i)
		want[sk] = true
		items = append(items, ddbtypes.TransactWriteItem{Put: &ddbtypes.Put{TableName: table, Item: map[string]ddbtypes.AttributeValue{"pk": s(agg), "sk": s(sk), "eventId": s(fmt.Sprintf("ev-%d", i))}}})
	}
	if _, err := db.TransactWriteItems(c, &dynamodb.TransactWriteItemsInput{TransactItems: items}); err != nil {
		t.Fatal(err)
	}

	streams := dynamodbstreams.NewFromConfig(env.AWS)
	arn := env.Stack.Attr("OutboxTable", "StreamArn")
	seen := map[string]int{}
	deadline := time.Now().Add(10 * time.Second)
	for time.Now().Before(deadline) && len(seen) < len(want) {
		clear(seen)
		desc, err := streams.DescribeStream(c, &dynamodbstreams.DescribeStreamInput{StreamArn: aws.String(arn)})
		if err != nil {
			t.Fatal(err)
		}
		for _, sh := range desc.StreamDescription.Shards {
			it, err := streams.GetShardIterator(c, &dynamodbstreams.GetShardIteratorInput{
				StreamArn: aws.String(arn), ShardId: sh.ShardId, ShardIteratorType: streamtypes.ShardIteratorTypeTrimHorizon,
			})
			if err != nil {
				t.Fatal(err)
			}
			iter := it.ShardIterator
			for iter != nil {
				recs, err := streams.GetRecords(c, &dynamodbstreams.GetRecordsInput{ShardIterator: iter})
				if err != nil {
					t.Fatal(err)
				}
				for _, r := range recs.Records {
					pk, _ := r.Dynamodb.Keys["pk"].(*streamtypes.AttributeValueMemberS)
					sk, _ := r.Dynamodb.Keys["sk"].(*streamtypes.AttributeValueMemberS)
					if pk == nil || pk.Value != agg || r.EventName != streamtypes.OperationTypeInsert || !strings.HasPrefix(sk.Value, "OUTBOX#") {
						continue
					}
					if _, ok := r.Dynamodb.NewImage["eventId"]; !ok {
						t.Errorf("record for %s has no NEW_IMAGE", sk.Value)
					}
					seen[sk.Value]++
				}
				if len(recs.Records) == 0 {
					break // an open shard's iterator never ends; an empty page is the present
				}
				iter = recs.NextShardIterator
			}
		}
		if len(seen) < len(want) {
			time.Sleep(100 * time.Millisecond)
		}
	}
	for sk := range want {
		if seen[sk] != 1 {
			t.Errorf("outbox item %s: %d stream records, want exactly 1", sk, seen[sk])
		}
	}
	if len(seen) != len(want) {
		t.Errorf("stream records for %d outbox items, want %d: %v", len(seen), len(want), seen)
	}
}

func TestFIFODropsASecondMessageWithTheSameDedupID(t *testing.T) {
	env := testenv.Get(t)
	c := ctx(t)
	q := sqs.NewFromConfig(env.AWS)
	url := aws.String(env.Stack.Physical("EventsQueue"))
	dedup := fmt.Sprintf("ev-%d", time.Now().UnixNano())
	send := func(body string) string {
		out, err := q.SendMessage(c, &sqs.SendMessageInput{
			QueueUrl: url, MessageBody: aws.String(body),
			MessageGroupId: aws.String("agg-1"), MessageDeduplicationId: aws.String(dedup),
		})
		if err != nil {
			t.Fatal(err)
		}
		return aws.ToString(out.MessageId)
	}
	first := send(`{"n":1}`)
	second := send(`{"n":2}`)
	if first != second {
		t.Logf("the duplicate got its own message id (%s vs %s); SQS returns the first's, but what counts is delivery", first, second)
	}
	var bodies []string
	for range 3 {
		out, err := q.ReceiveMessage(c, &sqs.ReceiveMessageInput{QueueUrl: url, MaxNumberOfMessages: 10, WaitTimeSeconds: 1})
		if err != nil {
			t.Fatal(err)
		}
		for _, m := range out.Messages {
			bodies = append(bodies, aws.ToString(m.Body))
			if _, err := q.DeleteMessage(c, &sqs.DeleteMessageInput{QueueUrl: url, ReceiptHandle: m.ReceiptHandle}); err != nil {
				t.Fatal(err)
			}
		}
	}
	if len(bodies) != 1 || bodies[0] != `{"n":1}` {
		t.Fatalf("received %q, want only the first message", bodies)
	}
}

func TestSentEmailAppearsInTheSESStore(t *testing.T) {
	env := testenv.Get(t)
	c := ctx(t)
	client := sesv2.NewFromConfig(env.AWS)
	from, err := env.Stack.Eval.Param("SenderAddress")
	if err != nil {
		t.Fatal(err)
	}
	subject := fmt.Sprintf("Welcome %d", time.Now().UnixNano())
	out, err := client.SendEmail(c, &sesv2.SendEmailInput{
		FromEmailAddress:     aws.String(from),
		ConfigurationSetName: aws.String(env.Stack.Physical("EmailConfigurationSet")),
		Destination:          &sestypes.Destination{ToAddresses: []string{"owner@example.com"}},
		Content: &sestypes.EmailContent{Simple: &sestypes.Message{
			Subject: &sestypes.Content{Data: aws.String(subject)},
			Body:    &sestypes.Body{Text: &sestypes.Content{Data: aws.String("hello")}},
			Headers: []sestypes.MessageHeader{{Name: aws.String("X-Dispatcher-Event-Id"), Value: aws.String("ev-123")}},
		}},
	})
	if err != nil {
		t.Fatal(err)
	}
	emails, err := env.SentEmails(c)
	if err != nil {
		t.Fatal(err)
	}
	var found int
	for _, e := range emails {
		if e.Subject != subject {
			continue
		}
		found++
		if e.MessageID != aws.ToString(out.MessageId) || e.From != from || len(e.Destination.To) != 1 || e.Destination.To[0] != "owner@example.com" {
			t.Errorf("stored email = %+v", e)
		}
		if e.Header("X-Dispatcher-Event-Id") != "ev-123" {
			t.Errorf("event id header = %q, want ev-123 (headers %+v)", e.Header("X-Dispatcher-Event-Id"), e.Headers)
		}
	}
	if found != 1 {
		t.Fatalf("found %d emails with subject %q in the store, want 1", found, subject)
	}
}

func TestProvisioningTwiceReusesTheResources(t *testing.T) {
	env := testenv.Get(t)
	again, err := provision.Apply(ctx(t), env.AWS, provision.Options{
		TemplatePath: env.Root + "/infra/template.yaml",
		StackName:    testenv.StackName,
	})
	if err != nil {
		t.Fatal(err)
	}
	for id, r := range env.Stack.Resources {
		if got := again.Physical(id); got != r.PhysicalID {
			t.Errorf("%s: second run gave %q, first %q", id, got, r.PhysicalID)
		}
	}
	if !strings.Contains(strings.Join(again.Notes(), "\n"), "OutboxTable: table already existed; reused") {
		t.Errorf("notes do not say the table was reused: %v", again.Notes())
	}
}

// The callers' token buckets: their own table, keyed by pk, emptied by TTL.
func TestRateLimitTableComesFromTheTemplate(t *testing.T) {
	_, c, db, name, out := describeStackTable(t, "RateLimitTable")
	if k := out.Table.KeySchema; len(k) != 1 || aws.ToString(k[0].AttributeName) != "pk" {
		t.Errorf("key schema = %+v, want pk alone", k)
	}
	ttl, err := db.DescribeTimeToLive(c, &dynamodb.DescribeTimeToLiveInput{TableName: aws.String(name)})
	if err != nil {
		t.Fatal(err)
	}
	if d := ttl.TimeToLiveDescription; d == nil || aws.ToString(d.AttributeName) != "expiresAt" || d.TimeToLiveStatus != ddbtypes.TimeToLiveStatusEnabled {
		t.Errorf("TTL = %+v, want expiresAt ENABLED", ttl.TimeToLiveDescription)
	}
}

func TestFunctionEnvironmentResolvesToProvisionedResources(t *testing.T) {
	env := testenv.Get(t)
	vars, err := env.Stack.FunctionEnv("StreamRelayFunction")
	if err != nil {
		t.Fatal(err)
	}
	want := map[string]string{
		"TABLE_NAME":               env.Stack.Physical("OutboxTable"),
		"EVENTS_QUEUE_URL":         env.Stack.Physical("EventsQueue"),
		"DLQ_URL":                  env.Stack.Physical("DeadLetterQueue"),
		"UNDELIVERED_INDEX_SHARDS": "8",
	}
	for k, v := range want {
		if vars[k] != v || v == "" {
			t.Errorf("%s = %q, want %q", k, vars[k], v)
		}
	}
}

func TestWhatAnEndpointCannotApplyIsReportedNotDropped(t *testing.T) {
	env := testenv.Get(t)
	notes := strings.Join(env.Stack.Notes(), "\n")
	// DynamoDB Local has no backups and the SES emulator no identities: both
	// must show up as notes rather than vanish.
	for _, want := range []string{"OutboxTable: PointInTimeRecoverySpecification not applied", "SenderIdentity: this SES endpoint verifies no identities"} {
		if !strings.Contains(notes, want) {
			t.Errorf("notes lack %q:\n%s", want, notes)
		}
	}
}
