package outbox

import (
	"fmt"
	"hash/fnv"
	"strconv"
	"strings"
)

// SchemaVersion is the version of the item layout this package writes, in
// every item's schemaVersion attribute. The relay parks an item whose
// schemaVersion it does not know instead of guessing what it means.
const SchemaVersion = 1

// Attribute names of an outbox item in Dispatcher's table. Together with the
// key layout ([PartitionKey], [SortKey]) and [Shard] they are the contract
// any writer follows (docs/outbox-contract.md).
const (
	AttrPK            = "pk"            // S: [PartitionKey]
	AttrSK            = "sk"            // S: [SortKey]
	AttrKind          = "kind"          // S: "outbox"
	AttrSchemaVersion = "schemaVersion" // N: [SchemaVersion]
	AttrAggregateID   = "aggregateId"   // S
	AttrAggregateType = "aggregateType" // S
	AttrVersion       = "version"       // N
	AttrSeq           = "seq"           // N: the position among one version's effects
	AttrEventID       = "eventId"       // S
	AttrEventType     = "eventType"     // S
	AttrTarget        = "target"        // S: "events" or "email"
	AttrPayload       = "payload"       // S: JSON, EventPayload or EmailPayload
	AttrStatus        = "status"        // S: PENDING when written
	AttrAttempts      = "attempts"      // N: 0 when written
	AttrCreatedAt     = "createdAt"     // S: RFC 3339 UTC
	AttrTraceparent   = "traceparent"   // S, optional: W3C trace context

	// The sweeper's sparse global index (undelivered): only while not
	// DELIVERED.
	AttrShard = "undeliveredShard" // S: [Shard]
	AttrSince = "undeliveredSince" // S: createdAt + "#" + eventId
	// The order check's sparse local index (aggregate-pending): only while
	// PENDING or SENDING.
	AttrPendingSK = "pendingSk" // S: the item's sort key
)

// KindOutbox is the kind attribute of an outbox item.
const KindOutbox = "outbox"

// Key prefixes.
const (
	prefixAggregate = "AGG#"
	prefixOutbox    = "OUTBOX#"
	// ShardPrefix starts the shard of a PENDING or SENDING item ("PENDING#3").
	ShardPrefix = "PENDING#"
)

// PartitionKey is the partition key of an aggregate's items: "AGG#" + id.
func PartitionKey(aggregateID string) string { return prefixAggregate + aggregateID }

// SortKey is the sort key of an outbox item: "OUTBOX#", the version in 20
// digits, "#", the position in 3 digits, so that one aggregate's items sort
// in version order ("OUTBOX#00000000000000000007#001").
func SortKey(version int64, seq int) string {
	return fmt.Sprintf("%s%020d#%03d", prefixOutbox, version, seq)
}

// IsOutboxSortKey reports whether sk is in the outbox items' range of sort
// keys (it starts with "OUTBOX#"), canonical or not.
func IsOutboxSortKey(sk string) bool { return strings.HasPrefix(sk, prefixOutbox) }

// ParseKey reads an outbox item's table key. Only the canonical form is
// accepted (SortKey of what it parses gives sk back): the relay addresses
// an item by the key it computes, so an item under any other key (a version
// without its zero padding, say) could never be claimed or marked.
func ParseKey(pk, sk string) (aggregateID string, version int64, seq int, err error) {
	id, ok := strings.CutPrefix(pk, prefixAggregate)
	if !ok || !ValidAggregateID(id) {
		return "", 0, 0, fmt.Errorf("partition key %q is not %q and an aggregate id", pk, prefixAggregate)
	}
	v, n, ok := parseSortKey(sk)
	if !ok {
		return id, 0, 0, fmt.Errorf("sort key %q is not canonical: want %s<version: 20 digits>#<position: 3 digits>, e.g. %s", sk, prefixOutbox, SortKey(1, 0))
	}
	return id, v, n, nil
}

func parseSortKey(sk string) (int64, int, bool) {
	rest, ok := strings.CutPrefix(sk, prefixOutbox)
	if !ok {
		return 0, 0, false
	}
	vs, ns, ok := strings.Cut(rest, "#")
	if !ok {
		return 0, 0, false
	}
	v, err1 := strconv.ParseInt(vs, 10, 64)
	n, err2 := strconv.Atoi(ns)
	if err1 != nil || err2 != nil || v < 1 || n < 0 || n > MaxSeq || SortKey(v, n) != sk {
		return 0, 0, false
	}
	return v, n, true
}

// Shard is the sweeper's shard of a PENDING or SENDING item: "PENDING#"
// and a number below shards, spread by a hash of the key (FNV-1a, 32 bits,
// of SortKey then the aggregate id). The sweeper reads all [MaxShards]
// shards, so any shards from 1 to MaxShards is found; more shards spread
// the index's writes over more partitions.
func Shard(aggregateID string, version int64, seq int, shards int) string {
	if shards < 1 || shards > MaxShards {
		shards = DefaultShards
	}
	h := fnv.New32a()
	h.Write([]byte(SortKey(version, seq)))
	h.Write([]byte(aggregateID))
	return ShardPrefix + strconv.Itoa(int(h.Sum32()%uint32(shards)))
}

// ShardNumber reads a shard ("PENDING#3"); ok is false unless it is one
// the contract allows (0 to MaxShards-1, no padding).
func ShardNumber(shard string) (n int, ok bool) {
	rest, found := strings.CutPrefix(shard, ShardPrefix)
	if !found {
		return 0, false
	}
	n, err := strconv.Atoi(rest)
	if err != nil || n < 0 || n >= MaxShards || strconv.Itoa(n) != rest {
		return 0, false
	}
	return n, true
}
