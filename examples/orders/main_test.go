package orders_test

import (
	"context"
	"fmt"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb/types"

	"github.com/dispatcher-dev/dispatcher/examples/orders"
	"github.com/dispatcher-dev/dispatcher/internal/testkit/flowtest"
	"github.com/dispatcher-dev/dispatcher/internal/testkit/testenv"
)

// The tests run the example against the local AWS of the repository's own
// tests (the emulators, or moto with DISPATCHER_BACKEND=moto): Dispatcher's
// table as the stack provisions it, the user's Orders table beside it, and
// the real relay fed from the real stream.
func TestMain(m *testing.M) { testenv.Main(m) }

// ordersTable is the user's own table, with its own key schema.
const ordersTable = "Orders"

var createOrders sync.Once

// world is one test's view: the relay's fixture (Dispatcher's table, its
// stream, the queues, the SES store) and the example's service.
type world struct {
	*flowtest.Fixture
	Orders *orders.Service
}

func setup(t *testing.T) world {
	t.Helper()
	f := flowtest.New(t, nil)
	createOrders.Do(func() {
		ctx := context.Background()
		_, err := f.DB.CreateTable(ctx, &dynamodb.CreateTableInput{
			TableName:            aws.String(ordersTable),
			BillingMode:          types.BillingModePayPerRequest,
			AttributeDefinitions: []types.AttributeDefinition{{AttributeName: aws.String("orderId"), AttributeType: types.ScalarAttributeTypeS}},
			KeySchema:            []types.KeySchemaElement{{AttributeName: aws.String("orderId"), KeyType: types.KeyTypeHash}},
		})
		if err == nil {
			err = dynamodb.NewTableExistsWaiter(f.DB).Wait(ctx, &dynamodb.DescribeTableInput{TableName: aws.String(ordersTable)}, 30*time.Second)
		}
		if err != nil {
			t.Fatalf("create the Orders table: %v", err)
		}
	})
	svc, err := orders.New(f.DB, orders.Config{OrdersTable: ordersTable, DispatcherTable: f.Table})
	if err != nil {
		t.Fatal(err)
	}
	return world{f, svc}
}

// order reads an order from the Orders table (nil when absent).
func (w world) order(t *testing.T, id string) map[string]string {
	t.Helper()
	out, err := w.DB.GetItem(context.Background(), &dynamodb.GetItemInput{
		TableName: aws.String(ordersTable), ConsistentRead: aws.Bool(true),
		Key: map[string]types.AttributeValue{"orderId": &types.AttributeValueMemberS{Value: id}},
	})
	if err != nil {
		t.Fatal(err)
	}
	if out.Item == nil {
		return nil
	}
	return flowtest.Scalars(out.Item)
}

// outboxKeys lists the sort key and event id of every outbox item of an
// order, in key order.
func (w world) outboxKeys(id string) []string {
	var out []string
	for _, it := range w.Items(id) {
		out = append(out, flowtest.S(it, "sk")+" "+flowtest.S(it, "eventId"))
	}
	return out
}

// deliver runs the relay on every stream record of the orders, in stream
// order, and fails the test on a batch failure.
func (w world) deliver(t *testing.T, ids ...string) {
	t.Helper()
	if resp := w.Handle(w.Batch(ids...)); len(resp.BatchItemFailures) != 0 {
		t.Fatalf("relay: failures %+v; logs:\n%s", resp.BatchItemFailures, w.Logs)
	}
}

// delivered checks that every outbox item of the orders is DELIVERED.
func (w world) delivered(t *testing.T, ids ...string) {
	t.Helper()
	for _, id := range ids {
		for _, it := range w.Items(id) {
			if st := flowtest.S(it, "status"); st != "DELIVERED" {
				t.Errorf("%s %s: status %s, want DELIVERED; relay logs:\n%s", id, flowtest.S(it, "sk"), st, w.Logs)
			}
		}
	}
}

// event is one CloudEvent taken from the events queue.
type event struct {
	ID, Type, Subject string
	Version           int64
	Data              map[string]any
}

// events drains the events queue and keeps the events of the orders, in
// queue order, per order.
func (w world) events(ids ...string) map[string][]event {
	out := map[string][]event{}
	for _, m := range w.Drain(w.Events) {
		subject, _ := m.Body["subject"].(string)
		if !slices.Contains(ids, subject) {
			continue
		}
		v, _ := m.Body["aggregateversion"].(float64)
		data, _ := m.Body["data"].(map[string]any)
		out[subject] = append(out[subject], event{ID: fmt.Sprint(m.Body["id"]), Type: fmt.Sprint(m.Body["type"]), Subject: subject, Version: int64(v), Data: data})
	}
	return out
}

// emailsTo returns the emails in the SES store sent to addr.
func emailsTo(t *testing.T, addr string) []testenv.SentEmail {
	t.Helper()
	all, err := testenv.Get(t).SentEmails(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	var out []testenv.SentEmail
	for _, e := range all {
		if slices.Contains(e.Destination.To, addr) {
			out = append(out, e)
		}
	}
	return out
}
