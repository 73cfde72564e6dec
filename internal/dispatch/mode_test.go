package dispatch

import (
	"fmt"
	"reflect"
	"testing"
	"time"
)

// recorded turns a decided event into what the store gives back: numbers
// as json.Number, as they are after a round trip through JSON.
func recorded(t *testing.T, a Aggregate, d Decision, at time.Time) RecordedEvent {
	t.Helper()
	if len(d.Events) != 1 {
		t.Fatalf("%d events, want 1", len(d.Events))
	}
	data, err := encodeData(d.Events[0].Data)
	if err != nil {
		t.Fatal(err)
	}
	var private map[string]any
	if d.Events[0].Private != nil {
		if private, err = encodeData(d.Events[0].Private); err != nil {
			t.Fatal(err)
		}
	}
	return RecordedEvent{AggregateID: a.ID, AggregateType: d.AggregateType, Version: a.Version + 1, Type: d.Events[0].Type, Data: data, Private: private, CreatedAt: at}
}

func TestFoldGivesTheDecidedState(t *testing.T) {
	start := time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)
	cmds := []Command{&OpenAccount{Owner: "Ada", Email: "ada@example.com", Currency: "EUR"}}
	for i := 0; i < 60; i++ {
		m := Movement{Amount: int64(100 + i), Currency: "EUR", Reference: fmt.Sprintf("r%d", i)}
		if i%3 == 2 {
			cmds = append(cmds, &WithdrawFunds{m})
		} else {
			cmds = append(cmds, &DepositFunds{m})
		}
	}
	// The outbox mode: each decision's state is the next state.
	state := Aggregate{ID: "acc-1", Data: map[string]any{}}
	var events []RecordedEvent
	var snapshot *Aggregate
	for i, c := range cmds {
		at := start.Add(time.Duration(i) * time.Second)
		d, err := c.Decide(state, at)
		if err != nil {
			t.Fatalf("command %d: %v", i, err)
		}
		e := recorded(t, state, d, at)
		events = append(events, e)
		created := state.CreatedAt
		if !state.Exists() {
			created = at
		}
		state = Aggregate{ID: "acc-1", Type: d.AggregateType, Version: state.Version + 1, Data: d.Data, CreatedAt: created, UpdatedAt: at}
		if state.Version == SnapshotEvery {
			s, err := Fold("acc-1", History{Events: events})
			if err != nil {
				t.Fatal(err)
			}
			snapshot = &s
		}
	}
	if snapshot == nil {
		t.Fatalf("the sequence never reached version %d", SnapshotEvery)
	}
	for name, h := range map[string]History{
		"from the first event": {Events: events},
		"from the snapshot":    {Snapshot: snapshot, Events: events[SnapshotEvery:]},
	} {
		t.Run(name, func(t *testing.T) {
			got, err := Fold("acc-1", h)
			if err != nil {
				t.Fatal(err)
			}
			if !reflect.DeepEqual(got, state) {
				t.Errorf("fold =\n%#v\nwant the outbox mode's state\n%#v", got, state)
			}
		})
	}
}

func TestEvolveRefuses(t *testing.T) {
	opened := RecordedEvent{AggregateID: "a", AggregateType: AccountType, Version: 1, Type: "AccountOpened",
		Data: map[string]any{"owner": "Ada", "currency": "EUR"}, Private: map[string]any{"email": "ada@example.com"}}
	acc, err := Evolve(Aggregate{ID: "a"}, opened)
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name string
		e    RecordedEvent
	}{
		{"refuses a gap in versions", RecordedEvent{AggregateType: AccountType, Version: 3, Type: "FundsDeposited", Data: map[string]any{"amount": 1}}},
		{"refuses an unknown event type", RecordedEvent{AggregateType: AccountType, Version: 2, Type: "FundsStolen", Data: map[string]any{}}},
		{"refuses an event of another aggregate type", RecordedEvent{AggregateType: "Order", Version: 2, Type: "FundsDeposited", Data: map[string]any{"amount": 1}}},
		{"refuses an aggregate type without an evolver", RecordedEvent{AggregateType: "Order", Version: 1, Type: "Placed"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			base := acc
			if tc.e.Version == 1 {
				base = Aggregate{ID: "b"}
			}
			if _, err := Evolve(base, tc.e); err == nil {
				t.Error("Evolve accepted it")
			}
		})
	}
}

func TestParseModes(t *testing.T) {
	for _, tc := range []struct {
		name, in string
		want     Mode
		ok       bool
	}{
		{"keeps the registry default", "", ModeOutbox, true},
		{"makes accounts event-sourced", "Account=event-sourced", ModeEventSourced, true},
		{"accepts spaces and empty parts", " Account = outbox ,", ModeOutbox, true},
		{"refuses an unknown type", "Order=event-sourced", "", false},
		{"refuses an unknown mode", "Account=eventsourced", "", false},
		{"refuses a part without a mode", "Account", "", false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, err := ParseModes(tc.in)
			if (err == nil) != tc.ok {
				t.Fatalf("err = %v, want ok=%v", err, tc.ok)
			}
			if tc.ok && got[AccountType] != tc.want {
				t.Errorf("Account mode = %q, want %q", got[AccountType], tc.want)
			}
		})
	}
}
