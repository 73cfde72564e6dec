package dispatch

import (
	"encoding/json"
	"fmt"
	"github.com/dispatcher-dev/dispatcher/outbox"
	"strconv"
	"strings"
)

// jsonTooDeep reports whether b nests objects and arrays more than max
// levels. It only counts brackets outside strings, so it runs before the
// decoders and before any field path is built: a body nested 40,000 deep
// otherwise costs memory quadratic in its depth. Malformed JSON is left to
// the decoder.
func jsonTooDeep(b []byte, max int) bool {
	depth := 0
	inString, escaped := false, false
	for _, c := range b {
		switch {
		case inString:
			switch {
			case escaped:
				escaped = false
			case c == '\\':
				escaped = true
			case c == '"':
				inString = false
			}
		case c == '"':
			inString = true
		case c == '{' || c == '[':
			depth++
			if depth > max {
				return true
			}
		case c == '}' || c == ']':
			depth--
		}
	}
	return false
}

// maxValueErrors bounds the field errors one free JSON value reports, so
// that a body of 40,000 bad numbers gets a short answer.
const maxValueErrors = 10

// checkValue checks a caller's free JSON object (a state patch, event or
// email data, decoded with json.Number) against what DynamoDB stores: its
// nesting, its numbers and its map keys. Field paths are built only for the
// errors.
func checkValue(field string, v map[string]any) []FieldError {
	w := valueWalk{path: []string{field}}
	w.walk(v, 1)
	return w.errs
}

type valueWalk struct {
	path []string // field, then one segment per level: ".key" or "[i]"
	errs []FieldError
}

func (w *valueWalk) fail(format string, args ...any) {
	if len(w.errs) < maxValueErrors {
		w.errs = append(w.errs, FieldError{strings.Join(w.path, ""), fmt.Sprintf(format, args...)})
	}
}

// walk checks v, found depth containers deep (the outermost object is 1).
func (w *valueWalk) walk(v any, depth int) {
	if len(w.errs) >= maxValueErrors {
		return
	}
	switch x := v.(type) {
	case map[string]any:
		if depth > MaxValueDepth {
			w.fail("nests objects and arrays more than %d deep (DynamoDB's limit)", MaxValueDepth)
			return
		}
		for k, e := range x {
			switch {
			case k == "":
				w.fail("has an empty key; DynamoDB map keys are 1 to %d bytes", MaxMapKeyBytes)
				continue
			case len(k) > MaxMapKeyBytes:
				w.fail("has a key of %d bytes; DynamoDB map keys are 1 to %d bytes", len(k), MaxMapKeyBytes)
				continue
			}
			w.path = append(w.path, "."+Truncate(k, 64))
			w.walk(e, depth+1)
			w.path = w.path[:len(w.path)-1]
		}
	case []any:
		if depth > MaxValueDepth {
			w.fail("nests objects and arrays more than %d deep (DynamoDB's limit)", MaxValueDepth)
			return
		}
		for i, e := range x {
			w.path = append(w.path, "["+strconv.Itoa(i)+"]")
			w.walk(e, depth+1)
			w.path = w.path[:len(w.path)-1]
		}
	case json.Number:
		if msg := checkNumber(string(x)); msg != "" {
			w.fail("%s", msg)
		}
	}
}

// checkNumber checks a JSON number's text against DynamoDB's Number: at most
// MaxNumberDigits significant digits (leading and trailing zeros do not
// count) and zero or a magnitude from 1E-130 to under 1E+126. The text is
// read exactly, never through a float. It returns "" when DynamoDB can store
// the number.
func checkNumber(s string) string {
	s = strings.TrimPrefix(s, "-")
	mant, expText, hasExp := strings.Cut(strings.ToLower(s), "e")
	intPart, frac, _ := strings.Cut(mant, ".")
	digits := strings.TrimLeft(intPart+frac, "0")
	if digits == "" {
		return "" // zero, whatever its exponent
	}
	trimmed := strings.TrimRight(digits, "0")
	// The value is 0.d1d2...dn × 10^point.
	point := len(intPart) - (len(intPart+frac) - len(digits))
	if len(trimmed) > MaxNumberDigits {
		return fmt.Sprintf("has %d significant digits; DynamoDB stores numbers of at most %d", len(trimmed), MaxNumberDigits)
	}
	if hasExp {
		// Beyond nine digits the exponent is out of range whatever the
		// mantissa, and Atoi could overflow.
		if len(strings.TrimLeft(strings.TrimLeft(expText, "+-"), "0")) > 9 {
			return rangeMessage
		}
		e, err := strconv.Atoi(strings.TrimPrefix(expText, "+"))
		if err != nil {
			return rangeMessage
		}
		point += e
	}
	// In scientific notation d1.d2... × 10^(point-1).
	if exp := point - 1; exp < MinNumberExponent || exp > MaxNumberExponent {
		return rangeMessage
	}
	return ""
}

const rangeMessage = "is outside DynamoDB's number range: zero, or a magnitude from 1E-130 to 9.9999999999999999999999999999999999999E+125"

// IsBidiControl reports the Unicode bidirectional controls a name or a
// subject must not hold (outbox.IsBidiControl says which and why).
func IsBidiControl(r rune) bool { return outbox.IsBidiControl(r) }

// bidiControl returns the first bidi control in s, if any.
func bidiControl(s string) (rune, bool) {
	for _, r := range s {
		if IsBidiControl(r) {
			return r, true
		}
	}
	return 0, false
}
