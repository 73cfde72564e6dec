// Package deliveryfn builds the stream relay's handler, and the delivery
// engine it shares with the replay, from their environment (read once at
// cold start). Build is what the stream-relay function's main.go and the
// local runner call. It imports only what delivery needs.
package deliveryfn

import (
	"context"
	"log/slog"
	"os"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb"
	sesapi "github.com/aws/aws-sdk-go-v2/service/sesv2"
	sqsapi "github.com/aws/aws-sdk-go-v2/service/sqs"

	"github.com/dispatcher-dev/dispatcher/internal/app/env"
	"github.com/dispatcher-dev/dispatcher/internal/delivery"
	"github.com/dispatcher-dev/dispatcher/internal/dispatch"
	"github.com/dispatcher-dev/dispatcher/internal/dynamo"
	"github.com/dispatcher-dev/dispatcher/internal/emails"
	"github.com/dispatcher-dev/dispatcher/internal/obs"
	"github.com/dispatcher-dev/dispatcher/internal/relay"
	"github.com/dispatcher-dev/dispatcher/internal/ses"
	"github.com/dispatcher-dev/dispatcher/internal/sqs"
)

// Build reads the stream relay's environment through getenv, checks it,
// and builds its handler on cfg's clients: everything the function's cold
// start does before lambda.Start.
func Build(_ context.Context, cfg aws.Config, getenv func(string) string) (*relay.Handler, error) {
	c, err := LoadConfig(getenv)
	if err != nil {
		return nil, err
	}
	log := obs.NewLogger(os.Stderr, c.LogLevel).With(slog.String("function", "stream-relay"))
	engine, _ := NewEngine(cfg, c, log, obs.NewMetrics(os.Stdout, "Dispatcher"))
	return relay.New(engine, log), nil
}

// Config is the configuration shared by the relay and the replay.
type Config struct {
	TableName string
	Shards    int
	Delivery  delivery.Config
	LogLevel  slog.Level
}

// The ranges of the integer settings; 0 in delivery.Config (not set) is
// the engine's default.
var (
	workersRange      = env.Range{Min: 1, Max: 256}  // RELAY_WORKERS (default 16)
	sendAttemptsRange = env.Range{Min: 1, Max: 20}   // RELAY_MAX_SEND_ATTEMPTS (default 4)
	leaseSecondsRange = env.Range{Min: 1, Max: 3600} // EMAIL_LEASE_SECONDS (default 120)
	retentionRange    = env.Range{Min: 1, Max: 365}  // OUTBOX_RETENTION_DAYS (default 7)
	concurrencyRange  = env.Range{Min: 1, Max: 1000} // RELAY_EXPECTED_CONCURRENCY (default 1)
)

// SES_ACCOUNT_SEND_RATE, emails per second for the whole account: the SES
// default for an account out of the sandbox, and its bounds.
const (
	defaultAccountSendRate = 14.0
	minAccountSendRate     = 0.1
	maxAccountSendRate     = 100000.0
)

// LoadConfig reads and checks the delivery functions' environment (the
// replay's too). Tests tune what it returns; the functions take it as is.
func LoadConfig(getenv func(string) string) (Config, error) {
	r := env.New(getenv)
	c := Config{TableName: r.Required("TABLE_NAME")}
	d := &c.Delivery
	d.EventsQueueURL = r.Required("EVENTS_QUEUE_URL")
	d.DLQURL = r.Required("DLQ_URL")
	d.Sender = r.Required("SENDER_ADDRESS")
	d.ConfigurationSet = r.String("SES_CONFIGURATION_SET")
	d.Source = r.String("EVENT_SOURCE")
	if d.Sender != "" {
		if _, err := dispatch.ParseAddress(d.Sender); err != nil {
			r.Fail("SENDER_ADDRESS is not a valid email address")
		}
	}
	c.Shards = r.Int("UNDELIVERED_INDEX_SHARDS", env.DefaultIndexShards, env.IndexShards)
	d.Workers = r.Int("RELAY_WORKERS", 0, workersRange)
	d.MaxSendAttempts = r.Int("RELAY_MAX_SEND_ATTEMPTS", 0, sendAttemptsRange)
	// An email claimed by a relay that then died (timeout, crash, kill)
	// is left alone this long before another relay or the replay sends it.
	// Shorter retries sooner; it must stay above the worst time from claim
	// to SES's answer, or two relays may both send.
	d.Lease = time.Duration(r.Int("EMAIL_LEASE_SECONDS", 0, leaseSecondsRange)) * time.Second
	d.KeepDelivered = time.Duration(r.Int("OUTBOX_RETENTION_DAYS", 0, retentionRange)) * 24 * time.Hour
	// The account's SES send rate is shared by every concurrent relay
	// instance (shards × ParallelizationFactor, plus replays).
	rate := r.Float("SES_ACCOUNT_SEND_RATE", defaultAccountSendRate, minAccountSendRate, maxAccountSendRate)
	d.EmailRate = rate / float64(r.Int("RELAY_EXPECTED_CONCURRENCY", 1, concurrencyRange))
	c.LogLevel = r.LogLevel()
	if err := r.Err("delivery configuration"); err != nil {
		return c, err
	}
	// Each template's sender: the template folder, checked whole, so that a
	// broken one stops the cold start rather than the first email.
	dir, err := emails.FromEnv(getenv)
	if err != nil {
		return c, err
	}
	d.Senders = dir.WireSenders()
	return c, nil
}

// NewEngine builds the delivery engine and its store. The SQS and
// SES clients do not retry on their own: the engine retries (only the failed
// entries, within the deadline), and two retry loops would multiply attempts.
func NewEngine(cfg aws.Config, c Config, log *slog.Logger, metrics *obs.Metrics) (*delivery.Engine, *dynamo.Store) {
	store := dynamo.New(dynamodb.NewFromConfig(cfg), c.TableName, c.Shards)
	queue := sqs.New(sqsapi.NewFromConfig(cfg, func(o *sqsapi.Options) { o.RetryMaxAttempts = 1 }))
	mailer := ses.New(sesapi.NewFromConfig(cfg, func(o *sesapi.Options) { o.RetryMaxAttempts = 1 }))
	return delivery.New(c.Delivery, store, queue, mailer, log, metrics), store
}
