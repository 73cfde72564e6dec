package outbox

import (
	"crypto/rand"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"net/mail"
	"strings"
	"time"
	"unicode/utf8"
)

// ValidAggregateID reports whether id is a usable aggregate id: 1 to
// MaxAggregateIDLen characters of [A-Za-z0-9_-], starting with a letter or
// digit (no dots or slashes, so it can never climb a path).
func ValidAggregateID(id string) bool {
	return id != "" && len(id) <= MaxAggregateIDLen && isAlnum(id[0]) &&
		isIn(id, func(c byte) bool { return isAlnum(c) || c == '_' || c == '-' })
}

// validTypeName matches ^[A-Za-z][A-Za-z0-9._-]*$, at most MaxTypeLen long.
func validTypeName(v string) bool {
	return v != "" && len(v) <= MaxTypeLen && isAlpha(v[0]) &&
		isIn(v, func(c byte) bool { return isAlnum(c) || c == '.' || c == '_' || c == '-' })
}

// validTemplateName matches ^[a-z0-9-]{1,64}$.
func validTemplateName(v string) bool {
	return v != "" && len(v) <= MaxTemplateLen &&
		isIn(v, func(c byte) bool { return 'a' <= c && c <= 'z' || '0' <= c && c <= '9' || c == '-' })
}

func isAlpha(c byte) bool { return 'a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' }
func isAlnum(c byte) bool { return isAlpha(c) || '0' <= c && c <= '9' }
func isIn(v string, ok func(byte) bool) bool {
	for i := 0; i < len(v); i++ {
		if !ok(v[i]) {
			return false
		}
	}
	return true
}

// ParseAddress checks one recipient by what SES sends to and returns it
// bare (a display name is dropped): 7-bit ASCII (SES speaks no SMTPUTF8, so
// an internationalized domain goes in punycode), one @, a host name after
// it, at most MaxAddressLen characters. The error says what is wrong
// without repeating the address.
func ParseAddress(v string) (string, error) {
	if v == "" {
		return "", errors.New("is required")
	}
	if hasControl(v) || len(v) > MaxAddressLen {
		return "", errors.New("is not a valid email address")
	}
	a, err := mail.ParseAddress(v)
	if err != nil || !strings.Contains(a.Address, "@") {
		return "", errors.New("is not a valid email address")
	}
	local, domain, _ := strings.Cut(a.Address, "@")
	// net/mail unquotes a quoted local part ("a b"@x becomes a b@x), which
	// would no longer be one valid address on its own: refuse those.
	if local == "" || strings.Count(a.Address, "@") != 1 || strings.ContainsAny(local, " \"\\(),:;<>[]") ||
		!strings.Contains(domain, ".") || strings.HasSuffix(domain, ".") {
		return "", errors.New("is not a valid email address")
	}
	switch {
	case !isASCII(local):
		return "", errors.New("the part before @ must be ASCII: internationalized local parts cannot be sent")
	case len(local) > MaxLocalPartLen:
		return "", errors.New("the part before @ must be at most 64 characters")
	case strings.HasPrefix(domain, "["):
		return "", errors.New("must have a domain name after @, not an address literal")
	case !isASCII(domain):
		return "", errors.New("the domain must be ASCII: write an internationalized domain in punycode (xn--...)")
	case !hostName(domain):
		return "", errors.New("the domain must be a host name: labels of letters, digits and inner hyphens, 1 to 63 characters each")
	}
	return a.Address, nil
}

func isASCII(v string) bool {
	for i := 0; i < len(v); i++ {
		if v[i] >= utf8.RuneSelf {
			return false
		}
	}
	return true
}

// hostName reports whether an ASCII domain is a host name (RFC 1123):
// dot-separated labels of letters, digits and hyphens, 1 to 63 characters,
// not starting or ending with a hyphen.
func hostName(domain string) bool {
	for _, label := range strings.Split(domain, ".") {
		if label == "" || len(label) > 63 || label[0] == '-' || label[len(label)-1] == '-' {
			return false
		}
		if !isIn(label, func(c byte) bool { return isAlnum(c) || c == '-' }) {
			return false
		}
	}
	return true
}

// NewEventID returns a UUIDv7 (RFC 9562): time-ordered, so ids sort by
// creation, with 74 random bits.
func NewEventID(now time.Time) string {
	var b [16]byte
	_, _ = rand.Read(b[6:])
	ms := uint64(now.UnixMilli())
	var ts [8]byte
	binary.BigEndian.PutUint64(ts[:], ms)
	copy(b[0:6], ts[2:8])
	b[6] = 0x70 | (b[6] & 0x0f) // version 7
	b[8] = 0x80 | (b[8] & 0x3f) // variant 10
	h := hex.EncodeToString(b[:])
	return h[0:8] + "-" + h[8:12] + "-" + h[12:16] + "-" + h[16:20] + "-" + h[20:32]
}
