package outbox_test

import (
	"fmt"
	"time"

	"github.com/aws/aws-sdk-go-v2/service/dynamodb/types"

	"github.com/dispatcher-dev/dispatcher/outbox"
)

// An order service places an order in its own Orders table (key: orderId)
// and, in the same transaction, the OrderPlaced event and a confirmation
// email in Dispatcher's table. Pass the input to your DynamoDB client's
// TransactWriteItems: both tables change, or neither does.
func Example() {
	orders, dispatcher := "Orders", "dispatcher-OutboxTable" // the stack's TableName output
	cond := "attribute_not_exists(orderId)"

	// Your own write: the order, version 1, only if it does not exist yet.
	own := types.TransactWriteItem{Put: &types.Put{
		TableName: &orders,
		Item: map[string]types.AttributeValue{
			"orderId": &types.AttributeValueMemberS{Value: "o-1001"},
			"version": &types.AttributeValueMemberN{Value: "1"},
			"total":   &types.AttributeValueMemberS{Value: "42.00"},
		},
		ConditionExpression: &cond,
	}}

	w := outbox.Writer{Table: dispatcher}
	effects, eventIDs, err := w.Items(
		outbox.Aggregate{Type: "Order", ID: "o-1001", Version: 1},
		outbox.Event{Type: "OrderPlaced", Data: map[string]any{"orderId": "o-1001", "total": "42.00"}},
		outbox.Email{
			To: []string{"ada@example.com"}, Template: "order-confirmation",
			Subject: "Order o-1001 is confirmed", Text: "Thank you for your order.",
		},
	)
	if err != nil {
		fmt.Println(err) // a rule of the contract, before anything is written
		return
	}
	input := append([]types.TransactWriteItem{own}, effects...)
	// client.TransactWriteItems(ctx, &dynamodb.TransactWriteItemsInput{TransactItems: input})

	fmt.Println(len(input), "writes,", len(eventIDs), "event ids")
	for _, it := range input[1:] {
		fmt.Println(it.Put.Item[outbox.AttrSK].(*types.AttributeValueMemberS).Value, *it.Put.ConditionExpression)
	}
	// Output:
	// 3 writes, 2 event ids
	// OUTBOX#00000000000000000001#000 attribute_not_exists(pk)
	// OUTBOX#00000000000000000001#001 attribute_not_exists(pk)
}

// Items refuses what the relay would park, naming the rule, before
// anything is written.
func ExampleWriter_Items_refused() {
	w := outbox.Writer{Table: "dispatcher-OutboxTable"}
	_, _, err := w.Items(outbox.Aggregate{Type: "Order", ID: "o-1001", Version: 2},
		outbox.Email{To: []string{"ada@example.com"}, Template: "order-shipped", Subject: "Shipped\r\nBcc: eve@example.com", Text: "On its way."})
	rule, _ := outbox.RuleOf(err)
	fmt.Println(rule)
	fmt.Println(err)
	// Output:
	// invalid-envelope
	// effect 0: outbox: invalid-envelope: email: the subject holds U+000D
}

// The version is yours: with an optimistic lock on your own item, the
// next change writes version+1, and its outbox items commit with it or not
// at all.
func ExampleWriter_Items_nextVersion() {
	w := outbox.Writer{Table: "dispatcher-OutboxTable", Now: func() time.Time { return time.Date(2026, 12, 7, 9, 0, 0, 0, time.UTC) }}
	read := int64(4) // the version your conditional update expects
	effects, _, err := w.Items(outbox.Aggregate{Type: "Order", ID: "o-1001", Version: read + 1},
		outbox.Event{Type: "OrderShipped", Data: struct {
			Carrier string `json:"carrier"`
		}{"DHL"}})
	if err != nil {
		fmt.Println(err)
		return
	}
	item := effects[0].Put.Item
	for _, k := range []string{outbox.AttrSK, outbox.AttrPendingSK, outbox.AttrPayload, outbox.AttrCreatedAt} {
		fmt.Println(k, item[k].(*types.AttributeValueMemberS).Value)
	}
	// Output:
	// sk OUTBOX#00000000000000000005#000
	// pendingSk OUTBOX#00000000000000000005#000
	// payload {"data":{"carrier":"DHL"}}
	// createdAt 2026-12-07T09:00:00Z
}

// ParseKey takes only the canonical key: a version without its padding
// would never be claimed or marked by the relay.
func ExampleParseKey() {
	_, _, _, err := outbox.ParseKey("AGG#o-1001", "OUTBOX#1#0")
	fmt.Println(err != nil)
	id, version, seq, _ := outbox.ParseKey("AGG#o-1001", outbox.SortKey(1, 0))
	fmt.Println(id, version, seq)
	// Output:
	// true
	// o-1001 1 0
}
