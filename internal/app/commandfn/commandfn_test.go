package commandfn

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/aws/aws-lambda-go/events"
	"github.com/aws/aws-sdk-go-v2/aws"

	"github.com/dispatcher-dev/dispatcher/internal/caller"
	"github.com/dispatcher-dev/dispatcher/internal/dispatch"
	"github.com/dispatcher-dev/dispatcher/internal/emails"
	"github.com/dispatcher-dev/dispatcher/internal/obs"
	"github.com/dispatcher-dev/dispatcher/internal/testkit/templatedir"
	"github.com/dispatcher-dev/dispatcher/internal/webhook"
)

const secret = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"

func envOf(vars map[string]string) func(string) string {
	return func(k string) string { return vars[k] }
}

func TestLoadConfig(t *testing.T) {
	tests := []struct {
		name    string
		vars    map[string]string
		auth    string
		refresh time.Duration
		wantErr string
	}{
		{name: "defaults to webhook auth and a 5-minute refresh", vars: map[string]string{}, auth: AuthWebhook, refresh: 5 * time.Minute},
		{name: "reads API_AUTH=iam", vars: map[string]string{"API_AUTH": "iam"}, auth: AuthIAM, refresh: 5 * time.Minute},
		{name: "reads API_AUTH=webhook", vars: map[string]string{"API_AUTH": "webhook"}, auth: AuthWebhook, refresh: 5 * time.Minute},
		{name: "reads WEBHOOK_SECRETS_REFRESH", vars: map[string]string{"WEBHOOK_SECRETS_REFRESH": "90s"}, auth: AuthWebhook, refresh: 90 * time.Second},
		{name: "reads WEBHOOK_SECRETS_REFRESH=0 as off", vars: map[string]string{"WEBHOOK_SECRETS_REFRESH": "0"}, auth: AuthWebhook, refresh: 0},
		{name: "rejects an unknown API_AUTH", vars: map[string]string{"API_AUTH": "IAM"}, wantErr: "API_AUTH"},
		{name: "rejects a refresh that is not a duration", vars: map[string]string{"WEBHOOK_SECRETS_REFRESH": "300"}, wantErr: "WEBHOOK_SECRETS_REFRESH"},
		{name: "rejects a refresh under a second", vars: map[string]string{"WEBHOOK_SECRETS_REFRESH": "10ms"}, wantErr: "WEBHOOK_SECRETS_REFRESH"},
		{name: "rejects a negative refresh", vars: map[string]string{"WEBHOOK_SECRETS_REFRESH": "-1m"}, wantErr: "WEBHOOK_SECRETS_REFRESH"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			tt.vars["TABLE_NAME"] = "t"
			c, err := loadConfig(envOf(tt.vars))
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("err = %v, want it to name %s", err, tt.wantErr)
				}
				return
			}
			if err != nil || c.Auth != tt.auth || c.SecretsRefresh != tt.refresh {
				t.Fatalf("loadConfig = %+v, %v; want auth %s, refresh %s", c, err, tt.auth, tt.refresh)
			}
		})
	}
}

// The settings every function shares, and how their problems are told.
func TestLoadConfigChecksTheSharedSettings(t *testing.T) {
	tests := []struct {
		name    string
		env     map[string]string
		shards  int
		wantErr string
	}{
		{"accepts the template's environment", map[string]string{"TABLE_NAME": "t", "UNDELIVERED_INDEX_SHARDS": "8"}, 8, ""},
		{"defaults to 8 shards", map[string]string{"TABLE_NAME": "t"}, 8, ""},
		{"reads UNDELIVERED_INDEX_SHARDS", map[string]string{"TABLE_NAME": "t", "UNDELIVERED_INDEX_SHARDS": "64"}, 64, ""},
		{"requires TABLE_NAME", map[string]string{}, 0, "TABLE_NAME is required"},
		{"rejects a shard count out of range", map[string]string{"TABLE_NAME": "t", "UNDELIVERED_INDEX_SHARDS": "0"}, 0, "UNDELIVERED_INDEX_SHARDS"},
		{"rejects a shard count that is not a number", map[string]string{"TABLE_NAME": "t", "UNDELIVERED_INDEX_SHARDS": "eight"}, 0, "UNDELIVERED_INDEX_SHARDS"},
		{"refuses UNDELIVERED_INDEX_SHARDS=1.5", map[string]string{"TABLE_NAME": "t", "UNDELIVERED_INDEX_SHARDS": "1.5"}, 0, `UNDELIVERED_INDEX_SHARDS="1.5" must be a whole number from 1 to 64`},
		{"rejects an unknown log level", map[string]string{"TABLE_NAME": "t", "LOG_LEVEL": "LOUD"}, 0, "LOG_LEVEL"},
		{"names every problem at once", map[string]string{"LOG_LEVEL": "LOUD"}, 0, "TABLE_NAME is required; LOG_LEVEL"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c, err := loadConfig(envOf(tt.env))
			if tt.wantErr == "" && err != nil {
				t.Fatalf("err = %v", err)
			}
			if tt.wantErr != "" && (err == nil || !strings.Contains(err.Error(), tt.wantErr)) {
				t.Fatalf("err = %v, want it to mention %q", err, tt.wantErr)
			}
			if tt.wantErr == "" && c.Shards != tt.shards {
				t.Errorf("shards %d, want %d", c.Shards, tt.shards)
			}
		})
	}
}

// AGGREGATE_MODES (from the template's AccountMode) chooses each aggregate
// type's mode.
func TestLoadConfigReadsTheAggregateModes(t *testing.T) {
	tests := []struct {
		name, modes string
		want        dispatch.Mode
		wantErr     string
	}{
		{"defaults accounts to the outbox", "", dispatch.ModeOutbox, ""},
		{"reads the template's outbox value", "Account=outbox", dispatch.ModeOutbox, ""},
		{"makes accounts event-sourced", "Account=event-sourced", dispatch.ModeEventSourced, ""},
		{"refuses an unknown mode", "Account=sourced", "", "AGGREGATE_MODES"},
		{"refuses a type that cannot be event-sourced", "Order=event-sourced", "", "AGGREGATE_MODES"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c, err := loadConfig(envOf(map[string]string{"TABLE_NAME": "t", "AGGREGATE_MODES": tt.modes}))
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("err = %v, want it to mention %q", err, tt.wantErr)
				}
				return
			}
			if err != nil || c.Modes[dispatch.AccountType] != tt.want {
				t.Errorf("Account mode %q (err %v), want %q", c.Modes[dispatch.AccountType], err, tt.want)
			}
		})
	}
}

// Build refuses what loadConfig refuses, before it builds anything.
func TestBuildRefusesABadEnvironment(t *testing.T) {
	_, err := Build(context.Background(), aws.Config{Region: "us-east-1"}, envOf(map[string]string{"TABLE_NAME": "t", "API_AUTH": "iam", "UNDELIVERED_INDEX_SHARDS": "1.5"}))
	if err == nil || !strings.Contains(err.Error(), "UNDELIVERED_INDEX_SHARDS") {
		t.Fatalf("err = %v, want it to name UNDELIVERED_INDEX_SHARDS", err)
	}
}

// With API_AUTH=iam the function starts without any secret and refuses
// whoever API Gateway did not authorize with IAM.
func TestWithIAMAuthTheFunctionStartsWithoutSecrets(t *testing.T) {
	h, err := Build(context.Background(), aws.Config{Region: "us-east-1"}, envOf(map[string]string{"TABLE_NAME": "t", "API_AUTH": "iam"}))
	if err != nil {
		t.Fatalf("cold start without secrets: %v", err)
	}
	body := `{"type":"OpenAccount","aggregateId":"a","data":{}}`
	now := time.Now()
	sig, err := webhook.Sign(secret, "msg_1", now, []byte(body))
	if err != nil {
		t.Fatal(err)
	}
	for name, hdr := range map[string]map[string]string{
		"unsigned": {"content-type": "application/json"},
		"signed":   {"content-type": "application/json", "webhook-id": "msg_1", "webhook-timestamp": strconv.FormatInt(now.Unix(), 10), "webhook-signature": sig},
	} {
		req := events.APIGatewayV2HTTPRequest{RouteKey: "POST /v1/commands", RawPath: "/v1/commands", Body: body, Headers: hdr}
		req.RequestContext.HTTP.Method = http.MethodPost
		resp, err := h.Handle(context.Background(), req)
		if err != nil || resp.StatusCode != http.StatusUnauthorized {
			t.Errorf("%s caller: %d %s %v, want 401", name, resp.StatusCode, resp.Body, err)
		}
	}
}

// source is a SecretSource whose secret and parameter both hold value, or
// both fail with err.
type source struct {
	mu    sync.Mutex
	value string
	err   error
}

func (s *source) SecretString(context.Context, string) (string, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.value, s.err
}

func (s *source) Parameter(ctx context.Context, name string) (string, error) {
	return s.SecretString(ctx, name)
}

func TestSecretsFromTheCloudAreRefreshed(t *testing.T) {
	tests := []struct {
		name    string
		vars    map[string]string
		refresh time.Duration
		extra   bool   // a caller source other than CALLERS (the SSM tree)
		want    string // the authenticator's type
	}{
		{"refreshes a Secrets Manager secret", map[string]string{"WEBHOOK_SECRETS_ARN": "arn:x"}, time.Minute, false, "*caller.Refreshing"},
		{"refreshes an SSM parameter", map[string]string{"WEBHOOK_SECRETS_PARAMETER": "p"}, time.Minute, false, "*caller.Refreshing"},
		{"refreshes a caller source that can change", map[string]string{"WEBHOOK_SECRETS": secret}, time.Minute, true, "*caller.Refreshing"},
		{"does not refresh WEBHOOK_SECRETS and CALLERS, which cannot change", map[string]string{"WEBHOOK_SECRETS": secret, "CALLERS": `[{"id":"a","secrets":["` + secret + `"]}]`}, time.Minute, false, "*caller.Registry"},
		{"does not refresh with WEBHOOK_SECRETS_REFRESH=0", map[string]string{"WEBHOOK_SECRETS_ARN": "arn:x"}, 0, true, "*caller.Registry"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			tt.vars["TABLE_NAME"] = "t"
			c, err := loadConfig(envOf(tt.vars))
			if err != nil {
				t.Fatal(err)
			}
			c.SecretsRefresh = tt.refresh
			if tt.extra {
				c.CallerSources = append(c.CallerSources, func(context.Context) (map[string]string, error) { return nil, nil })
			}
			v, err := newAuthenticator(context.Background(), c, &source{value: secret}, obs.NewLogger(&bytes.Buffer{}, 0), obs.NewMetrics(&bytes.Buffer{}, "Dispatcher"))
			if err != nil {
				t.Fatal(err)
			}
			if got := typeName(v); got != tt.want {
				t.Errorf("authenticator is a %s, want a %s", got, tt.want)
			}
		})
	}
}

func typeName(v any) string {
	switch v.(type) {
	case *caller.Refreshing:
		return "*caller.Refreshing"
	case *caller.Registry:
		return "*caller.Registry"
	}
	return "something else"
}

// A failed refresh is logged at WARN once and counted; the secrets in use
// still verify.
func TestAFailedRefreshIsLoggedAndCounted(t *testing.T) {
	src := &source{value: secret}
	var logs, metrics bytes.Buffer
	c := config{SecretsRefresh: time.Millisecond, getenv: envOf(map[string]string{"WEBHOOK_SECRETS_ARN": "arn:x"})}
	v, err := newAuthenticator(context.Background(), c, src, obs.NewLogger(&logs, 0), obs.NewMetrics(&metrics, "Dispatcher"))
	if err != nil {
		t.Fatal(err)
	}
	src.mu.Lock()
	src.err = errors.New("AccessDeniedException: not allowed")
	src.mu.Unlock()
	time.Sleep(5 * time.Millisecond)
	body := []byte(`{}`)
	now := time.Now()
	sig, err := webhook.Sign(secret, "msg_1", now, body)
	if err != nil {
		t.Fatal(err)
	}
	hdr := map[string]string{"webhook-id": "msg_1", "webhook-timestamp": strconv.FormatInt(now.Unix(), 10), "webhook-signature": sig}
	if _, _, err := v.Authenticate(context.Background(), "", hdr, body); err != nil {
		t.Fatalf("the secrets in use no longer verify: %v", err)
	}
	var line struct{ Level, Msg, Error string }
	if err := json.Unmarshal(logs.Bytes(), &line); err != nil || line.Level != "WARN" || !strings.Contains(line.Error, "AccessDenied") || strings.Count(logs.String(), "\n") != 1 {
		t.Errorf("log = %q, want one WARN line with the cause", logs.String())
	}
	if !strings.Contains(metrics.String(), `"WebhookSecretsRefreshFailed":1`) {
		t.Errorf("metrics = %q, want WebhookSecretsRefreshFailed", metrics.String())
	}
	if strings.Contains(logs.String(), secret) {
		t.Error("the log holds the secret")
	}
}

// The command function's cold start reads EMAIL_TEMPLATES_DIR (unset: the
// built-in folder), and a broken folder stops it naming the file and line.
func TestLoadConfigReadsTheTemplateFolder(t *testing.T) {
	c, err := loadConfig(envOf(map[string]string{"TABLE_NAME": "t"}))
	if err != nil || c.Templates.Path != emails.BuiltinPath {
		t.Fatalf("loadConfig = %+v, %v; want the built-in templates", c.Templates, err)
	}
	c, err = loadConfig(envOf(map[string]string{"TABLE_NAME": "t", "EMAIL_TEMPLATES_DIR": templatedir.Write(t, templatedir.User(t))}))
	if err != nil || !c.Templates.Grants["Dispatch"].AllowsTemplate(templatedir.UserTemplate) {
		t.Fatalf("loadConfig = %+v, %v; want the user's folder", c.Templates, err)
	}
	dir := templatedir.Write(t, templatedir.Broken(t))
	_, err = Build(context.Background(), aws.Config{Region: "us-east-1"}, envOf(map[string]string{"TABLE_NAME": "t", "API_AUTH": "iam", "EMAIL_TEMPLATES_DIR": dir}))
	if want := fmt.Sprintf("%s:%d: ", filepath.Join(dir, templatedir.BrokenFile), templatedir.BrokenLine); err == nil || !strings.Contains(err.Error(), want) {
		t.Fatalf("Build = %v, want it to name %s", err, want)
	}
}

// CALLERS is checked at cold start: a value that is not an array of
// documents with ids names CALLERS.
func TestLoadConfigReadsCALLERS(t *testing.T) {
	for _, v := range []string{`{"id":"a"}`, `[{"secrets":[]}]`, `[{"id":"a"},{"id":"a"}]`} {
		if _, err := loadConfig(envOf(map[string]string{"TABLE_NAME": "t", "CALLERS": v})); err == nil || !strings.Contains(err.Error(), "CALLERS") {
			t.Errorf("CALLERS=%s: err = %v, want it to name CALLERS", v, err)
		}
	}
	t.Run("callers with secrets are enough without WEBHOOK_SECRETS", func(t *testing.T) {
		_, err := Build(context.Background(), aws.Config{Region: "us-east-1"}, envOf(map[string]string{"TABLE_NAME": "t", "CALLERS": `[{"id":"a","secrets":["` + secret + `"]}]`}))
		if err != nil {
			t.Fatal(err)
		}
	})
	t.Run("callers with principals only are not, outside API_AUTH=iam", func(t *testing.T) {
		_, err := Build(context.Background(), aws.Config{Region: "us-east-1"}, envOf(map[string]string{"TABLE_NAME": "t", "CALLERS": `[{"id":"a","principals":["arn:aws:iam::123456789012:user/a"]}]`}))
		if err == nil || !strings.Contains(err.Error(), "WEBHOOK_SECRETS") || !strings.Contains(err.Error(), "CALLERS") {
			t.Fatalf("err = %v", err)
		}
	})
}
