package dispatch

import (
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"github.com/dispatcher-dev/dispatcher/outbox"
)

// The outbox contract is the public package outbox: the domain uses its
// states, targets and payloads, and its rules for an envelope.
type (
	// Status is an outbox item's delivery state.
	Status = outbox.Status
	// Target says where an outbox item goes.
	Target = outbox.Target
	// EventPayload is the payload of an events-queue item: what the relay
	// turns into a CloudEvent.
	EventPayload = outbox.EventPayload
	// EmailPayload is the payload of an email item: the rendered email, sent as is.
	EmailPayload = outbox.EmailPayload
)

// The delivery states (docs/delivery.md).
const (
	Pending   = outbox.Pending
	Sending   = outbox.Sending
	Delivered = outbox.Delivered
	Failed    = outbox.Failed
)

// The targets.
const (
	TargetEvents = outbox.TargetEvents // the events queue (SQS)
	TargetEmail  = outbox.TargetEmail  // SES v2
)

// OutboxItem is one side effect of one command, written in the same
// transaction as the state change and delivered by the relay.
type OutboxItem struct {
	AggregateID   string
	AggregateType string
	Version       int64 // the aggregate version that produced it
	Seq           int   // its position among the command's effects
	EventID       string
	EventType     string
	Target        Target
	Payload       json.RawMessage // EventPayload or EmailPayload
	Status        Status
	Attempts      int
	LastError     string
	CreatedAt     time.Time
	Traceparent   string
	// SchemaVersion is the item's schemaVersion as stored: 0 when absent
	// (read as outbox.SchemaVersion), -1 when not a whole number. Validate
	// refuses a version the relay does not know, as outbox.Decode does.
	SchemaVersion int
	LeaseOwner    string    // SENDING only: who holds the delivery lease
	LeaseUntil    time.Time // SENDING only: when the lease lapses
	// History marks an event-sourced aggregate's event: stored as the
	// aggregate's EVENT item (its history), delivered like any outbox event
	// but never expired. Its Seq is 0.
	History bool
	// Private is, on a History item only, the event's private data (a JSON
	// object, Event.Private): read by the fold, never published.
	Private json.RawMessage
}

// Accepted is the answer to an applied command, saved with the idempotency
// record so that a repeat gets the same answer.
type Accepted struct {
	AggregateID string   `json:"aggregateId"`
	Version     int64    `json:"version"`
	EventIDs    []string `json:"eventIds"`
	Replayed    bool     `json:"replayed"`
}

// MarshalJSON writes eventIds as a list, [] when the command emitted no
// event (a Dispatch that only patches the state), as api/openapi.yaml says;
// also for a record saved with null before.
func (a Accepted) MarshalJSON() ([]byte, error) {
	type plain Accepted
	if a.EventIDs == nil {
		a.EventIDs = []string{}
	}
	return json.Marshal(plain(a))
}

// Idempotency is the record of an applied command under one key.
type Idempotency struct {
	Scope       string
	Key         string
	RequestHash string
	Response    Accepted
	CreatedAt   time.Time
	ExpiresAt   time.Time
}

// IdempotencyTTL is how long a key is remembered.
const IdempotencyTTL = 24 * time.Hour

// Commit is everything one command writes, in one transaction.
type Commit struct {
	State       Aggregate // the new state; State.Version = PrevVersion + 1
	PrevVersion int64     // 0: the aggregate must not exist yet
	Outbox      []OutboxItem
	Idempotency Idempotency
	// Mode is the aggregate's mode. ModeEventSourced writes no state item:
	// the Outbox item with History set is the aggregate's EVENT item (the
	// version condition), and Snapshot, when set, the folded state to keep.
	Mode     Mode
	Snapshot *Aggregate
	// Token is the transaction's ClientRequestToken: a retry of the same
	// call (after a timeout) is then applied at most once.
	Token string
}

// Errors a store returns from Commit, matched with errors.Is.
var (
	// ErrVersionConflict: the state changed since it was read.
	ErrVersionConflict = errors.New("the aggregate changed concurrently")
	// ErrKeyInUse: the idempotency key was recorded by another request.
	ErrKeyInUse = errors.New("the idempotency key is already recorded")
)

// NewEventID returns a UUIDv7 (outbox.NewEventID).
func NewEventID(now time.Time) string { return outbox.NewEventID(now) }

// CommitResult reports what a commit cost.
type CommitResult struct {
	WriteUnits float64 // consumed write capacity, from ReturnConsumedCapacity
}

// VersionConflict is the answer to an expectedVersion that does not match,
// or to conflicts that outlasted the retries: 409 with the current version.
// Its kind is Stale.
type VersionConflict struct {
	Current int64
	Msg     string
}

func (e *VersionConflict) Error() string { return e.Msg }

// OutboxKey names one outbox item.
type OutboxKey struct {
	AggregateID string
	Version     int64
	Seq         int
	History     bool // an event-sourced aggregate's EVENT item (OutboxItem.History)
}

// Key returns the item's key.
func (o OutboxItem) Key() OutboxKey { return OutboxKey{o.AggregateID, o.Version, o.Seq, o.History} }

// ErrAlreadyDone: a conditional delivery update lost its condition, because
// another worker delivered, claimed or failed the item first.
var ErrAlreadyDone = errors.New("the outbox item was already handled")

// Validate checks an outbox item as read back (from the stream, the table or
// the DLQ) by the contract's rules (outbox.Item.Validate). Its errors are
// Permanent: an envelope the relay cannot trust is parked, not retried;
// retrying cannot make it valid.
func (o OutboxItem) Validate() error {
	const op = "OutboxItem.Validate"
	if o.SchemaVersion != 0 && o.SchemaVersion != outbox.SchemaVersion {
		got := fmt.Sprint(o.SchemaVersion)
		if o.SchemaVersion < 0 {
			got = "not a whole number"
		}
		return E(op, Permanent, "", &outbox.Error{Rule: outbox.RuleSchema, Detail: fmt.Sprintf("schemaVersion %s: this relay knows %d", got, outbox.SchemaVersion)})
	}
	if err := o.Envelope().Validate(); err != nil {
		return E(op, Permanent, "", err)
	}
	return nil
}

// Envelope is the item as the outbox contract describes it.
func (o OutboxItem) Envelope() outbox.Item {
	return outbox.Item{
		AggregateID: o.AggregateID, AggregateType: o.AggregateType, Version: o.Version, Seq: o.Seq,
		EventID: o.EventID, EventType: o.EventType, Target: o.Target, Payload: o.Payload,
		Status: o.Status, Attempts: o.Attempts, CreatedAt: o.CreatedAt, Traceparent: o.Traceparent,
	}
}
