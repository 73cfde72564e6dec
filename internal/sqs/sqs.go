// Package sqs is Dispatcher's SQS adapter: it sends messages in batches and
// classifies every SQS failure, once, into a *dispatch.Error kind.
package sqs

import (
	"context"
	"strconv"

	"github.com/aws/aws-sdk-go-v2/aws"
	sqsapi "github.com/aws/aws-sdk-go-v2/service/sqs"
	"github.com/aws/aws-sdk-go-v2/service/sqs/types"
	"github.com/aws/smithy-go"

	"github.com/dispatcher-dev/dispatcher/internal/dispatch"
	"github.com/dispatcher-dev/dispatcher/internal/sqs/sqsspec"
)

// MaxMessageBytes is the adapter's limit for one message and for one
// batch's total (sqsspec.MaxMessageBytes).
const MaxMessageBytes = sqsspec.MaxMessageBytes

// maxBatchEntries is SQS's limit of entries in one SendMessageBatch.
const maxBatchEntries = 10

// Message is one message to send: the delivery engine's type.
type Message = dispatch.QueueMessage

// Client sends messages to SQS queues.
type Client struct {
	api *sqsapi.Client
}

// New returns a Client that sends through api.
func New(api *sqsapi.Client) *Client { return &Client{api: api} }

// IsFIFO reports whether queueURL names a FIFO queue (by its ".fifo" suffix).
func IsFIFO(queueURL string) bool { return dispatch.IsFIFOQueue(queueURL) }

// size is what SQS counts toward MaxMessageBytes.
func size(m Message) int { return sqsspec.Size(m) }

func attributes(m Message) map[string]types.MessageAttributeValue {
	if len(m.Attributes) == 0 {
		return nil
	}
	attrs := make(map[string]types.MessageAttributeValue, len(m.Attributes))
	for k, v := range m.Attributes {
		attrs[k] = types.MessageAttributeValue{DataType: aws.String("String"), StringValue: aws.String(v)}
	}
	return attrs
}

// GroupID and DedupID go only to FIFO queues, so that one Message serves
// either queue type (the events queue may be standard; see the template's
// EventsQueueType).
func fifoField(fifo bool, v string) *string {
	if !fifo || v == "" {
		return nil
	}
	return aws.String(v)
}

// SendBatch sends msgs (any number) in order, in SendMessageBatch calls of at
// most 10 entries and at most MaxMessageBytes in total, and returns one error
// per message (nil = sent). It does not retry: the caller retries only the
// failed entries. A message that alone exceeds MaxMessageBytes gets a
// Permanent error without being sent.
//
// On a FIFO queue, once a message of a group fails, the later messages of
// that group are not sent (Transient, "PreviousInGroupFailed"), so that
// retrying the failed entries keeps the group's order. Within one call, SQS
// itself decides what happens to the entries after a failed one.
func (c *Client) SendBatch(ctx context.Context, queueURL string, msgs []Message) []error {
	const op = "sqs.SendBatch"
	errs := make([]error, len(msgs))
	fifo := IsFIFO(queueURL)
	failedGroups := map[string]bool{}
	fail := func(i int, err error) {
		errs[i] = err
		if fifo {
			failedGroups[msgs[i].GroupID] = true
		}
	}

	var batch []int // indexes into msgs
	batchBytes := 0
	flush := func() {
		if len(batch) == 0 {
			return
		}
		for i, err := range c.sendBatch(ctx, op, queueURL, fifo, msgs, batch) {
			if err != nil {
				fail(i, err)
			}
		}
		batch, batchBytes = batch[:0], 0
	}
	for i, m := range msgs {
		size := size(m)
		if err := sqsspec.TooLong(op, size, MaxMessageBytes); err != nil {
			fail(i, err)
			continue
		}
		if len(batch) == maxBatchEntries || batchBytes+size > MaxMessageBytes {
			flush()
		}
		if fifo && failedGroups[m.GroupID] {
			errs[i] = dispatch.E(op, dispatch.Transient, "PreviousInGroupFailed", nil)
			continue
		}
		batch = append(batch, i)
		batchBytes += size
	}
	flush()
	return errs
}

// sendBatch sends msgs[idx...] in one call and returns the errors by index
// into msgs.
func (c *Client) sendBatch(ctx context.Context, op, queueURL string, fifo bool, msgs []Message, idx []int) map[int]error {
	entries := make([]types.SendMessageBatchRequestEntry, len(idx))
	for j, i := range idx {
		m := msgs[i]
		entries[j] = types.SendMessageBatchRequestEntry{
			Id:                     aws.String(strconv.Itoa(j)),
			MessageBody:            aws.String(m.Body),
			MessageGroupId:         fifoField(fifo, m.GroupID),
			MessageDeduplicationId: fifoField(fifo, m.DedupID),
			MessageAttributes:      attributes(m),
		}
	}
	errs := make(map[int]error, len(idx))
	out, err := c.api.SendMessageBatch(ctx, &sqsapi.SendMessageBatchInput{QueueUrl: aws.String(queueURL), Entries: entries})
	if err != nil {
		cerr := classify(op, err)
		for _, i := range idx {
			errs[i] = cerr
		}
		return errs
	}
	done := make([]bool, len(idx))
	for _, s := range out.Successful {
		if j, ok := entryIndex(s.Id, len(idx)); ok {
			done[j] = true
		}
	}
	for _, f := range out.Failed {
		if j, ok := entryIndex(f.Id, len(idx)); ok {
			done[j] = true
			errs[idx[j]] = classifyEntry(op, f)
		}
	}
	for j, ok := range done {
		if !ok {
			// Neither sent nor failed: it may have been sent, so the caller
			// retries it (dedup ids make that safe on FIFO queues).
			errs[idx[j]] = dispatch.E(op, dispatch.Transient, "MissingBatchResult", nil)
		}
	}
	return errs
}

func entryIndex(id *string, n int) (int, bool) {
	j, err := strconv.Atoi(aws.ToString(id))
	return j, err == nil && j >= 0 && j < n
}

// Send sends one message with SendMessage, classified as SendBatch does.
func (c *Client) Send(ctx context.Context, queueURL string, m Message) error {
	const op = "sqs.Send"
	if err := sqsspec.TooLong(op, size(m), MaxMessageBytes); err != nil {
		return err
	}
	fifo := IsFIFO(queueURL)
	_, err := c.api.SendMessage(ctx, &sqsapi.SendMessageInput{
		QueueUrl:               aws.String(queueURL),
		MessageBody:            aws.String(m.Body),
		MessageGroupId:         fifoField(fifo, m.GroupID),
		MessageDeduplicationId: fifoField(fifo, m.DedupID),
		MessageAttributes:      attributes(m),
	})
	if err != nil {
		return classify(op, err)
	}
	return nil
}

// classifyEntry classifies one failed entry of a SendMessageBatch call: a
// code in the table keeps its kind; otherwise SQS says whose fault it is
// (SenderFault: Permanent, else Transient).
func classifyEntry(op string, f types.BatchResultErrorEntry) *dispatch.Error {
	code := aws.ToString(f.Code)
	fault := smithy.FaultServer
	if f.SenderFault {
		fault = smithy.FaultClient
	}
	cause := &smithy.GenericAPIError{Code: code, Message: aws.ToString(f.Message), Fault: fault}
	if kind, ok := sqsspec.Kind(code); ok {
		return dispatch.E(op, kind, code, cause)
	}
	if code == "" {
		code = "UnknownError"
	}
	if f.SenderFault {
		return dispatch.E(op, dispatch.Permanent, code, cause)
	}
	return dispatch.E(op, dispatch.Transient, code, cause)
}
