// Package deliveryfn builds the stream relay's handler and the delivery
// engine it shares with the replay, from their environment (read once at
// cold start). It imports only what delivery needs.
package deliveryfn

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
	sesapi "github.com/aws/aws-sdk-go-v2/service/sesv2"
	sqsapi "github.com/aws/aws-sdk-go-v2/service/sqs"

	"github.com/dispatcher-dev/dispatcher/internal/delivery"
	"github.com/dispatcher-dev/dispatcher/internal/dispatch"
	"github.com/dispatcher-dev/dispatcher/internal/dynamo"
	"github.com/dispatcher-dev/dispatcher/internal/obs"
	"github.com/dispatcher-dev/dispatcher/internal/relay"
	"github.com/dispatcher-dev/dispatcher/internal/ses"
	"github.com/dispatcher-dev/dispatcher/internal/sqs"
)

// Config is the configuration shared by the relay and the replay.
type Config struct {
	TableName string
	Shards    int
	Delivery  delivery.Config
	LogLevel  slog.Level
}

// LoadConfig reads and checks the delivery functions' environment.
func LoadConfig(getenv func(string) string) (Config, error) {
	c := Config{TableName: getenv("TABLE_NAME"), Shards: 8}
	d := &c.Delivery
	d.EventsQueueURL = getenv("EVENTS_QUEUE_URL")
	d.DLQURL = getenv("DLQ_URL")
	d.Sender = getenv("SENDER_ADDRESS")
	d.ConfigurationSet = getenv("SES_CONFIGURATION_SET")
	d.Source = getenv("EVENT_SOURCE")
	var problems []string
	for name, v := range map[string]string{"TABLE_NAME": c.TableName, "EVENTS_QUEUE_URL": d.EventsQueueURL, "DLQ_URL": d.DLQURL, "SENDER_ADDRESS": d.Sender} {
		if v == "" {
			problems = append(problems, name+" is required")
		}
	}
	if d.Sender != "" {
		if _, err := dispatch.ParseAddress(d.Sender); err != nil {
			problems = append(problems, "SENDER_ADDRESS is not a valid email address")
		}
	}
	num := func(name string, lo, hi float64) float64 {
		s := getenv(name)
		if s == "" {
			return 0
		}
		f, err := strconv.ParseFloat(s, 64)
		if err != nil || f < lo || f > hi {
			problems = append(problems, fmt.Sprintf("%s=%q must be a number from %g to %g", name, s, lo, hi))
			return 0
		}
		return f
	}
	if n := num("UNDELIVERED_INDEX_SHARDS", 1, 64); n > 0 {
		c.Shards = int(n)
	}
	d.Workers = int(num("RELAY_WORKERS", 1, 256))
	d.MaxSendAttempts = int(num("RELAY_MAX_SEND_ATTEMPTS", 1, 20))
	// An email claimed by a relay that then died (timeout, crash, kill)
	// is left alone this long before another relay or the replay sends it.
	// Shorter retries sooner; it must stay above the worst time from claim
	// to SES's answer, or two relays may both send.
	if s := num("EMAIL_LEASE_SECONDS", 1, 3600); s > 0 {
		d.Lease = time.Duration(s * float64(time.Second))
	}
	if days := num("OUTBOX_RETENTION_DAYS", 1, 365); days > 0 {
		d.KeepDelivered = time.Duration(days * float64(24*time.Hour))
	}
	// The account's SES send rate is shared by every concurrent relay
	// instance (shards × ParallelizationFactor, plus replays).
	rateTotal := num("SES_ACCOUNT_SEND_RATE", 0.1, 100000)
	if rateTotal == 0 {
		rateTotal = 14 // the SES default for an account out of the sandbox
	}
	conc := num("RELAY_EXPECTED_CONCURRENCY", 1, 1000)
	if conc == 0 {
		conc = 1
	}
	d.EmailRate = rateTotal / conc
	if s := getenv("LOG_LEVEL"); s != "" {
		if err := c.LogLevel.UnmarshalText([]byte(s)); err != nil {
			problems = append(problems, fmt.Sprintf("LOG_LEVEL=%q must be DEBUG, INFO, WARN or ERROR", s))
		}
	}
	if len(problems) > 0 {
		return c, fmt.Errorf("delivery configuration: %s", strings.Join(problems, "; "))
	}
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

// NewRelayHandler builds the stream relay's handler.
func NewRelayHandler(_ context.Context, cfg aws.Config, c Config) *relay.Handler {
	log := obs.NewLogger(os.Stderr, c.LogLevel).With(slog.String("function", "stream-relay"))
	engine, _ := NewEngine(cfg, c, log, obs.NewMetrics(os.Stdout, "Dispatcher"))
	return relay.New(engine, log)
}
