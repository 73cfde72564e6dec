package outbox_test

import (
	"encoding/json"
	"strconv"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/service/dynamodb/types"

	"github.com/dispatcher-dev/dispatcher/outbox"
)

// BenchmarkItems is what the contract's checks cost a writer: Items for an
// event and an email (validated, with index attributes), against the
// baseline of the same two items' attributes built by hand with no check
// (what a writer that skipped the package would pay). Compare the two
// sub-benchmarks of one run (benchstat or the ratio of their ns/op).
func BenchmarkItems(b *testing.B) {
	w := outbox.Writer{Table: "dispatcher"}
	agg := order(7)
	ev, mail := placed(), confirmation()
	b.Run("validated", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			if _, _, err := w.Items(agg, ev, mail); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("baseline-unchecked", func(b *testing.B) {
		b.ReportAllocs()
		s := func(v string) types.AttributeValue { return &types.AttributeValueMemberS{Value: v} }
		nv := func(v int64) types.AttributeValue {
			return &types.AttributeValueMemberN{Value: strconv.FormatInt(v, 10)}
		}
		for b.Loop() {
			now := time.Now().UTC().Format(time.RFC3339Nano)
			puts := make([]types.TransactWriteItem, 0, 2)
			for seq, p := range []any{outbox.EventPayload{Data: ev.Data.(map[string]any)},
				outbox.EmailPayload{To: []string{"ada@example.com"}, Template: mail.Template, Subject: mail.Subject, Text: mail.Text}} {
				raw, _ := json.Marshal(p)
				id := outbox.NewEventID(time.Now())
				sk := outbox.SortKey(agg.Version, seq)
				table := w.Table
				puts = append(puts, types.TransactWriteItem{Put: &types.Put{TableName: &table, Item: map[string]types.AttributeValue{
					"pk": s(outbox.PartitionKey(agg.ID)), "sk": s(sk), "kind": s("outbox"), "schemaVersion": nv(1),
					"aggregateId": s(agg.ID), "aggregateType": s(agg.Type), "version": nv(agg.Version), "seq": nv(int64(seq)),
					"eventId": s(id), "eventType": s("OrderPlaced"), "target": s("events"), "payload": s(string(raw)),
					"status": s("PENDING"), "attempts": nv(0), "createdAt": s(now),
					"undeliveredShard": s("PENDING#0"), "undeliveredSince": s(now + "#" + id), "pendingSk": s(sk),
				}}})
			}
			if len(puts) != 2 {
				b.Fatal(len(puts))
			}
		}
	})
}
