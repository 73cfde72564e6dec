package replay

import (
	"context"
	"errors"
	"log/slog"
	"strconv"
	"time"

	"github.com/aws/aws-lambda-go/events"

	"github.com/dispatcher-dev/dispatcher/internal/delivery"
	"github.com/dispatcher-dev/dispatcher/internal/dispatch"
	"github.com/dispatcher-dev/dispatcher/internal/obs"
	"github.com/dispatcher-dev/dispatcher/internal/retry"
)

// The stream recovery's waits: between two attempts at what is still held
// (an earlier version's email under a lease of a relay that died, most
// often), and the time it keeps before its deadline to answer. A held item
// goes out at most recoverPollCap after its lease lapses.
const (
	recoverPollBase = 250 * time.Millisecond
	recoverPollCap  = 5 * time.Second
	recoverMargin   = 5 * time.Second
)

// Recover is the stream recovery's handler: the event source mapping's
// on-failure records, taken from their own queue (StreamRecoveryQueue) as
// they come. A record whose batch the mapping gave up on is not a permanent
// failure: its items are PENDING or SENDING, held back by an email a relay
// that died still leases, or by a fault the mapping's retries did not
// outlast. Recover re-reads each record's stream range and delivers what of
// it is undelivered through the delivery engine (in order, behind leases),
// trying again within the invocation until each item is settled; a FAILED
// item is left alone (it waits for a person), never put back. A record it
// could not settle before its deadline is reported failed: SQS gives it
// again, and after the queue's maxReceiveCount moves it to the DLQ, where a
// person's replay finds it.
func (r *Replayer) Recover(ctx context.Context, ev events.SQSEvent) (events.SQSEventResponse, error) {
	resp := events.SQSEventResponse{BatchItemFailures: []events.SQSBatchItemFailure{}}
	rep := Report{Mode: "recover", FailedAgain: []Failure{}}
	var verdicts []verdict
	var jobs []job
	for _, m := range ev.Records {
		msg := Message{ID: m.MessageId, Body: m.Body, Receipt: m.ReceiptHandle, SentAt: sentAt(m.Attributes["SentTimestamp"])}
		rep.Messages++
		j, err := r.parse(ctx, msg, &rep)
		if err == nil && j.shape != shapeOnFailure {
			err = errNotOnFailure
		}
		if err != nil {
			// Not a record of this table's mapping: left to the DLQ
			// (after maxReceiveCount) and a person.
			resp.BatchItemFailures = append(resp.BatchItemFailures, events.SQSBatchItemFailure{ItemIdentifier: m.MessageId})
			verdicts = append(verdicts, verdict{msg: msg, shape: shapeUnrecognized, outcome: outcomeLeft, reason: err.Error()})
			continue
		}
		jobs = append(jobs, j)
	}
	deadline, hasDeadline := ctx.Deadline()
	for attempt := 1; len(jobs) > 0; attempt++ {
		var held []job
		stopped := false
		for _, j := range jobs {
			reason, accountWide := r.recoverJob(ctx, j, &rep, attempt == 1)
			stopped = stopped || accountWide
			if reason != "" {
				j.reason = reason
				held = append(held, j)
				continue
			}
			verdicts = append(verdicts, verdict{msg: j.msg, shape: j.shape, outcome: outcomeDeleted, reason: "settled"})
		}
		jobs = held
		if len(jobs) == 0 || stopped {
			// Sending paused or the queue refusing everything: waiting in
			// the invocation cannot help; SQS gives the records back later.
			break
		}
		wait := retry.Backoff(attempt, recoverPollBase, recoverPollCap)
		if hasDeadline && time.Now().Add(wait+recoverMargin).After(deadline) || retry.Sleep(ctx, wait) != nil {
			break
		}
	}
	for _, j := range jobs {
		resp.BatchItemFailures = append(resp.BatchItemFailures, events.SQSBatchItemFailure{ItemIdentifier: j.msg.ID})
		verdicts = append(verdicts, verdict{msg: j.msg, shape: j.shape, outcome: outcomeLeft, reason: j.reason})
	}
	r.report(ctx, verdicts)
	r.metrics.Emit(map[string]string{"Service": "recovery"},
		obs.Metric{Name: "Recovered", Value: float64(rep.Replayed + rep.Swept), Unit: obs.Count},
		obs.Metric{Name: "RecoveryLeft", Value: float64(len(resp.BatchItemFailures)), Unit: obs.Count})
	r.log.InfoContext(ctx, "recovery done", slog.Int("messages", rep.Messages), slog.Int("delivered", rep.Replayed+rep.Swept),
		slog.Int("skippedDelivered", rep.SkippedDelivered), slog.Int("left", len(resp.BatchItemFailures)))
	return resp, nil
}

// recoverJob delivers what of one on-failure record is still undelivered;
// it returns "" once every item is settled (DELIVERED, FAILED, or gone), or
// why one is not yet, and whether a target refused everything. Items found
// delivered are counted on the first try only, not again on every poll.
func (r *Replayer) recoverJob(ctx context.Context, j job, rep *Report, first bool) (reason string, accountWide bool) {
	if j.sweep {
		// The stream no longer holds the range: sweep what was written up
		// to its end (FAILED items are left, as every sweep leaves them).
		req := Request{MaxItems: MaxItemsLimit}
		before := len(rep.FailedAgain)
		if err := r.sweepBefore(ctx, req, rep, j.until); err != nil {
			return "sweep failed: " + errCode(err), false
		}
		if len(rep.FailedAgain) > before {
			return "swept items not delivered yet", false
		}
		return "", false
	}
	current, err := r.store.Statuses(ctx, j.keys)
	if err != nil {
		return "outbox read failed: " + errCode(err), false
	}
	var items []dispatch.OutboxItem
	for _, k := range j.keys {
		it, ok := current[k]
		switch {
		case !ok || it.Status == dispatch.Delivered:
			if first {
				rep.SkippedDelivered++
			}
		case it.Status == dispatch.Failed:
			// A person's: nothing scheduled re-sends it (guarantee 7).
		default:
			items = append(items, it)
		}
	}
	if len(items) == 0 {
		return "", false
	}
	res := r.engine.Deliver(ctx, items)
	for _, it := range items {
		switch o := res.Outcomes[it.Key()]; {
		case o == delivery.Delivered:
			rep.Replayed++
		case !o.Done() && reason == "":
			reason = "not delivered yet: " + o.String() + reasonSuffix(res.Reasons[it.Key()])
		}
	}
	return reason, res.AccountWide
}

var errNotOnFailure = errors.New("not an on-failure record of the stream mapping")

// sentAt reads SQS's SentTimestamp attribute (epoch milliseconds).
func sentAt(ms string) time.Time {
	n, err := strconv.ParseInt(ms, 10, 64)
	if err != nil {
		return time.Time{}
	}
	return time.UnixMilli(n)
}
