// Package consumerfn builds the command consumer function's handler (listen
// to yourself): it applies the commands the command function queued on
// CommandsQueue, through the same command service and store as the command
// function. Build is what the function's main.go and the local runner call.
package consumerfn

import (
	"context"
	"log/slog"
	"os"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb"

	"github.com/dispatcher-dev/dispatcher/internal/app/env"
	"github.com/dispatcher-dev/dispatcher/internal/command"
	"github.com/dispatcher-dev/dispatcher/internal/commandqueue"
	"github.com/dispatcher-dev/dispatcher/internal/dispatch"
	"github.com/dispatcher-dev/dispatcher/internal/dynamo"
	"github.com/dispatcher-dev/dispatcher/internal/emails"
	"github.com/dispatcher-dev/dispatcher/internal/obs"
)

// Build reads the consumer's environment through getenv (TABLE_NAME,
// UNDELIVERED_INDEX_SHARDS, AGGREGATE_MODES, LOG_LEVEL, EMAIL_TEMPLATES_DIR:
// the command function's, so both apply commands alike) and builds its handler on cfg's
// clients.
func Build(ctx context.Context, cfg aws.Config, getenv func(string) string) (*commandqueue.Consumer, error) {
	r := env.New(getenv)
	table := r.Required("TABLE_NAME")
	shards := r.Int("UNDELIVERED_INDEX_SHARDS", env.DefaultIndexShards, env.IndexShards)
	modes, err := dispatch.ParseModes(r.String("AGGREGATE_MODES"))
	if err != nil {
		r.Fail("AGGREGATE_MODES: " + err.Error())
	}
	level := r.LogLevel()
	if err := r.Err("command consumer configuration"); err != nil {
		return nil, err
	}
	templates, err := emails.FromEnv(getenv)
	if err != nil {
		return nil, err
	}
	log := obs.NewLogger(os.Stderr, level).With(slog.String("function", "command-consumer"))
	metrics := obs.NewMetrics(os.Stdout, "Dispatcher")
	store := dynamo.New(dynamodb.NewFromConfig(cfg), table, shards)
	svc := command.New(store, templates).WithGrants(templates.Grants).WithModes(modes)
	return commandqueue.NewConsumer(svc, log, metrics), nil
}
