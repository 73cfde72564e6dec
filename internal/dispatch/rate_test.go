package dispatch_test

import (
	"math"
	"testing"

	"github.com/dispatcher-dev/dispatcher/internal/dispatch"
)

func TestRateCheckHoldsItsBoundsAtTheEdge(t *testing.T) {
	for _, tt := range []struct {
		name string
		rate dispatch.Rate
		ok   bool
	}{
		{"accepts the highest rate and burst", dispatch.Rate{PerSecond: dispatch.MaxRatePerSecond, Burst: dispatch.MaxRateBurst}, true},
		{"accepts a slow rate of one burst", dispatch.Rate{PerSecond: 0.001, Burst: 1}, true},
		{"refuses a rate one over the highest", dispatch.Rate{PerSecond: dispatch.MaxRatePerSecond + 1, Burst: 1}, false},
		{"refuses a burst one over the largest", dispatch.Rate{PerSecond: 1, Burst: dispatch.MaxRateBurst + 1}, false},
		{"refuses a zero rate", dispatch.Rate{PerSecond: 0, Burst: 1}, false},
		{"refuses a negative rate", dispatch.Rate{PerSecond: -1, Burst: 1}, false},
		{"refuses NaN", dispatch.Rate{PerSecond: math.NaN(), Burst: 1}, false},
		{"refuses infinity", dispatch.Rate{PerSecond: math.Inf(1), Burst: 1}, false},
		{"refuses a zero burst", dispatch.Rate{PerSecond: 1, Burst: 0}, false},
	} {
		t.Run(tt.name, func(t *testing.T) {
			err := tt.rate.Check()
			if (err == nil) != tt.ok {
				t.Fatalf("Check(%+v) = %v, want ok=%v", tt.rate, err, tt.ok)
			}
			if err != nil && dispatch.KindOf(err) != dispatch.Invalid {
				t.Errorf("kind %v, want invalid", dispatch.KindOf(err))
			}
		})
	}
}
