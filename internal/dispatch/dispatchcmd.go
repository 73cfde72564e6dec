package dispatch

import (
	"fmt"
	"time"
)

// Dispatch is the generic command for webhook integrations: the caller gives
// a state patch, the events to publish and the emails to send, and
// Dispatcher makes them atomic and delivers them.
type Dispatch struct {
	// AggregateType names the caller's aggregate type; fixed once created.
	AggregateType string `json:"aggregateType"`
	// State is a JSON merge patch (RFC 7396) applied to the aggregate's data.
	State  map[string]any  `json:"state,omitempty"`
	Events []DispatchEvent `json:"events,omitempty"`
	Emails []DispatchEmail `json:"emails,omitempty"`
}

// DispatchEvent is one event to publish.
type DispatchEvent struct {
	Type string         `json:"type"`
	Data map[string]any `json:"data"`
}

// DispatchEmail is one email to send from a repository template.
type DispatchEmail struct {
	To       []string       `json:"to"`
	Template string         `json:"template"`
	Data     map[string]any `json:"data"`
}

// reservedTypes are the aggregate types that typed commands own.
var reservedTypes = map[string]bool{AccountType: true}

// Validate implements Command.
func (c *Dispatch) Validate() []FieldError {
	var fe []FieldError
	switch {
	case !isTypeName(c.AggregateType) || len(c.AggregateType) > MaxTypeLen:
		fe = append(fe, FieldError{"aggregateType", fmt.Sprintf("must be 1 to %d characters of A-Z a-z 0-9 . _ - starting with a letter", MaxTypeLen)})
	case reservedTypes[c.AggregateType]:
		// Typed commands own these aggregates and their invariants (an
		// account's balance); a generic patch must not bypass them.
		fe = append(fe, FieldError{"aggregateType", fmt.Sprintf("%s aggregates are changed only by their own commands", c.AggregateType)})
	}
	if c.State == nil && len(c.Events) == 0 && len(c.Emails) == 0 {
		fe = append(fe, FieldError{"", "give at least one of state, events, emails"})
	}
	if len(c.Events) > MaxEventsPerCommand {
		fe = append(fe, FieldError{"events", fmt.Sprintf("at most %d events per command, got %d", MaxEventsPerCommand, len(c.Events))})
	}
	if len(c.Emails) > MaxEmailsPerCommand {
		fe = append(fe, FieldError{"emails", fmt.Sprintf("at most %d emails per command, got %d", MaxEmailsPerCommand, len(c.Emails))})
	}
	if c.State != nil {
		fe = append(fe, checkValue("state", c.State)...)
	}
	for i, e := range c.Events {
		if !isTypeName(e.Type) || len(e.Type) > MaxTypeLen {
			fe = append(fe, FieldError{fmt.Sprintf("events[%d].type", i), fmt.Sprintf("must be 1 to %d characters of A-Z a-z 0-9 . _ - starting with a letter", MaxTypeLen)})
		}
		if e.Data != nil {
			fe = append(fe, checkValue(fmt.Sprintf("events[%d].data", i), e.Data)...)
		}
	}
	for i := range c.Emails {
		e := &c.Emails[i]
		f := fmt.Sprintf("emails[%d]", i)
		switch {
		case len(e.To) == 0:
			fe = append(fe, FieldError{f + ".to", "at least one recipient"})
		case len(e.To) > MaxRecipientsPerEmail:
			fe = append(fe, FieldError{f + ".to", fmt.Sprintf("at most %d recipients per email, got %d", MaxRecipientsPerEmail, len(e.To))})
		}
		for j, to := range e.To {
			addr, err := ParseAddress(to)
			if err != nil {
				fe = append(fe, FieldError{fmt.Sprintf("%s.to[%d]", f, j), err.Error()})
				continue
			}
			e.To[j] = addr
		}
		if !isTemplateName(e.Template) {
			fe = append(fe, FieldError{f + ".template", "must be a template name of a-z 0-9 -"})
		}
		if e.Data != nil {
			fe = append(fe, checkValue(f+".data", e.Data)...)
		}
	}
	return fe
}

// Decide implements Command.
func (c *Dispatch) Decide(cur Aggregate, _ time.Time) (Decision, error) {
	if cur.Exists() && cur.Type != c.AggregateType {
		return Decision{}, UnprocessableField("data.aggregateType", "the aggregate is a %s", cur.Type)
	}
	data := MergePatch(cur.Data, c.State)
	d := Decision{AggregateType: c.AggregateType, Data: data}
	for _, e := range c.Events {
		d.Events = append(d.Events, Event{Type: e.Type, Data: e.Data})
	}
	for _, e := range c.Emails {
		d.Emails = append(d.Emails, Email(e))
	}
	return d, nil
}

// MergePatch applies an RFC 7396 JSON merge patch: null removes a key,
// objects merge recursively, anything else replaces. It never modifies its
// arguments.
func MergePatch(target, patch map[string]any) map[string]any {
	out := make(map[string]any, len(target)+len(patch))
	for k, v := range target {
		out[k] = v
	}
	for k, v := range patch {
		switch pv := v.(type) {
		case nil:
			delete(out, k)
		case map[string]any:
			tv, _ := out[k].(map[string]any)
			out[k] = MergePatch(tv, pv)
		default:
			out[k] = v
		}
	}
	return out
}
