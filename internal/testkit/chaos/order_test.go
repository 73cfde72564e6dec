package chaos

import "testing"

func TestInversions(t *testing.T) {
	d := func(id string, v int64) Delivered { return Delivered{ID: id, Version: v} }
	tests := []struct {
		name        string
		seq         []Delivered
		excused     map[string]bool
		want, wantX int
	}{
		{"finds none in nothing", nil, nil, 0, 0},
		{"finds none in version order", []Delivered{d("a", 1), d("b", 2), d("c", 3)}, nil, 0, 0},
		{"finds none with a gap (a version not delivered yet)", []Delivered{d("a", 1), d("c", 3)}, nil, 0, 0},
		{"reports a version delivered after a higher one", []Delivered{d("a", 1), d("c", 3), d("b", 2)}, nil, 1, 0},
		{"reports each effect that came late once", []Delivered{d("c", 3), d("a", 1), d("b", 2)}, nil, 2, 0},
		{"reports a late first copy even after an earlier duplicate of a higher version",
			[]Delivered{d("a", 1), d("c", 3), d("c", 3), d("b", 2)}, nil, 1, 0},
		{"does not count a resend of an id already delivered",
			[]Delivered{d("a", 1), d("b", 2), d("c", 3), d("b", 2), d("a", 1)}, nil, 0, 0},
		{"does not count copies that come together", []Delivered{d("a", 1), d("a", 1), d("b", 2), d("b", 2)}, nil, 0, 0},
		{"excuses a FAILED item replayed after later versions",
			[]Delivered{d("b", 2), d("c", 3), d("a", 1)}, map[string]bool{"a": true}, 0, 1},
		{"excuses only the FAILED item, not another late one",
			[]Delivered{d("c", 3), d("a", 1), d("b", 2)}, map[string]bool{"a": true}, 1, 1},
		{"does not excuse a late item because a later one had FAILED",
			[]Delivered{d("c", 3), d("b", 2)}, map[string]bool{"c": true}, 1, 0},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			n, x := Inversions(tt.seq, tt.excused)
			if n != tt.want || x != tt.wantX {
				t.Errorf("Inversions = %d (excused %d), want %d (excused %d)", n, x, tt.want, tt.wantX)
			}
		})
	}
}

func TestCheckOrderCountsEachTargetApartAndWhatWasChecked(t *testing.T) {
	d := func(id string, v int64) Delivered { return Delivered{ID: id, Version: v} }
	events := map[string][]Delivered{
		"a": {d("a1e", 1), d("a2e", 2), d("a3e", 3)},
		"b": {d("b2e", 2), d("b1e", 1)}, // inverted
		"c": {d("c1e", 1)},
	}
	emails := map[string][]Delivered{
		"a": {d("a1m", 1), d("a3m", 3), d("a2m", 2)}, // inverted
		"b": {d("b1m", 1)},
		"c": {d("c2m", 2), d("c1m", 1)}, // excused
	}
	got := CheckOrder(events, emails, map[string]bool{"c1m": true})
	want := Order{Events: 1, Emails: 1, Excused: 1, Checked: 1}
	if got != want {
		t.Errorf("CheckOrder = %+v, want %+v", got, want)
	}
}

func TestOutboxPlanOpensEachAccountFirstAndGivesItSeveralVersions(t *testing.T) {
	for _, n := range []int{2, 7, 30, 80} {
		aggs, steps := outboxPlan(7, NewSchedule(7, DefaultRates).Rand("commands"), n)
		reused := 0
		next := map[string]int{}
		for _, s := range steps {
			if s.reuse {
				// An earlier deposit's key with another body.
				if reused++; s.n != 1 || next[s.agg.ID] < 2 || s.body() == (step{agg: s.agg, n: 1}).body() {
					t.Errorf("n=%d: %s reuses key %s (body %s) before or without its deposit", n, s.agg.ID, s.key(), s.body())
				}
				continue
			}
			if s.n != next[s.agg.ID] {
				t.Errorf("n=%d: %s gets command %d after %d", n, s.agg.ID, s.n, next[s.agg.ID]-1)
			}
			next[s.agg.ID]++
		}
		for _, a := range aggs {
			if next[a.ID] < 2 {
				t.Errorf("n=%d: %s gets %d commands, want an opening and a deposit at least", n, a.ID, next[a.ID])
			}
		}
		if len(steps)-reused != n || reused != (len(aggs)+2)/3 {
			t.Errorf("n=%d: %d commands and %d reused keys, want n and one per 3 accounts", n, len(steps)-reused, reused)
		}
		if len(next) != len(aggs) || len(aggs) < n/4 || len(aggs) > n/2 {
			t.Errorf("n=%d: %d accounts (%d with commands), want about n/3", n, len(aggs), len(next))
		}
	}
}
