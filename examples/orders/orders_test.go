package orders_test

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"slices"
	"strings"
	"sync"
	"testing"
	"testing/fstest"

	"github.com/aws/aws-lambda-go/events"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb"

	"github.com/dispatcher-dev/dispatcher/examples/orders"
	"github.com/dispatcher-dev/dispatcher/internal/obs"
	"github.com/dispatcher-dev/dispatcher/internal/testkit/flowtest"
	"github.com/dispatcher-dev/dispatcher/internal/testkit/testenv"
	"github.com/dispatcher-dev/dispatcher/outbox"
)

func place(id string) orders.Order {
	return orders.Order{ID: id, Email: id + "@example.com", Name: "Ada", Total: "42.00"}
}

// (a) An order placed through the Lambda's handler: the relay publishes its
// OrderPlaced CloudEvent and sends the confirmation rendered from the
// example's own template.
func TestAPlacedOrderIsDeliveredAsAnEventAndAnEmailFromItsOwnTemplate(t *testing.T) {
	w := setup(t)
	id := flowtest.Unique("o")
	h := orders.Handler{Orders: w.Orders, Log: obs.NewLogger(w.Logs, 0)}
	resp, err := h.PlaceOrder(context.Background(), events.APIGatewayV2HTTPRequest{
		Body: fmt.Sprintf(`{"orderId":%q,"email":"%s@example.com","name":"Ada <b>","total":"42.00"}`, id, id),
	})
	if err != nil || resp.StatusCode != http.StatusCreated {
		t.Fatalf("place-order answered %d %s, %v", resp.StatusCode, resp.Body, err)
	}
	var placed orders.Placed
	if err := json.Unmarshal([]byte(resp.Body), &placed); err != nil || len(placed.EventIDs) != 2 {
		t.Fatalf("answer %s: want the order id and 2 event ids", resp.Body)
	}
	if got := w.order(t, id); got["version"] != "1" || got["status"] != "PLACED" || got["total"] != "42.00" {
		t.Errorf("the Orders table holds %v, want the order at version 1", got)
	}

	w.deliver(t, id)
	evs := w.events(id)[id]
	if len(evs) != 1 || evs[0].Type != "OrderPlaced" || evs[0].ID != placed.EventIDs[0] || evs[0].Version != 1 ||
		evs[0].Data["orderId"] != id || evs[0].Data["total"] != "42.00" {
		t.Errorf("events %+v, want one OrderPlaced of version 1 with id %s and the order's data", evs, placed.EventIDs[0])
	}
	mails := emailsTo(t, id+"@example.com")
	if len(mails) != 1 {
		t.Fatalf("%d emails to the customer, want 1", len(mails))
	}
	if want := "Order " + id + " is confirmed"; mails[0].Subject != want {
		t.Errorf("subject %q, want the example template's %q", mails[0].Subject, want)
	}
	if !strings.Contains(mails[0].Body.HTML, "Hello Ada &lt;b&gt;,") {
		t.Errorf("HTML body %q: want the template's, with the name escaped", mails[0].Body.HTML)
	}
	w.delivered(t, id)
}

// (b) Orders placed and shipped in several parcels, interleaved: each
// order's events arrive in version order, even when the stream hands the
// relay the latest versions first.
func TestEachOrdersEventsArriveInVersionOrder(t *testing.T) {
	w := setup(t)
	ctx := context.Background()
	ids := []string{flowtest.Unique("a"), flowtest.Unique("b"), flowtest.Unique("c")}
	carriers := []string{"DHL", "UPS", "GLS"}
	for _, id := range ids {
		if _, err := w.Orders.PlaceOrder(ctx, place(id)); err != nil {
			t.Fatal(err)
		}
	}
	// Parcel p of every order, order after order: versions 2 and 3.
	for p, carrier := range carriers[:2] {
		for _, id := range ids {
			if _, err := w.Orders.ShipOrder(ctx, id, int64(p+1), carrier); err != nil {
				t.Fatal(err)
			}
		}
	}
	all := w.Batch(ids...)
	// The latest version first: the relay takes each order's earlier
	// versions on before it.
	for v := int64(3); v >= 1; v-- {
		var batch events.DynamoDBEvent
		for _, r := range flowtest.OutboxRecords(all) {
			if strings.HasPrefix(r.Change.Keys["sk"].String(), outbox.SortKey(v, 0)[:len("OUTBOX#")+20]) {
				batch.Records = append(batch.Records, r)
			}
		}
		if resp := w.Handle(batch); len(resp.BatchItemFailures) != 0 {
			t.Fatalf("version %d: failures %+v", v, resp.BatchItemFailures)
		}
	}
	got := w.events(ids...)
	for _, id := range ids {
		var seen []string
		for _, e := range got[id] {
			seen = append(seen, fmt.Sprintf("%d %s %v", e.Version, e.Type, e.Data["carrier"]))
		}
		want := []string{"1 OrderPlaced <nil>", "2 OrderShipped DHL", "3 OrderShipped UPS"}
		if !slices.Equal(seen, want) {
			t.Errorf("order %s: events %q, want %q", id, seen, want)
		}
		if n := len(emailsTo(t, id+"@example.com")); n != 1 {
			t.Errorf("order %s: %d emails, want 1", id, n)
		}
		if o := w.order(t, id); o["version"] != "3" || o["carrier"] != "UPS" {
			t.Errorf("order %s: %v, want version 3 shipped with UPS", id, o)
		}
	}
	w.delivered(t, ids...)
}

// (c) A transaction whose own condition fails writes nothing in either
// table, and the relay delivers only what committed.
func TestAFailedConditionWritesNeitherTheOrderNorItsOutboxItems(t *testing.T) {
	w := setup(t)
	ctx := context.Background()

	t.Run("the same order placed twice is already placed", func(t *testing.T) {
		id := flowtest.Unique("twice")
		first, err := w.Orders.PlaceOrder(ctx, place(id))
		if err != nil {
			t.Fatal(err)
		}
		before := w.outboxKeys(id)
		again := place(id)
		again.Total = "99.00"
		_, err = w.Orders.PlaceOrder(ctx, again)
		if orders.KindOf(err) != orders.AlreadyPlaced || !strings.Contains(err.Error(), "already placed") {
			t.Fatalf("placing %s again: %v, want an AlreadyPlaced error", id, err)
		}
		if o := w.order(t, id); o["total"] != "42.00" {
			t.Errorf("the order holds total %s, want the first 42.00", o["total"])
		}
		if after := w.outboxKeys(id); !slices.Equal(after, before) || len(after) != 2 {
			t.Errorf("outbox items %q after the refused placing, want the first's %q", after, before)
		}
		w.deliver(t, id)
		if evs := w.events(id)[id]; len(evs) != 1 || evs[0].ID != first[0] || evs[0].Data["total"] != "42.00" {
			t.Errorf("events %+v, want only the first placing's", evs)
		}
		if n := len(emailsTo(t, id+"@example.com")); n != 1 {
			t.Errorf("%d emails, want 1", n)
		}
	})

	t.Run("shipping from a stale version is a conflict", func(t *testing.T) {
		id := flowtest.Unique("stale")
		if _, err := w.Orders.PlaceOrder(ctx, place(id)); err != nil {
			t.Fatal(err)
		}
		if _, err := w.Orders.ShipOrder(ctx, id, 1, "DHL"); err != nil {
			t.Fatal(err)
		}
		before := w.outboxKeys(id)
		_, err := w.Orders.ShipOrder(ctx, id, 1, "UPS") // read before the first shipping
		if orders.KindOf(err) != orders.Conflict {
			t.Fatalf("shipping from version 1 again: %v, want a Conflict", err)
		}
		if o := w.order(t, id); o["version"] != "2" || o["carrier"] != "DHL" {
			t.Errorf("order %v, want version 2 shipped with DHL", o)
		}
		if after := w.outboxKeys(id); !slices.Equal(after, before) {
			t.Errorf("outbox items %q after the conflict, want %q", after, before)
		}
		if _, err := w.Orders.ShipOrder(ctx, id, 3, "UPS"); orders.KindOf(err) != orders.Conflict {
			t.Errorf("shipping from a version the order never had: %v, want a Conflict", err)
		}
		if o, after := w.order(t, id), w.outboxKeys(id); o["version"] != "2" || !slices.Equal(after, before) {
			t.Errorf("order %v, outbox items %q after the conflicts, want version 2 and %q", o, after, before)
		}
		if _, err := w.Orders.ShipOrder(ctx, flowtest.Unique("never"), 1, "DHL"); orders.KindOf(err) != orders.Conflict {
			t.Errorf("shipping an order never placed: %v, want a Conflict", err)
		}
	})

	t.Run("of concurrent changes from one read, at most one commits", func(t *testing.T) {
		id := flowtest.Unique("race")
		if _, err := w.Orders.PlaceOrder(ctx, place(id)); err != nil {
			t.Fatal(err)
		}
		carriers := []string{"DHL", "UPS", "GLS", "DPD", "FedEx"}
		ids, errs := make([]string, len(carriers)), make([]error, len(carriers))
		var wg sync.WaitGroup
		for i, c := range carriers {
			wg.Go(func() { ids[i], errs[i] = w.Orders.ShipOrder(ctx, id, 1, c) })
		}
		wg.Wait()
		winner := -1
		for i, err := range errs {
			switch {
			case err == nil && winner >= 0:
				t.Errorf("%s and %s both shipped from version 1", carriers[winner], carriers[i])
			case err == nil:
				winner = i
			case orders.KindOf(err) != orders.Conflict:
				t.Errorf("%s: %v, want a Conflict", carriers[i], err)
			}
		}
		o, items := w.order(t, id), w.outboxKeys(id)
		if winner < 0 {
			t.Logf("no change won (every one met a transaction in flight)")
			if o["version"] != "1" || len(items) != 2 {
				t.Errorf("order %v and outbox items %q, want version 1 and its 2 items", o, items)
			}
			return
		}
		if o["version"] != "2" || o["carrier"] != carriers[winner] || len(items) != 3 || items[2] != outbox.SortKey(2, 0)+" "+ids[winner] {
			t.Errorf("order %v and outbox items %q, want version 2 by %s, its event %s", o, items, carriers[winner], ids[winner])
		}
	})

	// Another writer already wrote version 2 of the order's outbox items:
	// the order's own update, whose condition holds, is not committed either.
	t.Run("an outbox item's failed condition cancels the order's change", func(t *testing.T) {
		id := flowtest.Unique("taken")
		if _, err := w.Orders.PlaceOrder(ctx, place(id)); err != nil {
			t.Fatal(err)
		}
		other, _, err := outbox.Writer{Table: w.Table}.Items(outbox.Aggregate{Type: orders.AggregateType, ID: id, Version: 2},
			outbox.Event{Type: "OrderAmended"})
		if err != nil {
			t.Fatal(err)
		}
		if _, err := w.DB.TransactWriteItems(ctx, &dynamodb.TransactWriteItemsInput{TransactItems: other}); err != nil {
			t.Fatal(err)
		}
		before := w.outboxKeys(id)
		_, err = w.Orders.ShipOrder(ctx, id, 1, "DHL")
		if orders.KindOf(err) != orders.Conflict || !strings.Contains(err.Error(), "another change wrote this version first") {
			t.Fatalf("shipping over another writer's version 2: %v, want a Conflict naming the outbox item", err)
		}
		if o := w.order(t, id); o["version"] != "1" || o["status"] != "PLACED" || o["carrier"] != "" {
			t.Errorf("order %v, want it untouched at version 1", o)
		}
		if after := w.outboxKeys(id); !slices.Equal(after, before) {
			t.Errorf("outbox items %q, want %q", after, before)
		}
	})
}

// Bad input gets a 400 problem and writes nothing; an order placed before
// a 409; a failing DynamoDB a 500 whose detail stays in the log.
func TestThePlaceOrderHandlerAnswersEveryRequestWithAStatus(t *testing.T) {
	w := setup(t)
	ctx := context.Background()
	h := orders.Handler{Orders: w.Orders, Log: obs.NewLogger(w.Logs, 0)}
	id := flowtest.Unique("h")
	body := func(id, email, name, total string) string {
		return fmt.Sprintf(`{"orderId":%q,"email":%q,"name":%q,"total":%q}`, id, email, name, total)
	}
	cases := []struct {
		name, body string
		base64     bool
		status     int
		detail     string
	}{
		{"not JSON", "{", false, 400, "one JSON object"},
		{"two JSON values", body(id, "a@example.com", "Ada", "1.00") + "{}", false, 400, "one JSON object"},
		{"an unknown field", `{"orderId":"` + id + `","discount":"100%"}`, false, 400, "one JSON object"},
		{"not base64", "%%%", true, 400, "base64"},
		{"no order id", body("", "a@example.com", "Ada", "1.00"), false, 400, "orderId"},
		{"an order id that climbs a path", body("../"+id, "a@example.com", "Ada", "1.00"), false, 400, "orderId"},
		{"an order id one over the limit", body(id+strings.Repeat("x", outbox.MaxAggregateIDLen+1-len(id)), "a@example.com", "Ada", "1.00"), false, 400, "orderId"},
		{"two addresses", body(id, "a@example.com, b@example.com", "Ada", "1.00"), false, 400, "email"},
		{"an address with a display name", body(id, "Ada <a@example.com>", "Ada", "1.00"), false, 400, "email"},
		{"no name", body(id, "a@example.com", " ", "1.00"), false, 400, "name"},
		{"a total that is no amount", body(id, "a@example.com", "Ada", "1e3"), false, 400, "total"},
		{"an email too large to send", body(id, "a@example.com", strings.Repeat("A", 200<<10), "1.00"), false, 400, "cannot be rendered"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			resp, err := h.PlaceOrder(ctx, events.APIGatewayV2HTTPRequest{Body: c.body, IsBase64Encoded: c.base64})
			if err != nil || resp.StatusCode != c.status || !strings.Contains(resp.Body, c.detail) ||
				resp.Headers["Content-Type"] != "application/problem+json" {
				t.Errorf("answered %d %s (%v), want %d naming %q", resp.StatusCode, resp.Body, err, c.status, c.detail)
			}
		})
	}
	if o := w.order(t, id); o != nil {
		t.Errorf("bad input wrote the order %v", o)
	}
	if items := w.Items(id); len(items) != 0 {
		t.Errorf("bad input wrote %d outbox items", len(items))
	}

	t.Run("the limit itself is accepted", func(t *testing.T) {
		long := id + strings.Repeat("x", outbox.MaxAggregateIDLen-len(id))
		resp, _ := h.PlaceOrder(ctx, events.APIGatewayV2HTTPRequest{Body: body(long, "a@example.com", "Ada", "1.00")})
		if resp.StatusCode != http.StatusCreated {
			t.Errorf("an order id of %d characters: %d %s, want 201", len(long), resp.StatusCode, resp.Body)
		}
	})
	t.Run("an order placed before", func(t *testing.T) {
		placed := flowtest.Unique("h")
		req := events.APIGatewayV2HTTPRequest{Body: body(placed, "a@example.com", "Ada", "1.00")}
		if resp, _ := h.PlaceOrder(ctx, req); resp.StatusCode != http.StatusCreated {
			t.Fatalf("first: %d %s", resp.StatusCode, resp.Body)
		}
		resp, _ := h.PlaceOrder(ctx, req)
		if resp.StatusCode != http.StatusConflict || !strings.Contains(resp.Body, "already placed") {
			t.Errorf("again: %d %s, want 409 already placed", resp.StatusCode, resp.Body)
		}
	})
	t.Run("DynamoDB failing", func(t *testing.T) {
		broken, err := orders.New(w.DB, orders.Config{OrdersTable: "NoSuchTable", DispatcherTable: w.Table})
		if err != nil {
			t.Fatal(err)
		}
		w.Logs.Reset()
		h := orders.Handler{Orders: broken, Log: obs.NewLogger(w.Logs, 0)}
		resp, err := h.PlaceOrder(ctx, events.APIGatewayV2HTTPRequest{Body: body(flowtest.Unique("h"), "a@example.com", "Ada", "1.00")})
		if err != nil || resp.StatusCode != http.StatusInternalServerError || strings.Contains(resp.Body, "NoSuchTable") {
			t.Errorf("answered %d %s (%v), want a 500 without the cause", resp.StatusCode, resp.Body, err)
		}
		if !strings.Contains(w.Logs.String(), "place order failed") || !strings.Contains(w.Logs.String(), "ResourceNotFound") {
			t.Errorf("the cause is not logged: %s", w.Logs)
		}
	})
}

// A broken template set fails when the service is built (a Lambda's cold
// start), never at the first order.
func TestABrokenTemplateSetFailsAtStart(t *testing.T) {
	if _, err := orders.New(nil, orders.Config{OrdersTable: "Orders", DispatcherTable: "d"}); err != nil {
		t.Fatalf("the example's own templates: %v", err)
	}
	good := fstest.MapFS{
		"order-confirmation/subject.txt": {Data: []byte("Order {{.orderId}}")},
		"order-confirmation/body.txt":    {Data: []byte("Hi {{.name}}")},
		"order-confirmation/body.html":   {Data: []byte("<p>Hi {{.name}}</p>")},
	}
	for _, c := range []struct {
		name string
		fsys fstest.MapFS
		want string
	}{
		{"a template that does not parse", with(good, "order-confirmation/body.txt", "Hi {{.name"), "body.txt"},
		{"a stray file", with(good, "order-confirmation/body.md", "x"), "body.md"},
		{"no confirmation", fstest.MapFS{
			"welcome/subject.txt": good["order-confirmation/subject.txt"], "welcome/body.txt": good["order-confirmation/body.txt"],
			"welcome/body.html": good["order-confirmation/body.html"],
		}, `no "order-confirmation"`},
	} {
		t.Run(c.name, func(t *testing.T) {
			_, err := orders.New(nil, orders.Config{OrdersTable: "Orders", DispatcherTable: "d", Templates: c.fsys})
			if err == nil || !strings.Contains(err.Error(), "orders: templates") || !strings.Contains(err.Error(), c.want) {
				t.Errorf("New: %v, want an error naming %q", err, c.want)
			}
		})
	}
	if _, err := orders.New(nil, orders.Config{OrdersTable: "Orders", DispatcherTable: "d", Templates: good}); err != nil {
		t.Errorf("a good set: %v", err)
	}
	if _, err := orders.New(nil, orders.Config{DispatcherTable: "d"}); err == nil || !strings.Contains(err.Error(), "ORDERS_TABLE") {
		t.Errorf("no Orders table: %v, want an error naming ORDERS_TABLE", err)
	}
}

func with(fsys fstest.MapFS, name, body string) fstest.MapFS {
	out := fstest.MapFS{}
	for k, v := range fsys {
		out[k] = v
	}
	out[name] = &fstest.MapFile{Data: []byte(body)}
	return out
}

// cancelling answers every TransactWriteItems as DynamoDB answers a
// transaction cancelled for reasons, below the SDK: the emulators never
// cancel one for a transaction in flight (they run them one at a time).
type cancelling []string

func (reasons cancelling) RoundTrip(req *http.Request) (*http.Response, error) {
	if req.Header.Get("X-Amz-Target") != "DynamoDB_20120810.TransactWriteItems" {
		return http.DefaultTransport.RoundTrip(req)
	}
	var rs []map[string]string
	for _, r := range reasons {
		rs = append(rs, map[string]string{"Code": r})
	}
	body, _ := json.Marshal(map[string]any{
		"__type":              "com.amazonaws.dynamodb.v20120810#TransactionCanceledException",
		"message":             "Transaction cancelled, please refer cancellation reasons for specific reasons [" + strings.Join(reasons, ", ") + "]",
		"CancellationReasons": rs,
	})
	return &http.Response{StatusCode: http.StatusBadRequest, Status: "400 Bad Request", Proto: "HTTP/1.1", ProtoMajor: 1, ProtoMinor: 1,
		Header: http.Header{"Content-Type": {"application/x-amz-json-1.0"}},
		Body:   io.NopCloser(bytes.NewReader(body)), ContentLength: int64(len(body)), Request: req}, nil
}

// A transaction cancelled because another one on the same items was in
// flight is a conflict (read again and retry), not a failure of the
// service; any other cancellation is.
func TestACancellationByATransactionInFlightIsAConflict(t *testing.T) {
	env := testenv.Get(t)
	for _, c := range []struct {
		reasons []string
		kind    orders.Kind
		status  int
	}{
		{[]string{"None", "TransactionConflict", "None"}, orders.Conflict, http.StatusConflict},
		{[]string{"None", "ThrottlingError", "None"}, orders.Internal, http.StatusInternalServerError},
	} {
		t.Run(strings.Join(c.reasons, ","), func(t *testing.T) {
			cfg := env.AWS.Copy()
			cfg.HTTPClient = &http.Client{Transport: cancelling(c.reasons)}
			svc, err := orders.New(dynamodb.NewFromConfig(cfg), orders.Config{OrdersTable: ordersTable, DispatcherTable: "d"})
			if err != nil {
				t.Fatal(err)
			}
			if _, err := svc.ShipOrder(context.Background(), "o-1", 1, "DHL"); orders.KindOf(err) != c.kind {
				t.Errorf("ShipOrder: %v, want kind %d", err, c.kind)
			}
			h := orders.Handler{Orders: svc, Log: obs.NewLogger(io.Discard, 0)}
			resp, _ := h.PlaceOrder(context.Background(), events.APIGatewayV2HTTPRequest{Body: `{"orderId":"o-1","email":"a@example.com","name":"Ada","total":"1.00"}`})
			if resp.StatusCode != c.status {
				t.Errorf("place-order answered %d %s, want %d", resp.StatusCode, resp.Body, c.status)
			}
		})
	}
}
