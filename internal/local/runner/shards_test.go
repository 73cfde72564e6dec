package runner

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/aws/aws-lambda-go/events"
	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/dynamodbstreams/types"
)

// fakeStream is a stream whose shards split: DynamoDB Local never splits
// its one shard, so shard lineage is tested here.
type fakeStream struct {
	mu     sync.Mutex
	shards []types.Shard
	recs   map[string][]string // shard -> sequence numbers
	closed map[string]bool
}

func (f *fakeStream) addShard(id, parent string, closed bool, seqs ...string) {
	f.mu.Lock()
	defer f.mu.Unlock()
	sh := types.Shard{ShardId: aws.String(id), SequenceNumberRange: &types.SequenceNumberRange{StartingSequenceNumber: aws.String("0")}}
	if parent != "" {
		sh.ParentShardId = aws.String(parent)
	}
	if closed {
		sh.SequenceNumberRange.EndingSequenceNumber = aws.String("999")
	}
	f.shards = append(f.shards, sh)
	f.recs[id] = seqs
	f.closed[id] = closed
}

// closeShard closes a shard, as DynamoDB does before it adds its children.
func (f *fakeStream) closeShard(id string) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.closed[id] = true
	for i := range f.shards {
		if aws.ToString(f.shards[i].ShardId) == id {
			f.shards[i].SequenceNumberRange.EndingSequenceNumber = aws.String("999")
		}
	}
}

func (f *fakeStream) add(id string, seqs ...string) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.recs[id] = append(f.recs[id], seqs...)
}

func (f *fakeStream) Shards(context.Context) ([]types.Shard, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	return slices.Clone(f.shards), nil
}

func (f *fakeStream) Iterator(_ context.Context, shard string, typ types.ShardIteratorType, _ string) (string, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	pos := 0
	if typ == types.ShardIteratorTypeLatest {
		pos = len(f.recs[shard])
	}
	return shard + "@" + strconv.Itoa(pos), nil
}

func (f *fakeStream) Poll(_ context.Context, it string, _ int32) ([]events.DynamoDBEventRecord, *string, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	shard, p, _ := strings.Cut(it, "@")
	pos, _ := strconv.Atoi(p)
	var out []events.DynamoDBEventRecord
	for _, seq := range f.recs[shard][pos:] {
		out = append(out, events.DynamoDBEventRecord{EventName: "INSERT", Change: events.DynamoDBStreamRecord{SequenceNumber: seq,
			Keys: map[string]events.DynamoDBAttributeValue{"sk": events.NewStringAttribute("OUTBOX#" + seq)}}})
	}
	pos = len(f.recs[shard])
	if f.closed[shard] {
		return out, nil, nil
	}
	next := shard + "@" + strconv.Itoa(pos)
	return out, &next, nil
}

func runFake(t *testing.T, f *fakeStream, start string) *esm {
	t.Helper()
	fn := NewInProcess("arn", time.Minute, func(context.Context, events.DynamoDBEvent) error { return nil })
	e := &esm{
		m:  StreamMapping{Function: "F", StartingPosition: start, BatchSize: 100, MaxRetryAttempts: -1, MaxRecordAge: -1},
		fn: fn, reader: f, poll: 5 * time.Millisecond, retryDelay: time.Millisecond,
		log: slog.New(slog.NewTextHandler(io.Discard, nil)), now: time.Now,
	}
	ctx, cancel := context.WithCancel(context.Background())
	if err := e.start(ctx); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cancel(); e.wait() })
	return e
}

func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	for deadline := time.Now().Add(5 * time.Second); !cond(); time.Sleep(5 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatal(what)
		}
	}
}

func TestChildShardsStartOnlyAfterTheirParentIsDrained(t *testing.T) {
	f := &fakeStream{recs: map[string][]string{}, closed: map[string]bool{}}
	f.addShard("parent", "", true, "1", "2")
	f.addShard("child-a", "parent", false, "3")
	f.addShard("child-b", "parent", false, "4")
	f.addShard("other", "", false, "5")
	e := runFake(t, f, "TRIM_HORIZON")
	waitFor(t, "five records delivered", func() bool { return e.snapshot().Delivered == 5 })
	f.add("child-a", "6")
	f.closeShard("child-b")
	f.addShard("grandchild", "child-b", false, "7") // found later: read from its start
	waitFor(t, "seven records delivered", func() bool { return e.snapshot().Delivered == 7 })
	e.mu.Lock()
	defer e.mu.Unlock()
	if !e.shards["parent"].finished || !e.shards["child-b"].finished || e.shards["child-a"].finished {
		t.Errorf("finished: parent %t, closed child %t (want both), open child %t (want not)", e.shards["parent"].finished, e.shards["child-b"].finished, e.shards["child-a"].finished)
	}
}

func TestChildrenWaitForTheParent(t *testing.T) {
	f := &fakeStream{recs: map[string][]string{}, closed: map[string]bool{}}
	f.addShard("parent", "", true, "1", "2")
	f.addShard("child", "parent", false, "3")
	var mu sync.Mutex
	var order []string
	block := make(chan struct{})
	fn := NewInProcess("arn", time.Minute, func(_ context.Context, ev events.DynamoDBEvent) error {
		if ev.Records[0].Change.SequenceNumber == "1" {
			<-block // the parent's batch is slow
		}
		mu.Lock()
		defer mu.Unlock()
		for _, r := range ev.Records {
			order = append(order, r.Change.SequenceNumber)
		}
		return nil
	})
	e := &esm{
		m:  StreamMapping{Function: "F", StartingPosition: "TRIM_HORIZON", BatchSize: 100, MaxRetryAttempts: -1, MaxRecordAge: -1},
		fn: fn, reader: f, poll: 5 * time.Millisecond, retryDelay: time.Millisecond,
		log: slog.New(slog.NewTextHandler(io.Discard, nil)), now: time.Now,
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer func() { cancel(); e.wait() }()
	if err := e.start(ctx); err != nil {
		t.Fatal(err)
	}
	time.Sleep(100 * time.Millisecond)
	mu.Lock()
	early := slices.Clone(order)
	mu.Unlock()
	close(block)
	waitFor(t, "three records", func() bool { return e.snapshot().Delivered == 3 })
	mu.Lock()
	defer mu.Unlock()
	if len(early) != 0 || !slices.Equal(order, []string{"1", "2", "3"}) {
		t.Errorf("delivered %v before the parent was done, %v in all; want nothing, then 1 2 3", early, order)
	}
}

func TestLatestSkipsClosedShardsAndStartsOpenOnesAtTheirTip(t *testing.T) {
	f := &fakeStream{recs: map[string][]string{}, closed: map[string]bool{}}
	f.addShard("old", "", true, "1")
	f.addShard("open", "old", false, "2")
	e := runFake(t, f, "LATEST")
	time.Sleep(50 * time.Millisecond)
	f.add("open", "3")
	waitFor(t, "the new record delivered", func() bool { return e.snapshot().Delivered == 1 })
	time.Sleep(50 * time.Millisecond)
	if st := e.snapshot(); st.Delivered != 1 || st.Read != 1 {
		t.Errorf("stats %+v: want only the record written after the start", st)
	}
}

// batches runs one mapping over a fake shard holding seqs with a function
// answering respond, and returns the sequence numbers of each invocation.
func batches(t *testing.T, m StreamMapping, seqs []string, respond func(call int, ev events.DynamoDBEvent) (events.DynamoDBEventResponse, error), until func(Stats) bool) [][]string {
	t.Helper()
	f := &fakeStream{recs: map[string][]string{}, closed: map[string]bool{}}
	f.addShard("s", "", false, seqs...)
	var mu sync.Mutex
	var got [][]string
	fn := NewInProcess("arn", time.Minute, func(_ context.Context, ev events.DynamoDBEvent) (events.DynamoDBEventResponse, error) {
		mu.Lock()
		var b []string
		for _, r := range ev.Records {
			b = append(b, r.Change.SequenceNumber)
		}
		got = append(got, b)
		call := len(got)
		mu.Unlock()
		return respond(call, ev)
	})
	m.Function, m.StartingPosition = "F", "TRIM_HORIZON"
	if m.BatchSize == 0 {
		m.BatchSize = 100
	}
	e := &esm{m: m, fn: fn, reader: f, poll: 5 * time.Millisecond, retryDelay: time.Millisecond,
		log: slog.New(slog.NewTextHandler(io.Discard, nil)), now: time.Now}
	ctx, cancel := context.WithCancel(context.Background())
	defer func() { cancel(); e.wait() }()
	if err := e.start(ctx); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "the mapping to settle", func() bool { return until(e.snapshot()) })
	mu.Lock()
	defer mu.Unlock()
	return slices.Clone(got)
}

func fail(seq string) events.DynamoDBEventResponse {
	return events.DynamoDBEventResponse{BatchItemFailures: []events.DynamoDBBatchItemFailure{{ItemIdentifier: seq}}}
}

func TestBatchResponses(t *testing.T) {
	five := []string{"1", "2", "3", "4", "5"}
	done := func(n int) func(Stats) bool {
		return func(s Stats) bool { return s.Delivered+s.Discarded == n }
	}
	tests := []struct {
		name    string
		m       StreamMapping
		respond func(int, events.DynamoDBEventResponse) (events.DynamoDBEventResponse, error)
		want    [][]string
	}{
		{
			name: "the lowest of several failed records is where the retry starts",
			m:    StreamMapping{ReportBatchItemFailure: true, MaxRetryAttempts: -1, MaxRecordAge: -1},
			respond: func(call int, _ events.DynamoDBEventResponse) (events.DynamoDBEventResponse, error) {
				if call == 1 {
					return events.DynamoDBEventResponse{BatchItemFailures: []events.DynamoDBBatchItemFailure{{ItemIdentifier: "4"}, {ItemIdentifier: "2"}}}, nil
				}
				return events.DynamoDBEventResponse{}, nil
			},
			want: [][]string{five, {"2", "3", "4", "5"}},
		},
		{
			name: "an identifier not in the batch fails the whole batch",
			m:    StreamMapping{ReportBatchItemFailure: true, MaxRetryAttempts: -1, MaxRecordAge: -1},
			respond: func(call int, _ events.DynamoDBEventResponse) (events.DynamoDBEventResponse, error) {
				if call == 1 {
					return fail("999"), nil
				}
				return events.DynamoDBEventResponse{}, nil
			},
			want: [][]string{five, five},
		},
		{
			name: "an empty identifier fails the whole batch",
			m:    StreamMapping{ReportBatchItemFailure: true, MaxRetryAttempts: -1, MaxRecordAge: -1},
			respond: func(call int, _ events.DynamoDBEventResponse) (events.DynamoDBEventResponse, error) {
				if call == 1 {
					return fail(""), nil
				}
				return events.DynamoDBEventResponse{}, nil
			},
			want: [][]string{five, five},
		},
		{
			name: "without ReportBatchItemFailures the response is ignored",
			m:    StreamMapping{MaxRetryAttempts: -1, MaxRecordAge: -1},
			respond: func(int, events.DynamoDBEventResponse) (events.DynamoDBEventResponse, error) {
				return fail("3"), nil
			},
			want: [][]string{five},
		},
		{
			name: "partial failures use retries: with none left the rest is discarded",
			m:    StreamMapping{ReportBatchItemFailure: true, MaxRetryAttempts: 1, MaxRecordAge: -1},
			respond: func(call int, _ events.DynamoDBEventResponse) (events.DynamoDBEventResponse, error) {
				return fail("4"), nil
			},
			want: [][]string{five, {"4", "5"}},
		},
		{
			name: "a batch is at most BatchSize records",
			m:    StreamMapping{BatchSize: 2, MaxRetryAttempts: -1, MaxRecordAge: -1},
			respond: func(int, events.DynamoDBEventResponse) (events.DynamoDBEventResponse, error) {
				return events.DynamoDBEventResponse{}, nil
			},
			want: [][]string{{"1", "2"}, {"3", "4"}, {"5"}},
		},
		{
			name: "without bisection a function error retries the whole batch",
			m:    StreamMapping{MaxRetryAttempts: 2, MaxRecordAge: -1},
			respond: func(int, events.DynamoDBEventResponse) (events.DynamoDBEventResponse, error) {
				return events.DynamoDBEventResponse{}, errBoom
			},
			want: [][]string{five, five, five},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := batches(t, tt.m, five, func(call int, ev events.DynamoDBEvent) (events.DynamoDBEventResponse, error) {
				return tt.respond(call, events.DynamoDBEventResponse{})
			}, done(5))
			if !slices.EqualFunc(got, tt.want, slices.Equal) {
				t.Errorf("batches %v, want %v", got, tt.want)
			}
		})
	}
}

var errBoom = fmt.Errorf("boom")

func TestRouteMatching(t *testing.T) {
	mk := func(method, path string, def bool) Route {
		return Route{Function: method + " " + path, Method: method, Path: path, Default: def, segments: strings.Split(strings.TrimPrefix(path, "/"), "/")}
	}
	a := &api{routes: []Route{
		mk("GET", "/v1/aggregates/{id}", false),
		mk("GET", "/v1/aggregates/special", false),
		mk("ANY", "/v1/aggregates/{id}", false),
		mk("GET", "/files/{path+}", false),
		mk("ANY", "/{proxy+}", true),
	}}
	tests := []struct {
		name, method, path, want, param string
	}{
		{"a literal segment beats a parameter", "GET", "/v1/aggregates/special", "GET /v1/aggregates/special", ""},
		{"a parameter takes one segment", "GET", "/v1/aggregates/a1", "GET /v1/aggregates/{id}", "a1"},
		{"the method's route beats ANY", "GET", "/v1/aggregates/a1", "GET /v1/aggregates/{id}", "a1"},
		{"ANY takes the other methods", "DELETE", "/v1/aggregates/a1", "ANY /v1/aggregates/{id}", "a1"},
		{"a greedy parameter takes the rest", "GET", "/files/a/b/c", "GET /files/{path+}", "a/b/c"},
		{"an encoded parameter is decoded", "GET", "/v1/aggregates/a%201", "GET /v1/aggregates/{id}", "a 1"},
		{"$default takes what nothing else does", "POST", "/nothing/here", "ANY /{proxy+}", "nothing/here"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r, params, ok := a.match(tt.method, tt.path)
			if !ok || r.Function != tt.want {
				t.Fatalf("matched %q (%t), want %q", r.Function, ok, tt.want)
			}
			var got string
			for _, v := range params {
				got = v
			}
			if got != tt.param {
				t.Errorf("parameter %q, want %q", got, tt.param)
			}
			if r.Default && r.Key() != "$default" {
				t.Errorf("route key %q, want $default", r.Key())
			}
		})
	}
	if _, _, ok := (&api{routes: a.routes[:2]}).match("GET", "/v1/aggregates"); ok {
		t.Error("a path one segment short matched")
	}
}
