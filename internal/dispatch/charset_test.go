package dispatch

import (
	"math/rand/v2"
	"regexp"
	"strings"
	"testing"
)

// The hand-written rules against the regular expressions they replace, as
// the oracle: the corpus of edge cases, then random strings over an
// alphabet that holds every class the rules tell apart.
func TestIdentifierRulesMatchTheirRegexps(t *testing.T) {
	rules := []struct {
		re *regexp.Regexp
		fn func(string) bool
	}{
		{regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9_-]*$`), isAggregateID},
		{regexp.MustCompile(`^[A-Za-z][A-Za-z0-9._-]*$`), isTypeName},
		{regexp.MustCompile(`^[a-z0-9-]{1,64}$`), isTemplateName},
	}
	corpus := []string{"", "EUR", "eur", "EU", "EURO", "E1R", "a", "A", "0", "_", "-", ".", "a-b_c.d", "0abc", "-abc", "_abc", ".abc",
		"abc\n", "ab c", "é", "aé", strings.Repeat("a", 64), strings.Repeat("a", 65), "order-1", "Order.Shipped", "a\x00"}
	const alphabet = "AZaz09_-. \né\x00Q"
	r := rand.New(rand.NewPCG(1, 2))
	for range 20000 {
		b := make([]byte, r.IntN(8))
		for i := range b {
			b[i] = alphabet[r.IntN(len(alphabet))]
		}
		corpus = append(corpus, string(b))
	}
	for _, rule := range rules {
		for _, s := range corpus {
			if got, want := rule.fn(s), rule.re.MatchString(s); got != want {
				t.Errorf("%s on %q: %v, the regexp says %v", rule.re, s, got, want)
			}
		}
	}
	re := regexp.MustCompile(`^json: unknown field "(.*)"$`)
	for _, s := range []string{`json: unknown field "x"`, `json: unknown field ""`, `json: unknown field "a"b"`, `json: unknown field x`, `json: unknown field "x`, `other`} {
		name, ok := unknownFieldName(s)
		m := re.FindStringSubmatch(s)
		if ok != (m != nil) || ok && name != m[1] {
			t.Errorf("%q: (%q, %v), the regexp says %q", s, name, ok, m)
		}
	}
}
