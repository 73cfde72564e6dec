package caller

import (
	"context"
	"crypto/sha256"
	"errors"
	"fmt"
	"strings"

	"github.com/dispatcher-dev/dispatcher/internal/dispatch"
	"github.com/dispatcher-dev/dispatcher/internal/webhook"
)

// HeaderCaller names the caller whose secrets sign a request. It is not
// signed: it only chooses which secrets to try, so forging it gains
// nothing.
const HeaderCaller = "Dispatcher-Caller"

// DefaultID is the legacy single caller of WEBHOOK_SECRETS: it may touch
// everything, and its idempotency scope is the one every signed request had
// before callers existed ("webhook"), so its records keep matching.
const DefaultID = "default"

const legacyScope = "webhook"

// Config is what a Registry is built from.
type Config struct {
	// Documents are the caller documents by caller id (a Source's answer).
	Documents map[string]string
	// DefaultSecrets are WEBHOOK_SECRETS (or the secret its ARN or
	// parameter names): the default caller's; none, no default caller.
	DefaultSecrets []string
}

// Registry is the deployment's callers at one moment; it does not change
// (Refreshing replaces it whole).
type Registry struct {
	byID        map[string]*entry
	byPrincipal map[string]*entry
	legacy      *entry
	sum         [sha256.Size]byte
}

// New builds a Registry; any faulty document fails it, naming the caller
// and the field (a cold start stops rather than serve without a caller).
func New(c Config) (*Registry, error) {
	r, kept, err := build(c, nil)
	if err == nil {
		err = kept
	}
	if err != nil {
		return nil, err
	}
	return r, nil
}

// build builds a Registry from c. With prev (a refresh), a caller whose
// document no longer parses keeps its entry from prev and a new caller with
// a faulty document is left out, so that one caller's bad edit never
// refuses another caller's request: kept names those callers. What concerns
// several callers (their number, a principal mapped twice) fails the build.
func build(c Config, prev *Registry) (r *Registry, kept, err error) {
	const op = "caller.build"
	r = &Registry{byID: map[string]*entry{}, byPrincipal: map[string]*entry{}}
	if len(c.Documents) > MaxCallers {
		return nil, nil, dispatch.E(op, dispatch.Invalid, fmt.Sprintf("%d callers, at most %d", len(c.Documents), MaxCallers), nil)
	}
	var faults []error
	h := sha256.New()
	for _, id := range sortedIDs(c.Documents) {
		raw := c.Documents[id]
		var e *entry
		if prev != nil && prev.byID[id] != nil && prev.byID[id].raw == raw {
			e = prev.byID[id]
		} else if e, err = parse(id, raw); err != nil {
			faults = append(faults, err)
			if prev == nil || prev.byID[id] == nil {
				continue
			}
			e = prev.byID[id]
		}
		if id == DefaultID && len(c.DefaultSecrets) > 0 {
			return nil, nil, dispatch.E(op, dispatch.Invalid, "caller "+DefaultID+" is WEBHOOK_SECRETS' caller; name the document otherwise, or unset WEBHOOK_SECRETS", nil)
		}
		r.byID[id] = e
		fmt.Fprintf(h, "%s\x00%s\x00", id, e.raw)
		for _, p := range e.principals {
			if other := r.byPrincipal[p]; other != nil {
				return nil, nil, dispatch.E(op, dispatch.Invalid, fmt.Sprintf("callers %s and %s list the same principal %s", other.caller.ID, id, p), nil)
			}
			r.byPrincipal[p] = e
		}
	}
	if len(c.DefaultSecrets) > 0 {
		v, err := webhook.NewVerifier(c.DefaultSecrets)
		if err != nil {
			return nil, nil, dispatch.E(op, dispatch.Invalid, "the default caller (WEBHOOK_SECRETS)", err)
		}
		r.legacy = &entry{caller: dispatch.Caller{ID: DefaultID, Scope: legacyScope, All: true}, verifier: v}
		fmt.Fprintf(h, "\x01%s", strings.Join(c.DefaultSecrets, "\x00"))
	}
	copy(r.sum[:], h.Sum(nil))
	return r, errors.Join(faults...), nil
}

// Len is how many callers the documents configure (the default caller
// aside).
func (r *Registry) Len() int { return len(r.byID) }

var (
	errIAMOnly = dispatch.E("caller.Authenticate", dispatch.Unauthorized, "this API accepts only callers that API Gateway authorized with IAM (SigV4)", nil)
	errNoName  = dispatch.E("caller.Authenticate", dispatch.Unauthorized, "missing "+HeaderCaller+" header: name the caller whose secrets sign the request", nil)
)

// Authenticate finds who sent a request: the caller whose principals list
// principalARN (API Gateway's IAM authorizer; "" when it did not authorize
// one), else the caller HeaderCaller names (the default caller without it)
// whose secrets verify the Standard Webhooks signature over signed
// (webhook.SignedContent). It returns the caller and the request's
// webhook-id. Failures are *dispatch.Error: Unauthorized (401) when the
// request proves no identity, Forbidden (403) for an IAM principal that is
// no caller of a deployment with callers.
func (r *Registry) Authenticate(_ context.Context, principalARN string, headers map[string]string, signed []byte) (dispatch.Caller, string, error) {
	const op = "caller.Authenticate"
	if principalARN != "" {
		if len(r.byID) == 0 {
			// No registry: every principal that IAM let through is its own
			// caller, as before callers existed.
			return dispatch.Caller{ID: principalARN, Scope: "iam:" + principalARN, All: true}, "", nil
		}
		if e := r.byPrincipal[principalKey(principalARN)]; e != nil {
			return e.caller, "", nil
		}
		return dispatch.Caller{}, "", dispatch.E(op, dispatch.Forbidden, "the IAM principal "+principalARN+" is not a caller of this deployment", nil)
	}
	name, ok := lookup(headers, HeaderCaller)
	if !ok {
		return dispatch.Caller{}, "", dispatch.E(op, dispatch.Unauthorized, HeaderCaller+" is given twice with different values", nil)
	}
	e := r.byID[name]
	switch {
	case name == "" && r.legacy != nil, name == DefaultID && r.legacy != nil:
		e = r.legacy
	case name == "" && !r.Signs():
		return dispatch.Caller{}, "", errIAMOnly
	case name == "":
		return dispatch.Caller{}, "", errNoName
	case e == nil:
		return dispatch.Caller{}, "", dispatch.E(op, dispatch.Unauthorized, HeaderCaller+" names no caller of this deployment", nil)
	case e.verifier == nil:
		return dispatch.Caller{}, "", dispatch.E(op, dispatch.Unauthorized, "caller "+name+" has no webhook secrets; it authenticates with IAM", nil)
	}
	id, err := e.verifier.Verify(headers, signed)
	if err != nil {
		return dispatch.Caller{}, "", err
	}
	return e.caller, id, nil
}

// Signs reports whether some caller authenticates with webhook secrets.
func (r *Registry) Signs() bool {
	for _, e := range r.byID {
		if e.verifier != nil {
			return true
		}
	}
	return r.legacy != nil
}

// lookup finds a header without regard to ASCII case; ok is false when it
// is given twice with different values.
func lookup(headers map[string]string, name string) (val string, ok bool) {
	found := false
	for k, v := range headers {
		if len(k) != len(name) || !strings.EqualFold(k, name) {
			continue
		}
		if found && v != val {
			return "", false
		}
		val, found = v, true
	}
	return val, true
}
