package chaos

import (
	"context"
	"fmt"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb"
	ddbtypes "github.com/aws/aws-sdk-go-v2/service/dynamodb/types"
	"github.com/aws/aws-sdk-go-v2/service/sesv2"
	"github.com/aws/aws-sdk-go-v2/service/sqs"

	"github.com/dispatcher-dev/dispatcher/internal/app/deliveryfn"
	"github.com/dispatcher-dev/dispatcher/internal/testkit/faults"
	"github.com/dispatcher-dev/dispatcher/internal/testkit/flowtest"
	"github.com/dispatcher-dev/dispatcher/internal/testkit/testenv"
)

// Row is one strategy's line of the table.
type Row struct {
	Strategy  string
	Commands  int
	Committed int // commands whose state change is in the table
	// The anti-patterns count per command (one event and one email each);
	// the outbox counts per outbox item (committed = the item exists).
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
	Aggregates        int           // accounts the commands went to: an OpenAccount, then deposits
	Accepted          int           // commands answered 202
	Refused           int           // deposits answered 4xx: their account's opening never committed
	Unanswered        int           // commands answered 5xx or not at all: the client cannot know
	Kills             int           // relay bootstraps killed (SIGKILL)
	KillsMidBatch     int           // relay kills made while an invocation was in flight
	SQSDown           time.Duration // how long the SQS emulator was stopped
	SQSFailed         int           // requests to SQS that failed at the connection while it was down
	Parked            int           // FAILED outbox items found in the DLQ before the replay
	ParkedMissing     int           // FAILED outbox items not in the DLQ
	Rejected          int           // recipients SES rejected while the faults lasted
	RejectedDelivered int           // emails to them DELIVERED before the faults ended: must be 0
	InversionsEvents  int           // events whose first copy came after a higher version's of their aggregate
	InversionsEmails  int           // the same for emails
	InversionsExcused int           // FAILED items the replay delivered after later versions: allowed
	OrderChecked      int           // aggregates with 2+ versions delivered on both targets
	HistoryItems      int           // EVENT items (event-sourced): 0 in the outbox run, one per committed command in the event-sourced run
	// Per aggregate, against what the client was told: a command answered
	// 202 that never committed (lost), one committed beyond those answered
	// 202 or not answered (phantom), and, listen-to-yourself only, deposits
	// answered 202 (queued) that the consumer refused: a reused key's other
	// body, or one whose account's opening was never accepted.
	LostCommands    int
	PhantomCommands int
	RefusedLater    int
	// Deposits sent with an earlier deposit's Idempotency-Key and another
	// body (one per 3 accounts): answered 202 (listen-to-yourself: queued,
	// refused later by the consumer; elsewhere: the key's first body never
	// committed), or 422 at once.
	ReusedAccepted   int
	ReusedRefused    int
	Redriven         int // listen-to-yourself: dead commands moved back to the queue by the final redrive
	ConsumerKills    int // listen-to-yourself consumer bootstraps killed
	ConsumerKillsMid int
	// The own-table run: the user's service's transactions retried (after
	// an unknown or transient outcome, with the same ClientRequestToken),
	// committed by a retry after a lost answer (the token made the retry
	// the first call's answer), decided by re-reading its own item, and
	// known not committed. The commands it crashed in are Unanswered.
	OwnRetried, OwnByToken, OwnReread, OwnFailed int
	Recovery                                     Recovery // the solutions: how long each relay kill left items undelivered (recovery.go)
}

// Lost and Phantom sum events and emails.
func (r Row) Lost() int    { return r.LostEvents + r.LostEmails }
func (r Row) Phantom() int { return r.PhantomEvents + r.PhantomEmails }

// Inversions sums events and emails delivered out of version order.
func (r Row) Inversions() int { return r.InversionsEvents + r.InversionsEmails }

// Outbox is the name of the outbox's row.
const Outbox = "outbox"

// Run applies n commands with every strategy, each under a fresh copy of
// the seed's schedule, and returns the table.
func Run(t testing.TB, seed uint64, n int, rates Rates) []Row {
	return run(t, seed, n, rates, Solutions, true)
}

// RunSolution runs one of the Solutions alone, by name, without the
// anti-patterns: a quick check of a change to one mode (CHAOS_ONLY).
func RunSolution(t testing.TB, seed uint64, n int, rates Rates, name string) []Row {
	for _, sol := range Solutions {
		if sol.Name == name {
			return run(t, seed, n, rates, []Solution{sol}, false)
		}
	}
	t.Fatalf("no solution %q", name)
	return nil
}

func run(t testing.TB, seed uint64, n int, rates Rates, sols []Solution, antiPatterns bool) []Row {
	t.Helper()
	env := testenv.Get(t)
	f := flowtest.New(t, func(c *deliveryfn.Config) { c.Delivery.Lease = 300 * time.Millisecond })
	var rows []Row
	for _, sol := range sols {
		rows = append(rows, runOutbox(t, env, f, seed, n, rates, sol))
	}
	if !antiPatterns {
		return rows
	}
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

// tallyOutbox counts the outbox run per outbox item, against the table,
// the run's events queue (which it drains) and the SES store: an effect is
// committed if its outbox item exists, delivered if its event id reached
// the queue (the CloudEvent's id) or the store (X-Dispatcher-Event-Id). It
// also checks the order of each aggregate's deliveries (CheckOrder); the
// items in failed were FAILED before the replay, which may deliver them
// after later versions. Deposits refused (4xx) are noted if their account's
// opening committed after all. An item of a version beyond its aggregate's
// state never committed: delivered, it is a phantom. For the own-table row,
// own is the user's service: the versions are read in its table, and a
// committed version without its event (or email) item is a lost one.
func tallyOutbox(t testing.TB, env *testenv.Env, f *flowtest.Fixture, aggs []Cmd, failed map[string]bool, refused map[string]int, answers map[string]*answered, own *ownService, row Row) Row {
	t.Helper()
	ctx := context.Background()
	type effect struct {
		agg, target string
		version     int64
	}
	items := map[string]effect{}     // event id -> its outbox item
	uncommitted := map[string]bool{} // event ids of items beyond their aggregate's committed version
	owner := map[string]string{}     // address -> aggregate id
	for _, c := range aggs {
		owner[c.Email] = c.ID
		// Each committed command moved the state one version on: the
		// opening to 1, each deposit one more. Event-sourced, there is no
		// state item: each committed command wrote one EVENT item. The
		// own-table row's state is in the user's table.
		history := len(f.EventItems(c.ID))
		row.HistoryItems += history
		version := int64(history)
		if own != nil {
			version = own.version(ctx, t, c.ID)
		} else if v := stateVersion(t, f, c.ID); v >= 0 {
			version = v
		}
		if a := answers[c.ID]; a != nil {
			v := int(version)
			row.RefusedLater += a.refused
			if lost := a.accepted - a.refused - v; lost > 0 {
				row.LostCommands += lost
				t.Errorf("%s: %d commands answered 202, %d committed, %d refused by the consumer: %d lost", c.ID, a.accepted, v, a.refused, lost)
			}
			if v > a.accepted+a.unanswered {
				row.PhantomCommands += v - a.accepted - a.unanswered
				t.Errorf("%s: %d commands committed, more than the %d answered 202 or not answered", c.ID, v, a.accepted+a.unanswered)
			}
		}
		row.Committed += int(version)
		if k := refused[c.ID]; k > 0 && version > 0 {
			t.Logf("%s: %d deposits answered 4xx, though the account's opening committed", c.ID, k)
		}
		versions := map[int64]bool{}
		targets := map[string]bool{} // version and target
		for _, it := range effects(f, c.ID) {
			v, id, target := num(it, "version"), flowtest.S(it, "eventId"), flowtest.S(it, "target")
			items[id] = effect{c.ID, target, v}
			versions[v], targets[fmt.Sprint(v, target)] = true, true
			uncommitted[id] = v > version
		}
		if own != nil {
			// Each of the user's committed versions wrote an event and an
			// email: one missing is lost, whatever the writer was told.
			for v := int64(1); v <= version; v++ {
				row.LostEvents += b2i(!targets[fmt.Sprint(v, "events")])
				row.LostEmails += b2i(!targets[fmt.Sprint(v, "email")])
			}
		}
		if len(versions) != int(version) || (version > 0 && !versions[version]) {
			t.Errorf("%s: state at version %d, outbox items of %d versions: a command committed without its effects, or effects without it", c.ID, version, len(versions))
		}
	}

	copies := map[string]int{}          // target + " " + event id -> copies delivered
	ids := map[effect]map[string]bool{} // the ids each effect was delivered under
	events, emails := map[string][]Delivered{}, map[string][]Delivered{}
	deliver := func(target, agg, id string, version int64) {
		copies[target+" "+id]++
		e := effect{agg, target, version}
		if ids[e] == nil {
			ids[e] = map[string]bool{}
		}
		ids[e][id] = true
		switch it, ok := items[id]; {
		case copies[target+" "+id] > 1:
		case (!ok || uncommitted[id]) && target == "events": // no item, or one whose state change never committed
			row.PhantomEvents++
		case !ok || uncommitted[id]:
			row.PhantomEmails++
		case it != e:
			t.Errorf("delivered %s %s as %s version %d, its outbox item is %s %s version %d", target, id, agg, version, it.target, it.agg, it.version)
		}
	}
	for _, m := range f.Drain(f.Events) {
		subj, _ := m.Body["subject"].(string)
		id, _ := m.Body["id"].(string)
		v, _ := m.Body["aggregateversion"].(float64)
		events[subj] = append(events[subj], Delivered{ID: id, Version: int64(v)})
		deliver("events", subj, id, int64(v))
	}
	all, err := env.SentEmails(ctx)
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range all { // in the order the emulator took them
		agg := ""
		for _, to := range e.Destination.To {
			if a, ok := owner[to]; ok {
				agg = a
			}
		}
		if agg == "" {
			continue // another run's
		}
		id := e.Header("X-Dispatcher-Event-Id")
		v, _ := strconv.ParseInt(e.Header("X-Dispatcher-Aggregate-Version"), 10, 64)
		emails[agg] = append(emails[agg], Delivered{ID: id, Version: v})
		deliver("email", agg, id, v)
	}

	row.Aggregates = len(aggs)
	if own != nil {
		// What the user's service saw commit must be in the table.
		for id, target := range own.seen {
			if _, ok := items[id]; !ok {
				t.Errorf("own-table: the service saw %s %s commit, and no outbox item has it", target, id)
			}
		}
	}
	for id, it := range items {
		if copies[it.target+" "+id] > 0 || uncommitted[id] {
			continue
		}
		if it.target == "email" {
			row.LostEmails++
		} else {
			row.LostEvents++
		}
	}
	for k, n := range copies {
		row.Duplicates += n - 1
		if strings.HasPrefix(k, "email ") {
			row.DuplicateEmails += n - 1
		}
	}
	for _, set := range ids {
		row.BadDuplicates += len(set) - 1
		if set[""] && len(set) == 1 { // no id at all: a consumer cannot drop it
			row.BadDuplicates++
		}
	}
	o := CheckOrder(events, emails, failed)
	row.InversionsEvents, row.InversionsEmails, row.InversionsExcused, row.OrderChecked = o.Events, o.Emails, o.Excused, o.Checked
	for _, c := range aggs {
		for target, seq := range map[string][]Delivered{"events": events[c.ID], "emails": emails[c.ID]} {
			if n, _ := Inversions(seq, failed); n > 0 {
				t.Logf("%s: %d %s delivered after a later version; in delivery order: %s", c.ID, n, target, sequence(seq, failed))
			}
		}
	}
	return row
}

// stateVersion is an aggregate's version by its STATE item in the stack's
// table, -1 if it has none.
func stateVersion(t testing.TB, f *flowtest.Fixture, agg string) int64 {
	t.Helper()
	out, err := f.DB.GetItem(context.Background(), &dynamodb.GetItemInput{TableName: aws.String(f.Table), ConsistentRead: aws.Bool(true), Key: map[string]ddbtypes.AttributeValue{
		"pk": &ddbtypes.AttributeValueMemberS{Value: "AGG#" + agg}, "sk": &ddbtypes.AttributeValueMemberS{Value: "STATE"},
	}})
	if err != nil {
		t.Fatal(err)
	}
	if out.Item == nil {
		return -1
	}
	return num(out.Item, "version")
}

// sequence renders deliveries for the log: version:id, * where FAILED
// before the replay.
func sequence(seq []Delivered, failed map[string]bool) string {
	var b strings.Builder
	for i, d := range seq {
		if i > 0 {
			b.WriteString(", ")
		}
		fmt.Fprintf(&b, "v%d:%s", d.Version, d.ID)
		if failed[d.ID] {
			b.WriteString("*")
		}
	}
	return b.String()
}

// num returns a number attribute of an item, or 0.
func num(it map[string]ddbtypes.AttributeValue, k string) int64 {
	if v, ok := it[k].(*ddbtypes.AttributeValueMemberN); ok {
		n, _ := strconv.ParseInt(v.Value, 10, 64)
		return n
	}
	return 0
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
	fmt.Fprintf(&b, "seed %d\n\n| strategy | commands | committed | lost (events+emails) | phantom (events+emails) | duplicates (same id) | duplicates with another id | inversions (events+emails) | faults | relay kills (mid-batch) |\n| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |\n", seed)
	for _, r := range rows {
		// Only the outbox run gives an aggregate more than one version.
		kills, inversions := "–", "–"
		if IsSolution(r.Strategy) {
			kills = fmt.Sprintf("%d (%d)", r.Kills, r.KillsMidBatch)
			inversions = fmt.Sprintf("%d (%d+%d)", r.Inversions(), r.InversionsEvents, r.InversionsEmails)
		}
		fmt.Fprintf(&b, "| %s | %d | %d | %d (%d+%d) | %d (%d+%d) | %d | %d | %s | %d | %s |\n", r.Strategy, r.Commands, r.Committed,
			r.Lost(), r.LostEvents, r.LostEmails, r.Phantom(), r.PhantomEvents, r.PhantomEmails, r.Duplicates, r.BadDuplicates, inversions, r.Faults, kills)
	}
	for _, r := range rows {
		if IsSolution(r.Strategy) {
			fmt.Fprintf(&b, "\n%s: %s\n", r.Strategy, describe(r))
		}
	}
	return b.String()
}
