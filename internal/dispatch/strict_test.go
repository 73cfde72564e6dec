package dispatch

import (
	"errors"
	"math"
	"strings"
	"testing"
)

func TestParseRefusesBodiesTwoReadersCouldReadTwoWays(t *testing.T) {
	tests := []struct {
		name, body, field string
	}{
		{"rejects a key that differs only by case", `{"TYPE":"DepositFunds","aggregateId":"a","data":{"amount":1,"currency":"EUR","reference":"r"}}`, "TYPE"},
		{"rejects a case variant inside data", `{"type":"DepositFunds","aggregateId":"a","data":{"amount":1,"Amount":100000,"currency":"EUR","reference":"r"}}`, "data.Amount"},
		{"rejects a duplicate key", `{"type":"DepositFunds","aggregateId":"a","data":{"amount":1,"amount":2,"currency":"EUR","reference":"r"}}`, "data.amount"},
		{"rejects a duplicate key in a nested object", `{"type":"Dispatch","aggregateId":"a","data":{"aggregateType":"Order","state":{"x":{"y":1,"y":2}}}}`, "data.state.x.y"},
		{"rejects a duplicate key in an array element", `{"type":"Dispatch","aggregateId":"a","data":{"aggregateType":"Order","events":[{"type":"A","type":"B","data":{}}]}}`, "data.events[0].type"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, _, err := Parse([]byte(tt.body))
			var ve *ValidationError
			if !errors.As(err, &ve) || ve.Kind != Invalid || len(ve.Fields) == 0 || ve.Fields[0].Field != tt.field {
				t.Fatalf("err = %v, want an Invalid error on %s", err, tt.field)
			}
		})
	}
}

func TestDispatchCannotWriteAccounts(t *testing.T) {
	_, _, err := Parse([]byte(`{"type":"Dispatch","aggregateId":"acc-1","data":{"aggregateType":"Account","state":{"balance":-500}}}`))
	var ve *ValidationError
	if !errors.As(err, &ve) || !strings.Contains(ve.Error(), "data.aggregateType") {
		t.Fatalf("err = %v, want a refusal on data.aggregateType", err)
	}
}

func TestParseAddressRefusesQuotedLocalParts(t *testing.T) {
	for _, in := range []string{`"a@b"@example.com`, `"a b"@example.com`, `"a,b"@example.com`} {
		if got, err := ParseAddress(in); err == nil {
			t.Errorf("ParseAddress(%q) = %q, want an error", in, got)
		}
	}
}

func TestFormatMinorAtTheExtremes(t *testing.T) {
	if got, want := FormatMinor(math.MinInt64, "EUR"), "-92233720368547758.08"; got != want {
		t.Errorf("FormatMinor(MinInt64) = %q, want %q", got, want)
	}
	if got, want := FormatMinor(math.MaxInt64, "JPY"), "9223372036854775807"; got != want {
		t.Errorf("FormatMinor(MaxInt64, JPY) = %q, want %q", got, want)
	}
}
