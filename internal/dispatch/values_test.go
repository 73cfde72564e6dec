package dispatch

import (
	"fmt"
	"reflect"
	"strings"
	"testing"
)

// nested returns n objects nested in one another, the innermost holding
// leaf under "a": nested(2, "1") is {"a":{"a":1}}.
func nested(n int, leaf string) string {
	return strings.Repeat(`{"a":`, n) + leaf + strings.Repeat(`}`, n)
}

func TestJSONTooDeep(t *testing.T) {
	tests := []struct {
		name string
		in   string
		max  int
		want bool
	}{
		{"accepts a scalar", `1`, 0, false},
		{"accepts objects nested exactly max deep", nested(3, "1"), 3, false},
		{"refuses objects nested one deeper than max", nested(4, "1"), 3, true},
		{"refuses arrays nested one deeper than max", `[[[[]]]]`, 3, true},
		{"counts objects and arrays together", `{"a":[{"b":[1]}]}`, 3, true},
		{"counts only the deepest branch", `{"a":[1],"b":[2],"c":{"d":[3]}}`, 3, false},
		{"ignores brackets inside strings", `{"a":"[[[[{{{{"}`, 1, false},
		{"ignores an escaped quote inside a string", `{"a":"\"[[[["}`, 1, false},
		{"sees brackets after an escaped backslash ends a string", `{"a":"\\",  "b":[[[1]]]}`, 3, true},
		{"refuses 40,000 levels without reading them all", strings.Repeat("[", 40000), MaxJSONDepth, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := jsonTooDeep([]byte(tt.in), tt.max); got != tt.want {
				t.Errorf("jsonTooDeep(%.40s, %d) = %v, want %v", tt.in, tt.max, got, tt.want)
			}
		})
	}
}

func TestCheckNumber(t *testing.T) {
	const digits38 = "12345678901234567890123456789012345678"
	tests := []struct {
		name string
		in   string
		want string // a substring of the message; "" when DynamoDB stores it
	}{
		{"accepts zero", "0", ""},
		{"accepts negative zero", "-0", ""},
		{"accepts zero with any exponent", "0e999999999999", ""},
		{"accepts zero with fraction digits", "0.000000000000000000000000000000000000000000000", ""},
		{"accepts an ordinary decimal", "-12.50", ""},
		{"accepts 38 significant digits", digits38, ""},
		{"accepts 38 significant digits after leading zeros", "0.000" + digits38, ""},
		{"does not count trailing zeros of an integer", "1" + strings.Repeat("0", 60), ""},
		{"does not count trailing zeros of a fraction", "1." + strings.Repeat("0", 60), ""},
		{"refuses 39 significant digits", digits38 + "9", "has 39 significant digits"},
		{"refuses 40 significant digits", digits38 + "91", "has 40 significant digits"},
		{"does not count a trailing zero as significant", digits38 + "0", ""},
		{"refuses 39 digits spread over a decimal point", "1234567890123456789.01234567890123456789", "has 39 significant digits"},
		{"counts the zeros between significant digits", "10000000000000000000000000000000000000001", "has 41 significant digits"},
		{"accepts the largest magnitude", "9.9999999999999999999999999999999999999E+125", ""},
		{"accepts the most negative number", "-9.9999999999999999999999999999999999999E+125", ""},
		{"accepts 1E+125 written as 38 digits and an exponent", digits38 + "e88", ""},
		{"refuses 1E+126", "1E126", "outside DynamoDB's number range"},
		{"refuses 1e200", "1e200", "outside DynamoDB's number range"},
		{"refuses -1e200", "-1e200", "outside DynamoDB's number range"},
		{"refuses an overflow written without an exponent", "1" + strings.Repeat("0", 126), "outside DynamoDB's number range"},
		{"accepts the smallest magnitude", "1E-130", ""},
		{"accepts the smallest magnitude written with a fraction", "0.10E-129", ""},
		{"accepts the smallest negative magnitude", "-1e-0130", ""},
		{"refuses 1E-131", "1E-131", "outside DynamoDB's number range"},
		{"refuses an underflow written without an exponent", "0." + strings.Repeat("0", 130) + "1", "outside DynamoDB's number range"},
		{"refuses an exponent too long to parse", "1e99999999999999999999", "outside DynamoDB's number range"},
		{"refuses a negative exponent too long to parse", "1e-99999999999999999999", "outside DynamoDB's number range"},
		{"accepts an exponent with many leading zeros", "1e0000000000000000000005", ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := checkNumber(tt.in)
			if tt.want == "" && got != "" || tt.want != "" && !strings.Contains(got, tt.want) {
				t.Errorf("checkNumber(%.50s) = %q, want %q", tt.in, got, tt.want)
			}
		})
	}
}

func TestCheckValue(t *testing.T) {
	decode := func(t *testing.T, s string) map[string]any {
		t.Helper()
		m, err := DecodeJSONObject([]byte(s))
		if err != nil {
			t.Fatal(err)
		}
		return m
	}
	depthMsg := fmt.Sprintf("nests objects and arrays more than %d deep (DynamoDB's limit)", MaxValueDepth)
	keyMsg := fmt.Sprintf("DynamoDB map keys are 1 to %d bytes", MaxMapKeyBytes)
	tests := []struct {
		name string
		in   string
		want []FieldError // Message is compared as a substring
	}{
		{"accepts an empty object", `{}`, nil},
		{"accepts strings, booleans, nulls and ordinary numbers", `{"s":"x","b":true,"n":null,"i":-1.5e3,"l":[1,"a",{"k":[]}]}`, nil},
		{"accepts objects nested exactly MaxValueDepth deep", nested(MaxValueDepth, "1"), nil},
		{"accepts an empty object at MaxValueDepth", nested(MaxValueDepth-1, "{}"), nil},
		{"refuses objects nested one deeper than MaxValueDepth, naming the path", nested(MaxValueDepth+1, "1"),
			[]FieldError{{"state" + strings.Repeat(".a", MaxValueDepth), depthMsg}}},
		{"refuses an empty object one deeper than MaxValueDepth", nested(MaxValueDepth, "{}"),
			[]FieldError{{"state" + strings.Repeat(".a", MaxValueDepth), depthMsg}}},
		{"refuses arrays nested one deeper than MaxValueDepth", `{"a":` + strings.Repeat("[", MaxValueDepth) + strings.Repeat("]", MaxValueDepth) + `}`,
			[]FieldError{{"state.a" + strings.Repeat("[0]", MaxValueDepth-1), depthMsg}}},
		{"refuses a number DynamoDB cannot hold, naming its path", `{"a":{"b":[1,1e200]}}`,
			[]FieldError{{"state.a.b[1]", "outside DynamoDB's number range"}}},
		{"refuses an empty key, naming the object", `{"a":{"":1}}`, []FieldError{{"state.a", "has an empty key; " + keyMsg}}},
		{"refuses an empty key at the top", `{"":1}`, []FieldError{{"state", "has an empty key"}}},
		{"accepts a key of MaxMapKeyBytes", `{"` + strings.Repeat("k", MaxMapKeyBytes) + `":1}`, nil},
		{"refuses a key one byte over MaxMapKeyBytes", `{"` + strings.Repeat("k", MaxMapKeyBytes+1) + `":1}`,
			[]FieldError{{"state", fmt.Sprintf("has a key of %d bytes; %s", MaxMapKeyBytes+1, keyMsg)}}},
		{"counts a key's bytes, not its characters", `{"` + strings.Repeat("€", MaxMapKeyBytes/3+1) + `":1}`,
			[]FieldError{{"state", "has a key of 65538 bytes"}}},
		{"shortens a long key in a path", `{"` + strings.Repeat("k", 100) + `":1e999}`,
			[]FieldError{{"state." + strings.Repeat("k", 64) + "…", "outside DynamoDB's number range"}}},
		{"reports at most maxValueErrors problems", `{"l":[` + strings.TrimSuffix(strings.Repeat("1e200,", maxValueErrors+5), ",") + `]}`, func() []FieldError {
			var fe []FieldError
			for i := range maxValueErrors {
				fe = append(fe, FieldError{fmt.Sprintf("state.l[%d]", i), "outside DynamoDB's number range"})
			}
			return fe
		}()},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := checkValue("state", decode(t, tt.in))
			if len(got) != len(tt.want) {
				t.Fatalf("checkValue = %v, want %v", got, tt.want)
			}
			for i := range got {
				if got[i].Field != tt.want[i].Field || !strings.Contains(got[i].Message, tt.want[i].Message) {
					t.Errorf("error %d = %+v, want %+v", i, got[i], tt.want[i])
				}
			}
		})
	}
}

func TestIsBidiControl(t *testing.T) {
	tests := []struct {
		name string
		r    rune
		want bool
	}{
		{"refuses left-to-right embedding U+202A", '\u202a', true},
		{"refuses right-to-left override U+202E", '\u202e', true},
		{"refuses left-to-right isolate U+2066", '\u2066', true},
		{"refuses pop directional isolate U+2069", '\u2069', true},
		{"allows the left-to-right mark U+200E", '\u200e', false},
		{"allows the right-to-left mark U+200F", '\u200f', false},
		{"allows the Arabic letter mark U+061C", '\u061c', false},
		{"allows the narrow no-break space U+202F after the range", '\u202f', false},
		{"allows the invisible separator U+2063 before the isolates", '\u2063', false},
		{"allows a Hebrew letter", 'א', false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := IsBidiControl(tt.r); got != tt.want {
				t.Errorf("IsBidiControl(%U) = %v, want %v", tt.r, got, tt.want)
			}
		})
	}
}

func TestTemplatesFor(t *testing.T) {
	tests := []struct {
		name    string
		cmdType string
		want    []string
	}{
		{"gives Dispatch none of its own: its grant is configuration", "Dispatch", nil},
		{"gives OpenAccount its welcome", "OpenAccount", []string{TemplateAccountWelcome}},
		{"gives DepositFunds its receipt", "DepositFunds", []string{TemplateDepositReceipt}},
		{"gives WithdrawFunds its receipt", "WithdrawFunds", []string{TemplateWithdrawalReceipt}},
		{"gives an unknown command type nothing", "CloseAccount", nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := TemplatesFor(tt.cmdType)
			if !reflect.DeepEqual(got, tt.want) {
				t.Fatalf("TemplatesFor(%s) = %v, want %v", tt.cmdType, got, tt.want)
			}
			if len(got) > 0 {
				got[0] = "changed"
				if TemplatesFor(tt.cmdType)[0] == "changed" {
					t.Error("TemplatesFor returned the registry itself")
				}
			}
		})
	}
}
