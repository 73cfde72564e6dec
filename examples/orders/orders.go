// Package orders is a user's own order service, written the way the outbox
// package is meant to be used: its state lives in its own Orders table
// (key: orderId, nothing of Dispatcher's layout), and every change of an
// order commits, in the SAME TransactWriteItems, the outbox items that
// Dispatcher's relay then delivers: an OrderPlaced event and a confirmation
// email rendered from this service's own templates, then an OrderShipped
// event per parcel. Both tables change or neither does.
//
// The order's version is the outbox aggregate's version: placing writes
// version 1, each later change a conditional update from the version read to
// the next, so the relay delivers an order's events in the order they
// happened.
package orders

import (
	"context"
	"embed"
	"errors"
	"fmt"
	"io/fs"
	"regexp"
	"strconv"
	"strings"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb/types"

	"github.com/dispatcher-dev/dispatcher/emailtemplate"
	"github.com/dispatcher-dev/dispatcher/outbox"
)

// AggregateType is the outbox aggregate type of an order.
const AggregateType = "Order"

// Confirmation is the template of the email sent when an order is placed
// (templates/order-confirmation).
const Confirmation = "order-confirmation"

//go:embed templates
var embedded embed.FS

// Order is what a customer places.
type Order struct {
	ID    string `json:"orderId"` // also its outbox aggregate id
	Email string `json:"email"`
	Name  string `json:"name"`
	Total string `json:"total"` // formatted: "42.00"
}

var amount = regexp.MustCompile(`^[0-9]+\.[0-9]{2}$`)

func (o Order) validate() error {
	switch {
	case !outbox.ValidAggregateID(o.ID):
		return fmt.Errorf("orderId: want 1 to %d of [A-Za-z0-9_-], starting with a letter or digit", outbox.MaxAggregateIDLen)
	case strings.TrimSpace(o.Name) == "":
		return errors.New("name: required")
	case !amount.MatchString(o.Total):
		return errors.New(`total: want an amount such as "42.00"`)
	}
	if addr, err := outbox.ParseAddress(o.Email); err != nil || addr != o.Email {
		return errors.New("email: want one address, such as ada@example.com")
	}
	return nil
}

// DB is what the service needs of a DynamoDB client.
type DB interface {
	TransactWriteItems(context.Context, *dynamodb.TransactWriteItemsInput, ...func(*dynamodb.Options)) (*dynamodb.TransactWriteItemsOutput, error)
}

// Config names the tables; Templates replaces the embedded templates (nil
// keeps them).
type Config struct {
	OrdersTable     string // ORDERS_TABLE: this service's own table
	DispatcherTable string // DISPATCHER_TABLE: the Dispatcher stack's TableName output
	Templates       fs.FS
}

// Service places and ships orders.
type Service struct {
	db        DB
	table     string
	outbox    outbox.Writer
	templates *emailtemplate.Set
}

// New loads the templates once: a broken set, or one without the
// confirmation, fails here (at a Lambda's cold start), not at the first
// order.
func New(db DB, c Config) (*Service, error) {
	if c.OrdersTable == "" || c.DispatcherTable == "" {
		return nil, errors.New("orders: both tables are required (ORDERS_TABLE, DISPATCHER_TABLE)")
	}
	fsys := c.Templates
	if fsys == nil {
		sub, err := fs.Sub(embedded, "templates")
		if err != nil {
			return nil, fmt.Errorf("orders: templates: %w", err)
		}
		fsys = sub
	}
	set, err := emailtemplate.LoadFS(fsys)
	if err != nil {
		return nil, fmt.Errorf("orders: templates: %w", err)
	}
	if !set.Has(Confirmation) {
		return nil, fmt.Errorf("orders: templates: no %q among %v", Confirmation, set.Names())
	}
	return &Service{db: db, table: c.OrdersTable, outbox: outbox.Writer{Table: c.DispatcherTable}, templates: set}, nil
}

// PlaceOrder writes the order at version 1 with its OrderPlaced event and
// confirmation email, and returns their event ids. An order placed before
// is an AlreadyPlaced error, and nothing is written.
func (s *Service) PlaceOrder(ctx context.Context, o Order) ([]string, error) {
	const op = "orders.PlaceOrder"
	if err := o.validate(); err != nil {
		return nil, &Error{Op: op, Kind: Invalid, Msg: err.Error()}
	}
	data := map[string]any{"orderId": o.ID, "name": o.Name, "total": o.Total}
	mail, err := s.templates.Email(Confirmation, []string{o.Email}, data)
	if err != nil {
		return nil, &Error{Op: op, Kind: Invalid, Msg: "the confirmation cannot be rendered from this order", Err: err}
	}
	effects, ids, err := s.outbox.Items(outbox.Aggregate{Type: AggregateType, ID: o.ID, Version: 1},
		outbox.Event{Type: "OrderPlaced", Data: map[string]any{"orderId": o.ID, "total": o.Total}},
		mail)
	if err != nil {
		return nil, &Error{Op: op, Kind: Invalid, Msg: "the order's outbox items break the contract", Err: err}
	}
	put := types.TransactWriteItem{Put: &types.Put{
		TableName: &s.table,
		Item: map[string]types.AttributeValue{
			"orderId": str(o.ID), "email": str(o.Email), "name": str(o.Name), "total": str(o.Total),
			"status": str("PLACED"), "version": num(1),
		},
		ConditionExpression: aws.String("attribute_not_exists(orderId)"),
	}}
	return ids, s.commit(ctx, op, o.ID, put, effects, AlreadyPlaced)
}

// ShipOrder records a parcel of the order sent with carrier, if the order
// is still at version read (an optimistic lock), as version read+1 with its
// OrderShipped event, and returns the event's id. An order that changed
// since it was read, or does not exist, is a Conflict error, and nothing is
// written.
func (s *Service) ShipOrder(ctx context.Context, orderID string, read int64, carrier string) (string, error) {
	const op = "orders.ShipOrder"
	switch {
	case !outbox.ValidAggregateID(orderID):
		return "", &Error{Op: op, Kind: Invalid, Msg: "orderId: not an order id"}
	case read < 1:
		return "", &Error{Op: op, Kind: Invalid, Msg: "version: want the version read, 1 or more"}
	case strings.TrimSpace(carrier) == "":
		return "", &Error{Op: op, Kind: Invalid, Msg: "carrier: required"}
	}
	next := read + 1
	effects, ids, err := s.outbox.Items(outbox.Aggregate{Type: AggregateType, ID: orderID, Version: next},
		outbox.Event{Type: "OrderShipped", Data: map[string]any{"orderId": orderID, "carrier": carrier}})
	if err != nil {
		return "", &Error{Op: op, Kind: Invalid, Msg: "the order's outbox items break the contract", Err: err}
	}
	update := types.TransactWriteItem{Update: &types.Update{
		TableName:                 &s.table,
		Key:                       map[string]types.AttributeValue{"orderId": str(orderID)},
		UpdateExpression:          aws.String("SET #version = :next, #status = :shipped, carrier = :carrier"),
		ConditionExpression:       aws.String("#version = :read"),
		ExpressionAttributeNames:  map[string]string{"#version": "version", "#status": "status"},
		ExpressionAttributeValues: map[string]types.AttributeValue{":read": num(read), ":next": num(next), ":shipped": str("SHIPPED"), ":carrier": str(carrier)},
	}}
	if err := s.commit(ctx, op, orderID, update, effects, Conflict); err != nil {
		return "", err
	}
	return ids[0], nil
}

// commit writes the order's own change and its outbox items in one
// transaction. When it is cancelled, the reasons say which condition
// failed: the order's own (the first item: ownFailed), or an outbox item's
// (another change already wrote this version of the order), or a
// concurrent transaction on the same items.
func (s *Service) commit(ctx context.Context, op, orderID string, own types.TransactWriteItem, effects []types.TransactWriteItem, ownFailed Kind) error {
	items := append([]types.TransactWriteItem{own}, effects...)
	_, err := s.db.TransactWriteItems(ctx, &dynamodb.TransactWriteItemsInput{TransactItems: items})
	if err == nil {
		return nil
	}
	var cancelled *types.TransactionCanceledException
	if errors.As(err, &cancelled) {
		for i, r := range cancelled.CancellationReasons {
			switch code := aws.ToString(r.Code); {
			case code == "ConditionalCheckFailed" && i == 0:
				return &Error{Op: op, Kind: ownFailed, Msg: ownFailed.explain(orderID), Err: err}
			case code == "ConditionalCheckFailed":
				return &Error{Op: op, Kind: Conflict, Msg: "order " + orderID + ": another change wrote this version first", Err: err}
			case code == "TransactionConflict":
				// Another transaction on the same items was in flight: read
				// the order again and retry.
				return &Error{Op: op, Kind: Conflict, Msg: "order " + orderID + ": another change was in flight; read it again", Err: err}
			}
		}
	}
	return &Error{Op: op, Kind: Internal, Err: err}
}

func str(v string) types.AttributeValue { return &types.AttributeValueMemberS{Value: v} }
func num(v int64) types.AttributeValue {
	return &types.AttributeValueMemberN{Value: strconv.FormatInt(v, 10)}
}
