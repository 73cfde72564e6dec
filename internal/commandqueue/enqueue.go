// Package commandqueue is the commands queue of the listen-to-yourself mode
// (docs/modes.md, "Listen to yourself"): the command function's Enqueuer, which
// sends a validated command to the FIFO CommandsQueue, and the consumer
// function's SQS batch handler, which applies each queued command through
// the command service and reports partial batch failures.
package commandqueue

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"time"

	"github.com/aws/aws-lambda-go/events"

	"github.com/dispatcher-dev/dispatcher/internal/command"
	"github.com/dispatcher-dev/dispatcher/internal/dispatch"
	"github.com/dispatcher-dev/dispatcher/internal/sqs/sqsspec"
)

// MaxMessageBytes is the commands queue's MaximumMessageSize (the template
// sets CommandsQueue and its DLQ to it; a test checks): the most SQS takes.
// A queued command is the request body, at most dispatch.MaxBodyBytes, plus
// its metadata, base64 at worst (Message): under 360 KB, so a body the
// command function accepts is never refused for its size here, and a body
// over dispatch.MaxBodyBytes is refused with the same 413 in both modes.
const MaxMessageBytes = sqsspec.MaxQueueMessageBytes

// Sender sends one message to a queue (*sqs.Client).
type Sender interface {
	Send(ctx context.Context, queueURL string, m dispatch.QueueMessage) error
}

// Queue queues commands on one queue: MessageGroupId = aggregate id (order
// per aggregate), MessageDeduplicationId = command.DedupID of the scope,
// key and request hash.
type Queue struct {
	send Sender
	url  string
}

// New returns a Queue sending to queueURL.
func New(send Sender, queueURL string) *Queue { return &Queue{send: send, url: queueURL} }

// The message attributes of a queued command. The message body is the
// request body byte for byte; everything else the consumer needs travels
// here, so that nothing is escaped into another JSON document (which grew a
// body the command function accepts past SQS's limit: issue 24).
const (
	attrCommandType = "commandType"
	attrTraceparent = "traceparent"
	attrAggregateID = "aggregateId"
	attrScope       = "scope"
	// attrCaller is the caller's id and grants as JSON (wireCaller); a
	// message queued before callers existed has none (command.LegacyCaller).
	attrCaller     = "caller"
	attrKey        = "idempotencyKey"
	attrWebhookID  = "webhookId"
	attrReceivedAt = "receivedAt"
	// attrEncoding "base64": the body, the scope, the caller and the webhook-id are
	// base64 (standard, padded), because one of them holds a character SQS
	// refuses (sqsspec.ValidText: U+FFFE or U+FFFF, which JSON allows).
	attrEncoding = "encoding"
	encBase64    = "base64"
)

// wireCaller is a dispatch.Caller as a message attribute carries it: what
// the consumer checks (its rate is spent already).
type wireCaller struct {
	ID         string   `json:"id"`
	Scope      string   `json:"scope"`
	Aggregates []string `json:"aggregates,omitempty"`
	Templates  []string `json:"templates,omitempty"`
	Events     []string `json:"events,omitempty"`
	All        bool     `json:"all,omitempty"`
}

// Message is the queue message of a command.
func Message(q command.Queued) (dispatch.QueueMessage, error) {
	c := q.Caller
	wc, err := json.Marshal(wireCaller{ID: c.ID, Scope: c.Scope, Aggregates: c.Aggregates, Templates: c.Templates, Events: c.Events, All: c.All})
	if err != nil {
		return dispatch.QueueMessage{}, dispatch.E("commandqueue.Message", dispatch.Internal, "", err)
	}
	body, scope, caller, webhookID := q.Command, c.Scope, string(wc), q.WebhookID
	attrs := map[string]string{
		attrCommandType: q.CommandType,
		attrTraceparent: q.Traceparent,
		attrAggregateID: q.AggregateID,
		attrKey:         q.IdempotencyKey,
		attrReceivedAt:  q.ReceivedAt.UTC().Format(time.RFC3339Nano),
	}
	if !sqsspec.ValidText(body) || !sqsspec.ValidText(scope) || !sqsspec.ValidText(caller) || !sqsspec.ValidText(webhookID) {
		enc := base64.StdEncoding.EncodeToString
		body, scope, caller, webhookID = enc([]byte(body)), enc([]byte(scope)), enc([]byte(caller)), enc([]byte(webhookID))
		attrs[attrEncoding] = encBase64
	}
	attrs[attrScope] = scope
	attrs[attrCaller] = caller
	if webhookID != "" { // SQS refuses an empty attribute value
		attrs[attrWebhookID] = webhookID
	}
	m := dispatch.QueueMessage{
		Body:       body,
		GroupID:    q.AggregateID,
		DedupID:    command.DedupID(c.Scope, q.IdempotencyKey, command.RequestHash([]byte(q.Command))),
		Attributes: attrs,
	}
	if n := sqsspec.Size(m); n > MaxMessageBytes {
		// The command function refuses a body over dispatch.MaxBodyBytes
		// before this: a message this long is a bug here, not the caller's.
		return m, dispatch.E("commandqueue.Message", dispatch.Internal, "", sqsspec.TooLong("commandqueue.Message", n, MaxMessageBytes))
	}
	return m, nil
}

// Decode reads a commands queue message as Lambda hands it over: the
// format above, or, for a message without its attributes, the JSON
// document queued before it (command.DecodeQueued), so that what was
// queued before a deploy is still applied after it.
func Decode(r events.SQSMessage) (command.Queued, error) {
	const op = "commandqueue.Decode"
	attr := func(name string) string {
		if a, ok := r.MessageAttributes[name]; ok && a.StringValue != nil {
			return *a.StringValue
		}
		return ""
	}
	if _, ok := r.MessageAttributes[attrKey]; !ok {
		return command.DecodeQueued(r.Body)
	}
	q := command.Queued{
		AggregateID: attr(attrAggregateID), CommandType: attr(attrCommandType), Command: r.Body,
		IdempotencyKey: attr(attrKey), WebhookID: attr(attrWebhookID), Traceparent: attr(attrTraceparent),
	}
	scope, caller := attr(attrScope), attr(attrCaller)
	switch enc := attr(attrEncoding); enc {
	case "":
	case encBase64:
		for _, f := range []*string{&q.Command, &scope, &caller, &q.WebhookID} {
			b, err := base64.StdEncoding.DecodeString(*f)
			if err != nil {
				return q, dispatch.E(op, dispatch.Invalid, "the queued command's base64 does not decode", err)
			}
			*f = string(b)
		}
	default:
		return q, dispatch.E(op, dispatch.Invalid, "the queued command's encoding "+enc+" is unknown", nil)
	}
	t, err := time.Parse(time.RFC3339Nano, attr(attrReceivedAt))
	if err != nil {
		return q, dispatch.E(op, dispatch.Invalid, "the queued command's receivedAt is not a time", err)
	}
	q.ReceivedAt = t
	if q.Command == "" || scope == "" || q.IdempotencyKey == "" {
		return q, dispatch.E(op, dispatch.Invalid, "the queued command lacks its body, scope or idempotency key", nil)
	}
	if _, ok := r.MessageAttributes[attrCaller]; !ok {
		q.Caller = command.LegacyCaller(scope)
		return q, nil
	}
	var wc wireCaller
	if err := json.Unmarshal([]byte(caller), &wc); err != nil || wc.ID == "" || wc.Scope != scope {
		return q, dispatch.E(op, dispatch.Invalid, "the queued command's caller is not readable", err)
	}
	q.Caller = dispatch.Caller{ID: wc.ID, Scope: wc.Scope, Aggregates: wc.Aggregates, Grant: dispatch.Grant{Templates: wc.Templates, Events: wc.Events}, All: wc.All}
	return q, nil
}

// Enqueue implements command.Enqueuer.
func (q *Queue) Enqueue(ctx context.Context, c command.Queued) error {
	m, err := Message(c)
	if err != nil {
		return err
	}
	return q.send.Send(ctx, q.url, m)
}
