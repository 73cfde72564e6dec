// Package app gathers the constructors of the three functions for callers
// that run them all (the local runner, tests). Each function's main.go
// imports only its own constructor package (commandfn, deliveryfn,
// replayfn), so that its binary carries only the SDK clients it uses; they
// and the local runner build handlers with the same code.
package app

import (
	"context"
	"log/slog"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/config"

	"github.com/dispatcher-dev/dispatcher/internal/apigw"
	"github.com/dispatcher-dev/dispatcher/internal/app/commandfn"
	"github.com/dispatcher-dev/dispatcher/internal/app/deliveryfn"
	"github.com/dispatcher-dev/dispatcher/internal/app/replayfn"
	"github.com/dispatcher-dev/dispatcher/internal/delivery"
	"github.com/dispatcher-dev/dispatcher/internal/dynamo"
	"github.com/dispatcher-dev/dispatcher/internal/obs"
	"github.com/dispatcher-dev/dispatcher/internal/relay"
	"github.com/dispatcher-dev/dispatcher/internal/replay"
)

// AWSConfig loads the SDK configuration: region, credentials and the
// standard AWS_ENDPOINT_URL* overrides, nothing Dispatcher-specific.
func AWSConfig(ctx context.Context) (aws.Config, error) {
	return config.LoadDefaultConfig(ctx)
}

// CommandConfig is the command function's configuration.
type CommandConfig = commandfn.Config

// LoadCommandConfig reads and checks the command function's environment.
func LoadCommandConfig(getenv func(string) string) (CommandConfig, error) {
	return commandfn.LoadConfig(getenv)
}

// NewCommandHandler builds the command function's handler.
func NewCommandHandler(ctx context.Context, cfg aws.Config, c CommandConfig) (*apigw.Handler, error) {
	return commandfn.NewHandler(ctx, cfg, c)
}

// DeliveryConfig is the relay's and the replay's configuration.
type DeliveryConfig = deliveryfn.Config

// LoadDeliveryConfig reads and checks the delivery functions' environment.
func LoadDeliveryConfig(getenv func(string) string) (DeliveryConfig, error) {
	return deliveryfn.LoadConfig(getenv)
}

// NewDeliveryEngine builds the delivery engine and its store.
func NewDeliveryEngine(cfg aws.Config, c DeliveryConfig, log *slog.Logger, metrics *obs.Metrics) (*delivery.Engine, *dynamo.Store) {
	return deliveryfn.NewEngine(cfg, c, log, metrics)
}

// NewRelayHandler builds the stream relay's handler.
func NewRelayHandler(ctx context.Context, cfg aws.Config, c DeliveryConfig) *relay.Handler {
	return deliveryfn.NewRelayHandler(ctx, cfg, c)
}

// NewReplayer builds the DLQ replay (and sweeper).
func NewReplayer(cfg aws.Config, c DeliveryConfig, log *slog.Logger, metrics *obs.Metrics) *replay.Replayer {
	return replayfn.NewReplayer(cfg, c, log, metrics)
}

// NewReplayHandler builds the dlq-replay function's handler.
func NewReplayHandler(ctx context.Context, cfg aws.Config, c DeliveryConfig) *replay.Replayer {
	return replayfn.NewHandler(ctx, cfg, c)
}
