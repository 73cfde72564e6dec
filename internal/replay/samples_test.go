package replay_test

import (
	"context"
	"encoding/json"
	"errors"
	"github.com/dispatcher-dev/dispatcher/internal/testkit/samples"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	sqsapi "github.com/aws/aws-sdk-go-v2/service/sqs"
	sqstypes "github.com/aws/aws-sdk-go-v2/service/sqs/types"

	"github.com/dispatcher-dev/dispatcher/internal/replay"
	"github.com/dispatcher-dev/dispatcher/internal/testkit/flowtest"
)

// replaySamples are the real AWS event samples of testdata/samples (see its
// README.md): none is a replay request, and each is refused for the unknown
// field that comes first in it.
var replaySamples = []struct {
	file  string
	field string // the unknown field the error must name
}{
	{"sam-dynamodb-update.json", "Records"},
	{"aws-lambda-go-dynamodb-event.json", "Records"},
	{"sam-sqs-receive-message.json", "Records"},
	{"aws-lambda-go-sqs-event.json", "Records"},
	{"sam-apigateway-http-api-proxy.json", "version"},
	{"aws-lambda-go-apigw-v2-request-no-authorizer.json", "version"},
	{"aws-lambda-go-apigw-v2-request-iam.json", "version"},
	{"aws-lambda-go-apigw-v2-request-jwt-authorizer.json", "version"},
	{"aws-lambda-go-apigw-v2-request-lambda-authorizer.json", "version"},
}

// The table above and the samples folder must agree: a sample added without
// an expected outcome, or a table that lost its samples, fails.
func TestSamplesFolderMatchesTheTable(t *testing.T) {
	var names []string
	for _, s := range replaySamples {
		names = append(names, s.file)
	}
	samples.MatchFolder(t, names)
}

// An SQS, DynamoDB Streams or HTTP API event sent to the replay function by
// mistake is not a replay request: it is refused as the caller's to fix,
// naming the unknown field, and the DLQ is not touched.
func TestSampleEventsAreNotReplayRequests(t *testing.T) {
	f := flowtest.New(t, nil) // drains the events queue and the DLQ
	// A message of no known shape in the DLQ: a replay that ran would
	// receive it (and leave it), which its receive count would show.
	const marker = `{"sample-test":"marker: the replay must not touch this message"}`
	if _, err := f.SQS.SendMessage(context.Background(), &sqsapi.SendMessageInput{QueueUrl: aws.String(f.DLQ), MessageBody: aws.String(marker)}); err != nil {
		t.Fatal(err)
	}
	for _, s := range replaySamples {
		t.Run(s.file, func(t *testing.T) {
			raw := samples.Read(t, s.file)
			if !json.Valid(raw) {
				t.Fatal("the sample is not JSON")
			}
			ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
			defer cancel()
			rep, err := f.Replay.Invoke(ctx, json.RawMessage(raw))
			var re *replay.RequestError
			if !errors.As(err, &re) {
				t.Fatalf("error %v (report %+v), want a *replay.RequestError", err, rep)
			}
			t.Logf("refused: %v", re)
			if msg := re.Error(); !strings.Contains(msg, "unknown field") || !strings.Contains(msg, s.field) {
				t.Errorf("error %q, want it to name the unknown field %q", msg, s.field)
			}
		})
	}
	// The DLQ holds the marker alone, received for the first time now.
	out, err := f.SQS.ReceiveMessage(context.Background(), &sqsapi.ReceiveMessageInput{
		QueueUrl: aws.String(f.DLQ), MaxNumberOfMessages: 10, VisibilityTimeout: 2, WaitTimeSeconds: 1,
		MessageSystemAttributeNames: []sqstypes.MessageSystemAttributeName{sqstypes.MessageSystemAttributeNameApproximateReceiveCount},
	})
	if err != nil {
		t.Fatal(err)
	}
	if len(out.Messages) != 1 || aws.ToString(out.Messages[0].Body) != marker {
		var bodies []string
		for _, m := range out.Messages {
			bodies = append(bodies, aws.ToString(m.Body))
		}
		t.Fatalf("the DLQ holds %q, want the marker alone", bodies)
	}
	if n := out.Messages[0].Attributes["ApproximateReceiveCount"]; n != "1" {
		t.Errorf("the marker was received %s times, want 1 (this receive): the replay touched the DLQ", n)
	}
	if _, err := f.SQS.DeleteMessage(context.Background(), &sqsapi.DeleteMessageInput{QueueUrl: aws.String(f.DLQ), ReceiptHandle: out.Messages[0].ReceiptHandle}); err != nil {
		t.Fatal(err)
	}
	if rest := f.Drain(f.DLQ); len(rest) != 0 {
		t.Errorf("the DLQ held %d more messages: %+v", len(rest), rest)
	}
}
