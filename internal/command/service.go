// Package command applies commands: it parses, checks the idempotency key,
// decides, renders the emails, and commits the new state with one outbox
// item per effect and the idempotency record in one transaction. It knows
// nothing of HTTP or DynamoDB; the apigw and dynamo packages are its edges.
package command

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"regexp"
	"time"

	"github.com/dispatcher-dev/dispatcher/internal/dispatch"
	"github.com/dispatcher-dev/dispatcher/internal/emails"
	"github.com/dispatcher-dev/dispatcher/internal/retry"
)

// Store is what the service needs from the database.
type Store interface {
	Load(ctx context.Context, aggregateID string) (dispatch.Aggregate, error)
	Idempotency(ctx context.Context, scope, key string) (*dispatch.Idempotency, error)
	Commit(ctx context.Context, c dispatch.Commit) (dispatch.CommitResult, error)
	// CommitKeys is Commit that records more keys of the request in the same
	// transaction, each of which fails it with ErrKeyInUse if already recorded.
	CommitKeys(ctx context.Context, c dispatch.Commit, more []dispatch.Idempotency) (dispatch.CommitResult, error)
	// LoadHistory reads an event-sourced aggregate: its latest snapshot and
	// the events after it.
	LoadHistory(ctx context.Context, aggregateID string) (dispatch.History, error)
}

// Renderer renders repository email templates.
type Renderer interface {
	Render(name string, data map[string]any) (emails.Rendered, error)
}

// Retry bounds for a write that lost a race without an expectedVersion:
// re-read, re-decide and try again, with capped exponential backoff and full
// jitter, at most MaxAttempts times (and never past the context's deadline).
const (
	MaxAttempts = 40
	backoffBase = 2 * time.Millisecond
	backoffCap  = 100 * time.Millisecond
)

// Service applies commands.
type Service struct {
	store Store
	tmpl  Renderer
	now   func() time.Time
	modes map[string]dispatch.Mode
	// grants bounds what Dispatch may send; nil: the built-in template
	// folder's (emails.Builtin).
	grants dispatch.Grants
}

// New returns a Service; every aggregate type runs in its registry mode
// (dispatch.DefaultModes) until WithModes says otherwise.
func New(store Store, tmpl Renderer) *Service {
	return &Service{store: store, tmpl: tmpl, now: time.Now, modes: dispatch.DefaultModes()}
}

// WithModes sets the mode of each aggregate type (dispatch.ParseModes reads
// AGGREGATE_MODES); a type not in modes runs in the outbox mode.
func (s *Service) WithModes(modes map[string]dispatch.Mode) *Service {
	s.modes = modes
	return s
}

// WithGrants sets which templates and event types each command type whose
// caller chooses them (Dispatch) may send: the deployment's template
// folder's dispatcher.yaml (emails.Dir.Grants).
func (s *Service) WithGrants(g dispatch.Grants) *Service {
	s.grants = g
	return s
}

// checkGrants refuses a decision that sends what its command type was not
// granted.
func (s *Service) checkGrants(commandType string, d dispatch.Decision) error {
	g := s.grants
	if g == nil {
		b, err := emails.Builtin()
		if err != nil {
			return dispatch.E("command.checkGrants", dispatch.Internal, "", err)
		}
		g = b.Grants
	}
	return g.Check(commandType, d)
}

// modeOf returns the mode of the aggregate a command type changes.
func (s *Service) modeOf(commandType string) dispatch.Mode {
	if m := s.modes[dispatch.AggregateTypeOf(commandType)]; m == dispatch.ModeEventSourced {
		return m
	}
	return dispatch.ModeOutbox
}

// load reads an aggregate as its mode stores it: the state item, or the
// events folded from the latest snapshot on.
func (s *Service) load(ctx context.Context, mode dispatch.Mode, id string) (dispatch.Aggregate, error) {
	if mode != dispatch.ModeEventSourced {
		return s.store.Load(ctx, id)
	}
	h, err := s.store.LoadHistory(ctx, id)
	if err != nil {
		return dispatch.Aggregate{}, err
	}
	return dispatch.Fold(id, h)
}

// Read returns an aggregate in whichever mode it is stored: its state item,
// or, when it has none and some aggregate type is event-sourced, its folded
// events. GET /v1/aggregates/{id} shows it.
func (s *Service) Read(ctx context.Context, id string) (dispatch.Aggregate, error) {
	a, err := s.store.Load(ctx, id)
	if err != nil || a.Exists() {
		return a, err
	}
	for _, m := range s.modes {
		if m == dispatch.ModeEventSourced {
			return s.load(ctx, m, id)
		}
	}
	return a, nil
}

// Request is one command as received.
type Request struct {
	Body []byte
	// Caller is who sent it: its idempotency scope (the same key from two
	// callers is two commands), and what it may write and send
	// (dispatch.Caller.CheckCommand, CheckSends). A request without a
	// scope is refused: a forgotten caller must not mean every grant.
	Caller         dispatch.Caller
	IdempotencyKey string
	// WebhookID is a signed request's webhook-id. The signature covers it but
	// not the Idempotency-Key, so it is recorded as a key too, in the same
	// transaction: a captured request sent again with a new Idempotency-Key
	// is a replay of the first, not a second command.
	WebhookID   string
	Traceparent string // W3C trace context of the caller, if any
}

// webhookKey returns the WebhookID if it is a key of its own: "" when there
// is none, or when it is the IdempotencyKey already (a webhook sender that
// sends no Idempotency-Key).
func (r Request) webhookKey() string {
	if r.WebhookID == r.IdempotencyKey {
		return ""
	}
	return r.WebhookID
}

// Result is an applied (or replayed) command.
type Result struct {
	dispatch.Accepted
	Type        string
	Attempts    int
	WriteUnits  float64
	Traceparent string
	// Queued: the command was validated and queued for the consumer
	// (listen to yourself, listen.go); nothing is applied yet.
	Queued bool
}

// Execute applies one command. Errors are *dispatch.Error,
// *dispatch.ValidationError or *dispatch.VersionConflict; anything else is
// internal.
func (s *Service) Execute(ctx context.Context, req Request) (Result, error) {
	env, cmd, err := dispatch.Parse(req.Body)
	res := Result{Type: env.Type, Accepted: dispatch.Accepted{AggregateID: env.AggregateID}}
	if err != nil {
		return res, err
	}
	if err := checkCaller(req.Caller, env, cmd); err != nil {
		return res, err
	}
	hash := RequestHash(req.Body)

	res.Traceparent = traceparent(req.Traceparent)
	// A command that can only create, or that expects version 0, is decided
	// against an empty aggregate on its first attempt, without a read; if the
	// aggregate exists after all, the transaction's condition fails and the
	// next attempt reads it.
	cr, creates := cmd.(dispatch.Creator)
	blind := (creates && cr.CreatesAggregate()) || (env.ExpectedVersion != nil && *env.ExpectedVersion == 0)
	mode := s.modeOf(env.Type)
	for attempt := 1; ; attempt++ {
		res.Attempts = attempt
		cur := dispatch.Aggregate{ID: env.AggregateID, Data: map[string]any{}}
		if !blind || attempt > 1 {
			var err error
			if cur, err = s.load(ctx, mode, env.AggregateID); err != nil {
				return res, err
			}
		}
		if ev := env.ExpectedVersion; ev != nil && *ev != cur.Version {
			return s.replayOr(ctx, res, req, hash, &dispatch.VersionConflict{Current: cur.Version, Msg: fmt.Sprintf("expected version %d, the aggregate is at version %d", *ev, cur.Version)})
		}
		commit, err := s.prepare(env, cmd, cur, req, hash, res.Traceparent, attempt, mode)
		if err != nil && blind && attempt == 1 {
			// Refused on an aggregate assumed empty (a deposit with
			// expectedVersion 0 finds no account): read it, for if it exists
			// the answer is its version, not what an empty one decided.
			continue
		}
		if err != nil {
			return s.replayOr(ctx, res, req, hash, err)
		}
		out, err := s.commit(ctx, commit, req)
		if err == nil {
			res.Accepted = commit.Idempotency.Response
			res.WriteUnits = out.WriteUnits
			return res, nil
		}
		switch {
		case errors.Is(err, dispatch.ErrKeyInUse):
			// A concurrent request with the same key committed first.
			rec, header, rerr := s.recorded(ctx, req)
			if rerr != nil {
				return res, rerr
			}
			if rec != nil {
				return replay(res, rec, header, hash)
			}
			// The other request has not committed (or failed): try again.
			if attempt >= MaxAttempts {
				return res, dispatch.E("command.Execute", dispatch.Transient, "", err)
			}
			if err := retry.Sleep(ctx, backoff(attempt)); err != nil {
				return res, dispatch.E("command.Execute", dispatch.Transient, "", err)
			}
		case errors.Is(err, dispatch.ErrVersionConflict) && env.ExpectedVersion != nil:
			now, lerr := s.load(ctx, mode, env.AggregateID)
			if lerr != nil {
				return res, lerr
			}
			return s.replayOr(ctx, res, req, hash, &dispatch.VersionConflict{Current: now.Version, Msg: fmt.Sprintf("expected version %d, the aggregate is at version %d", *env.ExpectedVersion, now.Version)})
		case errors.Is(err, dispatch.ErrVersionConflict) && blind && attempt == 1:
			// The aggregate exists: read it and decide again, at once.
		case errors.Is(err, dispatch.ErrVersionConflict) || dispatch.KindOf(err) == dispatch.Transient:
			if attempt >= MaxAttempts {
				return res, &dispatch.VersionConflict{Current: cur.Version, Msg: fmt.Sprintf("the aggregate kept changing concurrently; gave up after %d attempts, retry the request", attempt)}
			}
			if err := retry.Sleep(ctx, backoff(attempt)); err != nil {
				return res, dispatch.E("command.Execute", dispatch.Transient, "", err)
			}
		default:
			return res, err
		}
	}
}

// checkCaller refuses, before anything is read, a request without a caller
// (a bug: 500) and a command outside the caller's grant (403).
func checkCaller(c dispatch.Caller, env dispatch.Envelope, cmd dispatch.Command) error {
	if c.Scope == "" {
		return dispatch.E("command.Execute", dispatch.Internal, "", fmt.Errorf("a %s request without a caller", env.Type))
	}
	return c.CheckCommand(env, cmd)
}

// replayOr answers a refusal, unless the key was already used: a repeat of
// an applied command must get the first answer even though deciding it again
// now fails (opening an open account, an outdated expectedVersion). Looking
// the key up only here keeps the accepted path at one read and one write;
// a first-time key is caught by the transaction's condition instead.
func (s *Service) replayOr(ctx context.Context, res Result, req Request, hash string, refusal error) (Result, error) {
	rec, header, err := s.recorded(ctx, req)
	if err != nil {
		return res, err
	}
	if rec != nil {
		return replay(res, rec, header, hash)
	}
	return res, refusal
}

// commit writes one attempt with every key of the request: the webhook-id's
// record is the Idempotency-Key's under another key.
func (s *Service) commit(ctx context.Context, c dispatch.Commit, req Request) (dispatch.CommitResult, error) {
	w := req.webhookKey()
	if w == "" {
		return s.store.Commit(ctx, c)
	}
	rec := c.Idempotency
	rec.Key = w
	return s.store.CommitKeys(ctx, c, []dispatch.Idempotency{rec})
}

// recorded returns the record of the first of the request's keys that is
// already recorded, and the header that carried that key; nil if none is.
func (s *Service) recorded(ctx context.Context, req Request) (*dispatch.Idempotency, string, error) {
	header := "Idempotency-Key"
	if req.IdempotencyKey == req.WebhookID {
		header = "webhook-id" // the sender gave no Idempotency-Key
	}
	rec, err := s.store.Idempotency(ctx, req.Caller.Scope, req.IdempotencyKey)
	if err != nil || rec != nil {
		return rec, header, err
	}
	if w := req.webhookKey(); w != "" {
		rec, err = s.store.Idempotency(ctx, req.Caller.Scope, w)
		return rec, "webhook-id", err
	}
	return nil, "", nil
}

func replay(res Result, rec *dispatch.Idempotency, header, hash string) (Result, error) {
	if rec.RequestHash != hash {
		return res, dispatch.UnprocessableField(header, "was already used with a different request body")
	}
	res.Accepted = rec.Response
	res.Replayed = true
	return res, nil
}

// prepare decides and builds everything one attempt writes.
func (s *Service) prepare(env dispatch.Envelope, cmd dispatch.Command, cur dispatch.Aggregate, req Request, hash, tp string, attempt int, mode dispatch.Mode) (dispatch.Commit, error) {
	now := s.now().UTC()
	d, err := cmd.Decide(cur, now)
	if err != nil {
		return dispatch.Commit{}, err
	}
	// The caller's grant first: what it may send is its own, whatever the
	// deployment lets the command type send.
	if err := req.Caller.CheckSends(d); err != nil {
		return dispatch.Commit{}, err
	}
	if err := s.checkGrants(env.Type, d); err != nil {
		return dispatch.Commit{}, err
	}
	version := cur.Version + 1
	created := cur.CreatedAt
	if !cur.Exists() {
		created = now
	}
	c := dispatch.Commit{
		State:       dispatch.Aggregate{ID: env.AggregateID, Type: d.AggregateType, Version: version, Data: d.Data, CreatedAt: created, UpdatedAt: now},
		PrevVersion: cur.Version,
		Mode:        mode,
	}
	if mode == dispatch.ModeEventSourced && len(d.Events) != 1 {
		return c, dispatch.E("command.prepare", dispatch.Internal, "", fmt.Errorf("%s decided %d events; an event-sourced command records exactly one", env.Type, len(d.Events)))
	}
	var ids []string
	add := func(target dispatch.Target, eventType string, payload any) error {
		b, err := json.Marshal(payload)
		if err != nil {
			return dispatch.E("command.prepare", dispatch.Invalid, "an effect cannot be encoded", err)
		}
		id := dispatch.NewEventID(now)
		ids = append(ids, id)
		c.Outbox = append(c.Outbox, dispatch.OutboxItem{
			AggregateID: env.AggregateID, AggregateType: d.AggregateType, Version: version, Seq: len(c.Outbox),
			EventID: id, EventType: eventType, Target: target, Payload: b,
			Status: dispatch.Pending, CreatedAt: now, Traceparent: tp,
		})
		return nil
	}
	for _, e := range d.Events {
		if err := add(dispatch.TargetEvents, e.Type, dispatch.EventPayload{Data: e.Data}); err != nil {
			return c, err
		}
	}
	if mode == dispatch.ModeEventSourced {
		if err := s.recordEvent(&c, cur, d.Events[0].Private); err != nil {
			return c, err
		}
	}
	for i, e := range d.Emails {
		r, err := s.tmpl.Render(e.Template, e.Data)
		if err != nil {
			return c, renderError(env.Type, i, err)
		}
		p := dispatch.EmailPayload{To: e.To, Template: e.Template, Subject: r.Subject, Text: r.Text, HTML: r.HTML}
		if err := add(dispatch.TargetEmail, "email."+e.Template, p); err != nil {
			return c, err
		}
	}
	c.Idempotency = dispatch.Idempotency{
		Scope: req.Caller.Scope, Key: req.IdempotencyKey, RequestHash: hash,
		Response:  dispatch.Accepted{AggregateID: env.AggregateID, Version: version, EventIDs: ids},
		CreatedAt: now, ExpiresAt: now.Add(dispatch.IdempotencyTTL),
	}
	c.Token = requestToken(req.Caller.Scope, req.IdempotencyKey, hash, attempt)
	return c, nil
}

// recordEvent turns an event-sourced commit's event into the aggregate's
// EVENT item, and checks that folding it gives the state Decide decided: a
// fold that drifted from the commands would show a state no command saw.
// At every SnapshotEvery-th version it keeps the folded state as well.
func (s *Service) recordEvent(c *dispatch.Commit, cur dispatch.Aggregate, private map[string]any) error {
	const op = "command.recordEvent"
	ev := &c.Outbox[0]
	ev.History = true
	data, err := dispatch.DecodeJSONObject(ev.Payload)
	if err != nil {
		return dispatch.E(op, dispatch.Internal, "", err)
	}
	d, _ := data["data"].(map[string]any)
	var priv map[string]any
	if len(private) > 0 {
		// Stored as JSON and read back as the fold will read it (numbers as
		// json.Number), so the check below folds what is stored.
		if ev.Private, err = json.Marshal(private); err != nil {
			return dispatch.E(op, dispatch.Invalid, "an event's private data cannot be encoded", err)
		}
		if priv, err = dispatch.DecodeJSONObject(ev.Private); err != nil {
			return dispatch.E(op, dispatch.Internal, "", err)
		}
	}
	next, err := dispatch.Evolve(cur, dispatch.RecordedEvent{
		AggregateID: ev.AggregateID, AggregateType: ev.AggregateType, Version: ev.Version,
		EventID: ev.EventID, Type: ev.EventType, Data: d, Private: priv, CreatedAt: ev.CreatedAt,
	})
	if err != nil {
		return err
	}
	if !dispatch.SameState(next.Data, c.State.Data) {
		return dispatch.E(op, dispatch.Internal, "", fmt.Errorf("folding %s gives another state than the command decided", ev.EventType))
	}
	next.CreatedAt = c.State.CreatedAt
	c.State = next
	if next.Version%dispatch.SnapshotEvery == 0 {
		snap := next
		c.Snapshot = &snap
	}
	return nil
}

// renderError names the email whose template failed; for Dispatch the
// caller chose the template, for the account commands it is ours (a bug).
func renderError(cmdType string, i int, err error) error {
	field := fmt.Sprintf("data.emails[%d]", i)
	switch {
	case errors.Is(err, emails.ErrUnknownTemplate):
		return dispatch.UnprocessableField(field+".template", "%s", err.Error())
	case errors.Is(err, emails.ErrMissingData), errors.Is(err, emails.ErrInvalidData):
		return dispatch.UnprocessableField(field+".data", "%s", err.Error())
	case errors.Is(err, emails.ErrUnsafeSubject):
		return dispatch.UnprocessableField(field+".data", "%s", err.Error())
	case errors.Is(err, emails.ErrTooLarge):
		return dispatch.E("command.render", dispatch.TooLarge, fmt.Sprintf("email %d: %v", i, err), err)
	}
	return dispatch.E("command.render", dispatch.Internal, "", fmt.Errorf("%s email %d: %w", cmdType, i, err))
}

// RequestHash is the hash of a request body that its idempotency record
// keeps: a key used again with another body is refused (422). Hex SHA-256
// of the body byte for byte.
func RequestHash(body []byte) string {
	sum := sha256.Sum256(body)
	return hex.EncodeToString(sum[:])
}

// requestToken derives the ClientRequestToken (at most 36 characters) of
// one attempt: the same attempt retried by the SDK is applied once; a new
// attempt after a conflict writes different items, so it needs a new token.
func requestToken(scope, key, hash string, attempt int) string {
	sum := sha256.Sum256([]byte(fmt.Sprintf("%s\x00%s\x00%s\x00%d", scope, key, hash, attempt)))
	return hex.EncodeToString(sum[:])[:36]
}

var traceparentRe = regexp.MustCompile(`^00-[0-9a-f]{32}-[0-9a-f]{16}-[0-9a-f]{2}$`)

// traceparent keeps a valid W3C traceparent, or starts a new trace.
func traceparent(in string) string {
	if traceparentRe.MatchString(in) && in[3:35] != "00000000000000000000000000000000" && in[36:52] != "0000000000000000" {
		return in
	}
	var b [24]byte
	_, _ = rand.Read(b[:])
	return "00-" + hex.EncodeToString(b[:16]) + "-" + hex.EncodeToString(b[16:]) + "-01"
}

func backoff(attempt int) time.Duration {
	return retry.Backoff(attempt+1, backoffBase, backoffCap)
}
