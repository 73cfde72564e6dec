// Command dlq-replay redelivers what landed in the DLQ and sweeps outbox
// items stuck undelivered. Wiring only; the logic lives in internal/.
package main

import (
	"context"
	"fmt"
	"os"

	"github.com/aws/aws-lambda-go/lambda"

	"github.com/dispatcher-dev/dispatcher/internal/app"
)

func main() {
	ctx := context.Background()
	c, err := app.LoadDeliveryConfig(os.Getenv)
	if err != nil {
		fail(err)
	}
	cfg, err := app.AWSConfig(ctx)
	if err != nil {
		fail(err)
	}
	lambda.Start(app.NewReplayHandler(ctx, cfg, c).Invoke)
}

// fail reports a cold-start error; Lambda shows it as an init error.
func fail(err error) {
	fmt.Fprintln(os.Stderr, "dlq-replay: cold start:", err)
	os.Exit(1)
}
