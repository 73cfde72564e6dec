package app_test

import (
	"context"
	"net/http"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-lambda-go/events"

	"github.com/dispatcher-dev/dispatcher/internal/app"
	"github.com/dispatcher-dev/dispatcher/internal/testkit/testenv"
	"github.com/dispatcher-dev/dispatcher/internal/webhook"
)

func TestMain(m *testing.M) { testenv.Main(m) }

func envOf(m map[string]string) func(string) string { return func(k string) string { return m[k] } }

func TestLoadCommandConfig(t *testing.T) {
	tests := []struct {
		name    string
		env     map[string]string
		wantErr string
	}{
		{"accepts the template's environment", map[string]string{"TABLE_NAME": "t", "UNDELIVERED_INDEX_SHARDS": "8"}, ""},
		{"requires TABLE_NAME", map[string]string{}, "TABLE_NAME is required"},
		{"rejects a shard count out of range", map[string]string{"TABLE_NAME": "t", "UNDELIVERED_INDEX_SHARDS": "0"}, "UNDELIVERED_INDEX_SHARDS"},
		{"rejects a shard count that is not a number", map[string]string{"TABLE_NAME": "t", "UNDELIVERED_INDEX_SHARDS": "eight"}, "UNDELIVERED_INDEX_SHARDS"},
		{"rejects an unknown log level", map[string]string{"TABLE_NAME": "t", "LOG_LEVEL": "LOUD"}, "LOG_LEVEL"},
		{"names every problem at once", map[string]string{"LOG_LEVEL": "LOUD"}, "TABLE_NAME is required; LOG_LEVEL"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := app.LoadCommandConfig(envOf(tt.env))
			if tt.wantErr == "" && err != nil {
				t.Fatalf("err = %v", err)
			}
			if tt.wantErr != "" && (err == nil || !strings.Contains(err.Error(), tt.wantErr)) {
				t.Fatalf("err = %v, want it to mention %q", err, tt.wantErr)
			}
		})
	}
}

const secret = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"

func TestTheCommandHandlerBuiltFromTheTemplateEnvironmentAcceptsASignedCommand(t *testing.T) {
	env := testenv.Get(t)
	vars, err := env.Stack.FunctionEnv("CommandFunction")
	if err != nil {
		t.Fatal(err)
	}
	vars["WEBHOOK_SECRETS"] = secret
	c, err := app.LoadCommandConfig(envOf(vars))
	if err != nil {
		t.Fatal(err)
	}
	h, err := app.NewCommandHandler(context.Background(), env.AWS, c)
	if err != nil {
		t.Fatal(err)
	}
	body := `{"type":"OpenAccount","aggregateId":"app-` + strconv.FormatInt(time.Now().UnixNano(), 10) + `","data":{"owner":"Grace","email":"grace@example.com","currency":"USD"}}`
	id := "msg_app_" + strconv.FormatInt(time.Now().UnixNano(), 10)
	now := time.Now()
	sig, err := webhook.Sign(secret, id, now, []byte(body))
	if err != nil {
		t.Fatal(err)
	}
	req := events.APIGatewayV2HTTPRequest{
		RouteKey: "POST /v1/commands", RawPath: "/v1/commands", Body: body,
		Headers: map[string]string{"content-type": "application/json", "webhook-id": id, "webhook-timestamp": strconv.FormatInt(now.Unix(), 10), "webhook-signature": sig},
	}
	resp, err := h.Handle(context.Background(), req)
	if err != nil || resp.StatusCode != http.StatusAccepted {
		t.Fatalf("%d %s %v", resp.StatusCode, resp.Body, err)
	}
}

func TestTheCommandHandlerRefusesToStartWithoutSecrets(t *testing.T) {
	env := testenv.Get(t)
	c, err := app.LoadCommandConfig(envOf(map[string]string{"TABLE_NAME": "t"}))
	if err != nil {
		t.Fatal(err)
	}
	_, err = app.NewCommandHandler(context.Background(), env.AWS, c)
	if err == nil || !strings.Contains(err.Error(), "WEBHOOK_SECRETS") {
		t.Fatalf("err = %v, want it to name WEBHOOK_SECRETS", err)
	}
}

func TestLoadDeliveryConfig(t *testing.T) {
	base := map[string]string{"TABLE_NAME": "t", "EVENTS_QUEUE_URL": "q", "DLQ_URL": "d", "SENDER_ADDRESS": "no-reply@example.com"}
	with := func(k, v string) map[string]string {
		m := map[string]string{k: v}
		for bk, bv := range base {
			m[bk] = bv
		}
		return m
	}
	tests := []struct {
		name      string
		env       map[string]string
		wantLease time.Duration
		wantErr   string
	}{
		{"no EMAIL_LEASE_SECONDS leaves the engine's default (2 minutes)", base, 0, ""},
		{"EMAIL_LEASE_SECONDS sets the lease", with("EMAIL_LEASE_SECONDS", "1.5"), 1500 * time.Millisecond, ""},
		{"a lease under 1 s is refused", with("EMAIL_LEASE_SECONDS", "0.5"), 0, "EMAIL_LEASE_SECONDS"},
		{"a lease over an hour is refused", with("EMAIL_LEASE_SECONDS", "3601"), 0, "EMAIL_LEASE_SECONDS"},
		{"a lease that is not a number is refused", with("EMAIL_LEASE_SECONDS", "2m"), 0, "EMAIL_LEASE_SECONDS"},
		{"names every missing variable", map[string]string{}, 0, "is required"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c, err := app.LoadDeliveryConfig(envOf(tt.env))
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("err = %v, want it to mention %q", err, tt.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if got := c.Delivery.Lease; got != tt.wantLease {
				t.Errorf("lease %v, want %v", got, tt.wantLease)
			}
		})
	}
}
