// Command command-consumer applies the commands queued on CommandsQueue by
// the command function in the listen-to-yourself mode.
// Wiring only; the logic lives in internal/.
package main

import (
	"context"
	"fmt"
	"os"

	"github.com/aws/aws-lambda-go/lambda"

	"github.com/dispatcher-dev/dispatcher/internal/app/awscfg"
	"github.com/dispatcher-dev/dispatcher/internal/app/consumerfn"
)

func main() {
	ctx := context.Background()
	cfg, err := awscfg.Load(os.Getenv)
	if err != nil {
		fail(err)
	}
	c, err := consumerfn.Build(ctx, cfg, os.Getenv)
	if err != nil {
		fail(err)
	}
	lambda.Start(c.Handle)
}

// fail reports a cold-start error; Lambda shows it as an init error.
func fail(err error) {
	fmt.Fprintln(os.Stderr, "command-consumer: cold start:", err)
	os.Exit(1)
}
