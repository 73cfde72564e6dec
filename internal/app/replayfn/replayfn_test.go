package replayfn

import (
	"context"
	"strings"
	"testing"

	"github.com/aws/aws-sdk-go-v2/aws"
)

// Build reads the relay's settings, checks them before it builds
// anything, and makes no call.
func TestBuild(t *testing.T) {
	vars := map[string]string{"TABLE_NAME": "t", "EVENTS_QUEUE_URL": "q", "DLQ_URL": "d", "SENDER_ADDRESS": "no-reply@example.com"}
	getenv := func(k string) string { return vars[k] }
	cfg := aws.Config{Region: "us-east-1"}
	if r, err := Build(context.Background(), cfg, getenv); err != nil || r == nil {
		t.Fatalf("Build = %v, %v; want a replayer", r, err)
	}
	vars["EMAIL_LEASE_SECONDS"] = "1.5"
	_, err := Build(context.Background(), cfg, getenv)
	if err == nil || !strings.Contains(err.Error(), `EMAIL_LEASE_SECONDS="1.5" must be a whole number from 1 to 3600`) {
		t.Fatalf("err = %v, want it to refuse EMAIL_LEASE_SECONDS=1.5", err)
	}
	delete(vars, "EMAIL_LEASE_SECONDS")
	delete(vars, "DLQ_URL")
	if _, err := Build(context.Background(), cfg, getenv); err == nil || !strings.Contains(err.Error(), "DLQ_URL is required") {
		t.Fatalf("err = %v, want it to require DLQ_URL", err)
	}
}
