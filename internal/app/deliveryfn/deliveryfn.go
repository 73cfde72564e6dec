// Package deliveryfn builds the stream relay's handler, and the delivery
// engine it shares with the replay, from their environment (read once at
// cold start). Build is what the stream-relay function's main.go and the
// local runner call. It imports only what delivery needs.
package deliveryfn

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"maps"
	"net/mail"
	"os"
	"slices"
	"strings"
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
func Build(ctx context.Context, cfg aws.Config, getenv func(string) string) (*relay.Handler, error) {
	h, _, err := build(ctx, cfg, getenv, os.Stdout, os.Stderr)
	return h, err
}

// build is Build writing its metrics and logs where it is told; it also
// returns the engine, for tests to read the rate it paces at.
func build(ctx context.Context, cfg aws.Config, getenv func(string) string, stdout, stderr io.Writer) (*relay.Handler, *Paced, error) {
	c, err := LoadConfig(getenv)
	if err != nil {
		return nil, nil, err
	}
	log := obs.NewLogger(stderr, c.LogLevel).With(slog.String("function", "stream-relay"))
	engine, _, err := NewPacedEngine(ctx, cfg, c, log, obs.NewMetrics(stdout, "Dispatcher"))
	if err != nil {
		return nil, nil, err
	}
	return relay.New(engine, log), engine, nil
}

// Config is the configuration shared by the relay and the replay.
type Config struct {
	TableName string
	Shards    int
	Delivery  delivery.Config
	LogLevel  slog.Level
	// AccountSendRate is SES_ACCOUNT_SEND_RATE, and Concurrency
	// RELAY_EXPECTED_CONCURRENCY: Delivery.EmailRate is their quotient,
	// which NewPacedEngine lowers to the account's MaxSendRate over
	// Concurrency when that is lower.
	AccountSendRate float64
	Concurrency     int
}

// IntSettings are the ranges of the integer settings a user may tune (the
// template's parameters take theirs from here: infra/template_test.go);
// not set (0 in delivery.Config) is the engine's default, in the comment.
var IntSettings = map[string]env.Range{
	"RELAY_WORKERS":              {Min: 1, Max: 256},  // default 16
	"RELAY_MAX_SEND_ATTEMPTS":    {Min: 1, Max: 20},   // default 4
	"EMAIL_LEASE_SECONDS":        {Min: 1, Max: 3600}, // default 120
	"OUTBOX_RETENTION_DAYS":      {Min: 1, Max: 365},  // default 7
	"RELAY_EXPECTED_CONCURRENCY": {Min: 1, Max: 1000}, // default 1
}

// SES_ACCOUNT_SEND_RATE, emails per second for the whole account: the SES
// default for an account out of the sandbox, and its bounds.
const (
	DefaultAccountSendRate = 14.0
	MinAccountSendRate     = 0.1
	MaxAccountSendRate     = 100000.0
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
	var ids []string // what the role may send as
	if d.Sender != "" {
		from, addr, err := ParseSender(d.Sender)
		var idErr error
		ids, idErr = ParseIdentities(r.String("SENDER_IDENTITIES"), addr)
		switch {
		case err != nil:
			r.Fail("SENDER_ADDRESS " + err.Error())
		case idErr != nil:
			r.Fail("SENDER_IDENTITIES " + idErr.Error())
		case !Covered(ids, addr):
			// SES would refuse every email with AccessDenied (IAM grants
			// ses:SendEmail on these identities only), which the relay
			// takes as permanent: every email would end FAILED.
			r.Fail(fmt.Sprintf("SENDER_ADDRESS %s is not covered by SENDER_IDENTITIES %s: name its address or its domain there (template parameter SenderIdentities)", addr, strings.Join(ids, ",")))
		default:
			d.Sender = from
		}
	}
	c.Shards = r.Int("UNDELIVERED_INDEX_SHARDS", env.DefaultIndexShards, env.IndexShards)
	d.Workers = r.Int("RELAY_WORKERS", 0, IntSettings["RELAY_WORKERS"])
	d.MaxSendAttempts = r.Int("RELAY_MAX_SEND_ATTEMPTS", 0, IntSettings["RELAY_MAX_SEND_ATTEMPTS"])
	// An email claimed by a relay that then died (timeout, crash, kill)
	// is left alone this long before another relay or the replay sends it.
	// Shorter retries sooner; it must stay above the worst time from claim
	// to SES's answer, or two relays may both send.
	d.Lease = time.Duration(r.Int("EMAIL_LEASE_SECONDS", 0, IntSettings["EMAIL_LEASE_SECONDS"])) * time.Second
	d.KeepDelivered = time.Duration(r.Int("OUTBOX_RETENTION_DAYS", 0, IntSettings["OUTBOX_RETENTION_DAYS"])) * 24 * time.Hour
	// The account's SES send rate is shared by every concurrent relay
	// instance (shards × ParallelizationFactor, plus replays).
	// NewPacedEngine lowers it to the account's MaxSendRate.
	c.AccountSendRate = r.Float("SES_ACCOUNT_SEND_RATE", DefaultAccountSendRate, MinAccountSendRate, MaxAccountSendRate)
	c.Concurrency = r.Int("RELAY_EXPECTED_CONCURRENCY", 1, IntSettings["RELAY_EXPECTED_CONCURRENCY"])
	d.EmailRate = c.AccountSendRate / float64(c.Concurrency)
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
	// A sender of the folder that the role may not send as would have every
	// one of its emails refused (AccessDenied, permanent: FAILED).
	for _, name := range slices.Sorted(maps.Keys(dir.Senders)) {
		if s := dir.Senders[name]; !Covered(ids, s.Address) {
			return c, fmt.Errorf("delivery configuration: the template folder's sender %q (%s) is not covered by SENDER_IDENTITIES %s: name its address or its domain there (template parameter SenderIdentities)",
				name, s.Address, strings.Join(ids, ","))
		}
	}
	d.Senders = dir.WireSenders()
	return c, nil
}

// ParseSender reads SENDER_ADDRESS: an address, or a display name and an
// address in angle brackets ("Shop <no-reply@shop.example>"). It returns
// the From as SES takes it (a display name quoted, or RFC 2047-encoded when
// it is not ASCII) and the address alone.
func ParseSender(s string) (from, addr string, err error) {
	if !strings.Contains(s, "<") {
		if _, err := dispatch.ParseAddress(s); err != nil {
			return "", "", errors.New("is not a valid email address")
		}
		return s, s, nil
	}
	a, err := mail.ParseAddress(s)
	if err != nil || strings.ContainsAny(a.Name, "\r\n") {
		return "", "", errors.New(`is not an address or "Display Name <address>"`)
	}
	if _, err := dispatch.ParseAddress(a.Address); err != nil {
		return "", "", errors.New("is not a valid email address")
	}
	if a.Name == "" {
		return a.Address, a.Address, nil
	}
	return a.String(), a.Address, nil
}

// ParseIdentities reads SENDER_IDENTITIES: comma-separated SES identities,
// each an email address or a domain; empty is the sender's address alone
// (the template's default too).
func ParseIdentities(s, senderAddr string) ([]string, error) {
	if strings.TrimSpace(s) == "" {
		return []string{senderAddr}, nil
	}
	var ids []string
	for _, id := range strings.Split(s, ",") {
		id = strings.TrimSpace(id)
		var err error
		if strings.Contains(id, "@") {
			_, err = dispatch.ParseAddress(id)
		} else if _, err = dispatch.ParseAddress("x@" + id); err == nil && !strings.Contains(id, ".") {
			err = errors.New("no dot")
		}
		if id == "" || err != nil {
			return nil, fmt.Errorf("%q: each identity must be an email address or a domain", id)
		}
		ids = append(ids, id)
	}
	return ids, nil
}

// Covered reports whether addr may be sent from as one of the identities:
// the address itself, or its domain (exactly: a subdomain needs its own
// identity in the list), compared without case.
func Covered(identities []string, addr string) bool {
	_, domain, _ := strings.Cut(addr, "@")
	for _, id := range identities {
		if strings.EqualFold(id, addr) || strings.EqualFold(id, domain) {
			return true
		}
	}
	return false
}

// NewEngine builds the delivery engine and its store. The SQS and
// SES clients do not retry on their own: the engine retries (only the failed
// entries, within the deadline), and two retry loops would multiply attempts.
func NewEngine(cfg aws.Config, c Config, log *slog.Logger, metrics *obs.Metrics) (*delivery.Engine, *dynamo.Store) {
	return newEngine(cfg, c, sesClient(cfg), log, metrics)
}

func newEngine(cfg aws.Config, c Config, api *sesapi.Client, log *slog.Logger, metrics *obs.Metrics) (*delivery.Engine, *dynamo.Store) {
	store := dynamo.New(dynamodb.NewFromConfig(cfg), c.TableName, c.Shards)
	queue := sqs.New(sqsapi.NewFromConfig(cfg, func(o *sqsapi.Options) { o.RetryMaxAttempts = 1 }))
	return delivery.New(c.Delivery, store, queue, ses.New(api), log, metrics), store
}

func sesClient(cfg aws.Config) *sesapi.Client {
	return sesapi.NewFromConfig(cfg, func(o *sesapi.Options) { o.RetryMaxAttempts = 1 })
}
