package sqsspec

import "testing"

// SQS's message charset at its edges (the emulator agrees on U+FFFE and a
// control character: internal/sqs, TestSend).
func TestValidTextIsSQSsCharset(t *testing.T) {
	tests := map[string]bool{
		"":                   true,
		"\t\n\r":             true,
		"\x1f":               false,
		" ~\x7f":             true,
		"\uD7FF\uE000":       true,
		"\uFFFD":             true, // the replacement character itself
		"\uFFFE":             false,
		"\uFFFF":             false,
		"\U00010000":         true,
		"\U0010FFFF":         true,
		"ok \xff":            false, // not UTF-8
		`{"s":"\uFFFE"}`:     true,  // escaped in JSON: six ASCII characters
		"{\"s\":\"\uFFFE\"}": false,
	}
	for s, want := range tests {
		if got := ValidText(s); got != want {
			t.Errorf("ValidText(%q) = %v, want %v", s, got, want)
		}
	}
}
