package apigw_test

import (
	"fmt"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-lambda-go/events"

	"github.com/dispatcher-dev/dispatcher/internal/dispatch"
)

// An idempotency key has one length limit, dispatch.MaxIdempotencyKeyLen,
// whichever header carries it: the Idempotency-Key, or the webhook-id of a
// signed request that sends none. A refusal names the header that was sent.
func TestIdempotencyKeyLimitIsOneForBothHeaders(t *testing.T) {
	f := newFixture(t)
	id := newID("acct")
	f.mustAccept(openAccount(id))
	n := 0
	// unique returns a key of the given length, different on every call.
	unique := func(length int) string {
		n++
		s := fmt.Sprintf("%s-%d-", id, n)
		return s + strings.Repeat("x", length-len(s))
	}
	// byWebhookID signs a deposit with a webhook-id of the given length and
	// sends no Idempotency-Key.
	byWebhookID := func(length int) events.APIGatewayV2HTTPRequest {
		return f.post(deposit(id, 1, "w"), func(r *events.APIGatewayV2HTTPRequest) { sign(t, r, secretNew, unique(length), time.Now()) })
	}
	byKey := func(length int) events.APIGatewayV2HTTPRequest {
		return f.post(deposit(id, 1, "k"), func(r *events.APIGatewayV2HTTPRequest) { r.Headers["idempotency-key"] = unique(length) })
	}
	// 256: a webhook-id as long as the webhook package accepts must be usable
	// as the request's idempotency key.
	const max = 256
	if dispatch.MaxIdempotencyKeyLen != max {
		t.Errorf("MaxIdempotencyKeyLen = %d, want %d", dispatch.MaxIdempotencyKeyLen, max)
	}
	tests := []struct {
		name   string
		req    events.APIGatewayV2HTTPRequest
		status int
		names  string // the header the refusal names
	}{
		{"accepts a webhook-id at the limit", byWebhookID(max), http.StatusAccepted, ""},
		{"refuses a webhook-id one over the limit, naming webhook-id", byWebhookID(max + 1), http.StatusUnauthorized, "webhook-id"},
		{"accepts an Idempotency-Key at the limit", byKey(max), http.StatusAccepted, ""},
		{"refuses an Idempotency-Key one over the limit, naming Idempotency-Key", byKey(max + 1), http.StatusBadRequest, "Idempotency-Key"},
		{"refuses a webhook-id with a space, naming webhook-id", f.post(deposit(id, 1, "s"), func(r *events.APIGatewayV2HTTPRequest) {
			sign(t, r, secretNew, "msg "+id, time.Now())
		}), http.StatusBadRequest, "webhook-id"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			resp, _ := f.do(tt.req)
			if resp.StatusCode != tt.status {
				t.Fatalf("status %d, want %d: %s", resp.StatusCode, tt.status, resp.Body)
			}
			if tt.names == "" {
				return
			}
			other := map[string]string{"webhook-id": "Idempotency-Key", "Idempotency-Key": "webhook-id"}[tt.names]
			if !strings.Contains(resp.Body, tt.names) || strings.Contains(resp.Body, other) {
				t.Errorf("the refusal should name %s, not %s: %s", tt.names, other, resp.Body)
			}
		})
	}
}
