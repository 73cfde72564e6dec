// Package delivery delivers outbox items: events to SQS as CloudEvents,
// emails through SES v2, in version order per aggregate, with retries inside
// the invocation, a lease per email, parking in the DLQ, and conditional
// marks. The stream relay and the DLQ replay share it (docs/delivery.md).
package delivery

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"sort"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"golang.org/x/time/rate"

	"github.com/dispatcher-dev/dispatcher/internal/dispatch"
	"github.com/dispatcher-dev/dispatcher/internal/obs"
	"github.com/dispatcher-dev/dispatcher/internal/retry"
)

// Outbox is what delivery needs from the table.
type Outbox interface {
	Statuses(ctx context.Context, keys []dispatch.OutboxKey) (map[dispatch.OutboxKey]dispatch.OutboxItem, error)
	MarkDelivered(ctx context.Context, k dispatch.OutboxKey, leaseOwner string, now time.Time, keepFor time.Duration) error
	Claim(ctx context.Context, k dispatch.OutboxKey, owner string, now, until time.Time) error
	Release(ctx context.Context, k dispatch.OutboxKey, owner, lastError string) error
	MarkFailed(ctx context.Context, k dispatch.OutboxKey, owner, lastError string) error
	// Unsettled returns up to limit keys of the aggregate's PENDING or
	// SENDING items that sort before below, in order, read consistently.
	Unsettled(ctx context.Context, below dispatch.OutboxKey, limit int) ([]dispatch.OutboxKey, error)
}

// Queue sends SQS messages; errors are classified *dispatch.Error.
type Queue interface {
	SendBatch(ctx context.Context, queueURL string, msgs []dispatch.QueueMessage) []error
	Send(ctx context.Context, queueURL string, m dispatch.QueueMessage) error
}

// Mailer sends emails; errors are classified *dispatch.Error.
type Mailer interface {
	Send(ctx context.Context, e dispatch.OutgoingEmail) (string, error)
}

// Config tunes delivery. Zero values take the defaults.
type Config struct {
	EventsQueueURL   string
	DLQURL           string
	Sender           string           // SENDER_ADDRESS: the From of a template Senders gives no sender
	Senders          dispatch.Senders // each template's sender (the template folder's dispatcher.yaml)
	ConfigurationSet string
	Source           string        // CloudEvents source; default "dispatcher"
	Workers          int           // concurrent calls (sends, claims, marks); default 16
	MaxSendAttempts  int           // per item per invocation; default 4
	MaxMarkAttempts  int           // per DELIVERED mark per invocation, on transient errors; default 8
	BackoffBase      time.Duration // default 50ms
	BackoffCap       time.Duration // default 2s
	DeadlineMargin   time.Duration // stop this long before the deadline; default 3s
	KeepDelivered    time.Duration // TTL of a delivered item; default 7 days
	Lease            time.Duration // email lease; default 2 minutes
	EmailRate        float64       // emails per second for this instance; 0 = unlimited
	// MaxAdopted is how many earlier undelivered items of one aggregate a
	// Deliver call takes on before the items it was given; with more, those
	// wait. Default 100.
	MaxAdopted int
}

func (c *Config) defaults() {
	if c.Source == "" {
		c.Source = "dispatcher"
	}
	if c.Workers <= 0 {
		c.Workers = 16
	}
	if c.MaxSendAttempts <= 0 {
		c.MaxSendAttempts = 4
	}
	if c.MaxMarkAttempts <= 0 {
		c.MaxMarkAttempts = 8
	}
	if c.BackoffBase <= 0 {
		c.BackoffBase = 50 * time.Millisecond
	}
	if c.BackoffCap <= 0 {
		c.BackoffCap = 2 * time.Second
	}
	if c.DeadlineMargin <= 0 {
		c.DeadlineMargin = 3 * time.Second
	}
	if c.KeepDelivered <= 0 {
		c.KeepDelivered = 7 * 24 * time.Hour
	}
	if c.Lease <= 0 {
		c.Lease = 2 * time.Minute
	}
	if c.MaxAdopted <= 0 {
		c.MaxAdopted = 100
	}
}

// leaseMargin is how long before its lease lapses an email's SES call is
// cut off: time left to mark it while the lease still keeps others away.
func (c *Config) leaseMargin() time.Duration {
	return min(c.Lease/5, 10*time.Second)
}

// Outcome is what happened to one item.
type Outcome int

// The outcomes.
const (
	NotAttempted  Outcome = iota // a retry will deliver it (aggregate stopped, deadline, batch stopped)
	Delivered                    // sent and marked DELIVERED now
	AlreadyDone                  // found DELIVERED (or gone): nothing sent
	AlreadyFailed                // found FAILED: parked earlier, replay's business
	Parked                       // failed permanently now: marked FAILED, DLQ message sent
	Retry                        // failed transiently: attempts recorded; a retry will deliver it
)

var outcomeNames = [...]string{"not-attempted", "delivered", "already-done", "already-failed", "parked", "retry"}

func (o Outcome) String() string { return outcomeNames[o] }

// Done reports whether the item needs nothing more from a retry of the batch.
func (o Outcome) Done() bool {
	return o == Delivered || o == AlreadyDone || o == AlreadyFailed || o == Parked
}

// Result is the outcome of a Deliver call.
type Result struct {
	Outcomes    map[dispatch.OutboxKey]Outcome
	Reasons     map[dispatch.OutboxKey]string // error code of Parked and Retry items
	AccountWide bool                          // SES sending is paused or the account suspended
}

// Engine delivers outbox items.
type Engine struct {
	cfg     Config
	outbox  Outbox
	queue   Queue
	mailer  Mailer
	limiter *rate.Limiter
	log     *slog.Logger
	metrics *obs.Metrics
	now     func() time.Time
	owner   string // lease owner id of this instance
	// unordered turns the order check off: for the mutation test only,
	// which shows that the chaos run's order check catches its absence.
	unordered bool
}

// New returns an Engine.
func New(cfg Config, outbox Outbox, queue Queue, mailer Mailer, log *slog.Logger, metrics *obs.Metrics) *Engine {
	cfg.defaults()
	lim := rate.NewLimiter(rate.Inf, 1)
	if cfg.EmailRate > 0 {
		lim = rate.NewLimiter(rate.Limit(cfg.EmailRate), max(1, int(cfg.EmailRate)))
	}
	var b [8]byte
	_, _ = rand.Read(b[:])
	return &Engine{cfg: cfg, outbox: outbox, queue: queue, mailer: mailer, limiter: lim, log: log, metrics: metrics, now: time.Now, owner: "relay-" + hex.EncodeToString(b[:])}
}

// EmailRate is the instance's email rate in use, emails per second; 0 is
// unlimited.
func (e *Engine) EmailRate() float64 {
	if l := e.limiter.Limit(); l != rate.Inf {
		return float64(l)
	}
	return 0
}

// SetEmailRate changes the instance's email rate (emails per second; 0 or
// less is unlimited), which New took from Config.EmailRate. Sends waiting
// for the rate see the new one.
func (e *Engine) SetEmailRate(r float64) {
	if r <= 0 {
		e.limiter.SetLimit(rate.Inf)
		e.limiter.SetBurst(1)
		return
	}
	e.limiter.SetLimit(rate.Limit(r))
	e.limiter.SetBurst(max(1, int(r)))
}

// lane is one aggregate's items in version order and how far it got.
type lane struct {
	items   []dispatch.OutboxItem
	next    int
	stopped bool
	// markFailed is set by a mark that runs behind the lane's sends: the
	// lane sends nothing more in this invocation.
	markFailed atomic.Bool
}

// run is the state of one Deliver call.
type run struct {
	e        *Engine
	mu       sync.Mutex
	res      Result
	stop     bool // account-wide: attempt nothing more
	deadline time.Time
	lags     []float64
	marks    chan struct{}  // bounds concurrent marks
	marking  sync.WaitGroup // marks in flight; Deliver waits for them
}

func (r *run) set(k dispatch.OutboxKey, o Outcome, reason string) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.res.Outcomes[k] = o
	if reason != "" {
		r.res.Reasons[k] = reason
	}
}

// Deliver delivers items. Items of one aggregate go in version order; after
// an item of an aggregate fails transiently, none of its later items is
// attempted. Distinct aggregates progress together, their events batched
// into SendMessageBatch calls.
func (e *Engine) Deliver(ctx context.Context, items []dispatch.OutboxItem) Result {
	r := &run{e: e, res: Result{Outcomes: map[dispatch.OutboxKey]Outcome{}, Reasons: map[dispatch.OutboxKey]string{}}, marks: make(chan struct{}, e.cfg.Workers)}
	if dl, ok := ctx.Deadline(); ok {
		r.deadline = dl.Add(-e.cfg.DeadlineMargin)
	}
	if len(items) == 0 {
		return r.res
	}
	keys := make([]dispatch.OutboxKey, len(items))
	for i, it := range items {
		keys[i] = it.Key()
		r.res.Outcomes[it.Key()] = NotAttempted
	}
	current, err := e.outbox.Statuses(ctx, keys)
	if err != nil {
		e.log.ErrorContext(ctx, "read outbox statuses", slog.String("error", err.Error()), slog.Int("items", len(items)))
		for _, k := range keys {
			r.res.Reasons[k] = "status-read-failed"
		}
		e.emit(r)
		return r.res
	}
	lanes := map[string]*lane{}
	var order []string
	for _, it := range items {
		cur, ok := current[it.Key()]
		switch {
		case !ok:
			r.res.Outcomes[it.Key()] = AlreadyDone // expired by TTL after delivery, or never written
			continue
		case cur.Status == dispatch.Delivered:
			r.res.Outcomes[it.Key()] = AlreadyDone
			continue
		case cur.Status == dispatch.Failed:
			r.res.Outcomes[it.Key()] = AlreadyFailed
			continue
		}
		// What is sent is the table's copy, so that copy is what is checked:
		// an envelope the relay cannot trust is parked, never sent, under
		// the contract's rule it breaks.
		if err := cur.Validate(); err != nil {
			r.park(ctx, cur, "", ParkReason(err, ReasonInvalidItem), err.Error())
			continue
		}
		l := lanes[it.AggregateID]
		if l == nil {
			l = &lane{}
			lanes[it.AggregateID] = l
			order = append(order, it.AggregateID)
		}
		l.items = append(l.items, cur)
	}
	for _, l := range lanes {
		sortItems(l.items)
	}
	if !e.unordered {
		r.order(ctx, lanes, order)
	}
	for {
		var heads []*lane
		for _, id := range order {
			if l := lanes[id]; !l.stopped && !l.markFailed.Load() && l.next < len(l.items) {
				heads = append(heads, l)
			}
		}
		if len(heads) == 0 || r.stop || r.pastDeadline() {
			break
		}
		r.round(ctx, heads)
	}
	r.marking.Wait()
	r.explain(ctx, lanes, order)
	e.emit(r)
	return r.res
}

func sortItems(items []dispatch.OutboxItem) {
	sort.SliceStable(items, func(i, j int) bool {
		a, b := items[i], items[j]
		return a.Version < b.Version || (a.Version == b.Version && a.Seq < b.Seq)
	})
}

// order keeps the order guarantee whatever the stream did: no item is sent
// while an item of an earlier version of its aggregate is neither DELIVERED
// nor FAILED. The stream may have split a transaction's records, a relay may
// have died with an email under its lease, the mapping may have given up on
// a batch, or another shard may hold the earlier records
// (ParallelizationFactor > 1): so each lane reads, consistently, its
// aggregate's items that are still PENDING or SENDING and sort before its
// last item, and takes on those it was not given, in order, before its own.
// An earlier item leased elsewhere, or failing, then stops the lane like
// any head; with more than MaxAdopted of them, the lane waits.
func (r *run) order(ctx context.Context, lanes map[string]*lane, order []string) {
	e := r.e
	type check struct {
		l       *lane
		missing []dispatch.OutboxKey
		err     error
	}
	var checks []*check
	for _, id := range order {
		l := lanes[id]
		// Version 1 has nothing before it.
		if l.items[len(l.items)-1].Version > 1 {
			checks = append(checks, &check{l: l})
		}
	}
	if len(checks) == 0 {
		return
	}
	sem := make(chan struct{}, e.cfg.Workers)
	var wg sync.WaitGroup
	for _, c := range checks {
		wg.Add(1)
		sem <- struct{}{}
		go func() {
			defer wg.Done()
			defer func() { <-sem }()
			last := c.l.items[len(c.l.items)-1]
			own := map[dispatch.OutboxKey]bool{}
			for _, it := range c.l.items {
				own[it.Key()] = true
			}
			keys, err := e.outbox.Unsettled(ctx, last.Key(), e.cfg.MaxAdopted+len(c.l.items)+1)
			if err != nil {
				c.err = err
				return
			}
			for _, k := range keys {
				if !own[k] && k.Version < last.Version {
					c.missing = append(c.missing, k)
				}
			}
		}()
	}
	wg.Wait()
	var fetch []dispatch.OutboxKey
	for _, c := range checks {
		switch {
		case c.err != nil:
			r.hold(c.l, "order-check-failed")
			e.log.WarnContext(ctx, "could not read the earlier items of an aggregate; its items wait", slog.String("aggregateId", c.l.items[0].AggregateID), slog.String("error", c.err.Error()))
		case len(c.missing) > e.cfg.MaxAdopted:
			r.hold(c.l, waitingFor(c.missing[0]))
		default:
			fetch = append(fetch, c.missing...)
		}
	}
	if len(fetch) == 0 {
		return
	}
	earlier, err := e.outbox.Statuses(ctx, fetch)
	for _, c := range checks {
		if c.err != nil || len(c.missing) == 0 || len(c.missing) > e.cfg.MaxAdopted {
			continue
		}
		if err != nil {
			r.hold(c.l, "order-check-failed")
			continue
		}
		for _, k := range c.missing {
			it, ok := earlier[k]
			if !ok || it.Status == dispatch.Delivered || it.Status == dispatch.Failed {
				continue // settled since the query
			}
			if verr := it.Validate(); verr != nil {
				// Parked when it comes by itself (its own record, the
				// sweeper): the lane waits until it is FAILED.
				r.hold(c.l, waitingFor(k))
				break
			}
			r.mu.Lock()
			r.res.Outcomes[k] = NotAttempted
			r.mu.Unlock()
			c.l.items = append(c.l.items, it)
		}
		if !c.l.stopped {
			sortItems(c.l.items)
		}
	}
}

// hold stops a lane before its first item: none of it is attempted now.
func (r *run) hold(l *lane, reason string) {
	l.stopped = true
	for _, it := range l.items {
		r.set(it.Key(), NotAttempted, reason)
	}
}

func waitingFor(k dispatch.OutboxKey) string {
	return fmt.Sprintf("waiting-for-version-%d", k.Version)
}

// explain gives each item left undelivered the reason it waits, when it has
// none of its own (the items behind a lane's stopped head wait for that
// head), and logs each one at WARN: what the batch's retry will find.
func (r *run) explain(ctx context.Context, lanes map[string]*lane, order []string) {
	r.mu.Lock()
	defer r.mu.Unlock()
	for _, id := range order {
		l := lanes[id]
		var blocker *dispatch.OutboxItem
		for i := range l.items {
			it := l.items[i]
			o := r.res.Outcomes[it.Key()]
			if o.Done() {
				continue
			}
			reason := r.res.Reasons[it.Key()]
			if reason == "" {
				switch {
				case blocker != nil && blocker.Version < it.Version:
					reason = waitingFor(blocker.Key())
				case r.stop:
					reason = "batch-stopped"
				case r.pastDeadline():
					reason = "deadline"
				default:
					reason = "not-attempted"
				}
				r.res.Reasons[it.Key()] = reason
			}
			if blocker == nil {
				blocker = &l.items[i]
			}
			r.e.log.WarnContext(ctx, "outbox item left undelivered", itemAttrs(it, slog.String("outcome", o.String()), slog.String("reason", reason))...)
		}
	}
}

func (r *run) pastDeadline() bool { return !r.deadline.IsZero() && r.e.now().After(r.deadline) }

// round delivers the head item of every lane: events in SendMessageBatch
// calls, emails one by one, all through the worker pool.
func (r *run) round(ctx context.Context, heads []*lane) {
	var events, emails []*lane
	for _, l := range heads {
		if l.items[l.next].Target == dispatch.TargetEvents {
			events = append(events, l)
		} else {
			emails = append(emails, l)
		}
	}
	sem := make(chan struct{}, r.e.cfg.Workers)
	var wg sync.WaitGroup
	spawn := func(f func()) {
		wg.Add(1)
		sem <- struct{}{}
		go func() {
			defer wg.Done()
			defer func() { <-sem }()
			f()
		}()
	}
	for start := 0; start < len(events); start += 10 {
		group := events[start:min(start+10, len(events))]
		spawn(func() { r.sendEvents(ctx, group) })
	}
	for _, l := range emails {
		spawn(func() { r.sendEmail(ctx, l) })
	}
	wg.Wait()
}

// advance moves a lane past its head after the head reached a final outcome;
// a transient failure (or anything unattempted) stops the lane.
func (r *run) advance(l *lane, o Outcome) {
	if o == Delivered || o == Parked || o == AlreadyDone || o == AlreadyFailed {
		l.next++
		return
	}
	l.stopped = true
}

// sendEvents sends the head events of up to ten lanes in one batch, retrying
// only the failed entries, then marks the sent ones.
func (r *run) sendEvents(ctx context.Context, lanes []*lane) {
	e := r.e
	msgs := make([]dispatch.QueueMessage, len(lanes))
	pending := make([]int, 0, len(lanes))
	for i, l := range lanes {
		it := l.items[l.next]
		m, err := e.message(it)
		if err != nil {
			r.park(ctx, it, "", "invalid-payload", err.Error())
			r.advance(l, r.outcome(it.Key()))
			continue
		}
		msgs[i] = m
		pending = append(pending, i)
	}
	lastErr := map[int]error{}
	for attempt := 1; len(pending) > 0; attempt++ {
		batch := make([]dispatch.QueueMessage, len(pending))
		for j, i := range pending {
			batch[j] = msgs[i]
		}
		errs := e.queue.SendBatch(ctx, e.cfg.EventsQueueURL, batch)
		var again []int
		for j, i := range pending {
			var err error
			if j < len(errs) {
				err = errs[j]
			}
			it := lanes[i].items[lanes[i].next]
			switch {
			case err == nil:
				// Sent: the queue keeps the group's order from here, so the
				// aggregate's next event may go in the next round while
				// this one is marked.
				l := lanes[i]
				l.next++
				r.marking.Add(1)
				go func() {
					defer r.marking.Done()
					r.marks <- struct{}{}
					defer func() { <-r.marks }()
					r.markEvent(ctx, l, it)
				}()
			case dispatch.KindOf(err) == dispatch.Permanent:
				r.park(ctx, it, "", code(err), err.Error())
				r.advance(lanes[i], r.outcome(it.Key()))
			case dispatch.KindOf(err) == dispatch.AccountWide:
				// The queue itself is unusable (missing, KMS key disabled,
				// access denied): every message would fail alike. Stop the
				// batch; parking each would bury a deploy mistake in the DLQ.
				r.stopAll(ctx, it, err)
				r.set(it.Key(), Retry, code(err))
				r.advance(lanes[i], Retry)
			default:
				lastErr[i] = err
				again = append(again, i)
			}
		}
		pending = again
		if len(pending) == 0 || r.isStopped() {
			for _, i := range pending {
				r.advance(lanes[i], NotAttempted)
			}
			break
		}
		if attempt >= e.cfg.MaxSendAttempts || !r.sleep(ctx, attempt) {
			for _, i := range pending {
				it := lanes[i].items[lanes[i].next]
				r.retryLater(ctx, it, "", lastErr[i])
				r.advance(lanes[i], Retry)
			}
			return
		}
		e.metrics.Emit(map[string]string{"Service": "relay", "Target": "events"}, obs.Metric{Name: "SendRetried", Value: float64(len(pending)), Unit: obs.Count})
	}
}

// markEvent marks a sent event delivered. Marks set the pace on DynamoDB,
// so they run concurrently, bounded by their own pool, behind the sends:
// the lane has already moved on.
func (r *run) markEvent(ctx context.Context, l *lane, it dispatch.OutboxItem) {
	err := r.markDelivered(ctx, it, "")
	switch {
	case err == nil:
		r.delivered(it)
	case errors.Is(err, dispatch.ErrAlreadyDone):
		// Another worker marked it (or failed it) first; it was sent either way.
		r.set(it.Key(), AlreadyDone, "")
	default:
		// Sent but not marked: the batch's retry starts at this item and
		// sends it again, with the same dedup id (FIFO drops it); later
		// events already sent and marked are skipped then. Send nothing
		// more of this aggregate now.
		r.e.log.WarnContext(ctx, "delivered but not marked", itemAttrs(it, slog.String("error", err.Error()))...)
		r.set(it.Key(), Retry, "mark-failed")
		l.markFailed.Store(true)
	}
}

// sendEmail claims the email's lease, sends it, and marks it.
func (r *run) sendEmail(ctx context.Context, l *lane) {
	it := l.items[l.next]
	var p dispatch.EmailPayload
	if err := json.Unmarshal(it.Payload, &p); err != nil {
		r.park(ctx, it, "", "invalid-payload", err.Error())
		r.advance(l, r.outcome(it.Key()))
		return
	}
	leaseEnd, ok := r.claimEmail(ctx, l, it)
	if !ok {
		return
	}
	if !r.sendLeased(ctx, l, it, r.e.email(it, p), leaseEnd) {
		return
	}
	r.markEmail(ctx, l, it)
}

// claimEmail waits for the send rate, then takes the email's lease. It
// reports false, with the lane settled, when the email is not to be sent now.
func (r *run) claimEmail(ctx context.Context, l *lane, it dispatch.OutboxItem) (leaseEnd time.Time, ok bool) {
	e := r.e
	// Wait for the send rate before claiming, so that the lease covers the
	// send and the mark, not the queue for the rate: a batch of emails
	// behind a low rate would otherwise see its last leases lapse before
	// they are sent, and another relay or the replay send them too.
	if err := e.limiter.Wait(ctx); err != nil {
		// The deadline comes before the rate allows a send. Nothing is
		// claimed, so nothing to release: the batch's retry sends it.
		r.set(it.Key(), NotAttempted, "rate-wait")
		r.advance(l, NotAttempted)
		return time.Time{}, false
	}
	now := e.now()
	if err := e.outbox.Claim(ctx, it.Key(), e.owner, now, now.Add(e.cfg.Lease)); err != nil {
		if errors.Is(err, dispatch.ErrAlreadyDone) {
			// Another attempt holds the lease or finished: never send twice.
			r.set(it.Key(), NotAttempted, "leased-elsewhere")
			l.stopped = true
			return time.Time{}, false
		}
		r.retryLater(ctx, it, "", err)
		r.advance(l, Retry)
		return time.Time{}, false
	}
	return now.Add(e.cfg.Lease), true
}

// email is what SES is given for an email item: the rendered email, its
// template's sender, and the ids a recipient drops duplicates and checks
// order by.
func (e *Engine) email(it dispatch.OutboxItem, p dispatch.EmailPayload) dispatch.OutgoingEmail {
	from := e.cfg.Senders.For(p.Template, e.cfg.Sender)
	return dispatch.OutgoingEmail{
		From: from.From, ReplyTo: from.ReplyTo, ConfigurationSet: e.cfg.ConfigurationSet, To: p.To,
		Subject: p.Subject, Text: p.Text, HTML: p.HTML,
		Headers: map[string]string{"X-Dispatcher-Event-Id": it.EventID, "X-Dispatcher-Aggregate-Version": fmt.Sprint(it.Version)},
		Tags: map[string]string{
			dispatch.TagEventID: it.EventID, dispatch.TagAggregateID: it.AggregateID,
			dispatch.TagVersion: strconv.FormatInt(it.Version, 10), dispatch.TagTemplate: p.Template,
		},
	}
}

// sendLeased sends a claimed email, retrying transient failures while the
// lease lasts. It reports whether SES took it; otherwise the lane is settled
// (parked, released for a retry, or stopped with the batch).
func (r *run) sendLeased(ctx context.Context, l *lane, it dispatch.OutboxItem, email dispatch.OutgoingEmail, leaseEnd time.Time) bool {
	e := r.e
	// Every SES call ends before the lease lapses, with time left to mark:
	// a call that outlived it could send after another relay (or the
	// replay, whose timeout is longer than the lease) took the lease over.
	leaseCtx, cancel := context.WithDeadline(ctx, leaseEnd.Add(-e.cfg.leaseMargin()))
	defer cancel()
	var lastErr error
	for attempt := 1; ; attempt++ {
		if r.isStopped() {
			r.release(ctx, it, lastErr, "batch-stopped")
			r.advance(l, NotAttempted)
			return false
		}
		if attempt > 1 {
			if err := e.limiter.Wait(leaseCtx); err != nil {
				r.retryLater(ctx, it, e.owner, lastErr)
				r.advance(l, Retry)
				return false
			}
		}
		_, err := e.mailer.Send(leaseCtx, email)
		if err == nil {
			return true
		}
		if leaseCtx.Err() != nil && ctx.Err() == nil {
			// Cut off by the lease bound: SES may have sent it; it is
			// released, to be sent again (same event id) by the retry.
			err = dispatch.E("delivery.sendEmail", dispatch.Transient, "lease-bound", err)
		}
		lastErr = err
		switch dispatch.KindOf(err) {
		case dispatch.Permanent:
			r.park(ctx, it, e.owner, code(err), err.Error())
			r.advance(l, r.outcome(it.Key()))
			return false
		case dispatch.AccountWide:
			r.stopAll(ctx, it, err)
			r.release(ctx, it, err, code(err))
			r.advance(l, NotAttempted)
			return false
		}
		if attempt >= e.cfg.MaxSendAttempts || leaseCtx.Err() != nil || !r.sleep(leaseCtx, attempt) {
			r.retryLater(ctx, it, e.owner, err)
			r.advance(l, Retry)
			return false
		}
		e.metrics.Emit(map[string]string{"Service": "relay", "Target": "email"}, obs.Metric{Name: "SendRetried", Value: 1, Unit: obs.Count})
	}
}

// markEmail marks a sent email delivered, as its lease holder.
func (r *run) markEmail(ctx context.Context, l *lane, it dispatch.OutboxItem) {
	e := r.e
	if err := r.markDelivered(ctx, it, e.owner); err != nil {
		// Sent; the lease keeps others from sending it again until it
		// lapses, and the mark is retried with the batch: if the lease
		// lapses first, the email goes twice (docs/guarantees.md).
		e.log.WarnContext(ctx, "email sent but not marked", itemAttrs(it, slog.String("error", err.Error()))...)
		r.set(it.Key(), Retry, "mark-failed")
		r.advance(l, Retry)
		return
	}
	r.delivered(it)
	r.advance(l, Delivered)
}

// markDelivered marks a sent item DELIVERED, retrying transient failures
// (throttling, 5xx, timeouts) with capped backoff and full jitter while the
// deadline allows: a sent item left unmarked is sent again by the batch's
// retry, and SES cannot drop an email sent twice. An email's mark is tried
// even after its lease lapsed: the mark's condition is the lease owner, not
// the lease's end, so it fails only if another attempt took the email over,
// and until then the mark is what keeps it from going twice.
func (r *run) markDelivered(ctx context.Context, it dispatch.OutboxItem, owner string) error {
	e := r.e
	for attempt := 1; ; attempt++ {
		err := e.outbox.MarkDelivered(ctx, it.Key(), owner, e.now(), e.cfg.KeepDelivered)
		if err == nil || dispatch.KindOf(err) != dispatch.Transient || attempt >= e.cfg.MaxMarkAttempts || !r.sleep(ctx, attempt) {
			return err
		}
		e.metrics.Emit(map[string]string{"Service": "relay", "Target": string(it.Target)}, obs.Metric{Name: "MarkRetried", Value: 1, Unit: obs.Count})
	}
}

// stopAll stops the whole batch after an account- or queue-wide error:
// nothing more is attempted and no retry is burned on what cannot succeed.
func (r *run) stopAll(ctx context.Context, it dispatch.OutboxItem, err error) {
	r.mu.Lock()
	first := !r.stop
	r.stop, r.res.AccountWide = true, true
	r.mu.Unlock()
	if first {
		r.e.log.ErrorContext(ctx, "delivery stopped: the target refuses everything (account or queue-wide); stopping the batch", itemAttrs(it, slog.String("reason", code(err)))...)
		// One line per dimension set: by reason for people, by service for
		// the alarm (an alarm names one metric, not a search).
		r.e.metrics.Emit(map[string]string{"Service": "relay", "Reason": code(err)}, obs.Metric{Name: "AccountWideStop", Value: 1, Unit: obs.Count})
		r.e.metrics.Emit(map[string]string{"Service": "relay"}, obs.Metric{Name: "AccountWideStop", Value: 1, Unit: obs.Count})
	}
}

func (r *run) isStopped() bool {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.stop
}

func (r *run) outcome(k dispatch.OutboxKey) Outcome {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.res.Outcomes[k]
}

func (r *run) delivered(it dispatch.OutboxItem) {
	r.set(it.Key(), Delivered, "")
	r.mu.Lock()
	r.lags = append(r.lags, float64(r.e.now().Sub(it.CreatedAt).Milliseconds()))
	r.mu.Unlock()
}

// park sends the item's DLQ message, then marks it FAILED; in that order,
// so that a FAILED item always has its DLQ message.
func (r *run) park(ctx context.Context, it dispatch.OutboxItem, owner, reason, msg string) {
	e := r.e
	p := ParkedMessage{
		Kind: ParkedKind, AggregateID: it.AggregateID, Version: it.Version, Seq: it.Seq, History: it.History,
		EventID: it.EventID, EventType: it.EventType, Target: string(it.Target),
		Reason: reason, Error: msg, Attempts: it.Attempts + 1, TraceParent: it.Traceparent, ParkedAt: e.now().UTC(),
	}
	if err := e.parkMessage(ctx, p); err != nil {
		e.log.ErrorContext(ctx, "park in DLQ failed", itemAttrs(it, slog.String("reason", reason), slog.String("error", err.Error()))...)
		r.release(ctx, it, err, "park-failed")
		r.set(it.Key(), Retry, "park-failed")
		return
	}
	if err := e.outbox.MarkFailed(ctx, it.Key(), owner, reason+": "+msg); err != nil && !errors.Is(err, dispatch.ErrAlreadyDone) {
		// Parked but not marked: in the table the item is still unsettled,
		// and its later versions must wait for it as any other relay or the
		// sweeper would make them (letting them pass here is one way to the
		// email make chaos once saw after two later versions). It is
		// released and retried with the batch; its DLQ message stays, and
		// the replay skips it once it is delivered, or finds a second one
		// if it is parked again.
		e.log.WarnContext(ctx, "parked but not marked FAILED; retried with the batch", itemAttrs(it, slog.String("error", err.Error()))...)
		r.release(ctx, it, err, "")
		r.set(it.Key(), Retry, "mark-failed")
		return
	}
	e.log.ErrorContext(ctx, "outbox item failed permanently; parked in the DLQ", itemAttrs(it, slog.String("reason", reason), slog.Int("attempts", p.Attempts))...)
	r.set(it.Key(), Parked, reason)
}

// Park parks what the relay could not even decode (an undecodable stream
// record): its DLQ message, and the Failed metric by reason that the
// item-failed alarm watches.
func (e *Engine) Park(ctx context.Context, p ParkedMessage) error {
	if err := e.parkMessage(ctx, p); err != nil {
		return err
	}
	e.metrics.Emit(map[string]string{"Service": "relay", "Reason": p.Reason}, obs.Metric{Name: "Failed", Value: 1, Unit: obs.Count})
	return nil
}

// parkMessage writes a DLQ message for an item.
func (e *Engine) parkMessage(ctx context.Context, p ParkedMessage) error {
	b, err := json.Marshal(p)
	if err != nil {
		return err
	}
	return e.queue.Send(ctx, e.cfg.DLQURL, dispatch.QueueMessage{
		Body:       string(b),
		Attributes: map[string]string{"kind": ParkedKind, "reason": p.Reason},
	})
}

// retryLater records a transient failure (attempts, last error) and leaves
// the item for the batch's retry.
func (r *run) retryLater(ctx context.Context, it dispatch.OutboxItem, owner string, err error) {
	r.release(ctx, it, err, "")
	r.set(it.Key(), Retry, code(err)) // logged with the other items left undelivered
}

func (r *run) release(ctx context.Context, it dispatch.OutboxItem, cause error, reason string) {
	owner := ""
	if it.Target == dispatch.TargetEmail {
		owner = r.e.owner
	}
	if err := r.e.outbox.Release(ctx, it.Key(), owner, errString(cause)); err != nil && !errors.Is(err, dispatch.ErrAlreadyDone) {
		r.e.log.WarnContext(ctx, "could not record the failed attempt", itemAttrs(it, slog.String("error", err.Error()))...)
	}
	if reason != "" {
		r.set(it.Key(), NotAttempted, reason)
	}
}

// sleep waits a capped exponential backoff with full jitter, unless that
// would pass the deadline; it reports whether another attempt may be made.
func (r *run) sleep(ctx context.Context, attempt int) bool {
	wait := retry.Backoff(attempt, r.e.cfg.BackoffBase, r.e.cfg.BackoffCap)
	if !r.deadline.IsZero() && r.e.now().Add(wait).After(r.deadline) {
		return false
	}
	if dl, ok := ctx.Deadline(); ok && r.e.now().Add(wait).After(dl) {
		return false
	}
	return retry.Sleep(ctx, wait) == nil
}

func (e *Engine) message(it dispatch.OutboxItem) (dispatch.QueueMessage, error) {
	ce, err := NewCloudEvent(it, e.cfg.Source)
	if err != nil {
		return dispatch.QueueMessage{}, err
	}
	b, err := json.Marshal(ce)
	if err != nil {
		return dispatch.QueueMessage{}, err
	}
	m := dispatch.QueueMessage{Body: string(b), Attributes: map[string]string{"eventId": it.EventID, "eventType": it.EventType, "aggregateVersion": fmt.Sprint(it.Version), "content-type": "application/cloudevents+json"}}
	if dispatch.IsFIFOQueue(e.cfg.EventsQueueURL) {
		m.GroupID, m.DedupID = it.AggregateID, it.EventID
	}
	return m, nil
}

func (e *Engine) emit(r *run) {
	counts := map[Outcome]int{}
	reasons := map[string]int{}
	for k, o := range r.res.Outcomes {
		counts[o]++
		if o == Parked {
			reasons[r.res.Reasons[k]]++
		}
	}
	dims := map[string]string{"Service": "relay"}
	ms := []obs.Metric{
		{Name: "Delivered", Value: float64(counts[Delivered]), Unit: obs.Count},
		{Name: "Retried", Value: float64(counts[Retry] + counts[NotAttempted]), Unit: obs.Count},
		{Name: "SkippedAlreadyDelivered", Value: float64(counts[AlreadyDone]), Unit: obs.Count},
	}
	if len(r.lags) > 0 {
		ms = append(ms, obs.Metric{Name: "DeliveryLag", Values: r.lags, Unit: obs.Milliseconds})
	}
	e.metrics.Emit(dims, ms...)
	for reason, n := range reasons {
		e.metrics.Emit(map[string]string{"Service": "relay", "Reason": reason}, obs.Metric{Name: "Failed", Value: float64(n), Unit: obs.Count})
	}
}

func itemAttrs(it dispatch.OutboxItem, extra ...any) []any {
	return append([]any{
		slog.String("aggregateId", it.AggregateID), slog.Int64("version", it.Version), slog.Int("seq", it.Seq),
		slog.String("eventId", it.EventID), slog.String("eventType", it.EventType), slog.String("target", string(it.Target)),
		slog.Int("attempts", it.Attempts),
	}, extra...)
}

// code returns the log-safe reason of a classified error.
func code(err error) string {
	var de *dispatch.Error
	if errors.As(err, &de) && de.Msg != "" {
		return de.Msg
	}
	if err == nil {
		return ""
	}
	return dispatch.KindOf(err).String()
}

func errString(err error) string {
	if err == nil {
		return ""
	}
	return code(err)
}
