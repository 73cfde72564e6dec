package runner

import (
	"context"
	"crypto/md5"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/aws/aws-lambda-go/events"
	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/dynamodbstreams/types"
	sqsapi "github.com/aws/aws-sdk-go-v2/service/sqs"

	"github.com/dispatcher-dev/dispatcher/internal/replay"
	"github.com/dispatcher-dev/dispatcher/internal/retry"
	"github.com/dispatcher-dev/dispatcher/internal/streams"
)

// Conditions of an on-failure record, as Lambda names them.
const (
	ConditionRetriesExhausted = "RetryAttemptsExhausted"
	ConditionRecordAge        = "RecordAgeExceeded"
)

// esm emulates one DynamoDB Streams event source mapping: one worker per
// shard (a child shard starts once its parent is drained), filtering,
// batching, ParallelizationFactor lanes per shard, partial batch failures,
// bisection, bounded retries and the on-failure destination.
// shardReader is what a mapping needs of the Streams API
// (*streams.Reader).
type shardReader interface {
	Shards(ctx context.Context) ([]types.Shard, error)
	Iterator(ctx context.Context, shardID string, typ types.ShardIteratorType, sequence string) (string, error)
	Poll(ctx context.Context, iterator string, limit int32) ([]events.DynamoDBEventRecord, *string, error)
}

var _ shardReader = (*streams.Reader)(nil)

type esm struct {
	m           StreamMapping
	fn          Function
	functionArn string
	reader      shardReader
	sqs         *sqsapi.Client
	poll        time.Duration
	retryDelay  time.Duration
	log         *slog.Logger
	now         func() time.Time

	mu     sync.Mutex
	shards map[string]*shardState
	kick   chan struct{} // a shard finished: its children may start now
	wg     sync.WaitGroup
	stats  Stats
}

// Stats counts what a mapping did.
type Stats struct {
	Read        int // records read from the stream
	Filtered    int // records dropped by FilterCriteria (checkpointed, never delivered)
	Invocations int
	Delivered   int // records of successful invocations
	Discarded   int // records sent to the on-failure destination (or dropped without one)
}

type shardState struct {
	id       string
	parent   string
	started  bool
	finished bool
	idle     bool // read to its current end, nothing buffered, no batch in flight
}

// record is a stream record with its JSON form, which filters match and
// payload sizes count.
type record struct {
	ev     events.DynamoDBEventRecord
	json   []byte
	readAt time.Time
}

// start discovers the shards and starts a worker for each that can start
// now. Initial iterators are taken before it returns, so with LATEST a
// record written after start is never missed.
func (e *esm) start(ctx context.Context) error {
	e.shards = map[string]*shardState{}
	e.kick = make(chan struct{}, 1)
	shards, err := e.reader.Shards(ctx)
	if err != nil {
		return fmt.Errorf("%s: describe stream %s: %w", e.m.Function, e.m.StreamArn, err)
	}
	if err := e.discover(ctx, shards, true); err != nil {
		return err
	}
	e.wg.Add(1)
	go func() {
		defer e.wg.Done()
		e.watchShards(ctx)
	}()
	return nil
}

func (e *esm) watchShards(ctx context.Context) {
	every := max(4*e.poll, time.Second)
	t := time.NewTicker(every)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		case <-e.kick:
		}
		shards, err := e.reader.Shards(ctx)
		if err != nil {
			if ctx.Err() == nil {
				e.log.Warn("describe stream failed; will retry", "function", e.m.Function, "error", err.Error())
			}
			continue
		}
		if err := e.discover(ctx, shards, false); err != nil && ctx.Err() == nil {
			e.log.Warn("starting a shard failed; will retry", "function", e.m.Function, "error", err.Error())
		}
	}
}

// discover records new shards and starts those whose parent is done (or
// unknown: trimmed away). At startup with LATEST, closed shards are skipped
// and open ones start at their tip; shards found later start at their
// beginning, so nothing written after a split is lost.
func (e *esm) discover(ctx context.Context, shards []types.Shard, initial bool) error {
	e.mu.Lock()
	defer e.mu.Unlock()
	for _, sh := range shards {
		id := aws.ToString(sh.ShardId)
		if _, ok := e.shards[id]; !ok {
			st := &shardState{id: id, parent: aws.ToString(sh.ParentShardId)}
			if initial && e.m.StartingPosition == "LATEST" && sh.SequenceNumberRange != nil && sh.SequenceNumberRange.EndingSequenceNumber != nil {
				st.started, st.finished = true, true
			}
			e.shards[id] = st
		}
	}
	for _, sh := range shards {
		st := e.shards[aws.ToString(sh.ShardId)]
		if st.started {
			continue
		}
		if p, ok := e.shards[st.parent]; ok && st.parent != "" && !p.finished {
			continue
		}
		typ := types.ShardIteratorTypeTrimHorizon
		if initial && e.m.StartingPosition == "LATEST" {
			typ = types.ShardIteratorTypeLatest
		}
		it, err := e.reader.Iterator(ctx, st.id, typ, "")
		if err != nil {
			return fmt.Errorf("shard %s: %w", st.id, err)
		}
		st.started = true
		w := &shardWorker{e: e, st: st, iter: it, initial: typ}
		e.wg.Add(1)
		go func() {
			defer e.wg.Done()
			w.run(ctx)
		}()
	}
	return nil
}

func (e *esm) wait() { e.wg.Wait() }

func (e *esm) count(f func(*Stats)) {
	e.mu.Lock()
	f(&e.stats)
	e.mu.Unlock()
}

// caughtUp reports whether every shard is finished, or started and idle.
func (e *esm) caughtUp() bool {
	e.mu.Lock()
	defer e.mu.Unlock()
	if len(e.shards) == 0 {
		return false
	}
	for _, st := range e.shards {
		if !st.finished && !(st.started && st.idle) {
			return false
		}
	}
	return true
}

func (e *esm) snapshot() Stats {
	e.mu.Lock()
	defer e.mu.Unlock()
	return e.stats
}

type shardWorker struct {
	e       *esm
	st      *shardState
	iter    string
	initial types.ShardIteratorType
	lastSeq string // last sequence number read (checkpoint for a new iterator)
	closed  bool   // the shard is closed and read to its end
	buf     []record
}

func (w *shardWorker) run(ctx context.Context) {
	e := w.e
	for ctx.Err() == nil {
		got := 0
		lanes := e.m.lanes()
		if !w.closed && len(w.buf) < e.m.BatchSize*lanes {
			n, err := w.read(ctx)
			if err != nil {
				if ctx.Err() != nil {
					return
				}
				e.log.Warn("reading the stream failed; will retry", "function", e.m.Function, "shard", w.st.id, "error", err.Error())
				_ = retry.Sleep(ctx, e.poll)
				continue
			}
			got = n
		}
		for len(w.buf) > 0 && (len(w.buf) >= e.m.BatchSize || w.closed || e.now().Sub(w.buf[0].readAt) >= e.m.BatchingWindow) {
			if lanes > 1 {
				// The whole buffer is one chunk; the checkpoint (the
				// buffer's head) moves past it once every lane is done.
				n := len(w.buf)
				if !w.processLanes(ctx, w.buf[:n], lanes) {
					return // stopped
				}
				w.buf = w.buf[n:]
				continue
			}
			n := w.batchLen(w.buf)
			if !w.process(ctx, w.buf[:n]) {
				return // stopped
			}
			w.buf = w.buf[n:]
		}
		if w.closed && len(w.buf) == 0 {
			e.mu.Lock()
			w.st.finished = true
			e.mu.Unlock()
			select {
			case e.kick <- struct{}{}:
			default:
			}
			e.log.Debug("shard drained", "function", e.m.Function, "shard", w.st.id)
			return
		}
		e.mu.Lock()
		w.st.idle = got == 0 && len(w.buf) == 0
		e.mu.Unlock()
		if got == 0 {
			wait := e.poll
			if len(w.buf) > 0 {
				wait = min(wait, max(e.m.BatchingWindow-e.now().Sub(w.buf[0].readAt), time.Millisecond))
			}
			_ = retry.Sleep(ctx, wait)
		}
	}
}

// read takes one page of records, keeps those the filters pass and
// returns how many it read.
func (w *shardWorker) read(ctx context.Context) (int, error) {
	e := w.e
	recs, next, err := e.reader.Poll(ctx, w.iter, 1000)
	if err != nil {
		var expired *types.ExpiredIteratorException
		var trimmed *types.TrimmedDataAccessException
		switch {
		case errors.As(err, &expired):
			typ, seq := w.initial, ""
			if w.lastSeq != "" {
				typ, seq = types.ShardIteratorTypeAfterSequenceNumber, w.lastSeq
			}
			it, ierr := e.reader.Iterator(ctx, w.st.id, typ, seq)
			if ierr != nil {
				return 0, ierr
			}
			w.iter = it
			return 0, nil
		case errors.As(err, &trimmed):
			e.log.Warn("records expired from the stream before they were read", "function", e.m.Function, "shard", w.st.id)
			it, ierr := e.reader.Iterator(ctx, w.st.id, types.ShardIteratorTypeTrimHorizon, "")
			if ierr != nil {
				return 0, ierr
			}
			w.iter = it
			return 0, nil
		}
		return 0, err
	}
	if next == nil {
		w.closed = true
	} else {
		w.iter = *next
	}
	filtered := 0
	for _, r := range recs {
		w.lastSeq = r.Change.SequenceNumber
		b, err := json.Marshal(r)
		if err != nil {
			return 0, err
		}
		ok, err := e.m.Filters.Match(b)
		if err != nil {
			return 0, err
		}
		if !ok {
			filtered++
			continue
		}
		w.buf = append(w.buf, record{ev: r, json: b, readAt: e.now()})
	}
	e.count(func(s *Stats) {
		s.Read += len(recs)
		s.Filtered += filtered
		if len(recs) > 0 {
			w.st.idle = false // under e.mu, as caughtUp reads it
		}
	})
	return len(recs), nil
}

// batchLen is how many of recs the next batch takes: at most BatchSize,
// and no more than fit Lambda's 6 MB invocation payload.
func (w *shardWorker) batchLen(recs []record) int {
	n, size := 0, len(`{"Records":[]}`)
	for n < len(recs) && n < w.e.m.BatchSize {
		size += len(recs[n].json) + 1
		if n > 0 && size > MaxInvokePayload {
			break
		}
		n++
	}
	return n
}

// lanes is how many batches of one shard may run at once.
func (m *StreamMapping) lanes() int { return min(max(m.ParallelizationFactor, 1), 10) }

// processLanes delivers a chunk of a shard's records with a
// ParallelizationFactor above 1. As Lambda does, records go to a lane by a
// hash of their partition key, so one key's records stay in one lane in
// stream order, and a lane's next batch starts only once its previous one
// is done (delivered, or handed to the on-failure destination after its
// retries and bisections): the lanes run concurrently, each as the single
// lane of a factor of 1 does. Simplification: Lambda keeps a checkpoint per
// lane and feeds each lane as it frees up; here the chunk is a barrier, the
// shard's checkpoint moves past the chunk once every lane has finished its
// part, and the next chunk is only read then. Order per key and the
// checkpoint are the same as Lambda's; only throughput is lower when lanes
// are uneven. It returns false if ctx ended.
func (w *shardWorker) processLanes(ctx context.Context, chunk []record, lanes int) bool {
	parts := make([][]record, lanes)
	for _, r := range chunk {
		i := laneOf(r.ev, w.e.m.PartitionKey, lanes)
		parts[i] = append(parts[i], r)
	}
	var wg sync.WaitGroup
	var stopped atomic.Bool
	for _, part := range parts {
		if len(part) == 0 {
			continue
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			for len(part) > 0 {
				n := w.batchLen(part)
				if !w.process(ctx, part[:n]) {
					stopped.Store(true)
					return
				}
				part = part[n:]
			}
		}()
	}
	wg.Wait()
	return !stopped.Load() && ctx.Err() == nil
}

// laneOf is the lane of a record: an MD5 hash of its partition key
// attribute (of its whole key when the attribute is not known or absent),
// as Kinesis maps partition keys to shards; Lambda does not document its
// own, only that one key always goes to one lane.
func laneOf(ev events.DynamoDBEventRecord, partitionKey string, lanes int) int {
	if lanes <= 1 {
		return 0
	}
	h := md5.New()
	if v, ok := ev.Change.Keys[partitionKey]; ok && partitionKey != "" {
		b, _ := json.Marshal(v)
		h.Write(b)
	} else {
		names := make([]string, 0, len(ev.Change.Keys))
		for k := range ev.Change.Keys {
			names = append(names, k)
		}
		slices.Sort(names)
		for _, k := range names {
			b, _ := json.Marshal(ev.Change.Keys[k])
			h.Write([]byte(k))
			h.Write(b)
		}
	}
	return int(binary.BigEndian.Uint64(h.Sum(nil)[:8]) % uint64(lanes))
}

// pending is a batch (or a part of one, after a partial failure or a
// bisection) still to be delivered.
type pending struct {
	recs    []record
	retries int // retries used; bisection does not use any
	invokes int // invocations of these records so far
	last    replay.ResponseContext
}

type outcome int

const (
	succeeded outcome = iota
	partial           // ReportBatchItemFailures named a record: retry from it
	failed            // function error, or an unusable failure report
)

// process delivers one batch to the end: every record is delivered, or
// handed to the on-failure destination. It returns false if ctx ended.
func (w *shardWorker) process(ctx context.Context, batch []record) bool {
	e := w.e
	queue := []pending{{recs: batch}}
	for len(queue) > 0 {
		if ctx.Err() != nil {
			return false
		}
		p := &queue[0]
		if k := w.expired(p.recs); k > 0 {
			w.discard(ctx, p.recs[:k], ConditionRecordAge, *p)
			p.recs = p.recs[k:]
			if len(p.recs) == 0 {
				queue = queue[1:]
			}
			continue
		}
		reqID := newRequestID()
		res, from, fnErr := w.invoke(ctx, reqID, p.recs)
		if ctx.Err() != nil {
			return false
		}
		p.invokes++
		p.last = replay.ResponseContext{StatusCode: 200, ExecutedVersion: "$LATEST"}
		switch res {
		case succeeded:
			e.count(func(s *Stats) { s.Delivered += len(p.recs) })
			queue = queue[1:]
			continue
		case partial:
			// Records before the failed one are done: the checkpoint moves
			// to just before it, and the retry starts there.
			e.count(func(s *Stats) { s.Delivered += from })
			p.recs = p.recs[from:]
		case failed:
			if fnErr != nil {
				p.last.FunctionError = "Unhandled"
			}
			if e.m.Bisect && fnErr != nil && len(p.recs) > 1 {
				half := len(p.recs) / 2
				a := pending{recs: p.recs[:half], retries: p.retries, invokes: p.invokes, last: p.last}
				b := pending{recs: p.recs[half:], retries: p.retries, invokes: p.invokes, last: p.last}
				e.log.Info("function error: batch bisected", "function", e.m.Function, "shard", w.st.id, "records", len(p.recs), "requestId", reqID)
				queue = append([]pending{a, b}, queue[1:]...)
				continue
			}
		}
		p.retries++
		if e.m.MaxRetryAttempts >= 0 && p.retries > e.m.MaxRetryAttempts {
			w.discard(ctx, p.recs, ConditionRetriesExhausted, *p)
			queue = queue[1:]
			continue
		}
		_ = retry.Sleep(ctx, e.retryDelay)
	}
	return true
}

// expired counts the leading records older than MaximumRecordAgeInSeconds.
func (w *shardWorker) expired(recs []record) int {
	maxAge := w.e.m.MaxRecordAge
	if maxAge < 0 {
		return 0
	}
	now := w.e.now()
	k := 0
	for k < len(recs) {
		t := recs[k].ev.Change.ApproximateCreationDateTime.Time
		if t.IsZero() || now.Sub(t) <= maxAge {
			break
		}
		k++
	}
	return k
}

// invoke calls the function with a batch and classifies the answer. from
// is the index of the first failed record for a partial failure.
func (w *shardWorker) invoke(ctx context.Context, reqID string, recs []record) (outcome, int, error) {
	e := w.e
	evs := make([]events.DynamoDBEventRecord, len(recs))
	for i, r := range recs {
		evs[i] = r.ev
	}
	payload, err := json.Marshal(events.DynamoDBEvent{Records: evs})
	if err != nil {
		return failed, 0, err
	}
	e.count(func(s *Stats) { s.Invocations++ })
	out, err := e.fn.Invoke(ctx, reqID, payload)
	if err != nil {
		var fe *FunctionError
		if !errors.As(err, &fe) {
			// Not reaching the function counts as a failed invocation too.
			fe = &FunctionError{Type: "InvokeError", Message: err.Error()}
		}
		if ctx.Err() == nil {
			e.log.Warn("function error", "function", e.m.Function, "shard", w.st.id, "records", len(recs), "requestId", reqID, "errorType", fe.Type, "error", fe.Message)
		}
		return failed, 0, fe
	}
	if !e.m.ReportBatchItemFailure {
		return succeeded, 0, nil
	}
	var resp struct {
		BatchItemFailures []struct {
			ItemIdentifier *string `json:"itemIdentifier"`
		} `json:"batchItemFailures"`
	}
	if len(out) == 0 || string(out) == "null" {
		return succeeded, 0, nil
	}
	if err := json.Unmarshal(out, &resp); err != nil {
		e.log.Warn("function response is not a batch response: batch failed", "function", e.m.Function, "requestId", reqID)
		return failed, 0, nil
	}
	if len(resp.BatchItemFailures) == 0 {
		return succeeded, 0, nil
	}
	// The lowest failed sequence number wins; an empty, null or unknown
	// identifier fails the whole batch, as Lambda does.
	from := -1
	for _, f := range resp.BatchItemFailures {
		if f.ItemIdentifier == nil || *f.ItemIdentifier == "" {
			e.log.Warn("batch item failure without an itemIdentifier: batch failed", "function", e.m.Function, "requestId", reqID)
			return failed, 0, nil
		}
		i := indexOf(recs, *f.ItemIdentifier)
		if i < 0 {
			e.log.Warn("batch item failure names a sequence number not in the batch: batch failed", "function", e.m.Function, "requestId", reqID, "itemIdentifier", *f.ItemIdentifier)
			return failed, 0, nil
		}
		if from < 0 || i < from {
			from = i
		}
	}
	e.log.Info("partial batch failure: retrying from the first failed record", "function", e.m.Function, "shard", w.st.id, "records", len(recs), "firstFailed", from, "requestId", reqID)
	return partial, from, nil
}

func indexOf(recs []record, seq string) int {
	for i, r := range recs {
		if r.ev.Change.SequenceNumber == seq {
			return i
		}
	}
	return -1
}

// discard hands records to the on-failure destination (or drops them
// without one, as Lambda does) and moves on.
func (w *shardWorker) discard(ctx context.Context, recs []record, condition string, p pending) {
	e := w.e
	// Counted once the destination has the record (or there is none), so
	// that whoever waits for the count finds the message there.
	discarded := func() { e.count(func(s *Stats) { s.Discarded += len(recs) }) }
	first, last := recs[0].ev, recs[len(recs)-1].ev
	if e.m.OnFailureQueueURL == "" {
		e.log.Error("records discarded (no on-failure destination)", "function", e.m.Function, "shard", w.st.id, "condition", condition,
			"startSequenceNumber", first.Change.SequenceNumber, "endSequenceNumber", last.Change.SequenceNumber)
		discarded()
		return
	}
	rec := replay.OnFailure{Version: "1.0", Timestamp: e.now().UTC().Format("2006-01-02T15:04:05.000Z")}
	rec.RequestContext.RequestID = newRequestID()
	rec.RequestContext.FunctionArn = e.functionArn
	rec.RequestContext.Condition = condition
	rec.RequestContext.ApproximateInvokeCount = p.invokes
	rec.ResponseContext = p.last
	if rec.ResponseContext.ExecutedVersion == "" {
		rec.ResponseContext.ExecutedVersion = "$LATEST"
	}
	rec.DDBStreamBatchInfo = &replay.BatchInfo{
		ShardID:                         w.st.id,
		StartSequenceNumber:             first.Change.SequenceNumber,
		EndSequenceNumber:               last.Change.SequenceNumber,
		ApproximateArrivalOfFirstRecord: arrival(first),
		ApproximateArrivalOfLastRecord:  arrival(last),
		BatchSize:                       len(recs),
		StreamArn:                       e.m.StreamArn,
	}
	body, _ := json.Marshal(rec)
	for ctx.Err() == nil {
		_, err := e.sqs.SendMessage(ctx, &sqsapi.SendMessageInput{QueueUrl: aws.String(e.m.OnFailureQueueURL), MessageBody: aws.String(string(body))})
		if err == nil {
			e.log.Warn("batch sent to the on-failure destination", "function", e.m.Function, "shard", w.st.id, "condition", condition,
				"records", len(recs), "startSequenceNumber", first.Change.SequenceNumber, "endSequenceNumber", last.Change.SequenceNumber)
			discarded()
			return
		}
		// Never drop the record: Lambda keeps trying the destination too.
		e.log.Error("sending the on-failure record failed; will retry", "function", e.m.Function, "error", err.Error())
		_ = retry.Sleep(ctx, time.Second)
	}
}

func arrival(r events.DynamoDBEventRecord) string {
	t := r.Change.ApproximateCreationDateTime.Time
	if t.IsZero() {
		return ""
	}
	return t.UTC().Format("2006-01-02T15:04:05Z")
}
