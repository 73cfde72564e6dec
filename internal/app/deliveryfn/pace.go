package deliveryfn

import (
	"context"
	"errors"
	"log/slog"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	sesapi "github.com/aws/aws-sdk-go-v2/service/sesv2"

	"github.com/dispatcher-dev/dispatcher/internal/delivery"
	"github.com/dispatcher-dev/dispatcher/internal/dispatch"
	"github.com/dispatcher-dev/dispatcher/internal/dynamo"
	"github.com/dispatcher-dev/dispatcher/internal/obs"
	"github.com/dispatcher-dev/dispatcher/internal/refresh"
)

// PaceEvery is how long an instance paces at the send quota it read before
// it reads it again (on the request path, as internal/refresh does): an
// account whose quota SES raised or lowered is followed within this long.
const PaceEvery = 5 * time.Minute

// Paced is the delivery engine paced from the SES account: its email rate
// is the lower of the account's MaxSendRate (SES v2 GetAccount) and
// SES_ACCOUNT_SEND_RATE, over RELAY_EXPECTED_CONCURRENCY, read at cold
// start and every PaceEvery. An account whose quota is below the parameter
// is then not throttled into retries; the parameter stays an upper bound.
type Paced struct {
	*delivery.Engine
	rate *refresh.Value[float64]
}

// Deliver reads the send quota again if it is due, then delivers.
func (p *Paced) Deliver(ctx context.Context, items []dispatch.OutboxItem) delivery.Result {
	if r, changed := p.rate.Get(ctx); changed {
		p.Engine.SetEmailRate(r)
	}
	return p.Engine.Deliver(ctx, items)
}

// NewPacedEngine is NewEngine paced from the account: it reads the send
// quota once, bounded by refresh.DefaultTimeout and ctx. A quota it cannot
// read (no ses:GetAccount, throttled, an endpoint without the call) leaves
// the parameter's rate, with a WARN line and the SendQuotaUnread metric: it
// never fails the cold start.
func NewPacedEngine(ctx context.Context, cfg aws.Config, c Config, log *slog.Logger, metrics *obs.Metrics) (*Paced, *dynamo.Store, error) {
	api := sesClient(cfg)
	engine, store := newEngine(cfg, c, api, log, metrics)
	quota := func(ctx context.Context) (float64, error) {
		// One attempt (the client's): a quota not read now is read again
		// PaceEvery later, and the rate in use holds meanwhile.
		out, err := api.GetAccount(ctx, &sesapi.GetAccountInput{})
		if err != nil {
			return 0, err
		}
		if out.SendQuota == nil || !(out.SendQuota.MaxSendRate > 0) {
			return 0, errors.New("GetAccount answered no positive SendQuota.MaxSendRate")
		}
		return out.SendQuota.MaxSendRate, nil
	}
	p, err := pace(ctx, engine, c, quota, nil, log, metrics)
	return p, store, err
}

// pace paces engine from quota (the account's MaxSendRate), read now and
// every PaceEvery on the clock now (nil: time.Now).
func pace(ctx context.Context, engine *delivery.Engine, c Config, quota func(context.Context) (float64, error), now func() time.Time, log *slog.Logger, metrics *obs.Metrics) (*Paced, error) {
	read := func(ctx context.Context) (float64, error) {
		q, err := quota(ctx)
		return c.instanceRate(q), err
	}
	unread := func(ctx context.Context, err error) {
		log.WarnContext(ctx, "SES send quota not read; the email rate in use stays",
			slog.Float64("emailRate", engine.EmailRate()), slog.String("error", err.Error()))
		metrics.Emit(map[string]string{"Service": "relay"}, obs.Metric{Name: "SendQuotaUnread", Value: 1, Unit: obs.Count})
	}
	rctx, cancel := context.WithTimeout(ctx, refresh.DefaultTimeout)
	r, err := read(rctx)
	cancel()
	if err != nil {
		unread(ctx, err)
	} else {
		engine.SetEmailRate(r)
	}
	v, err := refresh.New(engine.EmailRate(), func(ctx context.Context, cur float64) (float64, bool, error) {
		r, err := read(ctx)
		return r, err == nil && r != cur, err
	}, refresh.Options{Every: PaceEvery, RetryAfter: PaceEvery, OnError: unread, Now: now})
	if err != nil {
		return nil, err
	}
	return &Paced{Engine: engine, rate: v}, nil
}

// instanceRate is one instance's email rate when the account's MaxSendRate
// is quota: the lower of it and SES_ACCOUNT_SEND_RATE, shared as the
// parameter is (LoadConfig).
func (c Config) instanceRate(quota float64) float64 {
	return min(quota, c.AccountSendRate) / float64(c.Concurrency)
}
