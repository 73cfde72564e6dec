// Package flowtest is test support for the whole delivery flow: it applies
// commands through the real command path, reads what they wrote from the
// real stream, runs the relay with a fault-injecting transport in front of
// the emulators, and reads back the table, the queues and the SES store.
package flowtest

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-lambda-go/events"
	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb"
	ddbtypes "github.com/aws/aws-sdk-go-v2/service/dynamodb/types"
	"github.com/aws/aws-sdk-go-v2/service/dynamodbstreams"
	sqsapi "github.com/aws/aws-sdk-go-v2/service/sqs"
	sqstypes "github.com/aws/aws-sdk-go-v2/service/sqs/types"

	"github.com/dispatcher-dev/dispatcher/internal/app/deliveryfn"
	"github.com/dispatcher-dev/dispatcher/internal/app/replayfn"
	"github.com/dispatcher-dev/dispatcher/internal/command"
	"github.com/dispatcher-dev/dispatcher/internal/dispatch"
	"github.com/dispatcher-dev/dispatcher/internal/dynamo"
	"github.com/dispatcher-dev/dispatcher/internal/emails"
	"github.com/dispatcher-dev/dispatcher/internal/obs"
	"github.com/dispatcher-dev/dispatcher/internal/relay"
	"github.com/dispatcher-dev/dispatcher/internal/replay"
	"github.com/dispatcher-dev/dispatcher/internal/streams"
	"github.com/dispatcher-dev/dispatcher/internal/testkit/faults"
	"github.com/dispatcher-dev/dispatcher/internal/testkit/testenv"
)

// Fixture is one test's view of the flow. The tests of a package share one
// table, one events queue and one DLQ; they run one at a time and each
// drains the queues it reads.
type Fixture struct {
	t       testing.TB
	env     *testenv.Env
	Svc     *command.Service
	DB      *dynamodb.Client
	SQS     *sqsapi.Client
	Faults  *faults.Transport // in front of every call of the relay and the replay
	Relay   *relay.Handler
	Replay  *replay.Replayer
	Logs    *bytes.Buffer
	Metrics *bytes.Buffer // the relay's and the replay's EMF lines
	Config  deliveryfn.Config
	Table   string
	Events  string // the events queue URL
	DLQ     string // the delivery DLQ URL
}

// New builds a Fixture; tune adjusts the delivery configuration.
func New(t testing.TB, tune func(*deliveryfn.Config)) *Fixture {
	t.Helper()
	env := testenv.Get(t)
	f := &Fixture{t: t, env: env, DB: dynamodb.NewFromConfig(env.AWS), SQS: sqsapi.NewFromConfig(env.AWS), Logs: &bytes.Buffer{}, Metrics: &bytes.Buffer{},
		Table: env.Stack.Physical("OutboxTable"), Events: env.Stack.Physical("EventsQueue"), DLQ: env.Stack.Physical("DeadLetterQueue")}
	tmpl, err := emails.Load()
	if err != nil {
		t.Fatal(err)
	}
	store := dynamo.New(f.DB, f.Table, 8)
	f.Svc = command.New(store, tmpl)
	vars, err := env.Stack.FunctionEnv("StreamRelayFunction")
	if err != nil {
		t.Fatal(err)
	}
	c, err := deliveryfn.LoadConfig(func(k string) string { return vars[k] })
	if err != nil {
		t.Fatal(err)
	}
	c.Delivery.BackoffBase, c.Delivery.BackoffCap = time.Millisecond, 5*time.Millisecond
	c.Delivery.EmailRate = 0
	if tune != nil {
		tune(&c)
	}
	f.Config = c
	f.Faults = faults.New(http.DefaultTransport)
	cfg := env.AWS.Copy()
	cfg.HTTPClient = f.Faults
	log := obs.NewLogger(f.Logs, 0)
	metrics := obs.NewMetrics(f.Metrics, "Dispatcher")
	engine, _ := deliveryfn.NewEngine(cfg, c, log, metrics)
	f.Relay = relay.New(engine, log)
	f.Replay = replayfn.NewReplayer(cfg, c, log, metrics)
	f.Drain(f.Events)
	f.Drain(f.DLQ)
	return f
}

var seq int

// Command applies a command through the real command path.
func (f *Fixture) Command(body string) {
	f.t.Helper()
	seq++
	_, err := f.Svc.Execute(context.Background(), command.Request{Body: []byte(body), Caller: dispatch.Caller{ID: "test", Scope: "test", All: true}, IdempotencyKey: fmt.Sprintf("k-%d-%d", time.Now().UnixNano(), seq)})
	if err != nil {
		f.t.Fatalf("command %s: %v", body, err)
	}
}

// Batch reads, from the stream, every record of the given aggregates, in
// stream order, as Lambda would deliver them.
func (f *Fixture) Batch(aggregates ...string) events.DynamoDBEvent {
	f.t.Helper()
	want := map[string]bool{}
	for _, a := range aggregates {
		want["AGG#"+a] = true
	}
	r := streams.NewReader(dynamodbstreams.NewFromConfig(f.env.AWS), f.env.Stack.Attr("OutboxTable", "StreamArn"), "us-east-1")
	ctx := context.Background()
	shards, err := r.Shards(ctx)
	if err != nil {
		f.t.Fatal(err)
	}
	var ev events.DynamoDBEvent
	for _, sh := range shards {
		it, err := r.Iterator(ctx, aws.ToString(sh.ShardId), "TRIM_HORIZON", "")
		if err != nil {
			f.t.Fatal(err)
		}
		for it != "" {
			recs, next, err := r.Poll(ctx, it, 1000)
			if err != nil {
				f.t.Fatal(err)
			}
			for _, rec := range recs {
				if want[rec.Change.Keys["pk"].String()] {
					ev.Records = append(ev.Records, rec)
				}
			}
			if len(recs) == 0 || next == nil {
				break
			}
			it = *next
		}
	}
	return ev
}

// OutboxRecords keeps a batch's outbox INSERT records.
func OutboxRecords(ev events.DynamoDBEvent) []events.DynamoDBEventRecord {
	var out []events.DynamoDBEventRecord
	for _, r := range ev.Records {
		if r.EventName == "INSERT" && strings.HasPrefix(r.Change.Keys["sk"].String(), "OUTBOX#") {
			out = append(out, r)
		}
	}
	return out
}

// Handle runs the relay on a batch (with a 60 s deadline, as Lambda gives one).
func (f *Fixture) Handle(ev events.DynamoDBEvent) events.DynamoDBEventResponse {
	f.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	resp, err := f.Relay.Handle(ctx, ev)
	if err != nil {
		f.t.Fatalf("Handle: %v", err)
	}
	return resp
}

// Received is one message taken from a queue.
type Received struct {
	Body    map[string]any
	GroupID string
}

// Drain receives and deletes everything in a queue.
func (f *Fixture) Drain(url string) []Received {
	f.t.Helper()
	var out []Received
	for empty := 0; empty < 2; {
		res, err := f.SQS.ReceiveMessage(context.Background(), &sqsapi.ReceiveMessageInput{
			QueueUrl: aws.String(url), MaxNumberOfMessages: 10, WaitTimeSeconds: 0,
			// Short: a response the SDK loses and retries must not hide messages
			// (and lock their FIFO groups) for the queue's whole 60 s.
			VisibilityTimeout:           2,
			MessageSystemAttributeNames: []sqstypes.MessageSystemAttributeName{sqstypes.MessageSystemAttributeNameMessageGroupId},
		})
		if err != nil {
			f.t.Fatal(err)
		}
		if len(res.Messages) == 0 {
			empty++
			time.Sleep(20 * time.Millisecond)
			continue
		}
		for _, m := range res.Messages {
			var body map[string]any
			_ = json.Unmarshal([]byte(aws.ToString(m.Body)), &body)
			out = append(out, Received{Body: body, GroupID: m.Attributes["MessageGroupId"]})
			if _, err := f.SQS.DeleteMessage(context.Background(), &sqsapi.DeleteMessageInput{QueueUrl: aws.String(url), ReceiptHandle: m.ReceiptHandle}); err != nil {
				f.t.Fatal(err)
			}
		}
	}
	return out
}

// Items returns every outbox item of an aggregate, in order.
func (f *Fixture) Items(aggregate string) []map[string]ddbtypes.AttributeValue {
	f.t.Helper()
	out, err := f.DB.Query(context.Background(), &dynamodb.QueryInput{
		TableName: aws.String(f.Table), ConsistentRead: aws.Bool(true),
		KeyConditionExpression: aws.String("pk = :pk AND begins_with(sk, :o)"),
		ExpressionAttributeValues: map[string]ddbtypes.AttributeValue{
			":pk": &ddbtypes.AttributeValueMemberS{Value: "AGG#" + aggregate}, ":o": &ddbtypes.AttributeValueMemberS{Value: "OUTBOX#"},
		},
	})
	if err != nil {
		f.t.Fatal(err)
	}
	return out.Items
}

// EventItems returns every EVENT item of an event-sourced aggregate, in order.
func (f *Fixture) EventItems(aggregate string) []map[string]ddbtypes.AttributeValue {
	f.t.Helper()
	out, err := f.DB.Query(context.Background(), &dynamodb.QueryInput{
		TableName: aws.String(f.Table), ConsistentRead: aws.Bool(true),
		KeyConditionExpression: aws.String("pk = :pk AND begins_with(sk, :e)"),
		ExpressionAttributeValues: map[string]ddbtypes.AttributeValue{
			":pk": &ddbtypes.AttributeValueMemberS{Value: "AGG#" + aggregate}, ":e": &ddbtypes.AttributeValueMemberS{Value: "EVENT#"},
		},
	})
	if err != nil {
		f.t.Fatal(err)
	}
	return out.Items
}

// HandWritten is a conforming events item of version 1 as a writer in
// another language writes it, attribute by attribute from the contract
// (docs/outbox-contract.md), without the outbox package; its payload's data
// holds note. Tests break one attribute at a time and Put it.
func HandWritten(id, note string, created time.Time) map[string]ddbtypes.AttributeValue {
	s := func(v string) ddbtypes.AttributeValue { return &ddbtypes.AttributeValueMemberS{Value: v} }
	n := func(v string) ddbtypes.AttributeValue { return &ddbtypes.AttributeValueMemberN{Value: v} }
	const sk = "OUTBOX#00000000000000000001#000"
	at := created.UTC().Format(time.RFC3339Nano)
	eventID := dispatch.NewEventID(created) // any unique id: the events queue deduplicates by it
	return map[string]ddbtypes.AttributeValue{
		"pk": s("AGG#" + id), "sk": s(sk), "kind": s("outbox"), "schemaVersion": n("1"),
		"aggregateId": s(id), "aggregateType": s("Order"), "version": n("1"), "seq": n("0"),
		"eventId": s(eventID), "eventType": s("OrderPlaced"), "target": s("events"),
		"payload": s(`{"data":{"note":` + strconv.Quote(note) + `}}`), "status": s("PENDING"), "attempts": n("0"), "createdAt": s(at),
		"undeliveredShard": s("PENDING#5"), "undeliveredSince": s(at + "#" + eventID), "pendingSk": s(sk),
	}
}

// Put writes an item with a plain PutItem, as a writer without the outbox
// package does, and deletes it when the test ends: an item left PENDING in
// the shared table would be work for every later test's sweep.
func (f *Fixture) Put(item map[string]ddbtypes.AttributeValue) {
	f.t.Helper()
	if _, err := f.DB.PutItem(context.Background(), &dynamodb.PutItemInput{TableName: aws.String(f.Table), Item: item}); err != nil {
		f.t.Fatal(err)
	}
	key := map[string]ddbtypes.AttributeValue{"pk": item["pk"], "sk": item["sk"]}
	f.t.Cleanup(func() {
		if _, err := f.DB.DeleteItem(context.Background(), &dynamodb.DeleteItemInput{TableName: aws.String(f.Table), Key: key}); err != nil {
			f.t.Errorf("delete the hand-written item: %v", err)
		}
	})
}

// Scalars returns an item's string and number attributes as text, for
// reports and comparisons.
func Scalars(it map[string]ddbtypes.AttributeValue) map[string]string {
	m := map[string]string{}
	for k, v := range it {
		switch v := v.(type) {
		case *ddbtypes.AttributeValueMemberS:
			m[k] = v.Value
		case *ddbtypes.AttributeValueMemberN:
			m[k] = v.Value
		}
	}
	return m
}

// S returns a string attribute of an item, or "".
func S(it map[string]ddbtypes.AttributeValue, k string) string {
	if v, ok := it[k].(*ddbtypes.AttributeValueMemberS); ok {
		return v.Value
	}
	return ""
}

// EmailsTo counts the emails in the SES store sent to an address.
func (f *Fixture) EmailsTo(addr string) int {
	f.t.Helper()
	all, err := f.env.SentEmails(context.Background())
	if err != nil {
		f.t.Fatal(err)
	}
	n := 0
	for _, e := range all {
		for _, to := range e.Destination.To {
			if to == addr {
				n++
			}
		}
	}
	return n
}

// Unique returns an id no other test uses.
func Unique(prefix string) string { return fmt.Sprintf("%s-%d", prefix, time.Now().UnixNano()) }

// Open is an OpenAccount command body.
func Open(id, email string) string {
	return fmt.Sprintf(`{"type":"OpenAccount","aggregateId":%q,"data":{"owner":"Owner","email":%q,"currency":"EUR"}}`, id, email)
}

// Deposit is a DepositFunds command body.
func Deposit(id string, amount int) string {
	return fmt.Sprintf(`{"type":"DepositFunds","aggregateId":%q,"data":{"amount":%d,"currency":"EUR","reference":"r%d"}}`, id, amount, amount)
}

// ShardOf returns the id of the stream shard that holds a sequence number
// (the local stream has one shard per table; a real one may have several).
func (f *Fixture) ShardOf(sequence string) string {
	f.t.Helper()
	r := streams.NewReader(dynamodbstreams.NewFromConfig(f.env.AWS), f.env.Stack.Attr("OutboxTable", "StreamArn"), "us-east-1")
	shards, err := r.Shards(context.Background())
	if err != nil {
		f.t.Fatal(err)
	}
	for _, sh := range shards {
		r := sh.SequenceNumberRange
		if r == nil || r.StartingSequenceNumber == nil {
			continue
		}
		if cmpSeq(aws.ToString(r.StartingSequenceNumber), sequence) <= 0 && (r.EndingSequenceNumber == nil || cmpSeq(sequence, aws.ToString(r.EndingSequenceNumber)) <= 0) {
			return aws.ToString(sh.ShardId)
		}
	}
	f.t.Fatalf("no shard holds sequence number %s", sequence)
	return ""
}

func cmpSeq(a, b string) int {
	if len(a) != len(b) {
		return len(a) - len(b)
	}
	return strings.Compare(a, b)
}

// SentEmails counts every email in the SES store.
func (f *Fixture) SentEmails() (int, error) {
	all, err := f.env.SentEmails(context.Background())
	return len(all), err
}
