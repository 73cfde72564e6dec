package dynamo

import (
	"errors"
	"fmt"
	"strings"
	"testing"

	"github.com/dispatcher-dev/dispatcher/internal/dispatch"
)

// A burst of outbox writes must spread over every shard of the sparse index,
// so that no one index partition takes it all (the sharded sparse index of undelivered items):
// whether the burst comes from many aggregates or from one busy aggregate.
func TestUndeliveredItemsSpreadOverEveryShard(t *testing.T) {
	s := New(nil, "t", 8)
	const n = 8000
	bursts := map[string]func(i int) dispatch.OutboxKey{
		"many aggregates": func(i int) dispatch.OutboxKey {
			return dispatch.OutboxKey{AggregateID: fmt.Sprintf("acct-%d", i/2), Version: 1, Seq: i % 2}
		},
		"one aggregate": func(i int) dispatch.OutboxKey {
			return dispatch.OutboxKey{AggregateID: "acct-hot", Version: int64(1 + i/2), Seq: i % 2}
		},
	}
	for name, key := range bursts {
		t.Run(name, func(t *testing.T) {
			counts := map[string]int{}
			for i := range n {
				counts[s.shardOf(shardPending, key(i))]++
			}
			if len(counts) != 8 {
				t.Fatalf("keys landed in %d shards, want all 8: %v", len(counts), counts)
			}
			for shard, c := range counts {
				if c > 2*n/8 || c < n/8/2 {
					t.Errorf("shard %s holds %d of %d keys: not spread (want about %d)", shard, c, n, n/8)
				}
			}
		})
	}
}

// A FAILED item moves to the FAILED shard of the same number, and back to
// its PENDING shard when requeued.
func TestFailedShardKeepsTheNumber(t *testing.T) {
	s := New(nil, "t", 8)
	k := dispatch.OutboxKey{AggregateID: "acct-1", Version: 7, Seq: 1}
	p, f := s.shardOf(shardPending, k), s.shardOf(shardFailed, k)
	if strings.TrimPrefix(p, shardPending) != strings.TrimPrefix(f, shardFailed) || !strings.HasPrefix(f, shardFailed) {
		t.Fatalf("pending shard %q and failed shard %q differ in number", p, f)
	}
}

// A wave's results come back in shard order, whatever order the concurrent
// queries end in, and one failed query fails the wave.
func TestAWaveKeepsShardOrderAndFailsWithAShard(t *testing.T) {
	got, err := wave(8, 8, func(shard int) (int, error) { return shard, nil })
	if err != nil || fmt.Sprint(got) != "[8 9 10 11 12 13 14 15]" {
		t.Fatalf("wave = %v, %v", got, err)
	}
	boom := errors.New("shard 11 throttled")
	if _, err := wave(8, 8, func(shard int) (int, error) {
		if shard == 11 {
			return 0, boom
		}
		return shard, nil
	}); !errors.Is(err, boom) {
		t.Fatalf("err = %v, want the failed shard's", err)
	}
}
