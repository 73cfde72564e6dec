// Command stream-relay delivers outbox items from the table's DynamoDB
// stream to SQS and SES v2. Wiring only; the logic lives in internal/.
package main

import (
	"context"
	"errors"

	"github.com/aws/aws-lambda-go/events"
	"github.com/aws/aws-lambda-go/lambda"
)

func main() {
	lambda.Start(handle)
}

// handle fails every batch until delivery lands (issue 4): failing keeps the
// records in the stream (and sends them to the DLQ after the retries)
// instead of acknowledging what was not delivered.
func handle(_ context.Context, _ events.DynamoDBEvent) (events.DynamoDBEventResponse, error) {
	return events.DynamoDBEventResponse{}, errors.New("stream-relay: delivery is not built yet")
}
