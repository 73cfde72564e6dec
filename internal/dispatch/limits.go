package dispatch

// Named limits. Each is enforced before anything is written and each has a
// test; the README lists them.
const (
	// MaxBodyBytes bounds a command request body (413 beyond it).
	MaxBodyBytes = 256 << 10
	// MaxEventsPerCommand and MaxEmailsPerCommand bound the effects of one command.
	MaxEventsPerCommand = 10
	MaxEmailsPerCommand = 5
	// MaxRecipientsPerEmail bounds the To list of one email (SES allows 50 in all).
	MaxRecipientsPerEmail = 10
	// MaxAggregateIDLen bounds an aggregate id; its charset is [A-Za-z0-9_-].
	MaxAggregateIDLen = 64
	// MaxIdempotencyKeyLen bounds the Idempotency-Key header (or webhook-id).
	MaxIdempotencyKeyLen = 255
	// MaxTypeLen bounds command and event type names.
	MaxTypeLen = 128
	// MaxAmountMinor bounds an amount in minor units, so balances stay exact
	// in any JSON consumer (2^53).
	MaxAmountMinor = 1_000_000_000_000_000
	// DynamoDB's own limits, checked before the call so that the error names them.
	MaxTransactActions = 100
	MaxTransactBytes   = 4 << 20
	MaxItemBytes       = 400 << 10
)
