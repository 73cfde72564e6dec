package retry

import (
	"context"
	"errors"
	"testing"
	"time"
)

func TestBackoffStaysWithinItsCappedExponentialBound(t *testing.T) {
	base, cap := 10*time.Millisecond, 80*time.Millisecond
	for attempt, bound := range map[int]time.Duration{1: 10 * time.Millisecond, 2: 20 * time.Millisecond, 3: 40 * time.Millisecond, 4: 80 * time.Millisecond, 30: 80 * time.Millisecond} {
		var top time.Duration
		for range 2000 {
			d := Backoff(attempt, base, cap)
			if d < 0 || d > bound {
				t.Fatalf("attempt %d: %s outside [0, %s]", attempt, d, bound)
			}
			top = max(top, d)
		}
		// Full jitter: the draws reach well into the upper half of the range.
		if top < bound/2 {
			t.Errorf("attempt %d: the largest of 2000 draws is %s, want some above %s", attempt, top, bound/2)
		}
	}
}

func TestSleepEndsWithItsContext(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if err := Sleep(ctx, time.Hour); !errors.Is(err, context.Canceled) {
		t.Errorf("Sleep on a cancelled context: %v, want context.Canceled", err)
	}
	if err := Sleep(context.Background(), time.Millisecond); err != nil {
		t.Errorf("Sleep 1ms: %v", err)
	}
}
