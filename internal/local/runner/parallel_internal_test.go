package runner

import (
	"fmt"
	"testing"

	"github.com/aws/aws-lambda-go/events"
)

func keyed(pk, sk string) events.DynamoDBEventRecord {
	var r events.DynamoDBEventRecord
	r.Change.Keys = map[string]events.DynamoDBAttributeValue{
		"pk": events.NewStringAttribute(pk), "sk": events.NewStringAttribute(sk),
	}
	return r
}

func TestALanesIsChosenByThePartitionKeyOnly(t *testing.T) {
	used := map[int]int{}
	for a := range 200 {
		pk := fmt.Sprintf("AGG#scale-%04d", a)
		lane := laneOf(keyed(pk, "OUTBOX#1"), "pk", 10)
		for v := 2; v <= 5; v++ {
			if got := laneOf(keyed(pk, fmt.Sprintf("OUTBOX#%d", v)), "pk", 10); got != lane {
				t.Fatalf("%s: version %d in lane %d, version 1 in lane %d", pk, v, got, lane)
			}
		}
		if lane < 0 || lane >= 10 {
			t.Fatalf("%s: lane %d of 10", pk, lane)
		}
		used[lane]++
	}
	t.Logf("aggregates per lane: %v", used)
	if len(used) != 10 {
		t.Errorf("200 aggregates use %d of 10 lanes", len(used))
	}
	if l := laneOf(keyed("AGG#x", "s"), "pk", 1); l != 0 {
		t.Errorf("lane %d with one lane", l)
	}
	// Without a known partition key, the whole key decides: one item's
	// records still share a lane.
	first := laneOf(keyed("AGG#x", "s"), "", 10)
	for range 20 {
		if l := laneOf(keyed("AGG#x", "s"), "", 10); l != first {
			t.Fatalf("the same key went to lanes %d and %d", first, l)
		}
	}
}
