package dynamo

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/aws/aws-lambda-go/events"
	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb/types"

	"github.com/dispatcher-dev/dispatcher/internal/dispatch"
	"github.com/dispatcher-dev/dispatcher/internal/retry"
	"github.com/dispatcher-dev/dispatcher/outbox"
)

// Attributes of the delivery lease and outcome.
const (
	attrLeaseOwner  = "leaseOwner"
	attrLeaseUntil  = "leaseUntil" // N, epoch milliseconds
	attrDeliveredAt = "deliveredAt"
)

// maxBatchGet is DynamoDB's BatchGetItem limit.
const maxBatchGet = 100

// key returns the table key of an outbox item.
func key(k dispatch.OutboxKey) map[string]types.AttributeValue {
	return map[string]types.AttributeValue{attrPK: str(aggregatePK(k.AggregateID)), attrSK: str(itemSK(k))}
}

// StreamRecord decodes a DynamoDB Streams record (as Lambda delivers it) into
// an outbox item. ok is false for records that are not outbox INSERTs, which
// the relay ignores; err is set for an outbox INSERT that cannot be decoded
// or breaks the outbox contract, which the relay parks: outbox.RuleOf(err)
// names the rule broken. An item under the outbox's sort key range but not
// under its canonical key is such an item, never one to skip: the relay
// could not claim or mark it under the key it computes, and would count it
// delivered while it stayed PENDING. The attribute values are converted to
// the SDK's types once, here.
func StreamRecord(r events.DynamoDBEventRecord) (item dispatch.OutboxItem, ok bool, err error) {
	if r.EventName != string(events.DynamoDBOperationTypeInsert) {
		return item, false, nil
	}
	keys, err := streamAttributeValues(r.Change.Keys)
	if err != nil {
		return item, true, fmt.Errorf("keys: %w", err)
	}
	sk := getS(keys, attrSK)
	if !outbox.IsOutboxSortKey(sk) && !strings.HasPrefix(sk, prefixEvent) {
		return item, false, nil
	}
	img, err := streamAttributeValues(r.Change.NewImage)
	if err != nil {
		id, _ := strings.CutPrefix(getS(keys, attrPK), prefixAggregate)
		return dispatch.OutboxItem{AggregateID: id}, true, fmt.Errorf("new image: %w", err)
	}
	for k, v := range keys {
		img[k] = v // the key is the record's, whatever the image says
	}
	if outbox.IsOutboxSortKey(sk) {
		env, err := outbox.Decode(img)
		item = fromEnvelope(env)
		item.LastError = getS(img, attrLastError)
		return item, true, err
	}
	k, err := parseOutboxKey(getS(keys, attrPK), sk)
	if err != nil {
		return dispatch.OutboxItem{AggregateID: k.AggregateID, Version: k.Version, Seq: k.Seq, History: k.History}, true, err
	}
	item = decodeOutbox(img)
	item.AggregateID, item.Version, item.Seq, item.History = k.AggregateID, k.Version, k.Seq, k.History
	if err := item.Validate(); err != nil {
		return item, true, err
	}
	return item, true, nil
}

// fromEnvelope is the relay's item of a decoded outbox item.
func fromEnvelope(e outbox.Item) dispatch.OutboxItem {
	return dispatch.OutboxItem{
		AggregateID: e.AggregateID, AggregateType: e.AggregateType, Version: e.Version, Seq: e.Seq,
		EventID: e.EventID, EventType: e.EventType, Target: e.Target, Payload: e.Payload,
		Status: e.Status, Attempts: e.Attempts, CreatedAt: e.CreatedAt, Traceparent: e.Traceparent,
	}
}

// parseOutboxKey reads the key of an outbox item (canonical only:
// outbox.ParseKey) or of an event-sourced aggregate's EVENT item.
func parseOutboxKey(pk, sk string) (dispatch.OutboxKey, error) {
	var k dispatch.OutboxKey
	id, ok := strings.CutPrefix(pk, prefixAggregate)
	if !ok || !dispatch.ValidAggregateID(id) {
		return k, fmt.Errorf("partition key %q is not an aggregate key", pk)
	}
	k.AggregateID = id
	if rest, ok := strings.CutPrefix(sk, prefixEvent); ok {
		// An event-sourced aggregate's event: one per version, position 0.
		v, err := strconv.ParseInt(rest, 10, 64)
		if err != nil || v < 1 || EventSK(v) != sk {
			return k, fmt.Errorf("sort key %q is not an event key", sk)
		}
		k.Version, k.History = v, true
		return k, nil
	}
	_, v, n, err := outbox.ParseKey(pk, sk)
	if err != nil {
		return k, err
	}
	k.Version, k.Seq = v, n
	return k, nil
}

// Statuses reads the current state of outbox items with consistent
// BatchGetItem calls (100 keys each). Missing items are absent from the map.
func (s *Store) Statuses(ctx context.Context, keys []dispatch.OutboxKey) (map[dispatch.OutboxKey]dispatch.OutboxItem, error) {
	const op = "dynamo.Statuses"
	out := make(map[dispatch.OutboxKey]dispatch.OutboxItem, len(keys))
	seen := map[dispatch.OutboxKey]bool{}
	var uniq []dispatch.OutboxKey
	for _, k := range keys {
		if !seen[k] {
			seen[k] = true
			uniq = append(uniq, k)
		}
	}
	for start := 0; start < len(uniq); start += maxBatchGet {
		chunk := uniq[start:min(start+maxBatchGet, len(uniq))]
		req := make([]map[string]types.AttributeValue, len(chunk))
		for i, k := range chunk {
			req[i] = key(k)
		}
		pending := map[string]types.KeysAndAttributes{s.table: {Keys: req, ConsistentRead: aws.Bool(true)}}
		for attempt := 0; len(pending) > 0; attempt++ {
			res, err := s.db.BatchGetItem(ctx, &dynamodb.BatchGetItemInput{RequestItems: pending})
			if err != nil {
				return nil, Classify(op, err)
			}
			for _, it := range res.Responses[s.table] {
				o := decodeOutbox(it)
				k, err := parseOutboxKey(getS(it, attrPK), getS(it, attrSK))
				if err != nil {
					continue
				}
				o.AggregateID, o.Version, o.Seq, o.History = k.AggregateID, k.Version, k.Seq, k.History
				o.LeaseOwner = getS(it, attrLeaseOwner)
				o.LeaseUntil = time.UnixMilli(getN(it, attrLeaseUntil))
				out[k] = o
			}
			pending = res.UnprocessedKeys
			if len(pending) > 0 {
				if attempt >= 8 {
					return nil, dispatch.E(op, dispatch.Transient, "unprocessed keys after retries", nil)
				}
				if err := retry.Sleep(ctx, time.Duration(10<<attempt)*time.Millisecond); err != nil {
					return nil, dispatch.E(op, dispatch.Transient, "", err)
				}
			}
		}
	}
	return out, nil
}

// MarkDelivered records a delivery: status DELIVERED, attempts + 1, the TTL
// (a Number of epoch seconds; never on an event-sourced EVENT item, which is
// the aggregate's history and is kept), and both sparse indexes' keys and the lease
// removed.
// The condition keeps it from overwriting a delivery recorded by another
// worker; when leaseOwner is set (emails), only the lease holder may mark.
// A lost condition returns dispatch.ErrAlreadyDone.
func (s *Store) MarkDelivered(ctx context.Context, k dispatch.OutboxKey, leaseOwner string, now time.Time, keepFor time.Duration) error {
	const op = "dynamo.MarkDelivered"
	cond := "attribute_exists(pk) AND #st <> :delivered"
	vals := map[string]types.AttributeValue{
		":delivered": str(string(dispatch.Delivered)),
		":one":       num(1),
		":at":        str(now.UTC().Format(time.RFC3339Nano)),
		":zero":      num(0),
	}
	if leaseOwner != "" {
		cond += " AND #owner = :owner"
		vals[":owner"] = str(leaseOwner)
	}
	names := map[string]string{"#st": attrStatus, "#att": attrAttempts, "#at": attrDeliveredAt,
		"#shard": attrShard, "#since": attrSince, "#psk": attrPendingSK, "#owner": attrLeaseOwner, "#until": attrLeaseUntil, "#err": attrLastError}
	set := "SET #st = :delivered, #att = if_not_exists(#att, :zero) + :one, #at = :at"
	if !k.History {
		set += ", #exp = :exp"
		names["#exp"] = attrExpiresAt
		vals[":exp"] = num(now.Add(keepFor).Unix())
	}
	_, err := s.db.UpdateItem(ctx, &dynamodb.UpdateItemInput{
		TableName:                 aws.String(s.table),
		Key:                       key(k),
		UpdateExpression:          aws.String(set + " REMOVE #shard, #since, #psk, #owner, #until, #err"),
		ConditionExpression:       aws.String(cond),
		ExpressionAttributeNames:  names,
		ExpressionAttributeValues: vals,
	})
	return conditional(op, err)
}

// Claim takes the delivery lease of an email item: PENDING (or SENDING with
// an expired lease) becomes SENDING, owned by owner until until. Two
// concurrent attempts cannot both hold it, so an email is sent once.
// A lost condition returns dispatch.ErrAlreadyDone.
func (s *Store) Claim(ctx context.Context, k dispatch.OutboxKey, owner string, now, until time.Time) error {
	const op = "dynamo.Claim"
	_, err := s.db.UpdateItem(ctx, &dynamodb.UpdateItemInput{
		TableName:                aws.String(s.table),
		Key:                      key(k),
		UpdateExpression:         aws.String("SET #st = :sending, #owner = :owner, #until = :until"),
		ConditionExpression:      aws.String("attribute_exists(pk) AND (#st = :pending OR (#st = :sending AND #until < :now))"),
		ExpressionAttributeNames: map[string]string{"#st": attrStatus, "#owner": attrLeaseOwner, "#until": attrLeaseUntil},
		ExpressionAttributeValues: map[string]types.AttributeValue{
			":sending": str(string(dispatch.Sending)), ":pending": str(string(dispatch.Pending)),
			":owner": str(owner), ":until": num(until.UnixMilli()), ":now": num(now.UnixMilli()),
		},
	})
	return conditional(op, err)
}

// Release records a failed attempt that will be retried: attempts + 1, the
// last error, status back to PENDING and the lease dropped (when held by
// owner, or when no lease is involved).
func (s *Store) Release(ctx context.Context, k dispatch.OutboxKey, owner, lastError string) error {
	return s.recordAttempt(ctx, "dynamo.Release", k, attempt{status: dispatch.Pending, cond: "#st <> :failed", ownerCond: "#owner = :owner"}, owner, lastError)
}

// MarkFailed records a permanent failure: status FAILED, attempts + 1, the
// error. The item leaves the order check's index (a FAILED item no longer
// holds its aggregate back) and moves to the FAILED shard of the sweeper's
// index: the sweeper never reads it, and an on-demand replay still finds it
// after its DLQ message expired.
func (s *Store) MarkFailed(ctx context.Context, k dispatch.OutboxKey, owner, lastError string) error {
	return s.recordAttempt(ctx, "dynamo.MarkFailed", k, attempt{
		status: dispatch.Failed, ownerCond: "(#owner = :owner OR attribute_not_exists(#owner))",
		set: ", #shard = :shard", remove: ", #psk", shard: s.shardOf(shardFailed, k),
	}, owner, lastError)
}

// attempt is how recordAttempt changes an item beyond its status and
// attempt count.
type attempt struct {
	status    dispatch.Status
	cond      string // a further condition ("" for none)
	ownerCond string // the condition on the lease owner, when one is given
	set       string // further SET clauses (", #x = :y")
	remove    string // further REMOVE names (", #x")
	shard     string // :shard, when set uses it
}

// recordAttempt sets an undelivered item's status after a failed attempt,
// counting the attempt, keeping its error and dropping any lease.
func (s *Store) recordAttempt(ctx context.Context, op string, k dispatch.OutboxKey, a attempt, owner, lastError string) error {
	cond := "attribute_exists(pk) AND #st <> :delivered"
	vals := map[string]types.AttributeValue{
		":status": str(string(a.status)), ":delivered": str(string(dispatch.Delivered)),
		":one": num(1), ":zero": num(0), ":err": str(dispatch.Truncate(lastError, 1000)),
	}
	names := map[string]string{"#st": attrStatus, "#att": attrAttempts, "#err": attrLastError, "#owner": attrLeaseOwner, "#until": attrLeaseUntil}
	if a.cond != "" {
		cond += " AND " + a.cond
		vals[":failed"] = str(string(dispatch.Failed))
	}
	if owner != "" {
		cond += " AND " + a.ownerCond
		vals[":owner"] = str(owner)
	}
	if a.shard != "" {
		vals[":shard"] = str(a.shard)
		names["#shard"] = attrShard
	}
	if a.remove != "" {
		names["#psk"] = attrPendingSK
	}
	_, err := s.db.UpdateItem(ctx, &dynamodb.UpdateItemInput{
		TableName:                 aws.String(s.table),
		Key:                       key(k),
		UpdateExpression:          aws.String("SET #st = :status, #att = if_not_exists(#att, :zero) + :one, #err = :err" + a.set + " REMOVE #owner, #until" + a.remove),
		ConditionExpression:       aws.String(cond),
		ExpressionAttributeNames:  names,
		ExpressionAttributeValues: vals,
	})
	return conditional(op, err)
}

// Requeue puts a FAILED item back to PENDING for replay, keeping its
// attempt count: back in its PENDING shard and in the order check's index
// (its aggregate's later items wait for it again). A lost condition (it is
// not FAILED) returns ErrAlreadyDone.
func (s *Store) Requeue(ctx context.Context, k dispatch.OutboxKey) error {
	const op = "dynamo.Requeue"
	_, err := s.db.UpdateItem(ctx, &dynamodb.UpdateItemInput{
		TableName:                aws.String(s.table),
		Key:                      key(k),
		UpdateExpression:         aws.String("SET #st = :pending, #shard = :shard, #psk = :sk"),
		ConditionExpression:      aws.String("attribute_exists(pk) AND #st = :failed"),
		ExpressionAttributeNames: map[string]string{"#st": attrStatus, "#shard": attrShard, "#psk": attrPendingSK},
		ExpressionAttributeValues: map[string]types.AttributeValue{
			":pending": str(string(dispatch.Pending)), ":failed": str(string(dispatch.Failed)),
			":shard": str(s.shardOf(shardPending, k)), ":sk": str(OutboxSK(k.Version, k.Seq)),
		},
	})
	return conditional(op, err)
}

// Unsettled returns the keys of an aggregate's outbox items that are
// neither DELIVERED nor FAILED (PENDING or SENDING) and sort before below,
// in version order, from a consistent Query of the sparse local index: what
// an item of version below.Version must wait for. At most limit keys (the
// caller learns that there are more when it gets limit of them).
func (s *Store) Unsettled(ctx context.Context, below dispatch.OutboxKey, limit int) ([]dispatch.OutboxKey, error) {
	return s.queryKeys(ctx, "dynamo.Unsettled", &dynamodb.QueryInput{
		TableName:                aws.String(s.table),
		IndexName:                aws.String(PendingIndex),
		ConsistentRead:           aws.Bool(true),
		KeyConditionExpression:   aws.String("#pk = :pk AND #psk < :below"),
		ExpressionAttributeNames: map[string]string{"#pk": attrPK, "#psk": attrPendingSK},
		ExpressionAttributeValues: map[string]types.AttributeValue{
			":pk": str(aggregatePK(below.AggregateID)), ":below": str(OutboxSK(below.Version, below.Seq)),
		},
	}, limit)
}

// PendingIndex is the sparse local index of an aggregate's PENDING and
// SENDING outbox items (the template's LocalSecondaryIndexes).
const PendingIndex = "aggregate-pending"

// conditional maps a lost condition to dispatch.ErrAlreadyDone.
func conditional(op string, err error) error {
	if err == nil {
		return nil
	}
	var ccf *types.ConditionalCheckFailedException
	if errors.As(err, &ccf) {
		return dispatch.E(op, dispatch.Conflict, "", dispatch.ErrAlreadyDone)
	}
	return Classify(op, err)
}
