package command

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/dispatcher-dev/dispatcher/internal/dispatch"
)

// Listen to yourself (issue 18): for the command types chosen by
// configuration, the command function only validates the request and queues
// it, as an immutable fact, for a consumer that applies it through Execute
// with the same idempotency scope and key. The caller's 202 comes before any
// state exists; the consumer's write is what the stream relay then delivers.

// Queued is a validated command as it travels through the commands queue:
// everything Execute needs to apply it exactly as the synchronous path would.
// Command is the request body byte for byte, so the idempotency record's
// request hash is the one the synchronous path computes. internal/commandqueue
// sends it as the message body, with the rest in message attributes; the
// JSON fields are the format queued before that, which DecodeQueued still
// reads.
type Queued struct {
	AggregateID string `json:"aggregateId"`
	CommandType string `json:"commandType"`
	Command     string `json:"command"`
	// Caller is who sent it, with the grants it had when it was answered
	// 202: the consumer applies the command under them (its idempotency
	// scope included), not under what the registry says later, so that a
	// caller narrowed or removed meanwhile does not see a command it was
	// promised refused. The JSON format before callers carried the scope
	// only (LegacyCaller).
	Caller         dispatch.Caller `json:"-"`
	IdempotencyKey string          `json:"idempotencyKey"`
	WebhookID      string          `json:"webhookId,omitempty"`
	ReceivedAt     time.Time       `json:"receivedAt"`
	Traceparent    string          `json:"traceparent"`
}

// Request is the command request the consumer executes.
func (q Queued) Request() Request {
	return Request{Body: []byte(q.Command), Caller: q.Caller, IdempotencyKey: q.IdempotencyKey, WebhookID: q.WebhookID, Traceparent: q.Traceparent}
}

// LegacyCaller is the caller of a command queued before callers existed,
// which carried its idempotency scope only: every caller then was the
// deployment's single caller, with every grant ("webhook": the signed
// caller, now the default caller; "iam:ARN": an IAM principal).
func LegacyCaller(scope string) dispatch.Caller {
	id := "default"
	if arn, ok := strings.CutPrefix(scope, "iam:"); ok {
		id = arn
	}
	return dispatch.Caller{ID: id, Scope: scope, All: true}
}

// DecodeQueued reads a commands queue message body queued as one JSON
// document (the command escaped inside it), as the command function did
// before the body travelled as the message body itself.
func DecodeQueued(body string) (Queued, error) {
	var q struct {
		Queued
		Scope string `json:"scope"`
	}
	if err := json.Unmarshal([]byte(body), &q); err != nil {
		return q.Queued, dispatch.E("command.DecodeQueued", dispatch.Invalid, "the message is not a queued command", err)
	}
	if q.Command == "" || q.Scope == "" || q.IdempotencyKey == "" {
		return q.Queued, dispatch.E("command.DecodeQueued", dispatch.Invalid, "the queued command lacks its body, scope or idempotency key", nil)
	}
	q.Caller = LegacyCaller(q.Scope)
	return q.Queued, nil
}

// DedupID is the queue's deduplication id of a command: derived from its
// idempotency scope, its key and the request hash its idempotency record
// keeps (RequestHash). A POST retried with the same key and body within the
// queue's deduplication window is dropped by the queue, and one after it is
// answered by the idempotency record. The same key with another body is
// another message: the consumer refuses it (422, logged at WARN and counted)
// rather than the queue dropping a command that was answered 202.
// Hex SHA-256: 64 characters, within SQS's 128.
func DedupID(scope, key, requestHash string) string {
	sum := sha256.Sum256([]byte(scope + "\x00" + key + "\x00" + requestHash))
	return hex.EncodeToString(sum[:])
}

// Enqueuer sends a validated command to the commands queue, in the
// aggregate's group. Errors are *dispatch.Error.
type Enqueuer interface {
	Enqueue(ctx context.Context, q Queued) error
}

// Listener is a Service that queues the command types in its set instead
// of applying them (listen to yourself); every other type, and every read,
// goes to the Service as before.
type Listener struct {
	*Service
	q     Enqueuer
	types map[string]bool
}

// NewListener returns a Listener that queues the given command types
// through q.
func NewListener(s *Service, q Enqueuer, types []string) *Listener {
	set := make(map[string]bool, len(types))
	for _, t := range types {
		set[t] = true
	}
	return &Listener{Service: s, q: q, types: set}
}

// Execute validates the request and, for a queued type, queues it and
// answers Queued (no version, no event ids: nothing is applied yet). A
// request that does not validate is refused here, synchronously, and
// nothing is queued; refusals that depend on the state (an overdraw, a
// version conflict, a key reused with another body) come later, to the
// consumer.
func (l *Listener) Execute(ctx context.Context, req Request) (Result, error) {
	env, cmd, err := dispatch.Parse(req.Body)
	if err != nil || !l.types[env.Type] {
		return l.Service.Execute(ctx, req)
	}
	res := Result{Type: env.Type, Accepted: dispatch.Accepted{AggregateID: env.AggregateID}, Queued: true, Attempts: 1}
	// Refused here, as the synchronous path refuses it: a 202 for a
	// command outside the caller's grant would be a promise broken later.
	if err := checkCaller(req.Caller, env, cmd); err != nil {
		res.Queued = false
		return res, err
	}
	res.Traceparent = traceparent(req.Traceparent)
	q := Queued{
		AggregateID: env.AggregateID, CommandType: env.Type, Command: string(req.Body),
		Caller: req.Caller, IdempotencyKey: req.IdempotencyKey, WebhookID: req.WebhookID,
		ReceivedAt: l.now().UTC(), Traceparent: res.Traceparent,
	}
	if err := l.q.Enqueue(ctx, q); err != nil {
		return res, err
	}
	return res, nil
}

// ParseCommandTypes reads LISTEN_TO_YOURSELF: comma-separated command
// types, each a known one; "" is none (the mode is off).
func ParseCommandTypes(s string) ([]string, error) {
	var out []string
	for _, t := range strings.Split(s, ",") {
		t = strings.TrimSpace(t)
		switch {
		case t == "" || slices.Contains(out, t):
		case !slices.Contains(dispatch.CommandTypes(), t):
			return nil, dispatch.E("command.ParseCommandTypes", dispatch.Invalid, fmt.Sprintf("unknown command type %q; known: %s", t, strings.Join(dispatch.CommandTypes(), ", ")), nil)
		default:
			out = append(out, t)
		}
	}
	return out, nil
}
