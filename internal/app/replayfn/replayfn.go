// Package replayfn builds the DLQ replay (and sweeper) and the stream
// recovery from their environment (read once at cold start). Build and
// BuildRecovery are what the dlq-replay and stream-recovery functions'
// main.go and the local runner call.
package replayfn

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"time"

	"github.com/aws/aws-lambda-go/events"
	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/dynamodbstreams"
	sqsapi "github.com/aws/aws-sdk-go-v2/service/sqs"

	"github.com/dispatcher-dev/dispatcher/internal/app/deliveryfn"
	"github.com/dispatcher-dev/dispatcher/internal/dispatch"
	"github.com/dispatcher-dev/dispatcher/internal/dynamo"
	"github.com/dispatcher-dev/dispatcher/internal/obs"
	"github.com/dispatcher-dev/dispatcher/internal/replay"
	"github.com/dispatcher-dev/dispatcher/internal/sqs"
	"github.com/dispatcher-dev/dispatcher/internal/streams"
)

// dlq adapts the SQS client to the replay's view of the DLQ.
type dlq struct {
	c   *sqs.Client
	url string
}

func (d dlq) Receive(ctx context.Context, max int, visibility time.Duration) ([]replay.Message, error) {
	got, err := d.c.Receive(ctx, d.url, max, visibility)
	if err != nil {
		return nil, err
	}
	out := make([]replay.Message, len(got))
	for i, m := range got {
		out[i] = replay.Message{ID: m.ID, Body: m.Body, Receipt: m.Receipt, SentAt: m.SentAt}
	}
	return out, nil
}

func (d dlq) Delete(ctx context.Context, receipt string) error {
	return d.c.Delete(ctx, d.url, receipt)
}

func (d dlq) Release(ctx context.Context, receipt string) error {
	return d.c.ChangeVisibility(ctx, d.url, receipt, 0)
}

// streamRanges re-reads stream ranges of whichever stream a record names.
type streamRanges struct {
	api    *dynamodbstreams.Client
	region string
}

// Range reads the range and decodes its outbox inserts, as the relay would
// have been given them; a range that does not start where asked is no
// longer held whole (an emulator may not say "trimmed").
func (s streamRanges) Range(ctx context.Context, arn, shard, start, end string) ([]dispatch.OutboxKey, error) {
	recs, err := streams.NewReader(s.api, arn, s.region).Range(ctx, shard, start, end)
	if errors.Is(err, streams.ErrTrimmed) || (err == nil && (len(recs) == 0 || recs[0].Change.SequenceNumber != start)) {
		return nil, fmt.Errorf("%w: shard %s from %s", replay.ErrRangeTrimmed, shard, start)
	}
	if err != nil {
		return nil, err
	}
	return outboxKeys(recs), nil
}

// outboxKeys keeps the keys of the outbox inserts among stream records
// (not the others, nor the undecodable ones: the relay parked those).
func outboxKeys(recs []events.DynamoDBEventRecord) []dispatch.OutboxKey {
	var keys []dispatch.OutboxKey
	for _, rec := range recs {
		if it, ok, err := dynamo.StreamRecord(rec); ok && err == nil {
			keys = append(keys, it.Key())
		}
	}
	return keys
}

// Build reads the dlq-replay function's environment (the relay's settings,
// deliveryfn.LoadConfig) through getenv, checks it, and builds the replay
// on cfg's clients: everything the function's cold start does before
// lambda.Start.
func Build(ctx context.Context, cfg aws.Config, getenv func(string) string) (*replay.Replayer, error) {
	return build(ctx, cfg, getenv, "dlq-replay")
}

// BuildRecovery is Build for the stream-recovery function: the same
// replayer (its Recover handler), logging under its own name.
func BuildRecovery(ctx context.Context, cfg aws.Config, getenv func(string) string) (*replay.Replayer, error) {
	return build(ctx, cfg, getenv, "stream-recovery")
}

func build(ctx context.Context, cfg aws.Config, getenv func(string) string, function string) (*replay.Replayer, error) {
	c, err := deliveryfn.LoadConfig(getenv)
	if err != nil {
		return nil, err
	}
	log := obs.NewLogger(os.Stderr, c.LogLevel).With(slog.String("function", function))
	metrics := obs.NewMetrics(os.Stdout, "Dispatcher")
	// Paced from the account's send quota, as the relay is.
	engine, store, err := deliveryfn.NewPacedEngine(ctx, cfg, c, log, metrics)
	if err != nil {
		return nil, err
	}
	return newReplayer(cfg, c, engine, store, log, metrics), nil
}

// NewReplayer builds the DLQ replay (and sweeper) from a checked
// configuration, logging and counting where the caller says.
func NewReplayer(cfg aws.Config, c deliveryfn.Config, log *slog.Logger, metrics *obs.Metrics) *replay.Replayer {
	engine, store := deliveryfn.NewEngine(cfg, c, log, metrics)
	return newReplayer(cfg, c, engine, store, log, metrics)
}

func newReplayer(cfg aws.Config, c deliveryfn.Config, engine replay.Deliverer, store *dynamo.Store, log *slog.Logger, metrics *obs.Metrics) *replay.Replayer {
	q := sqs.New(sqsapi.NewFromConfig(cfg))
	return replay.New(c.TableName, store, dlq{q, c.Delivery.DLQURL}, streamRanges{dynamodbstreams.NewFromConfig(cfg), cfg.Region}, engine, log, metrics)
}
