// Command stream-relay delivers outbox items from the table's DynamoDB
// stream to SQS and SES v2.
// Wiring only; the logic lives in internal/.
package main

import (
	"context"
	"fmt"
	"os"

	"github.com/aws/aws-lambda-go/lambda"

	"github.com/dispatcher-dev/dispatcher/internal/app/awscfg"
	"github.com/dispatcher-dev/dispatcher/internal/app/deliveryfn"
)

func main() {
	ctx := context.Background()
	cfg, err := awscfg.Load(os.Getenv)
	if err != nil {
		fail(err)
	}
	h, err := deliveryfn.Build(ctx, cfg, os.Getenv)
	if err != nil {
		fail(err)
	}
	lambda.Start(h.Handle)
}

// fail reports a cold-start error; Lambda shows it as an init error.
func fail(err error) {
	fmt.Fprintln(os.Stderr, "stream-relay: cold start:", err)
	os.Exit(1)
}
