package dispatch

import (
	"encoding/json"
	"strings"
	"testing"
)

// A command that emits no event answers "eventIds":[] (api/openapi.yaml:
// an array), and so does the replay of a record saved with null.
func TestAcceptedWithoutEventsListsNone(t *testing.T) {
	var saved Accepted
	if err := json.Unmarshal([]byte(`{"aggregateId":"d-1","version":1,"eventIds":null,"replayed":false}`), &saved); err != nil {
		t.Fatal(err)
	}
	for name, a := range map[string]Accepted{"fresh": {AggregateID: "d-1", Version: 1}, "saved with null": saved} {
		b, err := json.Marshal(a)
		if err != nil {
			t.Fatal(err)
		}
		if !strings.Contains(string(b), `"eventIds":[]`) {
			t.Errorf("%s: %s, want eventIds []", name, b)
		}
	}
	b, _ := json.Marshal(Accepted{AggregateID: "a-1", Version: 2, EventIDs: []string{"e1"}, Replayed: true})
	if want := `{"aggregateId":"a-1","version":2,"eventIds":["e1"],"replayed":true}`; string(b) != want {
		t.Errorf("%s, want %s", b, want)
	}
}
