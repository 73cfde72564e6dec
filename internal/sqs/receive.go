package sqs

import (
	"context"
	"strconv"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	sqsapi "github.com/aws/aws-sdk-go-v2/service/sqs"
	"github.com/aws/aws-sdk-go-v2/service/sqs/types"
)

// Received is one message taken from a queue.
type Received struct {
	ID      string
	Body    string
	Receipt string
	Count   int       // approximate receive count
	SentAt  time.Time // when the message was sent to the queue
}

// Receive takes up to n (at most 10) messages, hidden from other
// consumers for visibility. It does not wait for messages to arrive.
func (c *Client) Receive(ctx context.Context, queueURL string, n int, visibility time.Duration) ([]Received, error) {
	out, err := c.api.ReceiveMessage(ctx, &sqsapi.ReceiveMessageInput{
		QueueUrl:                    aws.String(queueURL),
		MaxNumberOfMessages:         int32(min(max(n, 1), 10)),
		VisibilityTimeout:           int32(visibility / time.Second),
		WaitTimeSeconds:             0,
		MessageSystemAttributeNames: []types.MessageSystemAttributeName{types.MessageSystemAttributeNameApproximateReceiveCount, types.MessageSystemAttributeNameSentTimestamp},
	})
	if err != nil {
		return nil, classify("sqs.Receive", err)
	}
	got := make([]Received, len(out.Messages))
	for i, m := range out.Messages {
		got[i] = Received{ID: aws.ToString(m.MessageId), Body: aws.ToString(m.Body), Receipt: aws.ToString(m.ReceiptHandle)}
		got[i].Count, _ = strconv.Atoi(m.Attributes[string(types.MessageSystemAttributeNameApproximateReceiveCount)])
		if ms, err := strconv.ParseInt(m.Attributes[string(types.MessageSystemAttributeNameSentTimestamp)], 10, 64); err == nil {
			got[i].SentAt = time.UnixMilli(ms)
		}
	}
	return got, nil
}

// Delete removes a received message.
func (c *Client) Delete(ctx context.Context, queueURL, receipt string) error {
	_, err := c.api.DeleteMessage(ctx, &sqsapi.DeleteMessageInput{QueueUrl: aws.String(queueURL), ReceiptHandle: aws.String(receipt)})
	if err != nil {
		return classify("sqs.Delete", err)
	}
	return nil
}

// ChangeVisibility hides a received message for d more (0: visible at once).
func (c *Client) ChangeVisibility(ctx context.Context, queueURL, receipt string, d time.Duration) error {
	_, err := c.api.ChangeMessageVisibility(ctx, &sqsapi.ChangeMessageVisibilityInput{
		QueueUrl: aws.String(queueURL), ReceiptHandle: aws.String(receipt), VisibilityTimeout: int32(d / time.Second),
	})
	if err != nil {
		return classify("sqs.ChangeVisibility", err)
	}
	return nil
}
