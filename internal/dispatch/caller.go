package dispatch

import (
	"fmt"
	"strings"
)

// Caller is who sent a request, and what it may touch: the aggregates it may
// write and read, the templates it may send and the event types it may
// publish. A deployment's callers come from its caller registry (package
// caller); every request is made by exactly one.
type Caller struct {
	// ID names the caller in logs, metrics and errors (ValidCallerID).
	ID string
	// Scope keys the caller's idempotency records: the same key from two
	// callers is two commands. CallerScope gives it for a registered caller.
	Scope string
	// Aggregates are the aggregates it may write and read, each
	// "Type/idPattern": an aggregate type or "*", then an exact id or a
	// prefix ending in "*" ("Account/team-a-*", "*/team-a-*", "Order/*").
	Aggregates []string
	// Grant is what it may send: templates by name, event types by pattern.
	Grant
	// All grants everything: the single caller of a deployment without a
	// registry (WEBHOOK_SECRETS, or every IAM principal under ApiAuth=iam).
	All bool
	// Rate bounds its requests; zero: the deployment's default.
	Rate Rate
}

// Rate is a token bucket: PerSecond tokens a second, at most Burst at once.
type Rate struct {
	PerSecond float64
	Burst     int
}

// Caller limits, enforced when the registry is read.
const (
	// MaxCallerIDLen bounds a caller id (ValidCallerID).
	MaxCallerIDLen = 64
)

// CallerScope is the idempotency scope of a registered caller.
func CallerScope(id string) string { return "caller:" + id }

// ValidCallerID reports whether id is 1 to MaxCallerIDLen characters of
// a-z 0-9 and "-", starting with a letter or digit.
func ValidCallerID(id string) bool {
	return len(id) >= 1 && len(id) <= MaxCallerIDLen && id[0] != '-' &&
		isIn(id, func(c byte) bool { return 'a' <= c && c <= 'z' || '0' <= c && c <= '9' || c == '-' })
}

// ValidAggregatePattern reports whether p is "Type/idPattern" as
// Caller.Aggregates takes it.
func ValidAggregatePattern(p string) bool {
	typ, id, ok := strings.Cut(p, "/")
	if !ok || (typ != "*" && (!isTypeName(typ) || len(typ) > MaxTypeLen)) {
		return false
	}
	// A prefix is the start of some valid id: a prefix no id can have
	// ("-a*", or longer than an id) would be a grant that silently grants
	// nothing.
	if prefix, ok := strings.CutSuffix(id, "*"); ok {
		return prefix == "" || ValidAggregateID(prefix)
	}
	return ValidAggregateID(id)
}

// MayAccess reports whether the caller may write and read the aggregate
// id of type typ. An empty typ (not known yet: before a read) matches a
// pattern of any type, so that MayAccess(“”, id) false means no aggregate
// by that id is the caller's, whatever its type.
func (c Caller) MayAccess(typ, id string) bool {
	if c.All {
		return true
	}
	for _, p := range c.Aggregates {
		pt, pid, _ := strings.Cut(p, "/")
		if pt != "*" && typ != "" && pt != typ {
			continue
		}
		if prefix, ok := strings.CutSuffix(pid, "*"); ok {
			if strings.HasPrefix(id, prefix) {
				return true
			}
		} else if pid == id {
			return true
		}
	}
	return false
}

// CheckSends refuses (Forbidden) a decision that sends a template or
// publishes an event type the caller is not granted.
func (c Caller) CheckSends(d Decision) error {
	if c.All {
		return nil
	}
	for _, e := range d.Emails {
		if !c.AllowsTemplate(e.Template) {
			return E("dispatch.CheckSends", Forbidden, fmt.Sprintf("caller %s may not send template %q", c.ID, e.Template), nil)
		}
	}
	for _, e := range d.Events {
		if !c.AllowsEvent(e.Type) {
			return E("dispatch.CheckSends", Forbidden, fmt.Sprintf("caller %s may not publish event type %q", c.ID, e.Type), nil)
		}
	}
	return nil
}

// CheckCommand refuses (Forbidden) a parsed command on an aggregate outside
// the caller's grant, and a Dispatch that names a template or an event type
// the caller is not granted. It is decided from the request alone, before
// anything is read, so that the refusal tells nothing about what is stored.
// The aggregate's type is the command type's (AggregateTypeOf), or the one
// a Dispatch names.
func (c Caller) CheckCommand(env Envelope, cmd Command) error {
	if c.All {
		return nil
	}
	typ := AggregateTypeOf(env.Type)
	d, generic := cmd.(*Dispatch)
	if generic {
		typ = d.AggregateType
	}
	if !c.MayAccess(typ, env.AggregateID) {
		return E("dispatch.CheckCommand", Forbidden, fmt.Sprintf("caller %s may not write %s aggregate %s", c.ID, typ, env.AggregateID), nil)
	}
	if !generic {
		return nil
	}
	sends := Decision{Events: make([]Event, len(d.Events)), Emails: make([]Email, len(d.Emails))}
	for i, e := range d.Events {
		sends.Events[i] = Event{Type: e.Type}
	}
	for i, e := range d.Emails {
		sends.Emails[i] = Email{Template: e.Template}
	}
	return c.CheckSends(sends)
}

// ValidTemplateName reports whether s is an email template's name (1 to 64
// characters of a-z 0-9 -), as a caller's grant names it.
func ValidTemplateName(s string) bool { return isTemplateName(s) }
