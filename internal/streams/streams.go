// Package streams reads DynamoDB Streams through the Streams API and turns
// its records into the shape Lambda delivers (events.DynamoDBEventRecord).
// Tests, the DLQ replay (which re-reads a failed batch's sequence range) and
// the local runner's event source mapping use it.
package streams

import (
	"context"
	"errors"
	"fmt"
	"math/big"
	"time"

	"github.com/aws/aws-lambda-go/events"
	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/dynamodbstreams"
	"github.com/aws/aws-sdk-go-v2/service/dynamodbstreams/types"
)

// Reader reads one stream.
type Reader struct {
	api    *dynamodbstreams.Client
	arn    string
	region string
}

// NewReader returns a Reader of the stream arn.
func NewReader(api *dynamodbstreams.Client, arn, region string) *Reader {
	return &Reader{api: api, arn: arn, region: region}
}

// Shards lists the stream's shards (all pages).
func (r *Reader) Shards(ctx context.Context) ([]types.Shard, error) {
	var shards []types.Shard
	var start *string
	for {
		out, err := r.api.DescribeStream(ctx, &dynamodbstreams.DescribeStreamInput{StreamArn: aws.String(r.arn), ExclusiveStartShardId: start})
		if err != nil {
			return nil, err
		}
		shards = append(shards, out.StreamDescription.Shards...)
		start = out.StreamDescription.LastEvaluatedShardId
		if start == nil {
			return shards, nil
		}
	}
}

// ErrTrimmed means the sequence range is no longer in the stream (older than
// its 24-hour retention).
var ErrTrimmed = errors.New("the stream no longer holds these records")

// Range reads one shard's records from start to end (sequence numbers,
// inclusive), as Lambda would have delivered them.
func (r *Reader) Range(ctx context.Context, shardID, start, end string) ([]events.DynamoDBEventRecord, error) {
	it, err := r.api.GetShardIterator(ctx, &dynamodbstreams.GetShardIteratorInput{
		StreamArn: aws.String(r.arn), ShardId: aws.String(shardID),
		ShardIteratorType: types.ShardIteratorTypeAtSequenceNumber, SequenceNumber: aws.String(start),
	})
	if err != nil {
		var tr *types.TrimmedDataAccessException
		var nf *types.ResourceNotFoundException
		if errors.As(err, &tr) || errors.As(err, &nf) {
			return nil, fmt.Errorf("%w: %v", ErrTrimmed, err)
		}
		return nil, err
	}
	last, ok := new(big.Int).SetString(end, 10)
	if !ok {
		return nil, fmt.Errorf("end sequence number %q is not a number", end)
	}
	var out []events.DynamoDBEventRecord
	iter := it.ShardIterator
	for empty := 0; iter != nil && empty < 3; {
		page, err := r.api.GetRecords(ctx, &dynamodbstreams.GetRecordsInput{ShardIterator: iter})
		if err != nil {
			return nil, err
		}
		if len(page.Records) == 0 {
			empty++
		}
		for _, rec := range page.Records {
			seq, _ := new(big.Int).SetString(aws.ToString(rec.Dynamodb.SequenceNumber), 10)
			if seq != nil && seq.Cmp(last) > 0 {
				return out, nil
			}
			out = append(out, r.Record(rec))
		}
		iter = page.NextShardIterator
	}
	return out, nil
}

// Poll reads the records of a shard after an iterator; it returns the
// records and the next iterator (nil when the shard is closed and drained).
func (r *Reader) Poll(ctx context.Context, iterator string, limit int32) ([]events.DynamoDBEventRecord, *string, error) {
	in := &dynamodbstreams.GetRecordsInput{ShardIterator: aws.String(iterator)}
	if limit > 0 {
		in.Limit = aws.Int32(limit)
	}
	page, err := r.api.GetRecords(ctx, in)
	if err != nil {
		return nil, nil, err
	}
	out := make([]events.DynamoDBEventRecord, len(page.Records))
	for i, rec := range page.Records {
		out[i] = r.Record(rec)
	}
	return out, page.NextShardIterator, nil
}

// Iterator returns a shard iterator of the given type (sequence may be empty
// for TRIM_HORIZON and LATEST).
func (r *Reader) Iterator(ctx context.Context, shardID string, typ types.ShardIteratorType, sequence string) (string, error) {
	in := &dynamodbstreams.GetShardIteratorInput{StreamArn: aws.String(r.arn), ShardId: aws.String(shardID), ShardIteratorType: typ}
	if sequence != "" {
		in.SequenceNumber = aws.String(sequence)
	}
	out, err := r.api.GetShardIterator(ctx, in)
	if err != nil {
		return "", err
	}
	return aws.ToString(out.ShardIterator), nil
}

// Record converts one Streams API record to the Lambda event shape.
func (r *Reader) Record(rec types.Record) events.DynamoDBEventRecord {
	d := rec.Dynamodb
	out := events.DynamoDBEventRecord{
		AWSRegion:      aws.ToString(rec.AwsRegion),
		EventID:        aws.ToString(rec.EventID),
		EventName:      string(rec.EventName),
		EventSource:    "aws:dynamodb",
		EventVersion:   aws.ToString(rec.EventVersion),
		EventSourceArn: r.arn,
	}
	if out.AWSRegion == "" {
		out.AWSRegion = r.region
	}
	if d != nil {
		out.Change = events.DynamoDBStreamRecord{
			Keys:           image(d.Keys),
			NewImage:       image(d.NewImage),
			OldImage:       image(d.OldImage),
			SequenceNumber: aws.ToString(d.SequenceNumber),
			SizeBytes:      aws.ToInt64(d.SizeBytes),
			StreamViewType: string(d.StreamViewType),
		}
		if d.ApproximateCreationDateTime != nil {
			out.Change.ApproximateCreationDateTime = events.SecondsEpochTime{Time: d.ApproximateCreationDateTime.Truncate(time.Second)}
		}
	}
	return out
}

func image(m map[string]types.AttributeValue) map[string]events.DynamoDBAttributeValue {
	if m == nil {
		return nil
	}
	out := make(map[string]events.DynamoDBAttributeValue, len(m))
	for k, v := range m {
		out[k] = value(v)
	}
	return out
}

func value(v types.AttributeValue) events.DynamoDBAttributeValue {
	switch x := v.(type) {
	case *types.AttributeValueMemberS:
		return events.NewStringAttribute(x.Value)
	case *types.AttributeValueMemberN:
		return events.NewNumberAttribute(x.Value)
	case *types.AttributeValueMemberBOOL:
		return events.NewBooleanAttribute(x.Value)
	case *types.AttributeValueMemberNULL:
		return events.NewNullAttribute()
	case *types.AttributeValueMemberB:
		return events.NewBinaryAttribute(x.Value)
	case *types.AttributeValueMemberSS:
		return events.NewStringSetAttribute(x.Value)
	case *types.AttributeValueMemberNS:
		return events.NewNumberSetAttribute(x.Value)
	case *types.AttributeValueMemberBS:
		return events.NewBinarySetAttribute(x.Value)
	case *types.AttributeValueMemberM:
		return events.NewMapAttribute(image(x.Value))
	case *types.AttributeValueMemberL:
		l := make([]events.DynamoDBAttributeValue, len(x.Value))
		for i, e := range x.Value {
			l[i] = value(e)
		}
		return events.NewListAttribute(l)
	}
	return events.NewNullAttribute()
}
