package relay_test

import (
	"encoding/json"
	"github.com/dispatcher-dev/dispatcher/internal/testkit/samples"
	"testing"

	"github.com/aws/aws-lambda-go/events"

	"github.com/dispatcher-dev/dispatcher/internal/testkit/flowtest"
)

// relaySamples are the real AWS event samples of testdata/samples (see its
// README.md), each with the number of DynamoDB records it decodes to. None is
// an outbox INSERT of this table, so the relay must ignore every one cleanly.
var relaySamples = []struct {
	file    string
	records int // records in the sample once decoded as a DynamoDBEvent
}{
	{"sam-dynamodb-update.json", 3},          // INSERT, MODIFY, REMOVE of a table keyed by Id (N)
	{"aws-lambda-go-dynamodb-event.json", 2}, // two INSERTs of a table keyed by key/val
	// An SQS event's "Records" decode to DynamoDB records with no event name,
	// no keys and no sequence number: one each here.
	{"sam-sqs-receive-message.json", 1},
	{"aws-lambda-go-sqs-event.json", 1},
	{"sam-apigateway-http-api-proxy.json", 0},
	{"aws-lambda-go-apigw-v2-request-no-authorizer.json", 0},
	{"aws-lambda-go-apigw-v2-request-iam.json", 0},
	{"aws-lambda-go-apigw-v2-request-jwt-authorizer.json", 0},
	{"aws-lambda-go-apigw-v2-request-lambda-authorizer.json", 0},
}

// The table above and the samples folder must agree: a sample added without
// an expected outcome, or a table that lost its samples, fails.
func TestSamplesFolderMatchesTheTable(t *testing.T) {
	var names []string
	for _, s := range relaySamples {
		names = append(names, s.file)
	}
	samples.MatchFolder(t, names)
}

// Real AWS samples that are not outbox INSERTs of this table (other tables'
// stream records, SQS and HTTP API events read as DynamoDB events) are
// ignored cleanly: no batch item failure, nothing delivered, nothing parked.
func TestSampleEventsAreIgnoredCleanly(t *testing.T) {
	f := flowtest.New(t, nil) // drains the events queue and the DLQ
	for _, s := range relaySamples {
		t.Run(s.file, func(t *testing.T) {
			raw := samples.Read(t, s.file)
			var ev events.DynamoDBEvent
			if err := json.Unmarshal(raw, &ev); err != nil {
				t.Fatalf("decoding the sample as a DynamoDBEvent: %v", err)
			}
			if len(ev.Records) != s.records {
				t.Fatalf("the sample decodes to %d records, want %d", len(ev.Records), s.records)
			}
			if n := len(flowtest.OutboxRecords(ev)); n != 0 {
				t.Fatalf("the sample holds %d outbox INSERTs, want none", n)
			}
			var resp events.DynamoDBEventResponse
			func() {
				defer func() {
					if p := recover(); p != nil {
						t.Fatalf("Handle panicked: %v", p)
					}
				}()
				resp = f.Handle(ev)
			}()
			if len(resp.BatchItemFailures) != 0 {
				t.Errorf("batch item failures %+v, want none\nlogs:\n%s", resp.BatchItemFailures, f.Logs)
			}
			if sent := f.Drain(f.Events); len(sent) != 0 {
				t.Errorf("%d messages sent to the events queue, want none: %+v", len(sent), sent)
			}
			if parked := f.Drain(f.DLQ); len(parked) != 0 {
				t.Errorf("%d messages parked in the DLQ, want none: %+v", len(parked), parked)
			}
		})
	}
}
