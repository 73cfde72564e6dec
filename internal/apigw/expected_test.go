package apigw_test

import (
	"net/http"
	"strings"
	"testing"

	"github.com/dispatcher-dev/dispatcher/internal/apigw"
)

// expectedVersion 0 says "the aggregate does not exist yet": on one that
// does, every command type is refused as any other stale expectedVersion is
// (409 with the current version), in both modes, whatever the command would
// have decided on an empty aggregate (a deposit to no account is a 404).
func TestExpectedVersionZeroOnAnExistingAggregateIsAVersionConflict(t *testing.T) {
	inBothModes(t, func(t *testing.T, f *fixture) {
		id := newID("acct")
		f.mustAccept(openAccount(id))
		f.mustAccept(deposit(id, 1000, "seed"))
		order := newID("order")
		f.mustAccept(`{"type":"Dispatch","aggregateId":"` + order + `","data":{"aggregateType":"Order","state":{"status":"new"},"events":[{"type":"OrderPlaced","data":{}}]}}`)
		zero := func(body string) string { return strings.Replace(body, `"data":`, `"expectedVersion":0,"data":`, 1) }
		tests := []struct {
			name, aggregate, body string
			current               float64
		}{
			{"DepositFunds", id, zero(deposit(id, 1, "r")), 2},
			{"WithdrawFunds", id, zero(withdraw(id, 1, "r")), 2},
			{"OpenAccount", id, zero(openAccount(id)), 2},
			{"Dispatch", order, zero(`{"type":"Dispatch","aggregateId":"` + order + `","data":{"aggregateType":"Order","events":[{"type":"OrderPaid","data":{}}]}}`), 1},
		}
		for _, tt := range tests {
			t.Run(tt.name, func(t *testing.T) {
				before, idemps := f.count(tt.aggregate), f.idempotencyRecords()
				resp, body := f.do(f.post(tt.body))
				if resp.StatusCode != http.StatusConflict || body["type"] != apigw.ProblemBase+"version-conflict" || body["currentVersion"] != tt.current {
					t.Errorf("got %d %s, want 409 version-conflict with currentVersion %v", resp.StatusCode, resp.Body, tt.current)
				}
				if f.count(tt.aggregate) != before || f.idempotencyRecords() != idemps {
					t.Error("the refused command wrote something")
				}
			})
		}
		t.Run("a deposit to no account is still a 404", func(t *testing.T) {
			nobody := "nobody-" + id
			if resp, _ := f.do(f.post(zero(deposit(nobody, 1, "r")))); resp.StatusCode != http.StatusNotFound {
				t.Errorf("got %d %s, want 404", resp.StatusCode, resp.Body)
			}
		})
	})
}
