package outbox_test

import (
	"encoding/json"
	"os"
	"regexp"
	"slices"
	"strings"
	"testing"

	"github.com/aws/aws-sdk-go-v2/service/dynamodb/types"

	"github.com/dispatcher-dev/dispatcher/outbox"
)

// The contract as written for writers in other languages is the contract
// this package writes and the relay reads: its example items decode, and
// its attribute tables name exactly the attributes Items writes.
func TestTheWrittenContractIsThePackages(t *testing.T) {
	doc, err := os.ReadFile("../docs/outbox-contract.md")
	if err != nil {
		t.Fatal(err)
	}
	text := string(doc)

	examples := 0
	for _, block := range regexp.MustCompile("(?s)```json\n(.*?)```").FindAllStringSubmatch(text, -1) {
		if !strings.Contains(block[1], `"pk"`) {
			continue
		}
		var raw map[string]map[string]string
		if err := json.Unmarshal([]byte(block[1]), &raw); err != nil {
			t.Fatalf("an example item is not DynamoDB JSON: %v", err)
		}
		item := map[string]types.AttributeValue{}
		for k, v := range raw {
			switch {
			case v["S"] != "":
				item[k] = &types.AttributeValueMemberS{Value: v["S"]}
			case v["N"] != "":
				item[k] = &types.AttributeValueMemberN{Value: v["N"]}
			default:
				t.Fatalf("%s: %v is neither S nor N", k, v)
			}
		}
		if _, err := outbox.Decode(item); err != nil {
			t.Errorf("the example item %s breaks the contract: %v", raw["sk"]["S"], err)
		}
		examples++
	}
	if examples != 2 {
		t.Errorf("%d example items, want the event and the email", examples)
	}

	documented := map[string]bool{}
	for _, m := range regexp.MustCompile("(?m)^\\| `([a-zA-Z]+)` \\| (S|N) \\|").FindAllStringSubmatch(text, -1) {
		documented[m[1]] = true
	}
	w := writer()
	w.Traceparent = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"
	puts, _, err := w.Items(order(1), placed())
	if err != nil {
		t.Fatal(err)
	}
	var written []string
	for k := range puts[0].Put.Item {
		written = append(written, k)
		if !documented[k] {
			t.Errorf("Items writes %s, which the contract does not document", k)
		}
	}
	for k := range documented {
		if !slices.Contains(written, k) {
			t.Errorf("the contract documents %s, which Items does not write", k)
		}
	}
}
