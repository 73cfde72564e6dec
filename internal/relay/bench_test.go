package relay_test

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/aws/aws-lambda-go/events"
	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb"
	ddbtypes "github.com/aws/aws-sdk-go-v2/service/dynamodb/types"
	sqsapi "github.com/aws/aws-sdk-go-v2/service/sqs"
	sqstypes "github.com/aws/aws-sdk-go-v2/service/sqs/types"

	"github.com/dispatcher-dev/dispatcher/internal/command"
	"github.com/dispatcher-dev/dispatcher/internal/delivery"
	"github.com/dispatcher-dev/dispatcher/internal/dispatch"
	"github.com/dispatcher-dev/dispatcher/internal/dynamo"
	"github.com/dispatcher-dev/dispatcher/internal/flowtest"
	"github.com/dispatcher-dev/dispatcher/internal/testenv"
)

// batchSize is the event source mapping's BatchSize in infra/template.yaml.
const batchSize = 100

// benchShape is how the 1,000 events of one round are spread over
// aggregates: it decides how many rounds (one head per aggregate each) the
// engine needs per stream batch.
type benchShape struct {
	aggregates, events int // events per aggregate: one Dispatch command each
}

func (s benchShape) String() string { return fmt.Sprintf("%dx%d", s.aggregates, s.events) }

// BenchmarkRelayThroughput delivers 1,000 outbox events three ways, back to
// back on fresh data in each iteration (the order rotates, so that a slower
// emulator hits each alike):
//
//   - relay: relay.Handler.Handle on stream batches of 100 records (status
//     read, CloudEvents, SendMessageBatch, conditional marks);
//   - floor: the same I/O bare, from clients built the same way: one
//     consistent BatchGetItem per 100 items, one SendMessageBatch per 10
//     events, conditional marks, with the engine's concurrency;
//   - naive: GetItem, SendMessage, conditional UpdateItem, one event at a
//     time.
//
// Targets (issue 4): relay ≥ 0.8 × floor and ≥ 5 × naive. Commands and the
// stream read that seed each round are not timed. Run it with
//
//	go test -run '^$' -bench RelayThroughput -benchtime 2x ./internal/relay/
func BenchmarkRelayThroughput(b *testing.B) {
	for _, s := range []benchShape{{aggregates: 100, events: 10}, {aggregates: 500, events: 2}} {
		b.Run(s.String(), func(b *testing.B) { benchRelayThroughput(b, s) })
	}
}

// phase is one way of delivering a round's events.
type phase struct {
	name    string
	run     func(b *testing.B, r *round, batch int)
	elapsed time.Duration
	events  int
	mallocs uint64
	ddb     int
	sqs     int
}

// round is the seeded data of one phase: the stream batches the relay gets
// and the same items decoded for the bare paths.
type round struct {
	batches []events.DynamoDBEvent
	items   [][]dispatch.OutboxItem // per stream batch
	msgs    [][]sqsMessage          // per stream batch, in item order
	n       int
}

type sqsMessage struct {
	body, group, dedup string
	attrs              map[string]sqstypes.MessageAttributeValue
}

type benchEnv struct {
	f       *flowtest.Fixture
	db      *dynamodb.Client
	sqs     *sqsapi.Client
	store   *dynamo.Store
	workers int
	source  string
	fifo    bool
}

func benchRelayThroughput(b *testing.B, shape benchShape) {
	f := flowtest.New(b, nil)
	// The bare paths use clients built as app.NewDeliveryEngine builds the
	// relay's, over the same counting transport, so that the only difference
	// is the relay's own work.
	cfg := testenv.Get(b).AWS.Copy()
	cfg.HTTPClient = f.Faults
	e := &benchEnv{
		f: f, db: dynamodb.NewFromConfig(cfg),
		sqs:     sqsapi.NewFromConfig(cfg, func(o *sqsapi.Options) { o.RetryMaxAttempts = 1 }),
		workers: f.Config.Delivery.Workers, source: f.Config.Delivery.Source,
		fifo: strings.HasSuffix(f.Events, ".fifo"),
	}
	e.store = dynamo.New(e.db, f.Table, f.Config.Shards)
	if e.workers <= 0 {
		e.workers = 16 // delivery.Config's default
	}
	if e.source == "" {
		e.source = "dispatcher"
	}
	phases := []*phase{{name: "relay", run: e.relay}, {name: "floor", run: e.floor}, {name: "naive", run: e.naive}}

	// Warm the JVM, the connections and the code paths on a small round.
	warm := e.seed(b, benchShape{aggregates: 10, events: shape.events}, len(phases))
	for i, p := range phases {
		for k := range warm[i].batches {
			p.run(b, warm[i], k)
			e.drain(b, len(warm[i].items[k]))
		}
	}

	var mem runtime.MemStats
	b.ResetTimer()
	for i := 0; b.Loop(); i++ {
		rounds := e.seed(b, shape, len(phases))
		// Interleave per stream batch, the order rotating, so that emulator
		// drift (JIT, GC, table growth) hits the three alike.
		for k := range rounds[0].batches {
			for j := range phases {
				n := (i + k + j) % len(phases)
				p, r := phases[n], rounds[n]
				f.Faults.Reset()
				runtime.ReadMemStats(&mem)
				before := mem.Mallocs
				t0 := time.Now()
				p.run(b, r, k)
				p.elapsed += time.Since(t0)
				runtime.ReadMemStats(&mem)
				p.mallocs += mem.Mallocs - before
				p.events += len(r.items[k])
				p.ddb += f.Faults.Count(targetPrefix("DynamoDB_20120810."))
				p.sqs += f.Faults.Count(targetPrefix("AmazonSQS."))
				e.drainDebug(b, p.name, r.items[k])
			}
		}
	}
	b.StopTimer()
	f.Faults.Reset()

	rate := func(p *phase) float64 { return float64(p.events) / p.elapsed.Seconds() }
	relay, floor, naive := phases[0], phases[1], phases[2]
	per := func(n int, p *phase) float64 { return float64(n) / float64(p.events) }
	b.ReportMetric(rate(relay), "relay-events/s")
	b.ReportMetric(rate(floor), "floor-events/s")
	b.ReportMetric(rate(naive), "naive-events/s")
	b.ReportMetric(rate(relay)/rate(floor), "relay/floor")
	b.ReportMetric(rate(relay)/rate(naive), "relay/naive")
	b.ReportMetric(per(relay.ddb, relay), "relay-ddb-calls/event")
	b.ReportMetric(per(relay.sqs, relay), "relay-sqs-calls/event")
	b.ReportMetric(float64(relay.mallocs)/float64(relay.events), "relay-allocs/event")
	b.ReportMetric(float64(floor.mallocs)/float64(floor.events), "floor-allocs/event")
	b.ReportMetric(0, "ns/op")
	if r := rate(relay) / rate(floor); r < 0.8 {
		b.Logf("relay throughput is %.2f × the floor: target ≥ 0.8", r)
	}
	if r := rate(relay) / rate(naive); r < 5 {
		b.Logf("relay throughput is %.2f × naive: target ≥ 5", r)
	}
	b.Logf("calls/event: relay ddb %.3f sqs %.3f; floor ddb %.3f sqs %.3f; naive ddb %.3f sqs %.3f",
		per(relay.ddb, relay), per(relay.sqs, relay), per(floor.ddb, floor), per(floor.sqs, floor), per(naive.ddb, naive), per(naive.sqs, naive))
}

func targetPrefix(prefix string) func(*http.Request) bool {
	return func(r *http.Request) bool { return strings.HasPrefix(r.Header.Get("X-Amz-Target"), prefix) }
}

// seed applies, for each of n phases, one Dispatch command of shape.events
// events per aggregate, then reads what they wrote from the stream.
func (e *benchEnv) seed(b *testing.B, shape benchShape, n int) []*round {
	b.Helper()
	ids := make([][]string, n)
	var all []string
	for p := range n {
		for a := range shape.aggregates {
			id := flowtest.Unique(fmt.Sprintf("tp%d-%d", p, a))
			ids[p] = append(ids[p], id)
			all = append(all, id)
		}
	}
	evs := make([]string, shape.events)
	for i := range evs {
		evs[i] = fmt.Sprintf(`{"type":"BenchItemAdded","data":{"line":%d,"sku":"SKU-%04d","quantity":3,"price":{"amount":1250,"currency":"EUR"}}}`, i, i)
	}
	list := strings.Join(evs, ",")
	work := make(chan string)
	errs := make(chan error, len(all))
	var wg sync.WaitGroup
	for range 4 {
		wg.Go(func() {
			for id := range work {
				body := `{"type":"Dispatch","aggregateId":"` + id + `","data":{"aggregateType":"BenchOrder","state":{"status":"open"},"events":[` + list + `]}}`
				if _, err := e.f.Svc.Execute(context.Background(), command.Request{Body: []byte(body), Scope: "bench", IdempotencyKey: "bench-" + id}); err != nil {
					errs <- fmt.Errorf("command %s: %w", id, err)
				}
			}
		})
	}
	for _, id := range all {
		work <- id
	}
	close(work)
	wg.Wait()
	close(errs)
	for err := range errs {
		b.Fatal(err)
	}

	recs := flowtest.OutboxRecords(e.f.Batch(all...))
	byAgg := map[string]int{}
	for p, list := range ids {
		for _, id := range list {
			byAgg["AGG#"+id] = p
		}
	}
	per := make([][]events.DynamoDBEventRecord, n)
	for _, r := range recs {
		p := byAgg[r.Change.Keys["pk"].String()]
		per[p] = append(per[p], r)
	}
	out := make([]*round, n)
	for p, recs := range per {
		if want := shape.aggregates * shape.events; len(recs) != want {
			b.Fatalf("%d outbox records in the stream, want %d", len(recs), want)
		}
		r := &round{n: len(recs)}
		for start := 0; start < len(recs); start += batchSize {
			chunk := recs[start:min(start+batchSize, len(recs))]
			r.batches = append(r.batches, events.DynamoDBEvent{Records: chunk})
			items := make([]dispatch.OutboxItem, len(chunk))
			msgs := make([]sqsMessage, len(chunk))
			for i, rec := range chunk {
				it, ok, err := dynamo.StreamRecord(rec)
				if !ok || err != nil {
					b.Fatalf("stream record %s: %v", rec.Change.SequenceNumber, err)
				}
				items[i], msgs[i] = it, e.message(b, it)
			}
			r.items, r.msgs = append(r.items, items), append(r.msgs, msgs)
		}
		out[p] = r
	}
	return out
}

// message builds the message the engine would send for it (same body and
// attributes), ahead of time: the bare paths measure I/O only.
func (e *benchEnv) message(b *testing.B, it dispatch.OutboxItem) sqsMessage {
	ce, err := delivery.NewCloudEvent(it, e.source)
	if err != nil {
		b.Fatal(err)
	}
	body, err := json.Marshal(ce)
	if err != nil {
		b.Fatal(err)
	}
	attr := func(v string) sqstypes.MessageAttributeValue {
		return sqstypes.MessageAttributeValue{DataType: aws.String("String"), StringValue: aws.String(v)}
	}
	m := sqsMessage{body: string(body), attrs: map[string]sqstypes.MessageAttributeValue{
		"eventId": attr(it.EventID), "eventType": attr(it.EventType), "aggregateVersion": attr(strconv.FormatInt(it.Version, 10)),
		"content-type": attr("application/cloudevents+json"),
	}}
	if e.fifo {
		m.group, m.dedup = it.AggregateID, it.EventID
	}
	return m
}

// drain empties the events queue after a phase and checks that it held
// exactly the phase's events. Drain stops at the first empty receives; a
// message can still be on its way then, so it is called until the count is
// reached or a few seconds passed.
func (e *benchEnv) drain(b *testing.B, want int) {
	b.Helper()
	got := 0
	for deadline := time.Now().Add(5 * time.Second); got < want && time.Now().Before(deadline); {
		got += len(e.f.Drain(e.f.Events))
	}
	if got != want {
		b.Fatalf("%d events in the queue, want %d", got, want)
	}
}

// relay is the measured path, one stream batch after another, as one shard's
// Lambda invocations run.
func (e *benchEnv) relay(b *testing.B, r *round, batch int) {
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	resp, err := e.f.Relay.Handle(ctx, r.batches[batch])
	if err != nil || len(resp.BatchItemFailures) != 0 {
		b.Fatalf("Handle: %v, failures %+v; logs:\n%s", err, resp.BatchItemFailures, e.f.Logs)
	}
}

// floor does the relay's I/O for one stream batch and nothing else: one
// consistent BatchGetItem, then SendMessageBatch calls of 10 through a pool
// of e.workers, each followed by its conditional marks through a second pool
// of e.workers (the engine's two pools).
func (e *benchEnv) floor(b *testing.B, r *round, batch int) {
	ctx := context.Background()
	items, msgs := r.items[batch], r.msgs[batch]
	keys := make([]map[string]ddbtypes.AttributeValue, len(items))
	for j, it := range items {
		keys[j] = tableKey(it)
	}
	pending := map[string]ddbtypes.KeysAndAttributes{e.f.Table: {Keys: keys, ConsistentRead: aws.Bool(true)}}
	got := 0
	for len(pending) > 0 {
		out, err := e.db.BatchGetItem(ctx, &dynamodb.BatchGetItemInput{RequestItems: pending})
		if err != nil {
			b.Fatal(err)
		}
		got += len(out.Responses[e.f.Table])
		pending = out.UnprocessedKeys
	}
	if got != len(items) {
		b.Fatalf("BatchGetItem found %d of %d items", got, len(items))
	}
	sends, marks := make(chan struct{}, e.workers), make(chan struct{}, e.workers)
	var wg sync.WaitGroup
	for start := 0; start < len(items); start += 10 {
		end := min(start+10, len(items))
		sends <- struct{}{}
		wg.Go(func() {
			defer func() { <-sends }()
			entries := make([]sqstypes.SendMessageBatchRequestEntry, 0, end-start)
			for j, m := range msgs[start:end] {
				entries = append(entries, sqstypes.SendMessageBatchRequestEntry{
					Id: aws.String(strconv.Itoa(j)), MessageBody: aws.String(m.body), MessageAttributes: m.attrs,
					MessageGroupId: optional(m.group), MessageDeduplicationId: optional(m.dedup),
				})
			}
			out, err := e.sqs.SendMessageBatch(ctx, &sqsapi.SendMessageBatchInput{QueueUrl: aws.String(e.f.Events), Entries: entries})
			if err != nil || len(out.Failed) > 0 {
				b.Errorf("SendMessageBatch: %v %+v", err, out)
				return
			}
			var mw sync.WaitGroup
			for _, it := range items[start:end] {
				mw.Go(func() {
					marks <- struct{}{}
					defer func() { <-marks }()
					if err := e.store.MarkDelivered(ctx, it.Key(), "", time.Now(), keepDelivered); err != nil {
						b.Errorf("MarkDelivered: %v", err)
					}
				})
			}
			mw.Wait()
		})
	}
	wg.Wait()
}

// naive reads, sends and marks the events of one stream batch one at a time.
func (e *benchEnv) naive(b *testing.B, r *round, batch int) {
	ctx := context.Background()
	for j, it := range r.items[batch] {
		_, err := e.db.GetItem(ctx, &dynamodb.GetItemInput{TableName: aws.String(e.f.Table), Key: tableKey(it), ConsistentRead: aws.Bool(true)})
		if err != nil {
			b.Fatal(err)
		}
		m := r.msgs[batch][j]
		if _, err := e.sqs.SendMessage(ctx, &sqsapi.SendMessageInput{
			QueueUrl: aws.String(e.f.Events), MessageBody: aws.String(m.body), MessageAttributes: m.attrs,
			MessageGroupId: optional(m.group), MessageDeduplicationId: optional(m.dedup),
		}); err != nil {
			b.Fatal(err)
		}
		if err := e.store.MarkDelivered(ctx, it.Key(), "", time.Now(), keepDelivered); err != nil {
			b.Fatal(err)
		}
	}
}

// keepDelivered is delivery.Config's default KeepDelivered.
const keepDelivered = 7 * 24 * time.Hour

func tableKey(it dispatch.OutboxItem) map[string]ddbtypes.AttributeValue {
	return map[string]ddbtypes.AttributeValue{
		"pk": &ddbtypes.AttributeValueMemberS{Value: "AGG#" + it.AggregateID},
		"sk": &ddbtypes.AttributeValueMemberS{Value: dynamo.OutboxSK(it.Version, it.Seq)},
	}
}

func optional(s string) *string {
	if s == "" {
		return nil
	}
	return aws.String(s)
}

func (e *benchEnv) drainDebug(b *testing.B, name string, items []dispatch.OutboxItem) {
	b.Helper()
	seen := map[string]bool{}
	for deadline := time.Now().Add(5 * time.Second); len(seen) < len(items) && time.Now().Before(deadline); {
		for _, m := range e.f.Drain(e.f.Events) {
			id, _ := m.Body["id"].(string)
			if seen[id] {
				b.Errorf("DEBUG dup %s", id)
			}
			seen[id] = true
		}
	}
	if len(seen) != len(items) {
		var missing []string
		for _, it := range items {
			if !seen[it.EventID] {
				missing = append(missing, fmt.Sprintf("%s/%d/%d", it.AggregateID, it.Version, it.Seq))
			}
		}
		out, _ := e.sqs.GetQueueAttributes(context.Background(), &sqsapi.GetQueueAttributesInput{QueueUrl: aws.String(e.f.Events), AttributeNames: []sqstypes.QueueAttributeName{sqstypes.QueueAttributeNameAll}})
		b.Fatalf("DEBUG phase %s: %d of %d; missing %v; attrs %v", name, len(seen), len(items), missing, out.Attributes)
	}
}
