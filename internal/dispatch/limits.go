package dispatch

import "github.com/dispatcher-dev/dispatcher/outbox"

// Named limits. Each is enforced before anything is written and each has a
// test; docs/api.md lists them.
const (
	// MaxBodyBytes bounds a command request body (413 beyond it).
	MaxBodyBytes = 256 << 10
	// MaxEventsPerCommand and MaxEmailsPerCommand bound the effects of one command.
	MaxEventsPerCommand = 10
	MaxEmailsPerCommand = 5
	// MaxRecipientsPerEmail bounds the To list of one email (the outbox
	// contract's limit).
	MaxRecipientsPerEmail = outbox.MaxRecipients
	// MaxAggregateIDLen bounds an aggregate id; its charset is [A-Za-z0-9_-]
	// (the outbox contract's limit).
	MaxAggregateIDLen = outbox.MaxAggregateIDLen
	// MaxIdempotencyKeyLen bounds an idempotency key, in bytes, whichever
	// header carries it: the Idempotency-Key, or the webhook-id of a signed
	// request (the webhook package refuses a longer webhook-id, and records
	// the webhook-id as a key of its own).
	MaxIdempotencyKeyLen = 256
	// MaxTypeLen bounds command and event type names (the outbox
	// contract's limit on event and aggregate types).
	MaxTypeLen = outbox.MaxTypeLen
	// MaxAmountMinor bounds an amount in minor units, so balances stay exact
	// in any JSON consumer (2^53).
	MaxAmountMinor = 1_000_000_000_000_000
	// DynamoDB's own limits, checked before the call so that the error names them.
	MaxTransactActions = 100
	MaxTransactBytes   = 4 << 20
	MaxItemBytes       = outbox.MaxItemBytes

	// MaxJSONDepth bounds the nesting of a whole request body, checked by a
	// byte scan before any decoding or path building: the deepest valid
	// command (event data at MaxValueDepth inside envelope, data, events and
	// the event) nests 35 levels.
	MaxJSONDepth = 64
	// MaxValueDepth bounds the objects and arrays nested in a caller's free
	// JSON (state, event data, email data), the outermost object counting as
	// one. DynamoDB allows 32 levels per item, the item itself being the
	// first; the state is stored as one attribute of the item, so it may
	// nest 31 deep (DynamoDB Local refuses a 32nd map).
	MaxValueDepth = 31
	// MaxNumberDigits and the exponent range are DynamoDB's for a Number:
	// 38 significant digits, magnitudes from 1E-130 to
	// 9.9999999999999999999999999999999999999E+125, and zero.
	MaxNumberDigits   = 38
	MinNumberExponent = -130
	MaxNumberExponent = 125
	// MaxMapKeyBytes is DynamoDB's limit on an attribute name, which a map
	// key is: at least 1 byte and less than 64 KB.
	MaxMapKeyBytes = 65535
)
