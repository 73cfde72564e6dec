package runner_test

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"os"
	"slices"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/aws/aws-lambda-go/events"
	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb"
	ddbtypes "github.com/aws/aws-sdk-go-v2/service/dynamodb/types"

	"github.com/dispatcher-dev/dispatcher/internal/local/provision"
	"github.com/dispatcher-dev/dispatcher/internal/local/runner"
	"github.com/dispatcher-dev/dispatcher/internal/testkit/testenv"
)

// Scale-out workload: 200 aggregates × 5 versions, written interleaved
// (version 1 of every aggregate, then version 2, ...), so every lane gets
// about the same number of aggregates and each aggregate's versions are
// spread over the whole backlog.
const (
	scaleAggregates = 200
	scaleVersions   = 5
)

// BenchmarkScaleOutPerShard measures the stream mapping's throughput on one
// shard (DynamoDB Local has one) at ParallelizationFactor 1, 2, 5 and 10,
// with the template's BatchSize (100) over a backlog of 1000 outbox
// records, each factor read by a fresh mapping from TRIM_HORIZON of the
// same stream. The function does no work but sleeps for the round trips a
// relay batch makes: a status read and an order-check Query, then one
// SendMessageBatch and one round of marks per 10 records, i.e.
// RTT × (2 + 2·⌈n/10⌉), RTT = BENCH_RTT_MS (default 5 ms). It also checks
// that every aggregate's versions arrive in order, each once: any record
// that arrives at or below its aggregate's last version counts as an
// inversion, as does a missing one.
//
// The time is from the first invocation to the last record delivered: the
// lanes' throughput. The start (iterators, reading and filtering the
// one-page backlog, about 0.1 s on DynamoDB Local, logged with -v) is left
// out: it is the same at every factor, and on AWS the poller reads while
// lanes run. The median of BENCH_ROUNDS (default 3) rounds per factor is
// reported. Lanes are as uneven as the hash makes them (here 13 to 27
// aggregates in 10 lanes), so factor 10 is bounded near 1000/135 records.
func BenchmarkScaleOutPerShard(b *testing.B) {
	rtt := time.Duration(envInt(b, "BENCH_RTT_MS", 5)) * time.Millisecond
	rounds := envInt(b, "BENCH_ROUNDS", 3)
	s := benchStack(b)
	writeBacklog(b, s.Physical("OutboxTable"))
	factors := []int{1, 2, 5, 10}
	rate := map[int]float64{}
	inversions := 0
	b.ResetTimer()
	for range b.N {
		for _, f := range factors {
			var rs []float64
			for range rounds {
				r, inv := scaleOutRun(b, s, f, rtt)
				rs = append(rs, r)
				inversions += inv
			}
			slices.Sort(rs)
			rate[f] = rs[len(rs)/2]
		}
	}
	for _, f := range factors {
		b.ReportMetric(rate[f], fmt.Sprintf("f%d-records/s", f))
	}
	b.ReportMetric(rate[10]/rate[1], "speedup-10v1")
	b.ReportMetric(float64(inversions), "inversions")
}

// scaleOutRun runs a fresh mapping with the given factor over the whole
// backlog and returns its records/s and the inversions it saw.
func scaleOutRun(b *testing.B, s *provision.Stack, factor int, rtt time.Duration) (float64, int) {
	b.Helper()
	total := scaleAggregates * scaleVersions
	var mu sync.Mutex
	last := map[string]string{}
	seen := map[string]bool{}
	inversions := 0
	done := make(chan time.Time, 1)
	var firstOnce sync.Once
	var first time.Time
	relay := funcOf(func(_ context.Context, ev events.DynamoDBEvent) (events.DynamoDBEventResponse, error) {
		n := len(ev.Records)
		firstOnce.Do(func() { first = time.Now() })
		time.Sleep(rtt * time.Duration(2+2*((n+9)/10)))
		mu.Lock()
		defer mu.Unlock()
		for _, r := range ev.Records {
			pk, sk := r.Change.Keys["pk"].String(), r.Change.Keys["sk"].String()
			if sk <= last[pk] {
				inversions++
			}
			last[pk] = sk
			seen[pk+" "+sk] = true
		}
		if len(seen) == total {
			select {
			case done <- time.Now():
			default:
			}
		}
		return events.DynamoDBEventResponse{}, nil
	})
	r, err := runner.New(runner.Options{
		Stack: s, AWS: testenv.Get(b).AWS, Addr: "127.0.0.1:0",
		Functions: map[string]runner.Function{"CommandFunction": stub, "StreamRelayFunction": relay},
		// A short poll interval, so that only the lanes are measured (the
		// backlog is there from the start: one page holds all of it).
		PollInterval: 20 * time.Millisecond, RetryDelay: 5 * time.Millisecond,
		Log: slog.New(slog.NewTextHandler(io.Discard, nil)),
		Tune: func(m *runner.StreamMapping) {
			m.ParallelizationFactor = factor
			m.BatchingWindow = 0
		},
	})
	if err != nil {
		b.Fatal(err)
	}
	began := time.Now()
	if err := r.Start(context.Background()); err != nil {
		b.Fatal(err)
	}
	defer r.Close()
	var end time.Time
	select {
	case end = <-done:
	case <-time.After(60 * time.Second):
		mu.Lock()
		defer mu.Unlock()
		b.Fatalf("factor %d: %d of %d records delivered after 60 s", factor, len(seen), total)
	}
	b.Logf("factor %d: first invocation %s after the start, all delivered %s later", factor, first.Sub(began).Round(time.Millisecond), end.Sub(first).Round(time.Millisecond))
	// Let a late duplicate show before the count is taken.
	time.Sleep(50 * time.Millisecond)
	mu.Lock()
	defer mu.Unlock()
	if st := r.Stats("StreamRelayFunction"); st.Discarded != 0 {
		b.Errorf("factor %d: %d records discarded", factor, st.Discarded)
	}
	return float64(total) / end.Sub(first).Seconds(), inversions + total - len(seen)
}

func envInt(b *testing.B, name string, def int) int {
	v := os.Getenv(name)
	if v == "" {
		return def
	}
	n, err := strconv.Atoi(v)
	if err != nil || n < 1 {
		b.Fatalf("%s=%q: want a whole number above 0", name, v)
	}
	return n
}

func scaleSK(v int) string { return fmt.Sprintf("OUTBOX#%020d#0", v) }

// writeBacklog writes the workload: versions in turn, the aggregates of one
// version concurrently (each aggregate's versions stay in order).
func writeBacklog(b *testing.B, table string) {
	b.Helper()
	db := dynamodb.NewFromConfig(testenv.Get(b).AWS)
	for v := 1; v <= scaleVersions; v++ {
		var wg sync.WaitGroup
		errs := make(chan error, scaleAggregates)
		sem := make(chan struct{}, 8)
		for a := range scaleAggregates {
			wg.Add(1)
			sem <- struct{}{}
			go func() {
				defer wg.Done()
				defer func() { <-sem }()
				_, err := db.PutItem(context.Background(), &dynamodb.PutItemInput{
					TableName: aws.String(table),
					Item: map[string]ddbtypes.AttributeValue{
						"pk": &ddbtypes.AttributeValueMemberS{Value: fmt.Sprintf("AGG#scale-%04d", a)},
						"sk": &ddbtypes.AttributeValueMemberS{Value: scaleSK(v)},
					},
				})
				if err != nil {
					errs <- err
				}
			}()
		}
		wg.Wait()
		close(errs)
		if err := <-errs; err != nil {
			b.Fatal(err)
		}
	}
}
