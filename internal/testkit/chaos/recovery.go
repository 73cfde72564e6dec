package chaos

import (
	"fmt"
	"slices"
	"time"

	"github.com/dispatcher-dev/dispatcher/internal/testkit/flowtest"
)

// RecoveryBound is what guarantee 10 allows after a crash of the relay:
// every item it left undelivered is delivered within the email lease plus
// 2 minutes, with no person.
func RecoveryBound(lease time.Duration) time.Duration { return lease + 2*time.Minute }

// Recovery is how the product came back from the relay's kills: for each
// kill, the time from the kill to the delivery of the last item that was
// undelivered at the kill (committed before it, not DELIVERED by it), over
// the items that ended DELIVERED before anyone ran a replay. A FAILED item
// waits for a person by design and is not counted; an item a person's
// replay had to deliver is (NeedPerson).
type Recovery struct {
	Kills      int           // relay kills measured
	Affected   int           // items undelivered at one kill or more
	Max, P50   time.Duration // over the kills that left an item undelivered
	Bound      time.Duration
	Late       int // kills whose last item came after Bound
	NeedPerson int // items undelivered at a kill and still so when the person's replay began
}

// Failed reports whether the run broke guarantee 10.
func (r Recovery) Failed() bool { return r.Late > 0 || r.NeedPerson > 0 }

func (r Recovery) String() string {
	return fmt.Sprintf("recovery after %d relay kills: %d items undelivered at a kill; kill to last of them delivered max %s, p50 %s (bound: lease + 2 min = %s); %d kills past the bound, %d items left for a person",
		r.Kills, r.Affected, r.Max.Round(time.Millisecond), r.P50.Round(time.Millisecond), r.Bound, r.Late, r.NeedPerson)
}

// itemTimes is one outbox item as the recovery measure sees it.
type itemTimes struct {
	created   time.Time
	delivered time.Time // zero: not DELIVERED when the person's replay began
	failed    bool      // FAILED at some point: a person's, not counted
}

// measureRecovery measures the kills against the items' times.
func measureRecovery(kills []time.Time, items []itemTimes, bound time.Duration) Recovery {
	rec := Recovery{Kills: len(kills), Bound: bound}
	affected := map[int]bool{}
	person := map[int]bool{}
	var took []time.Duration
	for _, k := range kills {
		var last time.Time
		for i, it := range items {
			if it.failed || it.created.IsZero() || it.created.After(k) || (!it.delivered.IsZero() && !it.delivered.After(k)) {
				continue
			}
			affected[i] = true
			if it.delivered.IsZero() {
				person[i] = true
				continue
			}
			if it.delivered.After(last) {
				last = it.delivered
			}
		}
		if last.IsZero() {
			continue
		}
		d := last.Sub(k)
		took = append(took, d)
		if d > bound {
			rec.Late++
		}
	}
	rec.Affected, rec.NeedPerson = len(affected), len(person)
	if len(took) > 0 {
		slices.Sort(took)
		rec.Max, rec.P50 = took[len(took)-1], took[(len(took)-1)/2]
	}
	return rec
}

// recoveryOf reads the run's outbox items, as they are before anyone
// replays, and measures the relay's kills against them; failed holds the
// event ids of the items found FAILED (a person's).
func recoveryOf(g *flowtest.Fixture, ids []string, failed map[string]bool, kills []time.Time, lease time.Duration) Recovery {
	var items []itemTimes
	for _, id := range ids {
		for _, it := range effects(g, id) {
			st := flowtest.S(it, "status")
			x := itemTimes{failed: st == "FAILED" || failed[flowtest.S(it, "eventId")]}
			x.created, _ = time.Parse(time.RFC3339Nano, flowtest.S(it, "createdAt"))
			if st == "DELIVERED" {
				x.delivered, _ = time.Parse(time.RFC3339Nano, flowtest.S(it, "deliveredAt"))
			}
			items = append(items, x)
		}
	}
	return measureRecovery(kills, items, RecoveryBound(lease))
}

// killTimes are the times the killer killed its function's bootstrap.
func (k *killer) killTimes() []time.Time {
	k.mu.Lock()
	defer k.mu.Unlock()
	return slices.Clone(k.killedAt)
}
