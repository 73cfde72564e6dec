package dispatch

import (
	"strings"
	"testing"
)

func TestGrantsCheck(t *testing.T) {
	grants := Grants{"Dispatch": {Templates: []string{"notification", "order-confirmation"}, Events: []string{"OrderShipped", "order.*"}}}
	mail := func(names ...string) []Email {
		var out []Email
		for _, n := range names {
			out = append(out, Email{To: []string{"ada@example.com"}, Template: n})
		}
		return out
	}
	events := func(types ...string) []Event {
		var out []Event
		for _, ty := range types {
			out = append(out, Event{Type: ty})
		}
		return out
	}
	tests := []struct {
		name    string
		grants  Grants
		cmdType string
		d       Decision
		wantErr string // "" accepts
	}{
		{name: "accepts the granted templates", cmdType: "Dispatch", d: Decision{Emails: mail("notification", "order-confirmation")}},
		{
			name: "refuses a bank receipt template, naming it", cmdType: "Dispatch", d: Decision{Emails: mail("notification", TemplateDepositReceipt)},
			wantErr: `refused: data.emails[1].template: template "deposit-receipt" is not one Dispatch may send; it may send: notification, order-confirmation`,
		},
		{
			name: "refuses a template that does not exist", cmdType: "Dispatch", d: Decision{Emails: mail("no-such-template")},
			wantErr: `refused: data.emails[0].template: template "no-such-template" is not one Dispatch may send`,
		},
		{name: "accepts an exact event type", cmdType: "Dispatch", d: Decision{Events: events("OrderShipped")}},
		{name: "accepts an event type under a granted prefix", cmdType: "Dispatch", d: Decision{Events: events("order.paid", "order.")}},
		{
			name: "refuses an event type the grant does not match", cmdType: "Dispatch", d: Decision{Events: events("order.paid", "OrderShippedLate")},
			wantErr: `refused: data.events[1].type: event type "OrderShippedLate" is not one Dispatch may publish; it may publish: OrderShipped, order.*`,
		},
		{name: "accepts every event type under *", grants: Grants{"Dispatch": {Events: []string{"*"}}}, cmdType: "Dispatch", d: Decision{Events: events("Anything.at-all")}},
		{
			name: "refuses everything to a command type with no grant", grants: Grants{}, cmdType: "Dispatch", d: Decision{Events: events("OrderShipped")},
			wantErr: "it may publish: none",
		},
		{name: "leaves the account commands' own templates alone", grants: Grants{}, cmdType: "OpenAccount", d: Decision{Emails: mail(TemplateAccountWelcome)}},
		{name: "leaves a typed command's effects alone, whatever they are", grants: Grants{}, cmdType: "DepositFunds", d: Decision{Events: events("FundsDeposited"), Emails: mail(TemplateDepositReceipt)}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			g := tt.grants
			if g == nil {
				g = grants
			}
			err := g.Check(tt.cmdType, tt.d)
			if tt.wantErr == "" {
				if err != nil {
					t.Fatalf("Check: %v", err)
				}
				return
			}
			if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
				t.Fatalf("Check = %v, want %q", err, tt.wantErr)
			}
			if k := errKind(err); k != Unprocessable {
				t.Errorf("kind = %v, want %v", k, Unprocessable)
			}
		})
	}
}

func TestValidEventPattern(t *testing.T) {
	for p, want := range map[string]bool{
		"*": true, "order.*": true, "OrderShipped": true, "o*": true,
		"": false, "*.paid": false, "order.*.x": false, "order**": false, ".order*": false, "a b": false,
		strings.Repeat("a", MaxTypeLen): true, strings.Repeat("a", MaxTypeLen+1): false,
	} {
		if got := ValidEventPattern(p); got != want {
			t.Errorf("ValidEventPattern(%q) = %v, want %v", p, got, want)
		}
	}
}
