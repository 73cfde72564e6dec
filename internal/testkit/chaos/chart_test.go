package chaos

import (
	"image/png"
	"os"
	"path/filepath"
	"testing"
)

func TestTheChartIsAPNGWithOneGroupPerStrategy(t *testing.T) {
	path := filepath.Join(t.TempDir(), "chaos.png")
	rows := []Row{{Strategy: Outbox}, {Strategy: "DB then send", LostEvents: 12, LostEmails: 3}, {Strategy: "send then DB", PhantomEvents: 7}}
	if err := WriteChart(path, []Result{{Seed: 1, Rows: rows}, {Seed: 2, Rows: rows}}); err != nil {
		t.Fatal(err)
	}
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	img, err := png.Decode(f)
	if err != nil {
		t.Fatal(err)
	}
	if w := img.Bounds().Dx(); w < 3*2*2*12 {
		t.Errorf("width %d: too narrow for 3 groups of 2 seeds", w)
	}
}

func TestTheScheduleIsReproducibleFromItsSeed(t *testing.T) {
	draw := func(seed uint64) []kind {
		s := NewSchedule(seed, DefaultRates)
		var out []kind
		for range 200 {
			out = append(out, s.decide("PutItem"))
		}
		return out
	}
	a, b, c := draw(1), draw(1), draw(2)
	same, faulted := true, 0
	for i := range a {
		same = same && a[i] == b[i]
		if a[i] != none {
			faulted++
		}
	}
	if !same {
		t.Error("two schedules from one seed differ")
	}
	if faulted == 0 || faulted == len(a) {
		t.Errorf("%d of %d requests faulted", faulted, len(a))
	}
	differs := false
	for i := range a {
		differs = differs || a[i] != c[i]
	}
	if !differs {
		t.Error("two seeds gave the same schedule")
	}
}
