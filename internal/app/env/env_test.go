package env

import (
	"log/slog"
	"strings"
	"testing"
)

func TestParseInt(t *testing.T) {
	r := Range{Min: 1, Max: 256}
	tests := []struct {
		name string
		in   string
		want int // -1: refused
	}{
		{"accepts the lower bound", "1", 1},
		{"accepts the upper bound", "256", 256},
		{"accepts a number in range", "16", 16},
		{"refuses 1.5", "1.5", -1},
		{"refuses 2.0", "2.0", -1},
		{"refuses an exponent", "1e2", -1},
		{"refuses below the range", "0", -1},
		{"refuses above the range", "257", -1},
		{"refuses a negative number", "-1", -1},
		{"refuses spaces", " 8", -1},
		{"refuses a word", "eight", -1},
		{"refuses the empty string", "", -1},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := ParseInt("RELAY_WORKERS", tt.in, r)
			if tt.want < 0 {
				want := `RELAY_WORKERS="` + tt.in + `" must be a whole number from 1 to 256`
				if err == nil || err.Error() != want {
					t.Fatalf("ParseInt(%q) = %d, %v; want the error %q", tt.in, got, err, want)
				}
				return
			}
			if err != nil || got != tt.want {
				t.Fatalf("ParseInt(%q) = %d, %v; want %d", tt.in, got, err, tt.want)
			}
		})
	}
}

func TestParseFloat(t *testing.T) {
	tests := []struct {
		name string
		in   string
		ok   bool
	}{
		{"accepts a fraction", "0.5", true},
		{"accepts a whole number", "14", true},
		{"accepts the bounds", "100000", true},
		{"refuses below the range", "0.05", false},
		{"refuses above the range", "100001", false},
		{"refuses NaN", "NaN", false},
		{"refuses infinity", "Inf", false},
		{"refuses a word", "fast", false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := ParseFloat("SES_ACCOUNT_SEND_RATE", tt.in, 0.1, 100000)
			if tt.ok != (err == nil) {
				t.Fatalf("ParseFloat(%q): %v", tt.in, err)
			}
			if err != nil && !strings.Contains(err.Error(), "SES_ACCOUNT_SEND_RATE") {
				t.Fatalf("err %v does not name the variable", err)
			}
		})
	}
}

func TestParseLogLevel(t *testing.T) {
	tests := []struct {
		in   string
		want slog.Level
		ok   bool
	}{
		{"", slog.LevelInfo, true},
		{"DEBUG", slog.LevelDebug, true},
		{"debug", slog.LevelDebug, true},
		{"INFO", slog.LevelInfo, true},
		{"WARN", slog.LevelWarn, true},
		{"ERROR", slog.LevelError, true},
		{"LOUD", 0, false},
		{"3", 0, false},
	}
	for _, tt := range tests {
		t.Run("LOG_LEVEL="+tt.in, func(t *testing.T) {
			got, err := ParseLogLevel(tt.in)
			if !tt.ok {
				if err == nil || !strings.Contains(err.Error(), "LOG_LEVEL") {
					t.Fatalf("ParseLogLevel(%q) = %v, %v; want an error naming LOG_LEVEL", tt.in, got, err)
				}
				return
			}
			if err != nil || got != tt.want {
				t.Fatalf("ParseLogLevel(%q) = %v, %v; want %v", tt.in, got, err, tt.want)
			}
		})
	}
}

func TestReaderNamesEveryProblemInOrder(t *testing.T) {
	vars := map[string]string{"A": "1.5", "LOG_LEVEL": "LOUD", "C": "7"}
	r := New(func(k string) string { return vars[k] })
	if got := r.Int("A", 3, Range{1, 10}); got != 3 {
		t.Errorf("a refused value gave %d, want the default 3", got)
	}
	r.Required("B")
	r.LogLevel()
	if got := r.Int("C", 3, Range{1, 10}); got != 7 {
		t.Errorf("C = %d, want 7", got)
	}
	if got := r.Int("D", 3, Range{1, 10}); got != 3 {
		t.Errorf("unset D = %d, want the default 3", got)
	}
	want := `test configuration: A="1.5" must be a whole number from 1 to 10; B is required; LOG_LEVEL="LOUD" must be DEBUG, INFO, WARN or ERROR`
	if err := r.Err("test configuration"); err == nil || err.Error() != want {
		t.Fatalf("err = %v, want %q", err, want)
	}
	if err := New(func(string) string { return "" }).Err("x"); err != nil {
		t.Fatalf("no problem, err = %v", err)
	}
}
