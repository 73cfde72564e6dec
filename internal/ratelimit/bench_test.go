package ratelimit_test

import (
	"context"
	"slices"
	"strconv"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb/types"

	"github.com/dispatcher-dev/dispatcher/internal/dispatch"
	"github.com/dispatcher-dev/dispatcher/internal/ratelimit"
)

// BenchmarkTake is a granted Take against two baselines measured in the
// same iterations, each first in turn, on the same table: the conditional
// UpdateItem a granted Take makes, built by hand (the floor: one write
// round trip, which a bucket shared by every instance cannot go below),
// and a consistent GetItem (the cheapest round trip). It reports each p50 in
// ms, Take's p50 over each baseline's, and the DynamoDB calls per Take
// (the cost the package doc states: 1).
//
//	go test -run '^$' -bench Take -benchtime 300x ./internal/ratelimit/
func BenchmarkTake(b *testing.B) {
	f := newFixture(b)
	l := ratelimit.New(f.db, f.table) // on the real clock
	ctx := context.Background()
	k := key(b)
	rate := dispatch.Rate{PerSecond: dispatch.MaxRatePerSecond, Burst: dispatch.MaxRateBurst}
	table := aws.String(f.table)
	pk := map[string]types.AttributeValue{"pk": &types.AttributeValueMemberS{Value: k + "-bare"}}
	// The write a granted Take makes, built by hand: the same expressions,
	// condition and return values, on a bucket of its own that it keeps full.
	update := func() error {
		now := float64(time.Now().UnixMicro()) / 1000
		_, err := f.db.UpdateItem(ctx, &dynamodb.UpdateItemInput{TableName: table, Key: pk,
			UpdateExpression:         aws.String("SET #tat = :next, #exp = :exp"),
			ConditionExpression:      aws.String("attribute_not_exists(#tat) OR #tat < :now"),
			ExpressionAttributeNames: map[string]string{"#tat": "tat", "#exp": "expiresAt"},
			ExpressionAttributeValues: map[string]types.AttributeValue{
				":next": &types.AttributeValueMemberN{Value: strconv.FormatFloat(now+0.1, 'f', 3, 64)},
				":now":  &types.AttributeValueMemberN{Value: strconv.FormatFloat(now, 'f', 3, 64)},
				":exp":  &types.AttributeValueMemberN{Value: strconv.FormatInt(int64(now/1000)+2, 10)},
			},
			ReturnValues:                        types.ReturnValueUpdatedNew,
			ReturnValuesOnConditionCheckFailure: types.ReturnValuesOnConditionCheckFailureAllOld,
		})
		return err
	}
	get := &dynamodb.GetItemInput{TableName: table, Key: pk, ConsistentRead: aws.Bool(true)}
	var takes, updates, gets []time.Duration
	timed := func(into *[]time.Duration, call func() error) {
		start := time.Now()
		if err := call(); err != nil {
			b.Fatal(err)
		}
		*into = append(*into, time.Since(start))
	}
	// The first Take of a key, and the connections, before the clock starts.
	if _, _, err := l.Take(ctx, k, rate); err != nil {
		b.Fatal(err)
	}
	f.calls.take()
	var granted int
	calls := []func(){
		func() {
			timed(&takes, func() error {
				ok, _, err := l.Take(ctx, k, rate)
				if ok {
					granted++
				}
				return err
			})
		},
		func() { timed(&updates, update) },
		func() { timed(&gets, func() error { _, err := f.db.GetItem(ctx, get); return err }) },
	}
	i := 0
	for b.Loop() {
		// In turn, each first as often, so that drift hits all three alike.
		for j := range calls {
			calls[(i+j)%len(calls)]()
		}
		i++
	}
	if granted != len(takes) {
		b.Fatalf("%d of %d Takes granted at %v: the benchmark measures granted Takes", granted, len(takes), rate)
	}
	n := f.calls.take()
	take, upd, rd := p50(takes), p50(updates), p50(gets)
	b.ReportMetric(ms(take), "take-p50-ms")
	b.ReportMetric(ms(upd), "update-p50-ms")
	b.ReportMetric(ms(rd), "get-p50-ms")
	b.ReportMetric(float64(take)/float64(upd), "p50-ratio")
	b.ReportMetric(float64(take)/float64(rd), "p50-ratio-vs-get")
	b.ReportMetric(float64(n["UpdateItem"]-len(updates)+n["GetItem"]-len(gets))/float64(len(takes)), "calls/take")
	b.ReportMetric(0, "ns/op")
}

func p50(d []time.Duration) time.Duration {
	s := slices.Clone(d)
	slices.Sort(s)
	return s[len(s)/2]
}

func ms(d time.Duration) float64 { return float64(d) / float64(time.Millisecond) }
