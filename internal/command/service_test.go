package command

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"maps"
	"reflect"
	"slices"
	"testing"

	"github.com/dispatcher-dev/dispatcher/internal/dispatch"
	"github.com/dispatcher-dev/dispatcher/internal/emails"
)

// fakeStore is the table as the service sees it: aggregates, idempotency
// records and the transaction's conditions, in maps.
type fakeStore struct {
	aggs  map[string]dispatch.Aggregate
	keys  map[string]dispatch.Idempotency // by scope + "\x00" + key
	calls int                             // Commit and CommitKeys calls, for beforeCommit
	// writes counts the commits that applied; loads, the reads.
	writes, loads int
	// beforeCommit, if set, runs first in every commit call: what a
	// concurrent request does meanwhile. A non-nil error fails the call.
	beforeCommit func(s *fakeStore, call int) error
}

func newFakeStore() *fakeStore {
	return &fakeStore{aggs: map[string]dispatch.Aggregate{}, keys: map[string]dispatch.Idempotency{}}
}

func (s *fakeStore) Load(_ context.Context, id string) (dispatch.Aggregate, error) {
	s.loads++
	a, ok := s.aggs[id]
	if !ok {
		return dispatch.Aggregate{ID: id, Data: map[string]any{}}, nil
	}
	a.Data = maps.Clone(a.Data)
	return a, nil
}

// LoadHistory: the fake keeps no events; the event-sourced mode is tested
// against DynamoDB Local (internal/apigw, internal/relay).
func (s *fakeStore) LoadHistory(context.Context, string) (dispatch.History, error) {
	return dispatch.History{}, nil
}

func (s *fakeStore) Idempotency(_ context.Context, scope, key string) (*dispatch.Idempotency, error) {
	if rec, ok := s.keys[scope+"\x00"+key]; ok {
		return &rec, nil
	}
	return nil, nil
}

func (s *fakeStore) Commit(ctx context.Context, c dispatch.Commit) (dispatch.CommitResult, error) {
	return s.CommitKeys(ctx, c, nil)
}

// CommitKeys checks what DynamoDB's transaction checks, in the order the
// dynamo adapter reports it: the state's version, then every key.
func (s *fakeStore) CommitKeys(_ context.Context, c dispatch.Commit, more []dispatch.Idempotency) (dispatch.CommitResult, error) {
	s.calls++
	if s.beforeCommit != nil {
		if err := s.beforeCommit(s, s.calls); err != nil {
			return dispatch.CommitResult{}, err
		}
	}
	if s.aggs[c.State.ID].Version != c.PrevVersion {
		return dispatch.CommitResult{}, dispatch.E("fake.Commit", dispatch.Conflict, "", dispatch.ErrVersionConflict)
	}
	recs := append([]dispatch.Idempotency{c.Idempotency}, more...)
	for _, r := range recs {
		if _, ok := s.keys[r.Scope+"\x00"+r.Key]; ok {
			return dispatch.CommitResult{}, dispatch.E("fake.Commit", dispatch.Conflict, "", dispatch.ErrKeyInUse)
		}
	}
	s.aggs[c.State.ID] = c.State
	for _, r := range recs {
		s.keys[r.Scope+"\x00"+r.Key] = r
	}
	s.writes++
	return dispatch.CommitResult{WriteUnits: float64(2 + len(c.Outbox) + len(more))}, nil
}

// bump is another request's deposit, committed behind the service's back.
func (s *fakeStore) bump(id string, amount int64) {
	a := s.aggs[id]
	a.Data = maps.Clone(a.Data)
	var bal int64
	fmt.Sscan(fmt.Sprint(a.Data["balance"]), &bal)
	a.Data["balance"] = bal + amount
	a.Version++
	s.aggs[id] = a
}

// record is another request's idempotency record under key.
func (s *fakeStore) record(key, body string, version int64) {
	s.keys[scope+"\x00"+key] = dispatch.Idempotency{Scope: scope, Key: key, RequestHash: hashOf(body),
		Response: dispatch.Accepted{AggregateID: acct, Version: version, EventIDs: []string{"the-other-request"}}}
}

func hashOf(body string) string {
	sum := sha256.Sum256([]byte(body))
	return hex.EncodeToString(sum[:])
}

const (
	scope = "webhook"
	acct  = "acct-1"
)

var (
	open = `{"type":"OpenAccount","aggregateId":"acct-1","data":{"owner":"Ada","email":"ada@example.com","currency":"EUR"}}`
	dep  = func(amount int) string {
		return fmt.Sprintf(`{"type":"DepositFunds","aggregateId":"acct-1","data":{"amount":%d,"currency":"EUR","reference":"r"}}`, amount)
	}
	depAt = func(amount, version int) string {
		return fmt.Sprintf(`{"type":"DepositFunds","aggregateId":"acct-1","expectedVersion":%d,"data":{"amount":%d,"currency":"EUR","reference":"r"}}`, version, amount)
	}
)

func keyed(body, key string) Request {
	return Request{Body: []byte(body), Caller: everyone, IdempotencyKey: key}
}

// everyone is the default caller, with every grant.
var everyone = dispatch.Caller{ID: "default", Scope: scope, All: true}

// signed is a webhook-signed request; key "" means the sender gave no
// Idempotency-Key, so the handler used the webhook-id as the key.
func signed(body, key, webhookID string) Request {
	if key == "" {
		key = webhookID
	}
	return Request{Body: []byte(body), Caller: everyone, IdempotencyKey: key, WebhookID: webhookID}
}

func TestExecute(t *testing.T) {
	type want struct {
		// kind is the error's kind; zero (Internal, which no case expects)
		// means an answer.
		kind     dispatch.Kind
		field    string // Unprocessable: the field named
		current  int64  // Stale: the *dispatch.VersionConflict's current version
		version  int64  // the answer's version
		replayed bool
		sameAs   int    // 1-based: the earlier request whose answer is given again
		attempts int    // 0: not checked
		writes   int    // commits applied while serving the request
		balance  string // the state's balance afterwards; "" not checked
	}
	tests := []struct {
		name   string
		before []Request // applied first; each must succeed
		hook   func(s *fakeStore, call int) error
		req    Request
		want   want
	}{
		// The Idempotency-Key.
		{name: "replays a repeated deposit with its saved answer and writes nothing",
			before: []Request{keyed(open, "k-open"), keyed(dep(50), "k-1")},
			req:    keyed(dep(50), "k-1"),
			want:   want{version: 2, replayed: true, sameAs: 2, writes: 0, balance: "50"}},
		{name: "replays a repeated open although opening again would be refused",
			before: []Request{keyed(open, "k-open")},
			req:    keyed(open, "k-open"),
			want:   want{version: 1, replayed: true, sameAs: 1, writes: 0}},
		{name: "replays a key whose expectedVersion is outdated now",
			before: []Request{keyed(open, "k-open"), keyed(depAt(50, 1), "k-1"), keyed(dep(5), "k-2")},
			req:    keyed(depAt(50, 1), "k-1"),
			want:   want{version: 2, replayed: true, sameAs: 2, writes: 0, balance: "55"}},
		{name: "refuses a key reused with another body with 422 on Idempotency-Key",
			before: []Request{keyed(open, "k-open"), keyed(dep(50), "k-1")},
			req:    keyed(dep(51), "k-1"),
			want:   want{kind: dispatch.Unprocessable, field: "Idempotency-Key", writes: 0, balance: "50"}},
		{name: "applies a new key as a new command",
			before: []Request{keyed(open, "k-open"), keyed(dep(50), "k-1")},
			req:    keyed(dep(50), "k-2"),
			want:   want{version: 3, attempts: 1, writes: 1, balance: "100"}},

		// Races without expectedVersion: re-read, re-decide, retry.
		{name: "retries a lost race on the state as it is after the other write",
			before: []Request{keyed(open, "k-open")},
			hook: func(s *fakeStore, call int) error {
				if call == 1 {
					s.bump(acct, 100)
				}
				return nil
			},
			req:  keyed(dep(50), "k-1"),
			want: want{version: 3, attempts: 2, writes: 1, balance: "150"}},
		{name: "retries a transient failure of the transaction",
			before: []Request{keyed(open, "k-open")},
			hook: func(s *fakeStore, call int) error {
				if call == 1 {
					return dispatch.E("fake.Commit", dispatch.Transient, "", errors.New("TransactionConflict"))
				}
				return nil
			},
			req:  keyed(dep(50), "k-1"),
			want: want{version: 2, attempts: 2, writes: 1, balance: "50"}},
		{name: "reads an aggregate that exists after all and decides again",
			hook: func(s *fakeStore, call int) error {
				if call == 1 {
					s.aggs[acct] = dispatch.Aggregate{ID: acct, Type: "Account", Version: 1, Data: map[string]any{"owner": "Bob", "currency": "EUR", "balance": int64(0)}}
				}
				return nil
			},
			req:  keyed(open, "k-open"),
			want: want{kind: dispatch.Conflict, writes: 0, attempts: 2}},

		// expectedVersion: no retry, the current version instead.
		{name: "returns the current version for an outdated expectedVersion without committing",
			before: []Request{keyed(open, "k-open"), keyed(dep(5), "k-0")},
			req:    keyed(depAt(50, 1), "k-1"),
			want:   want{kind: dispatch.Stale, current: 2, writes: 0, balance: "5"}},
		{name: "returns the current version when the aggregate changed before the commit",
			before: []Request{keyed(open, "k-open")},
			hook: func(s *fakeStore, call int) error {
				if call == 1 {
					s.bump(acct, 100)
				}
				return nil
			},
			req:  keyed(depAt(50, 1), "k-1"),
			want: want{kind: dispatch.Stale, current: 2, attempts: 1, writes: 0, balance: "100"}},

		// A concurrent request with the same key.
		{name: "answers with the other request's answer when it committed the key first",
			before: []Request{keyed(open, "k-open")},
			hook: func(s *fakeStore, call int) error {
				s.record("k-1", dep(50), 7)
				return dispatch.E("fake.Commit", dispatch.Conflict, "", dispatch.ErrKeyInUse)
			},
			req:  keyed(dep(50), "k-1"),
			want: want{version: 7, replayed: true, attempts: 1, writes: 0}},
		{name: "refuses with 422 when the other request used the key with another body",
			before: []Request{keyed(open, "k-open")},
			hook: func(s *fakeStore, call int) error {
				s.record("k-1", dep(49), 7)
				return dispatch.E("fake.Commit", dispatch.Conflict, "", dispatch.ErrKeyInUse)
			},
			req:  keyed(dep(50), "k-1"),
			want: want{kind: dispatch.Unprocessable, field: "Idempotency-Key", writes: 0}},
		{name: "tries again when the key's other request has not committed",
			before: []Request{keyed(open, "k-open")},
			hook: func(s *fakeStore, call int) error {
				if call == 1 {
					return dispatch.E("fake.Commit", dispatch.Conflict, "", dispatch.ErrKeyInUse)
				}
				return nil
			},
			req:  keyed(dep(50), "k-1"),
			want: want{version: 2, attempts: 2, writes: 1, balance: "50"}},

		// The webhook-id is a key like the Idempotency-Key.
		{name: "replays a signed request resent with a new Idempotency-Key",
			before: []Request{keyed(open, "k-open"), signed(dep(50), "k-1", "msg_1")},
			req:    signed(dep(50), "k-2", "msg_1"),
			want:   want{version: 2, replayed: true, sameAs: 2, writes: 0, balance: "50"}},
		{name: "refuses a webhook-id reused with another body with 422 on webhook-id",
			before: []Request{keyed(open, "k-open"), signed(dep(50), "k-1", "msg_1")},
			req:    signed(dep(51), "k-2", "msg_1"),
			want:   want{kind: dispatch.Unprocessable, field: "webhook-id", writes: 0, balance: "50"}},
		{name: "replays a signed request without Idempotency-Key by its webhook-id",
			before: []Request{keyed(open, "k-open"), signed(dep(50), "", "msg_1")},
			req:    signed(dep(50), "", "msg_1"),
			want:   want{version: 2, replayed: true, sameAs: 2, writes: 0, balance: "50"}},
		{name: "refuses a webhook-id used as the key with another body with 422 on webhook-id",
			before: []Request{keyed(open, "k-open"), signed(dep(50), "", "msg_1")},
			req:    signed(dep(51), "", "msg_1"),
			want:   want{kind: dispatch.Unprocessable, field: "webhook-id", writes: 0, balance: "50"}},
		{name: "replays by Idempotency-Key a signed request with a new webhook-id",
			before: []Request{keyed(open, "k-open"), signed(dep(50), "k-1", "msg_1")},
			req:    signed(dep(50), "k-1", "msg_2"),
			want:   want{version: 2, replayed: true, sameAs: 2, writes: 0, balance: "50"}},
		{name: "answers with the other request's answer when it committed the webhook-id first",
			before: []Request{keyed(open, "k-open")},
			hook: func(s *fakeStore, call int) error {
				s.record("msg_1", dep(50), 7)
				return dispatch.E("fake.Commit", dispatch.Conflict, "", dispatch.ErrKeyInUse)
			},
			req:  signed(dep(50), "k-2", "msg_1"),
			want: want{version: 7, replayed: true, attempts: 1, writes: 0}},
		{name: "records the webhook-id with the Idempotency-Key in one commit",
			before: []Request{keyed(open, "k-open")},
			req:    signed(dep(50), "k-1", "msg_1"),
			want:   want{version: 2, attempts: 1, writes: 1, balance: "50"}},
	}
	tmpl, err := emails.Load()
	if err != nil {
		t.Fatal(err)
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ctx := context.Background()
			st := newFakeStore()
			svc := New(st, tmpl)
			var earlier []Result
			for i, r := range tt.before {
				res, err := svc.Execute(ctx, r)
				if err != nil {
					t.Fatalf("before[%d]: %v", i, err)
				}
				earlier = append(earlier, res)
			}
			writes := st.writes
			st.calls, st.beforeCommit = 0, tt.hook
			res, err := svc.Execute(ctx, tt.req)

			w := tt.want
			if w.kind != dispatch.Internal {
				if err == nil || dispatch.KindOf(err) != w.kind {
					t.Fatalf("err = %v (kind %v), want kind %v", err, dispatch.KindOf(err), w.kind)
				}
			} else if err != nil {
				t.Fatalf("err = %v", err)
			}
			var ve *dispatch.ValidationError
			if w.field != "" && (!errors.As(err, &ve) || len(ve.Fields) != 1 || ve.Fields[0].Field != w.field) {
				t.Errorf("err = %v, want it on the field %s", err, w.field)
			}
			var vc *dispatch.VersionConflict
			if w.kind == dispatch.Stale && (!errors.As(err, &vc) || vc.Current != w.current) {
				t.Errorf("err = %v, want a version conflict at %d", err, w.current)
			}
			if err == nil {
				if res.Version != w.version || res.Replayed != w.replayed {
					t.Errorf("answer = version %d, replayed %v; want version %d, replayed %v", res.Version, res.Replayed, w.version, w.replayed)
				}
				if w.sameAs > 0 {
					first := earlier[w.sameAs-1].Accepted
					if res.AggregateID != first.AggregateID || res.Version != first.Version || !slices.Equal(res.EventIDs, first.EventIDs) {
						t.Errorf("answer = %+v, want the first answer %+v", res.Accepted, first)
					}
				}
				if w.version == 7 && !slices.Equal(res.EventIDs, []string{"the-other-request"}) {
					t.Errorf("answer = %+v, want the other request's", res.Accepted)
				}
			}
			if w.attempts > 0 && res.Attempts != w.attempts {
				t.Errorf("attempts = %d, want %d", res.Attempts, w.attempts)
			}
			if got := st.writes - writes; got != w.writes {
				t.Errorf("%d commits applied, want %d", got, w.writes)
			}
			if w.balance != "" {
				if got := fmt.Sprint(st.aggs[acct].Data["balance"]); got != w.balance {
					t.Errorf("balance = %s, want %s", got, w.balance)
				}
			}
			if w.writes > 0 && tt.req.WebhookID != "" {
				for _, k := range []string{tt.req.IdempotencyKey, tt.req.WebhookID} {
					if rec := st.keys[scope+"\x00"+k]; rec.Response.Version != w.version {
						t.Errorf("key %s records version %d, want %d", k, rec.Response.Version, w.version)
					}
				}
			}
		})
	}
}

// A caller's grant is checked from the request before anything is read:
// another caller's aggregate, or a Dispatch naming a template not granted,
// is refused (403) with no read and no write; what a typed command decides
// to send is checked against the grant too, and a request without a
// caller is a bug, never every grant.
func TestTheCallersGrantIsCheckedBeforeAnythingIsReadOrWritten(t *testing.T) {
	teamA := dispatch.Caller{ID: "team-a", Scope: "caller:team-a", Aggregates: []string{"Account/acct-*", "Order/o-*"},
		Grant: dispatch.Grant{Templates: []string{"notification"}, Events: []string{"Funds*", "order.*"}}}
	tests := []struct {
		name      string
		caller    dispatch.Caller
		body      string
		kind      dispatch.Kind
		wantLoads int
	}{
		{"refuses another caller's account before reading it", dispatch.Caller{ID: "team-b", Scope: "caller:team-b", Aggregates: []string{"Account/b-*"}}, dep(5), dispatch.Forbidden, 0},
		{"refuses a Dispatch naming a template not granted before reading", teamA,
			`{"type":"Dispatch","aggregateId":"o-1","data":{"aggregateType":"Order","emails":[{"to":["a@example.com"],"template":"welcome","data":{}}]}}`, dispatch.Forbidden, 0},
		{"refuses a typed command whose decision sends a template not granted", teamA, dep(5), dispatch.Forbidden, 1},
		{"refuses a request without a caller as a bug", dispatch.Caller{}, dep(5), dispatch.Internal, 0},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			store := newFakeStore()
			svc := New(store, mustTemplates(t))
			if _, err := svc.Execute(context.Background(), keyed(open, "k-open")); err != nil {
				t.Fatal(err)
			}
			loads, writes := store.loads, store.writes
			_, err := svc.Execute(context.Background(), Request{Body: []byte(tt.body), Caller: tt.caller, IdempotencyKey: "k-1"})
			if dispatch.KindOf(err) != tt.kind || err == nil {
				t.Fatalf("err = %v (%v), want %v", err, dispatch.KindOf(err), tt.kind)
			}
			if store.loads-loads != tt.wantLoads || store.writes != writes {
				t.Errorf("%d reads and %d writes, want %d and none", store.loads-loads, store.writes-writes, tt.wantLoads)
			}
		})
	}
	t.Run("applies a command within the grant", func(t *testing.T) {
		store := newFakeStore()
		svc := New(store, mustTemplates(t))
		granted := teamA
		granted.Templates = append(granted.Templates, dispatch.TemplateAccountWelcome, dispatch.TemplateDepositReceipt)
		granted.Events = append(granted.Events, "AccountOpened")
		for i, body := range []string{open, dep(5)} {
			if _, err := svc.Execute(context.Background(), Request{Body: []byte(body), Caller: granted, IdempotencyKey: fmt.Sprint("k-", i)}); err != nil {
				t.Fatalf("command %d: %v", i, err)
			}
		}
		if _, ok := store.keys["caller:team-a\x00k-1"]; !ok {
			t.Errorf("the idempotency record is not in the caller's scope: %v", slices.Collect(maps.Keys(store.keys)))
		}
	})
}

func mustTemplates(t *testing.T) *emails.Set {
	t.Helper()
	tmpl, err := emails.Load()
	if err != nil {
		t.Fatal(err)
	}
	return tmpl
}

// queue is an Enqueuer that keeps what it is given.
type queue struct{ got []Queued }

func (q *queue) Enqueue(_ context.Context, c Queued) error {
	q.got = append(q.got, c)
	return nil
}

// Listen to yourself refuses a command outside the caller's grant at once,
// as the synchronous path does, rather than answer 202 and refuse it later;
// a granted one is queued with its caller, grants and all, for the consumer
// to apply under them.
func TestTheListenerChecksAndQueuesTheCaller(t *testing.T) {
	teamA := dispatch.Caller{ID: "team-a", Scope: "caller:team-a", Aggregates: []string{"Account/acct-*"},
		Grant: dispatch.Grant{Templates: []string{dispatch.TemplateDepositReceipt}, Events: []string{"FundsDeposited"}}}
	teamB := dispatch.Caller{ID: "team-b", Scope: "caller:team-b", Aggregates: []string{"Account/b-*"}}
	q := &queue{}
	l := NewListener(New(newFakeStore(), mustTemplates(t)), q, []string{"DepositFunds"})
	res, err := l.Execute(context.Background(), Request{Body: []byte(dep(5)), Caller: teamB, IdempotencyKey: "k"})
	if dispatch.KindOf(err) != dispatch.Forbidden || res.Queued || len(q.got) != 0 {
		t.Fatalf("team-b on team-a's account: %+v %v, queued %d; want 403 and nothing queued", res, err, len(q.got))
	}
	if _, err := l.Execute(context.Background(), Request{Body: []byte(dep(5)), Caller: teamA, IdempotencyKey: "k"}); err != nil {
		t.Fatal(err)
	}
	if len(q.got) != 1 || !reflect.DeepEqual(q.got[0].Caller, teamA) || !reflect.DeepEqual(q.got[0].Request().Caller, teamA) {
		t.Fatalf("queued %+v, want team-a's caller with its grants", q.got)
	}
}
