package dispatch

import (
	"encoding/json"
	"errors"
	"fmt"
	"reflect"
	"strings"
	"testing"
)

// body builds a command envelope around raw JSON data.
func body(typ, id, data string) string {
	return fmt.Sprintf(`{"type":%q,"aggregateId":%q,"data":%s}`, typ, id, data)
}

// dispatchBody builds a Dispatch envelope from the command itself, so that a
// case can state its input and its expected parse result in one value.
func dispatchBody(t *testing.T, d Dispatch) string {
	t.Helper()
	b, err := json.Marshal(d)
	if err != nil {
		t.Fatal(err)
	}
	return body("Dispatch", "order-1", string(b))
}

func recipients(n int) []string {
	out := make([]string, n)
	for i := range out {
		out[i] = fmt.Sprintf("user%d@example.com", i)
	}
	return out
}

func events(n int) []DispatchEvent {
	out := make([]DispatchEvent, n)
	for i := range out {
		out[i] = DispatchEvent{Type: "OrderShipped"}
	}
	return out
}

func emails(n, to int) []DispatchEmail {
	out := make([]DispatchEmail, n)
	for i := range out {
		out[i] = DispatchEmail{To: recipients(to), Template: "order-shipped"}
	}
	return out
}

const validOpen = `{"owner":"Ada Lovelace","email":"ada@example.com","currency":"EUR"}`
const validMove = `{"amount":1234,"currency":"EUR","reference":"invoice 42"}`

func TestParseAccepts(t *testing.T) {
	maxID := strings.Repeat("a", MaxAggregateIDLen)
	zero := int64(0)
	seven := int64(7)
	tests := []struct {
		name    string
		body    string
		wantEnv Envelope // Data is not compared
		want    Command
	}{
		{
			name:    "accepts OpenAccount",
			body:    body("OpenAccount", "acc-1", validOpen),
			wantEnv: Envelope{Type: "OpenAccount", AggregateID: "acc-1"},
			want:    &OpenAccount{Owner: "Ada Lovelace", Email: "ada@example.com", Currency: "EUR"},
		},
		{
			name:    "accepts DepositFunds",
			body:    body("DepositFunds", "acc-1", validMove),
			wantEnv: Envelope{Type: "DepositFunds", AggregateID: "acc-1"},
			want:    &DepositFunds{Movement{Amount: 1234, Currency: "EUR", Reference: "invoice 42"}},
		},
		{
			name:    "accepts WithdrawFunds with an expected version",
			body:    `{"type":"WithdrawFunds","aggregateId":"acc-1","expectedVersion":7,"data":` + validMove + `}`,
			wantEnv: Envelope{Type: "WithdrawFunds", AggregateID: "acc-1", ExpectedVersion: &seven},
			want:    &WithdrawFunds{Movement{Amount: 1234, Currency: "EUR", Reference: "invoice 42"}},
		},
		{
			name:    "accepts expected version 0",
			body:    `{"type":"WithdrawFunds","aggregateId":"acc-1","expectedVersion":0,"data":` + validMove + `}`,
			wantEnv: Envelope{Type: "WithdrawFunds", AggregateID: "acc-1", ExpectedVersion: &zero},
			want:    &WithdrawFunds{Movement{Amount: 1234, Currency: "EUR", Reference: "invoice 42"}},
		},
		{
			name: "accepts Dispatch keeping state numbers exact",
			body: body("Dispatch", "order-1", `{"aggregateType":"Order","state":{"total":9007199254740993,"lines":[{"sku":"A"}],"note":null},`+
				`"events":[{"type":"OrderPlaced","data":{"total":12.50}}],`+
				`"emails":[{"to":["ada@example.com"],"template":"order-placed","data":{"n":1}}]}`),
			wantEnv: Envelope{Type: "Dispatch", AggregateID: "order-1"},
			want: &Dispatch{
				AggregateType: "Order",
				State:         map[string]any{"total": json.Number("9007199254740993"), "lines": []any{map[string]any{"sku": "A"}}, "note": nil},
				Events:        []DispatchEvent{{Type: "OrderPlaced", Data: map[string]any{"total": json.Number("12.50")}}},
				Emails:        []DispatchEmail{{To: []string{"ada@example.com"}, Template: "order-placed", Data: map[string]any{"n": json.Number("1")}}},
			},
		},
		{
			name:    "accepts Dispatch with events only",
			body:    body("Dispatch", "order-1", `{"aggregateType":"Order","events":[{"type":"order.v1-placed_x"}]}`),
			wantEnv: Envelope{Type: "Dispatch", AggregateID: "order-1"},
			want:    &Dispatch{AggregateType: "Order", Events: []DispatchEvent{{Type: "order.v1-placed_x"}}},
		},
		{
			name:    "accepts Dispatch with an empty state patch",
			body:    body("Dispatch", "order-1", `{"aggregateType":"Order","state":{}}`),
			wantEnv: Envelope{Type: "Dispatch", AggregateID: "order-1"},
			want:    &Dispatch{AggregateType: "Order", State: map[string]any{}},
		},
		{
			name:    "normalises an OpenAccount email with a display name to the bare address",
			body:    body("OpenAccount", "acc-1", `{"owner":"Ada","email":"Ada Lovelace <ada@example.com>","currency":"EUR"}`),
			wantEnv: Envelope{Type: "OpenAccount", AggregateID: "acc-1"},
			want:    &OpenAccount{Owner: "Ada", Email: "ada@example.com", Currency: "EUR"},
		},
		{
			name:    "normalises Dispatch recipients with display names to bare addresses",
			body:    body("Dispatch", "order-1", `{"aggregateType":"Order","emails":[{"to":["Ada <ada@example.com>","\"Babbage, C.\" <charles@example.org>","grace@example.net"],"template":"t1"}]}`),
			wantEnv: Envelope{Type: "Dispatch", AggregateID: "order-1"},
			want: &Dispatch{AggregateType: "Order", Emails: []DispatchEmail{{
				To: []string{"ada@example.com", "charles@example.org", "grace@example.net"}, Template: "t1",
			}}},
		},
		{
			name:    "accepts an aggregate id of exactly the maximum length",
			body:    body("DepositFunds", maxID, validMove),
			wantEnv: Envelope{Type: "DepositFunds", AggregateID: maxID},
			want:    &DepositFunds{Movement{Amount: 1234, Currency: "EUR", Reference: "invoice 42"}},
		},
		{
			name:    "accepts an aggregate id of digits, underscores and dashes",
			body:    body("DepositFunds", "0_a-B", validMove),
			wantEnv: Envelope{Type: "DepositFunds", AggregateID: "0_a-B"},
			want:    &DepositFunds{Movement{Amount: 1234, Currency: "EUR", Reference: "invoice 42"}},
		},
		{
			name:    "accepts the maximum amount",
			body:    body("DepositFunds", "acc-1", fmt.Sprintf(`{"amount":%d,"currency":"EUR","reference":"r"}`, int64(MaxAmountMinor))),
			wantEnv: Envelope{Type: "DepositFunds", AggregateID: "acc-1"},
			want:    &DepositFunds{Movement{Amount: MaxAmountMinor, Currency: "EUR", Reference: "r"}},
		},
		{
			name:    "accepts a state nested exactly MaxValueDepth deep",
			body:    body("Dispatch", "order-1", `{"aggregateType":"Order","state":`+nested(MaxValueDepth, "1")+`}`),
			wantEnv: Envelope{Type: "Dispatch", AggregateID: "order-1"},
			want:    &Dispatch{AggregateType: "Order", State: object(t, nested(MaxValueDepth, "1"))},
		},
		{
			name:    "accepts DynamoDB's extreme numbers exactly",
			body:    body("Dispatch", "order-1", `{"aggregateType":"Order","state":{"digits":12345678901234567890123456789012345678,"big":-9.9999999999999999999999999999999999999E+125,"small":1E-130}}`),
			wantEnv: Envelope{Type: "Dispatch", AggregateID: "order-1"},
			want: &Dispatch{AggregateType: "Order", State: map[string]any{"digits": json.Number("12345678901234567890123456789012345678"),
				"big": json.Number("-9.9999999999999999999999999999999999999E+125"), "small": json.Number("1E-130")}},
		},
		{
			name:    "accepts a punycode domain and a right-to-left mark in a name",
			body:    body("OpenAccount", "acc-1", `{"owner":"\u05d0\u05d3\u05d4 \u200f3","email":"ada@xn--bcher-kva.example","currency":"EUR"}`),
			wantEnv: Envelope{Type: "OpenAccount", AggregateID: "acc-1"},
			want:    &OpenAccount{Owner: "\u05d0\u05d3\u05d4 \u200f3", Email: "ada@xn--bcher-kva.example", Currency: "EUR"},
		},
		{
			name:    "accepts trailing whitespace",
			body:    body("DepositFunds", "acc-1", validMove) + " \n\t",
			wantEnv: Envelope{Type: "DepositFunds", AggregateID: "acc-1"},
			want:    &DepositFunds{Movement{Amount: 1234, Currency: "EUR", Reference: "invoice 42"}},
		},
	}
	for _, limit := range []struct {
		name string
		cmd  Dispatch
	}{
		{"accepts exactly MaxEventsPerCommand events", Dispatch{AggregateType: "Order", Events: events(MaxEventsPerCommand)}},
		{"accepts exactly MaxEmailsPerCommand emails", Dispatch{AggregateType: "Order", Emails: emails(MaxEmailsPerCommand, 1)}},
		{"accepts exactly MaxRecipientsPerEmail recipients", Dispatch{AggregateType: "Order", Emails: emails(1, MaxRecipientsPerEmail)}},
		{"accepts an aggregate type of exactly MaxTypeLen", Dispatch{AggregateType: strings.Repeat("T", MaxTypeLen), Events: events(1)}},
		{"accepts an event type of exactly MaxTypeLen", Dispatch{AggregateType: "Order", Events: []DispatchEvent{{Type: strings.Repeat("E", MaxTypeLen)}}}},
		{"accepts a template name of 64 characters", Dispatch{AggregateType: "Order", Emails: []DispatchEmail{{To: recipients(1), Template: strings.Repeat("t", 64)}}}},
	} {
		want := limit.cmd
		tests = append(tests, struct {
			name    string
			body    string
			wantEnv Envelope
			want    Command
		}{limit.name, dispatchBody(t, limit.cmd), Envelope{Type: "Dispatch", AggregateID: "order-1"}, &want})
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			env, cmd, err := Parse([]byte(tt.body))
			if err != nil {
				t.Fatalf("Parse: %v", err)
			}
			env.Data = nil
			if !reflect.DeepEqual(env, tt.wantEnv) {
				t.Errorf("envelope = %+v, want %+v", env, tt.wantEnv)
			}
			if !reflect.DeepEqual(cmd, tt.want) {
				t.Errorf("command = %#v\nwant %#v", cmd, tt.want)
			}
		})
	}
}

func TestParseRejects(t *testing.T) {
	const idMsg = "must be 1 to 64 characters of A-Z a-z 0-9 _ - starting with a letter or digit"
	const typeMsg = "must be 1 to 128 characters of A-Z a-z 0-9 . _ - starting with a letter"
	badRecipients := Dispatch{AggregateType: "Order", Emails: []DispatchEmail{{To: []string{"ada@example.com", "not-an-address"}, Template: "t"}}}
	tests := []struct {
		name      string
		body      string
		wantField string
		wantMsg   string // a substring of the field's message
	}{
		// The body as a whole.
		{"rejects a body that is not UTF-8", "\xff\xfe", "", "body is not valid UTF-8"},
		{"rejects invalid UTF-8 inside a JSON string", body("OpenAccount", "acc-1", "{\"owner\":\"Ad\xc3\",\"email\":\"ada@example.com\",\"currency\":\"EUR\"}"), "", "body is not valid UTF-8"},
		{"rejects an empty body", "", "", "body is empty"},
		{"rejects a whitespace-only body", " \n ", "", "body is empty"},
		{"rejects truncated JSON", `{"type":"OpenAccount",`, "", "malformed JSON"},
		{"rejects a JSON syntax error", `{"type" "OpenAccount"}`, "", "malformed JSON at byte"},
		{"rejects a body that is not an object", `["OpenAccount"]`, "", "must be an object, not array"},
		{"rejects a second JSON value after the first", body("OpenAccount", "acc-1", validOpen) + `{}`, "", "unexpected data after the JSON value"},
		{"rejects trailing garbage", body("OpenAccount", "acc-1", validOpen) + ` x`, "", "unexpected data after the JSON value"},
		{"rejects an unknown top-level field", `{"type":"OpenAccount","aggregateId":"acc-1","extra":1,"data":` + validOpen + `}`, "", `unknown field "extra"`},
		{"rejects an unknown field inside data", body("OpenAccount", "acc-1", `{"owner":"Ada","email":"ada@example.com","currency":"EUR","extra":1}`), "data", `unknown field "extra"`},
		{"rejects an unknown field inside a movement", body("DepositFunds", "acc-1", `{"amount":1,"currency":"EUR","reference":"r","fee":1}`), "data", `unknown field "fee"`},

		// Wrong types.
		{"rejects an amount given as a string", body("DepositFunds", "acc-1", `{"amount":"12","currency":"EUR","reference":"r"}`), "data.amount", "must be a number, not string"},
		{"rejects a fractional amount", body("WithdrawFunds", "acc-1", `{"amount":12.5,"currency":"EUR","reference":"r"}`), "data.amount", "must be a whole number"},
		{"rejects an aggregate id given as a number", `{"type":"OpenAccount","aggregateId":5,"data":` + validOpen + `}`, "aggregateId", "must be a string, not number"},
		{"rejects a type given as a boolean", `{"type":true,"aggregateId":"acc-1","data":` + validOpen + `}`, "type", "must be a string, not bool"},
		{"rejects data that is not an object", body("OpenAccount", "acc-1", `5`), "data", "must be an object, not number"},
		{"rejects a state patch that is not an object", body("Dispatch", "o-1", `{"aggregateType":"Order","state":[1]}`), "data.state", "must be an object, not array"},
		{"rejects events that are not an array", body("Dispatch", "o-1", `{"aggregateType":"Order","events":{}}`), "data.events", "must be an array, not object"},
		{"rejects an owner given as a number", body("OpenAccount", "acc-1", `{"owner":1,"email":"ada@example.com","currency":"EUR"}`), "data.owner", "must be a string, not number"},

		// The envelope's fields.
		{"rejects a missing type", `{"aggregateId":"acc-1","data":` + validOpen + `}`, "type", "is required"},
		{"rejects a missing aggregate id", `{"type":"OpenAccount","data":` + validOpen + `}`, "aggregateId", "is required"},
		{"rejects an empty aggregate id", body("OpenAccount", "", validOpen), "aggregateId", "is required"},
		{"rejects missing data", `{"type":"OpenAccount","aggregateId":"acc-1"}`, "data", "is required"},
		{"rejects null data", body("OpenAccount", "acc-1", `null`), "data", "is required"},
		{"rejects an unknown command type and lists the known ones", body("NoSuchCommandType", "acc-1", `{}`), "type",
			`unknown command type "NoSuchCommandType"; known: ` + strings.Join(CommandTypes(), ", ")},
		{"rejects a command type that differs only in case", body("openaccount", "acc-1", validOpen), "type", `unknown command type "openaccount"`},
		{"rejects an aggregate id one longer than the maximum", body("OpenAccount", strings.Repeat("a", MaxAggregateIDLen+1), validOpen), "aggregateId", idMsg},
		{"rejects an aggregate id that climbs a path", body("OpenAccount", "../x", validOpen), "aggregateId", idMsg},
		{"rejects an aggregate id with a slash", body("OpenAccount", "a/b", validOpen), "aggregateId", idMsg},
		{"rejects an aggregate id with a dot", body("OpenAccount", "a.b", validOpen), "aggregateId", idMsg},
		{"rejects an aggregate id with non-ASCII letters", body("OpenAccount", "café", validOpen), "aggregateId", idMsg},
		{"rejects an aggregate id with a space", body("OpenAccount", "a b", validOpen), "aggregateId", idMsg},
		{"rejects an aggregate id starting with a dash", body("OpenAccount", "-ab", validOpen), "aggregateId", idMsg},
		{"rejects an aggregate id starting with an underscore", body("OpenAccount", "_ab", validOpen), "aggregateId", idMsg},
		{"rejects an aggregate id with a newline", body("OpenAccount", "ab\n", validOpen), "aggregateId", idMsg},
		{"rejects a negative expected version", `{"type":"OpenAccount","aggregateId":"acc-1","expectedVersion":-1,"data":` + validOpen + `}`, "expectedVersion", "must be 0 or more"},
		{"rejects a fractional expected version", `{"type":"OpenAccount","aggregateId":"acc-1","expectedVersion":1.5,"data":` + validOpen + `}`, "expectedVersion", "must be a whole number"},

		// OpenAccount data.
		{"rejects a blank owner", body("OpenAccount", "acc-1", `{"owner":"  ","email":"ada@example.com","currency":"EUR"}`), "data.owner", "is required"},
		{"rejects an owner with a line break", body("OpenAccount", "acc-1", `{"owner":"Ada\r\nBcc: x","email":"ada@example.com","currency":"EUR"}`), "data.owner", "must not contain control characters"},
		{"rejects an owner longer than 100 characters", body("OpenAccount", "acc-1", `{"owner":"`+strings.Repeat("é", 101)+`","email":"ada@example.com","currency":"EUR"}`), "data.owner", "must be at most 100 characters"},
		{"rejects an invalid account email", body("OpenAccount", "acc-1", `{"owner":"Ada","email":"ada.example.com","currency":"EUR"}`), "data.email", "is not a valid email address"},
		{"rejects a missing account email", body("OpenAccount", "acc-1", `{"owner":"Ada","currency":"EUR"}`), "data.email", "is required"},
		{"rejects a lower-case currency", body("OpenAccount", "acc-1", `{"owner":"Ada","email":"ada@example.com","currency":"eur"}`), "data.currency", "must be an active ISO 4217 currency code"},

		// Movement data.
		{"rejects a zero amount", body("DepositFunds", "acc-1", `{"amount":0,"currency":"EUR","reference":"r"}`), "data.amount", fmt.Sprintf("from 1 to %d", int64(MaxAmountMinor))},
		{"rejects a negative amount", body("WithdrawFunds", "acc-1", `{"amount":-5,"currency":"EUR","reference":"r"}`), "data.amount", "from 1 to"},
		{"rejects an amount above MaxAmountMinor", body("DepositFunds", "acc-1", fmt.Sprintf(`{"amount":%d,"currency":"EUR","reference":"r"}`, int64(MaxAmountMinor)+1)), "data.amount", "from 1 to"},
		{"rejects a four-letter currency", body("DepositFunds", "acc-1", `{"amount":1,"currency":"EURO","reference":"r"}`), "data.currency", "must be an active ISO 4217 currency code"},
		{"rejects a missing reference", body("DepositFunds", "acc-1", `{"amount":1,"currency":"EUR"}`), "data.reference", "is required"},
		{"rejects a reference longer than 128 characters", body("DepositFunds", "acc-1", `{"amount":1,"currency":"EUR","reference":"`+strings.Repeat("r", 129)+`"}`), "data.reference", "must be at most 128 characters"},

		// Dispatch data.
		{"rejects a dispatch with no state, events or emails", body("Dispatch", "o-1", `{"aggregateType":"Order"}`), "data", "give at least one of state, events, emails"},
		{"rejects a dispatch whose state is null and lists are empty", body("Dispatch", "o-1", `{"aggregateType":"Order","state":null,"events":[],"emails":[]}`), "data", "give at least one of state, events, emails"},
		{"rejects a missing aggregate type", body("Dispatch", "o-1", `{"state":{}}`), "data.aggregateType", typeMsg},
		{"rejects an aggregate type starting with a digit", body("Dispatch", "o-1", `{"aggregateType":"1Order","state":{}}`), "data.aggregateType", typeMsg},
		{"rejects an aggregate type longer than MaxTypeLen", body("Dispatch", "o-1", `{"aggregateType":"`+strings.Repeat("T", MaxTypeLen+1)+`","state":{}}`), "data.aggregateType", typeMsg},
		{"rejects more than MaxEventsPerCommand events", dispatchBody(t, Dispatch{AggregateType: "Order", Events: events(MaxEventsPerCommand + 1)}), "data.events",
			fmt.Sprintf("at most %d events per command, got %d", MaxEventsPerCommand, MaxEventsPerCommand+1)},
		{"rejects more than MaxEmailsPerCommand emails", dispatchBody(t, Dispatch{AggregateType: "Order", Emails: emails(MaxEmailsPerCommand+1, 1)}), "data.emails",
			fmt.Sprintf("at most %d emails per command, got %d", MaxEmailsPerCommand, MaxEmailsPerCommand+1)},
		{"rejects more than MaxRecipientsPerEmail recipients", dispatchBody(t, Dispatch{AggregateType: "Order", Emails: emails(1, MaxRecipientsPerEmail+1)}), "data.emails[0].to",
			fmt.Sprintf("at most %d recipients per email, got %d", MaxRecipientsPerEmail, MaxRecipientsPerEmail+1)},
		{"rejects an email without recipients", body("Dispatch", "o-1", `{"aggregateType":"Order","emails":[{"to":[],"template":"t"}]}`), "data.emails[0].to", "at least one recipient"},
		{"rejects an invalid recipient and names its index", dispatchBody(t, badRecipients), "data.emails[0].to[1]", "is not a valid email address"},
		{"rejects a recipient with a header injection", body("Dispatch", "o-1", `{"aggregateType":"Order","emails":[{"to":["ada@example.com\r\nBcc: eve@example.com"],"template":"t"}]}`), "data.emails[0].to[0]", "is not a valid email address"},
		{"rejects an empty recipient", body("Dispatch", "o-1", `{"aggregateType":"Order","emails":[{"to":[""],"template":"t"}]}`), "data.emails[0].to[0]", "is required"},
		{"rejects an event type with a space", body("Dispatch", "o-1", `{"aggregateType":"Order","events":[{"type":"Order"},{"type":"Order Placed"}]}`), "data.events[1].type", typeMsg},
		{"rejects an empty event type", body("Dispatch", "o-1", `{"aggregateType":"Order","events":[{"type":""}]}`), "data.events[0].type", typeMsg},
		{"rejects an event type starting with a dot", body("Dispatch", "o-1", `{"aggregateType":"Order","events":[{"type":".x"}]}`), "data.events[0].type", typeMsg},
		{"rejects an event type longer than MaxTypeLen", dispatchBody(t, Dispatch{AggregateType: "Order", Events: []DispatchEvent{{Type: strings.Repeat("E", MaxTypeLen+1)}}}), "data.events[0].type", typeMsg},
		{"rejects a template name with upper case", body("Dispatch", "o-1", `{"aggregateType":"Order","emails":[{"to":["ada@example.com"],"template":"Welcome"}]}`), "data.emails[0].template", "must be a template name of a-z 0-9 -"},
		{"rejects a template name that climbs a path", body("Dispatch", "o-1", `{"aggregateType":"Order","emails":[{"to":["ada@example.com"],"template":"../secret"}]}`), "data.emails[0].template", "must be a template name"},
		{"rejects an empty template name", body("Dispatch", "o-1", `{"aggregateType":"Order","emails":[{"to":["ada@example.com"]}]}`), "data.emails[0].template", "must be a template name"},
		{"rejects a template name of 65 characters", body("Dispatch", "o-1", `{"aggregateType":"Order","emails":[{"to":["ada@example.com"],"template":"`+strings.Repeat("t", 65)+`"}]}`), "data.emails[0].template", "must be a template name"},

		// Nesting, before anything is decoded.
		{"rejects a body nested deeper than MaxJSONDepth", body("Dispatch", "o-1", `{"aggregateType":"Order","state":`+nested(MaxJSONDepth, "1")+`}`), "",
			fmt.Sprintf("the JSON nests objects and arrays more than %d deep", MaxJSONDepth)},
		{"rejects a state nested 40,000 deep", body("Dispatch", "o-1", `{"aggregateType":"Order","state":`+nested(40000, "1")+`}`), "", "more than 64 deep"},
		{"rejects an unknown command type nested 40,000 deep", body("X", "o-1", strings.Repeat("[", 40000)), "", "more than 64 deep"},

		// What DynamoDB cannot store, in the state and in effects' data.
		{"rejects a state nested one deeper than MaxValueDepth", body("Dispatch", "o-1", `{"aggregateType":"Order","state":`+nested(MaxValueDepth+1, "1")+`}`),
			"data.state" + strings.Repeat(".a", MaxValueDepth), "more than 31 deep (DynamoDB's limit)"},
		{"rejects a state nested 33 deep", body("Dispatch", "o-1", `{"aggregateType":"Order","state":`+nested(33, "1")+`}`),
			"data.state" + strings.Repeat(".a", MaxValueDepth), "more than 31 deep"},
		{"rejects a 40-digit number in the state", body("Dispatch", "o-1", `{"aggregateType":"Order","state":{"n":1234567890123456789012345678901234567891}}`), "data.state.n", "has 40 significant digits"},
		{"rejects 1e200 in the state", body("Dispatch", "o-1", `{"aggregateType":"Order","state":{"n":1e200}}`), "data.state.n", "outside DynamoDB's number range"},
		{"rejects 1e-200 in the state", body("Dispatch", "o-1", `{"aggregateType":"Order","state":{"n":1e-200}}`), "data.state.n", "outside DynamoDB's number range"},
		{"rejects an empty key in the state", body("Dispatch", "o-1", `{"aggregateType":"Order","state":{"":1}}`), "data.state", "has an empty key"},
		{"rejects a 70,000-byte key in the state", body("Dispatch", "o-1", `{"aggregateType":"Order","state":{"`+strings.Repeat("k", 70000)+`":1}}`), "data.state", "has a key of 70000 bytes"},
		{"rejects an out-of-range number in event data", body("Dispatch", "o-1", `{"aggregateType":"Order","events":[{"type":"A","data":{"n":[1e400]}}]}`), "data.events[0].data.n[0]", "outside DynamoDB's number range"},
		{"rejects an empty key in email data", body("Dispatch", "o-1", `{"aggregateType":"Order","emails":[{"to":["ada@example.com"],"template":"notification","data":{"x":{"":1}}}]}`), "data.emails[0].data.x", "has an empty key"},

		// Addresses SES would refuse.
		{"rejects an internationalized domain not in punycode", body("OpenAccount", "acc-1", `{"owner":"Ada","email":"ada@bücher.example","currency":"EUR"}`), "data.email", "punycode"},
		{"rejects a non-ASCII local part", body("OpenAccount", "acc-1", `{"owner":"Ada","email":"jörg@example.com","currency":"EUR"}`), "data.email", "the part before @ must be ASCII"},
		{"rejects a local part of 65 characters", body("OpenAccount", "acc-1", `{"owner":"Ada","email":"`+strings.Repeat("a", 65)+`@example.com","currency":"EUR"}`), "data.email", "at most 64 characters"},
		{"rejects a domain literal recipient", body("Dispatch", "o-1", `{"aggregateType":"Order","emails":[{"to":["ada@[192.0.2.1]"],"template":"notification"}]}`), "data.emails[0].to[0]", "not an address literal"},

		// Text that would read as something else.
		{"rejects an owner with a right-to-left override", body("OpenAccount", "acc-1", `{"owner":"Ada \u202eecalevoL","email":"ada@example.com","currency":"EUR"}`), "data.owner", "bidirectional override or isolate characters (found U+202E)"},
		{"rejects a reference with a directional isolate", body("DepositFunds", "acc-1", `{"amount":1,"currency":"EUR","reference":"inv \u2067 7"}`), "data.reference", "found U+2067"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, cmd, err := Parse([]byte(tt.body))
			if cmd != nil {
				t.Errorf("Parse returned a command: %#v", cmd)
			}
			var ve *ValidationError
			if !errors.As(err, &ve) {
				t.Fatalf("Parse error = %v, want a *ValidationError", err)
			}
			if ve.Kind != Invalid {
				t.Errorf("Kind = %v, want %v", ve.Kind, Invalid)
			}
			for _, f := range ve.Fields {
				if f.Field == tt.wantField && strings.Contains(f.Message, tt.wantMsg) {
					return
				}
			}
			t.Errorf("Fields = %+v, want one with field %q and message containing %q", ve.Fields, tt.wantField, tt.wantMsg)
		})
	}
}

func TestParseReportsEveryProblemAtOnce(t *testing.T) {
	tests := []struct {
		name string
		body string
		want []FieldError
	}{
		{
			name: "reports every envelope problem",
			body: `{"aggregateId":"../x","expectedVersion":-2}`,
			want: []FieldError{
				{"type", "is required"},
				{"aggregateId", "must be 1 to 64 characters of A-Z a-z 0-9 _ - starting with a letter or digit"},
				{"expectedVersion", "must be 0 or more"},
				{"data", "is required"},
			},
		},
		{
			name: "reports every data problem under data",
			body: body("OpenAccount", "acc-1", `{"owner":"","email":"x","currency":"E"}`),
			want: []FieldError{
				{"data.owner", "is required"},
				{"data.email", "is not a valid email address"},
				{"data.currency", currencyMessage},
			},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, _, err := Parse([]byte(tt.body))
			var ve *ValidationError
			if !errors.As(err, &ve) {
				t.Fatalf("Parse error = %v, want a *ValidationError", err)
			}
			if !reflect.DeepEqual(ve.Fields, tt.want) {
				t.Errorf("Fields = %+v\nwant %+v", ve.Fields, tt.want)
			}
		})
	}
}

func TestValidationErrorTextAndKind(t *testing.T) {
	tests := []struct {
		name     string
		err      *ValidationError
		wantText string
		wantKind Kind
	}{
		{"joins fields with their messages", &ValidationError{Kind: Invalid, Fields: []FieldError{{"type", "is required"}, {"data.amount", "must be a whole number"}}},
			"validation: type: is required; data.amount: must be a whole number", Invalid},
		{"builds a single invalid field", InvalidField("data.x", "got %d", 3), "validation: data.x: got 3", Invalid},
		{"builds a single unprocessable field", UnprocessableField("data.currency", "the account is in %s", "EUR"), "refused: data.currency: the account is in EUR", Unprocessable},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := tt.err.Error(); got != tt.wantText {
				t.Errorf("Error() = %q, want %q", got, tt.wantText)
			}
			if tt.err.Kind != tt.wantKind {
				t.Errorf("Kind = %v, want %v", tt.err.Kind, tt.wantKind)
			}
		})
	}
}
