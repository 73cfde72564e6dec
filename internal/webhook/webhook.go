// Package webhook authenticates incoming commands by Standard Webhooks 1.0
// (https://www.standardwebhooks.com): an HMAC-SHA256 over "id.timestamp.body"
// in the webhook-signature header, a timestamp within five minutes, and up to
// two active secrets so that one can be rotated without downtime.
//
// The cryptography is the reference library's
// (github.com/standard-webhooks/standard-webhooks/libraries/go); this package
// adds what it leaves out: strict secret parsing, two secrets, header lookup
// from API Gateway's map, checks on the webhook-id (it becomes an idempotency
// key), failures that say why without saying anything secret, what a read
// signs in place of a body (SignedContent), and secrets read again from
// their source while an instance lives (Refreshing).
package webhook

import (
	"encoding/base64"
	"errors"
	"fmt"
	"net/http"
	"strconv"
	"strings"
	"time"
	"unicode"
	"unicode/utf8"

	"github.com/dispatcher-dev/dispatcher/internal/dispatch"
	standardwebhooks "github.com/standard-webhooks/standard-webhooks/libraries/go"
)

// ErrUnauthorized is wrapped by every verification failure. The failure
// itself is a *dispatch.Error of kind dispatch.Unauthorized whose Msg says
// why, in words safe to show the client.
var ErrUnauthorized = errors.New("webhook: request not authenticated")

const (
	headerID        = standardwebhooks.HeaderWebhookID
	headerTimestamp = standardwebhooks.HeaderWebhookTimestamp
	headerSignature = standardwebhooks.HeaderWebhookSignature

	secretPrefix = "whsec_"
	minKeyLen    = 24 // bytes of decoded key; the spec's lower bound
	// MaxSecrets: the current secret and, while rotating, the other one.
	MaxSecrets = 2
	// maxIDLen: the webhook-id becomes an idempotency key.
	maxIDLen = dispatch.MaxIdempotencyKeyLen
)

// Reasons a request is refused. They name headers and limits, never a
// secret or an expected signature.
const (
	reasonMissingID        = "missing webhook-id header"
	reasonMissingTimestamp = "missing webhook-timestamp header"
	reasonMissingSignature = "missing webhook-signature header"
	reasonDuplicateHeader  = "a webhook header is given twice with different values"
	reasonIDNotUTF8        = "webhook-id is not valid UTF-8"
	reasonIDControl        = "webhook-id contains control characters"
	reasonBadTimestamp     = "webhook-timestamp is not whole Unix seconds"
	reasonTooOld           = "webhook-timestamp is more than 5 minutes in the past"
	reasonTooNew           = "webhook-timestamp is more than 5 minutes in the future"
	reasonNoV1Signature    = "webhook-signature has no v1 signature"
	reasonNoMatch          = "no signature in webhook-signature matches"
)

var reasonIDTooLong = "webhook-id is longer than " + strconv.Itoa(maxIDLen) + " bytes"

// Verifier checks Standard Webhooks signatures against one or two active secrets.
type Verifier struct {
	// The library's Webhook holds the key unexported, so printing a Verifier
	// shows pointers, not key bytes.
	hooks []*standardwebhooks.Webhook
}

// NewVerifier parses the secrets: each is "whsec_" followed by the standard,
// padded base64 of a key of at least 24 bytes, and there are one or two of
// them. An error names the faulty secret by position, never by content.
func NewVerifier(secrets []string) (*Verifier, error) {
	if len(secrets) == 0 || len(secrets) > MaxSecrets {
		return nil, fmt.Errorf("webhook: %d secrets given, want 1 or 2 (the current secret and, while rotating, the other one)", len(secrets))
	}
	v := &Verifier{hooks: make([]*standardwebhooks.Webhook, 0, len(secrets))}
	for i, s := range secrets {
		wh, err := newHook(s)
		if err != nil {
			return nil, fmt.Errorf("webhook: secret %d of %d: %w", i+1, len(secrets), err)
		}
		v.hooks = append(v.hooks, wh)
	}
	return v, nil
}

// newHook decodes a secret itself rather than through the library's
// NewWebhook, which accepts a missing prefix and keys of any length.
func newHook(secret string) (*standardwebhooks.Webhook, error) {
	if secret == "" {
		return nil, errors.New("empty")
	}
	enc, ok := strings.CutPrefix(secret, secretPrefix)
	if !ok {
		return nil, errors.New("no " + secretPrefix + " prefix")
	}
	key, err := base64.StdEncoding.DecodeString(enc)
	if err != nil {
		// The decoder's error gives an offset only, but it adds nothing a
		// person fixing the configuration needs.
		return nil, errors.New("not " + secretPrefix + " followed by standard padded base64")
	}
	if len(key) < minKeyLen {
		return nil, fmt.Errorf("key is %d bytes, want at least %d", len(key), minKeyLen)
	}
	return standardwebhooks.NewWebhookRaw(key)
}

// Verify checks the webhook headers and the signed content (SignedContent: a
// POST's raw body, decoded already if API Gateway base64-encoded it; a
// read's request line) and returns the webhook-id. Header names are
// matched without regard to ASCII case. A request is accepted if any active
// secret produced any of its v1 signatures.
func (v *Verifier) Verify(headers map[string]string, body []byte) (id string, err error) {
	if v == nil || len(v.hooks) == 0 {
		// A bug in the caller, not the client's fault: not ErrUnauthorized,
		// and never accept.
		return "", errors.New("webhook: Verifier has no secrets; build it with NewVerifier")
	}
	id, ts, sig, reason := lookup(headers)
	if reason != "" {
		return "", refuse(reason)
	}
	if reason := checkID(id); reason != "" {
		return "", refuse(reason)
	}
	// The library accepts "+1614265330" or "01614265330" and then signs the
	// canonical form, so a sender using either would only ever see "no match".
	if n, err := strconv.ParseInt(ts, 10, 64); err != nil || n < 0 || strconv.FormatInt(n, 10) != ts {
		return "", refuse(reasonBadTimestamp)
	}
	if !hasV1(sig) {
		return "", refuse(reasonNoV1Signature)
	}

	h := make(http.Header, 3)
	h.Set(headerID, id)
	h.Set(headerTimestamp, ts)
	h.Set(headerSignature, sig)
	for _, wh := range v.hooks {
		err := wh.Verify(body, h)
		switch {
		case err == nil:
			return id, nil
		case errors.Is(err, standardwebhooks.ErrNoMatchingSignature):
			continue // perhaps the other secret
		case errors.Is(err, standardwebhooks.ErrMessageTooOld):
			return "", refuse(reasonTooOld)
		case errors.Is(err, standardwebhooks.ErrMessageTooNew):
			return "", refuse(reasonTooNew)
		default:
			// Headers were checked above; anything else is a library change.
			return "", dispatch.E("webhook.Verify", dispatch.Unauthorized, "the signature could not be checked", errors.Join(ErrUnauthorized, err))
		}
	}
	return "", refuse(reasonNoMatch)
}

func refuse(reason string) error {
	return dispatch.E("webhook.Verify", dispatch.Unauthorized, reason, ErrUnauthorized)
}

// lookup finds the three headers in API Gateway's map. A name given twice in
// different cases with different values is refused: which one the library
// would see would depend on map order.
func lookup(headers map[string]string) (id, ts, sig, reason string) {
	var dup bool
	get := func(name string) string {
		var val string
		var found bool
		for k, v := range headers {
			// Equal lengths keep EqualFold to ASCII: a non-ASCII rune that
			// folds to an ASCII letter (the Kelvin sign to k) is longer.
			if len(k) != len(name) || !strings.EqualFold(k, name) {
				continue
			}
			if found && v != val {
				dup = true
			}
			val, found = v, true
		}
		return val
	}
	id, ts, sig = get(headerID), get(headerTimestamp), get(headerSignature)
	switch {
	case dup:
		return "", "", "", reasonDuplicateHeader
	case id == "":
		return "", "", "", reasonMissingID
	case ts == "":
		return "", "", "", reasonMissingTimestamp
	case sig == "":
		return "", "", "", reasonMissingSignature
	}
	return id, ts, sig, ""
}

// checkID keeps the webhook-id fit to be an idempotency key: bounded, valid
// UTF-8 (DynamoDB refuses anything else) and printable in logs.
func checkID(id string) string {
	switch {
	case len(id) > maxIDLen:
		return reasonIDTooLong
	case !utf8.ValidString(id):
		return reasonIDNotUTF8
	case strings.ContainsFunc(id, unicode.IsControl):
		return reasonIDControl
	}
	return ""
}

// hasV1 reports whether the header has an entry the library would compare,
// so that a sender using only another scheme (v1a) is told so.
func hasV1(sig string) bool {
	for entry := range strings.SplitSeq(sig, " ") {
		if strings.HasPrefix(entry, "v1,") {
			return true
		}
	}
	return false
}

// Sign returns the webhook-signature header value ("v1,<base64>") for one
// secret. It is for tests and for callers' examples; the secret is checked as
// NewVerifier checks it.
func Sign(secret, id string, ts time.Time, body []byte) (string, error) {
	wh, err := newHook(secret)
	if err != nil {
		return "", fmt.Errorf("webhook: secret: %w", err)
	}
	return wh.Sign(id, ts, body)
}
