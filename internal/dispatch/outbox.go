package dispatch

import (
	"crypto/rand"
	"encoding/binary"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"time"
)

// Status is an outbox item's delivery state.
type Status string

// The delivery states (docs/delivery.md).
const (
	Pending   Status = "PENDING"
	Sending   Status = "SENDING"
	Delivered Status = "DELIVERED"
	Failed    Status = "FAILED"
)

// Target says where an outbox item goes.
type Target string

// The targets.
const (
	TargetEvents Target = "events" // the events queue (SQS)
	TargetEmail  Target = "email"  // SES v2
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

// EventPayload is the payload of an events-queue item: what the relay turns
// into a CloudEvent.
type EventPayload struct {
	Data map[string]any `json:"data"`
}

// EmailPayload is the payload of an email item: the rendered email, sent as is.
type EmailPayload struct {
	To       []string `json:"to"`
	Template string   `json:"template"`
	Subject  string   `json:"subject"`
	Text     string   `json:"text"`
	HTML     string   `json:"html"`
}

// Accepted is the answer to an applied command, saved with the idempotency
// record so that a repeat gets the same answer.
type Accepted struct {
	AggregateID string   `json:"aggregateId"`
	Version     int64    `json:"version"`
	EventIDs    []string `json:"eventIds"`
	Replayed    bool     `json:"replayed"`
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

// NewEventID returns a UUIDv7 (RFC 9562): time-ordered, so ids sort by
// creation, with 74 random bits.
func NewEventID(now time.Time) string {
	var b [16]byte
	_, _ = rand.Read(b[6:])
	ms := uint64(now.UnixMilli())
	var ts [8]byte
	binary.BigEndian.PutUint64(ts[:], ms)
	copy(b[0:6], ts[2:8])
	b[6] = 0x70 | (b[6] & 0x0f) // version 7
	b[8] = 0x80 | (b[8] & 0x3f) // variant 10
	h := hex.EncodeToString(b[:])
	return h[0:8] + "-" + h[8:12] + "-" + h[12:16] + "-" + h[16:20] + "-" + h[20:32]
}

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
// the DLQ). Its errors are Permanent: an envelope the relay cannot trust is
// parked, not retried; retrying cannot make it valid.
func (o OutboxItem) Validate() error {
	const op = "OutboxItem.Validate"
	bad := func(msg string, cause error) error { return E(op, Permanent, msg, cause) }
	switch {
	case !ValidAggregateID(o.AggregateID):
		return bad("invalid aggregate id", nil)
	case o.Version < 1 || o.Seq < 0:
		return bad("invalid version or position", nil)
	case o.EventID == "" || len(o.EventID) > 64:
		return bad("missing or oversized event id", nil)
	case o.EventType == "" || len(o.EventType) > MaxTypeLen+len("email."):
		return bad("missing or oversized event type", nil)
	}
	switch o.Target {
	case TargetEvents:
		var p EventPayload
		if err := json.Unmarshal(o.Payload, &p); err != nil {
			return bad("event payload", err)
		}
	case TargetEmail:
		var p EmailPayload
		if err := json.Unmarshal(o.Payload, &p); err != nil {
			return bad("email payload", err)
		}
		if len(p.To) == 0 || len(p.To) > MaxRecipientsPerEmail || p.Subject == "" || hasControl(p.Subject) || (p.Text == "" && p.HTML == "") {
			return bad("email payload is incomplete or unsafe", nil)
		}
	default:
		return bad(fmt.Sprintf("unknown target %q", o.Target), nil)
	}
	return nil
}
