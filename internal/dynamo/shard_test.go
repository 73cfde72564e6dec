package dynamo

import (
	"testing"
	"time"

	"github.com/dispatcher-dev/dispatcher/internal/dispatch"
)

// A burst of outbox writes must spread over every shard of the sparse index,
// so that no one index partition takes it all (DESIGN.md, data model).
func TestUndeliveredItemsSpreadOverEveryShard(t *testing.T) {
	s := New(nil, "t", 8)
	counts := map[string]int{}
	now := time.Now()
	const n = 8000
	for range n {
		counts[s.shardOf(dispatch.NewEventID(now))]++
	}
	if len(counts) != 8 {
		t.Fatalf("ids landed in %d shards, want all 8: %v", len(counts), counts)
	}
	for shard, c := range counts {
		if c > 2*n/8 || c < n/8/2 {
			t.Errorf("shard %s holds %d of %d ids: not spread (want about %d)", shard, c, n, n/8)
		}
	}
}
