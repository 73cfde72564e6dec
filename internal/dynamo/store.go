// Package dynamo is the DynamoDB adapter: the only package that knows the
// table's attribute names and key layout (docs/delivery.md).
package dynamo

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"strconv"
	"strings"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb/types"
	"github.com/aws/smithy-go"

	"github.com/dispatcher-dev/dispatcher/internal/awserr"
	"github.com/dispatcher-dev/dispatcher/internal/dispatch"
	"github.com/dispatcher-dev/dispatcher/outbox"
)

// Attribute names and key prefixes. An outbox item's are the public
// contract's (package outbox); the rest are this table's own.
const (
	attrPK            = outbox.AttrPK
	attrSK            = outbox.AttrSK
	attrKind          = outbox.AttrKind
	attrAggregateID   = outbox.AttrAggregateID
	attrAggregateType = outbox.AttrAggregateType
	attrVersion       = "version"
	attrData          = "data"
	attrCreatedAt     = outbox.AttrCreatedAt
	attrUpdatedAt     = "updatedAt"
	attrEventID       = outbox.AttrEventID
	attrEventType     = outbox.AttrEventType
	attrTarget        = outbox.AttrTarget
	attrPayload       = outbox.AttrPayload
	attrPrivate       = "private" // an EVENT item's private data: never published
	attrStatus        = outbox.AttrStatus
	attrAttempts      = outbox.AttrAttempts
	attrLastError     = "lastError"
	attrTraceparent   = outbox.AttrTraceparent
	attrSeq           = outbox.AttrSeq
	attrShard         = outbox.AttrShard     // sparse index hash key, only while not DELIVERED
	attrSince         = outbox.AttrSince     // sparse index range key
	attrPendingSK     = outbox.AttrPendingSK // sparse LSI range key: the item's order key (OutboxSK), only while PENDING or SENDING
	attrExpiresAt     = "expiresAt"          // TTL: Number, epoch seconds
	attrRequestHash   = "requestHash"
	attrResponse      = "response"

	prefixAggregate = "AGG#"
	prefixOutbox    = "OUTBOX#"
	prefixIdemp     = "IDEMP#"
	prefixEvent     = "EVENT#"
	prefixSnapshot  = "SNAPSHOT#"
	skState         = "STATE"
	skIdemp         = "IDEMP"
	kindState       = "state"
	kindIdemp       = "idempotency"
	kindEvent       = "event"
	kindSnapshot    = "snapshot"
)

// Store reads and writes aggregates, outbox items and idempotency records.
type Store struct {
	db     *dynamodb.Client
	table  string
	shards int
	wave   int // shards a sweep queries at once (sweepWave; 1 in the benchmark's baseline)
}

// New returns a Store on one table; shards is the number of shards of the
// sparse index of undelivered items.
func New(db *dynamodb.Client, table string, shards int) *Store {
	if shards < 1 {
		shards = 1
	}
	return &Store{db: db, table: table, shards: shards, wave: sweepWave}
}

func aggregatePK(id string) string { return outbox.PartitionKey(id) }

// OutboxSK is the sort key of an outbox item (outbox.SortKey): zero-padded
// so that one aggregate's items sort in version order.
func OutboxSK(version int64, seq int) string { return outbox.SortKey(version, seq) }

// EventSK is the sort key of an event-sourced aggregate's event: one per
// version, so that two commands cannot both write the same version.
func EventSK(version int64) string { return fmt.Sprintf("%s%020d", prefixEvent, version) }

// SnapshotSK is the sort key of an event-sourced aggregate's snapshot.
func SnapshotSK(version int64) string { return fmt.Sprintf("%s%020d", prefixSnapshot, version) }

// itemSK is the sort key of an outbox key's item: an EVENT item for an
// event-sourced event, an OUTBOX item otherwise. The order key (pendingSk)
// is OutboxSK for both, so that one aggregate's EVENT and OUTBOX items sort
// by version together in the order check's index.
func itemSK(k dispatch.OutboxKey) string {
	if k.History {
		return EventSK(k.Version)
	}
	return OutboxSK(k.Version, k.Seq)
}

func idempPK(scope, key string) string { return prefixIdemp + scope + "#" + key }

// Prefixes of the sparse index's shard keys: PENDING and SENDING items are
// under shardPending, FAILED ones under shardFailed, so that the sweeper
// reads only what it may deliver however many items failed, and a FAILED
// item stays findable after its DLQ message expired.
const (
	shardPending = outbox.ShardPrefix
	shardFailed  = "FAILED#"
)

// shardOf spreads undelivered items over the index shards by key, as the
// outbox contract does (outbox.Shard): the same item always lands in the
// same shard number, PENDING or FAILED.
func (s *Store) shardOf(prefix string, k dispatch.OutboxKey) string {
	return prefix + strings.TrimPrefix(outbox.Shard(k.AggregateID, k.Version, k.Seq, s.shards), outbox.ShardPrefix)
}

func str(v string) types.AttributeValue { return &types.AttributeValueMemberS{Value: v} }
func num(v int64) types.AttributeValue {
	return &types.AttributeValueMemberN{Value: strconv.FormatInt(v, 10)}
}

// Load reads an aggregate with a consistent read; a missing one has Version 0.
func (s *Store) Load(ctx context.Context, id string) (dispatch.Aggregate, error) {
	const op = "dynamo.Load"
	out, err := s.db.GetItem(ctx, &dynamodb.GetItemInput{
		TableName:      aws.String(s.table),
		Key:            map[string]types.AttributeValue{attrPK: str(aggregatePK(id)), attrSK: str(skState)},
		ConsistentRead: aws.Bool(true),
	})
	if err != nil {
		return dispatch.Aggregate{}, Classify(op, err)
	}
	a := dispatch.Aggregate{ID: id, Data: map[string]any{}}
	if out.Item == nil {
		return a, nil
	}
	a.Type = getS(out.Item, attrAggregateType)
	a.Version = getN(out.Item, attrVersion)
	a.CreatedAt = getTime(out.Item, attrCreatedAt)
	a.UpdatedAt = getTime(out.Item, attrUpdatedAt)
	if m, ok := out.Item[attrData].(*types.AttributeValueMemberM); ok {
		if a.Data, err = fromAVMap(m.Value); err != nil {
			return dispatch.Aggregate{}, dispatch.E(op, dispatch.Internal, "", err)
		}
	}
	return a, nil
}

// Idempotency reads the record of a key (consistent), or nil.
func (s *Store) Idempotency(ctx context.Context, scope, key string) (*dispatch.Idempotency, error) {
	const op = "dynamo.Idempotency"
	out, err := s.db.GetItem(ctx, &dynamodb.GetItemInput{
		TableName:      aws.String(s.table),
		Key:            map[string]types.AttributeValue{attrPK: str(idempPK(scope, key)), attrSK: str(skIdemp)},
		ConsistentRead: aws.Bool(true),
	})
	if err != nil {
		return nil, Classify(op, err)
	}
	if out.Item == nil {
		return nil, nil
	}
	rec := &dispatch.Idempotency{
		Scope: scope, Key: key,
		RequestHash: getS(out.Item, attrRequestHash),
		CreatedAt:   getTime(out.Item, attrCreatedAt),
		ExpiresAt:   time.Unix(getN(out.Item, attrExpiresAt), 0).UTC(),
	}
	// DynamoDB deletes expired items lazily (and DynamoDB Local never):
	// an expired record is treated as absent.
	if !rec.ExpiresAt.IsZero() && time.Now().After(rec.ExpiresAt) {
		return nil, nil
	}
	if err := json.Unmarshal([]byte(getS(out.Item, attrResponse)), &rec.Response); err != nil {
		return nil, dispatch.E(op, dispatch.Internal, "", fmt.Errorf("decode saved response: %w", err))
	}
	return rec, nil
}

// Commit writes the new state, the outbox items and the idempotency record in
// one TransactWriteItems. The state write is conditional on the version read;
// the idempotency record on its key being new; each outbox item on its key
// being new. Limits are checked first, so an oversized command is refused
// with the limit's name instead of a ValidationException.
func (s *Store) Commit(ctx context.Context, c dispatch.Commit) (dispatch.CommitResult, error) {
	return s.CommitKeys(ctx, c, nil)
}

// CommitKeys is Commit that also records more keys of the same request (a
// signed request's webhook-id beside its Idempotency-Key) in the same
// transaction, each conditional on being new like the first: a key recorded
// already fails the commit with ErrKeyInUse. Their keys must differ from
// c.Idempotency's and from each other's.
func (s *Store) CommitKeys(ctx context.Context, c dispatch.Commit, more []dispatch.Idempotency) (dispatch.CommitResult, error) {
	const op = "dynamo.Commit"
	in, err := s.transactInput(c, more)
	if err != nil {
		return dispatch.CommitResult{}, err
	}
	out, err := s.db.TransactWriteItems(ctx, in)
	if err != nil {
		return dispatch.CommitResult{}, classifyCommit(op, err, 1+len(more))
	}
	var res dispatch.CommitResult
	for _, cc := range out.ConsumedCapacity {
		res.WriteUnits += aws.ToFloat64(cc.CapacityUnits)
	}
	return res, nil
}

// TransactInput builds the TransactWriteItems call of a commit, after
// checking DynamoDB's limits. Commit uses it; benchmarks compare against it.
func (s *Store) TransactInput(c dispatch.Commit) (*dynamodb.TransactWriteItemsInput, error) {
	return s.transactInput(c, nil)
}

func (s *Store) transactInput(c dispatch.Commit, more []dispatch.Idempotency) (*dynamodb.TransactWriteItemsInput, error) {
	items, err := s.transactItems(c, more)
	if err != nil {
		return nil, err
	}
	in := &dynamodb.TransactWriteItemsInput{
		TransactItems:          items,
		ReturnConsumedCapacity: types.ReturnConsumedCapacityTotal,
	}
	if c.Token != "" {
		in.ClientRequestToken = aws.String(c.Token)
	}
	return in, nil
}

// FloorWCU is the write capacity a transaction costs by DynamoDB's pricing
// rules: 2 units per KB (rounded up) of each item written transactionally,
// plus 1 unit per KB for each write to each sparse index (keys only: the
// sweeper's GSI and the order check's LSI). It is the design's floor, to set
// beside what an endpoint reports.
func FloorWCU(in *dynamodb.TransactWriteItemsInput) float64 {
	var wcu float64
	for _, ti := range in.TransactItems {
		if ti.Put == nil {
			continue
		}
		kb := (outbox.ItemSize(ti.Put.Item) + 1023) / 1024
		wcu += float64(2 * kb)
		if _, indexed := ti.Put.Item[attrShard]; indexed {
			wcu++
		}
		if _, indexed := ti.Put.Item[attrPendingSK]; indexed {
			wcu++
		}
	}
	return wcu
}

// transactItems lays the transaction out as classifyCommit reads its
// cancellation reasons: the state first, then the idempotency records, then
// the outbox items.
func (s *Store) transactItems(c dispatch.Commit, more []dispatch.Idempotency) ([]types.TransactWriteItem, error) {
	const op = "dynamo.Commit"
	// The state item (the EVENT item, counted among the outbox items, in
	// event-sourced mode), the keys, the outbox items, a snapshot.
	n := 2 + len(more) + len(c.Outbox)
	if c.Mode == dispatch.ModeEventSourced {
		n--
	}
	if c.Snapshot != nil {
		n++
	}
	if n > dispatch.MaxTransactActions {
		return nil, dispatch.E(op, dispatch.TooLarge, fmt.Sprintf("the command needs %d writes; a DynamoDB transaction takes at most %d", n, dispatch.MaxTransactActions), nil)
	}
	table := aws.String(s.table)
	st := c.State
	first, rest, err := s.versionPut(c)
	if err != nil {
		return nil, err
	}
	items := []types.TransactWriteItem{{Put: first}}
	all := []map[string]types.AttributeValue{first.Item}
	for _, ir := range append([]dispatch.Idempotency{c.Idempotency}, more...) {
		resp, err := json.Marshal(ir.Response)
		if err != nil {
			return nil, dispatch.E(op, dispatch.Internal, "", err)
		}
		idemp := map[string]types.AttributeValue{
			attrPK: str(idempPK(ir.Scope, ir.Key)), attrSK: str(skIdemp), attrKind: str(kindIdemp),
			attrRequestHash: str(ir.RequestHash), attrResponse: str(string(resp)),
			attrAggregateID: str(st.ID),
			attrCreatedAt:   str(ir.CreatedAt.UTC().Format(time.RFC3339Nano)),
			attrExpiresAt:   num(ir.ExpiresAt.Unix()),
		}
		all = append(all, idemp)
		items = append(items, types.TransactWriteItem{Put: &types.Put{
			TableName: table, Item: idemp,
			// An expired record may linger (TTL deletes lazily): it no longer counts.
			ConditionExpression:       aws.String("attribute_not_exists(pk) OR expiresAt < :now"),
			ExpressionAttributeValues: map[string]types.AttributeValue{":now": num(ir.CreatedAt.Unix())},
		}})
	}
	if c.Snapshot != nil {
		snap, err := stateItem(*c.Snapshot, SnapshotSK(c.Snapshot.Version), kindSnapshot)
		if err != nil {
			return nil, err
		}
		all = append(all, snap)
		items = append(items, types.TransactWriteItem{Put: &types.Put{
			TableName: table, Item: snap, ConditionExpression: aws.String("attribute_not_exists(pk)"),
		}})
	}
	for _, o := range rest {
		item, err := s.outboxItem(o)
		if err != nil {
			return nil, err
		}
		all = append(all, item)
		items = append(items, types.TransactWriteItem{Put: &types.Put{
			TableName: table, Item: item, ConditionExpression: aws.String("attribute_not_exists(pk)"),
		}})
	}
	total := 0
	for _, it := range all {
		n := outbox.ItemSize(it)
		if n > dispatch.MaxItemBytes {
			return nil, dispatch.E(op, dispatch.TooLarge, fmt.Sprintf("an item of %d bytes exceeds DynamoDB's item limit of 400 KB (%d bytes)", n, dispatch.MaxItemBytes), nil)
		}
		total += n
	}
	if total > dispatch.MaxTransactBytes {
		return nil, dispatch.E(op, dispatch.TooLarge, fmt.Sprintf("the command writes %d bytes; a DynamoDB transaction takes at most %d", total, dispatch.MaxTransactBytes), nil)
	}
	return items, nil
}

// versionPut is the transaction's first write, whose condition is the
// version check (classifyCommit reads it as item 0): the state item in
// outbox mode; in event-sourced mode the EVENT item, which must not exist
// yet. It returns the outbox items left to write.
func (s *Store) versionPut(c dispatch.Commit) (*types.Put, []dispatch.OutboxItem, error) {
	const op = "dynamo.Commit"
	table := aws.String(s.table)
	if c.Mode == dispatch.ModeEventSourced {
		var rest []dispatch.OutboxItem
		var event *dispatch.OutboxItem
		for i := range c.Outbox {
			if c.Outbox[i].History && event == nil {
				event = &c.Outbox[i]
				continue
			}
			rest = append(rest, c.Outbox[i])
		}
		if event == nil || event.Version != c.PrevVersion+1 {
			return nil, nil, dispatch.E(op, dispatch.Internal, "", errors.New("an event-sourced commit needs its version's event"))
		}
		item, err := s.outboxItem(*event)
		if err != nil {
			return nil, nil, err
		}
		return &types.Put{TableName: table, Item: item, ConditionExpression: aws.String("attribute_not_exists(pk)")}, rest, nil
	}
	state, err := stateItem(c.State, skState, kindState)
	if err != nil {
		return nil, nil, err
	}
	put := &types.Put{TableName: table, Item: state}
	if c.PrevVersion == 0 {
		put.ConditionExpression = aws.String("attribute_not_exists(pk)")
	} else {
		put.ConditionExpression = aws.String("version = :v")
		put.ExpressionAttributeValues = map[string]types.AttributeValue{":v": num(c.PrevVersion)}
	}
	return put, c.Outbox, nil
}

// stateItem is an aggregate's state as stored: the STATE item, or a
// SNAPSHOT item of an event-sourced aggregate.
func stateItem(st dispatch.Aggregate, sk, kind string) (map[string]types.AttributeValue, error) {
	data, err := toAV(st.Data)
	if err != nil {
		return nil, dispatch.E("dynamo.Commit", dispatch.Invalid, "the state cannot be stored", err)
	}
	return map[string]types.AttributeValue{
		attrPK: str(aggregatePK(st.ID)), attrSK: str(sk), attrKind: str(kind),
		attrAggregateID: str(st.ID), attrAggregateType: str(st.Type),
		attrVersion: num(st.Version), attrData: data,
		attrCreatedAt: str(st.CreatedAt.UTC().Format(time.RFC3339Nano)),
		attrUpdatedAt: str(st.UpdatedAt.UTC().Format(time.RFC3339Nano)),
	}, nil
}

func (s *Store) outboxItem(o dispatch.OutboxItem) (map[string]types.AttributeValue, error) {
	const op = "dynamo.Commit"
	item, err := outbox.Encode(o.Envelope(), s.shards)
	if err != nil {
		// The command's own checks come first; what still breaks the
		// contract (a rendered email with neither body, say) is the
		// caller's data, refused before anything is written: the relay
		// would park it.
		var broke *outbox.Error
		switch {
		case errors.As(err, &broke) && broke.Rule == outbox.RuleLimit:
			return nil, dispatch.E(op, dispatch.TooLarge, broke.Detail, nil)
		case errors.As(err, &broke):
			return nil, dispatch.E(op, dispatch.Unprocessable, "refused: "+broke.Detail, err)
		}
		return nil, dispatch.E(op, dispatch.Internal, "", err)
	}
	if o.History {
		// An event-sourced aggregate's event is an outbox item kept as its
		// history, under its version's EVENT key; its order key stays
		// OUTBOX#<version>#000, so that it sorts with the outbox items.
		item[attrSK] = str(EventSK(o.Version))
		item[attrKind] = str(kindEvent)
	}
	if len(o.Private) > 0 {
		item[attrPrivate] = str(string(o.Private))
	}
	return item, nil
}

// FirstUnsettled returns the key of an aggregate's first outbox item that
// is neither DELIVERED nor FAILED: what every later version waits for.
func (s *Store) FirstUnsettled(ctx context.Context, aggregateID string) (dispatch.OutboxKey, bool, error) {
	keys, err := s.Unsettled(ctx, dispatch.OutboxKey{AggregateID: aggregateID, Version: math.MaxInt64}, 1)
	if err != nil || len(keys) == 0 {
		return dispatch.OutboxKey{}, false, err
	}
	return keys[0], true, nil
}

// ListOutbox returns an aggregate's outbox items in version order, a page
// at a time; cursor is opaque ("" for the first page).
func (s *Store) ListOutbox(ctx context.Context, aggregateID string, limit int, cursor string) ([]dispatch.OutboxItem, string, error) {
	raw, next, err := s.page(ctx, "dynamo.ListOutbox", aggregateID, prefixOutbox, limit, cursor)
	if err != nil {
		return nil, "", err
	}
	items := make([]dispatch.OutboxItem, 0, len(raw))
	for _, it := range raw {
		o := decodeOutbox(it)
		if o.Status == dispatch.Sending {
			o.LeaseUntil = time.UnixMilli(getN(it, attrLeaseUntil)).UTC()
		}
		items = append(items, o)
	}
	return items, next, nil
}

// maxCursorLen is the length of the longest cursor a page returns: the
// base64url of the longest sort key a page lists, an outbox item's.
var maxCursorLen = base64.RawURLEncoding.EncodedLen(len(OutboxSK(math.MaxInt64, 999)))

// cursorSK reads a page cursor: the base64url of the last sort key read,
// which must be a key this package writes under prefix (OutboxSK or
// EventSK). Anything else is refused before DynamoDB is called: a forged
// key may be longer than DynamoDB's 1,024 bytes for a sort key or not be
// UTF-8, which DynamoDB answers with an error, not a page.
func cursorSK(prefix, cursor string) (string, error) {
	bad := dispatch.InvalidField("cursor", "is not a cursor this API returned")
	if len(cursor) > maxCursorLen {
		return "", bad
	}
	b, err := base64.RawURLEncoding.DecodeString(cursor)
	if err != nil {
		return "", bad
	}
	sk := string(b)
	rest, ok := strings.CutPrefix(sk, prefix)
	if !ok {
		return "", bad
	}
	digits, seqText, hasSeq := strings.Cut(rest, "#")
	v, err := strconv.ParseInt(digits, 10, 64)
	if err != nil {
		return "", bad
	}
	// Written again, the key must be the cursor's: no sign, no other padding.
	switch seq, serr := strconv.Atoi(seqText); {
	case prefix == prefixOutbox && hasSeq && serr == nil && OutboxSK(v, seq) == sk:
	case prefix == prefixEvent && !hasSeq && EventSK(v) == sk:
	default:
		return "", bad
	}
	return sk, nil
}

// page reads one page of an aggregate's items whose sort key starts with
// prefix, in key order, with a consistent Query. The cursor is the last
// sort key read, base64url-encoded: opaque to the caller, and refused
// unless it is such a key (cursorSK).
func (s *Store) page(ctx context.Context, op, aggregateID, prefix string, limit int, cursor string) ([]map[string]types.AttributeValue, string, error) {
	in := &dynamodb.QueryInput{
		TableName:              aws.String(s.table),
		KeyConditionExpression: aws.String("pk = :pk AND begins_with(sk, :prefix)"),
		ExpressionAttributeValues: map[string]types.AttributeValue{
			":pk": str(aggregatePK(aggregateID)), ":prefix": str(prefix),
		},
		ConsistentRead: aws.Bool(true),
		Limit:          aws.Int32(int32(limit)),
	}
	if cursor != "" {
		sk, err := cursorSK(prefix, cursor)
		if err != nil {
			return nil, "", err
		}
		in.ExclusiveStartKey = map[string]types.AttributeValue{attrPK: str(aggregatePK(aggregateID)), attrSK: str(sk)}
	}
	out, err := s.db.Query(ctx, in)
	if err != nil {
		return nil, "", Classify(op, err)
	}
	next := ""
	if lek := out.LastEvaluatedKey; lek != nil {
		next = base64.RawURLEncoding.EncodeToString([]byte(getS(lek, attrSK)))
	}
	return out.Items, next, nil
}

func decodeOutbox(it map[string]types.AttributeValue) dispatch.OutboxItem {
	return dispatch.OutboxItem{
		AggregateID:   getS(it, attrAggregateID),
		AggregateType: getS(it, attrAggregateType),
		Version:       getN(it, attrVersion),
		Seq:           int(getN(it, attrSeq)),
		EventID:       getS(it, attrEventID),
		EventType:     getS(it, attrEventType),
		Target:        dispatch.Target(getS(it, attrTarget)),
		Payload:       json.RawMessage(getS(it, attrPayload)),
		Status:        dispatch.Status(getS(it, attrStatus)),
		Attempts:      int(getN(it, attrAttempts)),
		LastError:     getS(it, attrLastError),
		CreatedAt:     getTime(it, attrCreatedAt),
		Traceparent:   getS(it, attrTraceparent),
		Private:       privateOf(it),
		SchemaVersion: schemaVersionOf(it),
	}
}

// schemaVersionOf is an item's schemaVersion (dispatch.OutboxItem.SchemaVersion).
func schemaVersionOf(it map[string]types.AttributeValue) int {
	v, ok := it[outbox.AttrSchemaVersion]
	if !ok {
		return 0
	}
	n, isN := v.(*types.AttributeValueMemberN)
	if !isN {
		return -1
	}
	x, err := strconv.Atoi(n.Value)
	if err != nil {
		return -1
	}
	return x
}

// privateOf is an item's private data, nil when it has none.
func privateOf(it map[string]types.AttributeValue) json.RawMessage {
	if s := getS(it, attrPrivate); s != "" {
		return json.RawMessage(s)
	}
	return nil
}

func getS(it map[string]types.AttributeValue, k string) string {
	if v, ok := it[k].(*types.AttributeValueMemberS); ok {
		return v.Value
	}
	return ""
}

func getN(it map[string]types.AttributeValue, k string) int64 {
	if v, ok := it[k].(*types.AttributeValueMemberN); ok {
		n, _ := strconv.ParseInt(v.Value, 10, 64)
		return n
	}
	return 0
}

func getTime(it map[string]types.AttributeValue, k string) time.Time {
	t, _ := time.Parse(time.RFC3339Nano, getS(it, k))
	return t
}

// classifyCommit turns a transaction's failure into the domain's terms; the
// transaction's items 1 to keys are idempotency records.
func classifyCommit(op string, err error, keys int) error {
	var tce *types.TransactionCanceledException
	if errors.As(err, &tce) {
		reasons := tce.CancellationReasons
		code := func(i int) string {
			if i < len(reasons) {
				return aws.ToString(reasons[i].Code)
			}
			return ""
		}
		if code(0) == "ConditionalCheckFailed" {
			return dispatch.E(op, dispatch.Conflict, "", dispatch.ErrVersionConflict)
		}
		for i := 1; i <= keys; i++ {
			if code(i) == "ConditionalCheckFailed" {
				return dispatch.E(op, dispatch.Conflict, "", dispatch.ErrKeyInUse)
			}
		}
		for _, r := range reasons {
			switch aws.ToString(r.Code) {
			case "TransactionConflict", "ThrottlingError", "ProvisionedThroughputExceeded", "RequestLimitExceeded":
				return dispatch.E(op, dispatch.Transient, "", err)
			case "ConditionalCheckFailed":
				// An outbox key already exists: another writer took this version.
				return dispatch.E(op, dispatch.Conflict, "", dispatch.ErrVersionConflict)
			}
		}
		return dispatch.E(op, dispatch.Internal, "", err)
	}
	var ae smithy.APIError
	if errors.As(err, &ae) {
		switch ae.ErrorCode() {
		case "IdempotentParameterMismatchException", "TransactionInProgressException":
			// Another request derived the same ClientRequestToken: the same
			// idempotency key, concurrently. Its record decides the answer.
			return dispatch.E(op, dispatch.Conflict, "", fmt.Errorf("%w (%s)", dispatch.ErrKeyInUse, ae.ErrorCode()))
		}
	}
	return Classify(op, err)
}

// Classify sorts DynamoDB SDK errors into kinds (internal/ratelimit, on a
// table of its own, sorts its errors here too). The SDK's retryer has
// already retried throttling and 5xx by the time an error gets here. Past DynamoDB's own
// codes, what every AWS service may say (InternalFailure, an HTTP 5xx with
// no readable code, a timeout) is Transient as well: the same request can
// succeed later, and a command retried with its ClientRequestToken cannot
// apply twice.
func Classify(op string, err error) error {
	if errors.Is(err, context.DeadlineExceeded) || errors.Is(err, context.Canceled) {
		return dispatch.E(op, dispatch.Transient, "", err)
	}
	var ae smithy.APIError
	if errors.As(err, &ae) {
		switch ae.ErrorCode() {
		case "ThrottlingException", "ProvisionedThroughputExceededException", "RequestLimitExceeded",
			"InternalServerError", "ServiceUnavailable":
			return dispatch.E(op, dispatch.Transient, "", err)
		}
	}
	if e := awserr.Classify(op, err); e.Kind == dispatch.Transient {
		return e
	}
	return dispatch.E(op, dispatch.Internal, "", err)
}
