package dynamo

import (
	"context"
	"strings"
	"sync"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb/types"

	"github.com/dispatcher-dev/dispatcher/internal/dispatch"
	"github.com/dispatcher-dev/dispatcher/outbox"
)

// UndeliveredIndex is the sparse index of outbox items not yet delivered.
const UndeliveredIndex = "undelivered"

// Undelivered queries every PENDING shard the contract allows
// (outbox.MaxShards of them, whatever this store's own shard setting, which
// only spreads its own writes: another writer may have used any of them) for
// outbox items (PENDING or SENDING) that have been undelivered since before
// olderThan, oldest first per shard, up to limit keys in all. FAILED items
// are in other shards, so however many there are, they never crowd out what
// the sweeper must deliver. The index holds keys only; Statuses reads the
// items. That is one Query per shard (more where a shard pages), each
// billed at least one 4 KB eventually consistent read (docs/cost.md).
func (s *Store) Undelivered(ctx context.Context, olderThan time.Time, limit int) ([]dispatch.OutboxKey, error) {
	return s.indexed(ctx, "dynamo.Undelivered", shardPending, olderThan, limit)
}

// FailedItems queries every FAILED shard the contract allows for outbox
// items marked FAILED before olderThan (by creation time), up to limit keys:
// how an on-demand replay finds a FAILED item whose DLQ message is gone.
func (s *Store) FailedItems(ctx context.Context, olderThan time.Time, limit int) ([]dispatch.OutboxKey, error) {
	return s.indexed(ctx, "dynamo.FailedItems", shardFailed, olderThan, limit)
}

func (s *Store) indexed(ctx context.Context, op, prefix string, olderThan time.Time, limit int) ([]dispatch.OutboxKey, error) {
	var out []dispatch.OutboxKey
	bound := olderThan.UTC().Format(time.RFC3339Nano)
	for from := 0; from < outbox.MaxShards && len(out) < limit; from += s.wave {
		left := limit - len(out)
		keys, err := wave(from, min(s.wave, outbox.MaxShards-from), func(shard int) ([]dispatch.OutboxKey, error) {
			return s.queryKeys(ctx, op, &dynamodb.QueryInput{
				TableName:                aws.String(s.table),
				IndexName:                aws.String(UndeliveredIndex),
				KeyConditionExpression:   aws.String("#shard = :shard AND #since < :bound"),
				ExpressionAttributeNames: map[string]string{"#shard": attrShard, "#since": attrSince},
				ExpressionAttributeValues: map[string]types.AttributeValue{
					":shard": str(prefix + itoa(shard)), ":bound": str(bound),
				},
			}, left)
		})
		if err != nil {
			return nil, err
		}
		for _, k := range keys {
			out = append(out, k...)
		}
	}
	return out[:min(len(out), limit)], nil
}

// sweepWave is how many shards a sweep queries at once: one after the other,
// the 64 shards the contract allows are 64 round trips per pass, three passes
// per scheduled sweep (BenchmarkSweepShards compares). A wave may read up to
// sweepWave times what is left under the limit; the next wave runs only while
// the limit is not reached.
const sweepWave = 8

// wave calls query for n shards from from on, concurrently, and returns
// their results in shard order, or the first error in shard order.
func wave[T any](from, n int, query func(shard int) (T, error)) ([]T, error) {
	res := make([]T, n)
	errs := make([]error, n)
	var wg sync.WaitGroup
	for i := range n {
		wg.Go(func() { res[i], errs[i] = query(from + i) })
	}
	wg.Wait()
	for _, err := range errs {
		if err != nil {
			return nil, err
		}
	}
	return res, nil
}

// queryKeys pages through a Query of outbox keys, up to limit of them.
func (s *Store) queryKeys(ctx context.Context, op string, in *dynamodb.QueryInput, limit int) ([]dispatch.OutboxKey, error) {
	var out []dispatch.OutboxKey
	for len(out) < limit {
		in.Limit = aws.Int32(int32(min(limit-len(out), 1000)))
		res, err := s.db.Query(ctx, in)
		if err != nil {
			return nil, Classify(op, err)
		}
		for _, it := range res.Items {
			if k, err := parseOutboxKey(getS(it, attrPK), getS(it, attrSK)); err == nil {
				out = append(out, k)
			}
		}
		if res.LastEvaluatedKey == nil {
			break
		}
		in.ExclusiveStartKey = res.LastEvaluatedKey
	}
	return out, nil
}

func itoa(n int) string {
	if n == 0 {
		return "0"
	}
	var b [20]byte
	i := len(b)
	for n > 0 {
		i--
		b[i] = byte('0' + n%10)
		n /= 10
	}
	return string(b[i:])
}

// OldestUndelivered returns when the oldest outbox item still PENDING or
// SENDING was written; ok is false when there is none. One single-item
// Query per shard the contract allows (outbox.MaxShards), as Undelivered.
func (s *Store) OldestUndelivered(ctx context.Context) (oldest time.Time, ok bool, err error) {
	return s.oldest(ctx, "dynamo.OldestUndelivered", shardPending)
}

// OldestFailed returns when the oldest FAILED outbox item was written: a
// FAILED item stays visible by this after its DLQ message expired.
func (s *Store) OldestFailed(ctx context.Context) (oldest time.Time, ok bool, err error) {
	return s.oldest(ctx, "dynamo.OldestFailed", shardFailed)
}

func (s *Store) oldest(ctx context.Context, op, prefix string) (oldest time.Time, ok bool, err error) {
	for from := 0; from < outbox.MaxShards; from += s.wave {
		firsts, err := wave(from, min(s.wave, outbox.MaxShards-from), func(shard int) ([]map[string]types.AttributeValue, error) {
			res, err := s.db.Query(ctx, &dynamodb.QueryInput{
				TableName:                 aws.String(s.table),
				IndexName:                 aws.String(UndeliveredIndex),
				KeyConditionExpression:    aws.String("#shard = :shard"),
				ExpressionAttributeNames:  map[string]string{"#shard": attrShard},
				ExpressionAttributeValues: map[string]types.AttributeValue{":shard": str(prefix + itoa(shard))},
				ScanIndexForward:          aws.Bool(true),
				Limit:                     aws.Int32(1),
			})
			if err != nil {
				return nil, Classify(op, err)
			}
			return res.Items, nil
		})
		if err != nil {
			return time.Time{}, false, err
		}
		for _, items := range firsts {
			for _, it := range items {
				since, _, _ := strings.Cut(getS(it, attrSince), "#")
				t, perr := time.Parse(time.RFC3339Nano, since)
				if perr == nil && (!ok || t.Before(oldest)) {
					oldest, ok = t, true
				}
			}
		}
	}
	return oldest, ok, nil
}
