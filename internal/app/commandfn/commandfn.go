// Package commandfn builds the command function's handler from its
// environment: typed configuration read once at cold start, AWS clients,
// adapters. The function's main.go and the local runner (through package
// app) call the same constructor. It imports only what the command function
// needs, which keeps its binary and its cold start small.
package commandfn

import (
	"context"
	"fmt"
	"log/slog"
	"os"
	"strconv"
	"strings"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb"

	"github.com/dispatcher-dev/dispatcher/internal/apigw"
	"github.com/dispatcher-dev/dispatcher/internal/command"
	"github.com/dispatcher-dev/dispatcher/internal/dynamo"
	"github.com/dispatcher-dev/dispatcher/internal/emails"
	"github.com/dispatcher-dev/dispatcher/internal/obs"
	"github.com/dispatcher-dev/dispatcher/internal/webhook"
)

// How callers authenticate (API_AUTH, the template's ApiAuth).
const (
	AuthWebhook = "webhook" // Standard Webhooks signatures (IAM-authorized callers too)
	AuthIAM     = "iam"     // only callers that API Gateway authorized with IAM; no secrets
)

// Config is the command function's configuration.
type Config struct {
	TableName string // TABLE_NAME
	Shards    int    // UNDELIVERED_INDEX_SHARDS
	LogLevel  slog.Level
	Auth      string // API_AUTH: AuthWebhook (default) or AuthIAM
	// SecretsRefresh (WEBHOOK_SECRETS_REFRESH): how often secrets from
	// Secrets Manager or SSM are read again; 0: once per cold start.
	SecretsRefresh time.Duration
	getenv         func(string) string
}

// LoadConfig reads and checks the command function's environment.
func LoadConfig(getenv func(string) string) (Config, error) {
	c := Config{TableName: getenv("TABLE_NAME"), Shards: 8, Auth: AuthWebhook, SecretsRefresh: webhook.DefaultRefreshEvery, getenv: getenv}
	var problems []string
	if c.TableName == "" {
		problems = append(problems, "TABLE_NAME is required")
	}
	switch s := getenv("API_AUTH"); s {
	case "", AuthWebhook:
	case AuthIAM:
		c.Auth = AuthIAM
	default:
		problems = append(problems, fmt.Sprintf("API_AUTH=%q must be %s or %s", s, AuthWebhook, AuthIAM))
	}
	if s := getenv("WEBHOOK_SECRETS_REFRESH"); s != "" {
		d, err := time.ParseDuration(s)
		if err != nil || d < 0 || (d > 0 && d < time.Second) || d > 24*time.Hour {
			problems = append(problems, fmt.Sprintf("WEBHOOK_SECRETS_REFRESH=%q must be a Go duration from 1s to 24h, or 0 (read once per cold start)", s))
		}
		c.SecretsRefresh = d
	}
	if s := getenv("UNDELIVERED_INDEX_SHARDS"); s != "" {
		n, err := strconv.Atoi(s)
		if err != nil || n < 1 || n > 64 {
			problems = append(problems, fmt.Sprintf("UNDELIVERED_INDEX_SHARDS=%q must be a whole number from 1 to 64", s))
		}
		c.Shards = n
	}
	if s := getenv("LOG_LEVEL"); s != "" {
		if err := c.LogLevel.UnmarshalText([]byte(s)); err != nil {
			problems = append(problems, fmt.Sprintf("LOG_LEVEL=%q must be DEBUG, INFO, WARN or ERROR", s))
		}
	}
	if len(problems) > 0 {
		return c, fmt.Errorf("command configuration: %s", strings.Join(problems, "; "))
	}
	return c, nil
}

// NewHandler builds the command function's handler.
func NewHandler(ctx context.Context, cfg aws.Config, c Config) (*apigw.Handler, error) {
	log := obs.NewLogger(os.Stderr, c.LogLevel).With(slog.String("function", "command"))
	metrics := obs.NewMetrics(os.Stdout, "Dispatcher")
	var verifier apigw.Verifier // nil: IAM callers only
	if c.Auth != AuthIAM {
		v, err := newVerifier(ctx, c, webhook.NewAWSSecretSource(cfg), log, metrics)
		if err != nil {
			return nil, err
		}
		verifier = v
	}
	tmpl, err := emails.Load()
	if err != nil {
		return nil, fmt.Errorf("email templates: %w", err)
	}
	store := dynamo.New(dynamodb.NewFromConfig(cfg), c.TableName, c.Shards)
	return apigw.New(command.New(store, tmpl), store, verifier, log, metrics), nil
}

// newVerifier reads the webhook secrets (a cold start fails without them);
// secrets from Secrets Manager or SSM are read again every c.SecretsRefresh.
func newVerifier(ctx context.Context, c Config, src webhook.SecretSource, log *slog.Logger, metrics *obs.Metrics) (apigw.Verifier, error) {
	secrets, err := webhook.LoadSecrets(ctx, c.getenv, src)
	if err != nil {
		return nil, err
	}
	if c.SecretsRefresh == 0 || !webhook.FromCloud(c.getenv) {
		return webhook.NewVerifier(secrets)
	}
	load := func(ctx context.Context) ([]string, error) { return webhook.LoadSecrets(ctx, c.getenv, src) }
	return webhook.NewRefreshing(secrets, load, webhook.RefreshOptions{
		Every: c.SecretsRefresh,
		OnError: func(ctx context.Context, err error) {
			log.WarnContext(ctx, "webhook secrets not refreshed; the current ones stay in use", slog.String("requestId", obs.RequestID(ctx)), slog.String("error", err.Error()))
			metrics.Emit(map[string]string{"Service": "command"}, obs.Metric{Name: "WebhookSecretsRefreshFailed", Value: 1, Unit: obs.Count})
		},
		OnChange: func(ctx context.Context, n int) {
			log.InfoContext(ctx, "webhook secrets changed", slog.String("requestId", obs.RequestID(ctx)), slog.Int("secrets", n))
		},
	})
}
