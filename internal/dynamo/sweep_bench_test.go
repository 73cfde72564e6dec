package dynamo

import (
	"context"
	"net/http"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/service/dynamodb"

	"github.com/dispatcher-dev/dispatcher/internal/testkit/faults"
	"github.com/dispatcher-dev/dispatcher/internal/testkit/testenv"
)

// BenchmarkSweepShards is the reads of one scheduled sweep with nothing to
// deliver (Undelivered, OldestUndelivered, OldestFailed: 3 × 64 Queries),
// the shards queried one after the other (the baseline) and in waves of
// sweepWave, alternately in each iteration so that drift hits both alike.
// DynamoDB Local serves requests mostly one at a time, so a round trip of
// 5 ms (a same-region figure) is added in front of every request
// (faults.Fault{Delay}), as BenchmarkRelayThroughput's latency model does.
// It reports each in ms and "x-faster", the baseline's time over the
// waves'.
//
//	go test -run '^$' -bench SweepShards -benchtime 5x ./internal/dynamo/
func BenchmarkSweepShards(b *testing.B) {
	env := testenv.Get(b)
	tr := faults.New(http.DefaultTransport)
	tr.Add(faults.Fault{Delay: 5 * time.Millisecond})
	cfg := env.AWS.Copy()
	cfg.HTTPClient = tr
	s := New(dynamodb.NewFromConfig(cfg), env.Stack.Physical("OutboxTable"), 8)
	ctx := context.Background()
	sweep := func(wave int) time.Duration {
		s.wave = wave
		start := time.Now()
		if _, err := s.Undelivered(ctx, time.Date(2000, 1, 1, 0, 0, 0, 0, time.UTC), 1000); err != nil {
			b.Fatal(err)
		}
		if _, _, err := s.OldestUndelivered(ctx); err != nil {
			b.Fatal(err)
		}
		if _, _, err := s.OldestFailed(ctx); err != nil {
			b.Fatal(err)
		}
		return time.Since(start)
	}
	var seq, waves time.Duration
	i := 0
	for b.Loop() {
		if i%2 == 0 {
			seq += sweep(1)
			waves += sweep(sweepWave)
		} else {
			waves += sweep(sweepWave)
			seq += sweep(1)
		}
		i++
	}
	b.ReportMetric(float64(seq.Milliseconds())/float64(i), "sequential-ms")
	b.ReportMetric(float64(waves.Milliseconds())/float64(i), "waves-ms")
	b.ReportMetric(float64(seq)/float64(waves), "x-faster")
}
