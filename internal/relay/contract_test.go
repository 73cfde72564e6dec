package relay_test

import (
	"encoding/json"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/service/dynamodb/types"

	"github.com/dispatcher-dev/dispatcher/internal/testkit/flowtest"
)

// logLine is one JSON log line of the relay.
type logLine map[string]any

func logLines(t *testing.T, f *flowtest.Fixture) []logLine {
	t.Helper()
	var out []logLine
	for _, l := range strings.Split(strings.TrimSpace(f.Logs.String()), "\n") {
		var m logLine
		if json.Unmarshal([]byte(l), &m) == nil {
			out = append(out, m)
		}
	}
	return out
}

func TestAHandWrittenItemThatBreaksTheContractIsParkedWithItsRule(t *testing.T) {
	tests := []struct {
		name   string
		edit   func(m map[string]types.AttributeValue)
		reason string
	}{
		{"a sort key without its zero padding", func(m map[string]types.AttributeValue) {
			m["sk"] = &types.AttributeValueMemberS{Value: "OUTBOX#1#0"}
			m["pendingSk"] = &types.AttributeValueMemberS{Value: "OUTBOX#1#0"}
		}, "non-canonical-key"},
		{"no index attributes", func(m map[string]types.AttributeValue) {
			delete(m, "undeliveredShard")
			delete(m, "undeliveredSince")
			delete(m, "pendingSk")
		}, "missing-index-attributes"},
		{"no pendingSk", func(m map[string]types.AttributeValue) { delete(m, "pendingSk") }, "missing-index-attributes"},
		{"a shard beyond the contract's", func(m map[string]types.AttributeValue) {
			m["undeliveredShard"] = &types.AttributeValueMemberS{Value: "PENDING#64"}
		}, "missing-index-attributes"},
		{"schema version 2", func(m map[string]types.AttributeValue) {
			m["schemaVersion"] = &types.AttributeValueMemberN{Value: "2"}
		}, "unknown-schema-version"},
		{"a payload with an unknown field", func(m map[string]types.AttributeValue) {
			p := m["payload"].(*types.AttributeValueMemberS).Value
			m["payload"] = &types.AttributeValueMemberS{Value: strings.TrimSuffix(p, "}") + `,"priority":"high"}`}
		}, "invalid-envelope"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f := flowtest.New(t, nil)
			id := unique("handbad")
			secret := "secret-" + id
			item := flowtest.HandWritten(id, secret, time.Now())
			tt.edit(item)
			f.Put(item)
			sk := flowtest.S(item, "sk")

			if resp := f.Handle(f.Batch(id)); len(resp.BatchItemFailures) != 0 {
				t.Fatalf("failures %+v: a refused item is parked, not retried forever", resp.BatchItemFailures)
			}
			if sent := f.Drain(f.Events); len(sent) != 0 {
				t.Errorf("%d events sent for an item the relay must refuse", len(sent))
			}
			// Counted where the item-failed alarm looks, never as delivered.
			m := f.Metrics.String()
			if strings.Contains(m, `"SkippedAlreadyDelivered":1`) {
				t.Errorf("a refused item counted as already delivered; metrics:\n%s", m)
			}
			if !strings.Contains(m, `"Failed":1,"Reason":"`+tt.reason+`"`) {
				t.Errorf("no Failed metric for %q; metrics:\n%s", tt.reason, m)
			}
			dlq := f.Drain(f.DLQ)
			if len(dlq) != 1 {
				t.Fatalf("%d DLQ messages, want 1; logs:\n%s", len(dlq), f.Logs)
			}
			if b := dlq[0].Body; b["reason"] != tt.reason || b["pk"] != "AGG#"+id || b["sk"] != sk {
				t.Errorf("parked %v, want reason %q under pk %q, sk %q", b, tt.reason, "AGG#"+id, sk)
			}
			var warned bool
			for _, l := range logLines(t, f) {
				if l["level"] == "WARN" && l["reason"] == tt.reason && l["pk"] == "AGG#"+id && l["sk"] == sk {
					warned = true
				}
			}
			if !warned {
				t.Errorf("no WARN line naming %q and the key as written; logs:\n%s", tt.reason, f.Logs)
			}
			if body, _ := json.Marshal(dlq[0].Body); strings.Contains(f.Logs.String(), secret) || strings.Contains(string(body), secret) {
				t.Errorf("the payload reached a log line or the DLQ message")
			}
			if items := f.Items(id); len(items) != 1 || flowtest.S(items[0], "status") != "PENDING" {
				t.Errorf("the table's item was changed: %v", items)
			}
		})
	}
}

func TestAConformingHandWrittenItemIsDelivered(t *testing.T) {
	f := flowtest.New(t, nil)
	id := unique("handok")
	f.Put(flowtest.HandWritten(id, "hello", time.Now()))
	if resp := f.Handle(f.Batch(id)); len(resp.BatchItemFailures) != 0 {
		t.Fatalf("failures %+v; logs:\n%s", resp.BatchItemFailures, f.Logs)
	}
	sent := f.Drain(f.Events)
	if len(sent) != 1 || sent[0].Body["type"] != "OrderPlaced" || sent[0].Body["subject"] != id {
		t.Fatalf("sent %v, want the one OrderPlaced CloudEvent of %s; logs:\n%s", sent, id, f.Logs)
	}
	if dlq := f.Drain(f.DLQ); len(dlq) != 0 {
		t.Errorf("parked %v", dlq)
	}
	if items := f.Items(id); len(items) != 1 || flowtest.S(items[0], "status") != "DELIVERED" {
		t.Errorf("item %v, want DELIVERED", items)
	}
}
