package chaos

import (
	"bytes"
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
	"sync/atomic"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	ddbtypes "github.com/aws/aws-sdk-go-v2/service/dynamodb/types"
	sqsapi "github.com/aws/aws-sdk-go-v2/service/sqs"
	sqstypes "github.com/aws/aws-sdk-go-v2/service/sqs/types"

	"github.com/dispatcher-dev/dispatcher/internal/delivery"
	"github.com/dispatcher-dev/dispatcher/internal/local/emulator"
	"github.com/dispatcher-dev/dispatcher/internal/local/provision"
	"github.com/dispatcher-dev/dispatcher/internal/local/runner"
	"github.com/dispatcher-dev/dispatcher/internal/testkit/faults"
	"github.com/dispatcher-dev/dispatcher/internal/testkit/flowtest"
	"github.com/dispatcher-dev/dispatcher/internal/testkit/testenv"
	"github.com/dispatcher-dev/dispatcher/internal/webhook"
)

// The outbox run's knobs, beside the schedule's rates.
const (
	relayFunction = "StreamRelayFunction"
	// KillRate is the share of relay invocations during which the relay's
	// bootstrap gets a SIGKILL, at its 1st to 4th AWS request (seeded);
	// every batch makes at least 4 (status read, claim, send, mark).
	KillRate = 0.5
	// emailLease is EMAIL_LEASE_SECONDS for the run: an email claimed by a
	// killed relay is free again after it.
	emailLease  = time.Second
	chaosSecret = "whsec_Y2hhb3MtaGFybmVzcy1zZWNyZXQtbm90LWZvci1wcm9k"
)

// runOutbox runs the product as deployed, on a stack of its own: the
// built bootstraps under the Lambda Runtime Interface Emulator, behind the
// local runner's HTTP API and stream mapping. The bootstraps reach DynamoDB,
// SQS and SES through fault-injecting proxies that apply the seed's
// schedule; the relay's bootstrap is killed (SIGKILL) at seeded points,
// mid-batch; the SQS emulator is stopped for a seeded while and restarted
// in the middle of the run. The client sends each command once. When the
// outage is over, the faults stop, and the replay function runs the DLQ and
// the sweep as its schedule would.
func runOutbox(t testing.TB, env *testenv.Env, f *flowtest.Fixture, seed uint64, n int, rates Rates, sol Solution) Row {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Minute)
	defer cancel()
	stack, err := provision.Apply(ctx, env.AWS, provision.Options{
		TemplatePath: filepath.Join(env.Root, "infra", "template.yaml"),
		StackName:    fmt.Sprintf("cx%d-%d", seed, time.Now().UnixNano()%1e9),
	})
	if err != nil {
		t.Fatal(err)
	}
	g := *f // the fixture's readers, on this stack's table and queues
	g.Table, g.Events, g.DLQ = stack.Physical("OutboxTable"), stack.Physical("EventsQueue"), stack.Physical("DeadLetterQueue")

	sched := NewSchedule(seed, rates)
	k := &killer{rng: sched.Rand("relay kill"), rate: KillRate, function: relayFunction, ops: relayOps, upTo: 4}
	killers := []*killer{k}
	var ck *killer // the consumer's, listen-to-yourself only
	if sol.Name == ListenToYourself {
		// The consumer commits once per message, and mostly gets one
		// message at a time: an armed invocation dies at its first commit,
		// before it reaches DynamoDB or after it applied.
		ck = &killer{rng: sched.Rand("consumer kill"), rate: KillRate, function: consumerFunction, ops: consumerOps, upTo: 1}
		killers = append(killers, ck)
	}
	out := &sqsOutage{ctx: ctx, stack: env.Emulators, started: make(chan struct{}), done: make(chan struct{})}
	via := &chaosTransport{next: http.DefaultTransport, ks: killers, outage: out}
	tr := faults.New(via)
	aggs, steps := outboxPlan(seed, sched.Rand("commands"), n)
	if sol.Name == OwnTable {
		// The user's service has no Idempotency-Key API: its plan is the
		// same without the reused keys.
		steps = slices.DeleteFunc(steps, func(s step) bool { return s.reuse })
	}
	rejected := sched.RejectRecipients(tr, aggs)
	if sol.Name == OwnTable {
		// The user's service's first transaction applies and its answer is
		// lost, so that every run holds that case (the schedule's own lost
		// answers come on top, seeded).
		tr.Add(faults.Fault{Match: faults.Target("TransactWriteItems"), Times: 1, AfterApply: true})
	}
	sched.Install(tr)
	extra := map[string]string{"WEBHOOK_SECRETS": chaosSecret, "EMAIL_LEASE_SECONDS": strconv.Itoa(int(emailLease / time.Second))}
	for k, v := range sol.Env {
		extra[k] = v
	}
	for name, variable := range map[emulator.Name]string{emulator.DynamoDB: "AWS_ENDPOINT_URL_DYNAMODB", emulator.SQS: "AWS_ENDPOINT_URL_SQS", emulator.SES: "AWS_ENDPOINT_URL_SESV2"} {
		p, err := faults.NewProxy(urlOf(t, env, name), tr)
		if err != nil {
			t.Fatal(err)
		}
		defer p.Close()
		extra[variable] = p.URL
	}

	spec, err := runner.ReadSpec(stack)
	if err != nil {
		t.Fatal(err)
	}
	dirs, err := runner.FunctionDirs(env.Root)
	if err != nil {
		t.Fatal(err)
	}
	// The functions' and the runner's logs go to a file, kept when the run
	// fails, and their last lines to the test log.
	logFile, err := os.CreateTemp("", fmt.Sprintf("dispatcher-chaos-seed%d-*.log", seed))
	if err != nil {
		t.Fatal(err)
	}
	logs := &tail{max: 64 << 10}
	logTo := io.MultiWriter(logFile, logs)
	bin, err := runner.StartBinaries(ctx, runner.BinaryOptions{Root: env.Root, Spec: spec, Dirs: dirs, StackName: stack.Eval.StackName(), Extra: extra, Log: logTo})
	if err != nil {
		t.Fatal(err)
	}
	defer bin.Stop()
	k.inner, k.bin = bin.Functions[relayFunction], bin
	fns := map[string]runner.Function{}
	for id, fn := range bin.Functions {
		fns[id] = fn
	}
	fns[relayFunction] = k
	if ck != nil {
		if ck.inner = bin.Functions[consumerFunction]; ck.inner == nil {
			t.Fatalf("no %s among the built functions", consumerFunction)
		}
		ck.bin = bin
		fns[consumerFunction] = ck
	}
	r, err := runner.New(runner.Options{Stack: stack, AWS: env.AWS, Functions: fns, Addr: "127.0.0.1:0", PollInterval: 50 * time.Millisecond,
		Log: slogTo(logTo)})
	if err != nil {
		t.Fatal(err)
	}
	if err := r.Start(ctx); err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	var own *ownService // the own-table row's writer, through the DynamoDB faults proxy
	if sol.Name == OwnTable {
		own = newOwnService(ctx, t, env, extra["AWS_ENDPOINT_URL_DYNAMODB"], g.Table, sched, seed)
	}

	// The commands, once each. From a seeded one on, the relay's next send
	// to SQS stops the SQS emulator, for a seeded while.
	ids := make([]string, len(aggs))
	for i, c := range aggs {
		ids[i] = c.ID
	}
	rng := sched.Rand("sqs outage")
	outageAt := n/4 + rng.IntN(max(1, n/2))
	out.down = time.Duration(1000+rng.IntN(1500)) * time.Millisecond
	row := Row{SQSDown: out.down, Commands: len(steps)}
	client := &http.Client{Timeout: 30 * time.Second}
	refused := map[string]int{} // aggregate id -> its deposits answered 4xx
	answers := map[string]*answered{}
	for _, c := range aggs {
		answers[c.ID] = &answered{}
	}
	for i, s := range steps {
		if i == outageAt {
			out.arm()
		}
		if own != nil {
			ownStep(t, ctx, own, s, &row, answers[s.agg.ID], refused)
			continue
		}
		status, err := post(ctx, client, r.URL()+"/v1/commands", s.key(), s.body())
		// A reused key is sent until it is answered, as a client retries a
		// 5xx with the same key and body (one command, whatever reached the
		// queue or the table before): the run must hold some such command.
		for try := 1; s.reuse && try < reuseTries && (err != nil || status >= 500); try++ {
			time.Sleep(reuseRetryDelay)
			status, err = post(ctx, client, r.URL()+"/v1/commands", s.key(), s.body())
		}
		a := answers[s.agg.ID]
		switch {
		case err != nil:
			row.Unanswered++
			a.unanswered++
		case status == http.StatusAccepted:
			row.Accepted++
			a.accepted++
			if s.reuse {
				row.ReusedAccepted++
			}
		case status >= 500:
			row.Unanswered++
			a.unanswered++
		case s.reuse && status == http.StatusUnprocessableEntity:
			// The key's first body committed: the synchronous modes refuse
			// the other at once.
			row.ReusedRefused++
		case s.n > 0 && (status == http.StatusNotFound || status == http.StatusConflict || status == http.StatusUnprocessableEntity):
			// A deposit to an account whose opening never committed.
			row.Refused++
			refused[s.agg.ID]++
		default:
			t.Errorf("command %s: answered %d, want 202, a 5xx, or for a deposit 404, 409 or 422", s.key(), status)
		}
	}
	if err := out.wait(time.Minute); err != nil {
		t.Error(err)
	}
	if sol.Name == ListenToYourself {
		// What a person does on CommandsDLQDepthAlarm once the cause is
		// gone (docs/operations.md): move the dead commands back, as SQS's
		// DLQ redrive does, and let the consumer apply them.
		queue := stack.Physical("CommandsQueue")
		for round := 0; ; round++ {
			if !drained(ctx, &g, queue, 90*time.Second) {
				t.Errorf("the commands queue still held messages 90 s after the last command")
				break
			}
			moved := redrive(ctx, t, &g, stack.Physical("CommandsDeadLetterQueue"), queue)
			row.Redriven += moved
			if moved == 0 || round == 5 {
				break
			}
		}
	}
	if !quiet(ctx, r, 90*time.Second) {
		t.Logf("the stream mapping was still busy after 90 s; the replay will sweep what it left")
	}

	// The outage ends.
	for _, k := range killers {
		k.stop.Store(true)
	}
	if ck != nil {
		row.ConsumerKills, row.ConsumerKillsMid = int(ck.kills.Load()), int(ck.midBatch.Load())
	}
	row.Faults = tr.Injected()
	row.Kills, row.KillsMidBatch, row.SQSFailed = int(k.kills.Load()), int(k.midBatch.Load()), int(via.sqsFailed.Load())
	tr.Reset()
	reset := time.Now()
	row.Parked, row.ParkedMissing = parked(t, &g, ids)
	// While the rejection lasted, no email to a rejected recipient could
	// go out: each is FAILED (and in the DLQ) or still waiting. The items
	// FAILED now wait for the replay, and the order guarantee lets later
	// versions of their aggregate pass them: the order check excuses them.
	// The stream recovery may still be at work (it is waited for below):
	// an email it delivers once the faults have ended was not delivered
	// while SES rejected it, and is told apart by its deliveredAt.
	row.Rejected = len(rejected)
	failed := map[string]bool{} // event ids
	for _, c := range aggs {
		for _, it := range effects(&g, c.ID) {
			st := flowtest.S(it, "status")
			if st == "FAILED" {
				failed[flowtest.S(it, "eventId")] = true
			}
			if slices.Contains(rejected, c.Email) && flowtest.S(it, "target") == "email" && st == "DELIVERED" {
				if at, err := time.Parse(time.RFC3339Nano, flowtest.S(it, "deliveredAt")); err == nil && at.After(reset) {
					t.Logf("%s: email %s to a rejected recipient delivered at %s, after the faults ended at %s", c.ID, flowtest.S(it, "eventId"), at.Format(time.RFC3339Nano), reset.UTC().Format(time.RFC3339Nano))
					continue
				}
				row.RejectedDelivered++
			}
		}
	}
	// Recovery needs no person: what the relay's kills left undelivered is
	// delivered by now (the stream recovery took what the mapping gave up
	// on), measured before anyone replays.
	if !drained(ctx, &g, stack.Physical("StreamRecoveryQueue"), RecoveryBound(emailLease)) {
		t.Errorf("the stream recovery queue still held messages %s after the mapping went quiet", RecoveryBound(emailLease))
	}
	row.Recovery = recoveryOf(&g, ids, failed, k.killTimes(), emailLease)
	t.Logf("seed %d, %s: %s", seed, sol.Name, row.Recovery)
	time.Sleep(emailLease + 200*time.Millisecond) // leases and the sweep's 1 s threshold lapse
	// The person who fixed the cause replays everything, whatever the
	// attempts: the schedule's faults count toward an item's attempts
	// (each failed try to park it during the SQS outage is one), and the
	// default cap of 10 is for items that keep failing after the fix.
	for range 2 {
		status, body, err := postJSON(ctx, client, r.URL()+runner.ReplayPath, `{"mode":"all","olderThanSeconds":1,"maxMessages":1000,"maxAttempts":1000}`)
		if err != nil || status != http.StatusOK {
			t.Errorf("replay: %d %s %v", status, body, err)
		}
	}
	if !quiet(ctx, r, 90*time.Second) {
		t.Errorf("the stream mapping was still busy 90 s after the replay")
	}
	row.DLQLeft = len(g.Drain(g.DLQ))
	for _, id := range ids {
		for _, it := range effects(&g, id) {
			if st := flowtest.S(it, "status"); st != "DELIVERED" {
				row.Undelivered++
				item := flowtest.Scalars(it)
				delete(item, "payload")
				t.Logf("not delivered after the replay (now %s): %s %s: %v", time.Now().UTC().Format(time.RFC3339Nano), id, st, item)
			}
		}
	}
	t.Logf("seed %d, %s faults: %v", seed, sol.Name, sched.Injected)
	row.Strategy = sol.Name
	if sol.Name == ListenToYourself {
		for agg, n := range refusedByConsumer(t, logFile.Name()) {
			if a := answers[agg]; a != nil {
				a.refused = n
			}
		}
	}
	if own != nil {
		row.OwnRetried, row.OwnByToken, row.OwnReread = own.retried, own.byToken, own.reread
	}
	row = tallyOutbox(t, env, &g, aggs, failed, refused, answers, own, row)
	if row.Lost()+row.Phantom()+row.Undelivered+row.DLQLeft+row.ParkedMissing+row.Inversions() > 0 || row.KillsMidBatch == 0 || t.Failed() {
		t.Logf("the %s run's functions and runner, last lines (all of it in %s):\n%s", sol.Name, logFile.Name(), logs.String())
		logFile.Close()
	} else {
		logFile.Close()
		os.Remove(logFile.Name())
	}
	return row
}

// Solution is one of the product's answers to the dual-write problem, run
// under the same schedule: the transactional outbox, event-sourced
// aggregates and listen-to-yourself. Env is given to every function.
type Solution struct {
	Name string
	Env  map[string]string
}

// The solutions' row names.
const (
	EventSourced     = "event-sourced"
	ListenToYourself = "listen-to-yourself"
)

// Solutions are the product's modes the chaos run puts beside the
// anti-patterns.
var Solutions = []Solution{
	{Name: Outbox},
	{Name: EventSourced, Env: map[string]string{"AGGREGATE_MODES": "Account=event-sourced"}},
	// Every account command is queued: the command function only
	// validates and sends; the consumer applies.
	{Name: ListenToYourself, Env: map[string]string{"LISTEN_TO_YOURSELF": "OpenAccount,DepositFunds"}},
	// A user's own service writes the commands (own.go): the command
	// function is deployed and idle; the relay delivers.
	{Name: OwnTable},
}

// IsSolution reports whether a row is one of the product's modes (which
// must lose and invent nothing), not an anti-pattern.
func IsSolution(strategy string) bool {
	for _, s := range Solutions {
		if s.Name == strategy {
			return true
		}
	}
	return false
}

// effects are an aggregate's outbox items and, event-sourced, its EVENT
// items: everything the relay delivers for it.
func effects(f *flowtest.Fixture, aggregate string) []map[string]ddbtypes.AttributeValue {
	return append(f.Items(aggregate), f.EventItems(aggregate)...)
}

// answered is what the client was told of one aggregate's commands, and,
// listen-to-yourself, how many of them the consumer refused after their 202.
type answered struct {
	accepted, unanswered int
	refused              int
}

// redrive moves every message of a dead-letter queue back to its FIFO
// queue, in the order received, with its message group, its attributes (a
// queued command's metadata) and a fresh deduplication id (the first one's
// 5-minute window would drop it), as SQS's DLQ redrive does. It returns how
// many it moved.
func redrive(ctx context.Context, t testing.TB, g *flowtest.Fixture, dlq, queue string) int {
	t.Helper()
	moved := 0
	for {
		res, err := g.SQS.ReceiveMessage(ctx, &sqsapi.ReceiveMessageInput{QueueUrl: aws.String(dlq), MaxNumberOfMessages: 10, VisibilityTimeout: 30,
			MessageSystemAttributeNames: []sqstypes.MessageSystemAttributeName{sqstypes.MessageSystemAttributeNameMessageGroupId},
			MessageAttributeNames:       []string{"All"}})
		if err != nil {
			t.Fatal(err)
		}
		if len(res.Messages) == 0 {
			return moved
		}
		for _, m := range res.Messages {
			if _, err := g.SQS.SendMessage(ctx, &sqsapi.SendMessageInput{QueueUrl: aws.String(queue), MessageBody: m.Body, MessageAttributes: m.MessageAttributes,
				MessageGroupId: aws.String(m.Attributes["MessageGroupId"]), MessageDeduplicationId: aws.String("redrive-" + aws.ToString(m.MessageId))}); err != nil {
				t.Fatal(err)
			}
			if _, err := g.SQS.DeleteMessage(ctx, &sqsapi.DeleteMessageInput{QueueUrl: aws.String(dlq), ReceiptHandle: m.ReceiptHandle}); err != nil {
				t.Fatal(err)
			}
			moved++
		}
	}
}

// refusedByConsumer counts, per aggregate, the queued commands the consumer
// refused after their 202, from its WARN lines in the run's log, each
// message once (a consumer killed after it logged and before the
// acknowledgement refuses the redelivered message again).
func refusedByConsumer(t testing.TB, logPath string) map[string]int {
	t.Helper()
	b, err := os.ReadFile(logPath)
	if err != nil {
		t.Fatal(err)
	}
	seen := map[string]bool{}
	out := map[string]int{}
	for _, line := range strings.Split(string(b), "\n") {
		if !strings.Contains(line, "queued command refused after its 202") {
			continue
		}
		i := strings.IndexByte(line, '{')
		if i < 0 {
			continue
		}
		var l struct{ MessageID, AggregateID string }
		if json.Unmarshal([]byte(line[i:]), &l) != nil || seen[l.MessageID] {
			continue
		}
		seen[l.MessageID] = true
		out[l.AggregateID]++
	}
	return out
}

// drained waits until a queue holds no message, visible or in flight, for
// a few polls: the listen-to-yourself consumer has taken everything.
func drained(ctx context.Context, g *flowtest.Fixture, queue string, within time.Duration) bool {
	deadline := time.Now().Add(within)
	var since time.Time
	for time.Now().Before(deadline) && ctx.Err() == nil {
		out, err := g.SQS.GetQueueAttributes(ctx, &sqsapi.GetQueueAttributesInput{QueueUrl: aws.String(queue), AttributeNames: []sqstypes.QueueAttributeName{
			sqstypes.QueueAttributeNameApproximateNumberOfMessages, sqstypes.QueueAttributeNameApproximateNumberOfMessagesNotVisible,
		}})
		empty := err == nil && out.Attributes["ApproximateNumberOfMessages"] == "0" && out.Attributes["ApproximateNumberOfMessagesNotVisible"] == "0"
		switch {
		case !empty:
			since = time.Time{}
		case since.IsZero():
			since = time.Now()
		case time.Since(since) > time.Second:
			return true
		}
		time.Sleep(100 * time.Millisecond)
	}
	return false
}

// step is one command of the outbox run: an account's OpenAccount (n = 0)
// or its n-th DepositFunds; or, reuse, a deposit of reusedAmount sent with
// the n-th deposit's Idempotency-Key, a client's bug: refused (422) by the
// synchronous modes, answered 202 and refused later by the consumer in the
// listen-to-yourself mode, where it must not vanish (issue 24).
type step struct {
	agg   Cmd
	n     int
	reuse bool
}

// reusedAmount is the amount of a reused key's other body. A reuse step is
// sent up to reuseTries times, reuseRetryDelay apart, until it is answered
// below 500: longer, in all, than the SQS emulator's longest outage.
const (
	reusedAmount    = 9999
	reuseTries      = 8
	reuseRetryDelay = 400 * time.Millisecond
)

// key is the command's Idempotency-Key: its own, so each is applied once
// (a reuse step's is its deposit's).
func (s step) key() string { return fmt.Sprintf("%s-%d", s.agg.ID, s.n) }

// body leaves out expectedVersion: a deposit that loses a race re-reads and
// retries, as a client that does not track versions would have it.
func (s step) body() string {
	switch {
	case s.reuse:
		return flowtest.Deposit(s.agg.ID, reusedAmount)
	case s.n == 0:
		return flowtest.Open(s.agg.ID, s.agg.Email)
	}
	return flowtest.Deposit(s.agg.ID, 100*s.n)
}

// outboxPlan spreads n commands over about n/3 accounts, so that the order
// of each aggregate's effects can be seen: each account is opened, then
// gets 1 to 3 deposits (seeded; 4 at the end rather than an opening alone). The
// accounts are taken 3 at a time and their commands interleaved (A0 B0 C0
// A1 B1 C1 ...): an account's versions are committed a few commands apart,
// within the stream mapping's batching window more often than not, so
// several versions of one aggregate are in flight together, in one batch
// or in batches back to back, beside other aggregates'. Each window of 3
// ends with a reuse step (one command more per 3 accounts).
func outboxPlan(seed uint64, rng *rand.Rand, n int) ([]Cmd, []step) {
	var sizes []int
	for left := n; left > 0; {
		k := min(left, 2+rng.IntN(3))
		if left-k == 1 {
			k++ // no account of a lone OpenAccount at the end
		}
		sizes = append(sizes, k)
		left -= k
	}
	aggs := commands(seed, Outbox, len(sizes))
	steps := make([]step, 0, n)
	const window = 3
	for w := 0; w < len(aggs); w += window {
		end := min(w+window, len(aggs))
		for j := range slices.Max(sizes[w:end]) {
			for i := w; i < end; i++ {
				if j < sizes[i] {
					steps = append(steps, step{agg: aggs[i], n: j})
				}
			}
		}
		// The window's first account's first deposit key, again, with
		// another body: a few commands after it, within SQS's 5-minute
		// deduplication window.
		steps = append(steps, step{agg: aggs[w], n: 1, reuse: true})
	}
	return aggs, steps
}

func urlOf(t testing.TB, env *testenv.Env, n emulator.Name) string {
	p := env.Emulators.Get(n)
	if p == nil {
		t.Fatalf("no %s emulator", n)
	}
	return p.URL
}

// post sends a command as a Standard Webhooks client does, signed, with its
// idempotency key, once.
func post(ctx context.Context, c *http.Client, url, key, body string) (int, error) {
	id := "msg_" + key
	now := time.Now()
	sig, err := webhook.Sign(chaosSecret, id, now, []byte(body))
	if err != nil {
		return 0, err
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, url, strings.NewReader(body))
	if err != nil {
		return 0, err
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("Idempotency-Key", key)
	req.Header.Set("webhook-id", id)
	req.Header.Set("webhook-timestamp", strconv.FormatInt(now.Unix(), 10))
	req.Header.Set("webhook-signature", sig)
	resp, err := c.Do(req)
	if err != nil {
		return 0, err
	}
	defer resp.Body.Close()
	_, _ = io.Copy(io.Discard, resp.Body)
	return resp.StatusCode, nil
}

func postJSON(ctx context.Context, c *http.Client, url, body string) (int, string, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, url, strings.NewReader(body))
	if err != nil {
		return 0, "", err
	}
	req.Header.Set("Content-Type", "application/json")
	resp, err := c.Do(req)
	if err != nil {
		return 0, "", err
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b), nil
}

// quiet waits until the relay's mapping has read the stream to its end and
// settled every record (delivered, or handed to the on-failure
// destination), and stays so for a few polls: nothing is in flight.
func quiet(ctx context.Context, r *runner.Runner, within time.Duration) bool {
	deadline := time.Now().Add(within)
	var since time.Time
	for time.Now().Before(deadline) && ctx.Err() == nil {
		switch {
		case !r.CaughtUp(relayFunction):
			since = time.Time{}
		case since.IsZero():
			since = time.Now()
		case time.Since(since) > 500*time.Millisecond:
			return true
		}
		time.Sleep(50 * time.Millisecond)
	}
	return false
}

// parked checks the permanent failures: every FAILED outbox item of the run
// has its message in the DLQ. It peeks (the messages come back after a
// second) and returns how many FAILED items were found there and how many
// were not.
func parked(t testing.TB, g *flowtest.Fixture, ids []string) (found, missing int) {
	t.Helper()
	inDLQ := map[string]bool{}
	for empty := 0; empty < 2; {
		res, err := g.SQS.ReceiveMessage(context.Background(), &sqsapi.ReceiveMessageInput{QueueUrl: aws.String(g.DLQ), MaxNumberOfMessages: 10, VisibilityTimeout: 1})
		if err != nil {
			t.Fatal(err)
		}
		if len(res.Messages) == 0 {
			empty++
			continue
		}
		for _, m := range res.Messages {
			if p, err := delivery.ParseParked(aws.ToString(m.Body)); err == nil {
				inDLQ[p.AggregateID+" "+p.EventID] = true
			}
		}
	}
	for _, id := range ids {
		for _, it := range effects(g, id) {
			if flowtest.S(it, "status") != "FAILED" {
				continue
			}
			if inDLQ[id+" "+flowtest.S(it, "eventId")] {
				found++
			} else {
				missing++
				t.Errorf("outbox item %s/%s is FAILED and not in the DLQ", id, flowtest.S(it, "sk"))
			}
		}
	}
	return found, missing
}

// killer kills the relay's bootstrap (SIGKILL) in the middle of seeded
// invocations: such an invocation is armed with a countdown, and the
// relay's AWS request that brings it to zero (a status read, a send, a
// mark) triggers the kill, before or after the request reaches the
// emulator (seeded): the relay dies between two steps of its batch,
// possibly with a send applied and not marked.
type killer struct {
	inner    runner.Function
	bin      *runner.Binaries
	rate     float64
	function string                     // the template's logical id of the function it kills
	ops      []func(*http.Request) bool // the requests it counts down on: only that function's
	upTo     int                        // an armed invocation dies at its 1st to upTo-th such request

	mu          sync.Mutex
	rng         *rand.Rand
	armed       int // relay requests left before the kill; 0 = not armed
	invocations int
	after       bool // kill once the request has been answered
	stop        atomic.Bool
	kills       atomic.Int64 // processes killed
	// midBatch counts the kills made while an invocation was in flight. The
	// invocation's error does not say so reliably: a runtime killed during
	// its init fails it as Sandbox.Failure, and one killed just after an
	// invocation fails the next as Runtime.ExitError (seed 44 once counted
	// none of 33 kills so, another time more invocations than kills).
	midBatch atomic.Int64
	inFlight atomic.Int64 // invocations started and not yet answered
	killedAt []time.Time  // when each kill was made (recovery.go)
}

func (k *killer) Invoke(ctx context.Context, requestID string, payload []byte) ([]byte, error) {
	k.mu.Lock()
	// The first invocation is always armed, so that every run has a kill.
	if first := k.invocations == 0; !k.stop.Load() && (k.rng.Float64() < k.rate || first) {
		k.armed, k.after = 1+k.rng.IntN(k.upTo), k.rng.IntN(2) == 0
	}
	k.invocations++
	k.mu.Unlock()
	k.inFlight.Add(1)
	out, err := k.inner.Invoke(ctx, requestID, payload)
	k.inFlight.Add(-1)
	k.mu.Lock()
	k.armed = 0
	k.mu.Unlock()
	return out, err
}

// relayOps are the requests only the relay (and the replay) makes.
var relayOps = []func(*http.Request) bool{
	faults.Target("BatchGetItem"), faults.Target("UpdateItem"), faults.Target("SendMessageBatch"), faults.Target("SendMessage"), faults.Path(sesPath),
}

// consumerOps are the requests of the listen-to-yourself consumer: its
// commit (every account command is queued in that run, so the command
// function itself writes nothing).
var consumerOps = []func(*http.Request) bool{faults.Target("TransactWriteItems")}

// consumerFunction is the listen-to-yourself consumer's logical id.
const consumerFunction = "CommandConsumerFunction"

// due says whether this request triggers the kill, and when.
func (k *killer) due(r *http.Request) (now, after bool) {
	k.mu.Lock()
	defer k.mu.Unlock()
	if k.armed == 0 || k.stop.Load() {
		return false, false
	}
	for _, op := range k.ops {
		if op(r) {
			k.armed--
			if k.armed == 0 {
				return true, k.after
			}
			return false, false
		}
	}
	return false, false
}

func (k *killer) kill() {
	if pids, err := k.bin.Kill(k.function); err == nil {
		k.kills.Add(int64(len(pids)))
		if len(pids) > 0 && k.inFlight.Load() > 0 {
			k.midBatch.Add(1)
		}
		k.mu.Lock()
		k.killedAt = append(k.killedAt, time.Now())
		k.mu.Unlock()
	}
}

// chaosTransport is the proxies' way to the emulators: it kills the relay
// where the killer says, starts the SQS outage at the first send after it
// is armed, and counts the requests to SQS that the outage made fail.
type chaosTransport struct {
	next      http.RoundTripper
	ks        []*killer
	outage    *sqsOutage
	sqsFailed atomic.Int64 // requests to SQS that failed at the connection: refused, reset
}

// sqsSend matches the relay's sends to SQS (events, parked items).
func sqsSend(r *http.Request) bool {
	return faults.Target("SendMessageBatch")(r) || faults.Target("SendMessage")(r)
}

// sqsOutage stops the SQS emulator at the first send to SQS after it is
// armed (so that the outage meets the relay at work: that send fails),
// and starts it again after down.
type sqsOutage struct {
	ctx   context.Context
	stack *emulator.Stack
	down  time.Duration

	started chan struct{} // closed when the emulator is stopped (or failed to stop)
	done    chan struct{} // closed when it is back (or failed to come back)
	err     error         // written before done is closed

	mu    sync.Mutex
	armed bool
	begun bool
}

func (o *sqsOutage) arm() {
	o.mu.Lock()
	o.armed = true
	o.mu.Unlock()
}

// start stops the emulator, if armed and not done yet, and returns once it
// is down; it comes back up in the background.
func (o *sqsOutage) start() {
	o.mu.Lock()
	if !o.armed || o.begun {
		o.mu.Unlock()
		return
	}
	o.begun = true
	o.mu.Unlock()
	defer close(o.started)
	if err := o.stack.StopOne(emulator.SQS); err != nil {
		o.err = fmt.Errorf("stop the SQS emulator: %w", err)
		close(o.done)
		return
	}
	go func() {
		defer close(o.done)
		time.Sleep(o.down)
		if err := o.stack.StartOne(o.ctx, emulator.SQS); err != nil {
			o.err = fmt.Errorf("restart the SQS emulator: %w", err)
		}
	}()
}

// wait waits for the outage to come (at the relay's next send to SQS, or
// after within if none comes) and to end.
func (o *sqsOutage) wait(within time.Duration) error {
	o.arm()
	select {
	case <-o.started:
	case <-time.After(within):
		o.start() // no-op if a send started it meanwhile
	}
	<-o.done
	return o.err
}

func (x *chaosTransport) RoundTrip(r *http.Request) (*http.Response, error) {
	if sqsSend(r) {
		x.outage.start()
	}
	var later []*killer
	for _, k := range x.ks {
		now, after := k.due(r)
		switch {
		case now && !after:
			k.kill()
		case now:
			later = append(later, k)
		}
	}
	resp, err := x.next.RoundTrip(r)
	for _, k := range later {
		k.kill()
	}
	// Only the outage makes a request to SQS fail here (the schedule's
	// faults are answered before this transport, or after it answered).
	if err != nil && strings.HasPrefix(r.Header.Get("X-Amz-Target"), "AmazonSQS.") {
		x.sqsFailed.Add(1)
	}
	return resp, err
}

// tail keeps the last max bytes written to it.
type tail struct {
	mu  sync.Mutex
	max int
	b   []byte
}

func (w *tail) Write(p []byte) (int, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.b = append(w.b, p...)
	if len(w.b) > w.max {
		w.b = w.b[len(w.b)-w.max:]
	}
	return len(p), nil
}

func (w *tail) String() string {
	w.mu.Lock()
	defer w.mu.Unlock()
	if i := bytes.IndexByte(w.b, '\n'); i >= 0 && len(w.b) == w.max {
		return string(w.b[i+1:])
	}
	return string(w.b)
}

// describe says, for the test log, what the run did to the outbox.
func describe(r Row) string {
	plan := "an opening, then deposits, and a deposit key reused with another body per 3 accounts"
	answers := fmt.Sprintf("%d answered 202 (%d of the reused keys), %d reused keys refused at once (422), %d deposits refused (4xx: the account never opened), %d unanswered (5xx or reset)",
		r.Accepted, r.ReusedAccepted, r.ReusedRefused, r.Refused, r.Unanswered)
	if r.Strategy == OwnTable {
		plan = "an opening, then deposits, each one TransactWriteItems of the user's service: its own table and the outbox items"
		answers = fmt.Sprintf("%d seen committed, %d deposits refused (the account not open), %d known not committed, %d unanswered (the service crashed); %d transactions retried with the same ClientRequestToken, %d of them committed by a retry after a lost answer, %d outcomes decided by re-reading its own item",
			r.Accepted, r.Refused, r.OwnFailed, r.Unanswered, r.OwnRetried, r.OwnByToken, r.OwnReread)
	}
	consumer := ""
	if r.Strategy == ListenToYourself {
		consumer = fmt.Sprintf("; consumer bootstrap killed %d times (%d mid-batch); %d dead commands redriven from the commands DLQ; %d queued commands refused by the consumer after their 202 (a key reused with another body, or a deposit to an account not open when it was applied)", r.ConsumerKills, r.ConsumerKillsMid, r.Redriven, r.RefusedLater)
	}
	return fmt.Sprintf("%d commands over %d accounts (%s): %s; relay bootstrap killed %d times (%d mid-batch); SQS emulator down %s (%d requests to it failed); %d recipients rejected, %d permanent failures parked in the DLQ (%d missing); %d faults; %d duplicate deliveries, %d of them emails, each with the id of the first; order checked on %d aggregates with 2+ versions delivered on both targets: %d events and %d emails delivered after a later version (%d FAILED items replayed after later versions, allowed)",
		r.Commands, r.Aggregates, plan, answers, r.Kills, r.KillsMidBatch, r.SQSDown.Round(time.Millisecond), r.SQSFailed, r.Rejected, r.Parked, r.ParkedMissing, r.Faults, r.Duplicates, r.DuplicateEmails,
		r.OrderChecked, r.InversionsEvents, r.InversionsEmails, r.InversionsExcused) + consumer
}

func slogTo(w io.Writer) *slog.Logger {
	return slog.New(slog.NewTextHandler(w, &slog.HandlerOptions{Level: slog.LevelDebug}))
}
