package outbox

import (
	"encoding/json"
	"fmt"
	"time"

	"github.com/aws/aws-sdk-go-v2/service/dynamodb/types"
)

// Aggregate names what changed: its type, its id and its version after the
// change (1 for the first). The version must grow per aggregate (see the
// package documentation).
type Aggregate struct {
	Type    string // [A-Za-z][A-Za-z0-9._-]*, at most MaxTypeLen
	ID      string // [A-Za-z0-9_-], at most MaxAggregateIDLen
	Version int64
}

// Effect is what a change causes: an Event or an Email.
type Effect interface {
	item(agg Aggregate, seq int) (Item, error)
}

// Event is an event for the events queue: the relay publishes it as a
// CloudEvent (type Type, subject the aggregate id, data Data).
type Event struct {
	Type string // [A-Za-z][A-Za-z0-9._-]*, at most MaxTypeLen
	// Data is the event's data: anything encoding/json encodes as a JSON
	// object (a struct, a map), or nil.
	Data any
}

func (e Event) item(agg Aggregate, seq int) (Item, error) {
	raw, err := json.Marshal(e.Data)
	if err != nil {
		return Item{}, broke(RuleEnvelope, "effect %d (event %q): data: %v", seq, clip(e.Type), err)
	}
	var data map[string]any
	if err := json.Unmarshal(raw, &data); err != nil {
		return Item{}, broke(RuleEnvelope, "effect %d (event %q): data must encode as a JSON object or null", seq, clip(e.Type))
	}
	payload, err := json.Marshal(struct {
		Data json.RawMessage `json:"data"`
	}{raw})
	if err != nil {
		return Item{}, broke(RuleEnvelope, "effect %d: %v", seq, err)
	}
	return Item{EventType: e.Type, Target: TargetEvents, Payload: payload}, nil
}

// Email is an email, sent as written from the deployment's sender.
// emailtemplate.Set.Email renders one from a template.
type Email struct {
	To       []string // 1 to MaxRecipients addresses (ParseAddress)
	Template string   // names it in events, logs and metrics: [a-z0-9-]{1,64}
	Subject  string   // one line, at most MaxSubjectBytes
	Text     string   // the text body; Text or HTML or both
	HTML     string   // the HTML body, sent as is: escape what you put in it
}

func (e Email) item(agg Aggregate, seq int) (Item, error) {
	to := make([]string, len(e.To))
	for i, a := range e.To {
		addr, err := ParseAddress(a)
		if err != nil {
			return Item{}, broke(RuleEnvelope, "effect %d (email %q): to[%d] %v", seq, clip(e.Template), i, err)
		}
		to[i] = addr
	}
	payload, err := json.Marshal(EmailPayload{To: to, Template: e.Template, Subject: e.Subject, Text: e.Text, HTML: e.HTML})
	if err != nil {
		return Item{}, broke(RuleEnvelope, "effect %d: %v", seq, err)
	}
	return Item{EventType: EmailEventType(e.Template), Target: TargetEmail, Payload: payload}, nil
}

// Writer builds the outbox items of Dispatcher's table. Its zero value is
// not usable: Table is required.
type Writer struct {
	// Table is Dispatcher's table: the stack's TableName output.
	Table string
	// Shards is how many of the sweeper's shards the items spread over: 1
	// to MaxShards, 0 for DefaultShards.
	Shards int
	// Now returns the creation time of the items; nil for time.Now.
	Now func() time.Time
	// Traceparent, when set, is the W3C trace context the relay carries to
	// the CloudEvent (traceparent extension) and its logs.
	Traceparent string
}

// Items returns the Puts of agg's effects, one per effect in the order
// given (their positions 0, 1, ...), to append to your own
// TransactWriteItems, and the event ids it gave them. Each Put is
// conditional on its item not existing yet: a second transaction for the
// same aggregate and version fails as a whole (TransactionCanceledException
// with ConditionalCheckFailed for the outbox items). Nothing is returned
// with an error; an error is an *Error naming the rule broken.
func (w Writer) Items(agg Aggregate, effects ...Effect) ([]types.TransactWriteItem, []string, error) {
	switch {
	case w.Table == "":
		return nil, nil, broke(RuleEnvelope, "Writer.Table is empty: give the stack's TableName output")
	case !validTypeName(agg.Type):
		return nil, nil, broke(RuleEnvelope, "aggregate type %q: want 1 to %d of [A-Za-z0-9._-], starting with a letter", clip(agg.Type), MaxTypeLen)
	case len(effects) == 0:
		return nil, nil, broke(RuleEnvelope, "no effects: give at least one Event or Email")
	case len(effects) > MaxEffects:
		return nil, nil, broke(RuleLimit, "%d effects; a transaction takes at most %d beside your own write", len(effects), MaxEffects)
	}
	now := time.Now
	if w.Now != nil {
		now = w.Now
	}
	created := now().UTC()
	table := w.Table
	cond := "attribute_not_exists(" + AttrPK + ")"
	puts := make([]types.TransactWriteItem, 0, len(effects))
	ids := make([]string, 0, len(effects))
	for seq, e := range effects {
		if e == nil {
			return nil, nil, broke(RuleEnvelope, "effect %d is nil", seq)
		}
		it, err := e.item(agg, seq)
		if err != nil {
			return nil, nil, err
		}
		it.AggregateID, it.AggregateType, it.Version, it.Seq = agg.ID, agg.Type, agg.Version, seq
		it.EventID, it.Status, it.CreatedAt, it.Traceparent = NewEventID(created), Pending, created, w.Traceparent
		av, err := Encode(it, w.Shards)
		if err != nil {
			return nil, nil, fmt.Errorf("effect %d: %w", seq, err)
		}
		puts = append(puts, types.TransactWriteItem{Put: &types.Put{
			TableName: &table, Item: av, ConditionExpression: &cond,
		}})
		ids = append(ids, it.EventID)
	}
	return puts, ids, nil
}
