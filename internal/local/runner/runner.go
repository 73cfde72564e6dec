// Package runner runs the template's functions on one machine, behind
// emulations of their triggers: an API Gateway HTTP API (payload format
// 2.0) for the HttpApi events and a DynamoDB Streams event source mapping
// for the DynamoDB events and an SQS event source mapping for the SQS events
// (sqsesm.go), with every setting read from infra/template.yaml.
// The functions run in this process (built by the same internal/app
// constructors as the functions' main.go) or as the built bootstrap
// binaries under the AWS Lambda Runtime Interface Emulator.
package runner

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/dynamodbstreams"
	sqsapi "github.com/aws/aws-sdk-go-v2/service/sqs"

	"github.com/dispatcher-dev/dispatcher/internal/local/provision"
	"github.com/dispatcher-dev/dispatcher/internal/streams"
)

// Defaults.
const (
	DefaultAddr         = "127.0.0.1:3000"
	DefaultPollInterval = 250 * time.Millisecond // Lambda polls each shard about four times a second
	DefaultRetryDelay   = 500 * time.Millisecond
	// ReplayFunction is the function behind POST /_local/replay.
	ReplayFunction = "DLQReplayFunction"
	// LocalAccountID is the account id of everything local, as in the
	// template evaluator.
	LocalAccountID = "000000000000"
)

// Options configures a Runner.
type Options struct {
	Stack *provision.Stack // provisioned template
	AWS   aws.Config       // for the Streams API and the on-failure destination
	// Functions by logical id; every function with an event must be there.
	Functions map[string]Function
	// Addr is where the API listens; "127.0.0.1:0" picks a free port.
	Addr         string
	PollInterval time.Duration
	RetryDelay   time.Duration // between retries of a failed batch
	Log          *slog.Logger
	// Schedules runs the template's rate() schedules (the sweeper); off in
	// tests, which do not wait minutes.
	Schedules bool
	// Tune adjusts a stream mapping after it is read from the template
	// (tests shorten retries with it); nil leaves the template's settings.
	Tune func(*StreamMapping)
}

// Runner is the API server and the stream mappings.
type Runner struct {
	opts Options
	spec *Spec
	api  *api
	esms []*esm
	// pollers emulate the SQS event source mappings (sqsesm.go).
	pollers []*sqsPoller
	ln      net.Listener
	srv     *http.Server
	stop    context.CancelFunc
	done    sync.WaitGroup
	close   sync.Once
	closed  chan struct{}
}

// New reads the routes and mappings from the stack's template and checks
// that every function they need is given.
func New(opts Options) (*Runner, error) {
	if opts.Stack == nil {
		return nil, errors.New("runner: no provisioned stack")
	}
	if opts.Addr == "" {
		opts.Addr = DefaultAddr
	}
	if opts.PollInterval <= 0 {
		opts.PollInterval = DefaultPollInterval
	}
	if opts.RetryDelay < 0 {
		opts.RetryDelay = 0
	} else if opts.RetryDelay == 0 {
		opts.RetryDelay = DefaultRetryDelay
	}
	if opts.Log == nil {
		opts.Log = slog.New(slog.NewTextHandler(io.Discard, nil))
	}
	spec, err := ReadSpec(opts.Stack)
	if err != nil {
		return nil, fmt.Errorf("runner: %w", err)
	}
	r := &Runner{opts: opts, spec: spec, closed: make(chan struct{})}
	for _, rt := range spec.Routes {
		if opts.Functions[rt.Function] == nil {
			return nil, fmt.Errorf("runner: route %s needs function %s, which was not given", rt.Key(), rt.Function)
		}
		if strings.HasPrefix(rt.Path, "/_local/") {
			return nil, fmt.Errorf("runner: route %s collides with the runner's own /_local/ routes", rt.Key())
		}
	}
	r.api = &api{routes: spec.Routes, functions: opts.Functions, replay: opts.Functions[ReplayFunction], log: opts.Log, now: time.Now}
	streamsAPI := dynamodbstreams.NewFromConfig(opts.AWS)
	sqsClient := sqsapi.NewFromConfig(opts.AWS)
	region := opts.AWS.Region
	if region == "" {
		region = "us-east-1"
	}
	for _, m := range spec.Streams {
		if opts.Tune != nil {
			opts.Tune(&m)
		}
		if !m.Enabled {
			continue
		}
		fn := opts.Functions[m.Function]
		if fn == nil {
			return nil, fmt.Errorf("runner: stream mapping %s.%s needs function %s, which was not given", m.Function, m.Event, m.Function)
		}
		r.esms = append(r.esms, &esm{
			m: m, fn: fn, functionArn: r.FunctionArn(m.Function),
			reader: streams.NewReader(streamsAPI, m.StreamArn, region), sqs: sqsClient,
			poll: opts.PollInterval, retryDelay: opts.RetryDelay, log: opts.Log, now: time.Now,
		})
	}
	for _, m := range spec.Queues {
		if !m.Enabled {
			continue
		}
		fn := opts.Functions[m.Function]
		if fn == nil {
			// Harnesses that build only some functions by hand run without
			// it; the queue then keeps its messages.
			r.spec.Notes = append(r.spec.Notes, fmt.Sprintf("SQS mapping %s.%s not run: function %s was not given", m.Function, m.Event, m.Function))
			continue
		}
		r.pollers = append(r.pollers, &sqsPoller{
			m: m, fn: fn, sqs: sqsClient, region: region, retryDelay: opts.RetryDelay, wait: time.Second, log: opts.Log,
		})
	}
	return r, nil
}

// Spec returns what was read from the template.
func (r *Runner) Spec() *Spec { return r.spec }

// FunctionArn is the ARN a function would have (named like
// CloudFormation's generated names).
func (r *Runner) FunctionArn(logicalID string) string {
	region := r.opts.AWS.Region
	if region == "" {
		region = "us-east-1"
	}
	return fmt.Sprintf("arn:aws:lambda:%s:%s:function:%s-%s", region, LocalAccountID, r.opts.Stack.Eval.StackName(), logicalID)
}

// Start listens and starts polling; it returns once the API accepts
// connections and every open shard has its starting iterator.
func (r *Runner) Start(ctx context.Context) error {
	ln, err := net.Listen("tcp", r.opts.Addr)
	if err != nil {
		return fmt.Errorf("runner: listen on %s: %w", r.opts.Addr, err)
	}
	r.ln = ln
	r.srv = &http.Server{Handler: r.api, ReadHeaderTimeout: 10 * time.Second}
	r.done.Add(1)
	go func() {
		defer r.done.Done()
		if err := r.srv.Serve(ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
			r.opts.Log.Error("API server stopped", "error", err.Error())
		}
	}()
	pctx, cancel := context.WithCancel(context.WithoutCancel(ctx))
	r.stop = cancel
	for _, e := range r.esms {
		if err := e.start(pctx); err != nil {
			r.Close()
			return fmt.Errorf("runner: %w", err)
		}
	}
	for _, p := range r.pollers {
		p.start(pctx)
	}
	if r.opts.Schedules {
		for _, sc := range r.spec.Schedules {
			fn := r.opts.Functions[sc.Function]
			if !sc.Enabled || fn == nil {
				continue
			}
			r.done.Add(1)
			go func() {
				defer r.done.Done()
				r.runSchedule(pctx, sc, fn)
			}()
		}
	}
	go func() {
		select {
		case <-ctx.Done():
			r.Close()
		case <-r.closed:
		}
	}()
	return nil
}

func (r *Runner) runSchedule(ctx context.Context, sc Schedule, fn Function) {
	t := time.NewTicker(sc.Every)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		reqID := newRequestID()
		out, err := fn.Invoke(ctx, reqID, []byte(sc.Input))
		if err != nil {
			if ctx.Err() == nil {
				r.opts.Log.Error("scheduled invocation failed", "function", sc.Function, "event", sc.Event, "requestId", reqID, "error", err.Error())
			}
			continue
		}
		r.opts.Log.Info("scheduled invocation", "function", sc.Function, "event", sc.Event, "requestId", reqID, "result", string(out))
	}
}

// URL is the API's base URL.
func (r *Runner) URL() string { return "http://" + r.ln.Addr().String() }

// Close stops the API (letting requests in flight finish, for a while)
// and the pollers, and waits for them.
func (r *Runner) Close() {
	r.close.Do(func() {
		defer close(r.closed)
		if r.srv != nil {
			ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
			_ = r.srv.Shutdown(ctx)
			cancel()
		}
		if r.stop != nil {
			r.stop()
		}
		for _, e := range r.esms {
			e.wait()
		}
		for _, p := range r.pollers {
			p.wg.Wait()
		}
		r.done.Wait()
	})
}

// Stats returns the counters of a function's stream mappings.
func (r *Runner) Stats(function string) Stats {
	var s Stats
	for _, e := range r.esms {
		if e.m.Function == function {
			x := e.snapshot()
			s.Read += x.Read
			s.Filtered += x.Filtered
			s.Invocations += x.Invocations
			s.Delivered += x.Delivered
			s.Discarded += x.Discarded
		}
	}
	return s
}

// CaughtUp reports whether the function's stream mappings have read every
// shard to its current end and settled every record they read (delivered,
// filtered out, or handed to the on-failure destination), with no batch
// waiting or in flight. Records written after the last poll are not seen:
// a caller that wants "everything written so far is handled" stops writing,
// then waits for CaughtUp to hold for a few poll intervals.
func (r *Runner) CaughtUp(function string) bool {
	found := false
	for _, e := range r.esms {
		if e.m.Function == function {
			found = true
			if !e.caughtUp() {
				return false
			}
		}
	}
	return found
}

// Describe lists the routes and mappings in a few lines, for a banner.
func (r *Runner) Describe() []string {
	var out []string
	routes := append([]Route(nil), r.spec.Routes...)
	sort.Slice(routes, func(i, j int) bool { return routes[i].Key() < routes[j].Key() })
	for _, rt := range routes {
		out = append(out, fmt.Sprintf("%-34s -> %s", rt.Key(), rt.Function))
	}
	if r.api.replay != nil {
		out = append(out, fmt.Sprintf("%-34s -> %s (local only)", "POST "+ReplayPath, ReplayFunction))
	}
	for _, e := range r.esms {
		m := e.m
		retries := "until the record expires"
		if m.MaxRetryAttempts >= 0 {
			retries = fmt.Sprint(m.MaxRetryAttempts)
		}
		age := "unbounded"
		if m.MaxRecordAge >= 0 {
			age = m.MaxRecordAge.String()
		}
		var filters []string
		for _, f := range m.Filters {
			filters = append(filters, f.String())
		}
		onFailure := "none"
		if m.OnFailureQueueURL != "" {
			onFailure = m.OnFailureQueueURL
		}
		out = append(out,
			fmt.Sprintf("stream %s -> %s (%s)", shortArn(m.StreamArn), m.Function, m.Event),
			fmt.Sprintf("  start %s, batch %d, window %s, bisect %t, retries %s, max record age %s, ReportBatchItemFailures %t, parallelization %d",
				m.StartingPosition, m.BatchSize, m.BatchingWindow, m.Bisect, retries, age, m.ReportBatchItemFailure, m.lanes()),
			fmt.Sprintf("  filter %s", strings.Join(filters, " OR ")),
			fmt.Sprintf("  on failure -> %s", onFailure))
	}
	for _, p := range r.pollers {
		out = append(out, fmt.Sprintf("queue %s -> %s (%s): batch %d, ReportBatchItemFailures %t", p.m.QueueURL, p.m.Function, p.m.Event, p.m.BatchSize, p.m.ReportBatchItemFailure))
	}
	for _, sc := range r.spec.Schedules {
		state := "every " + sc.Every.String()
		if !sc.Enabled {
			state = "disabled in the template"
		} else if !r.opts.Schedules {
			state = "not run (schedules off)"
		}
		out = append(out, fmt.Sprintf("schedule %s.%s -> %s: %s", sc.Function, sc.Event, sc.Input, state))
	}
	for _, n := range r.spec.Notes {
		out = append(out, "note: "+n)
	}
	return out
}

func shortArn(arn string) string {
	if i := strings.Index(arn, ":table/"); i >= 0 {
		return arn[i+1:]
	}
	return arn
}
