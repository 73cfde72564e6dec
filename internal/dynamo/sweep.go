package dynamo

import (
	"context"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb/types"

	"github.com/dispatcher-dev/dispatcher/internal/dispatch"
)

// UndeliveredIndex is the sparse index of outbox items not yet delivered.
const UndeliveredIndex = "undelivered"

// Undelivered queries every shard of the sparse index for outbox items that
// have been undelivered since before olderThan, oldest first per shard, up to
// limit keys in all. The index holds keys only; Statuses reads the items.
func (s *Store) Undelivered(ctx context.Context, olderThan time.Time, limit int) ([]dispatch.OutboxKey, error) {
	const op = "dynamo.Undelivered"
	var out []dispatch.OutboxKey
	bound := olderThan.UTC().Format(time.RFC3339Nano)
	for shard := 0; shard < s.shards && len(out) < limit; shard++ {
		var start map[string]types.AttributeValue
		for len(out) < limit {
			res, err := s.db.Query(ctx, &dynamodb.QueryInput{
				TableName:                aws.String(s.table),
				IndexName:                aws.String(UndeliveredIndex),
				KeyConditionExpression:   aws.String("#shard = :shard AND #since < :bound"),
				ExpressionAttributeNames: map[string]string{"#shard": attrShard, "#since": attrSince},
				ExpressionAttributeValues: map[string]types.AttributeValue{
					":shard": str("PENDING#" + itoa(shard)), ":bound": str(bound),
				},
				Limit:             aws.Int32(int32(min(limit-len(out), 1000))),
				ExclusiveStartKey: start,
			})
			if err != nil {
				return nil, classify(op, err)
			}
			for _, it := range res.Items {
				if k, err := parseOutboxKey(getS(it, attrPK), getS(it, attrSK)); err == nil {
					out = append(out, k)
				}
			}
			if res.LastEvaluatedKey == nil {
				break
			}
			start = res.LastEvaluatedKey
		}
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
