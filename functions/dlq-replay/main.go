// Command dlq-replay redelivers what landed in the DLQ and sweeps outbox
// items stuck undelivered.
// Wiring only; the logic lives in internal/.
package main

import (
	"context"
	"fmt"
	"os"

	"github.com/aws/aws-lambda-go/lambda"

	"github.com/dispatcher-dev/dispatcher/internal/app/awscfg"
	"github.com/dispatcher-dev/dispatcher/internal/app/replayfn"
)

func main() {
	ctx := context.Background()
	cfg, err := awscfg.Load(os.Getenv)
	if err != nil {
		fail(err)
	}
	h, err := replayfn.Build(ctx, cfg, os.Getenv)
	if err != nil {
		fail(err)
	}
	lambda.Start(h.Invoke)
}

// fail reports a cold-start error; Lambda shows it as an init error.
func fail(err error) {
	fmt.Fprintln(os.Stderr, "dlq-replay: cold start:", err)
	os.Exit(1)
}
