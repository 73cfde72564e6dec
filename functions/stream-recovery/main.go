// Command stream-recovery delivers, with no person, what the stream event
// source mapping gave up on: it takes the mapping's on-failure records from
// their queue and redelivers their undelivered items, in order.
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
	h, err := replayfn.BuildRecovery(ctx, cfg, os.Getenv)
	if err != nil {
		fail(err)
	}
	lambda.Start(h.Recover)
}

// fail reports a cold-start error; Lambda shows it as an init error.
func fail(err error) {
	fmt.Fprintln(os.Stderr, "stream-recovery: cold start:", err)
	os.Exit(1)
}
