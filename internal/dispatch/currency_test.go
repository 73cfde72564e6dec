package dispatch

import (
	"errors"
	"fmt"
	"strings"
	"testing"
)

// An account holds an active ISO 4217 currency that has a minor unit, written
// as ISO writes it; anything else is a 400 on data.currency, for an opening
// and for a movement alike.
func TestCurrencies(t *testing.T) {
	tests := []struct {
		code string
		ok   bool
	}{
		{"EUR", true}, {"USD", true}, {"JPY", true}, {"KWD", true},
		{"CLF", true},  // a fund code with a minor unit (4 decimals)
		{"XAF", true},  // a real currency whose code starts with X
		{"XCG", true},  // the Caribbean guilder, listed in 2025
		{"QQQ", false}, // three capitals, never assigned
		{"ZZZ", false},
		{"XXX", false}, // "no currency"
		{"XTS", false}, // reserved for testing
		{"XAU", false}, // gold: no minor unit
		{"XDR", false}, // the SDR: no minor unit
		{"HRK", false}, // withdrawn in 2023
		{"ANG", false}, // withdrawn, replaced by XCG
		{"eur", false}, {"Eur", false}, {"EU", false}, {"EURO", false}, {"", false}, {"E1R", false}, {" EUR", false},
	}
	for _, tt := range tests {
		t.Run(fmt.Sprintf("%q", tt.code), func(t *testing.T) {
			if got := isCurrency(tt.code); got != tt.ok {
				t.Errorf("isCurrency(%q) = %v, want %v", tt.code, got, tt.ok)
			}
			for _, typ := range []string{"OpenAccount", "DepositFunds", "WithdrawFunds"} {
				data := fmt.Sprintf(`{"amount":1,"currency":%q,"reference":"r"}`, tt.code)
				if typ == "OpenAccount" {
					data = fmt.Sprintf(`{"owner":"Ada","email":"ada@example.com","currency":%q}`, tt.code)
				}
				_, _, err := Parse([]byte(body(typ, "acc-1", data)))
				var ve *ValidationError
				switch {
				case tt.ok && err != nil:
					t.Errorf("%s refused %q: %v", typ, tt.code, err)
				case !tt.ok && (!errors.As(err, &ve) || KindOf(err) != Invalid || len(ve.Fields) != 1 || ve.Fields[0].Field != "data.currency"):
					t.Errorf("%s with %q: %v, want a 400 on data.currency", typ, tt.code, err)
				}
			}
		})
	}
}

// The table is ISO's list one as published: 165 codes with a minor unit, each
// three capitals, none listed twice, none of those without a minor unit.
func TestTheCurrencyTableIsISOs(t *testing.T) {
	if n := len(currencyDecimals); n != 165 {
		t.Errorf("%d currencies, want the 165 of ISO 4217 (2026-01-01) that have a minor unit", n)
	}
	for c := range currencyDecimals {
		if len(c) != 3 || strings.ToUpper(c) != c || strings.Trim(c, "ABCDEFGHIJKLMNOPQRSTUVWXYZ") != "" {
			t.Errorf("%q is not three capitals", c)
		}
	}
	for _, c := range strings.Fields("XAG XAU XBA XBB XBC XBD XDR XPD XPT XSU XTS XUA XXX") {
		if isCurrency(c) {
			t.Errorf("%s has no minor unit but is listed", c)
		}
	}
	for c, want := range map[string]int{"EUR": 2, "JPY": 0, "KRW": 0, "XOF": 0, "PYG": 0, "BHD": 3, "LYD": 3, "CLF": 4, "UYW": 4} {
		if got := currencyDecimals[c]; got != want {
			t.Errorf("%s has %d decimals, want %d", c, got, want)
		}
	}
}
