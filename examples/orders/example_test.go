package orders_test

import (
	"context"
	"errors"
	"fmt"

	"github.com/aws/aws-sdk-go-v2/service/dynamodb"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb/types"

	"github.com/dispatcher-dev/dispatcher/examples/orders"
)

// printer stands where your DynamoDB client goes (*dynamodb.Client is an
// orders.DB): it prints the one transaction PlaceOrder sends instead of
// sending it, so that the example runs without AWS.
type printer struct{}

func (printer) TransactWriteItems(_ context.Context, in *dynamodb.TransactWriteItemsInput, _ ...func(*dynamodb.Options)) (*dynamodb.TransactWriteItemsOutput, error) {
	fmt.Println("one TransactWriteItems of", len(in.TransactItems), "writes:")
	for _, it := range in.TransactItems {
		s := func(k string) string { return it.Put.Item[k].(*types.AttributeValueMemberS).Value }
		var key string
		if _, outboxItem := it.Put.Item["sk"]; outboxItem {
			key = s("sk") + " " + s("eventType")
		} else {
			key = "orderId=" + s("orderId")
		}
		fmt.Printf("  %s: %s if %s\n", *it.Put.TableName, key, *it.Put.ConditionExpression)
	}
	return &dynamodb.TransactWriteItemsOutput{}, nil
}

// Placing an order writes the order to the service's own table and its
// event and confirmation email to Dispatcher's, in one transaction.
func ExampleService_PlaceOrder() {
	svc, err := orders.New(printer{}, orders.Config{OrdersTable: "Orders", DispatcherTable: "dispatcher-OutboxTable"})
	if err != nil {
		fmt.Println(err)
		return
	}
	ids, err := svc.PlaceOrder(context.Background(), orders.Order{ID: "o-1001", Email: "ada@example.com", Name: "Ada", Total: "42.00"})
	fmt.Println(len(ids), "event ids,", err)
	// Output:
	// one TransactWriteItems of 3 writes:
	//   Orders: orderId=o-1001 if attribute_not_exists(orderId)
	//   dispatcher-OutboxTable: OUTBOX#00000000000000000001#000 OrderPlaced if attribute_not_exists(pk)
	//   dispatcher-OutboxTable: OUTBOX#00000000000000000001#001 email.order-confirmation if attribute_not_exists(pk)
	// 2 event ids, <nil>
}

// Bad input is refused before anything is sent, with a message for the
// caller.
func ExampleKindOf() {
	svc, _ := orders.New(printer{}, orders.Config{OrdersTable: "Orders", DispatcherTable: "dispatcher-OutboxTable"})
	_, err := svc.PlaceOrder(context.Background(), orders.Order{ID: "o-1002", Email: "not an address", Name: "Ada", Total: "42.00"})
	var e *orders.Error
	fmt.Println(orders.KindOf(err) == orders.Invalid, errors.As(err, &e) && e.Msg != "")
	// Output:
	// true true
}
