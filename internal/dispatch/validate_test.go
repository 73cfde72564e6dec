package dispatch

import (
	"encoding/json"
	"errors"
	"github.com/dispatcher-dev/dispatcher/outbox"
	"strings"
	"testing"
)

func validEmailItem() OutboxItem {
	return OutboxItem{
		AggregateID: "acct-1", Version: 2, Seq: 1, EventID: "0190f0e4-7c2a-7abc-8def-0123456789ab",
		EventType: "email.deposit-receipt", Target: TargetEmail,
		Payload: json.RawMessage(`{"to":["ada@example.com"],"template":"deposit-receipt","subject":"Receipt","text":"t","html":""}`),
	}
}

func TestOutboxItemValidate(t *testing.T) {
	tests := []struct {
		name    string
		edit    func(*OutboxItem)
		wantMsg string // "" when valid
	}{
		{"accepts a complete email", func(*OutboxItem) {}, ""},
		{"accepts an event", func(o *OutboxItem) {
			o.Target, o.EventType, o.Payload = TargetEvents, "FundsDeposited", json.RawMessage(`{"data":{"amount":1}}`)
		}, ""},
		{"parks a path in the aggregate id", func(o *OutboxItem) { o.AggregateID = "../acct" }, `aggregate id "../acct"`},
		{"parks version 0", func(o *OutboxItem) { o.Version = 0 }, "version 0: want 1 or more"},
		{"parks a negative position", func(o *OutboxItem) { o.Seq = -1 }, "position -1: want 0 to 999"},
		{"parks a missing event id", func(o *OutboxItem) { o.EventID = "" }, "event id: want 1 to 64 characters"},
		{"parks an oversized event id", func(o *OutboxItem) { o.EventID = strings.Repeat("e", 65) }, "event id: want 1 to 64 characters"},
		{"parks a missing event type", func(o *OutboxItem) { o.EventType = "" }, `event type "": an email's is "email.deposit-receipt"`},
		{"parks an event payload that is not JSON", func(o *OutboxItem) { o.Target, o.Payload = TargetEvents, json.RawMessage(`{`) }, "event payload: unexpected EOF"},
		{"parks an email payload that is not JSON", func(o *OutboxItem) { o.Payload = json.RawMessage(`[]`) }, "email payload: json: cannot unmarshal array"},
		{"parks an email without recipients", func(o *OutboxItem) {
			o.Payload = json.RawMessage(`{"to":[],"template":"deposit-receipt","subject":"s","text":"t"}`)
		}, "email: no recipient"},
		{"parks a subject with CR/LF", func(o *OutboxItem) {
			o.Payload = json.RawMessage(`{"to":["a@example.com"],"template":"deposit-receipt","subject":"s\r\nBcc: x@evil.example","text":"t"}`)
		}, "email: the subject holds U+000D"},
		{"parks an unknown target", func(o *OutboxItem) { o.Target = "sms" }, `target "sms": want "events" or "email"`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			o := validEmailItem()
			tt.edit(&o)
			err := o.Validate()
			if tt.wantMsg == "" {
				if err != nil {
					t.Fatalf("Validate = %v, want nil", err)
				}
				return
			}
			var e *Error
			if !errors.As(err, &e) {
				t.Fatalf("Validate = %v (%T), want a *dispatch.Error", err, err)
			}
			if e.Op != "OutboxItem.Validate" || e.Kind != Permanent || !strings.Contains(err.Error(), tt.wantMsg) {
				t.Errorf("Validate = {Op: %q, Kind: %v, %q}, want {OutboxItem.Validate, permanent, ...%q...}", e.Op, e.Kind, err, tt.wantMsg)
			}
			if rule, ok := outbox.RuleOf(err); !ok || rule != outbox.RuleEnvelope {
				t.Errorf("RuleOf = %q, %v; want the contract's %q: the relay parks under it", rule, ok, outbox.RuleEnvelope)
			}
			if KindOf(err) != Permanent {
				t.Errorf("KindOf = %v, want permanent: the relay parks it", KindOf(err))
			}
		})
	}
}

func TestOutboxItemValidateRefusesAnUnknownSchemaVersion(t *testing.T) {
	for sv, want := range map[int]string{0: "", 1: "", 2: "schemaVersion 2: this relay knows 1", -1: "schemaVersion not a whole number"} {
		o := validEmailItem()
		o.SchemaVersion = sv
		err := o.Validate()
		rule, _ := outbox.RuleOf(err)
		switch {
		case want == "" && err != nil:
			t.Errorf("schemaVersion %d: Validate = %v, want nil (0 is an item written before the contract was versioned)", sv, err)
		case want != "" && (rule != outbox.RuleSchema || KindOf(err) != Permanent || !strings.Contains(err.Error(), want)):
			t.Errorf("schemaVersion %d: Validate = %v (rule %q), want a permanent %q: %s", sv, err, rule, outbox.RuleSchema, want)
		}
	}
}
