// Package retry holds the waiting that every retry loop here shares: a
// sleep that ends with its context, and capped exponential backoff with
// full jitter (AWS's "exponential backoff and jitter").
package retry

import (
	"context"
	"crypto/rand"
	"math/big"
	"time"
)

// Sleep waits d, or until ctx ends, whichever comes first; it returns
// ctx's error in the second case. A d of zero or less returns at once.
func Sleep(ctx context.Context, d time.Duration) error {
	if d <= 0 {
		return ctx.Err()
	}
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-t.C:
		return nil
	}
}

// Backoff returns the wait before retry number attempt (1 for the first
// retry): a uniformly random duration in [0, min(cap, base·2^(attempt-1))].
func Backoff(attempt int, base, cap time.Duration) time.Duration {
	d := base << min(max(attempt-1, 0), 20)
	if d > cap || d <= 0 {
		d = cap
	}
	n, err := rand.Int(rand.Reader, big.NewInt(int64(d)+1))
	if err != nil {
		return d / 2
	}
	return time.Duration(n.Int64())
}
