package dispatch

import (
	"encoding/json"
	"testing"
)

// FuzzParse: no input makes Parse panic, and whatever it accepts is a valid
// command of a known type for a valid aggregate.
func FuzzParse(f *testing.F) {
	for _, s := range []string{
		`{"type":"OpenAccount","aggregateId":"a-1","data":{"owner":"Ada","email":"ada@example.com","currency":"EUR"}}`,
		`{"type":"DepositFunds","aggregateId":"a-1","expectedVersion":3,"data":{"amount":1,"currency":"EUR","reference":"r"}}`,
		`{"type":"Dispatch","aggregateId":"o-1","data":{"aggregateType":"Order","state":{"x":{"y":null}},"events":[{"type":"A","data":{}}],"emails":[{"to":["a@b.co"],"template":"notification","data":{"title":"t","message":"m"}}]}}`,
		`{"type":"DepositFunds","aggregateId":"a","data":{"amount":1,"amount":2}}`, "\xff", `[]`, `{"TYPE":1}`,
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, body []byte) {
		env, cmd, err := Parse(body)
		if err != nil {
			return
		}
		if cmd == nil || !ValidAggregateID(env.AggregateID) || commands[env.Type] == nil {
			t.Fatalf("accepted an invalid command: %+v", env)
		}
		if fe := cmd.Validate(); len(fe) != 0 {
			t.Fatalf("accepted a command that does not validate: %v", fe)
		}
		if !json.Valid(body) {
			t.Fatalf("accepted invalid JSON %q", body)
		}
	})
}
