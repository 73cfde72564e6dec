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
	From                string
	ConfigurationSet    string // "" = none
	To                  []string
	Subject, Text, HTML string
	Headers             map[string]string // e.g. "X-Dispatcher-Event-Id"
	Tags                map[string]string // message tags (name/value [A-Za-z0-9_-])
}
