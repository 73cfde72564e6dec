package runner

import (
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"strconv"
	"sync"
	"time"

	"github.com/aws/aws-lambda-go/events"
	"github.com/aws/aws-sdk-go-v2/aws"
	sqsapi "github.com/aws/aws-sdk-go-v2/service/sqs"
	sqstypes "github.com/aws/aws-sdk-go-v2/service/sqs/types"

	"github.com/dispatcher-dev/dispatcher/internal/local/cfn"
	"github.com/dispatcher-dev/dispatcher/internal/local/provision"
)

// QueueMapping is an SQS event of a function: an event source mapping that
// polls a queue, with its settings read from the template and AWS's
// defaults for the rest.
type QueueMapping struct {
	Function               string
	Event                  string
	QueueArn               string
	QueueURL               string // the provisioned queue with that ARN
	BatchSize              int
	ReportBatchItemFailure bool
	Enabled                bool
	Notes                  []string
}

var sqsEventProps = map[string]bool{
	"Queue": true, "BatchSize": true, "Enabled": true, "FunctionResponseTypes": true,
	"MaximumBatchingWindowInSeconds": true, "ScalingConfig": true, "FilterCriteria": true, "KmsKeyArn": true,
	"MetricsConfig": true,
}

// readQueue reads an SQS event; the queue must be one of the provisioned
// stack.
func readQueue(s *provision.Stack, fn, name string, props map[string]any) (QueueMapping, error) {
	for k := range props {
		if !sqsEventProps[k] {
			return QueueMapping{}, fmt.Errorf("SQS event property %s is not known to the local runner", k)
		}
	}
	vals, err := s.Eval.Eval(props)
	if err != nil {
		return QueueMapping{}, err
	}
	p, _ := vals.(map[string]any)
	m := QueueMapping{Function: fn, Event: name, BatchSize: 10, Enabled: true}
	if m.QueueArn, err = str(p, "Queue"); err != nil || m.QueueArn == "" {
		return m, fmt.Errorf("Queue: no queue ARN (%v)", err)
	}
	for _, r := range s.Resources {
		if r.Type == provision.TypeQueue && r.Attributes["Arn"] == m.QueueArn {
			m.QueueURL = r.PhysicalID
		}
	}
	if m.QueueURL == "" {
		return m, fmt.Errorf("Queue %s is not a provisioned queue", m.QueueArn)
	}
	if v, ok := p["BatchSize"]; ok {
		n, err := intOf(v)
		if err != nil || n < 1 || n > 10000 {
			return m, fmt.Errorf("BatchSize %v: want a whole number from 1 to 10000", v)
		}
		m.BatchSize = n
	}
	if v, ok := p["Enabled"]; ok {
		sv, _ := cfn.String(v)
		b, err := strconv.ParseBool(sv)
		if err != nil {
			return m, fmt.Errorf("Enabled %v: want true or false", v)
		}
		m.Enabled = b
	}
	if v, ok := p["FunctionResponseTypes"]; ok {
		l, _ := v.([]any)
		for _, t := range l {
			if t != "ReportBatchItemFailures" {
				return m, fmt.Errorf("FunctionResponseTypes %v is not known", t)
			}
			m.ReportBatchItemFailure = true
		}
	}
	if m.BatchSize > 10 {
		m.Notes = append(m.Notes, "BatchSize above 10 is emulated as batches of at most 10 (one ReceiveMessage)")
	}
	for _, k := range []string{"MaximumBatchingWindowInSeconds", "ScalingConfig", "FilterCriteria", "KmsKeyArn", "MetricsConfig"} {
		if _, ok := p[k]; ok {
			m.Notes = append(m.Notes, k+" is not emulated")
		}
	}
	return m, nil
}

// QueueStats counts what an SQS mapping did.
type QueueStats struct {
	Received    int // messages received
	Invocations int
	Deleted     int // messages of successful invocations, or reported successful
	Failed      int // messages left to become visible again
}

// sqsPoller emulates one SQS event source mapping with one poller: it
// receives up to BatchSize messages (a short long-poll), invokes the
// function with an events.SQSEvent, deletes the messages that succeeded and
// leaves the failed ones to become visible again. On a FIFO queue SQS itself
// hands out no later message of a group while an earlier one is in flight,
// and the one poller waits for each invocation, so a group is never
// processed out of order. A failed message is made visible again after the
// runner's retry delay, not the queue's visibility timeout (tests do not
// wait minutes); its receive count, and the queue's redrive to its DLQ,
// are SQS's own.
type sqsPoller struct {
	m          QueueMapping
	fn         Function
	sqs        *sqsapi.Client
	region     string
	retryDelay time.Duration
	wait       time.Duration
	log        *slog.Logger
	wg         sync.WaitGroup
	mu         sync.Mutex
	stats      QueueStats
}

func (p *sqsPoller) start(ctx context.Context) {
	p.wg.Add(1)
	go func() {
		defer p.wg.Done()
		for ctx.Err() == nil {
			if !p.pollOnce(ctx) {
				select {
				case <-ctx.Done():
				case <-time.After(p.retryDelay):
				}
			}
		}
	}()
}

// pollOnce receives and handles one batch; false when receiving failed.
func (p *sqsPoller) pollOnce(ctx context.Context) bool {
	out, err := p.sqs.ReceiveMessage(ctx, &sqsapi.ReceiveMessageInput{
		QueueUrl:                    aws.String(p.m.QueueURL),
		MaxNumberOfMessages:         int32(min(p.m.BatchSize, 10)),
		WaitTimeSeconds:             int32(p.wait / time.Second),
		MessageSystemAttributeNames: []sqstypes.MessageSystemAttributeName{sqstypes.MessageSystemAttributeNameAll},
		MessageAttributeNames:       []string{"All"},
	})
	if err != nil {
		if ctx.Err() == nil {
			p.log.Warn("SQS mapping: receive failed", "function", p.m.Function, "queue", p.m.QueueURL, "error", err.Error())
		}
		return false
	}
	if len(out.Messages) == 0 {
		return true
	}
	p.mu.Lock()
	p.stats.Received += len(out.Messages)
	p.mu.Unlock()

	ev := events.SQSEvent{Records: make([]events.SQSMessage, len(out.Messages))}
	for i, m := range out.Messages {
		ev.Records[i] = sqsRecord(m, p.m.QueueArn, p.region)
	}
	payload, _ := json.Marshal(ev)
	reqID := newRequestID()
	res, err := p.fn.Invoke(ctx, reqID, payload)
	p.mu.Lock()
	p.stats.Invocations++
	p.mu.Unlock()
	failed := map[string]bool{}
	if err != nil {
		for _, r := range ev.Records {
			failed[r.MessageId] = true
		}
		if ctx.Err() == nil {
			p.log.Warn("SQS mapping: invocation failed; the batch will be received again", "function", p.m.Function, "requestId", reqID, "error", err.Error())
		}
	} else if p.m.ReportBatchItemFailure {
		failed = batchFailures(res, ev)
	}
	for _, m := range out.Messages {
		id := aws.ToString(m.MessageId)
		if failed[id] {
			// Visible again soon (see sqsPoller); a context of its own, so a
			// runner closing mid-batch still releases what it holds.
			cctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 5*time.Second)
			_, _ = p.sqs.ChangeMessageVisibility(cctx, &sqsapi.ChangeMessageVisibilityInput{
				QueueUrl: aws.String(p.m.QueueURL), ReceiptHandle: m.ReceiptHandle, VisibilityTimeout: int32(p.retryDelay.Round(time.Second) / time.Second),
			})
			cancel()
			continue
		}
		dctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 5*time.Second)
		if _, err := p.sqs.DeleteMessage(dctx, &sqsapi.DeleteMessageInput{QueueUrl: aws.String(p.m.QueueURL), ReceiptHandle: m.ReceiptHandle}); err != nil {
			p.log.Warn("SQS mapping: delete failed; the message will be received again", "function", p.m.Function, "messageId", id, "error", err.Error())
		}
		cancel()
	}
	p.mu.Lock()
	p.stats.Failed += len(failed)
	p.stats.Deleted += len(out.Messages) - len(failed)
	p.mu.Unlock()
	return true
}

// batchFailures reads a partial batch response as Lambda does: the listed
// messages failed; a response that cannot be read, or that names a message
// not in the batch (or none), fails the whole batch.
func batchFailures(res []byte, ev events.SQSEvent) map[string]bool {
	in := map[string]bool{}
	for _, r := range ev.Records {
		in[r.MessageId] = true
	}
	all := func() map[string]bool { return in }
	if len(res) == 0 || string(res) == "null" {
		return map[string]bool{}
	}
	var resp events.SQSEventResponse
	if err := json.Unmarshal(res, &resp); err != nil {
		return all()
	}
	failed := map[string]bool{}
	for _, f := range resp.BatchItemFailures {
		if !in[f.ItemIdentifier] {
			return all()
		}
		failed[f.ItemIdentifier] = true
	}
	return failed
}

// sqsRecord is a received message as Lambda hands it to the function.
func sqsRecord(m sqstypes.Message, queueArn, region string) events.SQSMessage {
	r := events.SQSMessage{
		MessageId: aws.ToString(m.MessageId), ReceiptHandle: aws.ToString(m.ReceiptHandle), Body: aws.ToString(m.Body),
		Md5OfBody: aws.ToString(m.MD5OfBody), Md5OfMessageAttributes: aws.ToString(m.MD5OfMessageAttributes),
		Attributes: m.Attributes, EventSourceARN: queueArn, EventSource: "aws:sqs", AWSRegion: region,
	}
	if len(m.MessageAttributes) > 0 {
		r.MessageAttributes = map[string]events.SQSMessageAttribute{}
		for k, v := range m.MessageAttributes {
			r.MessageAttributes[k] = events.SQSMessageAttribute{StringValue: v.StringValue, BinaryValue: v.BinaryValue, DataType: aws.ToString(v.DataType)}
		}
	}
	return r
}

func (p *sqsPoller) snapshot() QueueStats {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.stats
}

// QueueStats returns the counters of a function's SQS mappings.
func (r *Runner) QueueStats(function string) QueueStats {
	var s QueueStats
	for _, p := range r.pollers {
		if p.m.Function == function {
			x := p.snapshot()
			s.Received += x.Received
			s.Invocations += x.Invocations
			s.Deleted += x.Deleted
			s.Failed += x.Failed
		}
	}
	return s
}
