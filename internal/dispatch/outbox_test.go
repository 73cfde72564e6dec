package dispatch

import (
	"encoding/hex"
	"regexp"
	"strings"
	"testing"
	"time"
)

var uuidV7 = regexp.MustCompile(`^[0-9a-f]{8}-[0-9a-f]{4}-7[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$`)

func TestNewEventIDFormat(t *testing.T) {
	tests := []struct {
		name string
		now  time.Time
	}{
		{"formats an id for the Unix epoch", time.UnixMilli(0)},
		{"formats an id for a present time", time.Date(2025, 3, 1, 12, 0, 0, 123_000_000, time.UTC)},
		{"formats an id for a time in another zone", time.Date(2025, 3, 1, 13, 0, 0, 123_000_000, time.FixedZone("CET", 3600))},
		{"formats an id for the last millisecond of 48 bits", time.UnixMilli(1<<48 - 1)},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			for range 200 { // the version and variant bits must hold whatever the random bits are
				id := NewEventID(tt.now)
				if !uuidV7.MatchString(id) {
					t.Fatalf("NewEventID = %q, not a UUIDv7", id)
				}
				ts, err := hex.DecodeString(strings.ReplaceAll(id, "-", "")[:12])
				if err != nil {
					t.Fatal(err)
				}
				var ms int64
				for _, b := range ts {
					ms = ms<<8 | int64(b)
				}
				if want := tt.now.UnixMilli(); ms != want {
					t.Fatalf("NewEventID = %q carries %d ms, want %d", id, ms, want)
				}
			}
		})
	}
}

func TestNewEventIDOrder(t *testing.T) {
	base := time.Date(2025, 3, 1, 12, 0, 0, 0, time.UTC)
	tests := []struct {
		name string
		step time.Duration
	}{
		{"sorts ids one millisecond apart", time.Millisecond},
		{"sorts ids one second apart", time.Second},
		{"sorts ids a year apart", 365 * 24 * time.Hour},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			prev := NewEventID(base)
			for i := 1; i <= 500; i++ {
				id := NewEventID(base.Add(time.Duration(i) * tt.step))
				if id <= prev {
					t.Fatalf("id %q at step %d does not sort after %q", id, i, prev)
				}
				prev = id
			}
		})
	}
}

func TestNewEventIDUnique(t *testing.T) {
	tests := []struct {
		name string
		now  func(i int) time.Time
	}{
		{"gives 10000 unique ids within one millisecond", func(int) time.Time { return time.UnixMilli(1_740_830_400_000) }},
		{"gives 10000 unique ids from the clock", func(int) time.Time { return time.Now() }},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			seen := make(map[string]int, 10000)
			for i := range 10000 {
				id := NewEventID(tt.now(i))
				if j, dup := seen[id]; dup {
					t.Fatalf("id %q repeated at %d and %d", id, j, i)
				}
				seen[id] = i
			}
		})
	}
}
