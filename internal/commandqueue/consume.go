package commandqueue

import (
	"context"
	"log/slog"
	"strings"
	"time"

	"github.com/aws/aws-lambda-go/events"

	"github.com/dispatcher-dev/dispatcher/internal/command"
	"github.com/dispatcher-dev/dispatcher/internal/dispatch"
	"github.com/dispatcher-dev/dispatcher/internal/obs"
)

// Executor applies one command (*command.Service).
type Executor interface {
	Execute(ctx context.Context, req command.Request) (command.Result, error)
}

// Consumer is the command consumer function's handler: it applies each
// queued command with the scope and idempotency key it was received with,
// so a redelivered message is answered from the idempotency record and
// writes nothing.
type Consumer struct {
	exec    Executor
	log     *slog.Logger
	metrics *obs.Metrics
	now     func() time.Time
}

// NewConsumer returns a Consumer.
func NewConsumer(exec Executor, log *slog.Logger, metrics *obs.Metrics) *Consumer {
	return &Consumer{exec: exec, log: log, metrics: metrics, now: time.Now}
}

// Outcomes of one message.
const (
	outcomeApplied  = "applied"
	outcomeReplayed = "replayed" // applied before: a redelivery, nothing written
	outcomeRefused  = "refused"  // refused by the domain for good: acknowledged
	outcomeFailed   = "failed"   // transient or unexpected: reported, retried
	outcomeHeld     = "held"     // an earlier message of its group failed: not tried
)

// Handle applies a batch in order and reports the messages to retry
// (ReportBatchItemFailures): a message that failed and, on a FIFO queue,
// every later message of its group in the batch, untried, so a group's
// commands apply in the order they were queued. Other groups go on.
// A command the domain refuses (invalid, unprocessable, a conflict) would be
// refused again on every retry: it is logged at WARN, counted, and
// acknowledged; the caller, who got a 202, learns of it only from the
// aggregate (docs/modes.md, "Listen to yourself").
func (c *Consumer) Handle(ctx context.Context, ev events.SQSEvent) (events.SQSEventResponse, error) {
	var resp events.SQSEventResponse
	held := map[string]bool{} // FIFO groups with a failed message in this batch
	for _, r := range ev.Records {
		fifo := strings.HasSuffix(r.EventSourceARN, ".fifo")
		group := r.Attributes["MessageGroupId"]
		outcome := outcomeHeld
		if !(fifo && held[group]) {
			outcome = c.apply(ctx, r)
		}
		if outcome == outcomeFailed || outcome == outcomeHeld {
			resp.BatchItemFailures = append(resp.BatchItemFailures, events.SQSBatchItemFailure{ItemIdentifier: r.MessageId})
			if fifo {
				held[group] = true
			}
		}
	}
	return resp, nil
}

// apply applies one message and logs and counts what it did.
func (c *Consumer) apply(ctx context.Context, r events.SQSMessage) string {
	attrs := []any{slog.String("requestId", obs.RequestID(ctx)), slog.String("messageId", r.MessageId)}
	q, err := Decode(r)
	if err != nil {
		// Not ours or damaged: it can never apply, but it is kept. Reported
		// failed, it reaches the queue's DLQ after maxReceiveCount receives.
		c.log.ErrorContext(ctx, "queued command unreadable", append(attrs, slog.String("outcome", outcomeFailed), slog.String("error", err.Error()))...)
		c.count("", "CommandConsumeFailed")
		return outcomeFailed
	}
	attrs = append(attrs, slog.String("callerId", q.Caller.ID), slog.String("aggregateId", q.AggregateID), slog.String("commandType", q.CommandType),
		slog.String("receiveCount", r.Attributes["ApproximateReceiveCount"]))
	res, err := c.exec.Execute(ctx, q.Request())
	switch {
	case err == nil:
		outcome := outcomeApplied
		if res.Replayed {
			outcome = outcomeReplayed
		}
		lag := c.now().Sub(q.ReceivedAt)
		c.log.InfoContext(ctx, "queued command", append(attrs, slog.String("outcome", outcome), slog.Int64("version", res.Version),
			slog.Int("attempts", res.Attempts), slog.Float64("lagMs", float64(lag.Microseconds())/1000))...)
		name := "QueuedCommandApplied"
		if res.Replayed {
			name = "QueuedCommandReplayed"
		}
		c.metrics.Emit(map[string]string{"Service": "command-consumer", "CommandType": q.CommandType},
			obs.Metric{Name: name, Value: 1, Unit: obs.Count},
			obs.Metric{Name: "QueuedCommandLag", Value: float64(lag.Microseconds()) / 1000, Unit: obs.Milliseconds})
		return outcome
	case Refused(err):
		c.log.WarnContext(ctx, "queued command refused after its 202; acknowledged, not retried",
			append(attrs, slog.String("outcome", outcomeRefused), slog.String("reason", dispatch.KindOf(err).String()), slog.String("error", dispatch.Classified(err).Error()))...)
		c.count(q.CommandType, "QueuedCommandRefused")
		return outcomeRefused
	default:
		c.log.WarnContext(ctx, "queued command not applied; it will be retried", append(attrs, slog.String("outcome", outcomeFailed), slog.String("error", err.Error()))...)
		c.count(q.CommandType, "CommandConsumeFailed")
		return outcomeFailed
	}
}

func (c *Consumer) count(cmdType, name string) {
	dims := map[string]string{"Service": "command-consumer"}
	if cmdType != "" {
		dims["CommandType"] = cmdType
	}
	c.metrics.Emit(dims, obs.Metric{Name: name, Value: 1, Unit: obs.Count})
}

// Refused reports whether err is the domain's answer to the command itself
// (the same command would be refused again): what the synchronous path
// answers with a 4xx. Anything else (transient, internal) may pass on retry.
func Refused(err error) bool {
	switch dispatch.KindOf(err) {
	case dispatch.Invalid, dispatch.Unprocessable, dispatch.Conflict, dispatch.Stale, dispatch.TooLarge, dispatch.NotFound, dispatch.Unauthorized,
		// What an account command decides to send is checked against its
		// caller's grant only when it is decided, after the 202.
		dispatch.Forbidden:
		return true
	}
	return false
}
