package webhook

import (
	"context"
	"errors"
	"strings"
	"sync"
	"testing"
	"time"
)

// clock is a fake clock that a test moves by hand.
type clock struct {
	mu  sync.Mutex
	now time.Time
}

func (c *clock) Now() time.Time { c.mu.Lock(); defer c.mu.Unlock(); return c.now }
func (c *clock) advance(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.now = c.now.Add(d)
}

// source is a fake secret source: what it holds, or an error, and how many
// times it was read.
type source struct {
	mu      sync.Mutex
	value   []string
	err     error
	reads   int
	block   chan struct{} // when set, a read waits for it or for its context
	started chan struct{} // when set, told that a read has started
}

func (s *source) set(value []string, err error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.value, s.err = value, err
}

func (s *source) load(ctx context.Context) ([]string, error) {
	s.mu.Lock()
	s.reads++
	value, err, block, started := s.value, s.err, s.block, s.started
	s.mu.Unlock()
	if started != nil {
		started <- struct{}{}
	}
	if block != nil {
		select {
		case <-block:
		case <-ctx.Done():
			return nil, ctx.Err()
		}
	}
	return value, err
}

func (s *source) count() int { s.mu.Lock(); defer s.mu.Unlock(); return s.reads }

// events records what a Refreshing reports.
type events struct {
	mu      sync.Mutex
	errs    []error
	changes []int
}

func (e *events) opts(c *clock, every time.Duration) RefreshOptions {
	return RefreshOptions{
		Every: every, Now: c.Now,
		OnError:  func(_ context.Context, err error) { e.mu.Lock(); e.errs = append(e.errs, err); e.mu.Unlock() },
		OnChange: func(_ context.Context, n int) { e.mu.Lock(); e.changes = append(e.changes, n); e.mu.Unlock() },
	}
}

func (e *events) errors() int { e.mu.Lock(); defer e.mu.Unlock(); return len(e.errs) }

// accepts reports whether r accepts a request signed with sec. The
// signature's timestamp is the real time, which the verifier checks; the
// fake clock moves only the refreshes.
func accepts(t *testing.T, r *Refreshing, sec string) bool {
	t.Helper()
	_, err := r.VerifyContext(context.Background(), signed(t, sec, msgID, time.Now(), body), body)
	if err != nil && !errors.Is(err, ErrUnauthorized) {
		t.Errorf("VerifyContext: %v", err) // not Fatal: within runs this off the test goroutine
	}
	return err == nil
}

// within runs f and fails the test if it takes longer than d (a hang would
// otherwise last until go test's timeout).
func within(t *testing.T, d time.Duration, what string, f func() bool) bool {
	t.Helper()
	done := make(chan bool, 1)
	go func() { done <- f() }()
	select {
	case ok := <-done:
		return ok
	case <-time.After(d):
		t.Fatalf("%s took more than %s", what, d)
		return false
	}
}

func TestRefreshingFollowsARotation(t *testing.T) {
	c := &clock{now: time.Now()}
	src := &source{}
	var ev events
	r, err := NewRefreshing([]string{previous}, src.load, ev.opts(c, 5*time.Minute))
	if err != nil {
		t.Fatal(err)
	}
	// The operator adds the new secret as the second of two.
	src.set([]string{previous, current}, nil)
	c.advance(5*time.Minute - time.Second)
	if accepts(t, r, current) || src.count() != 0 {
		t.Fatalf("read %d times before the interval; the new secret must not be known yet", src.count())
	}
	c.advance(time.Second)
	if !accepts(t, r, current) || !accepts(t, r, previous) {
		t.Fatal("after the interval, both secrets must be accepted")
	}
	if src.count() != 1 || len(ev.changes) != 1 || ev.changes[0] != 2 {
		t.Errorf("reads %d, changes %v; want one read that reported 2 secrets", src.count(), ev.changes)
	}
	// Senders switch; the operator removes the old secret.
	src.set([]string{current}, nil)
	c.advance(5 * time.Minute)
	if accepts(t, r, previous) || !accepts(t, r, current) {
		t.Fatal("after the next interval, only the new secret must be accepted")
	}
	c.advance(5 * time.Minute)
	accepts(t, r, current)
	if src.count() != 3 || len(ev.changes) != 2 {
		t.Errorf("reads %d, changes %v; want 3 reads and a change reported only when the secrets changed", src.count(), ev.changes)
	}
	if ev.errors() != 0 {
		t.Errorf("errors reported: %v", ev.errs)
	}
}

func TestRefreshingKeepsTheSecretsWhenAReadFails(t *testing.T) {
	tests := []struct {
		name  string
		value []string
		err   error
	}{
		{"keeps the secrets when the source fails", nil, errors.New("AccessDeniedException")},
		{"keeps the secrets when the source holds a bad secret", []string{"whsec_short"}, nil},
		{"keeps the secrets when the source holds three secrets", []string{current, previous, stranger}, nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := &clock{now: time.Now()}
			src := &source{}
			src.set(tt.value, tt.err)
			var ev events
			opts := ev.opts(c, 5*time.Minute)
			opts.RetryAfter = 30 * time.Second
			r, err := NewRefreshing([]string{current}, src.load, opts)
			if err != nil {
				t.Fatal(err)
			}
			c.advance(5 * time.Minute)
			if !accepts(t, r, current) {
				t.Fatal("a failed read dropped the secrets in use")
			}
			if ev.errors() != 1 || src.count() != 1 {
				t.Fatalf("errors reported %d, reads %d; want one of each", ev.errors(), src.count())
			}
			for _, sec := range tt.value {
				if strings.Contains(ev.errs[0].Error(), sec) {
					t.Errorf("the error quotes a secret: %v", ev.errs[0])
				}
			}
			// Not again on every request: after RetryAfter.
			c.advance(29 * time.Second)
			accepts(t, r, current)
			if src.count() != 1 || ev.errors() != 1 {
				t.Fatalf("reads %d, errors %d before RetryAfter; want 1 and 1", src.count(), ev.errors())
			}
			src.set([]string{stranger}, nil)
			c.advance(time.Second)
			if !accepts(t, r, stranger) || accepts(t, r, current) {
				t.Fatal("the retry after RetryAfter did not take the source's secrets")
			}
			if src.count() != 2 || ev.errors() != 1 {
				t.Errorf("reads %d, errors %d; want 2 and 1", src.count(), ev.errors())
			}
		})
	}
}

func TestRefreshingBoundsASlowRead(t *testing.T) {
	c := &clock{now: time.Now()}
	src := &source{block: make(chan struct{})} // never answers
	var ev events
	opts := ev.opts(c, time.Minute)
	opts.Timeout = 50 * time.Millisecond
	r, err := NewRefreshing([]string{current}, src.load, opts)
	if err != nil {
		t.Fatal(err)
	}
	c.advance(time.Minute)
	if !within(t, 2*time.Second, "a request while the source hangs", func() bool { return accepts(t, r, current) }) {
		t.Fatal("the request was refused while the source hung")
	}
	if ev.errors() != 1 || !errors.Is(ev.errs[0], context.DeadlineExceeded) {
		t.Errorf("errors reported: %v, want one deadline", ev.errs)
	}
}

func TestOnlyOneRequestReadsAtATime(t *testing.T) {
	c := &clock{now: time.Now()}
	src := &source{block: make(chan struct{}), started: make(chan struct{}, 1)}
	src.set([]string{stranger}, nil)
	var ev events
	opts := ev.opts(c, time.Minute)
	opts.Timeout = time.Minute
	r, err := NewRefreshing([]string{current}, src.load, opts)
	if err != nil {
		t.Fatal(err)
	}
	c.advance(time.Minute)
	done := make(chan bool, 1)
	go func() { done <- accepts(t, r, stranger) }()
	within(t, 2*time.Second, "starting the read", func() bool { <-src.started; return true })
	// Meanwhile another request goes on with the secrets in use, at once.
	if !within(t, 2*time.Second, "a request during the read", func() bool { return accepts(t, r, current) }) {
		t.Error("a request during the read was refused")
	}
	if src.count() != 1 {
		t.Errorf("%d reads, want 1", src.count())
	}
	close(src.block)
	if !<-done {
		t.Error("the reading request did not get the new secrets")
	}
}

func TestNewRefreshingRefusesBadSettings(t *testing.T) {
	load := (&source{}).load
	if _, err := NewRefreshing([]string{current}, load, RefreshOptions{}); err == nil {
		t.Error("accepted no interval")
	}
	if _, err := NewRefreshing([]string{current}, nil, RefreshOptions{Every: time.Minute}); err == nil {
		t.Error("accepted no source")
	}
	if _, err := NewRefreshing([]string{"whsec_short"}, load, RefreshOptions{Every: time.Minute}); err == nil {
		t.Error("accepted a bad initial secret")
	}
}
