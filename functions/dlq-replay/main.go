// Command dlq-replay redelivers what landed in the DLQ and sweeps outbox
// items stuck undelivered. Wiring only; the logic lives in internal/.
package main

import (
	"context"
	"encoding/json"
	"errors"

	"github.com/aws/aws-lambda-go/lambda"
)

func main() {
	lambda.Start(handle)
}

// handle refuses until replay lands (issue 5), so nothing is deleted from
// the DLQ by a function that cannot redeliver it.
func handle(_ context.Context, _ json.RawMessage) (json.RawMessage, error) {
	return nil, errors.New("dlq-replay: replay is not built yet")
}
