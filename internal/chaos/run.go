package chaos

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb"
	ddbtypes "github.com/aws/aws-sdk-go-v2/service/dynamodb/types"
	"github.com/aws/aws-sdk-go-v2/service/sesv2"
	"github.com/aws/aws-sdk-go-v2/service/sqs"

	"github.com/dispatcher-dev/dispatcher/internal/app"
	"github.com/dispatcher-dev/dispatcher/internal/faults"
	"github.com/dispatcher-dev/dispatcher/internal/flowtest"
	"github.com/dispatcher-dev/dispatcher/internal/testenv"
)

// Row is one strategy's line of the table.
type Row struct {
	Strategy        string
	Commands        int
	Committed       int // commands whose state is in the table
	LostEvents      int // committed, and no event arrived
	LostEmails      int // committed, and no email arrived
	PhantomEvents   int // not committed, and an event arrived
	PhantomEmails   int // not committed, and an email arrived
	Duplicates      int // effects delivered more than once, all copies with one id
	BadDuplicates   int // effects delivered more than once under different ids
	DuplicateEmails int // of Duplicates, the extra copies of emails
	Undelivered     int // outbox items not DELIVERED after the final replay
	DLQLeft         int // DLQ messages left after the final replay
	Faults          int // faults injected

	// The outbox run only.
	Accepted          int           // commands answered 202
	Unanswered        int           // commands answered 5xx or not at all: the client cannot know
	Kills             int           // relay bootstraps killed (SIGKILL)
	KillsMidBatch     int           // relay invocations that ended with their runtime killed
	SQSDown           time.Duration // how long the SQS emulator was stopped
	SQSFailed         int           // requests to SQS that failed at the connection while it was down
	Parked            int           // FAILED outbox items found in the DLQ before the replay
	ParkedMissing     int           // FAILED outbox items not in the DLQ
	Rejected          int           // recipients SES rejected while the faults lasted
	RejectedDelivered int           // emails to them DELIVERED before the faults ended: must be 0
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
		cfg := env.AWS.Copy()
		cfg.HTTPClient, cfg.RetryMaxAttempts = tr, 1
		cl := &Clients{DB: dynamodb.NewFromConfig(cfg), SQS: sqs.NewFromConfig(cfg), SES: sesv2.NewFromConfig(cfg), Table: f.Table, Queue: f.Events}
		s := AntiPatterns(cl, sched)[i]
		cmds := commands(seed, s.Name, n)
		sched.RejectRecipients(tr, cmds)
		sched.Install(tr)
		ctx := context.Background()
		for _, c := range cmds {
			s.S.Apply(ctx, c)
		}
		s.S.Finish(ctx)
		row := tally(t, env, f, cmds, Row{})
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

// tally counts, against the table, the events queue (which it drains) and
// the SES store, what became of each command, into row.
func tally(t testing.TB, env *testenv.Env, f *flowtest.Fixture, cmds []Cmd, row Row) Row {
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
	row.Commands = len(cmds)
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
		row.DuplicateEmails += max(0, len(ml)-1)
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
	fmt.Fprintf(&b, "seed %d\n\n| strategy | commands | committed | lost (events+emails) | phantom (events+emails) | duplicates (same id) | duplicates with another id | faults | relay kills (mid-batch) |\n| --- | --- | --- | --- | --- | --- | --- | --- | --- |\n", seed)
	for _, r := range rows {
		kills := "–"
		if r.Strategy == Outbox {
			kills = fmt.Sprintf("%d (%d)", r.Kills, r.KillsMidBatch)
		}
		fmt.Fprintf(&b, "| %s | %d | %d | %d (%d+%d) | %d (%d+%d) | %d | %d | %d | %s |\n", r.Strategy, r.Commands, r.Committed,
			r.Lost(), r.LostEvents, r.LostEmails, r.Phantom(), r.PhantomEvents, r.PhantomEmails, r.Duplicates, r.BadDuplicates, r.Faults, kills)
	}
	for _, r := range rows {
		if r.Strategy == Outbox {
			fmt.Fprintf(&b, "\noutbox: %s\n", describe(r))
		}
	}
	return b.String()
}
