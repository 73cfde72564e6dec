package webhook

import (
	"context"
	"crypto/sha256"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/dispatcher-dev/dispatcher/internal/refresh"
)

// Refresh defaults.
const (
	DefaultRefreshEvery = 5 * time.Minute
	// The range of a refresh interval other than 0 (read once per cold
	// start): WEBHOOK_SECRETS_REFRESH, template WebhookSecretsRefreshSeconds.
	MinRefreshEvery = time.Second
	MaxRefreshEvery = 24 * time.Hour
)

// RefreshOptions configure a Refreshing verifier.
type RefreshOptions struct {
	// Every is how long secrets read from their source are used before
	// they are read again.
	Every time.Duration
	// Timeout bounds one read (default 2 s): the request that performs it
	// waits at most that long, then goes on with the secrets it has.
	Timeout time.Duration
	// RetryAfter is how long after a failed read the next one is tried
	// (default Every, at most 30 s), so that an outage of the source costs
	// one request per RetryAfter a Timeout, not every request.
	RetryAfter time.Duration
	// OnError is told of each failed read, once; the secrets in use stay.
	OnError func(ctx context.Context, err error)
	// OnChange is told when a read brought other secrets than those in use
	// (n: how many there are now).
	OnChange func(ctx context.Context, n int)
	// Now is the clock (default time.Now).
	Now func() time.Time
}

// Refreshing verifies signatures with secrets that it reads again from their
// source every opts.Every, so that a rotation reaches warm instances without
// waiting for them to be recycled. The secrets are read again on the
// request path, in VerifyContext, as package refresh describes; a read that
// fails, or that returns secrets NewVerifier refuses, keeps the secrets in
// use and is tried again after opts.RetryAfter.
type Refreshing struct {
	v        *refresh.Value[verifying]
	onChange func(ctx context.Context, n int)
}

// verifying is a Verifier with what tells a change of its secrets.
type verifying struct {
	v   *Verifier
	sum [sha256.Size]byte
	n   int
}

func newVerifying(secrets []string) (verifying, error) {
	v, err := NewVerifier(secrets)
	return verifying{v: v, sum: fingerprint(secrets), n: len(secrets)}, err
}

// NewRefreshing returns a Refreshing verifier that starts with secrets (read
// at cold start) and reads them again with load.
func NewRefreshing(secrets []string, load func(context.Context) ([]string, error), opts RefreshOptions) (*Refreshing, error) {
	if load == nil {
		return nil, errors.New("webhook: no source to refresh the secrets from")
	}
	cur, err := newVerifying(secrets)
	if err != nil {
		return nil, err
	}
	v, err := refresh.New(cur, func(ctx context.Context, cur verifying) (verifying, bool, error) {
		secrets, err := load(ctx)
		if err != nil {
			return cur, false, err
		}
		next, err := newVerifying(secrets)
		if err != nil {
			return cur, false, err
		}
		return next, next.sum != cur.sum, nil
	}, refresh.Options{Every: opts.Every, Timeout: opts.Timeout, RetryAfter: opts.RetryAfter, OnError: opts.OnError, Now: opts.Now})
	if err != nil {
		return nil, fmt.Errorf("webhook: %w", err)
	}
	return &Refreshing{v: v, onChange: opts.OnChange}, nil
}

// Verify checks a request with the secrets in use, without reading them
// again.
func (r *Refreshing) Verify(headers map[string]string, body []byte) (string, error) {
	return r.v.Current().v.Verify(headers, body)
}

// VerifyContext reads the secrets again if they are due, then checks the
// request as Verify does.
func (r *Refreshing) VerifyContext(ctx context.Context, headers map[string]string, body []byte) (string, error) {
	cur, changed := r.v.Get(ctx)
	if changed && r.onChange != nil {
		r.onChange(ctx, cur.n)
	}
	return cur.v.Verify(headers, body)
}

func fingerprint(secrets []string) [sha256.Size]byte {
	return sha256.Sum256([]byte(strings.Join(secrets, "\x00")))
}
