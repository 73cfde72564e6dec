package outbox_test

import (
	"encoding/json"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/service/dynamodb/types"

	"github.com/dispatcher-dev/dispatcher/outbox"
)

var at = time.Date(2026, 12, 7, 10, 0, 0, 0, time.UTC)

func writer() outbox.Writer {
	return outbox.Writer{Table: "dispatcher-table", Now: func() time.Time { return at }}
}

func order(v int64) outbox.Aggregate {
	return outbox.Aggregate{Type: "Order", ID: "order-1", Version: v}
}

func placed() outbox.Event {
	return outbox.Event{Type: "OrderPlaced", Data: map[string]any{"total": "12.00"}}
}

func confirmation() outbox.Email {
	return outbox.Email{To: []string{"Ada <ada@example.com>"}, Template: "order-confirmation", Subject: "Your order", Text: "Thanks"}
}

func str(t *testing.T, item map[string]types.AttributeValue, k string) string {
	t.Helper()
	v, ok := item[k].(*types.AttributeValueMemberS)
	if !ok {
		t.Fatalf("%s: %T, want a string", k, item[k])
	}
	return v.Value
}

func TestItemsWritesOnePutPerEffectUnderTheContract(t *testing.T) {
	puts, ids, err := writer().Items(order(3), placed(), confirmation())
	if err != nil {
		t.Fatal(err)
	}
	if len(puts) != 2 || len(ids) != 2 || ids[0] == ids[1] {
		t.Fatalf("%d puts, ids %v; want 2 and 2 distinct ids", len(puts), ids)
	}
	for i, p := range puts {
		if p.Put == nil || *p.Put.TableName != "dispatcher-table" || *p.Put.ConditionExpression != "attribute_not_exists(pk)" {
			t.Fatalf("put %d: %+v, want a conditional Put on the table", i, p)
		}
		item := p.Put.Item
		want := map[string]string{
			"pk": "AGG#order-1", "sk": outbox.SortKey(3, i), "kind": "outbox", "aggregateId": "order-1",
			"aggregateType": "Order", "eventId": ids[i], "status": "PENDING",
			"createdAt": "2026-12-07T10:00:00Z", "undeliveredSince": "2026-12-07T10:00:00Z#" + ids[i],
			"pendingSk": outbox.SortKey(3, i),
		}
		for k, v := range want {
			if got := str(t, item, k); got != v {
				t.Errorf("put %d: %s = %q, want %q", i, k, got, v)
			}
		}
		if n, ok := outbox.ShardNumber(str(t, item, "undeliveredShard")); !ok || n >= outbox.DefaultShards {
			t.Errorf("put %d: shard %q, want PENDING#0 to PENDING#%d", i, str(t, item, "undeliveredShard"), outbox.DefaultShards-1)
		}
		if sv := item["schemaVersion"].(*types.AttributeValueMemberN).Value; sv != "1" {
			t.Errorf("schemaVersion %s, want 1", sv)
		}
		// What is written is what the relay reads back as valid.
		it, err := outbox.Decode(item)
		if err != nil {
			t.Fatalf("put %d: Decode: %v", i, err)
		}
		if it.EventID != ids[i] || it.Seq != i || it.Version != 3 {
			t.Errorf("decoded %+v", it)
		}
	}
	if got := str(t, puts[1].Put.Item, "eventType"); got != "email.order-confirmation" {
		t.Errorf("email event type %q", got)
	}
	var p outbox.EmailPayload
	if err := json.Unmarshal([]byte(str(t, puts[1].Put.Item, "payload")), &p); err != nil || p.To[0] != "ada@example.com" {
		t.Errorf("email payload %+v, %v: want the bare address", p, err)
	}
}

func TestItemsRefusesWhatTheRelayWouldPark(t *testing.T) {
	many := func(n int) []outbox.Effect {
		out := make([]outbox.Effect, n)
		for i := range out {
			out[i] = placed()
		}
		return out
	}
	tests := []struct {
		name    string
		w       outbox.Writer
		agg     outbox.Aggregate
		effects []outbox.Effect
		rule    outbox.Rule
		want    string
	}{
		{"no table", outbox.Writer{}, order(1), many(1), outbox.RuleEnvelope, "Writer.Table"},
		{"no effects", writer(), order(1), nil, outbox.RuleEnvelope, "no effects"},
		{"one effect over the limit", writer(), order(1), many(outbox.MaxEffects + 1), outbox.RuleLimit, "100 effects"},
		{"version 0", writer(), order(0), many(1), outbox.RuleEnvelope, "version 0"},
		{"an aggregate id that climbs a path", writer(), outbox.Aggregate{Type: "Order", ID: "../x", Version: 1}, many(1), outbox.RuleEnvelope, "aggregate id"},
		{"an aggregate id one over the limit", writer(), outbox.Aggregate{Type: "Order", ID: strings.Repeat("a", outbox.MaxAggregateIDLen+1), Version: 1}, many(1), outbox.RuleEnvelope, "aggregate id"},
		{"no aggregate type", writer(), outbox.Aggregate{ID: "o", Version: 1}, many(1), outbox.RuleEnvelope, "aggregate type"},
		{"an event type with a space", writer(), order(1), []outbox.Effect{outbox.Event{Type: "Order Placed"}}, outbox.RuleEnvelope, "event type"},
		{"event data that is not an object", writer(), order(1), []outbox.Effect{outbox.Event{Type: "X", Data: []int{1}}}, outbox.RuleEnvelope, "JSON object"},
		{"event data that cannot be encoded", writer(), order(1), []outbox.Effect{outbox.Event{Type: "X", Data: map[string]any{"f": func() {}}}}, outbox.RuleEnvelope, "data"},
		{"an email without recipients", writer(), order(1), []outbox.Effect{func() outbox.Email { e := confirmation(); e.To = nil; return e }()}, outbox.RuleEnvelope, "no recipient"},
		{"one recipient over the limit", writer(), order(1), []outbox.Effect{func() outbox.Email {
			e := confirmation()
			e.To = strings.Split(strings.Repeat("a@example.com,", outbox.MaxRecipients+1), ",")[:outbox.MaxRecipients+1]
			return e
		}()}, outbox.RuleLimit, "11 recipients"},
		{"an address SES cannot send to", writer(), order(1), []outbox.Effect{func() outbox.Email { e := confirmation(); e.To = []string{"ada@例え.jp"}; return e }()}, outbox.RuleEnvelope, "punycode"},
		{"a subject that adds a header", writer(), order(1), []outbox.Effect{func() outbox.Email { e := confirmation(); e.Subject = "Hi\r\nBcc: x@evil.example"; return e }()}, outbox.RuleEnvelope, "U+000D"},
		{"a subject with a bidi override", writer(), order(1), []outbox.Effect{func() outbox.Email { e := confirmation(); e.Subject = "Invoice \u202e"; return e }()}, outbox.RuleEnvelope, "U+202E"},
		{"a subject one byte over the limit", writer(), order(1), []outbox.Effect{func() outbox.Email {
			e := confirmation()
			e.Subject = strings.Repeat("s", outbox.MaxSubjectBytes+1)
			return e
		}()}, outbox.RuleLimit, "999 bytes"},
		{"an email without a body", writer(), order(1), []outbox.Effect{func() outbox.Email { e := confirmation(); e.Text = ""; return e }()}, outbox.RuleEnvelope, "body"},
		{"a template name with capitals", writer(), order(1), []outbox.Effect{func() outbox.Email { e := confirmation(); e.Template = "Order"; return e }()}, outbox.RuleEnvelope, "template"},
		{"an item over DynamoDB's 400 KB", writer(), order(1), []outbox.Effect{func() outbox.Email {
			e := confirmation()
			e.Text = strings.Repeat("x", outbox.MaxItemBytes)
			return e
		}()}, outbox.RuleLimit, "item limit of 400 KB"},
		{"shards over the limit", outbox.Writer{Table: "t", Shards: outbox.MaxShards + 1}, order(1), many(1), outbox.RuleLimit, "shards 65"},
		{"a nil effect", writer(), order(1), []outbox.Effect{nil}, outbox.RuleEnvelope, "nil"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			puts, ids, err := tt.w.Items(tt.agg, tt.effects...)
			rule, ok := outbox.RuleOf(err)
			if !ok || rule != tt.rule || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("err = %v (rule %q), want rule %q mentioning %q", err, rule, tt.rule, tt.want)
			}
			if puts != nil || ids != nil {
				t.Errorf("returned %d puts and %d ids with an error", len(puts), len(ids))
			}
		})
	}
}

func TestItemsAtTheLimits(t *testing.T) {
	effects := make([]outbox.Effect, outbox.MaxEffects)
	for i := range effects {
		effects[i] = placed()
	}
	if _, _, err := writer().Items(order(1), effects...); err != nil {
		t.Errorf("%d effects: %v", outbox.MaxEffects, err)
	}
	e := confirmation()
	e.To = strings.Split(strings.Repeat("a@example.com,", outbox.MaxRecipients), ",")[:outbox.MaxRecipients]
	e.Subject = strings.Repeat("s", outbox.MaxSubjectBytes)
	if _, _, err := writer().Items(outbox.Aggregate{Type: "Order", ID: strings.Repeat("a", outbox.MaxAggregateIDLen), Version: 1}, e); err != nil {
		t.Errorf("an email at every limit: %v", err)
	}
	for shards := 1; shards <= outbox.MaxShards; shards++ {
		w := writer()
		w.Shards = shards
		puts, _, err := w.Items(order(int64(shards)), placed())
		if err != nil {
			t.Fatal(err)
		}
		if n, ok := outbox.ShardNumber(str(t, puts[0].Put.Item, "undeliveredShard")); !ok || n >= shards {
			t.Errorf("shards %d: wrote shard %d", shards, n)
		}
	}
}

func TestParseKeyTakesOnlyTheCanonicalKey(t *testing.T) {
	id, v, seq, err := outbox.ParseKey("AGG#order-1", outbox.SortKey(7, 2))
	if err != nil || id != "order-1" || v != 7 || seq != 2 {
		t.Fatalf("ParseKey = %q %d %d %v", id, v, seq, err)
	}
	for _, sk := range []string{"OUTBOX#1#0", "OUTBOX#00000000000000000001#0", "OUTBOX#00000000000000000001#0000",
		"OUTBOX#+0000000000000000001#000", "OUTBOX#00000000000000000000#000", "OUTBOX#00000000000000000001", "STATE"} {
		if _, _, _, err := outbox.ParseKey("AGG#order-1", sk); err == nil {
			t.Errorf("%s: accepted", sk)
		}
	}
	if _, _, _, err := outbox.ParseKey("ORDER#1", outbox.SortKey(1, 0)); err == nil {
		t.Error("a partition key without AGG# was accepted")
	}
}

// Decode names the rule an item written by hand breaks, so that the relay
// parks it under that name instead of skipping it.
func TestDecodeNamesTheRuleBroken(t *testing.T) {
	good := func(t *testing.T) map[string]types.AttributeValue {
		puts, _, err := writer().Items(order(1), placed())
		if err != nil {
			t.Fatal(err)
		}
		return puts[0].Put.Item
	}
	tests := []struct {
		name string
		edit func(map[string]types.AttributeValue)
		rule outbox.Rule
	}{
		{"a version without its padding", func(m map[string]types.AttributeValue) { m["sk"] = &types.AttributeValueMemberS{Value: "OUTBOX#1#0"} }, outbox.RuleKey},
		{"a key that is not its attributes'", func(m map[string]types.AttributeValue) { m["version"] = &types.AttributeValueMemberN{Value: "2"} }, outbox.RuleKey},
		{"no shard", func(m map[string]types.AttributeValue) { delete(m, "undeliveredShard") }, outbox.RuleIndex},
		{"a shard beyond the contract's", func(m map[string]types.AttributeValue) {
			m["undeliveredShard"] = &types.AttributeValueMemberS{Value: "PENDING#64"}
		}, outbox.RuleIndex},
		{"no undeliveredSince", func(m map[string]types.AttributeValue) { delete(m, "undeliveredSince") }, outbox.RuleIndex},
		{"no pendingSk", func(m map[string]types.AttributeValue) { delete(m, "pendingSk") }, outbox.RuleIndex},
		{"schema version 2", func(m map[string]types.AttributeValue) { m["schemaVersion"] = &types.AttributeValueMemberN{Value: "2"} }, outbox.RuleSchema},
		{"a schema version as a string", func(m map[string]types.AttributeValue) { m["schemaVersion"] = &types.AttributeValueMemberS{Value: "1"} }, outbox.RuleSchema},
		{"an unknown status", func(m map[string]types.AttributeValue) { m["status"] = &types.AttributeValueMemberS{Value: "NEW"} }, outbox.RuleEnvelope},
		{"a payload with another shape", func(m map[string]types.AttributeValue) {
			m["payload"] = &types.AttributeValueMemberS{Value: `{"detail":{}}`}
		}, outbox.RuleEnvelope},
		{"no creation time", func(m map[string]types.AttributeValue) { delete(m, "createdAt") }, outbox.RuleEnvelope},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			m := good(t)
			tt.edit(m)
			_, err := outbox.Decode(m)
			var e *outbox.Error
			if !errors.As(err, &e) || e.Rule != tt.rule {
				t.Fatalf("Decode = %v, want rule %q", err, tt.rule)
			}
		})
	}
	t.Run("an item without schemaVersion is read as version 1", func(t *testing.T) {
		m := good(t)
		delete(m, "schemaVersion")
		if _, err := outbox.Decode(m); err != nil {
			t.Fatal(err)
		}
	})
}

func TestEncodeWritesOnlyPendingItems(t *testing.T) {
	_, err := outbox.Encode(outbox.Item{AggregateID: "a", AggregateType: "A", Version: 1, EventID: "e", EventType: "X",
		Target: outbox.TargetEvents, Payload: json.RawMessage(`{"data":{}}`), Status: outbox.Delivered, CreatedAt: at}, 0)
	if rule, _ := outbox.RuleOf(err); rule != outbox.RuleUnsupported {
		t.Fatalf("err = %v, want %q", err, outbox.RuleUnsupported)
	}
}
