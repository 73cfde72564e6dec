package ratelimit_test

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb/types"

	"github.com/dispatcher-dev/dispatcher/internal/dispatch"
	"github.com/dispatcher-dev/dispatcher/internal/ratelimit"
	"github.com/dispatcher-dev/dispatcher/internal/testkit/testenv"
)

func TestMain(m *testing.M) { testenv.Main(m) }

// calls counts the DynamoDB requests that go over the wire, by operation
// (the X-Amz-Target header): the cost of a Take as DynamoDB bills it.
type calls struct {
	base aws.HTTPClient
	mu   sync.Mutex
	n    map[string]int
}

func (c *calls) Do(r *http.Request) (*http.Response, error) {
	op := r.Header.Get("X-Amz-Target")
	op = op[strings.LastIndex(op, ".")+1:]
	c.mu.Lock()
	c.n[op]++
	c.mu.Unlock()
	return c.base.Do(r)
}

// take returns the counts since the last take, and zeroes them.
func (c *calls) take() map[string]int {
	c.mu.Lock()
	defer c.mu.Unlock()
	n := c.n
	c.n = map[string]int{}
	return n
}

// clock is a settable time, shared by the Limiters of a test.
type clock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *clock) Now() time.Time { c.mu.Lock(); defer c.mu.Unlock(); return c.t }

func (c *clock) Add(d time.Duration) { c.mu.Lock(); c.t = c.t.Add(d); c.mu.Unlock() }

type fixture struct {
	db    *dynamodb.Client
	table string
	calls *calls
	clock *clock
}

func newFixture(t testing.TB) *fixture {
	env := testenv.Get(t)
	cfg := env.AWS.Copy()
	base := cfg.HTTPClient
	if base == nil {
		base = http.DefaultClient
	}
	c := &calls{base: base, n: map[string]int{}}
	cfg.HTTPClient = c
	return &fixture{
		db: dynamodb.NewFromConfig(cfg), table: env.Stack.Physical("RateLimitTable"), calls: c,
		// Whole milliseconds, so that every figure below is exact.
		clock: &clock{t: time.Now().Truncate(time.Second)},
	}
}

// limiter is one instance of the command function's limiter.
func (f *fixture) limiter() *ratelimit.Limiter {
	l := ratelimit.New(f.db, f.table)
	l.Now = f.clock.Now
	return l
}

// key is a key no other test (or run) uses.
func key(t testing.TB) string {
	return fmt.Sprintf("%s-%d", t.Name(), time.Now().UnixNano())
}

func take(t testing.TB, l *ratelimit.Limiter, k string, r dispatch.Rate) (bool, time.Duration) {
	t.Helper()
	ok, wait, err := l.Take(context.Background(), k, r)
	if err != nil {
		t.Fatal(err)
	}
	return ok, wait
}

func TestABurstPassesAndTheNextWaitsOneInterval(t *testing.T) {
	f := newFixture(t)
	l := f.limiter()
	k := key(t)
	r := dispatch.Rate{PerSecond: 4, Burst: 5}
	for i := range r.Burst {
		if ok, _ := take(t, l, k, r); !ok {
			t.Fatalf("request %d of a burst of %d refused", i+1, r.Burst)
		}
	}
	ok, wait := take(t, l, k, r)
	if ok {
		t.Fatalf("request %d granted: the burst is %d", r.Burst+1, r.Burst)
	}
	if wait != 250*time.Millisecond {
		t.Errorf("retryAfter %v, want 1/rate = 250ms", wait)
	}
}

func TestTokensComeBackAtTheRateAndNoMoreThanTheBurst(t *testing.T) {
	f := newFixture(t)
	l := f.limiter()
	k := key(t)
	r := dispatch.Rate{PerSecond: 2, Burst: 3}
	for range r.Burst {
		take(t, l, k, r)
	}
	if ok, wait := take(t, l, k, r); ok || wait != 500*time.Millisecond {
		t.Fatalf("after the burst: ok=%v retryAfter=%v, want refused for 500ms", ok, wait)
	}
	f.clock.Add(499 * time.Millisecond)
	if ok, wait := take(t, l, k, r); ok || wait != time.Millisecond {
		t.Fatalf("1 ms before the token: ok=%v retryAfter=%v, want refused for 1ms", ok, wait)
	}
	f.clock.Add(time.Millisecond)
	if ok, _ := take(t, l, k, r); !ok {
		t.Fatal("refused when retryAfter said a token would be there")
	}
	if ok, _ := take(t, l, k, r); ok {
		t.Fatal("a second request granted on one token")
	}
	// Idle for far longer than the bucket takes to fill: Burst, not more.
	f.clock.Add(time.Hour)
	granted := 0
	for range r.Burst + 2 {
		if ok, _ := take(t, l, k, r); ok {
			granted++
		}
	}
	if granted != r.Burst {
		t.Errorf("after an hour idle, %d granted, want the burst of %d", granted, r.Burst)
	}
}

// A caller whose rate is raised waits no longer than the new rate says: a
// bucket drained at one request a minute is, at 50 a second, empty for one
// interval (20 ms), not for the minutes the old rate left.
func TestARaisedRateDoesNotWaitOutTheOldOne(t *testing.T) {
	f := newFixture(t)
	l := f.limiter()
	k := key(t)
	slow, fast := dispatch.Rate{PerSecond: 1.0 / 60, Burst: 2}, dispatch.Rate{PerSecond: 50, Burst: 100}
	for range slow.Burst {
		take(t, l, k, slow)
	}
	if ok, wait := take(t, l, k, slow); ok || wait != time.Minute {
		t.Fatalf("past the slow burst: ok=%v retryAfter=%v, want refused for 1m", ok, wait)
	}
	if ok, wait := take(t, l, k, fast); ok || wait != 20*time.Millisecond {
		t.Fatalf("at the raised rate: ok=%v retryAfter=%v, want refused for one interval, 20ms", ok, wait)
	}
	// Another instance, which never saw the bucket, agrees.
	if ok, wait := take(t, f.limiter(), k, fast); ok || wait != 20*time.Millisecond {
		t.Fatalf("another instance at the raised rate: ok=%v retryAfter=%v, want 20ms", ok, wait)
	}
	f.clock.Add(20 * time.Millisecond)
	if ok, _ := take(t, l, k, fast); !ok {
		t.Fatal("refused after the raised rate's interval")
	}
}

func TestTwoInstancesShareOneBucket(t *testing.T) {
	f := newFixture(t)
	a, b := f.limiter(), f.limiter()
	k := key(t)
	r := dispatch.Rate{PerSecond: 1, Burst: 4}
	for i, l := range []*ratelimit.Limiter{a, b, a, b} {
		if ok, _ := take(t, l, k, r); !ok {
			t.Fatalf("request %d refused", i+1)
		}
	}
	for name, l := range map[string]*ratelimit.Limiter{"a": a, "b": b} {
		if ok, wait := take(t, l, k, r); ok || wait != time.Second {
			t.Errorf("instance %s after the shared burst: ok=%v retryAfter=%v, want refused for 1s", name, ok, wait)
		}
	}
}

func TestKeysAreIndependent(t *testing.T) {
	f := newFixture(t)
	l := f.limiter()
	a, b := key(t)+"-a", key(t)+"-b"
	// Two keys longer than MaxKeyBytes, alike up to their last byte: each
	// has its own bucket under its hash.
	long := strings.Repeat("x", ratelimit.MaxKeyBytes)
	la, lb := long+a, long+b
	r := dispatch.Rate{PerSecond: 1, Burst: 2}
	for _, k := range []string{a, la} {
		for range r.Burst {
			take(t, l, k, r)
		}
		if ok, _ := take(t, l, k, r); ok {
			t.Fatalf("key %.20q...: granted past its burst", k)
		}
	}
	for _, k := range []string{b, lb} {
		if ok, _ := take(t, l, k, r); !ok {
			t.Errorf("key %.20q... refused: another key's bucket is empty, not its own", k)
		}
	}
}

func TestConcurrentTakesNeverGrantMoreThanTheBucketHolds(t *testing.T) {
	f := newFixture(t)
	k := key(t)
	r := dispatch.Rate{PerSecond: 1, Burst: 10}
	const instances, goroutines, each = 3, 12, 4 // 48 requests for 10 tokens
	ls := make([]*ratelimit.Limiter, instances)
	for i := range ls {
		ls[i] = f.limiter()
	}
	var granted atomic.Int64
	var wg sync.WaitGroup
	errs := make(chan error, goroutines*each)
	for g := range goroutines {
		wg.Go(func() {
			for range each {
				ok, _, err := ls[g%instances].Take(context.Background(), k, r)
				if err != nil {
					errs <- err
					return
				}
				if ok {
					granted.Add(1)
				}
			}
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
	if n := granted.Load(); n != int64(r.Burst) {
		t.Errorf("%d of %d concurrent requests granted at one instant, want exactly the burst of %d", n, goroutines*each, r.Burst)
	}
}

// The cost stated in the package doc and docs/callers.md: one UpdateItem
// per request, granted or refused, once the instance has seen the bucket;
// two when its guess is wrong; no GetItem where the backend returns the old
// item on a failed condition; and an item under 1 KB, so 1 WCU a write.
func TestEachRequestCostsOneUpdateItemInTheSteadyState(t *testing.T) {
	f := newFixture(t)
	a, b := f.limiter(), f.limiter()
	k := key(t)
	r := dispatch.Rate{PerSecond: 10, Burst: 3}
	want := func(what string, n map[string]int, updates int) {
		t.Helper()
		if n["UpdateItem"] != updates || len(n) != 1 {
			t.Errorf("%s: calls %v, want %d UpdateItem and nothing else", what, n, updates)
		}
	}
	take(t, a, k, r)
	want("the first request of a new key", f.calls.take(), 1)
	take(t, a, k, r)
	take(t, a, k, r)
	want("two granted requests", f.calls.take(), 2)
	if ok, _ := take(t, a, k, r); ok {
		t.Fatal("granted past the burst")
	}
	want("a refused request", f.calls.take(), 1)
	f.clock.Add(100 * time.Millisecond)
	take(t, a, k, r)
	want("a request on a refilled token", f.calls.take(), 1)

	// Instance b never saw the bucket: it guesses full. Refused, the
	// failed condition's old item is the answer: one call.
	if ok, _ := take(t, b, k, r); ok {
		t.Fatal("instance b granted past the burst")
	}
	want("another instance's refused request", f.calls.take(), 1)
	// Granted on a bucket b saw drawn: its guess is right.
	f.clock.Add(100 * time.Millisecond)
	if ok, _ := take(t, b, k, r); !ok {
		t.Fatal("instance b refused a refilled token")
	}
	want("another instance's request on a refilled token", f.calls.take(), 1)
	f.clock.Add(time.Hour)
	take(t, b, k, r)
	want("a request on a bucket that filled while idle", f.calls.take(), 1)
	// Instance a last saw the bucket before the hour: it guesses full, and
	// b has drawn on it since.
	take(t, a, k, r)
	want("an instance whose last value is stale", f.calls.take(), 2)
	take(t, a, k, r)
	want("the next", f.calls.take(), 1)

	// The item of the longest stored key is under 1 KB: one WCU a write.
	long := strings.Repeat("k", ratelimit.MaxKeyBytes+1000)
	take(t, a, long, r)
	out, err := f.db.Scan(context.Background(), &dynamodb.ScanInput{TableName: aws.String(f.table), ConsistentRead: aws.Bool(true)})
	if err != nil {
		t.Fatal(err)
	}
	biggest := 0
	for _, item := range out.Items {
		biggest = max(biggest, itemBytes(item))
	}
	if biggest == 0 || biggest > 1024 {
		t.Errorf("largest bucket item %d bytes, want 1 to 1024 (1 WCU)", biggest)
	}
}

// itemBytes is DynamoDB's item size: attribute names and values, a number
// as about one byte per two significant digits plus one.
func itemBytes(item map[string]types.AttributeValue) int {
	n := 0
	for name, v := range item {
		n += len(name)
		switch v := v.(type) {
		case *types.AttributeValueMemberS:
			n += len(v.Value)
		case *types.AttributeValueMemberN:
			n += (len(strings.Trim(strings.ReplaceAll(v.Value, ".", ""), "0"))+1)/2 + 1
		}
	}
	return n
}

func TestABadRateOrKeyIsInvalidAndCostsNothing(t *testing.T) {
	f := newFixture(t)
	l := f.limiter()
	for _, tt := range []struct {
		name string
		key  string
		rate dispatch.Rate
	}{
		{"a zero rate", "k", dispatch.Rate{PerSecond: 0, Burst: 1}},
		{"a rate over the highest", "k", dispatch.Rate{PerSecond: dispatch.MaxRatePerSecond + 1, Burst: 1}},
		{"a zero burst", "k", dispatch.Rate{PerSecond: 1, Burst: 0}},
		{"a burst over the largest", "k", dispatch.Rate{PerSecond: 1, Burst: dispatch.MaxRateBurst + 1}},
		{"an empty key", "", dispatch.Rate{PerSecond: 1, Burst: 1}},
	} {
		t.Run(tt.name, func(t *testing.T) {
			f.calls.take()
			ok, _, err := l.Take(context.Background(), tt.key, tt.rate)
			if ok || dispatch.KindOf(err) != dispatch.Invalid {
				t.Errorf("ok=%v err=%v, want an invalid error", ok, err)
			}
			if n := f.calls.take(); len(n) != 0 {
				t.Errorf("calls %v, want none", n)
			}
		})
	}
	// The bounds themselves are usable.
	k := key(t)
	for _, r := range []dispatch.Rate{{PerSecond: dispatch.MaxRatePerSecond, Burst: dispatch.MaxRateBurst}, {PerSecond: 0.001, Burst: 1}} {
		if ok, _ := take(t, l, k+fmt.Sprint(r.Burst), r); !ok {
			t.Errorf("rate %+v: the first request refused", r)
		}
	}
}

func TestAnUnreachableTableIsAnError(t *testing.T) {
	f := newFixture(t)
	l := ratelimit.New(f.db, "no-such-table")
	ok, _, err := l.Take(context.Background(), key(t), dispatch.Rate{PerSecond: 1, Burst: 1})
	if ok || err == nil {
		t.Fatalf("ok=%v err=%v, want an error", ok, err)
	}
}

// noOldItem is DynamoDB as a backend that sends no old item back on a
// failed condition (ReturnValuesOnConditionCheckFailure unsupported): the
// real calls, with the failure's Item dropped.
type noOldItem struct{ *dynamodb.Client }

func (d noOldItem) UpdateItem(ctx context.Context, in *dynamodb.UpdateItemInput, opts ...func(*dynamodb.Options)) (*dynamodb.UpdateItemOutput, error) {
	out, err := d.Client.UpdateItem(ctx, in, opts...)
	var failed *types.ConditionalCheckFailedException
	if errors.As(err, &failed) {
		failed.Item = nil
	}
	return out, err
}

// Without the old item, a consistent GetItem stands in for it: the same
// grants and refusals, concurrent ones included, for one read more.
func TestABackendWithoutTheOldItemReadsItAndGrantsTheSame(t *testing.T) {
	f := newFixture(t)
	l := ratelimit.New(noOldItem{f.db}, f.table)
	l.Now = f.clock.Now
	k := key(t)
	r := dispatch.Rate{PerSecond: 2, Burst: 3}
	for range r.Burst {
		take(t, l, k, r)
	}
	f.calls.take()
	if ok, wait := take(t, l, k, r); ok || wait != 500*time.Millisecond {
		t.Fatalf("after the burst: ok=%v retryAfter=%v, want refused for 500ms", ok, wait)
	}
	if n := f.calls.take(); n["GetItem"] != 1 {
		t.Errorf("a refusal without the old item: calls %v, want one GetItem", n)
	}

	k = key(t) + "-concurrent"
	var granted atomic.Int64
	var wg sync.WaitGroup
	for g := range 12 {
		other := ratelimit.New(noOldItem{f.db}, f.table)
		other.Now = f.clock.Now
		wg.Go(func() {
			for range 3 {
				ok, _, err := []*ratelimit.Limiter{l, other}[g%2].Take(context.Background(), k, r)
				if err != nil {
					t.Error(err)
					return
				}
				if ok {
					granted.Add(1)
				}
			}
		})
	}
	wg.Wait()
	if n := granted.Load(); n != int64(r.Burst) {
		t.Errorf("%d of 36 concurrent requests granted, want the burst of %d", n, r.Burst)
	}
}
