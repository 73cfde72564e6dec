package dispatch

import (
	"testing"
	"unicode/utf8"
)

func TestTruncateNeverCutsACharacterInHalf(t *testing.T) {
	for _, tt := range []struct {
		name, in string
		n        int
		want     string
	}{
		{"keeps a short string", "abc", 5, "abc"},
		{"cuts ASCII at the limit", "abcdef", 3, "abc…"},
		{"backs off to the start of a 2-byte character", "aé", 2, "a…"},
		{"backs off to the start of a 4-byte character", "a😀b", 3, "a…"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			got := Truncate(tt.in, tt.n)
			if got != tt.want || !utf8.ValidString(got) {
				t.Errorf("Truncate(%q, %d) = %q, want %q", tt.in, tt.n, got, tt.want)
			}
		})
	}
}

func TestAValidationErrorWithoutAFieldReadsAsItsMessage(t *testing.T) {
	if got := InvalidField("", "unexpected data after the JSON value").Error(); got != "validation: unexpected data after the JSON value" {
		t.Errorf("got %q", got)
	}
	if got := InvalidField("amount", "must be positive").Error(); got != "validation: amount: must be positive" {
		t.Errorf("got %q", got)
	}
}
