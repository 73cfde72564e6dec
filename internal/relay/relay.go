// Package relay is the DynamoDB Streams edge: it turns a batch of stream
// records into outbox items, has the delivery engine deliver them, and
// answers Lambda with the partial batch failure contract.
package relay

import (
	"context"
	"log/slog"
	"time"

	"github.com/aws/aws-lambda-go/events"

	"github.com/dispatcher-dev/dispatcher/internal/delivery"
	"github.com/dispatcher-dev/dispatcher/internal/dispatch"
	"github.com/dispatcher-dev/dispatcher/internal/dynamo"
	"github.com/dispatcher-dev/dispatcher/internal/obs"
)

// Deliverer delivers outbox items and parks what cannot be decoded.
type Deliverer interface {
	Deliver(ctx context.Context, items []dispatch.OutboxItem) delivery.Result
	Park(ctx context.Context, p delivery.ParkedMessage) error
}

// Handler handles DynamoDB Streams batches.
type Handler struct {
	d   Deliverer
	log *slog.Logger
	now func() time.Time
}

// New returns a Handler.
func New(d Deliverer, log *slog.Logger) *Handler {
	return &Handler{d: d, log: log, now: time.Now}
}

// Handle delivers a batch. With ReportBatchItemFailures, Lambda retries the
// batch from the reported sequence number on, so the answer names the first
// record (in stream order) that is not done; records before it are
// checkpointed. Only outbox INSERTs are acted on, whatever the event source
// mapping's filter says; an outbox INSERT that breaks the item contract, or
// cannot be read at all, is parked, never retried forever and never guessed
// at (an item under a key the relay does not compute would otherwise be
// looked up under the canonical key, found missing and counted delivered).
func (h *Handler) Handle(ctx context.Context, ev events.DynamoDBEvent) (events.DynamoDBEventResponse, error) {
	type rec struct {
		seq  string
		key  dispatch.OutboxKey
		done bool // settled without delivery (ignored, or parked as undecodable)
	}
	recs := make([]rec, len(ev.Records))
	var items []dispatch.OutboxItem
	for i, r := range ev.Records {
		recs[i].seq = r.Change.SequenceNumber
		item, ok, err := dynamo.StreamRecord(r)
		switch {
		case !ok:
			recs[i].done = true
		case err != nil:
			if h.park(ctx, r, item, err) != nil {
				continue // not done: the batch is retried from here
			}
			recs[i].done = true
		default:
			recs[i].key = item.Key()
			items = append(items, item)
		}
	}
	res := h.d.Deliver(ctx, items)
	for _, r := range recs {
		if r.done {
			continue
		}
		if o, ok := res.Outcomes[r.key]; ok && o.Done() {
			continue
		}
		h.log.InfoContext(ctx, "batch partly delivered", slog.String("requestId", obs.RequestID(ctx)),
			slog.String("firstFailedSequenceNumber", r.seq), slog.Int("records", len(ev.Records)), slog.Bool("accountWide", res.AccountWide))
		return events.DynamoDBEventResponse{BatchItemFailures: []events.DynamoDBBatchItemFailure{{ItemIdentifier: r.seq}}}, nil
	}
	return events.DynamoDBEventResponse{}, nil
}

// park sends the DLQ message of a record the relay refuses: under the rule
// of the contract it breaks (delivery.ParkReason), with the table key as
// written, so that an operator finds an item stored under a key the relay
// never computes. The WARN line names the same; never the payload.
func (h *Handler) park(ctx context.Context, r events.DynamoDBEventRecord, item dispatch.OutboxItem, err error) error {
	pk, sk := r.Change.Keys["pk"], r.Change.Keys["sk"]
	p := delivery.ParkedMessage{
		Kind: delivery.ParkedKind, AggregateID: item.AggregateID, Version: item.Version, Seq: item.Seq, History: item.History,
		PK: keyString(pk), SK: keyString(sk),
		EventID: item.EventID, EventType: item.EventType, Target: string(item.Target),
		Reason: delivery.ParkReason(err, delivery.ReasonInvalidRecord), Error: err.Error(), Attempts: 1, TraceParent: item.Traceparent, ParkedAt: h.now().UTC(),
	}
	attrs := []any{slog.String("reason", p.Reason), slog.String("pk", p.PK), slog.String("sk", p.SK),
		slog.String("sequenceNumber", r.Change.SequenceNumber), slog.String("eventId", item.EventID), slog.String("error", err.Error())}
	if perr := h.d.Park(ctx, p); perr != nil {
		h.log.ErrorContext(ctx, "refused outbox record could not be parked", append(attrs, slog.String("parkError", perr.Error()))...)
		return perr
	}
	h.log.WarnContext(ctx, "outbox record refused and parked in the DLQ", attrs...)
	return nil
}

// keyString is a key attribute's string ("" for a record without it, where
// String would panic).
func keyString(v events.DynamoDBAttributeValue) string {
	if v.DataType() != events.DataTypeString {
		return ""
	}
	return v.String()
}
