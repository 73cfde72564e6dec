package chaos

import (
	"context"
	"encoding/json"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-lambda-go/events"
	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb"
	ddbtypes "github.com/aws/aws-sdk-go-v2/service/dynamodb/types"
	"github.com/aws/aws-sdk-go-v2/service/sesv2"
	"github.com/aws/aws-sdk-go-v2/service/sqs"

	"github.com/dispatcher-dev/dispatcher/internal/app"
	"github.com/dispatcher-dev/dispatcher/internal/command"
	"github.com/dispatcher-dev/dispatcher/internal/dynamo"
	"github.com/dispatcher-dev/dispatcher/internal/emails"
	"github.com/dispatcher-dev/dispatcher/internal/faults"
	"github.com/dispatcher-dev/dispatcher/internal/flowtest"
	"github.com/dispatcher-dev/dispatcher/internal/testenv"
)

// Row is one strategy's line of the table.
type Row struct {
	Strategy      string
	Commands      int
	Committed     int // commands whose state is in the table
	LostEvents    int // committed, and no event arrived
	LostEmails    int // committed, and no email arrived
	PhantomEvents int // not committed, and an event arrived
	PhantomEmails int // not committed, and an email arrived
	Duplicates    int // effects delivered more than once, all copies with one id
	BadDuplicates int // effects delivered more than once under different ids
	Interrupts    int // relay invocations cut short (outbox only)
	Undelivered   int // outbox items not DELIVERED after the final replay
	DLQLeft       int // DLQ messages left after the final replay
	Faults        int // faults injected
}

// Lost and Phantom sum events and emails.
func (r Row) Lost() int    { return r.LostEvents + r.LostEmails }
func (r Row) Phantom() int { return r.PhantomEvents + r.PhantomEmails }

// Outbox is the name of the outbox's row.
const Outbox = "outbox"

// Run applies n commands with every strategy, each under a fresh copy of
// the seed's schedule, and returns the table.
func Run(t testing.TB, seed uint64, n int, rates Rates) []Row {
	t.Helper()
	env := testenv.Get(t)
	f := flowtest.New(t, func(c *app.DeliveryConfig) { c.Delivery.Lease = 300 * time.Millisecond })
	rows := []Row{runOutbox(t, env, f, seed, n, rates)}
	for i := range 4 {
		sched := NewSchedule(seed, rates)
		tr := faults.New(nil)
		sched.Install(tr)
		cfg := env.AWS.Copy()
		cfg.HTTPClient, cfg.RetryMaxAttempts = tr, 1
		cl := &Clients{DB: dynamodb.NewFromConfig(cfg), SQS: sqs.NewFromConfig(cfg), SES: sesv2.NewFromConfig(cfg), Table: f.Table, Queue: f.Events}
		s := AntiPatterns(cl, sched)[i]
		cmds := commands(seed, s.Name, n)
		ctx := context.Background()
		for _, c := range cmds {
			s.S.Apply(ctx, c)
		}
		s.S.Finish(ctx)
		row := tally(t, env, f, cmds)
		row.Strategy, row.Faults = s.Name, tr.Injected()
		rows = append(rows, row)
	}
	return rows
}

func commands(seed uint64, strategy string, n int) []Cmd {
	short := strings.NewReplacer(" ", "", "-", "").Replace(strategy)
	prefix := fmt.Sprintf("chaos%d-%s-%d", seed, short, time.Now().UnixNano())
	cmds := make([]Cmd, n)
	for i := range cmds {
		id := fmt.Sprintf("%s-%03d", prefix, i)
		cmds[i] = Cmd{ID: id, Email: id + "@example.com"}
	}
	return cmds
}

// runOutbox applies the commands through the real command path, runs the
// real relay on what the stream holds (interrupting it at seeded points, and
// retrying from the reported record as Lambda does), then, once the faults
// stop, the real replay and sweep.
func runOutbox(t testing.TB, env *testenv.Env, f *flowtest.Fixture, seed uint64, n int, rates Rates) Row {
	t.Helper()
	sched := NewSchedule(seed, rates)
	tr := faults.New(nil)
	sched.Install(tr)
	sched.Install(f.Faults)
	cfg := env.AWS.Copy()
	cfg.HTTPClient, cfg.RetryMaxAttempts = tr, 1
	tmpl, err := emails.Load()
	if err != nil {
		t.Fatal(err)
	}
	svc := command.New(dynamo.New(dynamodb.NewFromConfig(cfg), f.Table, 8), tmpl)
	cmds := commands(seed, Outbox, n)
	ids := make([]string, n)
	for i, c := range cmds {
		ids[i] = c.ID
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		// The caller tries once: a lost answer leaves it not knowing whether
		// the command committed, which is the point.
		_, _ = svc.Execute(ctx, command.Request{Body: []byte(flowtest.Open(c.ID, c.Email)), Scope: "chaos", IdempotencyKey: c.ID})
		cancel()
	}
	recs := flowtest.OutboxRecords(f.Batch(ids...))
	row := Row{}
	rng := sched.Rand("relay interrupt")
	for len(recs) > 0 {
		size := min(10, len(recs))
		batch := recs[:size]
		recs = recs[size:]
		for try := 0; len(batch) > 0 && try < 4; try++ {
			ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
			if rng.Float64() < 0.35 {
				row.Interrupts++
				time.AfterFunc(time.Duration(1+rng.IntN(15))*time.Millisecond, cancel)
			}
			resp, err := f.Relay.Handle(ctx, events.DynamoDBEvent{Records: batch})
			cancel()
			if err == nil && len(resp.BatchItemFailures) == 0 {
				break
			}
			if err == nil {
				batch = from(batch, resp.BatchItemFailures[0].ItemIdentifier)
			}
			time.Sleep(20 * time.Millisecond)
		}
	}
	row.Faults = tr.Injected() + f.Faults.Injected()
	// The outage ends: wait out the leases and the sweep threshold, then
	// replay the DLQ and sweep, as the scheduled replay does.
	f.Faults.Reset()
	time.Sleep(1100 * time.Millisecond)
	for range 2 {
		ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
		if _, err := f.Replay.Invoke(ctx, json.RawMessage(`{"mode":"all","olderThanSeconds":1,"maxMessages":1000}`)); err != nil {
			t.Errorf("replay: %v", err)
		}
		cancel()
	}
	row.DLQLeft = len(f.Drain(f.DLQ))
	for _, id := range ids {
		for _, it := range f.Items(id) {
			if flowtest.S(it, "status") != "DELIVERED" {
				row.Undelivered++
			}
		}
	}
	tallied := tally(t, env, f, cmds)
	tallied.Strategy, tallied.Interrupts, tallied.Faults, tallied.Undelivered, tallied.DLQLeft = Outbox, row.Interrupts, row.Faults, row.Undelivered, row.DLQLeft
	return tallied
}

// from keeps the records from the one with a sequence number on.
func from(recs []events.DynamoDBEventRecord, seq string) []events.DynamoDBEventRecord {
	for i, r := range recs {
		if r.Change.SequenceNumber == seq {
			return recs[i:]
		}
	}
	return recs
}

// tally counts, against the table, the events queue (which it drains) and
// the SES store, what became of each command.
func tally(t testing.TB, env *testenv.Env, f *flowtest.Fixture, cmds []Cmd) Row {
	t.Helper()
	ctx := context.Background()
	events := map[string][]string{} // aggregate id -> event ids delivered
	for _, m := range f.Drain(f.Events) {
		subj, _ := m.Body["subject"].(string)
		id, _ := m.Body["id"].(string)
		events[subj] = append(events[subj], id)
	}
	all, err := env.SentEmails(ctx)
	if err != nil {
		t.Fatal(err)
	}
	mails := map[string][]string{} // address -> email ids delivered
	for _, e := range all {
		for _, to := range e.Destination.To {
			mails[to] = append(mails[to], e.Header("X-Dispatcher-Event-Id"))
		}
	}
	row := Row{Commands: len(cmds)}
	for _, c := range cmds {
		out, err := f.DB.GetItem(ctx, &dynamodb.GetItemInput{TableName: aws.String(f.Table), ConsistentRead: aws.Bool(true), Key: map[string]ddbtypes.AttributeValue{
			"pk": &ddbtypes.AttributeValueMemberS{Value: "AGG#" + c.ID}, "sk": &ddbtypes.AttributeValueMemberS{Value: "STATE"},
		}})
		if err != nil {
			t.Fatal(err)
		}
		committed := out.Item != nil
		ev, ml := events[c.ID], mails[c.Email]
		if committed {
			row.Committed++
			row.LostEvents += b2i(len(ev) == 0)
			row.LostEmails += b2i(len(ml) == 0)
		} else {
			row.PhantomEvents += b2i(len(ev) > 0)
			row.PhantomEmails += b2i(len(ml) > 0)
		}
		for _, ids := range [][]string{ev, ml} {
			if len(ids) > 1 {
				row.Duplicates += len(ids) - 1
				for _, id := range ids[1:] {
					if id != ids[0] || id == "" {
						row.BadDuplicates++
						break
					}
				}
			}
		}
	}
	return row
}

func b2i(b bool) int {
	if b {
		return 1
	}
	return 0
}

// Format renders the table as Markdown.
func Format(seed uint64, rows []Row) string {
	var b strings.Builder
	fmt.Fprintf(&b, "seed %d\n\n| strategy | commands | committed | lost (events+emails) | phantom (events+emails) | duplicates (same id) | duplicates with another id | faults | relay interrupts |\n| --- | --- | --- | --- | --- | --- | --- | --- | --- |\n", seed)
	for _, r := range rows {
		fmt.Fprintf(&b, "| %s | %d | %d | %d (%d+%d) | %d (%d+%d) | %d | %d | %d | %d |\n", r.Strategy, r.Commands, r.Committed,
			r.Lost(), r.LostEvents, r.LostEmails, r.Phantom(), r.PhantomEvents, r.PhantomEmails, r.Duplicates, r.BadDuplicates, r.Faults, r.Interrupts)
	}
	return b.String()
}
