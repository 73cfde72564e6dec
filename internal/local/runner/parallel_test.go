package runner_test

import (
	"context"
	"fmt"
	"math/rand/v2"
	"slices"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/aws/aws-lambda-go/events"

	"github.com/dispatcher-dev/dispatcher/internal/local/runner"
)

func TestTheTemplateParallelizationFactorIsReadWithThePartitionKey(t *testing.T) {
	s := freshStack(t)
	spec, err := runner.ReadSpec(s)
	if err != nil {
		t.Fatal(err)
	}
	m := spec.Streams[0]
	if m.ParallelizationFactor != 2 || m.PartitionKey != "pk" {
		t.Errorf("ParallelizationFactor %d, partition key %q; want the template's default 2 and the table's HASH key pk", m.ParallelizationFactor, m.PartitionKey)
	}
}

// laneProbe is a stream function that records, per partition key, the sort
// keys it receives in order, and how many invocations run at once.
type laneProbe struct {
	mu      sync.Mutex
	byKey   map[string][]string
	total   int
	running atomic.Int32
	maxSeen atomic.Int32
	delay   time.Duration
}

func (p *laneProbe) handle(_ context.Context, ev events.DynamoDBEvent) (events.DynamoDBEventResponse, error) {
	n := p.running.Add(1)
	defer p.running.Add(-1)
	for {
		m := p.maxSeen.Load()
		if n <= m || p.maxSeen.CompareAndSwap(m, n) {
			break
		}
	}
	// Uneven invocation times let lanes drift apart, as on AWS: a key
	// split over two lanes would show as an inversion.
	time.Sleep(p.delay + rand.N(4*p.delay))
	p.mu.Lock()
	defer p.mu.Unlock()
	for _, r := range ev.Records {
		pk := r.Change.Keys["pk"].String()
		p.byKey[pk] = append(p.byKey[pk], r.Change.Keys["sk"].String())
		p.total++
	}
	return events.DynamoDBEventResponse{}, nil
}

// check fails the test unless every aggregate received exactly its
// versions 1..versions, in stream order, each once.
func (p *laneProbe) check(t *testing.T, aggs []string, versions int) {
	t.Helper()
	p.mu.Lock()
	defer p.mu.Unlock()
	want := make([]string, versions)
	for v := range versions {
		want[v] = outbox(v + 1)
	}
	for _, a := range aggs {
		if got := p.byKey["AGG#"+a]; !slices.Equal(got, want) {
			t.Errorf("aggregate %s received %v, want %v (in order, each once)", a, got, want)
		}
	}
	if p.total != len(aggs)*versions {
		t.Errorf("%d records received, want %d", p.total, len(aggs)*versions)
	}
}

// runLanes writes versions 1..versions of aggs aggregates, interleaved
// (version 1 of every aggregate, then version 2, ...), and runs the
// mapping over them with the given factor, in batches of 5. (With a number
// of aggregates that is a multiple of the factor, a round-robin split would
// keep each aggregate in one lane too and could not be told apart.)
func runLanes(t *testing.T, factor, aggs, versions int) (*laneProbe, []string) {
	t.Helper()
	s := freshStack(t)
	names := make([]string, aggs)
	for i := range names {
		names[i] = fmt.Sprintf("lane-%03d", i)
	}
	for v := 1; v <= versions; v++ {
		for _, a := range names {
			putItems(t, s, a, outbox(v))
		}
	}
	p := &laneProbe{byKey: map[string][]string{}, delay: 5 * time.Millisecond}
	r := start(t, s, map[string]runner.Function{"CommandFunction": stub, "StreamRelayFunction": funcOf(p.handle)}, func(m *runner.StreamMapping) {
		m.ParallelizationFactor = factor
		m.BatchSize = 5
		m.BatchingWindow = 0
	})
	total := aggs * versions
	eventually(t, 30*time.Second, "every record delivered", func() bool { return r.Stats("StreamRelayFunction").Delivered == total })
	// Nothing more may arrive (no duplicate after the count is reached).
	time.Sleep(100 * time.Millisecond)
	if st := r.Stats("StreamRelayFunction"); st.Delivered != total || st.Discarded != 0 {
		t.Errorf("stats %+v, want %d delivered and none discarded", st, total)
	}
	return p, names
}

func TestParallelizationFactorFiveRunsLanesConcurrentlyKeepingEachAggregateInOrder(t *testing.T) {
	p, aggs := runLanes(t, 5, 37, 5)
	p.check(t, aggs, 5)
	if n := p.maxSeen.Load(); n < 2 || n > 5 {
		t.Errorf("at most %d invocations at once, want 2..5 with ParallelizationFactor 5", n)
	}
}

func TestParallelizationFactorOneRunsOneBatchAtATime(t *testing.T) {
	p, aggs := runLanes(t, 1, 20, 5)
	p.check(t, aggs, 5)
	if n := p.maxSeen.Load(); n != 1 {
		t.Errorf("at most %d invocations at once, want 1 with ParallelizationFactor 1", n)
	}
}
