package dispatch

import (
	"encoding/json"
	"errors"
	"fmt"
	"reflect"
	"strings"
	"testing"
	"time"
)

var decideNow = time.Date(2025, 3, 1, 12, 0, 0, 0, time.UTC)

// stored returns an aggregate as a store would give it: data decoded from
// JSON with numbers as json.Number.
func stored(t *testing.T, typ string, version int64, data string) Aggregate {
	t.Helper()
	m, err := DecodeJSONObject([]byte(data))
	if err != nil {
		t.Fatalf("DecodeJSONObject(%s): %v", data, err)
	}
	return Aggregate{ID: "acc-1", Type: typ, Version: version, Data: m}
}

// accountWith returns a stored Account with the given balance (JSON text).
func accountWith(t *testing.T, currency, balance string) Aggregate {
	t.Helper()
	return stored(t, AccountType, 3, fmt.Sprintf(`{"owner":"Ada Lovelace","email":"ada@example.com","currency":%q,"balance":%s}`, currency, balance))
}

func deposit(amount int64, currency string) *DepositFunds {
	return &DepositFunds{Movement{Amount: amount, Currency: currency, Reference: "inv-42"}}
}

func withdraw(amount int64, currency string) *WithdrawFunds {
	return &WithdrawFunds{Movement{Amount: amount, Currency: currency, Reference: "inv-42"}}
}

// errKind is the kind the edge would see.
func errKind(err error) Kind {
	var ve *ValidationError
	if errors.As(err, &ve) {
		return ve.Kind
	}
	return KindOf(err)
}

func TestAccountDecideRefuses(t *testing.T) {
	missing := Aggregate{ID: "acc-1"}
	tests := []struct {
		name      string
		cmd       Command
		cur       func(t *testing.T) Aggregate
		wantKind  Kind
		wantField string // for a *ValidationError; "" for an *Error
		wantMsg   string
	}{
		{"refuses to open an account that is already open", &OpenAccount{Owner: "Ada", Email: "ada@example.com", Currency: "EUR"},
			func(t *testing.T) Aggregate { return accountWith(t, "EUR", "0") }, Conflict, "", "already open"},
		{"refuses to open an account over another aggregate type", &OpenAccount{Owner: "Ada", Email: "ada@example.com", Currency: "EUR"},
			func(t *testing.T) Aggregate { return stored(t, "Order", 1, `{}`) }, Conflict, "", "already open"},
		{"refuses a deposit to a missing account", deposit(100, "EUR"),
			func(*testing.T) Aggregate { return missing }, NotFound, "", "no such account"},
		{"refuses a withdrawal from a missing account", withdraw(100, "EUR"),
			func(*testing.T) Aggregate { return missing }, NotFound, "", "no such account"},
		{"refuses a deposit to an aggregate that is not an account", deposit(100, "EUR"),
			func(t *testing.T) Aggregate { return stored(t, "Order", 2, `{"currency":"EUR","balance":0}`) }, NotFound, "", "no such account"},
		{"refuses a deposit in another currency", deposit(100, "USD"),
			func(t *testing.T) Aggregate { return accountWith(t, "EUR", "0") }, Unprocessable, "data.currency", "the account is in EUR"},
		{"refuses a withdrawal in another currency", withdraw(100, "USD"),
			func(t *testing.T) Aggregate { return accountWith(t, "EUR", "500") }, Unprocessable, "data.currency", "the account is in EUR"},
		{"refuses a withdrawal one unit beyond the balance", withdraw(1235, "EUR"),
			func(t *testing.T) Aggregate { return accountWith(t, "EUR", "1234") }, Unprocessable, "data.amount", "would overdraw the account (balance 12.34 EUR)"},
		{"refuses a withdrawal from an empty account", withdraw(1, "EUR"),
			func(t *testing.T) Aggregate { return accountWith(t, "EUR", "0") }, Unprocessable, "data.amount", "would overdraw"},
		{"refuses a deposit that would take the balance one unit beyond MaxAmountMinor", deposit(1, "EUR"),
			func(t *testing.T) Aggregate { return accountWith(t, "EUR", fmt.Sprint(int64(MaxAmountMinor))) }, Unprocessable, "data.amount", fmt.Sprintf("would exceed %d minor units", int64(MaxAmountMinor))},
		{"refuses a maximal deposit to a non-empty account", deposit(MaxAmountMinor, "EUR"),
			func(t *testing.T) Aggregate { return accountWith(t, "EUR", "1") }, Unprocessable, "data.amount", "would exceed"},
		{"reports unreadable account state as internal", deposit(1, "EUR"),
			func(t *testing.T) Aggregate { return accountWith(t, "EUR", `"lots"`) }, Internal, "", "decode account state"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			d, err := tt.cmd.Decide(tt.cur(t), decideNow)
			if err == nil {
				t.Fatalf("Decide = %+v, want an error", d)
			}
			if got := errKind(err); got != tt.wantKind {
				t.Errorf("kind = %v, want %v (err %v)", got, tt.wantKind, err)
			}
			if !strings.Contains(err.Error(), tt.wantMsg) {
				t.Errorf("error %q does not contain %q", err, tt.wantMsg)
			}
			var ve *ValidationError
			isVE := errors.As(err, &ve)
			switch {
			case tt.wantField == "" && isVE:
				t.Errorf("error is a *ValidationError %v, want an *Error", err)
			case tt.wantField != "" && !isVE:
				t.Errorf("error is %T, want a *ValidationError on %q", err, tt.wantField)
			case tt.wantField != "" && (len(ve.Fields) != 1 || ve.Fields[0].Field != tt.wantField):
				t.Errorf("Fields = %+v, want one on %q", ve.Fields, tt.wantField)
			}
		})
	}
}

func TestAccountDecideDecides(t *testing.T) {
	state := func(t *testing.T, currency, balance string) map[string]any {
		return accountWith(t, currency, balance).Data
	}
	receipt := func(tmpl, currency, amount, balance string) []Email {
		return []Email{{To: []string{"ada@example.com"}, Template: tmpl, Data: map[string]any{
			"owner": "Ada Lovelace", "accountId": "acc-1", "currency": currency, "reference": "inv-42",
			"amount": amount, "balance": balance,
		}}}
	}
	moved := func(typ, currency string, amount, balance int64) []Event {
		return []Event{{Type: typ, Data: map[string]any{"amount": amount, "currency": currency, "reference": "inv-42", "balance": balance}}}
	}
	tests := []struct {
		name string
		cmd  Command
		cur  func(t *testing.T) Aggregate
		want func(t *testing.T) Decision
	}{
		{
			name: "opens an account with a zero balance, an event and a welcome email",
			cmd:  &OpenAccount{Owner: "Ada Lovelace", Email: "ada@example.com", Currency: "EUR"},
			cur:  func(*testing.T) Aggregate { return Aggregate{ID: "acc-1"} },
			want: func(t *testing.T) Decision {
				return Decision{
					AggregateType: AccountType,
					Data:          state(t, "EUR", "0"),
					Events: []Event{{Type: "AccountOpened", Data: map[string]any{"owner": "Ada Lovelace", "currency": "EUR"},
						Private: map[string]any{"email": "ada@example.com"}}},
					Emails: []Email{{To: []string{"ada@example.com"}, Template: "account-welcome", Data: map[string]any{
						"owner": "Ada Lovelace", "accountId": "acc-1", "currency": "EUR",
					}}},
				}
			},
		},
		{
			name: "deposits into an empty account with a formatted receipt",
			cmd:  deposit(1234, "EUR"),
			cur:  func(t *testing.T) Aggregate { return accountWith(t, "EUR", "0") },
			want: func(t *testing.T) Decision {
				return Decision{AggregateType: AccountType, Data: state(t, "EUR", "1234"),
					Events: moved("FundsDeposited", "EUR", 1234, 1234), Emails: receipt("deposit-receipt", "EUR", "12.34", "12.34")}
			},
		},
		{
			name: "withdraws part of the balance",
			cmd:  withdraw(1, "EUR"),
			cur:  func(t *testing.T) Aggregate { return accountWith(t, "EUR", "10000") },
			want: func(t *testing.T) Decision {
				return Decision{AggregateType: AccountType, Data: state(t, "EUR", "9999"),
					Events: moved("FundsWithdrawn", "EUR", 1, 9999), Emails: receipt("withdrawal-receipt", "EUR", "0.01", "99.99")}
			},
		},
		{
			name: "allows a withdrawal of exactly the balance, leaving zero",
			cmd:  withdraw(1234, "EUR"),
			cur:  func(t *testing.T) Aggregate { return accountWith(t, "EUR", "1234") },
			want: func(t *testing.T) Decision {
				return Decision{AggregateType: AccountType, Data: state(t, "EUR", "0"),
					Events: moved("FundsWithdrawn", "EUR", 1234, 0), Emails: receipt("withdrawal-receipt", "EUR", "12.34", "0.00")}
			},
		},
		{
			name: "allows a deposit that brings the balance to exactly MaxAmountMinor",
			cmd:  deposit(1, "EUR"),
			cur:  func(t *testing.T) Aggregate { return accountWith(t, "EUR", fmt.Sprint(int64(MaxAmountMinor)-1)) },
			want: func(t *testing.T) Decision {
				return Decision{AggregateType: AccountType, Data: state(t, "EUR", "1000000000000000"),
					Events: moved("FundsDeposited", "EUR", 1, MaxAmountMinor), Emails: receipt("deposit-receipt", "EUR", "0.01", "10000000000000.00")}
			},
		},
		{
			name: "keeps a fifteen-digit balance exact to the unit",
			cmd:  withdraw(1, "EUR"),
			cur:  func(t *testing.T) Aggregate { return accountWith(t, "EUR", "999999999999999") },
			want: func(t *testing.T) Decision {
				return Decision{AggregateType: AccountType, Data: state(t, "EUR", "999999999999998"),
					Events: moved("FundsWithdrawn", "EUR", 1, 999999999999998), Emails: receipt("withdrawal-receipt", "EUR", "0.01", "9999999999999.98")}
			},
		},
		{
			name: "formats a yen receipt without minor digits",
			cmd:  deposit(500, "JPY"),
			cur:  func(t *testing.T) Aggregate { return accountWith(t, "JPY", "1000") },
			want: func(t *testing.T) Decision {
				return Decision{AggregateType: AccountType, Data: state(t, "JPY", "1500"),
					Events: moved("FundsDeposited", "JPY", 500, 1500), Emails: receipt("deposit-receipt", "JPY", "500", "1500")}
			},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			cur := tt.cur(t)
			before := snapshot(t, cur.Data)
			got, err := tt.cmd.Decide(cur, decideNow)
			if err != nil {
				t.Fatalf("Decide: %v", err)
			}
			if want := tt.want(t); !reflect.DeepEqual(got, want) {
				t.Errorf("Decision =\n%#v\nwant\n%#v", got, want)
			}
			cmdType := reflect.TypeOf(tt.cmd).Elem().Name()
			for _, e := range got.Emails {
				if !templateAllowed(cmdType, e.Template) {
					t.Errorf("%s sends template %q, not in its list %v", cmdType, e.Template, TemplatesFor(cmdType))
				}
			}
			if b, ok := got.Data["balance"].(json.Number); !ok {
				t.Errorf("balance in state is %T, want json.Number", got.Data["balance"])
			} else if _, err := b.Int64(); err != nil {
				t.Errorf("balance %q is not an exact integer: %v", b, err)
			}
			if after := snapshot(t, cur.Data); after != before {
				t.Errorf("Decide modified the current state: %s, was %s", after, before)
			}
		})
	}
}

// snapshot is a deep, comparable copy of JSON-compatible data.
func snapshot(t *testing.T, v any) string {
	t.Helper()
	b, err := json.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

func TestFormatMinor(t *testing.T) {
	tests := []struct {
		name     string
		amount   int64
		currency string
		want     string
	}{
		{"formats euros with two decimals", 1234, "EUR", "12.34"},
		{"pads a few cents with a leading zero", 5, "EUR", "0.05"},
		{"pads ten cents", 10, "EUR", "0.10"},
		{"formats zero as 0.00", 0, "EUR", "0.00"},
		{"formats a whole euro", 100, "EUR", "1.00"},
		{"formats yen without decimals", 1234, "JPY", "1234"},
		{"formats zero yen as 0", 0, "JPY", "0"},
		{"formats dinars with three decimals", 1234, "KWD", "1.234"},
		{"pads a few fils with leading zeros", 5, "KWD", "0.005"},
		{"formats a negative euro amount", -1234, "EUR", "-12.34"},
		{"formats a negative amount below one euro", -5, "EUR", "-0.05"},
		{"formats a negative yen amount", -7, "JPY", "-7"},
		{"treats an unlisted currency as two decimals", 1234, "XYZ", "12.34"},
		{"formats guaraní without decimals (ISO's table, not a short list)", 1234, "PYG", "1234"},
		{"formats a unidad de fomento with four decimals", 12345, "CLF", "1.2345"},
		{"formats MaxAmountMinor exactly", MaxAmountMinor, "EUR", "10000000000000.00"},
		{"formats MaxAmountMinor in dinars exactly", MaxAmountMinor, "KWD", "1000000000000.000"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := FormatMinor(tt.amount, tt.currency); got != tt.want {
				t.Errorf("FormatMinor(%d, %s) = %q, want %q", tt.amount, tt.currency, got, tt.want)
			}
		})
	}
}

func TestParseAddress(t *testing.T) {
	// 64 + 1 + 189 = 254 characters, the most a path allows (RFC 5321).
	longest := strings.Repeat("a", 64) + "@" + strings.Repeat("b", 63) + "." + strings.Repeat("c", 63) + "." + strings.Repeat("d", 57) + ".com"
	const invalid = "is not a valid email address"
	const hostMsg = "the domain must be a host name: labels of letters, digits and inner hyphens, 1 to 63 characters each"
	tests := []struct {
		name    string
		in      string
		want    string
		wantErr string
	}{
		{"accepts a bare address", "ada@example.com", "ada@example.com", ""},
		{"accepts a subdomain and plus tag", "ada+news@mail.example.co.uk", "ada+news@mail.example.co.uk", ""},
		{"strips a display name", "Ada Lovelace <ada@example.com>", "ada@example.com", ""},
		{"strips a quoted display name with a comma", `"Lovelace, Ada" <ada@example.com>`, "ada@example.com", ""},
		{"strips an encoded-word display name", "=?utf-8?q?Ad=C3=A1?= <ada@example.com>", "ada@example.com", ""},
		{"strips angle brackets", "<ada@example.com>", "ada@example.com", ""},
		{"accepts an address of exactly 254 characters", longest, longest, ""},
		{"rejects an empty address", "", "", "is required"},
		{"rejects an address without @", "ada.example.com", "", invalid},
		{"rejects an empty local part", "@example.com", "", invalid},
		{"rejects a domain without a dot", "ada@localhost", "", invalid},
		{"rejects a domain with a trailing dot", "ada@example.com.", "", invalid},
		{"rejects a CR LF header injection", "ada@example.com\r\nBcc: eve@example.com", "", invalid},
		{"rejects a bare LF", "ada@example.com\nX: y", "", invalid},
		{"rejects a display name with CR LF", "Ada\r\nBcc: eve@example.com <ada@example.com>", "", invalid},
		{"rejects a NUL byte", "ada@example.com\x00", "", invalid},
		{"rejects a tab in the display name", "Ada\tLovelace <ada@example.com>", "", invalid},
		{"rejects an address of 255 characters", "a" + longest, "", invalid},
		{"rejects two addresses", "ada@example.com, eve@example.com", "", invalid},
		{"rejects a space inside the domain", "ada@exa mple.com", "", invalid},
		{"rejects an unterminated angle address", "Ada <ada@example.com", "", invalid},
		{"accepts a punycode domain", "ada@xn--bcher-kva.example", "ada@xn--bcher-kva.example", ""},
		{"accepts hyphens and digits inside domain labels", "ada@mail-1.example-2.com", "ada@mail-1.example-2.com", ""},
		{"accepts a local part of exactly 64 characters", strings.Repeat("a", 64) + "@example.com", strings.Repeat("a", 64) + "@example.com", ""},
		{"rejects a local part of 65 characters", strings.Repeat("a", 65) + "@example.com", "", "the part before @ must be at most 64 characters"},
		{"rejects a non-ASCII local part", "jörg@example.com", "", "the part before @ must be ASCII: internationalized local parts cannot be sent"},
		{"rejects a non-ASCII local part behind a display name", "Jörg <jörg@example.com>", "", "the part before @ must be ASCII: internationalized local parts cannot be sent"},
		{"rejects an internationalized domain not in punycode", "ada@bücher.example", "", "the domain must be ASCII: write an internationalized domain in punycode (xn--...)"},
		{"rejects a bidi override in the domain", "ada@example.com\u202e", "", "the domain must be ASCII: write an internationalized domain in punycode (xn--...)"},
		{"rejects an IPv4 domain literal", "ada@[192.0.2.1]", "", "must have a domain name after @, not an address literal"},
		{"rejects a domain label starting with a hyphen", "ada@-example.com", "", hostMsg},
		{"rejects a domain label ending with a hyphen", "ada@example-.com", "", hostMsg},
		{"rejects a punctuation character in the domain", "ada@exa!mple.com", "", hostMsg},
		{"rejects an underscore in the domain", "ada@ex_ample.com", "", hostMsg},
		{"rejects a domain label of 64 characters", "ada@" + strings.Repeat("b", 64) + ".com", "", hostMsg},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := ParseAddress(tt.in)
			if tt.wantErr != "" {
				if err == nil || err.Error() != tt.wantErr {
					t.Fatalf("ParseAddress(%q) = %q, %v; want error %q", tt.in, got, err, tt.wantErr)
				}
				if got != "" {
					t.Errorf("ParseAddress(%q) returned %q with an error", tt.in, got)
				}
				return
			}
			if err != nil || got != tt.want {
				t.Errorf("ParseAddress(%q) = %q, %v; want %q", tt.in, got, err, tt.want)
			}
		})
	}
}

func TestCheckText(t *testing.T) {
	tests := []struct {
		name string
		in   string
		max  int
		want string
	}{
		{"accepts ordinary text", "Ada Lovelace", 100, ""},
		{"accepts exactly max characters counted as runes", strings.Repeat("é", 5), 5, ""},
		{"rejects empty text", "", 5, "is required"},
		{"rejects blank text", " \t ", 5, "is required"},
		{"rejects text one character too long", strings.Repeat("é", 6), 5, "must be at most 5 characters"},
		{"rejects a line feed", "a\nb", 5, "must not contain control characters (CR, LF, tab, ...)"},
		{"rejects a tab", "a\tb", 5, "must not contain control characters (CR, LF, tab, ...)"},
		{"rejects DEL", "a\x7fb", 5, "must not contain control characters (CR, LF, tab, ...)"},
		{"rejects a C1 control", "a\u0085b", 5, "must not contain control characters (CR, LF, tab, ...)"},
		{"rejects a right-to-left override", "Ada \u202eecalevoL", 100, "must not contain bidirectional override or isolate characters (found U+202E)"},
		{"rejects a left-to-right embedding", "a\u202ab", 5, "must not contain bidirectional override or isolate characters (found U+202A)"},
		{"rejects a first strong isolate", "a\u2068b", 5, "must not contain bidirectional override or isolate characters (found U+2068)"},
		{"rejects a pop directional isolate", "a\u2069b", 5, "must not contain bidirectional override or isolate characters (found U+2069)"},
		{"accepts a right-to-left mark", "\u05d0\u05d1 \u200f3", 100, ""},
		{"accepts a left-to-right mark", "Ada\u200e", 100, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := checkText(tt.in, tt.max); got != tt.want {
				t.Errorf("checkText(%q, %d) = %q, want %q", tt.in, tt.max, got, tt.want)
			}
		})
	}
}
