// Package ratelimit is the callers' rate limit: a token bucket per key that
// every instance of the command function shares, kept in a DynamoDB table of
// its own (RateLimitTable) as GCRA, the generic cell rate algorithm.
//
// A bucket is one item holding one number, tat: the theoretical arrival
// time, in milliseconds since the epoch, of the request after the last one
// granted. With T = 1000/PerSecond ms between tokens, a request at now is
// granted when max(tat, now) is at most now + (Burst-1)·T, and tat becomes
// max(tat, now) + T; a refused request waits until tat - (Burst-1)·T.
//
// Cost per request: one conditional UpdateItem in the steady state, granted
// or refused, 1 WCU (the item stays under 1 KB: keys over MaxKeyBytes are
// stored by their SHA-256; a failed condition is billed as a write too, and
// ReturnValuesOnConditionCheckFailure reads the old value back at no cost).
// There are two UpdateItems, whose condition each holds for one state of
// the bucket (a bucket already drawn on, or a full or absent one); a
// Limiter starts with the one that the last value it saw of that key
// suggests. A guess that was wrong (another instance drew on a bucket this
// one saw full, or a drawn bucket filled up) costs the other UpdateItem: 2
// calls, 2 WCU. A backend that does not return the old item on a failed
// condition costs a consistent GetItem (1 RCU) more; AWS does return it.
// No request is ever granted on a value read earlier: every grant is a
// condition DynamoDB checked on the item as it was. Each instance reads its
// own clock: a skew between two (milliseconds, on Lambda's synchronized
// clocks) moves a token's time by that much, and never grants it twice.
//
// Buckets expire with DynamoDB's TTL (expiresAt) once they are full again:
// an absent item is a full bucket, so an idle key costs no storage.
package ratelimit

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"math"
	"strconv"
	"sync"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb/types"

	"github.com/dispatcher-dev/dispatcher/internal/dispatch"
	"github.com/dispatcher-dev/dispatcher/internal/dynamo"
)

// DB is the DynamoDB calls the limiter makes; *dynamodb.Client is one.
type DB interface {
	UpdateItem(ctx context.Context, in *dynamodb.UpdateItemInput, opts ...func(*dynamodb.Options)) (*dynamodb.UpdateItemOutput, error)
	GetItem(ctx context.Context, in *dynamodb.GetItemInput, opts ...func(*dynamodb.Options)) (*dynamodb.GetItemOutput, error)
}

const (
	// MaxKeyBytes is the longest key stored as it is; a longer one is stored
	// as "sha256:" and its hash, so that a bucket's item stays under 1 KB
	// (1 WCU a write) whatever the key.
	MaxKeyBytes = 256

	// maxSeen bounds the keys a Limiter remembers a value of (the map is
	// emptied when full: a forgotten key costs at most one more call).
	maxSeen = 4096
	// maxAttempts bounds the UpdateItems of one Take. Each failed condition
	// returns the bucket as it was, which decides the next attempt; tat only
	// grows, so a second failure means a refusal unless another instance
	// created or refilled the bucket in between.
	maxAttempts = 4
)

// The item's attributes.
const (
	attrKey     = "pk"
	attrTAT     = "tat"       // the theoretical arrival time, ms since the epoch
	attrExpires = "expiresAt" // TTL, seconds since the epoch: once the bucket is full again
)

// Limiter takes tokens from the buckets of one table. It is safe for
// concurrent use.
type Limiter struct {
	db    DB
	table string
	// Now is the clock; nil: time.Now. Tests set it.
	Now func() time.Time

	mu   sync.Mutex
	seen map[string]float64 // key → the last tat seen, ms
}

// New returns a Limiter on the table (RATE_LIMIT_TABLE).
func New(db DB, table string) *Limiter {
	return &Limiter{db: db, table: table, seen: map[string]float64{}}
}

// Take takes a token from key's bucket, which refills at rate.PerSecond and
// holds at most rate.Burst. It reports whether the request may go on and,
// if not, how long until a token is there. A rate outside dispatch.Rate's
// bounds is an Invalid error; a DynamoDB failure is an error of the kind
// dynamo.Classify gives it (the caller decides whether to let the request
// through).
func (l *Limiter) Take(ctx context.Context, key string, rate dispatch.Rate) (ok bool, retryAfter time.Duration, err error) {
	const op = "ratelimit.Take"
	if err := rate.Check(); err != nil {
		return false, 0, err
	}
	if key == "" {
		return false, 0, dispatch.E(op, dispatch.Invalid, "an empty key", nil)
	}
	b := bucket{
		now: ms(l.clock()),
		t:   interval(rate.PerSecond),
	}
	b.limit = b.now + float64(rate.Burst-1)*b.t
	// The latest tat this call can leave, in whole seconds after it.
	b.expires = int64(math.Ceil((b.limit+b.t)/1000)) + 1

	pk := storedKey(key)
	last, known := l.last(pk)
	drawn := known && last >= b.now
	for range maxAttempts {
		out, err := l.db.UpdateItem(ctx, l.update(pk, b, drawn))
		if err == nil {
			if tat, ok := number(out.Attributes[attrTAT]); ok {
				l.remember(pk, tat)
			}
			return true, 0, nil
		}
		var failed *types.ConditionalCheckFailedException
		if !errors.As(err, &failed) {
			return false, 0, dynamo.Classify(op, err)
		}
		tat, found := number(failed.Item[attrTAT])
		if !found && !drawn {
			// The full-bucket write failed, so the item is there with
			// tat ≥ now, but this backend did not send it back: read it.
			if tat, found, err = l.read(ctx, pk); err != nil {
				return false, 0, err
			}
		}
		if found {
			l.remember(pk, tat)
		}
		switch {
		case !found || tat < b.now:
			drawn = false
		case tat <= b.limit:
			drawn = true
		case tat <= b.limit+b.t:
			return false, duration(tat - b.limit), nil
		default:
			// Drawn under a stricter rate than this one (the caller's rate
			// was raised): under this rate the bucket is empty, and no more
			// than that. Lowered for the next request, if no other
			// instance changed it meanwhile.
			ceiling := b.limit + b.t
			if err := l.lower(ctx, pk, tat, ceiling, b.expires); err != nil {
				return false, 0, err
			}
			l.remember(pk, ceiling)
			return false, duration(b.t), nil
		}
	}
	return false, 0, dispatch.E(op, dispatch.Transient, "the bucket changed under every attempt", nil)
}

// bucket is one Take's figures, in ms.
type bucket struct {
	now, t, limit float64
	expires       int64 // s
}

// update is the UpdateItem for a bucket already drawn on (tat in [now,
// limit]: add T) or for a full or absent one (tat < now: now + T).
func (l *Limiter) update(pk string, b bucket, drawn bool) *dynamodb.UpdateItemInput {
	in := &dynamodb.UpdateItemInput{
		TableName:                           aws.String(l.table),
		Key:                                 map[string]types.AttributeValue{attrKey: &types.AttributeValueMemberS{Value: pk}},
		ExpressionAttributeNames:            map[string]string{"#tat": attrTAT, "#exp": attrExpires},
		ReturnValues:                        types.ReturnValueUpdatedNew,
		ReturnValuesOnConditionCheckFailure: types.ReturnValuesOnConditionCheckFailureAllOld,
	}
	if drawn {
		in.UpdateExpression = aws.String("SET #tat = #tat + :t, #exp = :exp")
		in.ConditionExpression = aws.String("#tat BETWEEN :now AND :limit")
		in.ExpressionAttributeValues = values(map[string]string{":t": format(b.t), ":now": format(b.now), ":limit": format(b.limit), ":exp": strconv.FormatInt(b.expires, 10)})
	} else {
		in.UpdateExpression = aws.String("SET #tat = :next, #exp = :exp")
		in.ConditionExpression = aws.String("attribute_not_exists(#tat) OR #tat < :now")
		in.ExpressionAttributeValues = values(map[string]string{":next": format(b.now + b.t), ":now": format(b.now), ":exp": strconv.FormatInt(b.expires, 10)})
	}
	return in
}

// lower sets a bucket's tat from old to ceiling, unless another instance
// changed it first (then that instance's value stands).
func (l *Limiter) lower(ctx context.Context, pk string, old, ceiling float64, expires int64) error {
	_, err := l.db.UpdateItem(ctx, &dynamodb.UpdateItemInput{
		TableName:                 aws.String(l.table),
		Key:                       map[string]types.AttributeValue{attrKey: &types.AttributeValueMemberS{Value: pk}},
		UpdateExpression:          aws.String("SET #tat = :ceiling, #exp = :exp"),
		ConditionExpression:       aws.String("#tat = :old"),
		ExpressionAttributeNames:  map[string]string{"#tat": attrTAT, "#exp": attrExpires},
		ExpressionAttributeValues: values(map[string]string{":ceiling": format(ceiling), ":old": format(old), ":exp": strconv.FormatInt(expires, 10)}),
	})
	var failed *types.ConditionalCheckFailedException
	if err != nil && !errors.As(err, &failed) {
		return dynamo.Classify("ratelimit.lower", err)
	}
	return nil
}

// read is the fallback of a backend that returns no old item on a failed
// condition: a consistent read, so that it sees the write that failed it.
func (l *Limiter) read(ctx context.Context, pk string) (float64, bool, error) {
	out, err := l.db.GetItem(ctx, &dynamodb.GetItemInput{
		TableName:                aws.String(l.table),
		Key:                      map[string]types.AttributeValue{attrKey: &types.AttributeValueMemberS{Value: pk}},
		ConsistentRead:           aws.Bool(true),
		ProjectionExpression:     aws.String("#tat"),
		ExpressionAttributeNames: map[string]string{"#tat": attrTAT},
	})
	if err != nil {
		return 0, false, dynamo.Classify("ratelimit.read", err)
	}
	tat, ok := number(out.Item[attrTAT])
	return tat, ok, nil
}

func (l *Limiter) clock() time.Time {
	if l.Now != nil {
		return l.Now()
	}
	return time.Now()
}

func (l *Limiter) last(pk string) (float64, bool) {
	l.mu.Lock()
	defer l.mu.Unlock()
	v, ok := l.seen[pk]
	return v, ok
}

func (l *Limiter) remember(pk string, tat float64) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if _, ok := l.seen[pk]; !ok && len(l.seen) >= maxSeen {
		clear(l.seen)
	}
	l.seen[pk] = tat
}

// storedKey is the item's key: the key itself, or the hash of a long one.
func storedKey(key string) string {
	if len(key) <= MaxKeyBytes {
		return key
	}
	sum := sha256.Sum256([]byte(key))
	return "sha256:" + hex.EncodeToString(sum[:])
}

// interval is T, the ms between two tokens, to the microsecond (the
// precision every figure of the bucket is kept at).
func interval(perSecond float64) float64 { return math.Round(1e6/perSecond) / 1000 }

func ms(t time.Time) float64 { return float64(t.UnixMicro()) / 1000 }

func duration(ms float64) time.Duration { return time.Duration(math.Round(ms*1000)) * time.Microsecond }

func format(ms float64) string { return strconv.FormatFloat(ms, 'f', 3, 64) }

func values(m map[string]string) map[string]types.AttributeValue {
	out := make(map[string]types.AttributeValue, len(m))
	for k, v := range m {
		out[k] = &types.AttributeValueMemberN{Value: v}
	}
	return out
}

func number(v types.AttributeValue) (float64, bool) {
	n, ok := v.(*types.AttributeValueMemberN)
	if !ok {
		return 0, false
	}
	f, err := strconv.ParseFloat(n.Value, 64)
	return f, err == nil
}
