package webhook

import (
	"context"
	"crypto/sha256"
	"errors"
	"strings"
	"sync"
	"time"
)

// Refresh defaults.
const (
	DefaultRefreshEvery = 5 * time.Minute
	// The range of a refresh interval other than 0 (read once per cold
	// start): WEBHOOK_SECRETS_REFRESH, template WebhookSecretsRefreshSeconds.
	MinRefreshEvery       = time.Second
	MaxRefreshEvery       = 24 * time.Hour
	defaultRefreshTimeout = 2 * time.Second
	maxRefreshRetryAfter  = 30 * time.Second
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
// waiting for them to be recycled.
//
// The read happens on the request path, in VerifyContext, when a request
// needs a signature checked and the secrets are due: Lambda freezes an
// environment between invocations, so a background timer would fire late
// and its call could be frozen mid-flight and fail on thaw, while a read
// on the request path runs when the environment is running anyway and is
// bounded by opts.Timeout and the request's own deadline. One request at
// a time reads; the others go on with the secrets in use meanwhile. A read
// that fails, or that returns secrets NewVerifier refuses, keeps the secrets
// in use and is tried again after opts.RetryAfter.
type Refreshing struct {
	load func(context.Context) ([]string, error)
	opts RefreshOptions

	mu      sync.Mutex
	cur     *Verifier
	sum     [sha256.Size]byte // of the secrets in use, to tell a change
	due     time.Time
	reading bool
}

// NewRefreshing returns a Refreshing verifier that starts with secrets (read
// at cold start) and reads them again with load.
func NewRefreshing(secrets []string, load func(context.Context) ([]string, error), opts RefreshOptions) (*Refreshing, error) {
	if opts.Every <= 0 {
		return nil, errors.New("webhook: the refresh interval must be positive")
	}
	if load == nil {
		return nil, errors.New("webhook: no source to refresh the secrets from")
	}
	if opts.Timeout <= 0 {
		opts.Timeout = defaultRefreshTimeout
	}
	if opts.RetryAfter <= 0 {
		opts.RetryAfter = min(opts.Every, maxRefreshRetryAfter)
	}
	if opts.Now == nil {
		opts.Now = time.Now
	}
	v, err := NewVerifier(secrets)
	if err != nil {
		return nil, err
	}
	return &Refreshing{load: load, opts: opts, cur: v, sum: fingerprint(secrets), due: opts.Now().Add(opts.Every)}, nil
}

// Verify checks a request with the secrets in use, without reading them
// again.
func (r *Refreshing) Verify(headers map[string]string, body []byte) (string, error) {
	r.mu.Lock()
	v := r.cur
	r.mu.Unlock()
	return v.Verify(headers, body)
}

// VerifyContext reads the secrets again if they are due, then checks the
// request as Verify does.
func (r *Refreshing) VerifyContext(ctx context.Context, headers map[string]string, body []byte) (string, error) {
	r.refresh(ctx)
	return r.Verify(headers, body)
}

func (r *Refreshing) refresh(ctx context.Context) {
	r.mu.Lock()
	if r.reading || r.opts.Now().Before(r.due) {
		r.mu.Unlock()
		return
	}
	r.reading = true
	r.mu.Unlock()

	rctx, cancel := context.WithTimeout(ctx, r.opts.Timeout)
	secrets, err := r.load(rctx)
	cancel()
	var v *Verifier
	if err == nil {
		v, err = NewVerifier(secrets)
	}

	r.mu.Lock()
	r.reading = false
	changed := false
	if err != nil {
		r.due = r.opts.Now().Add(r.opts.RetryAfter)
	} else {
		r.due = r.opts.Now().Add(r.opts.Every)
		sum := fingerprint(secrets)
		changed = sum != r.sum
		r.cur, r.sum = v, sum
	}
	r.mu.Unlock()

	switch {
	case err != nil && r.opts.OnError != nil:
		r.opts.OnError(ctx, err)
	case changed && r.opts.OnChange != nil:
		r.opts.OnChange(ctx, len(secrets))
	}
}

func fingerprint(secrets []string) [sha256.Size]byte {
	return sha256.Sum256([]byte(strings.Join(secrets, "\x00")))
}
