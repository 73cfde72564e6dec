package chaos

import (
	"testing"
	"time"
)

func TestMeasureRecovery(t *testing.T) {
	t0 := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	at := func(s float64) time.Time { return t0.Add(time.Duration(s * float64(time.Second))) }
	bound := RecoveryBound(time.Second) // 121 s
	tests := []struct {
		name   string
		kills  []time.Time
		items  []itemTimes
		want   Recovery
		failed bool
	}{
		{"counts nothing without a kill", nil, []itemTimes{{created: at(0), delivered: at(5)}}, Recovery{Bound: bound}, false},
		{"measures the kill to the last item it left undelivered",
			[]time.Time{at(10)},
			[]itemTimes{{created: at(1), delivered: at(9)}, {created: at(2), delivered: at(13)}, {created: at(3), delivered: at(40)}, {created: at(11), delivered: at(90)}},
			Recovery{Kills: 1, Affected: 2, Max: 30 * time.Second, P50: 30 * time.Second, Bound: bound}, false},
		{"takes max and p50 over the kills",
			[]time.Time{at(10), at(20), at(30)},
			[]itemTimes{{created: at(5), delivered: at(11)}, {created: at(15), delivered: at(22)}, {created: at(25), delivered: at(60)}},
			Recovery{Kills: 3, Affected: 3, Max: 30 * time.Second, P50: 2 * time.Second, Bound: bound}, false},
		{"leaves FAILED items to a person",
			[]time.Time{at(10)}, []itemTimes{{created: at(1), failed: true}, {created: at(2), delivered: at(12)}},
			Recovery{Kills: 1, Affected: 1, Max: 2 * time.Second, P50: 2 * time.Second, Bound: bound}, false},
		{"fails the run at one second past the bound",
			[]time.Time{at(10)}, []itemTimes{{created: at(1), delivered: at(10 + 122)}},
			Recovery{Kills: 1, Affected: 1, Max: 122 * time.Second, P50: 122 * time.Second, Bound: bound, Late: 1}, true},
		{"passes it at the bound",
			[]time.Time{at(10)}, []itemTimes{{created: at(1), delivered: at(10 + 121)}},
			Recovery{Kills: 1, Affected: 1, Max: 121 * time.Second, P50: 121 * time.Second, Bound: bound}, false},
		{"fails the run when an item waited for the person's replay",
			[]time.Time{at(10)}, []itemTimes{{created: at(1)}},
			Recovery{Kills: 1, Affected: 1, Bound: bound, NeedPerson: 1}, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := measureRecovery(tt.kills, tt.items, bound)
			if got != tt.want || got.Failed() != tt.failed {
				t.Errorf("got %+v (failed %v), want %+v (failed %v)", got, got.Failed(), tt.want, tt.failed)
			}
		})
	}
}
