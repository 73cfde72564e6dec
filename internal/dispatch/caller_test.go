package dispatch

import (
	"strings"
	"testing"
)

func TestValidCallerID(t *testing.T) {
	tests := []struct {
		name string
		id   string
		want bool
	}{
		{"accepts a team name", "team-a", true},
		{"accepts one character", "a", true},
		{"accepts a digit first", "9lives", true},
		{"accepts 64 characters", strings.Repeat("a", MaxCallerIDLen), true},
		{"refuses 65 characters", strings.Repeat("a", MaxCallerIDLen+1), false},
		{"refuses the empty id", "", false},
		{"refuses a leading dash", "-team", false},
		{"refuses capitals", "Team-a", false},
		{"refuses an underscore", "team_a", false},
		{"refuses a slash (a parameter path)", "team/a", false},
		{"refuses a space", "team a", false},
		{"refuses non-ASCII", "tëam", false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := ValidCallerID(tt.id); got != tt.want {
				t.Errorf("ValidCallerID(%q) = %v, want %v", tt.id, got, tt.want)
			}
		})
	}
}

func TestValidAggregatePattern(t *testing.T) {
	tests := []struct {
		name, p string
		want    bool
	}{
		{"accepts a type and a prefix", "Account/team-a-*", true},
		{"accepts any type and a prefix", "*/team-a-*", true},
		{"accepts a type and every id", "Order/*", true},
		{"accepts every aggregate", "*/*", true},
		{"accepts a type and an exact id", "Account/acc-1", true},
		{"accepts an exact id of 64 characters", "Order/" + strings.Repeat("a", MaxAggregateIDLen), true},
		{"refuses an exact id of 65 characters", "Order/" + strings.Repeat("a", MaxAggregateIDLen+1), false},
		{"accepts a prefix of 64 characters (it matches that one id)", "Order/" + strings.Repeat("a", MaxAggregateIDLen) + "*", true},
		{"refuses a prefix of 65 characters, which no id can have", "Order/" + strings.Repeat("a", MaxAggregateIDLen+1) + "*", false},
		{"accepts a type of the longest length", strings.Repeat("T", MaxTypeLen) + "/*", true},
		{"refuses a type one over", strings.Repeat("T", MaxTypeLen+1) + "/*", false},
		{"refuses no slash", "Account", false},
		{"refuses an empty id", "Account/", false},
		{"refuses an empty type", "/acc-1", false},
		{"refuses a type prefix", "Acc*/acc-1", false},
		{"refuses a star inside the id", "Account/a*b", false},
		{"refuses two stars", "Account/a**", false},
		{"refuses a second slash", "Account/a/b", false},
		{"refuses a prefix starting with a dash, which no id can match", "Account/-a*", false},
		{"refuses a space", "Account/a b", false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := ValidAggregatePattern(tt.p); got != tt.want {
				t.Errorf("ValidAggregatePattern(%q) = %v, want %v", tt.p, got, tt.want)
			}
		})
	}
}

func TestMayAccess(t *testing.T) {
	teamA := Caller{ID: "team-a", Aggregates: []string{"Account/team-a-*", "Order/o-1"}}
	anyType := Caller{ID: "team-b", Aggregates: []string{"*/team-b-*"}}
	tests := []struct {
		name    string
		c       Caller
		typ, id string
		want    bool
	}{
		{"grants an id under its prefix of its type", teamA, AccountType, "team-a-1", true},
		{"grants the prefix itself", teamA, AccountType, "team-a-", true},
		{"refuses another type under the prefix", teamA, "Order", "team-a-1", false},
		{"refuses another prefix", teamA, AccountType, "team-b-1", false},
		{"refuses an id that only contains the prefix", teamA, AccountType, "x-team-a-1", false},
		{"grants the exact id of its type", teamA, "Order", "o-1", true},
		{"refuses a longer id than the exact one", teamA, "Order", "o-10", false},
		{"refuses the exact id of another type", teamA, "Invoice", "o-1", false},
		{"grants an unknown type under its prefix (before a read)", teamA, "", "team-a-1", true},
		{"grants an unknown type on its exact id (before a read)", teamA, "", "o-1", true},
		{"refuses an unknown type outside every pattern", teamA, "", "team-b-1", false},
		{"grants any type under an any-type pattern", anyType, "Whatever", "team-b-9", true},
		{"refuses outside an any-type pattern", anyType, "Whatever", "team-a-9", false},
		{"refuses everything without patterns", Caller{ID: "none"}, "", "a", false},
		{"grants everything with All", Caller{ID: "default", All: true}, "Order", "anything", true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := tt.c.MayAccess(tt.typ, tt.id); got != tt.want {
				t.Errorf("MayAccess(%q, %q) = %v, want %v", tt.typ, tt.id, got, tt.want)
			}
		})
	}
}

func TestCheckSends(t *testing.T) {
	c := Caller{ID: "team-a", Grant: Grant{Templates: []string{"welcome"}, Events: []string{"account.*", "OrderShipped"}}}
	mail := func(names ...string) []Email {
		var out []Email
		for _, n := range names {
			out = append(out, Email{To: []string{"ada@example.com"}, Template: n})
		}
		return out
	}
	evs := func(types ...string) []Event {
		var out []Event
		for _, ty := range types {
			out = append(out, Event{Type: ty})
		}
		return out
	}
	tests := []struct {
		name    string
		c       Caller
		d       Decision
		wantErr string
	}{
		{"accepts a decision that sends nothing", c, Decision{}, ""},
		{"accepts a granted template and granted event types", c, Decision{Emails: mail("welcome"), Events: evs("account.opened", "OrderShipped")}, ""},
		{"refuses a template not granted, naming the caller and the template", c, Decision{Emails: mail("welcome", "notification")}, `caller team-a may not send template "notification"`},
		{"refuses a template that only starts like a granted one", c, Decision{Emails: mail("welcome-2")}, `template "welcome-2"`},
		{"refuses an event type outside the patterns", c, Decision{Events: evs("order.shipped")}, `caller team-a may not publish event type "order.shipped"`},
		{"refuses a longer type than an exact pattern", c, Decision{Events: evs("OrderShippedLate")}, `"OrderShippedLate"`},
		{"refuses everything without grants", Caller{ID: "bare"}, Decision{Events: evs("x")}, "may not publish"},
		{"accepts everything with All", Caller{ID: "default", All: true}, Decision{Emails: mail("anything"), Events: evs("any")}, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := tt.c.CheckSends(tt.d)
			if tt.wantErr == "" {
				if err != nil {
					t.Fatalf("refused: %v", err)
				}
				return
			}
			if err == nil || !strings.Contains(err.Error(), tt.wantErr) || KindOf(err) != Forbidden {
				t.Fatalf("err = %v (kind %v), want a forbidden error saying %q", err, KindOf(err), tt.wantErr)
			}
		})
	}
}

func TestCheckCommand(t *testing.T) {
	c := Caller{ID: "team-a", Aggregates: []string{"Account/team-a-*", "Order/team-a-*"}, Grant: Grant{Templates: []string{"notification"}, Events: []string{"order.*"}}}
	parse := func(t *testing.T, body string) (Envelope, Command) {
		t.Helper()
		env, cmd, err := Parse([]byte(body))
		if err != nil {
			t.Fatal(err)
		}
		return env, cmd
	}
	dispatchOn := func(typ, id, extra string) string {
		return `{"type":"Dispatch","aggregateId":"` + id + `","data":{"aggregateType":"` + typ + `","state":{"a":1}` + extra + `}}`
	}
	tests := []struct {
		name    string
		c       Caller
		body    string
		wantErr string
	}{
		{"accepts a typed command on its own account", c, `{"type":"DepositFunds","aggregateId":"team-a-1","data":{"amount":1,"currency":"EUR","reference":"r"}}`, ""},
		{"refuses a typed command on another's account", c, `{"type":"DepositFunds","aggregateId":"team-b-1","data":{"amount":1,"currency":"EUR","reference":"r"}}`, "caller team-a may not write Account aggregate team-b-1"},
		{"accepts a Dispatch of its type on its id", c, dispatchOn("Order", "team-a-1", `,"events":[{"type":"order.placed","data":{}}],"emails":[{"to":["a@example.com"],"template":"notification","data":{}}]`), ""},
		{"refuses a Dispatch naming another type on its own id", c, dispatchOn("Invoice", "team-a-1", ""), "may not write Invoice aggregate team-a-1"},
		{"refuses a Dispatch sending a template not granted", c, dispatchOn("Order", "team-a-1", `,"emails":[{"to":["a@example.com"],"template":"welcome","data":{}}]`), `may not send template "welcome"`},
		{"refuses a Dispatch publishing an event type not granted", c, dispatchOn("Order", "team-a-1", `,"events":[{"type":"invoice.paid","data":{}}]`), `may not publish event type "invoice.paid"`},
		{"accepts anything with All", Caller{ID: "default", All: true}, dispatchOn("Invoice", "x", `,"events":[{"type":"x","data":{}}]`), ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			env, cmd := parse(t, tt.body)
			err := tt.c.CheckCommand(env, cmd)
			if tt.wantErr == "" {
				if err != nil {
					t.Fatalf("refused: %v", err)
				}
				return
			}
			if err == nil || !strings.Contains(err.Error(), tt.wantErr) || KindOf(err) != Forbidden {
				t.Fatalf("err = %v, want forbidden saying %q", err, tt.wantErr)
			}
		})
	}
}
