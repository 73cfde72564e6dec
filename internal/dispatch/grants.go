package dispatch

import (
	"fmt"
	"slices"
	"strings"
)

// Grant is what a command type whose effects its caller chooses (Dispatch)
// may send: email templates by name, and event types by exact name or by a
// prefix ending in "*" ("order.*"; "*" alone is every type). It comes from
// the deployment's template folder (dispatcher.yaml, package emails), not
// from code; the account commands send their own templates (TemplatesFor).
type Grant struct {
	Templates []string
	Events    []string
}

// Grants maps command types to their grants. A command type with no entry
// may send no email and publish no event.
type Grants map[string]Grant

// callerChooses lists the command types whose caller names the templates
// and event types (the generic Dispatch): a Grant bounds what they send. A
// typed command decides its effects in its own code and takes no grant.
var callerChooses = map[string]bool{"Dispatch": true}

// CallerChoosesEffects reports whether the caller of a command type names
// its templates and event types, so that a Grant bounds them.
func CallerChoosesEffects(commandType string) bool { return callerChooses[commandType] }

// ValidEventPattern reports whether p is an event type, or a prefix of one
// followed by "*", or "*" alone.
func ValidEventPattern(p string) bool {
	if prefix, ok := strings.CutSuffix(p, "*"); ok {
		return prefix == "" || isIn(prefix, func(c byte) bool { return isAlnum(c) || c == '.' || c == '_' || c == '-' }) && isAlpha(prefix[0])
	}
	return isTypeName(p) && len(p) <= MaxTypeLen
}

// AllowsTemplate reports whether the grant names the template.
func (g Grant) AllowsTemplate(name string) bool { return slices.Contains(g.Templates, name) }

// AllowsEvent reports whether an event type matches one of the grant's
// patterns.
func (g Grant) AllowsEvent(eventType string) bool {
	for _, p := range g.Events {
		if prefix, ok := strings.CutSuffix(p, "*"); ok {
			if strings.HasPrefix(eventType, prefix) {
				return true
			}
		} else if p == eventType {
			return true
		}
	}
	return false
}

// Check refuses (422) a decision of a command type whose caller chooses the
// effects when it sends a template or publishes an event type that the
// command type's grant does not name. The decision's emails and events are
// in the order of the command's data, which the fields name.
func (gs Grants) Check(commandType string, d Decision) error {
	if !CallerChoosesEffects(commandType) {
		return nil
	}
	g := gs[commandType]
	for i, e := range d.Emails {
		if !g.AllowsTemplate(e.Template) {
			return UnprocessableField(fmt.Sprintf("data.emails[%d].template", i),
				"template %q is not one %s may send; it may send: %s", e.Template, commandType, listOrNone(g.Templates))
		}
	}
	for i, e := range d.Events {
		if !g.AllowsEvent(e.Type) {
			return UnprocessableField(fmt.Sprintf("data.events[%d].type", i),
				"event type %q is not one %s may publish; it may publish: %s", e.Type, commandType, listOrNone(g.Events))
		}
	}
	return nil
}

func listOrNone(s []string) string {
	if len(s) == 0 {
		return "none (dispatcher.yaml grants it nothing)"
	}
	return strings.Join(s, ", ")
}
