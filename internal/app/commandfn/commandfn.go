// Package commandfn builds the command function's handler from its
// environment: typed configuration read once at cold start, AWS clients,
// adapters. Build is what the function's main.go and the local runner call.
// It imports only what the command function needs, which keeps its binary
// and its cold start small.
package commandfn

import (
	"context"
	"fmt"
	"log/slog"
	"math"
	"os"
	"strings"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb"

	"github.com/dispatcher-dev/dispatcher/internal/apigw"
	"github.com/dispatcher-dev/dispatcher/internal/app/env"
	"github.com/dispatcher-dev/dispatcher/internal/caller"
	"github.com/dispatcher-dev/dispatcher/internal/command"
	"github.com/dispatcher-dev/dispatcher/internal/commandqueue"
	"github.com/dispatcher-dev/dispatcher/internal/dispatch"
	"github.com/dispatcher-dev/dispatcher/internal/dynamo"
	"github.com/dispatcher-dev/dispatcher/internal/emails"
	"github.com/dispatcher-dev/dispatcher/internal/obs"
	"github.com/dispatcher-dev/dispatcher/internal/ratelimit"
	"github.com/dispatcher-dev/dispatcher/internal/sqs/signed"
	"github.com/dispatcher-dev/dispatcher/internal/webhook"
)

// How callers authenticate (API_AUTH, the template's ApiAuth).
const (
	AuthWebhook = "webhook" // Standard Webhooks signatures (IAM-authorized callers too)
	AuthIAM     = "iam"     // only callers that API Gateway authorized with IAM; no secrets
)

// Build reads the command function's environment through getenv, checks
// it, and builds its handler on cfg's clients: everything the function's
// cold start does before lambda.Start. It fails without a caller that can
// sign (WEBHOOK_SECRETS or a CALLERS document with secrets) unless
// API_AUTH=iam.
func Build(ctx context.Context, cfg aws.Config, getenv func(string) string) (*apigw.Handler, error) {
	return BuildWithCallers(ctx, cfg, getenv)
}

// BuildWithCallers is Build with more sources of caller documents, read
// with CALLERS' at cold start and at every refresh (WEBHOOK_SECRETS_REFRESH):
// the seam for the SSM parameter tree that CALLERS_PARAMETER_PATH names.
// Unlike CALLERS, such a source can change while an instance lives, so with
// one the registry is read again.
func BuildWithCallers(ctx context.Context, cfg aws.Config, getenv func(string) string, sources ...caller.Source) (*apigw.Handler, error) {
	c, err := loadConfig(getenv)
	if err != nil {
		return nil, err
	}
	c.CallerSources = append(c.CallerSources, sources...)
	if c.CallersPath != "" {
		path, api := c.CallersPath, caller.NewSSM(cfg)
		c.CallerSources = append(c.CallerSources, func(ctx context.Context) (map[string]string, error) {
			return caller.LoadParameterTree(ctx, api, path)
		})
	}
	return newHandler(ctx, cfg, c)
}

// DefaultRate is a caller's token bucket when neither its document nor
// CALLER_RATE_PER_SECOND and CALLER_BURST set one: the template's defaults,
// half the stage's own throttling, so that no one caller takes all of it.
var DefaultRate = dispatch.Rate{PerSecond: 50, Burst: 100}

// config is the command function's configuration.
type config struct {
	TableName string // TABLE_NAME
	Shards    int    // UNDELIVERED_INDEX_SHARDS
	LogLevel  slog.Level
	Auth      string // API_AUTH: AuthWebhook (default) or AuthIAM
	// SecretsRefresh (WEBHOOK_SECRETS_REFRESH): how often secrets from
	// Secrets Manager or SSM are read again; 0: once per cold start.
	SecretsRefresh time.Duration
	// Modes (AGGREGATE_MODES, the template's AccountMode): each aggregate
	// type's mode, outbox or event-sourced.
	Modes map[string]dispatch.Mode
	// ListenToYourself (LISTEN_TO_YOURSELF): the command types queued on
	// CommandsQueue (COMMANDS_QUEUE_URL) instead of applied; none: off.
	ListenToYourself []string
	CommandsQueueURL string
	// Templates (EMAIL_TEMPLATES_DIR, the template layer): the templates it
	// renders and what Dispatch may send; unset, the built-in folder.
	Templates *emails.Dir
	// CallerSources are read for the caller documents: CALLERS first, then
	// those BuildWithCallers adds (which can change while an instance lives).
	CallerSources []caller.Source
	// CallersPath (CALLERS_PARAMETER_PATH, the template's
	// CallersParameterPath): the SSM parameter tree of caller documents; "":
	// none.
	CallersPath string
	// RateTable (RATE_LIMIT_TABLE): the callers' token buckets; "": no rate
	// limit. Rate (CALLER_RATE_PER_SECOND, CALLER_BURST): a caller's bucket
	// when its document sets none.
	RateTable string
	Rate      dispatch.Rate
	getenv    func(string) string
}

// loadConfig reads and checks the command function's environment.
func loadConfig(getenv func(string) string) (config, error) {
	r := env.New(getenv)
	c := config{Auth: AuthWebhook, SecretsRefresh: webhook.DefaultRefreshEvery, getenv: getenv}
	c.TableName = r.Required("TABLE_NAME")
	switch s := r.String("API_AUTH"); s {
	case "", AuthWebhook:
	case AuthIAM:
		c.Auth = AuthIAM
	default:
		r.Fail(fmt.Sprintf("API_AUTH=%q must be %s or %s", s, AuthWebhook, AuthIAM))
	}
	if s := r.String("WEBHOOK_SECRETS_REFRESH"); s != "" {
		d, err := time.ParseDuration(s)
		if err != nil || d < 0 || (d > 0 && d < webhook.MinRefreshEvery) || d > webhook.MaxRefreshEvery {
			r.Fail(fmt.Sprintf("WEBHOOK_SECRETS_REFRESH=%q must be a Go duration from 1s to 24h, or 0 (read once per cold start)", s))
		}
		c.SecretsRefresh = d
	}
	modes, err := dispatch.ParseModes(r.String("AGGREGATE_MODES"))
	if err != nil {
		r.Fail("AGGREGATE_MODES: " + err.Error())
	}
	c.Modes = modes
	if c.ListenToYourself, err = command.ParseCommandTypes(r.String("LISTEN_TO_YOURSELF")); err != nil {
		r.Fail("LISTEN_TO_YOURSELF: " + err.Error())
	}
	if len(c.ListenToYourself) > 0 {
		c.CommandsQueueURL = r.Required("COMMANDS_QUEUE_URL")
	}
	callers, err := caller.FromEnv(r.String("CALLERS"))
	if err != nil {
		r.Fail("CALLERS: " + err.Error())
	}
	c.CallerSources = []caller.Source{callers}
	if c.CallersPath = r.String("CALLERS_PARAMETER_PATH"); c.CallersPath != "" && !strings.HasPrefix(c.CallersPath, "/") {
		r.Fail(fmt.Sprintf("CALLERS_PARAMETER_PATH=%q must be an SSM path, starting with /", c.CallersPath))
	}
	c.RateTable = r.String("RATE_LIMIT_TABLE")
	c.Rate = dispatch.Rate{
		PerSecond: r.Float("CALLER_RATE_PER_SECOND", DefaultRate.PerSecond, math.SmallestNonzeroFloat64, dispatch.MaxRatePerSecond),
		Burst:     r.Int("CALLER_BURST", DefaultRate.Burst, env.Range{Min: 1, Max: dispatch.MaxRateBurst}),
	}
	c.Shards = r.Int("UNDELIVERED_INDEX_SHARDS", env.DefaultIndexShards, env.IndexShards)
	c.LogLevel = r.LogLevel()
	if err := r.Err("command configuration"); err != nil {
		return c, err
	}
	// Checked whole at cold start: a broken folder stops the init, naming
	// the file and line, instead of failing the first email with a 500.
	c.Templates, err = emails.FromEnv(getenv)
	return c, err
}

// newHandler builds the command function's handler.
func newHandler(ctx context.Context, cfg aws.Config, c config) (*apigw.Handler, error) {
	log := obs.NewLogger(os.Stderr, c.LogLevel).With(slog.String("function", "command"))
	metrics := obs.NewMetrics(os.Stdout, "Dispatcher")
	auth, err := newAuthenticator(ctx, c, webhook.NewAWSSecretSource(cfg), log, metrics)
	if err != nil {
		return nil, err
	}
	db := dynamodb.NewFromConfig(cfg)
	store := dynamo.New(db, c.TableName, c.Shards)
	svc := command.New(store, c.Templates).WithGrants(c.Templates.Grants).WithModes(c.Modes)
	var exec apigw.Executor = svc
	if len(c.ListenToYourself) > 0 {
		q := commandqueue.New(signed.New(cfg), c.CommandsQueueURL)
		exec = command.NewListener(svc, q, c.ListenToYourself)
	}
	h := apigw.New(exec, store, auth, log, metrics)
	if c.RateTable != "" {
		h = h.WithLimiter(ratelimit.New(db, c.RateTable), c.Rate)
	}
	return h, nil
}

// newAuthenticator reads the callers: the documents of c.CallerSources, and
// the default caller of WEBHOOK_SECRETS (or the secret its ARN or parameter
// names) unless API_AUTH=iam. A cold start fails on a faulty document, and
// without any caller that can sign unless API_AUTH=iam. The registry is
// read again every c.SecretsRefresh when something it is read from can
// change (Secrets Manager, SSM, a source BuildWithCallers added).
func newAuthenticator(ctx context.Context, c config, src webhook.SecretSource, log *slog.Logger, metrics *obs.Metrics) (apigw.Authenticator, error) {
	docs := caller.Merge(c.CallerSources...)
	legacy := c.Auth != AuthIAM && webhook.Configured(c.getenv)
	load := func(ctx context.Context) (caller.Config, error) {
		var cc caller.Config
		var err error
		if cc.Documents, err = docs(ctx); err != nil {
			return cc, err
		}
		if legacy {
			cc.DefaultSecrets, err = webhook.LoadSecrets(ctx, c.getenv, src)
		}
		return cc, err
	}
	cc, err := load(ctx)
	if err != nil {
		return nil, err
	}
	reg, err := caller.New(cc)
	if err != nil {
		return nil, err
	}
	if c.Auth != AuthIAM && !reg.Signs() {
		// LoadSecrets' error names every way to give the default caller's
		// secrets; CALLERS is the other way.
		_, err := webhook.LoadSecrets(ctx, c.getenv, src)
		return nil, fmt.Errorf("%w; or give callers with secrets in CALLERS or in the SSM tree CALLERS_PARAMETER_PATH names", err)
	}
	if c.SecretsRefresh == 0 || !(legacy && webhook.FromCloud(c.getenv) || len(c.CallerSources) > 1) {
		return reg, nil
	}
	return caller.NewRefreshing(reg, load, caller.RefreshOptions{
		Every: c.SecretsRefresh,
		OnError: func(ctx context.Context, err error) {
			log.WarnContext(ctx, "callers or webhook secrets not refreshed; those in use stay", slog.String("requestId", obs.RequestID(ctx)), slog.String("error", err.Error()))
			metrics.Emit(map[string]string{"Service": "command"}, obs.Metric{Name: "WebhookSecretsRefreshFailed", Value: 1, Unit: obs.Count})
		},
		OnChange: func(ctx context.Context, n int) {
			log.InfoContext(ctx, "callers or webhook secrets changed", slog.String("requestId", obs.RequestID(ctx)), slog.Int("callers", n))
		},
	})
}
