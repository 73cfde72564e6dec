package dispatch

import "strings"

// The identifier rules, written out rather than as regular expressions:
// compiling five regexps was a quarter of a millisecond of every cold start
// (GODEBUG=inittrace=1), for patterns this small.

// isAggregateID matches ^[A-Za-z0-9][A-Za-z0-9_-]*$.
func isAggregateID(s string) bool {
	return s != "" && isAlnum(s[0]) && isIn(s, func(c byte) bool { return isAlnum(c) || c == '_' || c == '-' })
}

// isTypeName matches ^[A-Za-z][A-Za-z0-9._-]*$.
func isTypeName(s string) bool {
	return s != "" && isAlpha(s[0]) && isIn(s, func(c byte) bool { return isAlnum(c) || c == '.' || c == '_' || c == '-' })
}

// isTemplateName matches ^[a-z0-9-]{1,64}$.
func isTemplateName(s string) bool {
	return len(s) >= 1 && len(s) <= 64 && isIn(s, func(c byte) bool { return 'a' <= c && c <= 'z' || '0' <= c && c <= '9' || c == '-' })
}

// unknownFieldName returns the field that encoding/json's
// DisallowUnknownFields error names (`json: unknown field "x"`).
func unknownFieldName(msg string) (string, bool) {
	rest, ok := strings.CutPrefix(msg, `json: unknown field "`)
	if !ok {
		return "", false
	}
	return strings.CutSuffix(rest, `"`)
}

func isIn(s string, ok func(byte) bool) bool {
	for i := 0; i < len(s); i++ {
		if !ok(s[i]) {
			return false
		}
	}
	return true
}

func isAlpha(c byte) bool { return 'A' <= c && c <= 'Z' || 'a' <= c && c <= 'z' }
func isAlnum(c byte) bool { return isAlpha(c) || '0' <= c && c <= '9' }
