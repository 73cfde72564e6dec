package dispatch

import (
	"encoding/json"
	"fmt"
	"sort"
	"strings"
	"time"
)

// Mode is how an aggregate type is stored (docs/modes.md, "Event-sourced aggregates").
type Mode string

// The modes.
const (
	// ModeOutbox keeps the aggregate's state in one item and each effect in
	// an outbox item that expires once delivered.
	ModeOutbox Mode = "outbox"
	// ModeEventSourced keeps the aggregate's events (its history) and
	// rebuilds the state by folding them, from the latest snapshot on.
	ModeEventSourced Mode = "event-sourced"
)

// SnapshotEvery: an event-sourced aggregate keeps its folded state at every
// version that is a multiple of it, so a read folds at most that many events.
const SnapshotEvery = 50

// RecordedEvent is one stored event of an event-sourced aggregate.
type RecordedEvent struct {
	AggregateID   string
	AggregateType string
	Version       int64
	EventID       string
	Type          string
	Data          map[string]any // as published
	Private       map[string]any // never published (Event.Private); nil when none
	CreatedAt     time.Time
}

// History is what a read of an event-sourced aggregate returns: the latest
// snapshot (nil: none yet) and the events after it, in version order.
type History struct {
	Snapshot *Aggregate
	Events   []RecordedEvent
}

// evolvers apply one event to an aggregate type's state: the types that can
// be event-sourced.
var evolvers = map[string]func(state map[string]any, e RecordedEvent) (map[string]any, error){
	AccountType: evolveAccount,
}

// AggregateTypeOf returns the aggregate type a command type changes, or ""
// when the caller names it (Dispatch).
func AggregateTypeOf(commandType string) string { return aggregateTypes[commandType] }

// DefaultModes returns the registry's mode of each aggregate type.
func DefaultModes() map[string]Mode {
	out := make(map[string]Mode, len(modes))
	for k, v := range modes {
		out[k] = v
	}
	return out
}

// ParseModes reads AGGREGATE_MODES ("Account=event-sourced,Other=outbox")
// over the registry's defaults. Only a type with an evolver can be
// event-sourced.
func ParseModes(s string) (map[string]Mode, error) {
	out := DefaultModes()
	for _, part := range strings.Split(s, ",") {
		part = strings.TrimSpace(part)
		if part == "" {
			continue
		}
		typ, m, ok := strings.Cut(part, "=")
		typ, mode := strings.TrimSpace(typ), Mode(strings.TrimSpace(m))
		if _, known := modes[typ]; !ok || !known {
			return nil, fmt.Errorf("%q: want Type=mode for a type among %s", part, strings.Join(modeTypes(), ", "))
		}
		switch mode {
		case ModeOutbox:
		case ModeEventSourced:
			if evolvers[typ] == nil {
				return nil, fmt.Errorf("%q: %s aggregates cannot be event-sourced", part, typ)
			}
		default:
			return nil, fmt.Errorf("%q: the mode must be %s or %s", part, ModeOutbox, ModeEventSourced)
		}
		out[typ] = mode
	}
	return out, nil
}

func modeTypes() []string {
	out := make([]string, 0, len(modes))
	for k := range modes {
		out = append(out, k)
	}
	sort.Strings(out)
	return out
}

// Evolve applies one event to an aggregate: the next version's state. The
// event must be the aggregate's next version, of its type.
func Evolve(a Aggregate, e RecordedEvent) (Aggregate, error) {
	const op = "dispatch.Evolve"
	if e.Version != a.Version+1 {
		return a, E(op, Internal, "", fmt.Errorf("aggregate %s: event version %d after version %d", a.ID, e.Version, a.Version))
	}
	if a.Exists() && a.Type != e.AggregateType {
		return a, E(op, Internal, "", fmt.Errorf("aggregate %s: a %s event for a %s aggregate", a.ID, e.AggregateType, a.Type))
	}
	evolve := evolvers[e.AggregateType]
	if evolve == nil {
		return a, E(op, Internal, "", fmt.Errorf("aggregate type %q has no evolver", e.AggregateType))
	}
	data := a.Data
	if !a.Exists() {
		data = map[string]any{}
	}
	next, err := evolve(data, e)
	if err != nil {
		return a, E(op, Internal, "", fmt.Errorf("aggregate %s version %d: %w", a.ID, e.Version, err))
	}
	out := Aggregate{ID: a.ID, Type: e.AggregateType, Version: e.Version, Data: next, CreatedAt: a.CreatedAt, UpdatedAt: e.CreatedAt}
	if !a.Exists() {
		out.CreatedAt = e.CreatedAt
	}
	return out, nil
}

// Fold rebuilds an aggregate from its history; no snapshot and no events
// is an aggregate that does not exist (version 0).
func Fold(id string, h History) (Aggregate, error) {
	a := Aggregate{ID: id, Data: map[string]any{}}
	if h.Snapshot != nil {
		a = *h.Snapshot
		a.ID = id
	}
	for _, e := range h.Events {
		var err error
		if a, err = Evolve(a, e); err != nil {
			return Aggregate{}, err
		}
	}
	return a, nil
}

// evolveAccount applies an account event. Every amount is exact: numbers
// come back from storage as json.Number and decode into int64.
func evolveAccount(state map[string]any, e RecordedEvent) (map[string]any, error) {
	var acc account
	if err := decodeData(state, &acc); err != nil {
		return nil, fmt.Errorf("decode account state: %w", err)
	}
	switch e.Type {
	case "AccountOpened":
		var d struct {
			Owner    string `json:"owner"`
			Currency string `json:"currency"`
		}
		var p struct {
			Email string `json:"email"`
		}
		if err := decodeData(e.Data, &d); err != nil {
			return nil, fmt.Errorf("AccountOpened: %w", err)
		}
		if err := decodeData(e.Private, &p); err != nil {
			return nil, fmt.Errorf("AccountOpened (private): %w", err)
		}
		acc = account{Owner: d.Owner, Email: p.Email, Currency: d.Currency}
	case "FundsDeposited", "FundsWithdrawn":
		var d struct {
			Amount int64 `json:"amount"`
		}
		if err := decodeData(e.Data, &d); err != nil {
			return nil, fmt.Errorf("%s: %w", e.Type, err)
		}
		if e.Type == "FundsWithdrawn" {
			d.Amount = -d.Amount
		}
		acc.Balance += d.Amount
	default:
		return nil, fmt.Errorf("unknown account event %q", e.Type)
	}
	return encodeData(acc)
}

// SameState reports whether two aggregate states are the same JSON: how the
// service checks that folding a decided event gives the decided state.
func SameState(a, b map[string]any) bool {
	x, err1 := json.Marshal(a)
	y, err2 := json.Marshal(b)
	return err1 == nil && err2 == nil && string(x) == string(y)
}
