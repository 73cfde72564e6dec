// Command place-order is the example's Lambda: POST an order, and the order
// and its outbox items are written in one transaction (package orders).
// Wiring only. Environment: ORDERS_TABLE (this service's table) and
// DISPATCHER_TABLE (the Dispatcher stack's TableName output).
package main

import (
	"context"
	"fmt"
	"log/slog"
	"os"

	"github.com/aws/aws-lambda-go/lambda"
	"github.com/aws/aws-sdk-go-v2/config"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb"

	"github.com/dispatcher-dev/dispatcher/examples/orders"
)

func main() {
	cfg, err := config.LoadDefaultConfig(context.Background())
	if err != nil {
		fail(err)
	}
	svc, err := orders.New(dynamodb.NewFromConfig(cfg), orders.Config{
		OrdersTable:     os.Getenv("ORDERS_TABLE"),
		DispatcherTable: os.Getenv("DISPATCHER_TABLE"),
	})
	if err != nil {
		fail(err)
	}
	h := orders.Handler{Orders: svc, Log: slog.New(slog.NewJSONHandler(os.Stdout, nil))}
	lambda.Start(h.PlaceOrder)
}

// fail reports a cold-start error; Lambda shows it as an init error.
func fail(err error) {
	fmt.Fprintln(os.Stderr, "place-order: cold start:", err)
	os.Exit(1)
}
