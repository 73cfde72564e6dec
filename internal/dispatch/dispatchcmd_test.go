package dispatch

import (
	"encoding/json"
	"reflect"
	"testing"
)

// object decodes a JSON object as a store or Parse would; "null" is nil.
func object(t *testing.T, s string) map[string]any {
	t.Helper()
	if s == "null" {
		return nil
	}
	m, err := DecodeJSONObject([]byte(s))
	if err != nil {
		t.Fatalf("DecodeJSONObject(%s): %v", s, err)
	}
	return m
}

func TestDispatchDecide(t *testing.T) {
	events := []DispatchEvent{{Type: "OrderShipped", Data: map[string]any{"carrier": "DHL"}}}
	emails := []DispatchEmail{{To: []string{"ada@example.com"}, Template: "notification", Data: map[string]any{"n": json.Number("1")}}}
	tests := []struct {
		name    string
		cmd     Dispatch
		cur     string // current data, JSON
		curType string
		version int64
		want    Decision
		wantErr string // an Unprocessable validation error's text
	}{
		{
			name: "refuses a type other than the existing aggregate's", cmd: Dispatch{AggregateType: "Order", State: map[string]any{"a": "b"}},
			cur: `{"a":"x"}`, curType: "Invoice", version: 2, wantErr: "refused: data.aggregateType: the aggregate is a Invoice",
		},
		{
			name: "creates a new aggregate from the patch without its nulls", cmd: Dispatch{AggregateType: "Order", State: object(t, `{"status":"new","total":9007199254740993,"gone":null}`)},
			cur: `null`, version: 0,
			want: Decision{AggregateType: "Order", Data: object(t, `{"status":"new","total":9007199254740993}`)},
		},
		{
			name: "applies the merge patch to the existing state", cmd: Dispatch{AggregateType: "Order", State: object(t, `{"status":"shipped","address":{"zip":null,"city":"Paris"},"note":null}`)},
			cur: `{"status":"paid","note":"x","total":1250,"address":{"zip":"75001","street":"Rue A"}}`, curType: "Order", version: 4,
			want: Decision{AggregateType: "Order", Data: object(t, `{"status":"shipped","total":1250,"address":{"street":"Rue A","city":"Paris"}}`)},
		},
		{
			name: "keeps the state and passes events and emails through when no state is given", cmd: Dispatch{AggregateType: "Order", Events: events, Emails: emails},
			cur: `{"status":"paid"}`, curType: "Order", version: 1,
			want: Decision{AggregateType: "Order", Data: object(t, `{"status":"paid"}`),
				Events: []Event{{Type: "OrderShipped", Data: map[string]any{"carrier": "DHL"}}},
				Emails: []Email{{To: []string{"ada@example.com"}, Template: "notification", Data: map[string]any{"n": json.Number("1")}}}},
		},
		{
			name: "accepts any type for an aggregate that does not exist yet", cmd: Dispatch{AggregateType: "Order", Events: events},
			cur: `null`, curType: "", version: 0,
			want: Decision{AggregateType: "Order", Data: map[string]any{}, Events: []Event{{Type: "OrderShipped", Data: map[string]any{"carrier": "DHL"}}}},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			cur := Aggregate{ID: "order-1", Type: tt.curType, Version: tt.version, Data: object(t, tt.cur)}
			before := snapshot(t, cur.Data)
			got, err := tt.cmd.Decide(cur, decideNow)
			if tt.wantErr != "" {
				if err == nil {
					t.Fatalf("Decide = %+v, want an error", got)
				}
				if k := errKind(err); k != Unprocessable {
					t.Errorf("kind = %v, want %v (err %v)", k, Unprocessable, err)
				}
				if err.Error() != tt.wantErr {
					t.Errorf("error = %q, want %q", err, tt.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatalf("Decide: %v", err)
			}
			if !reflect.DeepEqual(got, tt.want) {
				t.Errorf("Decision =\n%#v\nwant\n%#v", got, tt.want)
			}
			if after := snapshot(t, cur.Data); after != before {
				t.Errorf("Decide modified the current state: %s, was %s", after, before)
			}
		})
	}
}

func TestMergePatch(t *testing.T) {
	tests := []struct {
		name   string
		target string // "null" stands for a target that is not an object
		patch  string
		want   string
	}{
		// RFC 7396, appendix A (the cases whose patch is an object).
		{"replaces a value", `{"a":"b"}`, `{"a":"c"}`, `{"a":"c"}`},
		{"adds a member", `{"a":"b"}`, `{"b":"c"}`, `{"a":"b","b":"c"}`},
		{"removes a member with null", `{"a":"b"}`, `{"a":null}`, `{}`},
		{"removes only the nulled member", `{"a":"b","b":"c"}`, `{"a":null}`, `{"b":"c"}`},
		{"replaces an array with a string", `{"a":["b"]}`, `{"a":"c"}`, `{"a":"c"}`},
		{"replaces a string with an array", `{"a":"c"}`, `{"a":["b"]}`, `{"a":["b"]}`},
		{"merges nested objects and removes nested nulls", `{"a":{"b":"c"}}`, `{"a":{"b":"d","c":null}}`, `{"a":{"b":"d"}}`},
		{"replaces an array of objects whole", `{"a":[{"b":"c"}]}`, `{"a":[1]}`, `{"a":[1]}`},
		{"keeps an existing null in the target", `{"e":null}`, `{"a":1}`, `{"e":null,"a":1}`},
		{"replaces a non-object target with the patch minus nulls", `null`, `{"a":"b","c":null}`, `{"a":"b"}`},
		{"creates nested objects without their nulls", `{}`, `{"a":{"bb":{"ccc":null}}}`, `{"a":{"bb":{}}}`},
		// Beyond the appendix.
		{"replaces a scalar with an object", `{"a":1}`, `{"a":{"b":2}}`, `{"a":{"b":2}}`},
		{"replaces an object with a scalar", `{"a":{"b":2}}`, `{"a":1}`, `{"a":1}`},
		{"keeps nulls inside replacing arrays", `{}`, `{"a":[null,{"b":null}]}`, `{"a":[null,{"b":null}]}`},
		{"changes nothing with an empty patch", `{"a":{"b":1}}`, `{}`, `{"a":{"b":1}}`},
		{"ignores a null for a missing member", `{"a":1}`, `{"z":null}`, `{"a":1}`},
		{"keeps big numbers exact", `{"n":1}`, `{"n":9007199254740993}`, `{"n":9007199254740993}`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			target, patch := object(t, tt.target), object(t, tt.patch)
			targetBefore, patchBefore := snapshot(t, target), snapshot(t, patch)
			got := MergePatch(target, patch)
			if want := object(t, tt.want); !reflect.DeepEqual(got, want) {
				t.Errorf("MergePatch(%s, %s) = %s, want %s", tt.target, tt.patch, snapshot(t, got), tt.want)
			}
			if after := snapshot(t, target); after != targetBefore {
				t.Errorf("target modified: %s, was %s", after, targetBefore)
			}
			if after := snapshot(t, patch); after != patchBefore {
				t.Errorf("patch modified: %s, was %s", after, patchBefore)
			}
		})
	}
}

func TestMergePatchResultIsIndependentOfPatchedObjects(t *testing.T) {
	tests := []struct {
		name   string
		target string
		patch  string
		member string // a nested object of the result, modified after the merge
	}{
		{"a merged nested object is a new map", `{"a":{"b":1}}`, `{"a":{"c":2}}`, "a"},
		{"a nested object taken from the patch is a new map", `{}`, `{"a":{"c":2}}`, "a"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			target, patch := object(t, tt.target), object(t, tt.patch)
			targetBefore, patchBefore := snapshot(t, target), snapshot(t, patch)
			got := MergePatch(target, patch)
			got[tt.member].(map[string]any)["added"] = true
			if after := snapshot(t, target); after != targetBefore {
				t.Errorf("target changed through the result: %s, was %s", after, targetBefore)
			}
			if after := snapshot(t, patch); after != patchBefore {
				t.Errorf("patch changed through the result: %s, was %s", after, patchBefore)
			}
		})
	}
}
