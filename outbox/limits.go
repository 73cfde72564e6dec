package outbox

// Limits of an outbox item. The relay parks an item beyond them; Items
// refuses it first.
const (
	// MaxAggregateIDLen bounds an aggregate id; its charset is
	// [A-Za-z0-9_-], starting with a letter or digit.
	MaxAggregateIDLen = 64
	// MaxTypeLen bounds an aggregate type and an event type
	// ([A-Za-z][A-Za-z0-9._-]*).
	MaxTypeLen = 128
	// MaxTemplateLen bounds a template name ([a-z0-9-]); an email's event
	// type is "email." and its template.
	MaxTemplateLen = 64
	// MaxEventIDLen bounds an event id.
	MaxEventIDLen = 64
	// MaxRecipients bounds the To list of one email (SES allows 50 in all).
	MaxRecipients = 10
	// MaxSubjectBytes is RFC 5322's line limit.
	MaxSubjectBytes = 998
	// MaxAddressLen bounds an address (RFC 5321's path limit, less <>).
	MaxAddressLen = 254
	// MaxLocalPartLen is RFC 5321's limit on the part of an address before @.
	MaxLocalPartLen = 64
	// MaxSeq is the largest position among one version's effects (the sort
	// key holds it in 3 digits).
	MaxSeq = 999
	// MaxEffects bounds the effects of one Items call: a DynamoDB
	// transaction takes 100 actions, and yours writes at least one more.
	MaxEffects = 99
	// MaxItemBytes is DynamoDB's item limit (400 KB), by its size rules
	// (ItemSize).
	MaxItemBytes = 400 << 10
	// MaxShards is the number of the sweeper's shards: Writer.Shards may
	// be 1 to MaxShards.
	MaxShards = 64
	// DefaultShards is the shards a Writer with Shards 0 spreads over.
	DefaultShards = 8
)
