package dispatch

import (
	"fmt"
	"math"
)

// A Rate's bounds: the one place they are set. The caller registry checks a
// caller document's rate with them, the rate limiter every rate it is given,
// the template's CallerRatePerSecond and CallerBurst stay inside them.
const (
	// MaxRatePerSecond is a caller's highest rate: API Gateway's account-wide
	// default of 10,000 requests a second, above which no caller can go.
	MaxRatePerSecond = 10_000
	// MaxRateBurst is a caller's largest burst: API Gateway's account-wide
	// default burst of 5,000.
	MaxRateBurst = 5_000
)

// Check reports whether r is a usable token bucket: PerSecond above 0 and at
// most MaxRatePerSecond, Burst from 1 to MaxRateBurst. It returns an Invalid
// error naming the bound.
func (r Rate) Check() error {
	const op = "dispatch.Rate"
	switch {
	case math.IsNaN(r.PerSecond) || r.PerSecond <= 0 || r.PerSecond > MaxRatePerSecond:
		return E(op, Invalid, fmt.Sprintf("perSecond must be above 0 and at most %d, not %g", MaxRatePerSecond, r.PerSecond), nil)
	case r.Burst < 1 || r.Burst > MaxRateBurst:
		return E(op, Invalid, fmt.Sprintf("burst must be from 1 to %d, not %d", MaxRateBurst, r.Burst), nil)
	}
	return nil
}
