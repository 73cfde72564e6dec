package runner_test

import (
	"encoding/json"
	"os"
	"strings"
	"testing"

	"github.com/aws/aws-lambda-go/events"

	"github.com/dispatcher-dev/dispatcher/internal/local/runner"
)

// templatePattern is the template's filter, as the ESM tests read it.
const templatePattern = `{"eventName":["INSERT"],"dynamodb":{"Keys":{"sk":{"S":[{"prefix":"OUTBOX#"},{"prefix":"EVENT#"}]}}}}`

// streamRecord builds a record in the JSON form Lambda matches filters
// against (the change under "dynamodb").
func streamRecord(t *testing.T, eventName, sk string, image map[string]events.DynamoDBAttributeValue) []byte {
	t.Helper()
	r := events.DynamoDBEventRecord{
		AWSRegion: "us-east-1", EventID: "1", EventName: eventName, EventSource: "aws:dynamodb", EventVersion: "1.1",
		EventSourceArn: "arn:aws:dynamodb:us-east-1:000000000000:table/t/stream/2026-01-01T00:00:00.000",
		Change: events.DynamoDBStreamRecord{
			Keys:           map[string]events.DynamoDBAttributeValue{"pk": events.NewStringAttribute("AGG#a1"), "sk": events.NewStringAttribute(sk)},
			NewImage:       image,
			SequenceNumber: "100", SizeBytes: 26, StreamViewType: "NEW_IMAGE",
		},
	}
	b, err := json.Marshal(r)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func TestFilterPatternMatching(t *testing.T) {
	img := map[string]events.DynamoDBAttributeValue{
		"status":   events.NewStringAttribute("PENDING"),
		"target":   events.NewStringAttribute("email"),
		"attempts": events.NewNumberAttribute("0"),
		"flag":     events.NewBooleanAttribute(true),
	}
	outboxInsert := streamRecord(t, "INSERT", "OUTBOX#00000000000000000001#0", img)
	stateInsert := streamRecord(t, "INSERT", "STATE", img)
	eventInsert := streamRecord(t, "INSERT", "EVENT#00000000000000000001", img)
	snapshotInsert := streamRecord(t, "INSERT", "SNAPSHOT#00000000000000000050", img)
	outboxModify := streamRecord(t, "MODIFY", "OUTBOX#00000000000000000001#0", img)
	noImage := streamRecord(t, "REMOVE", "OUTBOX#00000000000000000001#0", nil)

	tests := []struct {
		name    string
		pattern string
		record  []byte
		want    bool
	}{
		{"template pattern passes an outbox insert", templatePattern, outboxInsert, true},
		{"template pattern drops the state item's insert", templatePattern, stateInsert, false},
		{"template pattern passes an event-sourced event's insert", templatePattern, eventInsert, true},
		{"template pattern drops a snapshot's insert", templatePattern, snapshotInsert, false},
		{"template pattern drops an outbox modify", templatePattern, outboxModify, false},
		{"exact value matches", `{"eventName":["MODIFY"]}`, outboxModify, true},
		{"one of several values matches", `{"eventName":["REMOVE","MODIFY"]}`, outboxModify, true},
		{"exact value is case sensitive", `{"eventName":["insert"]}`, outboxInsert, false},
		{"equals-ignore-case matches across case", `{"eventName":[{"equals-ignore-case":"insert"}]}`, outboxInsert, true},
		{"prefix does not match the middle of a value", `{"dynamodb":{"Keys":{"sk":{"S":[{"prefix":"00000"}]}}}}`, outboxInsert, false},
		{"suffix matches the end", `{"dynamodb":{"Keys":{"sk":{"S":[{"suffix":"#0"}]}}}}`, outboxInsert, true},
		{"prefix with equals-ignore-case matches", `{"dynamodb":{"Keys":{"sk":{"S":[{"prefix":{"equals-ignore-case":"outbox#"}}]}}}}`, outboxInsert, true},
		{"anything-but drops the excluded value", `{"eventName":[{"anything-but":"INSERT"}]}`, outboxInsert, false},
		{"anything-but passes another value", `{"eventName":[{"anything-but":["INSERT","REMOVE"]}]}`, outboxModify, true},
		{"anything-but prefix drops what starts so", `{"dynamodb":{"Keys":{"sk":{"S":[{"anything-but":{"prefix":"OUTBOX#"}}]}}}}`, outboxInsert, false},
		{"anything-but prefix passes the rest", `{"dynamodb":{"Keys":{"sk":{"S":[{"anything-but":{"prefix":"OUTBOX#"}}]}}}}`, stateInsert, true},
		{"anything-but does not match a missing field", `{"dynamodb":{"NewImage":{"missing":{"S":[{"anything-but":"x"}]}}}}`, outboxInsert, false},
		{"exists true matches a present leaf", `{"dynamodb":{"NewImage":{"status":{"S":[{"exists":true}]}}}}`, outboxInsert, true},
		{"exists true misses an absent field", `{"dynamodb":{"NewImage":{"status":{"S":[{"exists":true}]}}}}`, noImage, false},
		{"exists false matches an absent field", `{"dynamodb":{"NewImage":{"status":{"S":[{"exists":false}]}}}}`, noImage, true},
		{"exists true misses an object (not a leaf)", `{"dynamodb":{"NewImage":{"status":[{"exists":true}]}}}`, outboxInsert, false},
		{"numeric equality matches a JSON number", `{"dynamodb":{"SizeBytes":[{"numeric":["=",26]}]}}`, outboxInsert, true},
		{"numeric range misses outside", `{"dynamodb":{"SizeBytes":[{"numeric":[">",0,"<=",10]}]}}`, outboxInsert, false},
		{"numeric range matches inside", `{"dynamodb":{"SizeBytes":[{"numeric":[">=",26,"<",100]}]}}`, outboxInsert, true},
		{"numeric does not match a DynamoDB N (a string)", `{"dynamodb":{"NewImage":{"attempts":{"N":[{"numeric":["=",0]}]}}}}`, outboxInsert, false},
		{"DynamoDB N matches as its string", `{"dynamodb":{"NewImage":{"attempts":{"N":["0"]}}}}`, outboxInsert, true},
		{"boolean matches", `{"dynamodb":{"NewImage":{"flag":{"BOOL":[true]}}}}`, outboxInsert, true},
		{"all fields must match (and)", `{"eventName":["INSERT"],"dynamodb":{"NewImage":{"target":{"S":["events"]}}}}`, outboxInsert, false},
		{"a field the record lacks fails an exact match", `{"userIdentity":{"type":["Service"]}}`, outboxInsert, false},
		{"Change is not the field name Lambda matches", `{"Change":{"Keys":{"sk":{"S":[{"prefix":"OUTBOX#"}]}}}}`, outboxInsert, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p, err := runner.CompilePattern(tt.pattern)
			if err != nil {
				t.Fatalf("compile: %v", err)
			}
			got, err := p.Match(tt.record)
			if err != nil {
				t.Fatal(err)
			}
			if got != tt.want {
				t.Errorf("Match = %t, want %t", got, tt.want)
			}
		})
	}
}

func TestFilterPatternRefusals(t *testing.T) {
	tests := []struct{ name, pattern string }{
		{"refuses a pattern that is not JSON", `{"eventName":`},
		{"refuses a bare value (values go in a list)", `{"eventName":"INSERT"}`},
		{"refuses an empty list", `{"eventName":[]}`},
		{"refuses an unknown operator", `{"eventName":[{"wildcard":"IN*"}]}`},
		{"refuses $or", `{"$or":[{"eventName":["INSERT"]}]}`},
		{"refuses an operator object with two keys", `{"eventName":[{"prefix":"I","suffix":"T"}]}`},
		{"refuses a numeric comparison without a number", `{"x":[{"numeric":["=","5"]}]}`},
		{"refuses a pattern that is a list", `[{"eventName":["INSERT"]}]`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if _, err := runner.CompilePattern(tt.pattern); err == nil {
				t.Errorf("CompilePattern(%s) accepted it", tt.pattern)
			}
		})
	}
}

func TestSeveralFiltersPassARecordWhenAnyMatches(t *testing.T) {
	a, _ := runner.CompilePattern(`{"eventName":["REMOVE"]}`)
	b, _ := runner.CompilePattern(`{"eventName":["INSERT"]}`)
	rec := streamRecord(t, "INSERT", "STATE", nil)
	if ok, _ := (runner.Filters{a, b}).Match(rec); !ok {
		t.Error("two filters, the second matching: dropped")
	}
	if ok, _ := (runner.Filters{a}).Match(rec); ok {
		t.Error("one filter not matching: passed")
	}
	if ok, _ := (runner.Filters{}).Match(rec); !ok {
		t.Error("no filters: dropped")
	}
}

// The filter the ESM applies is the template's own, not a copy.
func TestTheTemplateFilterIsTheOneTested(t *testing.T) {
	b, err := os.ReadFile("../../../infra/template.yaml")
	if err != nil {
		t.Fatal(err)
	}
	if !json.Valid([]byte(templatePattern)) || !strings.Contains(string(b), templatePattern) {
		t.Fatalf("infra/template.yaml no longer holds the pattern %s: update templatePattern", templatePattern)
	}
}
