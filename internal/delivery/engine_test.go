package delivery

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"maps"
	"math"
	"slices"
	"sort"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/dispatcher-dev/dispatcher/internal/dispatch"
	"github.com/dispatcher-dev/dispatcher/internal/obs"
)

// The rules of the engine (order, lease, stop, park) against small
// in-memory fakes of the table, the queue and the mailer; the same rules
// run against the emulators in internal/relay and internal/replay.

type fakeOutbox struct {
	mu    sync.Mutex
	items map[dispatch.OutboxKey]dispatch.OutboxItem
	// markFailedErr, when set, is MarkFailed's answer (nothing marked).
	markFailedErr error
	// markDeliveredFails is how many MarkDelivered calls answer a transient
	// error (nothing marked) before they apply.
	markDeliveredFails int
}

func conflict() error { return dispatch.E("fake", dispatch.Conflict, "", dispatch.ErrAlreadyDone) }

func (f *fakeOutbox) Statuses(_ context.Context, keys []dispatch.OutboxKey) (map[dispatch.OutboxKey]dispatch.OutboxItem, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	out := map[dispatch.OutboxKey]dispatch.OutboxItem{}
	for _, k := range keys {
		if it, ok := f.items[k]; ok {
			out[k] = it
		}
	}
	return out, nil
}

func (f *fakeOutbox) MarkDelivered(_ context.Context, k dispatch.OutboxKey, owner string, _ time.Time, _ time.Duration) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.markDeliveredFails > 0 {
		f.markDeliveredFails--
		return dispatch.E("fake", dispatch.Transient, "InternalServerError", nil)
	}
	it, ok := f.items[k]
	if !ok || it.Status == dispatch.Delivered || (owner != "" && it.LeaseOwner != owner) {
		return conflict()
	}
	it.Status, it.LeaseOwner = dispatch.Delivered, ""
	f.items[k] = it
	return nil
}

func (f *fakeOutbox) Claim(_ context.Context, k dispatch.OutboxKey, owner string, now, until time.Time) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	it, ok := f.items[k]
	if !ok || !(it.Status == dispatch.Pending || (it.Status == dispatch.Sending && it.LeaseUntil.Before(now))) {
		return conflict()
	}
	it.Status, it.LeaseOwner, it.LeaseUntil = dispatch.Sending, owner, until
	f.items[k] = it
	return nil
}

func (f *fakeOutbox) Release(_ context.Context, k dispatch.OutboxKey, owner, lastError string) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	it, ok := f.items[k]
	if !ok || it.Status == dispatch.Delivered || it.Status == dispatch.Failed || (owner != "" && it.LeaseOwner != owner) {
		return conflict()
	}
	it.Status, it.LeaseOwner, it.LastError = dispatch.Pending, "", lastError
	it.Attempts++
	f.items[k] = it
	return nil
}

func (f *fakeOutbox) MarkFailed(_ context.Context, k dispatch.OutboxKey, _ string, lastError string) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.markFailedErr != nil {
		return f.markFailedErr
	}
	it, ok := f.items[k]
	if !ok || it.Status == dispatch.Delivered {
		return conflict()
	}
	it.Status, it.LeaseOwner, it.LastError = dispatch.Failed, "", lastError
	it.Attempts++
	f.items[k] = it
	return nil
}

func (f *fakeOutbox) Unsettled(_ context.Context, below dispatch.OutboxKey, limit int) ([]dispatch.OutboxKey, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	var out []dispatch.OutboxKey
	for k, it := range f.items {
		before := k.Version < below.Version || (k.Version == below.Version && k.Seq < below.Seq)
		if k.AggregateID == below.AggregateID && before && (it.Status == dispatch.Pending || it.Status == dispatch.Sending) {
			out = append(out, k)
		}
	}
	sort.Slice(out, func(i, j int) bool {
		return out[i].Version < out[j].Version || (out[i].Version == out[j].Version && out[i].Seq < out[j].Seq)
	})
	return out[:min(limit, len(out))], nil
}

func (f *fakeOutbox) status(k dispatch.OutboxKey) dispatch.Status {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.items[k].Status
}

// sent is one effect as its target got it.
type sent struct {
	target, aggregate, eventID string
	version                    int64
}

type fakeTargets struct {
	mu      sync.Mutex
	sent    []sent
	parked  []ParkedMessage
	mailErr func(e dispatch.OutgoingEmail) error // nil: every email goes
	dlqErr  error
}

func (f *fakeTargets) SendBatch(_ context.Context, _ string, msgs []dispatch.QueueMessage) []error {
	f.mu.Lock()
	defer f.mu.Unlock()
	errs := make([]error, len(msgs))
	for _, m := range msgs {
		var ce map[string]any
		_ = json.Unmarshal([]byte(m.Body), &ce)
		v, _ := ce["aggregateversion"].(float64)
		f.sent = append(f.sent, sent{"events", ce["subject"].(string), ce["id"].(string), int64(v)})
	}
	return errs
}

func (f *fakeTargets) Send(_ context.Context, url string, m dispatch.QueueMessage) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.dlqErr != nil {
		return f.dlqErr
	}
	p, err := ParseParked(m.Body)
	if err != nil {
		return err
	}
	f.parked = append(f.parked, p)
	return nil
}

func (f *fakeTargets) SendEmail(_ context.Context, e dispatch.OutgoingEmail) (string, error) {
	if f.mailErr != nil {
		if err := f.mailErr(e); err != nil {
			return "", err
		}
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	var v int64
	fmt.Sscan(e.Headers["X-Dispatcher-Aggregate-Version"], &v)
	f.sent = append(f.sent, sent{"email", strings.TrimSuffix(e.To[0], "@example.com"), e.Headers["X-Dispatcher-Event-Id"], v})
	return "msg", nil
}

// mailer adapts fakeTargets to Mailer (its Send is the queue's).
type mailer struct{ *fakeTargets }

func (m mailer) Send(ctx context.Context, e dispatch.OutgoingEmail) (string, error) {
	return m.SendEmail(ctx, e)
}

// versions lists, in the order sent, the versions of one aggregate's
// effects to one target.
func (f *fakeTargets) versions(aggregate, target string) []int64 {
	f.mu.Lock()
	defer f.mu.Unlock()
	var out []int64
	for _, s := range f.sent {
		if s.aggregate == aggregate && s.target == target {
			out = append(out, s.version)
		}
	}
	return out
}

// account returns an aggregate's items of versions 1..n, an event (seq 0)
// and an email (seq 1) each, all PENDING.
func account(id string, n int) []dispatch.OutboxItem {
	var out []dispatch.OutboxItem
	for v := int64(1); v <= int64(n); v++ {
		ev, _ := json.Marshal(dispatch.EventPayload{Data: map[string]any{"n": v}})
		em, _ := json.Marshal(dispatch.EmailPayload{To: []string{id + "@example.com"}, Template: "t", Subject: "s", Text: "x"})
		out = append(out,
			dispatch.OutboxItem{AggregateID: id, Version: v, Seq: 0, EventID: fmt.Sprintf("%s-e%d", id, v), EventType: "Happened", Target: dispatch.TargetEvents, Payload: ev, Status: dispatch.Pending, CreatedAt: time.Now()},
			dispatch.OutboxItem{AggregateID: id, Version: v, Seq: 1, EventID: fmt.Sprintf("%s-m%d", id, v), EventType: "email.t", Target: dispatch.TargetEmail, Payload: em, Status: dispatch.Pending, CreatedAt: time.Now()},
		)
	}
	return out
}

func setup(items ...[]dispatch.OutboxItem) (*Engine, *fakeOutbox, *fakeTargets) {
	ob := &fakeOutbox{items: map[dispatch.OutboxKey]dispatch.OutboxItem{}}
	for _, l := range items {
		for _, it := range l {
			ob.items[it.Key()] = it
		}
	}
	tg := &fakeTargets{}
	cfg := Config{EventsQueueURL: "q.fifo", DLQURL: "dlq", Sender: "s@example.com", BackoffBase: time.Microsecond, BackoffCap: time.Microsecond}
	e := New(cfg, ob, tg, mailer{tg}, slog.New(slog.NewTextHandler(io.Discard, nil)), obs.NewMetrics(io.Discard, "test"))
	return e, ob, tg
}

func deliver(t *testing.T, e *Engine, items []dispatch.OutboxItem) Result {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	return e.Deliver(ctx, items)
}

func TestEngineRules(t *testing.T) {
	t.Run("delivers each aggregate's events and emails in version order", func(t *testing.T) {
		a, b := account("a", 3), account("b", 3)
		e, ob, tg := setup(a, b)
		res := deliver(t, e, append(slices.Clone(b), a...))
		for _, id := range []string{"a", "b"} {
			for _, target := range []string{"events", "email"} {
				if got := tg.versions(id, target); !slices.Equal(got, []int64{1, 2, 3}) {
					t.Errorf("%s %s in versions %v, want [1 2 3]", id, target, got)
				}
			}
		}
		for k, o := range res.Outcomes {
			if o != Delivered || ob.status(k) != dispatch.Delivered {
				t.Errorf("%v: %s, %s", k, o, ob.status(k))
			}
		}
	})

	t.Run("takes on the earlier versions a batch does not hold, and sends them first", func(t *testing.T) {
		a := account("a", 3)
		e, _, tg := setup(a)
		deliver(t, e, a[4:]) // version 3 only
		for _, target := range []string{"events", "email"} {
			if got := tg.versions("a", target); !slices.Equal(got, []int64{1, 2, 3}) {
				t.Errorf("%s in versions %v, want [1 2 3]", target, got)
			}
		}
	})

	for _, unordered := range []bool{false, true} {
		name := "holds later versions while an earlier email is leased by a relay that died"
		if unordered {
			name = "with the order rule off, a later version overtakes the leased email (the rule is what holds it)"
		}
		t.Run(name, func(t *testing.T) {
			a := account("a", 2)
			e, ob, tg := setup(a)
			e.unordered = unordered
			leased := a[1]
			leased.Status, leased.LeaseOwner, leased.LeaseUntil = dispatch.Sending, "relay-dead", time.Now().Add(time.Minute)
			ob.items[leased.Key()] = leased
			res := deliver(t, e, a[2:])
			got := tg.versions("a", "email")
			if unordered {
				if !slices.Equal(got, []int64{2}) {
					t.Errorf("emails %v: the mutation should let version 2 through", got)
				}
				return
			}
			if len(got) != 0 {
				t.Errorf("emails in versions %v while version 1's is leased elsewhere, want none", got)
			}
			for _, it := range a[2:] {
				if o := res.Outcomes[it.Key()]; o.Done() || res.Reasons[it.Key()] != "waiting-for-version-1" {
					t.Errorf("%s: %s (%q), want not done, waiting-for-version-1", it.EventID, o, res.Reasons[it.Key()])
				}
			}
		})
	}

	t.Run("a transient failure stops the aggregate's later items, not other aggregates'", func(t *testing.T) {
		a, b := account("a", 2), account("b", 2)
		e, ob, tg := setup(a, b)
		tg.mailErr = func(m dispatch.OutgoingEmail) error {
			if m.Headers["X-Dispatcher-Event-Id"] == "a-m1" {
				return dispatch.E("fake", dispatch.Transient, "Throttling", nil)
			}
			return nil
		}
		res := deliver(t, e, append(slices.Clone(a), b...))
		if got := tg.versions("a", "email"); len(got) != 0 {
			t.Errorf("a's emails %v, want none", got)
		}
		if got := tg.versions("a", "events"); !slices.Equal(got, []int64{1}) {
			t.Errorf("a's events %v, want [1]: version 2 waits behind version 1's email", got)
		}
		if got := tg.versions("b", "email"); !slices.Equal(got, []int64{1, 2}) {
			t.Errorf("b's emails %v, want [1 2]", got)
		}
		if o := res.Outcomes[a[1].Key()]; o != Retry || ob.status(a[1].Key()) != dispatch.Pending {
			t.Errorf("a's v1 email: %s, %s; want retry, PENDING (lease released)", o, ob.status(a[1].Key()))
		}
	})

	t.Run("a permanent failure parks the item, DLQ message first, and the lane goes on", func(t *testing.T) {
		a := account("a", 2)
		e, ob, tg := setup(a)
		tg.mailErr = func(m dispatch.OutgoingEmail) error {
			if m.Headers["X-Dispatcher-Event-Id"] == "a-m1" {
				return dispatch.E("fake", dispatch.Permanent, "MessageRejected", nil)
			}
			return nil
		}
		res := deliver(t, e, a)
		if o := res.Outcomes[a[1].Key()]; o != Parked || ob.status(a[1].Key()) != dispatch.Failed {
			t.Errorf("v1 email: %s, %s; want parked, FAILED", o, ob.status(a[1].Key()))
		}
		if len(tg.parked) != 1 || tg.parked[0].Key() != a[1].Key() || tg.parked[0].Reason != "MessageRejected" {
			t.Errorf("DLQ %+v, want v1's email with its reason", tg.parked)
		}
		if got := tg.versions("a", "email"); !slices.Equal(got, []int64{2}) {
			t.Errorf("emails %v, want version 2's: a FAILED item holds nothing back", got)
		}
	})

	t.Run("an item whose DLQ message cannot be written is not marked FAILED", func(t *testing.T) {
		a := account("a", 1)
		e, ob, tg := setup(a)
		tg.dlqErr = dispatch.E("fake", dispatch.Transient, "InternalFailure", nil)
		tg.mailErr = func(dispatch.OutgoingEmail) error {
			return dispatch.E("fake", dispatch.Permanent, "MessageRejected", nil)
		}
		res := deliver(t, e, a)
		if o := res.Outcomes[a[1].Key()]; o != Retry || ob.status(a[1].Key()) != dispatch.Pending {
			t.Errorf("email: %s, %s; want retry, PENDING: a FAILED item must have its DLQ message", o, ob.status(a[1].Key()))
		}
	})

	t.Run("an item parked but not marked FAILED holds its later versions back", func(t *testing.T) {
		a := account("a", 2)
		e, ob, tg := setup(a)
		ob.markFailedErr = dispatch.E("fake", dispatch.Transient, "InternalFailure", nil)
		tg.mailErr = func(m dispatch.OutgoingEmail) error {
			if m.Headers["X-Dispatcher-Event-Id"] == "a-m1" {
				return dispatch.E("fake", dispatch.Permanent, "MessageRejected", nil)
			}
			return nil
		}
		res := deliver(t, e, a)
		if o := res.Outcomes[a[1].Key()]; o != Retry || ob.status(a[1].Key()) != dispatch.Pending {
			t.Errorf("v1 email: %s, %s; want retry, PENDING: the table does not say FAILED", o, ob.status(a[1].Key()))
		}
		if len(tg.parked) != 1 {
			t.Errorf("DLQ %+v, want v1's email (the replay skips it once delivered)", tg.parked)
		}
		if got := tg.versions("a", "email"); len(got) != 0 {
			t.Errorf("emails %v sent while version 1's email is unsettled in the table, want none", got)
		}
		if got := tg.versions("a", "events"); !slices.Equal(got, []int64{1}) {
			t.Errorf("events %v, want only version 1's", got)
		}
	})

	// The limit and one over: MaxMarkAttempts tries of a mark deliver the
	// item; one transient failure more leaves it to the batch's retry.
	for _, fails := range []int{3, 4} {
		for _, target := range []dispatch.Target{dispatch.TargetEvents, dispatch.TargetEmail} {
			t.Run(fmt.Sprintf("a %s mark failing transiently %d times in 4 attempts", target, fails), func(t *testing.T) {
				a := account("a", 1)
				it := a[0]
				if target == dispatch.TargetEmail {
					it = a[1]
				}
				e, ob, tg := setup([]dispatch.OutboxItem{it})
				e.cfg.MaxMarkAttempts = 4
				ob.markDeliveredFails = fails
				res := deliver(t, e, []dispatch.OutboxItem{it})
				want, status := Delivered, dispatch.Delivered
				if fails >= e.cfg.MaxMarkAttempts {
					want, status = Retry, it.Status
					if target == dispatch.TargetEmail {
						status = dispatch.Sending // still under its lease
					}
				}
				if o := res.Outcomes[it.Key()]; o != want || ob.status(it.Key()) != status {
					t.Errorf("%s, %s; want %s, %s", o, ob.status(it.Key()), want, status)
				}
				if len(tg.sent) != 1 {
					t.Errorf("sent %d times, want once", len(tg.sent))
				}
			})
		}
	}

	t.Run("an account-wide refusal stops the whole batch", func(t *testing.T) {
		a, b := account("a", 1), account("b", 1)
		e, _, tg := setup(a, b)
		e.cfg.Workers = 1
		tg.mailErr = func(dispatch.OutgoingEmail) error {
			return dispatch.E("fake", dispatch.AccountWide, "SendingPausedException", nil)
		}
		res := deliver(t, e, append(slices.Clone(a), b...))
		if !res.AccountWide {
			t.Fatal("not reported account-wide")
		}
		for _, it := range append(slices.Clone(a), b...) {
			if it.Target == dispatch.TargetEmail && res.Outcomes[it.Key()].Done() {
				t.Errorf("%s: %s, want not done", it.EventID, res.Outcomes[it.Key()])
			}
		}
	})

	t.Run("the table's copy is what is checked and sent: an invalid one is parked", func(t *testing.T) {
		a := account("a", 1)
		e, ob, tg := setup(a)
		bad := a[0]
		bad.Target = "fax"
		ob.items[bad.Key()] = bad
		res := deliver(t, e, a) // the stream's copy is valid
		if o := res.Outcomes[bad.Key()]; o != Parked || len(tg.versions("a", "events")) != 0 {
			t.Errorf("invalid table copy: %s, sent %v; want parked, nothing sent", o, tg.versions("a", "events"))
		}
	})
}

// Each email goes from its template's sender (the template folder's
// dispatcher.yaml); a template with none goes from SENDER_ADDRESS.
func TestEmailsGoFromTheirTemplatesSender(t *testing.T) {
	shop := dispatch.Sender{From: `"Shop" <orders@shop.example>`, ReplyTo: []string{"help@shop.example"}}
	news := dispatch.Sender{From: "news@shop.example"}
	tests := []struct {
		name     string
		senders  dispatch.Senders
		template string
		want     dispatch.Sender
	}{
		{"a template with a sender goes from it, with its Reply-To", dispatch.Senders{ByTemplate: map[string]dispatch.Sender{"order-confirmation": shop}}, "order-confirmation", shop},
		{"a template without one goes from SENDER_ADDRESS", dispatch.Senders{ByTemplate: map[string]dispatch.Sender{"order-confirmation": shop}}, "notification", dispatch.Sender{From: "s@example.com"}},
		{"a template without one goes from the default sender when there is one", dispatch.Senders{ByTemplate: map[string]dispatch.Sender{"order-confirmation": shop}, Default: &news}, "notification", news},
		{"no configuration: SENDER_ADDRESS, as before", dispatch.Senders{}, "order-confirmation", dispatch.Sender{From: "s@example.com"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			e, _, _ := setup()
			e.cfg.Senders = tt.senders
			got := e.email(dispatch.OutboxItem{EventID: "e1", Version: 1}, dispatch.EmailPayload{To: []string{"ada@example.com"}, Template: tt.template, Subject: "s", Text: "x"})
			if got.From != tt.want.From || !slices.Equal(got.ReplyTo, tt.want.ReplyTo) {
				t.Errorf("from %q reply-to %q, want %q %q", got.From, got.ReplyTo, tt.want.From, tt.want.ReplyTo)
			}
		})
	}
}

// sesTagOK is SES's rule for a message tag's name and value: 1 to 256
// ASCII letters, digits, underscores or dashes (API MessageTag).
func sesTagOK(s string) bool {
	if s == "" || len(s) > 256 {
		return false
	}
	for _, c := range []byte(s) {
		if !('a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9' || c == '_' || c == '-') {
			return false
		}
	}
	return true
}

func TestEveryEmailNamesItsItemInTags(t *testing.T) {
	longID := strings.Repeat("A-z_9", dispatch.MaxAggregateIDLen)[:dispatch.MaxAggregateIDLen]
	longTemplate := strings.Repeat("a-9", 64)[:64]
	if dispatch.ValidAggregateID(longID+"x") || dispatch.ValidTemplateName(longTemplate+"x") {
		t.Fatal("the edge values below are not the longest Dispatcher accepts")
	}
	tests := []struct {
		name string
		it   dispatch.OutboxItem
		tmpl string
	}{
		{"an ordinary item", dispatch.OutboxItem{EventID: dispatch.NewEventID(time.Now()), AggregateID: "order-42", Version: 3}, "order-confirmation"},
		{"the longest aggregate id and template, the largest version", dispatch.OutboxItem{EventID: dispatch.NewEventID(time.Now()), AggregateID: longID, Version: math.MaxInt64}, longTemplate},
		{"a one-character aggregate id and template", dispatch.OutboxItem{EventID: dispatch.NewEventID(time.Time{}), AggregateID: "0", Version: 1}, "a"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			e, _, _ := setup()
			got := e.email(tt.it, dispatch.EmailPayload{To: []string{"ada@example.com"}, Template: tt.tmpl, Subject: "s", Text: "x"})
			want := map[string]string{
				dispatch.TagEventID: tt.it.EventID, dispatch.TagAggregateID: tt.it.AggregateID,
				dispatch.TagVersion: strconv.FormatInt(tt.it.Version, 10), dispatch.TagTemplate: tt.tmpl,
			}
			if !maps.Equal(got.Tags, want) {
				t.Errorf("tags %v, want %v", got.Tags, want)
			}
			for k, v := range got.Tags {
				if !sesTagOK(k) || !sesTagOK(v) {
					t.Errorf("tag %q=%q breaks SES's rule: the adapter would rewrite it and the feedback would not match", k, v)
				}
			}
		})
	}
}
