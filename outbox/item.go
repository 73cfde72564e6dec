package outbox

import (
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"
	"unicode"

	"github.com/aws/aws-sdk-go-v2/service/dynamodb/types"
)

// Status is an outbox item's delivery state. Items are written PENDING;
// the relay moves them on.
type Status string

// The delivery states.
const (
	Pending   Status = "PENDING"
	Sending   Status = "SENDING" // an email whose send holds a lease
	Delivered Status = "DELIVERED"
	Failed    Status = "FAILED" // parked in the DLQ
)

// Target says where an outbox item goes.
type Target string

// The targets.
const (
	TargetEvents Target = "events" // the events queue (SQS), as a CloudEvent
	TargetEmail  Target = "email"  // SES v2
)

// EventPayload is the payload of an events item: the CloudEvent's data.
type EventPayload struct {
	Data map[string]any `json:"data"`
}

// EmailPayload is the payload of an email item: the email, sent as is.
type EmailPayload struct {
	To       []string `json:"to"`
	Template string   `json:"template"`
	Subject  string   `json:"subject"`
	Text     string   `json:"text"`
	HTML     string   `json:"html"`
}

// Item is one outbox item as stored: the envelope the relay reads. Most
// writers never build one: Writer.Items does. It is exported for writers
// that encode an item themselves (Encode) and for tools that read items
// back (Decode).
type Item struct {
	AggregateID   string
	AggregateType string
	Version       int64 // the aggregate version that produced it
	Seq           int   // its position among the version's effects
	EventID       string
	EventType     string // an email's is "email." + its template
	Target        Target
	Payload       json.RawMessage // EventPayload or EmailPayload
	Status        Status
	Attempts      int
	CreatedAt     time.Time
	Traceparent   string
}

// EmailEventType is the event type of an email item: "email." and its
// template, the name its logs, metrics and DLQ messages use.
func EmailEventType(template string) string { return "email." + template }

// Rule names the rule of the contract an item breaks: the relay parks an
// item with its rule as the reason (the DLQ message's reason field).
type Rule string

// The rules.
const (
	RuleKey         Rule = "non-canonical-key"        // the key is not PartitionKey/SortKey of the item's own attributes
	RuleIndex       Rule = "missing-index-attributes" // a PENDING item without the attributes the sweeper and the order check read
	RuleSchema      Rule = "unknown-schema-version"   // a schemaVersion this relay does not know
	RuleEnvelope    Rule = "invalid-envelope"         // a missing or malformed attribute, or a payload the relay cannot send
	RuleLimit       Rule = "over-limit"               // a size or count beyond the limits
	RuleUnsupported Rule = "unsupported"              // what the contract does not offer (writing another status)
)

// Error is an item that breaks the contract. Items, Encode and Decode
// return it; errors.As finds it.
type Error struct {
	Rule   Rule
	Detail string
}

func (e *Error) Error() string { return "outbox: " + string(e.Rule) + ": " + e.Detail }

func broke(rule Rule, format string, args ...any) error {
	return &Error{Rule: rule, Detail: fmt.Sprintf(format, args...)}
}

// RuleOf returns the rule err breaks, and false when err is not an *Error.
func RuleOf(err error) (Rule, bool) {
	var e *Error
	if errors.As(err, &e) {
		return e.Rule, true
	}
	return "", false
}

// Validate checks the envelope by the relay's rules: what it returns an
// error for, the relay parks instead of sending.
func (it Item) Validate() error {
	env := func(format string, args ...any) error { return broke(RuleEnvelope, format, args...) }
	switch {
	case !ValidAggregateID(it.AggregateID):
		return env("aggregate id %q: want 1 to %d of [A-Za-z0-9_-], starting with a letter or digit", clip(it.AggregateID), MaxAggregateIDLen)
	case it.AggregateType != "" && !validTypeName(it.AggregateType):
		return env("aggregate type %q: want 1 to %d of [A-Za-z0-9._-], starting with a letter", clip(it.AggregateType), MaxTypeLen)
	case it.Version < 1:
		return env("version %d: want 1 or more", it.Version)
	case it.Seq < 0 || it.Seq > MaxSeq:
		return env("position %d: want 0 to %d", it.Seq, MaxSeq)
	case it.EventID == "" || len(it.EventID) > MaxEventIDLen || hasControl(it.EventID):
		return env("event id: want 1 to %d characters, no control characters", MaxEventIDLen)
	}
	switch it.Target {
	case TargetEvents:
		if !validTypeName(it.EventType) {
			return env("event type %q: want 1 to %d of [A-Za-z0-9._-], starting with a letter", clip(it.EventType), MaxTypeLen)
		}
		var p EventPayload
		if err := strictJSON(it.Payload, &p); err != nil {
			return env("event payload: %v", err)
		}
	case TargetEmail:
		var p EmailPayload
		if err := strictJSON(it.Payload, &p); err != nil {
			return env("email payload: %v", err)
		}
		if it.EventType != EmailEventType(p.Template) {
			return env("event type %q: an email's is %q", clip(it.EventType), EmailEventType(p.Template))
		}
		return p.validate()
	default:
		return env("target %q: want %q or %q", clip(string(it.Target)), TargetEvents, TargetEmail)
	}
	return nil
}

// strictJSON decodes a payload that must be one JSON object of v's fields.
func strictJSON(b []byte, v any) error {
	if len(b) == 0 {
		return errors.New("missing")
	}
	dec := json.NewDecoder(strings.NewReader(string(b)))
	dec.UseNumber()
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		return err
	}
	if dec.More() {
		return errors.New("more than one JSON value")
	}
	return nil
}

func (p EmailPayload) validate() error {
	env := func(format string, args ...any) error { return broke(RuleEnvelope, format, args...) }
	switch {
	case len(p.To) == 0:
		return env("email: no recipient")
	case len(p.To) > MaxRecipients:
		return broke(RuleLimit, "email: %d recipients, at most %d", len(p.To), MaxRecipients)
	case !validTemplateName(p.Template):
		return env("email: template %q: want 1 to %d of [a-z0-9-]", clip(p.Template), MaxTemplateLen)
	case strings.TrimSpace(p.Subject) == "":
		return env("email: empty subject")
	case len(p.Subject) > MaxSubjectBytes:
		return broke(RuleLimit, "email: subject of %d bytes, at most %d", len(p.Subject), MaxSubjectBytes)
	case p.Text == "" && p.HTML == "":
		return env("email: neither a text nor an HTML body")
	}
	if r, bad := UnsafeSubjectRune(p.Subject); bad {
		return env("email: the subject holds %U", r)
	}
	for i, to := range p.To {
		if addr, err := ParseAddress(to); err != nil || addr != to {
			return env("email: to[%d] is not one address SES sends to", i)
		}
	}
	return nil
}

// UnsafeSubjectRune returns the first rune of s that a subject must not
// hold: a control character (CR, LF, ...), which could add a header; a
// line or paragraph separator, which breaks the line in some clients; or a
// bidirectional override or isolate (IsBidiControl), which makes the
// subject read as something else.
func UnsafeSubjectRune(s string) (rune, bool) {
	for _, r := range s {
		if unicode.IsControl(r) || r == '\u2028' || r == '\u2029' || IsBidiControl(r) {
			return r, true
		}
	}
	return 0, false
}

// IsBidiControl reports the Unicode bidirectional embedding, override and
// isolate controls (U+202A-U+202E, U+2066-U+2069): invisible characters that
// reorder the text around them, so that a name or a subject reads
// differently from what it holds ("Trojan Source", CVE-2021-42574). The
// implicit marks U+200E, U+200F and U+061C are not among them: they only
// set the direction of neutral characters next to them, cannot reverse a
// run of text, and right-to-left names need them.
func IsBidiControl(r rune) bool {
	return (r >= '\u202a' && r <= '\u202e') || (r >= '\u2066' && r <= '\u2069')
}

// Encode returns the item's attributes as Writer.Items writes them, with
// its index attributes (the shard spread over shards, see Shard). It
// validates the item first; only PENDING items may be written.
func Encode(it Item, shards int) (map[string]types.AttributeValue, error) {
	if it.Status == "" {
		it.Status = Pending
	}
	if it.Status != Pending {
		return nil, broke(RuleUnsupported, "status %q: items are written %s; the relay moves them on", clip(string(it.Status)), Pending)
	}
	if shards < 0 || shards > MaxShards {
		return nil, broke(RuleLimit, "shards %d: want 1 to %d (0 for %d)", shards, MaxShards, DefaultShards)
	}
	if it.CreatedAt.IsZero() {
		return nil, broke(RuleEnvelope, "no creation time")
	}
	if err := it.Validate(); err != nil {
		return nil, err
	}
	created := it.CreatedAt.UTC().Format(time.RFC3339Nano)
	sk := SortKey(it.Version, it.Seq)
	item := map[string]types.AttributeValue{
		AttrPK: s(PartitionKey(it.AggregateID)), AttrSK: s(sk), AttrKind: s(KindOutbox),
		AttrSchemaVersion: n(SchemaVersion),
		AttrAggregateID:   s(it.AggregateID), AttrAggregateType: s(it.AggregateType),
		AttrVersion: n(it.Version), AttrSeq: n(int64(it.Seq)),
		AttrEventID: s(it.EventID), AttrEventType: s(it.EventType), AttrTarget: s(string(it.Target)),
		AttrPayload: s(string(it.Payload)), AttrStatus: s(string(it.Status)),
		AttrAttempts: n(int64(it.Attempts)), AttrCreatedAt: s(created),
		AttrShard:     s(Shard(it.AggregateID, it.Version, it.Seq, shards)),
		AttrSince:     s(created + "#" + it.EventID),
		AttrPendingSK: s(sk),
	}
	if it.Traceparent != "" {
		item[AttrTraceparent] = s(it.Traceparent)
	}
	if size := ItemSize(item); size > MaxItemBytes {
		return nil, broke(RuleLimit, "an item of %d bytes exceeds DynamoDB's item limit of 400 KB (%d bytes)", size, MaxItemBytes)
	}
	return item, nil
}

// Decode reads an outbox item as stored (a stream record's new image, a
// GetItem) and checks it against the contract: its key is canonical and
// agrees with its attributes, its schemaVersion is known, a PENDING or
// SENDING item carries its index attributes, and the envelope passes
// Validate. The error is an *Error naming the rule broken; the item is
// returned with what could be read, for the relay's log line and DLQ
// message.
//
// An item without schemaVersion was written before the contract was
// versioned (Dispatcher 0.x before it) and is read as version 1.
func Decode(av map[string]types.AttributeValue) (Item, error) {
	it := Item{
		AggregateID: getS(av, AttrAggregateID), AggregateType: getS(av, AttrAggregateType),
		EventID: getS(av, AttrEventID), EventType: getS(av, AttrEventType),
		Target: Target(getS(av, AttrTarget)), Payload: json.RawMessage(getS(av, AttrPayload)),
		Status: Status(getS(av, AttrStatus)), Traceparent: getS(av, AttrTraceparent),
	}
	pk, sk := getS(av, AttrPK), getS(av, AttrSK)
	id, v, seq, err := ParseKey(pk, sk)
	if err != nil {
		if it.AggregateID == "" {
			it.AggregateID = id
		}
		return it, broke(RuleKey, "%v", err)
	}
	it.AggregateID, it.Version, it.Seq = id, v, seq
	if sv, ok := av[AttrSchemaVersion]; ok {
		nv, isN := sv.(*types.AttributeValueMemberN)
		if !isN || nv.Value != strconv.Itoa(SchemaVersion) {
			return it, broke(RuleSchema, "schemaVersion %s: this relay knows %d", avText(sv), SchemaVersion)
		}
	}
	if got := getS(av, AttrAggregateID); got != id {
		return it, broke(RuleKey, "aggregateId %q is not the key's %q", clip(got), id)
	}
	if got, ok := getInt(av, AttrVersion); !ok || got != v {
		return it, broke(RuleKey, "version %s is not the key's %d", avText(av[AttrVersion]), v)
	}
	if got, ok := getInt(av, AttrSeq); !ok || got != int64(seq) {
		return it, broke(RuleKey, "seq %s is not the key's %d", avText(av[AttrSeq]), seq)
	}
	if a, ok := getInt(av, AttrAttempts); ok {
		it.Attempts = int(a)
	}
	created := getS(av, AttrCreatedAt)
	t, terr := time.Parse(time.RFC3339Nano, created)
	if terr != nil {
		return it, broke(RuleEnvelope, "createdAt %q is not an RFC 3339 time", clip(created))
	}
	it.CreatedAt = t
	switch it.Status {
	case Pending, Sending:
		if err := checkIndex(av, it, created); err != nil {
			return it, err
		}
	case Delivered, Failed:
	default:
		return it, broke(RuleEnvelope, "status %q: want one of %s, %s, %s, %s", clip(string(it.Status)), Pending, Sending, Delivered, Failed)
	}
	if err := it.Validate(); err != nil {
		return it, err
	}
	return it, nil
}

// checkIndex checks the index attributes of an unsettled item: without
// them the sweeper never finds it (no redelivery after a lost record) and
// the order check never waits for it (a later version could overtake it).
func checkIndex(av map[string]types.AttributeValue, it Item, created string) error {
	var missing []string
	if _, ok := ShardNumber(getS(av, AttrShard)); !ok {
		missing = append(missing, fmt.Sprintf("%s (want %s0 to %s%d)", AttrShard, ShardPrefix, ShardPrefix, MaxShards-1))
	}
	if getS(av, AttrSince) != created+"#"+it.EventID {
		missing = append(missing, AttrSince+" (want createdAt#eventId)")
	}
	if getS(av, AttrPendingSK) != SortKey(it.Version, it.Seq) {
		missing = append(missing, AttrPendingSK+" (want the sort key)")
	}
	if len(missing) > 0 {
		return broke(RuleIndex, "a %s item needs %s", it.Status, strings.Join(missing, ", "))
	}
	return nil
}

func s(v string) types.AttributeValue { return &types.AttributeValueMemberS{Value: v} }
func n(v int64) types.AttributeValue {
	return &types.AttributeValueMemberN{Value: strconv.FormatInt(v, 10)}
}

func getS(av map[string]types.AttributeValue, k string) string {
	if v, ok := av[k].(*types.AttributeValueMemberS); ok {
		return v.Value
	}
	return ""
}

func getInt(av map[string]types.AttributeValue, k string) (int64, bool) {
	v, ok := av[k].(*types.AttributeValueMemberN)
	if !ok {
		return 0, false
	}
	i, err := strconv.ParseInt(v.Value, 10, 64)
	return i, err == nil
}

// avText shows an attribute value in an error.
func avText(av types.AttributeValue) string {
	switch x := av.(type) {
	case nil:
		return "(absent)"
	case *types.AttributeValueMemberN:
		return clip(x.Value)
	case *types.AttributeValueMemberS:
		return strconv.Quote(clip(x.Value))
	}
	return fmt.Sprintf("(%T)", av)
}

// clip shortens what an error repeats from an item.
func clip(v string) string {
	if len(v) > 80 {
		return v[:80] + "…"
	}
	return v
}

func hasControl(v string) bool {
	return strings.IndexFunc(v, unicode.IsControl) >= 0
}

// ItemSize is an item's size by DynamoDB's rules (attribute names plus
// values; a number about one byte per two digits), rounded up so that a
// check errs on the safe side.
func ItemSize(item map[string]types.AttributeValue) int {
	size := 0
	for k, v := range item {
		size += len(k) + avSize(v)
	}
	return size
}

func avSize(av types.AttributeValue) int {
	switch x := av.(type) {
	case *types.AttributeValueMemberS:
		return len(x.Value)
	case *types.AttributeValueMemberN:
		return (len(x.Value)+1)/2 + 1
	case *types.AttributeValueMemberB:
		return len(x.Value)
	case *types.AttributeValueMemberBOOL, *types.AttributeValueMemberNULL:
		return 1
	case *types.AttributeValueMemberM:
		size := 3
		for k, v := range x.Value {
			size += len(k) + avSize(v) + 1
		}
		return size
	case *types.AttributeValueMemberL:
		size := 3
		for _, v := range x.Value {
			size += avSize(v) + 1
		}
		return size
	}
	return 0
}
