// Package replay brings back what the relay could not deliver: it reads the
// DLQ (the relay's parked items and the event source mapping's on-failure
// records), and sweeps the sparse index for items left undelivered longer
// than a threshold, redelivering through the same delivery engine. It sends
// nothing twice: every item is reloaded with a consistent read first, and a
// DLQ message is deleted only once its items are delivered.
package replay

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"github.com/aws/smithy-go"
	"log/slog"
	"slices"
	"strings"
	"time"

	"github.com/dispatcher-dev/dispatcher/internal/delivery"
	"github.com/dispatcher-dev/dispatcher/internal/dispatch"
	"github.com/dispatcher-dev/dispatcher/internal/obs"
)

// Store is what replay needs from the table.
type Store interface {
	Statuses(ctx context.Context, keys []dispatch.OutboxKey) (map[dispatch.OutboxKey]dispatch.OutboxItem, error)
	Requeue(ctx context.Context, k dispatch.OutboxKey) error
	Undelivered(ctx context.Context, olderThan time.Time, limit int) ([]dispatch.OutboxKey, error)
	FailedItems(ctx context.Context, olderThan time.Time, limit int) ([]dispatch.OutboxKey, error)
	OldestUndelivered(ctx context.Context) (time.Time, bool, error)
	OldestFailed(ctx context.Context) (time.Time, bool, error)
}

// DLQ is the dead-letter queue.
type DLQ interface {
	Receive(ctx context.Context, max int, visibility time.Duration) ([]Message, error)
	Delete(ctx context.Context, receipt string) error
	Release(ctx context.Context, receipt string) error // visible again at once
}

// Message is one received DLQ message.
type Message struct {
	ID      string
	Body    string
	Receipt string
	SentAt  time.Time // when it entered the DLQ
}

// StreamReader re-reads a sequence range of the stream and returns the
// keys of the outbox items inserted in it (what the relay would have been
// given), decoded by the adapter. A range the stream no longer holds whole
// is an error that errors.Is ErrRangeTrimmed.
type StreamReader interface {
	Range(ctx context.Context, streamArn, shardID, start, end string) ([]dispatch.OutboxKey, error)
}

// ErrRangeTrimmed: the stream no longer holds the whole range (older than
// its 24-hour retention); the sweeper covers it.
var ErrRangeTrimmed = errors.New("the stream no longer holds the range")

// Deliverer is the delivery engine.
type Deliverer interface {
	Deliver(ctx context.Context, items []dispatch.OutboxItem) delivery.Result
}

// Request is the replay function's input.
type Request struct {
	Mode             string   `json:"mode,omitempty"`             // "dlq" (default), "sweep", "failed", or "all" (dlq + sweep)
	MaxMessages      int      `json:"maxMessages,omitempty"`      // DLQ messages to take; default 100
	DryRun           bool     `json:"dryRun,omitempty"`           // report, change nothing
	EventTypes       []string `json:"eventTypes,omitempty"`       // only these event types
	Targets          []string `json:"targets,omitempty"`          // only these targets: events, email
	MaxAttempts      int      `json:"maxAttempts,omitempty"`      // FAILED items with this many attempts stay FAILED; default 10
	OlderThanSeconds int      `json:"olderThanSeconds,omitempty"` // sweep threshold; default 900
	MaxItems         int      `json:"maxItems,omitempty"`         // sweep: items at most; default 1000
}

// Limits of a request.
const (
	DefaultMaxMessages = 100
	MaxMessagesLimit   = 10000
	DefaultOlderThan   = 15 * time.Minute
	DefaultSweepItems  = 1000
	// DefaultMaxAttempts caps how often a person's replay re-sends a FAILED
	// item by default: one that failed this often needs its cause fixed,
	// and a larger maxAttempts said explicitly.
	DefaultMaxAttempts = 10
	MaxAttemptsLimit   = 1000
	MaxItemsLimit      = 10000
)

// Report is what a replay did (or, with dryRun, would do).
type Report struct {
	Mode             string    `json:"mode"`
	DryRun           bool      `json:"dryRun"`
	Messages         int       `json:"messages"`         // DLQ messages received
	Replayed         int       `json:"replayed"`         // items delivered now
	SkippedDelivered int       `json:"skippedDelivered"` // items found already delivered
	FailedAgain      []Failure `json:"failedAgain"`      // items that failed again (parked anew, or left for retry)
	Left             int       `json:"left"`             // DLQ messages left in the queue
	LeftReasons      []Failure `json:"leftReasons,omitempty"`
	Swept            int       `json:"swept"`         // items delivered by the sweeper
	StreamRanges     int       `json:"streamRanges"`  // on-failure records re-read from the stream
	RangesExpired    int       `json:"rangesExpired"` // ... whose records the stream no longer held
	WouldReplay      int       `json:"wouldReplay"`   // dry run: items that would be redelivered
	Unrecognized     int       `json:"unrecognized"`  // DLQ messages of no known shape (left)
	OtherStreams     int       `json:"otherStreams"`  // on-failure records of another table's stream (left)
	FailedFound      int       `json:"failedFound"`   // mode failed: FAILED items found through the index
	// OldestUndeliveredSeconds is the age of the oldest item still undelivered
	// (PENDING, SENDING or FAILED) after a sweep.
	OldestUndeliveredSeconds float64 `json:"oldestUndeliveredSeconds,omitempty"`
	// OldestFailedSeconds is the age of the oldest FAILED item after a
	// sweep: it waits for a person, with or without its DLQ message.
	OldestFailedSeconds float64 `json:"oldestFailedSeconds,omitempty"`
}

// Failure names an item and why.
type Failure struct {
	EventID   string `json:"eventId,omitempty"`
	Aggregate string `json:"aggregateId,omitempty"`
	Reason    string `json:"reason"`
}

// Replayer runs replays.
type Replayer struct {
	table   string // the outbox table: on-failure records of other streams are not ours
	store   Store
	dlq     DLQ
	streams StreamReader
	engine  Deliverer
	log     *slog.Logger
	metrics *obs.Metrics
	now     func() time.Time
}

// New returns a Replayer for the outbox table named table.
func New(table string, store Store, dlq DLQ, streams StreamReader, engine Deliverer, log *slog.Logger, metrics *obs.Metrics) *Replayer {
	return &Replayer{table: table, store: store, dlq: dlq, streams: streams, engine: engine, log: log, metrics: metrics, now: time.Now}
}

// Invoke is the Lambda handler: a JSON Request, or a scheduled event (which
// sweeps, with the defaults: a schedule never re-sends a FAILED item).
func (r *Replayer) Invoke(ctx context.Context, raw json.RawMessage) (Report, error) {
	var probe struct {
		DetailType string `json:"detail-type"`
		Source     string `json:"source"`
	}
	_ = json.Unmarshal(raw, &probe)
	var req Request
	if probe.DetailType == "Scheduled Event" {
		req.Mode = "sweep"
	} else if len(raw) > 0 && string(raw) != "null" {
		if err := strictJSON(raw, &req); err != nil {
			return Report{}, &RequestError{Msg: "replay request: " + err.Error()}
		}
	}
	return r.Run(ctx, req)
}

func strictJSON(raw []byte, v any) error { return dispatch.DecodeStrict(raw, v) }

// RequestError is a replay request that cannot run as given: the caller's
// to fix. Lambda reports it with errorType "RequestError"; the local replay
// route answers it with 400.
type RequestError struct{ Msg string }

func (e *RequestError) Error() string { return e.Msg }

// Validate checks a request and fills its defaults; its errors are
// *RequestError.
func (req *Request) Validate() error {
	invalid := func(format string, a ...any) error {
		return &RequestError{Msg: fmt.Sprintf(format, a...)}
	}
	switch req.Mode {
	case "":
		req.Mode = "dlq"
	case "dlq", "sweep", "failed", "all":
	default:
		return invalid("mode %q: want dlq, sweep, failed or all", req.Mode)
	}
	if req.MaxMessages == 0 {
		req.MaxMessages = DefaultMaxMessages
	}
	if req.MaxMessages < 1 || req.MaxMessages > MaxMessagesLimit {
		return invalid("maxMessages %d: want 1 to %d", req.MaxMessages, MaxMessagesLimit)
	}
	if req.MaxAttempts < 0 || req.OlderThanSeconds < 0 || req.MaxItems < 0 {
		return invalid("maxAttempts, olderThanSeconds and maxItems must not be negative")
	}
	if req.MaxAttempts == 0 {
		req.MaxAttempts = DefaultMaxAttempts
	}
	if req.MaxAttempts > MaxAttemptsLimit {
		return invalid("maxAttempts %d: want 1 to %d", req.MaxAttempts, MaxAttemptsLimit)
	}
	if req.MaxItems == 0 {
		req.MaxItems = DefaultSweepItems
	}
	if req.MaxItems > MaxItemsLimit {
		return invalid("maxItems %d: want 1 to %d", req.MaxItems, MaxItemsLimit)
	}
	for _, t := range req.Targets {
		if t != string(dispatch.TargetEvents) && t != string(dispatch.TargetEmail) {
			return invalid("target %q: want events or email", t)
		}
	}
	return nil
}

// Run replays the DLQ and/or sweeps.
func (r *Replayer) Run(ctx context.Context, req Request) (Report, error) {
	if err := req.Validate(); err != nil {
		return Report{}, err
	}
	rep := Report{Mode: req.Mode, DryRun: req.DryRun, FailedAgain: []Failure{}}
	if req.Mode == "dlq" || req.Mode == "all" {
		if err := r.drainDLQ(ctx, req, &rep); err != nil {
			return rep, err
		}
	}
	if req.Mode == "failed" {
		if err := r.replayFailed(ctx, req, &rep); err != nil {
			return rep, err
		}
	}
	if req.Mode == "sweep" || req.Mode == "all" {
		if err := r.sweep(ctx, req, &rep); err != nil {
			return rep, err
		}
		// The age of the oldest undelivered item is what the undelivered-age
		// alarm watches; the scheduled sweep measures it after its pass, and
		// the age of the oldest FAILED item, which waits for a person even
		// after its DLQ message expired.
		if !req.DryRun {
			age, failedAge := 0.0, 0.0
			if oldest, ok, err := r.store.OldestUndelivered(ctx); err == nil && ok {
				age = r.now().Sub(oldest).Seconds()
				rep.OldestUndeliveredSeconds = age
			}
			if oldest, ok, err := r.store.OldestFailed(ctx); err == nil && ok {
				failedAge = r.now().Sub(oldest).Seconds()
				rep.OldestFailedSeconds = failedAge
			}
			r.metrics.Emit(map[string]string{"Service": "replay"},
				obs.Metric{Name: "OldestUndeliveredAge", Value: age, Unit: obs.Seconds},
				obs.Metric{Name: "OldestFailedAge", Value: failedAge, Unit: obs.Seconds})
		}
	}
	dims := map[string]string{"Service": "replay"}
	r.metrics.Emit(dims,
		obs.Metric{Name: "Replayed", Value: float64(rep.Replayed), Unit: obs.Count},
		obs.Metric{Name: "FailedAgain", Value: float64(len(rep.FailedAgain)), Unit: obs.Count},
		obs.Metric{Name: "LeftInDLQ", Value: float64(rep.Left), Unit: obs.Count},
		obs.Metric{Name: "Swept", Value: float64(rep.Swept), Unit: obs.Count},
	)
	r.log.InfoContext(ctx, "replay done", slog.String("mode", rep.Mode), slog.Bool("dryRun", rep.DryRun),
		slog.Int("messages", rep.Messages), slog.Int("replayed", rep.Replayed), slog.Int("skippedDelivered", rep.SkippedDelivered),
		slog.Int("failedAgain", len(rep.FailedAgain)), slog.Int("left", rep.Left), slog.Int("swept", rep.Swept))
	return rep, nil
}

// visibility hides a received message from other replays while this one
// works on it; an unfinished message comes back after it.
const visibility = 5 * time.Minute

// job is one DLQ message and the outbox items it stands for.
type job struct {
	msg    Message
	shape  string // parked, on-failure
	keys   []dispatch.OutboxKey
	sweep  bool      // its stream range expired: the sweeper covers it
	until  time.Time // ... up to the range's last arrival
	reason string    // recovery: why it is not settled yet
}

// The shapes of DLQ message, and what a replay can do with one: the
// dimensions of the DLQMessages metric and the fields of its log line.
const (
	shapeParked       = "parked"
	shapeOnFailure    = "on-failure"
	shapeOtherStream  = "other-stream"
	shapeUnrecognized = "unrecognized"

	outcomeDeleted = "deleted"
	outcomeLeft    = "left"
	outcomeDryRun  = "dry-run"
)

// verdict is what became of one DLQ message, said once per message.
type verdict struct {
	msg     Message
	shape   string
	outcome string
	reason  string
}

// drain is one pass over the DLQ: what it received, and what it says of
// each message.
type drain struct {
	r        *Replayer
	req      Request
	rep      *Report
	leave    []Message // made visible again at the end, so none is received twice
	verdicts []verdict
}

// left keeps a message in the DLQ, with its reason.
func (d *drain) left(m Message, shape, reason string) {
	d.rep.Left++
	d.leave = append(d.leave, m)
	outcome := outcomeLeft
	if d.req.DryRun {
		outcome = outcomeDryRun
	}
	d.verdicts = append(d.verdicts, verdict{msg: m, shape: shape, outcome: outcome, reason: reason})
}

func (r *Replayer) drainDLQ(ctx context.Context, req Request, rep *Report) error {
	d := &drain{r: r, req: req, rep: rep}
	defer func() {
		for _, m := range d.leave {
			r.release(ctx, m, req)
		}
		r.report(ctx, d.verdicts)
	}()
	jobs, err := d.receive(ctx)
	if err != nil || len(jobs) == 0 {
		return err
	}
	var keys []dispatch.OutboxKey
	for _, j := range jobs {
		keys = append(keys, j.keys...)
	}
	current, err := r.store.Statuses(ctx, keys)
	if err != nil {
		for _, j := range jobs {
			d.left(j.msg, j.shape, "outbox read failed")
		}
		return fmt.Errorf("read outbox items: %w", err)
	}
	items, wanted, leftJob := d.decide(ctx, jobs, current)
	// Delivered all at once: the engine keeps each aggregate's order.
	res := r.deliver(ctx, items, rep, &rep.Replayed)
	for ji, j := range jobs {
		d.settle(ctx, j, leftJob[ji], wanted, res)
	}
	return nil
}

// receive takes up to maxMessages messages and recognizes each; what it
// cannot act on (another table's record, an unknown shape) is left.
func (d *drain) receive(ctx context.Context) ([]job, error) {
	var jobs []job
	seen := map[string]bool{}
	for d.rep.Messages < d.req.MaxMessages {
		msgs, err := d.r.dlq.Receive(ctx, min(10, d.req.MaxMessages-d.rep.Messages), visibility)
		if err != nil {
			return nil, fmt.Errorf("receive from the DLQ: %w", err)
		}
		fresh := 0
		for _, m := range msgs {
			if seen[m.ID] {
				continue
			}
			seen[m.ID] = true
			fresh++
			d.rep.Messages++
			j, err := d.r.parse(ctx, m, d.rep)
			var other *otherStreamError
			switch {
			case errors.As(err, &other):
				// Not this table's: never deleted here, whatever it is.
				d.rep.OtherStreams++
				d.rep.LeftReasons = append(d.rep.LeftReasons, Failure{Reason: err.Error()})
				d.left(m, shapeOtherStream, err.Error())
			case err != nil:
				d.rep.Unrecognized++
				d.rep.LeftReasons = append(d.rep.LeftReasons, Failure{Reason: "unrecognized: " + err.Error()})
				d.left(m, shapeUnrecognized, err.Error())
			default:
				jobs = append(jobs, j)
			}
		}
		if fresh == 0 {
			break
		}
	}
	return jobs, nil
}

// decide says, item by item, what to deliver: not what is delivered
// already, filtered out, or FAILED too often; a FAILED item is put back to
// PENDING first. leftJob[i] says why job i's message stays ("" if it may go).
func (d *drain) decide(ctx context.Context, jobs []job, current map[dispatch.OutboxKey]dispatch.OutboxItem) (items []dispatch.OutboxItem, wanted map[dispatch.OutboxKey]bool, leftJob []string) {
	wanted = map[dispatch.OutboxKey]bool{}
	leftJob = make([]string, len(jobs))
	for ji, j := range jobs {
		for _, k := range j.keys {
			it, ok := current[k]
			switch {
			case !ok || it.Status == dispatch.Delivered:
				d.rep.SkippedDelivered++
				continue
			case !d.r.selected(d.req, it):
				leftJob[ji] = "filtered out"
				continue
			case it.Status == dispatch.Failed && it.Attempts >= d.req.MaxAttempts:
				leftJob[ji] = fmt.Sprintf("over maxAttempts (%d attempts, maxAttempts %d)", it.Attempts, d.req.MaxAttempts)
				d.rep.LeftReasons = append(d.rep.LeftReasons, Failure{EventID: it.EventID, Aggregate: it.AggregateID, Reason: leftJob[ji]})
				continue
			}
			if wanted[k] {
				continue
			}
			wanted[k] = true
			if d.req.DryRun {
				d.rep.WouldReplay++
				continue
			}
			if it.Status == dispatch.Failed {
				if err := d.r.store.Requeue(ctx, k); err != nil && !errors.Is(err, dispatch.ErrAlreadyDone) {
					leftJob[ji] = "requeue failed"
					continue
				}
				it.Status = dispatch.Pending
			}
			items = append(items, it)
		}
	}
	return items, wanted, leftJob
}

// settle deletes a job's message once its items are settled, or leaves it
// with the reason it stays.
func (d *drain) settle(ctx context.Context, j job, reason string, wanted map[dispatch.OutboxKey]bool, res delivery.Result) {
	if d.req.DryRun && reason == "" {
		reason = "dry run"
	}
	for _, k := range j.keys {
		if !wanted[k] || reason != "" {
			continue
		}
		// A parked-again item has a new DLQ message: the old one goes.
		if o := res.Outcomes[k]; o != delivery.Delivered && o != delivery.AlreadyDone && o != delivery.Parked {
			reason = "not delivered: " + o.String() + reasonSuffix(res.Reasons[k])
		}
	}
	if j.sweep && reason == "" {
		// The stream no longer holds the range: sweep what was written
		// up to its end; the message goes once nothing failed.
		before := len(d.rep.FailedAgain)
		if err := d.r.sweepBefore(ctx, d.req, d.rep, j.until); err != nil {
			reason = "sweep failed"
		} else if len(d.rep.FailedAgain) > before {
			reason = "swept items failed again"
		}
	}
	if reason != "" {
		d.left(j.msg, j.shape, reason)
		return
	}
	if err := d.r.dlq.Delete(ctx, j.msg.Receipt); err != nil {
		d.rep.Left++
		d.verdicts = append(d.verdicts, verdict{msg: j.msg, shape: j.shape, outcome: outcomeLeft, reason: "delete failed: " + errCode(err)})
		return
	}
	d.verdicts = append(d.verdicts, verdict{msg: j.msg, shape: j.shape, outcome: outcomeDeleted, reason: fmt.Sprintf("%d items settled", len(j.keys))})
}

// deliver has the engine deliver items and counts what became of them.
func (r *Replayer) deliver(ctx context.Context, items []dispatch.OutboxItem, rep *Report, delivered *int) delivery.Result {
	if len(items) == 0 {
		return delivery.Result{}
	}
	res := r.engine.Deliver(ctx, items)
	for _, it := range items {
		switch o := res.Outcomes[it.Key()]; o {
		case delivery.Delivered:
			*delivered++
		case delivery.AlreadyDone:
			rep.SkippedDelivered++
		default:
			rep.FailedAgain = append(rep.FailedAgain, Failure{EventID: it.EventID, Aggregate: it.AggregateID, Reason: o.String() + reasonSuffix(res.Reasons[it.Key()])})
		}
	}
	return res
}

// report says what became of each DLQ message: one log line each (WARN
// when it stays, or is not this table's), and a count per shape and outcome.
func (r *Replayer) report(ctx context.Context, verdicts []verdict) {
	counts := map[[2]string]int{}
	for _, v := range verdicts {
		counts[[2]string{v.shape, v.outcome}]++
		attrs := []any{slog.String("messageId", v.msg.ID), slog.String("shape", v.shape), slog.String("outcome", v.outcome), slog.String("reason", v.reason)}
		if v.outcome == outcomeDeleted || v.outcome == outcomeDryRun {
			r.log.InfoContext(ctx, "DLQ message handled", attrs...)
		} else {
			r.log.WarnContext(ctx, "DLQ message left in the DLQ", attrs...)
		}
	}
	for k, n := range counts {
		r.metrics.Emit(map[string]string{"Service": "replay", "Shape": k[0], "Outcome": k[1]}, obs.Metric{Name: "DLQMessages", Value: float64(n), Unit: obs.Count})
	}
}

func reasonSuffix(s string) string {
	if s == "" {
		return ""
	}
	return ": " + s
}

// release makes a message visible again at once when this run leaves it
// (always on a dry run, so that it changes nothing).
func (r *Replayer) release(ctx context.Context, m Message, req Request) {
	if err := r.dlq.Release(ctx, m.Receipt); err != nil {
		r.log.WarnContext(ctx, "could not release a DLQ message", slog.String("messageId", m.ID), slog.String("error", err.Error()))
	}
}

// parse recognizes the two shapes of DLQ message.
func (r *Replayer) parse(ctx context.Context, m Message, rep *Report) (job, error) {
	p, err := delivery.ParseParked(m.Body)
	if err == nil {
		return job{msg: m, shape: shapeParked, keys: []dispatch.OutboxKey{p.Key()}}, nil
	}
	if p.Kind == delivery.ParkedKind {
		// The relay's, but naming no item the replay can address (one
		// refused under a non-canonical key): left, saying why.
		return job{}, err
	}
	of, ok, err := ParseOnFailure(m.Body)
	if !ok {
		return job{}, errors.New("neither a parked item nor an on-failure record")
	}
	if err != nil {
		return job{}, err
	}
	if table := streamTable(of.DDBStreamBatchInfo.StreamArn); table != r.table || table == "" {
		return job{}, &otherStreamError{arn: of.DDBStreamBatchInfo.StreamArn}
	}
	rep.StreamRanges++
	b := of.DDBStreamBatchInfo
	keys, err := r.streams.Range(ctx, b.StreamArn, b.ShardID, b.StartSequenceNumber, b.EndSequenceNumber)
	if err != nil {
		// The stream no longer holds the range (older than its 24-hour
		// retention), or will not give it back: the sweeper finds what of it
		// is still undelivered. Sweeping is safe whatever the cause: it
		// reloads every item and sends only what is not delivered.
		if !errors.Is(err, ErrRangeTrimmed) {
			r.log.WarnContext(ctx, "stream range unreadable; falling back to the sweeper", slog.String("shardId", b.ShardID), slog.String("error", errCode(err)))
		}
		rep.RangesExpired++
		// Every record of the range was written before the last one arrived,
		// and before the mapping sent this message; the later bound wins,
		// in case a clock or an emulator got the arrival wrong.
		until := m.SentAt
		if last, perr := time.Parse(time.RFC3339Nano, b.ApproximateArrivalOfLastRecord); perr == nil && last.Add(time.Second).After(until) {
			until = last.Add(time.Second)
		}
		if until.IsZero() {
			until = r.now()
		}
		return job{msg: m, shape: shapeOnFailure, sweep: true, until: until}, nil
	}
	return job{msg: m, shape: shapeOnFailure, keys: keys}, nil
}

func (r *Replayer) selected(req Request, it dispatch.OutboxItem) bool {
	if len(req.EventTypes) > 0 && !slices.Contains(req.EventTypes, it.EventType) {
		return false
	}
	if len(req.Targets) > 0 && !slices.Contains(req.Targets, string(it.Target)) {
		return false
	}
	return true
}

// sweep delivers items left undelivered (PENDING, or SENDING with a lapsed
// lease) longer than the threshold, found through the sparse index.
func (r *Replayer) sweep(ctx context.Context, req Request, rep *Report) error {
	older := DefaultOlderThan
	if req.OlderThanSeconds > 0 {
		older = time.Duration(req.OlderThanSeconds) * time.Second
	}
	return r.sweepBefore(ctx, req, rep, r.now().Add(-older))
}

// sweepBefore delivers the undelivered items created before a time.
func (r *Replayer) sweepBefore(ctx context.Context, req Request, rep *Report, before time.Time) error {
	found, err := r.load(ctx, "undelivered", r.store.Undelivered, before, req)
	if err != nil {
		return err
	}
	var items []dispatch.OutboxItem
	for _, it := range found {
		if it.Status == dispatch.Delivered || it.Status == dispatch.Failed {
			continue // a FAILED item waits for a person (modes dlq and failed)
		}
		if it.Status == dispatch.Sending && it.LeaseUntil.After(r.now()) {
			continue // being sent right now
		}
		items = append(items, it)
	}
	if req.DryRun {
		rep.WouldReplay += len(items)
		return nil
	}
	r.deliver(ctx, items, rep, &rep.Swept)
	return nil
}

// replayFailed finds FAILED items through the sparse index (their DLQ
// messages may have expired after 14 days, or been deleted) and delivers
// them again: on demand only, like any re-send of a FAILED item.
func (r *Replayer) replayFailed(ctx context.Context, req Request, rep *Report) error {
	found, err := r.load(ctx, "FAILED", r.store.FailedItems, r.now(), req)
	if err != nil {
		return err
	}
	var items []dispatch.OutboxItem
	for _, it := range found {
		k := it.Key()
		if it.Status != dispatch.Failed {
			continue
		}
		rep.FailedFound++
		if it.Attempts >= req.MaxAttempts {
			rep.LeftReasons = append(rep.LeftReasons, Failure{EventID: it.EventID, Aggregate: it.AggregateID,
				Reason: fmt.Sprintf("over maxAttempts (%d attempts, maxAttempts %d)", it.Attempts, req.MaxAttempts)})
			continue
		}
		if req.DryRun {
			rep.WouldReplay++
			continue
		}
		if err := r.store.Requeue(ctx, k); err != nil {
			if !errors.Is(err, dispatch.ErrAlreadyDone) {
				rep.FailedAgain = append(rep.FailedAgain, Failure{EventID: it.EventID, Aggregate: it.AggregateID, Reason: "requeue failed: " + errCode(err)})
			}
			continue
		}
		it.Status = dispatch.Pending
		items = append(items, it)
	}
	r.deliver(ctx, items, rep, &rep.Replayed)
	return nil
}

// otherStreamError: an on-failure record names another table's stream. The
// DLQ may be shared, or a record misrouted; it is not this replay's to act
// on, and never deleted here.
type otherStreamError struct{ arn string }

func (e *otherStreamError) Error() string {
	return fmt.Sprintf("on-failure record of another stream (%s), not of this table's", e.arn)
}

// streamTable returns the table name in a DynamoDB stream ARN
// (arn:aws:dynamodb:region:account:table/NAME/stream/LABEL), or "".
func streamTable(arn string) string {
	_, rest, ok := strings.Cut(arn, ":table/")
	if !ok {
		return ""
	}
	name, _, ok := strings.Cut(rest, "/stream/")
	if !ok {
		return ""
	}
	return name
}

// load finds items through one of the sparse index's queries and reads
// them, consistently, keeping those the request selects, in index order.
func (r *Replayer) load(ctx context.Context, what string, query func(context.Context, time.Time, int) ([]dispatch.OutboxKey, error), before time.Time, req Request) ([]dispatch.OutboxItem, error) {
	keys, err := query(ctx, before, req.MaxItems)
	if err != nil {
		return nil, fmt.Errorf("query %s items: %w", what, err)
	}
	if len(keys) == 0 {
		return nil, nil
	}
	current, err := r.store.Statuses(ctx, keys)
	if err != nil {
		return nil, fmt.Errorf("read outbox items: %w", err)
	}
	var out []dispatch.OutboxItem
	for _, k := range keys {
		if it, ok := current[k]; ok && r.selected(req, it) {
			out = append(out, it)
		}
	}
	return out, nil
}

// errCode keeps an AWS error's code, not its request ids, for reports.
func errCode(err error) string {
	var ae smithy.APIError
	if errors.As(err, &ae) {
		return ae.ErrorCode() + ": " + ae.ErrorMessage()
	}
	return err.Error()
}
