package dispatch

import "strings"

// QueueMessage is one message for a queue, as the delivery engine builds
// it and the queue adapter sends it: the use case's own type, so that it
// imports no adapter.
type QueueMessage struct {
	Body       string
	GroupID    string            // FIFO only: MessageGroupId
	DedupID    string            // FIFO only: MessageDeduplicationId
	Attributes map[string]string // String message attributes
}

// IsFIFOQueue reports whether a queue URL names a FIFO queue (by the
// ".fifo" suffix every FIFO queue's name carries).
func IsFIFOQueue(queueURL string) bool { return strings.HasSuffix(queueURL, ".fifo") }

// OutgoingEmail is one email as the delivery engine builds it and the mail
// adapter sends it.
type OutgoingEmail struct {
	From                string   // an address, or "Name <address>" (RFC 2047-encoded name)
	ReplyTo             []string // Reply-To addresses; none: replies go to From
	ConfigurationSet    string   // "" = none
	To                  []string
	Subject, Text, HTML string
	Headers             map[string]string // e.g. "X-Dispatcher-Event-Id"
	Tags                map[string]string // message tags (name/value [A-Za-z0-9_-])
}

// The message tags every email carries, naming its outbox item: SES copies
// them into each event it publishes about the email (mail.tags), and the
// feedback is matched to its item through them, never by address. Every
// value fits SES's tag rules (1 to 256 of [A-Za-z0-9_-]) as it is: an event
// id is a UUID, an aggregate id at most MaxAggregateIDLen of [A-Za-z0-9_-],
// a version a decimal integer, a template name at most 64 of [a-z0-9-].
const (
	TagEventID     = "dispatcher-event-id"
	TagAggregateID = "dispatcher-aggregate-id"
	TagVersion     = "dispatcher-version"
	TagTemplate    = "dispatcher-template"
)

// Sender is who an email is from, as the mail adapter is given it.
type Sender struct {
	From    string   // an address, or "Name <address>" (RFC 2047-encoded name)
	ReplyTo []string // none: replies go to From
}

// Senders chooses an email's sender by its template: the deployment's
// template folder (dispatcher.yaml) says which sender sends which template.
type Senders struct {
	ByTemplate map[string]Sender
	Default    *Sender // templates not in ByTemplate; nil: the fallback
}

// For returns the sender of a template's emails; from the fallback address
// (the stack's SENDER_ADDRESS) when the configuration names none.
func (s Senders) For(template, fallback string) Sender {
	if x, ok := s.ByTemplate[template]; ok {
		return x
	}
	if s.Default != nil {
		return *s.Default
	}
	return Sender{From: fallback}
}
