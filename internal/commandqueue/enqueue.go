// Package commandqueue is the commands queue of the listen-to-yourself mode
// (README, "Listen to yourself"): the command function's Enqueuer, which
// sends a validated command to the FIFO CommandsQueue, and the consumer
// function's SQS batch handler, which applies each queued command through
// the command service and reports partial batch failures.
package commandqueue

import (
	"context"
	"encoding/json"

	"github.com/dispatcher-dev/dispatcher/internal/command"
	"github.com/dispatcher-dev/dispatcher/internal/dispatch"
)

// Sender sends one message to a queue (*sqs.Client).
type Sender interface {
	Send(ctx context.Context, queueURL string, m dispatch.QueueMessage) error
}

// Queue queues commands on one queue: MessageGroupId = aggregate id (order
// per aggregate), MessageDeduplicationId = command.DedupID(scope, key).
type Queue struct {
	send Sender
	url  string
}

// New returns a Queue sending to queueURL.
func New(send Sender, queueURL string) *Queue { return &Queue{send: send, url: queueURL} }

// Message is the queue message of a command.
func Message(q command.Queued) (dispatch.QueueMessage, error) {
	b, err := json.Marshal(q)
	if err != nil {
		return dispatch.QueueMessage{}, dispatch.E("commandqueue.Message", dispatch.Internal, "", err)
	}
	return dispatch.QueueMessage{
		Body:    string(b),
		GroupID: q.AggregateID,
		DedupID: command.DedupID(q.Scope, q.IdempotencyKey),
		Attributes: map[string]string{
			"commandType": q.CommandType,
			"traceparent": q.Traceparent,
		},
	}, nil
}

// Enqueue implements command.Enqueuer.
func (q *Queue) Enqueue(ctx context.Context, c command.Queued) error {
	m, err := Message(c)
	if err != nil {
		return err
	}
	return q.send.Send(ctx, q.url, m)
}
