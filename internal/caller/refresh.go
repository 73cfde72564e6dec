package caller

import (
	"context"
	"time"

	"github.com/dispatcher-dev/dispatcher/internal/dispatch"
	"github.com/dispatcher-dev/dispatcher/internal/refresh"
)

// RefreshOptions configure a Refreshing registry.
type RefreshOptions struct {
	// Every is how long a registry is used before it is read again
	// (WEBHOOK_SECRETS_REFRESH).
	Every time.Duration
	// Timeout bounds one read (default 2 s).
	Timeout time.Duration
	// OnError is told of a failed read (the registry in use stays), and of
	// a read in which some callers' documents did not parse (those callers
	// keep what they had; the others are read anew).
	OnError func(ctx context.Context, err error)
	// OnChange is told when a read brought another registry (n: callers).
	OnChange func(ctx context.Context, n int)
	// Now is the clock (default time.Now).
	Now func() time.Time
}

// Refreshing is a Registry read again from its sources every opts.Every,
// on the request path (package refresh), so that a caller added, rotated
// or removed reaches warm instances. A request authenticates against the
// registry in use when it arrives; a read replaces the registry whole, so a
// rotation of one caller's secrets changes nothing for another caller.
type Refreshing struct {
	v        *refresh.Value[*Registry]
	onChange func(ctx context.Context, n int)
}

// NewRefreshing returns a Refreshing registry that starts with initial
// (read at cold start) and reads its configuration again with load.
func NewRefreshing(initial *Registry, load func(ctx context.Context) (Config, error), opts RefreshOptions) (*Refreshing, error) {
	onError := opts.OnError
	v, err := refresh.New(initial, func(ctx context.Context, cur *Registry) (*Registry, bool, error) {
		c, err := load(ctx)
		if err != nil {
			return cur, false, err
		}
		next, kept, err := build(c, cur)
		if err != nil {
			return cur, false, err
		}
		if kept != nil && onError != nil {
			onError(ctx, kept)
		}
		return next, next.sum != cur.sum, nil
	}, refresh.Options{Every: opts.Every, Timeout: opts.Timeout, OnError: onError, Now: opts.Now})
	if err != nil {
		return nil, err
	}
	return &Refreshing{v: v, onChange: opts.OnChange}, nil
}

// Authenticate reads the registry again if it is due, then authenticates
// the request as Registry.Authenticate does.
func (r *Refreshing) Authenticate(ctx context.Context, principalARN string, headers map[string]string, signed []byte) (dispatch.Caller, string, error) {
	reg, changed := r.v.Get(ctx)
	if changed && r.onChange != nil {
		r.onChange(ctx, reg.Len())
	}
	return reg.Authenticate(ctx, principalARN, headers, signed)
}
