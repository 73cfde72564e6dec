// Package env reads a function's settings from its environment, once, at
// cold start. It is the one place that parses LOG_LEVEL and numeric
// settings, and a Reader gathers every problem so that one error names
// them all.
package env

import (
	"errors"
	"fmt"
	"github.com/dispatcher-dev/dispatcher/internal/obs"
	"log/slog"
	"strconv"
	"strings"
)

// Range is the inclusive range of an integer setting.
type Range struct{ Min, Max int }

// UNDELIVERED_INDEX_SHARDS, which every function reads, as the template's
// UndeliveredIndexShards allows it.
const DefaultIndexShards = 8

// IndexShards is the range of UNDELIVERED_INDEX_SHARDS.
var IndexShards = Range{Min: 1, Max: 64}

// ParseInt reads an integer setting: a whole number (strconv.Atoi) in r.
// The error names the variable and the range.
func ParseInt(name, s string, r Range) (int, error) {
	n, err := strconv.Atoi(s)
	if err != nil || n < r.Min || n > r.Max {
		return 0, fmt.Errorf("%s=%q must be a whole number from %d to %d", name, s, r.Min, r.Max)
	}
	return n, nil
}

// ParseFloat reads a setting that may be fractional, from lo to hi (NaN
// is refused).
func ParseFloat(name, s string, lo, hi float64) (float64, error) {
	f, err := strconv.ParseFloat(s, 64)
	if err != nil || !(f >= lo && f <= hi) {
		return 0, fmt.Errorf("%s=%q must be a number from %g to %g", name, s, lo, hi)
	}
	return f, nil
}

// ParseLogLevel reads LOG_LEVEL: DEBUG, INFO, WARN or ERROR, in any case
// (slog's own names); "" is INFO.
func ParseLogLevel(s string) (slog.Level, error) {
	if s == "" {
		return slog.LevelInfo, nil
	}
	l, err := obs.ParseLevel(s)
	if err != nil {
		return l, fmt.Errorf("LOG_LEVEL=%q must be DEBUG, INFO, WARN or ERROR", s)
	}
	return l, nil
}

// Reader reads settings and keeps every problem it finds for Err.
type Reader struct {
	getenv   func(string) string
	problems []string
}

// New returns a Reader of getenv (os.Getenv, or a map's lookup in tests
// and the local runner).
func New(getenv func(string) string) *Reader { return &Reader{getenv: getenv} }

// String returns a variable's value, "" if it is not set.
func (r *Reader) String(name string) string { return r.getenv(name) }

// Required returns a variable's value; a missing one is a problem.
func (r *Reader) Required(name string) string {
	v := r.getenv(name)
	if v == "" {
		r.Fail(name + " is required")
	}
	return v
}

// Int returns an integer setting, def if it is not set.
func (r *Reader) Int(name string, def int, rng Range) int {
	s := r.getenv(name)
	if s == "" {
		return def
	}
	n, err := ParseInt(name, s, rng)
	if err != nil {
		r.Fail(err.Error())
		return def
	}
	return n
}

// Float returns a fractional setting, def if it is not set.
func (r *Reader) Float(name string, def, lo, hi float64) float64 {
	s := r.getenv(name)
	if s == "" {
		return def
	}
	f, err := ParseFloat(name, s, lo, hi)
	if err != nil {
		r.Fail(err.Error())
		return def
	}
	return f
}

// LogLevel returns LOG_LEVEL (INFO if it is not set).
func (r *Reader) LogLevel() slog.Level {
	l, err := ParseLogLevel(r.getenv("LOG_LEVEL"))
	if err != nil {
		r.Fail(err.Error())
	}
	return l
}

// Fail records a problem found by the caller.
func (r *Reader) Fail(problem string) { r.problems = append(r.problems, problem) }

// Err returns nil, or one error that names every problem, in the order
// found, after what ("command configuration").
func (r *Reader) Err(what string) error {
	if len(r.problems) == 0 {
		return nil
	}
	return errors.New(what + ": " + strings.Join(r.problems, "; "))
}
