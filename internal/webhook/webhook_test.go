package webhook

import (
	"bytes"
	"encoding/base64"
	"errors"
	"maps"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/dispatcher-dev/dispatcher/internal/dispatch"
)

// secret makes a whsec_ secret whose key is n bytes of b.
func secret(b byte, n int) string {
	return secretPrefix + base64.StdEncoding.EncodeToString(bytes.Repeat([]byte{b}, n))
}

var (
	current  = secret('c', 32)
	previous = secret('p', 24)
	stranger = secret('s', 32)
)

const msgID = "msg_2bKJn7Yc0xq4"

var body = []byte(`{"type":"order.place","aggregateId":"o-1"}`)

func sign(t *testing.T, sec, id string, ts time.Time, b []byte) string {
	t.Helper()
	sig, err := Sign(sec, id, ts, b)
	if err != nil {
		t.Fatalf("Sign: %v", err)
	}
	return sig
}

// signed returns the headers a sender with sec would send for id and body at ts.
func signed(t *testing.T, sec, id string, ts time.Time, b []byte) map[string]string {
	t.Helper()
	return map[string]string{
		"webhook-id":        id,
		"webhook-timestamp": strconv.FormatInt(ts.Unix(), 10),
		"webhook-signature": sign(t, sec, id, ts, b),
		"content-type":      "application/json",
	}
}

func with(h map[string]string, kv ...string) map[string]string {
	h = maps.Clone(h)
	for i := 0; i < len(kv); i += 2 {
		h[kv[i]] = kv[i+1]
	}
	return h
}

func without(h map[string]string, keys ...string) map[string]string {
	h = maps.Clone(h)
	for _, k := range keys {
		delete(h, k)
	}
	return h
}

func TestVerify(t *testing.T) {
	now := time.Now()
	good := signed(t, current, msgID, now, body)
	longID := strings.Repeat("x", maxIDLen)

	tests := []struct {
		name    string
		secrets []string
		headers map[string]string
		body    []byte
		reason  string // empty: accepted
	}{
		{"accepts a signature from the only secret", []string{current}, good, body, ""},
		{"accepts a signature from the first secret during rotation", []string{current, previous}, good, body, ""},
		{"accepts a signature from the second secret during rotation", []string{previous, current}, good, body, ""},
		{
			"accepts a header with several signatures of which one matches", []string{current},
			with(good, "webhook-signature", sign(t, stranger, msgID, now, body)+" v1a,c29tZXRoaW5n "+good["webhook-signature"]), body, "",
		},
		{
			"accepts header names in any letter case", []string{current},
			map[string]string{"Webhook-Id": msgID, "WEBHOOK-TIMESTAMP": good["webhook-timestamp"], "webhook-Signature": good["webhook-signature"]}, body, "",
		},
		{
			"accepts the same header twice in different cases with the same value", []string{current},
			with(good, "Webhook-Id", msgID), body, "",
		},
		{"accepts a timestamp four minutes old", []string{current}, signed(t, current, msgID, now.Add(-4*time.Minute), body), body, ""},
		{"accepts a timestamp four minutes in the future", []string{current}, signed(t, current, msgID, now.Add(4*time.Minute), body), body, ""},
		{"accepts an empty body signed as empty", []string{current}, signed(t, current, msgID, now, nil), []byte{}, ""},
		{"accepts a webhook-id at the limit (256 bytes)", []string{current}, signed(t, current, longID, now, body), body, ""},

		{"rejects a signature from a secret that is not active", []string{current, previous}, signed(t, stranger, msgID, now, body), body, reasonNoMatch},
		{"rejects a body changed after signing", []string{current}, good, []byte(`{"type":"order.place","aggregateId":"o-2"}`), reasonNoMatch},
		{"rejects a body with a byte appended after signing", []string{current}, good, append(bytes.Clone(body), '\n'), reasonNoMatch},
		{"rejects a webhook-id changed after signing", []string{current}, with(good, "webhook-id", "msg_other"), body, reasonNoMatch},
		{
			"rejects a webhook-timestamp changed after signing", []string{current},
			with(good, "webhook-timestamp", strconv.FormatInt(now.Add(-time.Minute).Unix(), 10)), body, reasonNoMatch,
		},
		{
			"rejects a signature made with the secret's text instead of its decoded key", []string{current},
			with(good, "webhook-signature", sign(t, secretPrefix+base64.StdEncoding.EncodeToString([]byte(current)), msgID, now, body)), body, reasonNoMatch,
		},
		{"rejects a truncated signature", []string{current}, with(good, "webhook-signature", good["webhook-signature"][:20]), body, reasonNoMatch},
		{"rejects a timestamp six minutes old", []string{current}, signed(t, current, msgID, now.Add(-6*time.Minute), body), body, reasonTooOld},
		{"rejects a timestamp six minutes in the future", []string{current}, signed(t, current, msgID, now.Add(6*time.Minute), body), body, reasonTooNew},
		{"rejects a timestamp in milliseconds", []string{current}, with(good, "webhook-timestamp", strconv.FormatInt(now.UnixMilli(), 10)), body, reasonTooNew},
		{"rejects a missing webhook-id", []string{current}, without(good, "webhook-id"), body, reasonMissingID},
		{"rejects a missing webhook-timestamp", []string{current}, without(good, "webhook-timestamp"), body, reasonMissingTimestamp},
		{"rejects a missing webhook-signature", []string{current}, without(good, "webhook-signature"), body, reasonMissingSignature},
		{"rejects an empty webhook-id", []string{current}, with(good, "webhook-id", ""), body, reasonMissingID},
		{"rejects no headers at all", []string{current}, nil, body, reasonMissingID},
		{
			"rejects a header name that matches webhook-id only through Unicode folding", []string{current},
			map[string]string{"webhoo\u212a-id": msgID, "webhook-timestamp": good["webhook-timestamp"], "webhook-signature": good["webhook-signature"]}, body, reasonMissingID,
		},
		{"rejects the same header twice in different cases with different values", []string{current}, with(good, "Webhook-Id", "msg_other"), body, reasonDuplicateHeader},
		{"rejects a non-numeric timestamp", []string{current}, with(good, "webhook-timestamp", "yesterday"), body, reasonBadTimestamp},
		{"rejects a timestamp with a fraction", []string{current}, with(good, "webhook-timestamp", good["webhook-timestamp"]+".5"), body, reasonBadTimestamp},
		{"rejects a timestamp with a plus sign", []string{current}, with(good, "webhook-timestamp", "+"+good["webhook-timestamp"]), body, reasonBadTimestamp},
		{"rejects a timestamp with a leading zero", []string{current}, with(good, "webhook-timestamp", "0"+good["webhook-timestamp"]), body, reasonBadTimestamp},
		{"rejects a negative timestamp", []string{current}, with(good, "webhook-timestamp", "-1"), body, reasonBadTimestamp},
		{"rejects a timestamp that overflows int64", []string{current}, with(good, "webhook-timestamp", "99999999999999999999"), body, reasonBadTimestamp},
		{"rejects a signature without a version", []string{current}, with(good, "webhook-signature", strings.TrimPrefix(good["webhook-signature"], "v1,")), body, reasonNoV1Signature},
		{"rejects a signature with only another scheme", []string{current}, with(good, "webhook-signature", "v1a,"+strings.TrimPrefix(good["webhook-signature"], "v1,")), body, reasonNoV1Signature},
		{"rejects a webhook-id one byte over the limit even when signed", []string{current}, signed(t, current, longID+"x", now, body), body, reasonIDTooLong},
		{"rejects a webhook-id with a newline even when signed", []string{current}, signed(t, current, "msg_1\nforged log line", now, body), body, reasonIDControl},
		{"rejects a webhook-id with a NUL even when signed", []string{current}, signed(t, current, "msg_\x001", now, body), body, reasonIDControl},
		{"rejects a webhook-id with DEL even when signed", []string{current}, signed(t, current, "msg_\x7f1", now, body), body, reasonIDControl},
		{"rejects a webhook-id with a C1 control character even when signed", []string{current}, signed(t, current, "msg_\u00851", now, body), body, reasonIDControl},
		{"rejects a webhook-id that is not UTF-8 even when signed", []string{current}, signed(t, current, "msg_\xff1", now, body), body, reasonIDNotUTF8},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			v, err := NewVerifier(tt.secrets)
			if err != nil {
				t.Fatalf("NewVerifier: %v", err)
			}
			id, err := v.Verify(tt.headers, tt.body)
			if tt.reason == "" {
				if err != nil {
					t.Fatalf("Verify: %v, want accepted", err)
				}
				if want := header(tt.headers, "webhook-id"); id != want {
					t.Errorf("id = %q, want %q", id, want)
				}
				return
			}
			if err == nil {
				t.Fatalf("Verify accepted (id %q), want %q", id, tt.reason)
			}
			if id != "" {
				t.Errorf("id = %q on failure, want empty", id)
			}
			if !errors.Is(err, ErrUnauthorized) {
				t.Errorf("error %v does not wrap ErrUnauthorized", err)
			}
			if k := dispatch.KindOf(err); k != dispatch.Unauthorized {
				t.Errorf("kind = %v, want unauthorized", k)
			}
			var de *dispatch.Error
			if !errors.As(err, &de) || de.Msg != tt.reason {
				t.Errorf("error %v, want reason %q", err, tt.reason)
			}
			for _, s := range append([]string{stranger}, tt.secrets...) {
				if strings.Contains(err.Error(), strings.TrimPrefix(s, secretPrefix)) {
					t.Errorf("error %q contains a secret", err)
				}
			}
		})
	}
}

func header(h map[string]string, name string) string {
	for k, v := range h {
		if strings.EqualFold(k, name) {
			return v
		}
	}
	return ""
}

func TestVerifyWithoutSecrets(t *testing.T) {
	h := signed(t, current, msgID, time.Now(), body)
	for name, v := range map[string]*Verifier{"nil Verifier": nil, "zero Verifier": {}} {
		t.Run("refuses with a "+name+" and blames the caller", func(t *testing.T) {
			id, err := v.Verify(h, body)
			if err == nil {
				t.Fatalf("Verify accepted (id %q)", id)
			}
			if errors.Is(err, ErrUnauthorized) || dispatch.KindOf(err) != dispatch.Internal {
				t.Errorf("error %v: want an internal error, not the client's", err)
			}
		})
	}
}

func TestNewVerifier(t *testing.T) {
	tests := []struct {
		name    string
		secrets []string
		wantErr string // substring; empty: accepted
	}{
		{"accepts one secret", []string{current}, ""},
		{"accepts two secrets", []string{current, previous}, ""},
		{"accepts a key of exactly 24 bytes", []string{secret('k', 24)}, ""},
		{"rejects no secrets", nil, "0 secrets given, want 1 or 2"},
		{"rejects three secrets", []string{current, previous, stranger}, "3 secrets given, want 1 or 2"},
		{"rejects a secret without the whsec_ prefix", []string{current, strings.TrimPrefix(previous, secretPrefix)}, "secret 2 of 2: no whsec_ prefix"},
		{"rejects a secret with the prefix in another case", []string{"WHSEC_" + strings.TrimPrefix(current, secretPrefix)}, "secret 1 of 1: no whsec_ prefix"},
		{"rejects an empty secret", []string{""}, "secret 1 of 1: empty"},
		{"rejects a secret that is not base64", []string{secretPrefix + "not*base64*at*all*but*long*enough"}, "secret 1 of 1: not whsec_ followed by standard padded base64"},
		{"rejects a secret in URL-safe base64", []string{secretPrefix + base64.URLEncoding.EncodeToString(bytes.Repeat([]byte{0xfb}, 24))}, "secret 1 of 1: not whsec_"},
		{"rejects a secret without its base64 padding", []string{secretPrefix + base64.RawStdEncoding.EncodeToString(bytes.Repeat([]byte{'k'}, 32))}, "secret 1 of 1: not whsec_"},
		{"rejects a key of 23 bytes", []string{current, secret('k', 23)}, "secret 2 of 2: key is 23 bytes, want at least 24"},
		{"rejects the prefix alone", []string{secretPrefix}, "secret 1 of 1: key is 0 bytes"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			v, err := NewVerifier(tt.secrets)
			if tt.wantErr == "" {
				if err != nil || v == nil {
					t.Fatalf("NewVerifier = %v, %v; want a Verifier", v, err)
				}
				return
			}
			if err == nil {
				t.Fatalf("NewVerifier accepted, want error containing %q", tt.wantErr)
			}
			if !strings.Contains(err.Error(), tt.wantErr) {
				t.Errorf("error %q, want it to contain %q", err, tt.wantErr)
			}
			for _, s := range tt.secrets {
				if enc := strings.TrimPrefix(s, secretPrefix); len(enc) > 4 && strings.Contains(err.Error(), enc) {
					t.Errorf("error %q contains a secret", err)
				}
			}
		})
	}
}

func TestSign(t *testing.T) {
	tests := []struct {
		name    string
		secret  string
		want    string
		wantErr string
	}{
		{
			// The example every Standard Webhooks library is tested against.
			name:   "signs the Standard Webhooks reference example",
			secret: "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw",
			want:   "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE=",
		},
		{name: "rejects a secret without the whsec_ prefix", secret: "MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw", wantErr: "no whsec_ prefix"},
		{name: "rejects a secret with a short key", secret: secret('k', 16), wantErr: "key is 16 bytes"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := Sign(tt.secret, "msg_p5jXN8AQM9LWM0D4loKWxJek", time.Unix(1614265330, 0), []byte(`{"test": 2432232314}`))
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("Sign = %q, %v; want error containing %q", got, err, tt.wantErr)
				}
				return
			}
			if err != nil || got != tt.want {
				t.Fatalf("Sign = %q, %v; want %q", got, err, tt.want)
			}
		})
	}
}

// The webhook-id of a request without an Idempotency-Key is its idempotency
// key: the two limits are one, so that no webhook-id this package accepts is
// refused as a key.
func TestTheWebhookIDLimitIsTheIdempotencyKeyLimit(t *testing.T) {
	if maxIDLen != dispatch.MaxIdempotencyKeyLen || maxIDLen < 256 {
		t.Errorf("maxIDLen = %d, MaxIdempotencyKeyLen = %d: want one limit of at least 256", maxIDLen, dispatch.MaxIdempotencyKeyLen)
	}
}
