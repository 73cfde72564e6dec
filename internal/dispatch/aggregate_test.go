package dispatch

import (
	"encoding/json"
	"reflect"
	"slices"
	"sort"
	"strings"
	"testing"
)

func TestValidAggregateID(t *testing.T) {
	tests := []struct {
		name string
		id   string
		want bool
	}{
		{"accepts letters and digits", "acc42", true},
		{"accepts a leading digit", "42acc", true},
		{"accepts dashes and underscores after the first character", "a-b_c", true},
		{"accepts exactly MaxAggregateIDLen characters", strings.Repeat("x", MaxAggregateIDLen), true},
		{"rejects MaxAggregateIDLen+1 characters", strings.Repeat("x", MaxAggregateIDLen+1), false},
		{"rejects an empty id", "", false},
		{"rejects a leading dash", "-a", false},
		{"rejects a dot", "a.b", false},
		{"rejects dot-dot", "..", false},
		{"rejects a slash", "a/b", false},
		{"rejects a backslash", `a\b`, false},
		{"rejects a non-ASCII letter", "ä", false},
		{"rejects a trailing newline", "a\n", false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := ValidAggregateID(tt.id); got != tt.want {
				t.Errorf("ValidAggregateID(%q) = %v, want %v", tt.id, got, tt.want)
			}
		})
	}
}

func TestAggregateExists(t *testing.T) {
	tests := []struct {
		name    string
		version int64
		want    bool
	}{
		{"does not exist at version 0", 0, false},
		{"exists at version 1", 1, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := (Aggregate{Version: tt.version}).Exists(); got != tt.want {
				t.Errorf("Exists() at version %d = %v, want %v", tt.version, got, tt.want)
			}
		})
	}
}

func TestDecodeJSONObject(t *testing.T) {
	tests := []struct {
		name    string
		in      string
		want    map[string]any
		wantErr bool
	}{
		{"keeps numbers as json.Number", `{"n":9007199254740993,"f":0.1}`, map[string]any{"n": json.Number("9007199254740993"), "f": json.Number("0.1")}, false},
		{"keeps nested numbers as json.Number", `{"a":[{"n":1}]}`, map[string]any{"a": []any{map[string]any{"n": json.Number("1")}}}, false},
		{"turns null into an empty object", `null`, map[string]any{}, false},
		{"rejects an array", `[1]`, nil, true},
		{"rejects malformed JSON", `{"a":`, nil, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := DecodeJSONObject([]byte(tt.in))
			if (err != nil) != tt.wantErr {
				t.Fatalf("DecodeJSONObject(%s) error = %v, wantErr %v", tt.in, err, tt.wantErr)
			}
			if !reflect.DeepEqual(got, tt.want) {
				t.Errorf("DecodeJSONObject(%s) = %#v, want %#v", tt.in, got, tt.want)
			}
		})
	}
}

// CommandTypes follows the registry: every registered type, sorted, and
// nothing else. The built-in types are named only to show they are there;
// a type added as docs/api.md says ("Adding a command type") changes
// nothing here (TestTheAddACommandTypeRecipe runs that recipe).
func TestCommandTypes(t *testing.T) {
	got := CommandTypes()
	if !sort.StringsAreSorted(got) {
		t.Errorf("CommandTypes() = %v, not sorted", got)
	}
	if len(got) != len(commands) {
		t.Errorf("CommandTypes() = %v, want the %d registered types", got, len(commands))
	}
	for _, typ := range got {
		if _, ok := commands[typ]; !ok {
			t.Errorf("CommandTypes() lists %q, which is not registered", typ)
		}
	}
	for _, builtin := range []string{"DepositFunds", "Dispatch", "OpenAccount", "WithdrawFunds"} {
		if !slices.Contains(got, builtin) {
			t.Errorf("CommandTypes() = %v, missing the built-in %s", got, builtin)
		}
	}
}
