// Command command is the API Gateway HTTP API handler: it validates,
// authenticates and applies commands.
// Wiring only; the logic lives in internal/.
package main

import (
	"context"
	"fmt"
	"os"

	"github.com/aws/aws-lambda-go/lambda"

	"github.com/dispatcher-dev/dispatcher/internal/app/awscfg"
	"github.com/dispatcher-dev/dispatcher/internal/app/commandfn"
)

func main() {
	ctx := context.Background()
	cfg, err := awscfg.Load(os.Getenv)
	if err != nil {
		fail(err)
	}
	h, err := commandfn.Build(ctx, cfg, os.Getenv)
	if err != nil {
		fail(err)
	}
	lambda.Start(h.Handle)
}

// fail reports a cold-start error; Lambda shows it as an init error.
func fail(err error) {
	fmt.Fprintln(os.Stderr, "command: cold start:", err)
	os.Exit(1)
}
