// Package refresh keeps a value read from a source (webhook secrets, the
// caller registry) and reads it again every so often while an instance
// lives, on the request path.
//
// The read happens in Get, when a request needs the value and it is due:
// Lambda freezes an environment between invocations, so a background timer
// would fire late and its call could be frozen mid-flight and fail on thaw,
// while a read on the request path runs when the environment is running
// anyway and is bounded by Options.Timeout and the request's own deadline.
// One request at a time reads; the others go on with the value in use
// meanwhile. A read that fails keeps the value in use and is tried again
// after Options.RetryAfter.
package refresh

import (
	"context"
	"errors"
	"sync"
	"time"
)

// Defaults.
const (
	DefaultTimeout       = 2 * time.Second
	MaxDefaultRetryAfter = 30 * time.Second
)

// Options configure a Value.
type Options struct {
	// Every is how long a value read from its source is used before it is
	// read again.
	Every time.Duration
	// Timeout bounds one read (default 2 s): the request that performs it
	// waits at most that long, then goes on with the value it has.
	Timeout time.Duration
	// RetryAfter is how long after a failed read the next one is tried
	// (default Every, at most 30 s), so that an outage of the source costs
	// one request per RetryAfter a Timeout, not every request.
	RetryAfter time.Duration
	// OnError is told of each failed read, once; the value in use stays.
	OnError func(ctx context.Context, err error)
	// Now is the clock (default time.Now).
	Now func() time.Time
}

// Load reads the value again; cur is the value in use, for a source that
// keeps what it cannot read (part of the value). changed says whether it
// differs from cur.
type Load[T any] func(ctx context.Context, cur T) (next T, changed bool, err error)

// Value is a value read again from its source every Options.Every.
type Value[T any] struct {
	load Load[T]
	opts Options

	mu      sync.Mutex
	cur     T
	due     time.Time
	reading bool
}

// New returns a Value that starts with initial (read at cold start) and
// reads it again with load.
func New[T any](initial T, load Load[T], opts Options) (*Value[T], error) {
	if opts.Every <= 0 {
		return nil, errors.New("refresh: the interval must be positive")
	}
	if load == nil {
		return nil, errors.New("refresh: no source to read the value again from")
	}
	if opts.Timeout <= 0 {
		opts.Timeout = DefaultTimeout
	}
	if opts.RetryAfter <= 0 {
		opts.RetryAfter = min(opts.Every, MaxDefaultRetryAfter)
	}
	if opts.Now == nil {
		opts.Now = time.Now
	}
	return &Value[T]{load: load, opts: opts, cur: initial, due: opts.Now().Add(opts.Every)}, nil
}

// Current returns the value in use, without reading it again.
func (v *Value[T]) Current() T {
	v.mu.Lock()
	defer v.mu.Unlock()
	return v.cur
}

// Get reads the value again if it is due, then returns the value in use.
// changed reports that this call brought a new value.
func (v *Value[T]) Get(ctx context.Context) (cur T, changed bool) {
	v.mu.Lock()
	if v.reading || v.opts.Now().Before(v.due) {
		cur = v.cur
		v.mu.Unlock()
		return cur, false
	}
	v.reading = true
	prev := v.cur
	v.mu.Unlock()

	rctx, cancel := context.WithTimeout(ctx, v.opts.Timeout)
	next, changed, err := v.load(rctx, prev)
	cancel()

	v.mu.Lock()
	v.reading = false
	if err != nil {
		v.due = v.opts.Now().Add(v.opts.RetryAfter)
		changed = false
	} else {
		v.due = v.opts.Now().Add(v.opts.Every)
		if changed {
			v.cur = next
		}
	}
	cur = v.cur
	v.mu.Unlock()
	if err != nil && v.opts.OnError != nil {
		v.opts.OnError(ctx, err)
	}
	return cur, changed
}
