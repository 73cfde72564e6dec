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

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb"

	"github.com/dispatcher-dev/dispatcher/internal/apigw"
	"github.com/dispatcher-dev/dispatcher/internal/command"
	"github.com/dispatcher-dev/dispatcher/internal/dynamo"
	"github.com/dispatcher-dev/dispatcher/internal/emails"
	"github.com/dispatcher-dev/dispatcher/internal/obs"
	"github.com/dispatcher-dev/dispatcher/internal/webhook"
)

// Config is the command function's configuration.
type Config struct {
	TableName string // TABLE_NAME
	Shards    int    // UNDELIVERED_INDEX_SHARDS
	LogLevel  slog.Level
	getenv    func(string) string
}

// LoadConfig reads and checks the command function's environment.
func LoadConfig(getenv func(string) string) (Config, error) {
	c := Config{TableName: getenv("TABLE_NAME"), Shards: 8, getenv: getenv}
	var problems []string
	if c.TableName == "" {
		problems = append(problems, "TABLE_NAME is required")
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
	secrets, err := webhook.LoadSecrets(ctx, c.getenv, webhook.NewAWSSecretSource(cfg))
	if err != nil {
		return nil, err
	}
	verifier, err := webhook.NewVerifier(secrets)
	if err != nil {
		return nil, err
	}
	tmpl, err := emails.Load()
	if err != nil {
		return nil, fmt.Errorf("email templates: %w", err)
	}
	store := dynamo.New(dynamodb.NewFromConfig(cfg), c.TableName, c.Shards)
	log := obs.NewLogger(os.Stderr, c.LogLevel).With(slog.String("function", "command"))
	metrics := obs.NewMetrics(os.Stdout, "Dispatcher")
	return apigw.New(command.New(store, tmpl), store, verifier, log, metrics), nil
}
