// Package signed sends one SQS message with one signed request (AWS JSON
// 1.0, AmazonSQS.SendMessage) instead of the SDK's SQS client: the command
// function sends one message per queued command (listen-to-yourself) and
// nothing else to SQS, and the client's package and schemas were 0.9 MB of
// its binary and 0.2 ms of its init (docs/cost.md, "Cold start").
//
// It sends what the SDK's SendMessage sends, checks MD5OfMessageBody as the
// SDK does, and classifies failures with the SQS adapter's table
// (internal/sqs/sqsspec), so a queued command fails as it would through the
// adapter: throttling and 5xx Transient, a missing queue or unusable KMS key
// AccountWide, a refused message Permanent.
package signed

import (
	"context"
	"crypto/md5"
	"encoding/hex"
	"fmt"

	"github.com/aws/aws-sdk-go-v2/aws"

	"github.com/dispatcher-dev/dispatcher/internal/awsjson"
	"github.com/dispatcher-dev/dispatcher/internal/dispatch"
	"github.com/dispatcher-dev/dispatcher/internal/sqs/sqsspec"
)

// sqsService is SQS as the SDK calls it.
var sqsService = awsjson.Service{
	SigningName: "sqs", SDKID: "SQS", TargetPrefix: "AmazonSQS.", JSONVersion: "1.0",
	MaxResponse: 64 << 10, QueryCompatible: true,
}

// Sender sends messages with one signed SendMessage each.
type Sender struct{ c *awsjson.Client }

// New returns a Sender using cfg's region, credentials and HTTP client.
func New(cfg aws.Config) *Sender { return &Sender{c: awsjson.New(cfg)} }

type attribute struct {
	DataType    string
	StringValue string
}

type sendInput struct {
	QueueUrl               string
	MessageBody            string
	MessageGroupId         string               `json:",omitempty"`
	MessageDeduplicationId string               `json:",omitempty"`
	MessageAttributes      map[string]attribute `json:",omitempty"`
}

// Send sends m to queueURL. GroupID and DedupID go only to a FIFO queue.
// A message over the most SQS takes on any queue (1 MiB) is refused here,
// Permanent, without a call; the queue's own MaximumMessageSize, if lower,
// is SQS's to enforce (InvalidParameterValue, Permanent too).
func (s *Sender) Send(ctx context.Context, queueURL string, m dispatch.QueueMessage) error {
	const op = "sqs.Send"
	if err := sqsspec.TooLong(op, sqsspec.Size(m), sqsspec.MaxQueueMessageBytes); err != nil {
		return err
	}
	in := sendInput{QueueUrl: queueURL, MessageBody: m.Body}
	if dispatch.IsFIFOQueue(queueURL) {
		in.MessageGroupId, in.MessageDeduplicationId = m.GroupID, m.DedupID
	}
	if len(m.Attributes) > 0 {
		in.MessageAttributes = make(map[string]attribute, len(m.Attributes))
		for k, v := range m.Attributes {
			in.MessageAttributes[k] = attribute{DataType: "String", StringValue: v}
		}
	}
	var out struct{ MD5OfMessageBody, MessageId string }
	if err := s.c.Call(ctx, sqsService, "SendMessage", in, &out); err != nil {
		return sqsspec.Classify(op, err)
	}
	sum := md5.Sum([]byte(m.Body))
	if want := hex.EncodeToString(sum[:]); out.MD5OfMessageBody != want {
		// As the SDK: SQS did not get the body that was sent.
		return dispatch.E(op, dispatch.Transient, "ChecksumMismatch",
			fmt.Errorf("MD5OfMessageBody %q of message %s, want %s", out.MD5OfMessageBody, out.MessageId, want))
	}
	return nil
}
