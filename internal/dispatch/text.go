package dispatch

import "unicode/utf8"

// Truncate cuts s to at most n bytes, never inside a UTF-8 sequence (a
// DynamoDB string must be valid UTF-8), and marks the cut with "…".
func Truncate(s string, n int) string {
	if len(s) <= n {
		return s
	}
	for n > 0 && !utf8.RuneStart(s[n]) {
		n--
	}
	return s[:n] + "…"
}
