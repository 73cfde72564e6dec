package dispatch

import (
	"encoding/json"
	"errors"
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
		{"parks a path in the aggregate id", func(o *OutboxItem) { o.AggregateID = "../acct" }, "invalid aggregate id"},
		{"parks version 0", func(o *OutboxItem) { o.Version = 0 }, "invalid version or position"},
		{"parks a negative position", func(o *OutboxItem) { o.Seq = -1 }, "invalid version or position"},
		{"parks a missing event id", func(o *OutboxItem) { o.EventID = "" }, "missing or oversized event id"},
		{"parks an oversized event id", func(o *OutboxItem) { o.EventID = strings.Repeat("e", 65) }, "missing or oversized event id"},
		{"parks a missing event type", func(o *OutboxItem) { o.EventType = "" }, "missing or oversized event type"},
		{"parks an event payload that is not JSON", func(o *OutboxItem) { o.Target, o.Payload = TargetEvents, json.RawMessage(`{`) }, "event payload"},
		{"parks an email payload that is not JSON", func(o *OutboxItem) { o.Payload = json.RawMessage(`[]`) }, "email payload"},
		{"parks an email without recipients", func(o *OutboxItem) {
			o.Payload = json.RawMessage(`{"to":[],"subject":"s","text":"t"}`)
		}, "email payload is incomplete or unsafe"},
		{"parks a subject with CR/LF", func(o *OutboxItem) {
			o.Payload = json.RawMessage(`{"to":["a@example.com"],"subject":"s\r\nBcc: x@evil.example","text":"t"}`)
		}, "email payload is incomplete or unsafe"},
		{"parks an unknown target", func(o *OutboxItem) { o.Target = "sms" }, `unknown target "sms"`},
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
			if e.Op != "OutboxItem.Validate" || e.Kind != Permanent || e.Msg != tt.wantMsg {
				t.Errorf("Validate = {Op: %q, Kind: %v, Msg: %q}, want {OutboxItem.Validate, permanent, %q}", e.Op, e.Kind, e.Msg, tt.wantMsg)
			}
			if KindOf(err) != Permanent {
				t.Errorf("KindOf = %v, want permanent: the relay parks it", KindOf(err))
			}
		})
	}
}

func TestOutboxItemValidateKeepsTheDecodeCause(t *testing.T) {
	o := validEmailItem()
	o.Payload = json.RawMessage(`{"to":"a@example.com"}`)
	var ute *json.UnmarshalTypeError
	if err := o.Validate(); !errors.As(err, &ute) {
		t.Errorf("Validate = %v, want the JSON decoder's error as its cause", err)
	}
}
