package webhook

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
	"strconv"
	"testing"
	"time"
)

func TestSignedContent(t *testing.T) {
	tests := []struct {
		name                string
		method, path, query string
		body                string
		want                string
	}{
		{"signs a POST's body", "POST", "/v1/commands", "", `{"a":1}`, `{"a":1}`},
		{"signs a POST's body, not its path or query", "POST", "/v1/commands", "x=1", `{"a":1}`, `{"a":1}`},
		{"signs a GET's request line", "GET", "/v1/aggregates/acct-1", "", "", "GET /v1/aggregates/acct-1"},
		{"signs a GET's query as sent", "GET", "/v1/aggregates/acct-1/outbox", "limit=10&cursor=abc", "", "GET /v1/aggregates/acct-1/outbox?limit=10&cursor=abc"},
		{"keeps the query's order and repeats", "GET", "/p", "b=2&a=1&a=1", "", "GET /p?b=2&a=1&a=1"},
		{"keeps percent-encoding as sent", "GET", "/v1/aggregates/acc%2043", "cursor=a%2Bb", "", "GET /v1/aggregates/acc%2043?cursor=a%2Bb"},
		{"ignores a GET's body", "GET", "/p", "", "ignored", "GET /p"},
		{"signs other methods' request lines", "DELETE", "/v1/aggregates/a", "", "", "DELETE /v1/aggregates/a"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := string(SignedContent(tt.method, tt.path, tt.query, []byte(tt.body))); got != tt.want {
				t.Errorf("SignedContent = %q, want %q", got, tt.want)
			}
		})
	}
}

// A GET signed the way docs/api.md shows (HMAC-SHA256 over
// "id.timestamp.GET path?query", by hand, as openssl does) verifies.
func TestAGetSignedByHandVerifies(t *testing.T) {
	key := []byte("0123456789abcdef0123456789abcdef")
	secret := secretPrefix + base64.StdEncoding.EncodeToString(key)
	v, err := NewVerifier([]string{secret})
	if err != nil {
		t.Fatal(err)
	}
	ts := strconv.FormatInt(time.Now().Unix(), 10)
	mac := hmac.New(sha256.New, key)
	mac.Write([]byte("msg_get." + ts + ".GET /v1/aggregates/acct-1/outbox?limit=10"))
	headers := map[string]string{
		"webhook-id": "msg_get", "webhook-timestamp": ts,
		"webhook-signature": "v1," + base64.StdEncoding.EncodeToString(mac.Sum(nil)),
	}
	if _, err := v.Verify(headers, SignedContent("GET", "/v1/aggregates/acct-1/outbox", "limit=10", nil)); err != nil {
		t.Errorf("the request's own line: %v", err)
	}
	if _, err := v.Verify(headers, SignedContent("GET", "/v1/aggregates/acct-2/outbox", "limit=10", nil)); err == nil {
		t.Error("another aggregate's line was accepted")
	}
}
