// Command command is the API Gateway HTTP API handler: it validates,
// authenticates and applies commands. Wiring only; the logic lives in internal/.
package main

import (
	"context"
	"net/http"

	"github.com/aws/aws-lambda-go/events"
	"github.com/aws/aws-lambda-go/lambda"
)

func main() {
	lambda.Start(handle)
}

// handle answers 501 until the command path lands (issue 3): a deployed stack
// must say plainly that it does nothing yet rather than accept and drop.
func handle(_ context.Context, _ events.APIGatewayV2HTTPRequest) (events.APIGatewayV2HTTPResponse, error) {
	return events.APIGatewayV2HTTPResponse{
		StatusCode: http.StatusNotImplemented,
		Headers:    map[string]string{"Content-Type": "application/problem+json"},
		Body:       `{"type":"about:blank","title":"Not Implemented","status":501,"detail":"the command path is not built yet"}`,
	}, nil
}
