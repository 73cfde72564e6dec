package relay_test

import (
	"fmt"
	"strings"
	"testing"

	"github.com/aws/aws-lambda-go/events"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb/types"

	"github.com/dispatcher-dev/dispatcher/internal/dispatch"
	"github.com/dispatcher-dev/dispatcher/internal/testkit/flowtest"
)

// An event-sourced account's EVENT items are delivered like outbox events,
// in version order together with its OUTBOX email items, and kept: DELIVERED
// without a TTL, while the delivered emails get theirs.
func TestEventSourcedEventsAreDeliveredInOrderAndKept(t *testing.T) {
	f := flowtest.New(t, nil)
	modes, err := dispatch.ParseModes("Account=event-sourced")
	if err != nil {
		t.Fatal(err)
	}
	f.Svc.WithModes(modes)
	defer f.Svc.WithModes(dispatch.DefaultModes())
	id := unique("es")
	addr := id + "@example.com"
	f.Command(open(id, addr))
	for n := 1; n <= 3; n++ {
		f.Command(deposit(id, n*100))
	}
	f.Command(fmt.Sprintf(`{"type":"WithdrawFunds","aggregateId":%q,"data":{"amount":50,"currency":"EUR","reference":"w"}}`, id))

	ev := f.Batch(id)
	var last []events.DynamoDBEventRecord
	kinds := map[string]int{}
	for _, r := range ev.Records {
		if r.EventName != "INSERT" {
			continue
		}
		sk := r.Change.Keys["sk"].String()
		kinds[strings.SplitN(sk, "#", 2)[0]]++
		// Only version 5's items: the relay must find versions 1 to 4, EVENT
		// and OUTBOX items alike, through the order check and deliver them first.
		if strings.Contains(sk, fmt.Sprintf("%020d", 5)) {
			last = append(last, r)
		}
	}
	if kinds["STATE"] != 0 || kinds["EVENT"] != 5 || kinds["OUTBOX"] != 5 {
		t.Fatalf("inserts by kind %v, want 5 EVENT, 5 OUTBOX (emails), no STATE", kinds)
	}
	if len(last) != 2 {
		t.Fatalf("%d records of version 5, want its event and its email", len(last))
	}
	if resp := f.Handle(events.DynamoDBEvent{Records: last}); len(resp.BatchItemFailures) != 0 {
		t.Fatalf("failures %+v; logs:\n%s", resp.BatchItemFailures, f.Logs)
	}

	msgs := f.Drain(f.Events)
	if len(msgs) != 5 {
		t.Fatalf("%d events in the queue, want 5; logs:\n%s", len(msgs), f.Logs)
	}
	types5 := []string{"AccountOpened", "FundsDeposited", "FundsDeposited", "FundsDeposited", "FundsWithdrawn"}
	for i, m := range msgs {
		if m.Body["specversion"] != "1.0" || m.Body["subject"] != id || m.GroupID != id {
			t.Errorf("message %d is not a CloudEvent of %s: %v (group %q)", i, id, m.Body, m.GroupID)
		}
		if v, _ := m.Body["aggregateversion"].(float64); int(v) != i+1 || m.Body["type"] != types5[i] {
			t.Errorf("message %d: version %v type %v, want version %d %s", i, m.Body["aggregateversion"], m.Body["type"], i+1, types5[i])
		}
		// The owner's address stays in the EVENT item (its private data, for
		// the fold): no consumer of the events queue receives it.
		if strings.Contains(fmt.Sprint(m.Body), addr) {
			t.Errorf("message %d carries the owner's email: %v", i, m.Body)
		}
	}
	for _, it := range f.EventItems(id) {
		if s(it, "eventType") == "AccountOpened" && !strings.Contains(s(it, "private"), addr) {
			t.Errorf("the AccountOpened item keeps no private email for the fold: %v", it)
		}
	}
	if n := f.EmailsTo(addr); n != 5 {
		t.Errorf("%d emails sent, want 5 (welcome + 4 receipts)", n)
	}

	for _, it := range f.EventItems(id) {
		if s(it, "status") != "DELIVERED" {
			t.Errorf("%s: status %s, want DELIVERED", s(it, "sk"), s(it, "status"))
		}
		if _, ok := it["expiresAt"]; ok {
			t.Errorf("%s: a delivered EVENT item has a TTL; the history must be kept", s(it, "sk"))
		}
		for _, a := range []string{"undeliveredShard", "pendingSk"} {
			if _, ok := it[a]; ok {
				t.Errorf("%s: delivered EVENT item still has %s", s(it, "sk"), a)
			}
		}
	}
	emails := f.Items(id)
	if len(emails) != 5 {
		t.Fatalf("%d OUTBOX items, want 5 emails", len(emails))
	}
	for _, it := range emails {
		if _, ok := it["expiresAt"].(*types.AttributeValueMemberN); !ok || s(it, "status") != "DELIVERED" {
			t.Errorf("%s: status %s, TTL %v; want DELIVERED with a numeric TTL", s(it, "sk"), s(it, "status"), it["expiresAt"])
		}
	}
}
