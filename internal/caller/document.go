// Package caller is the deployment's caller registry: who may call the API,
// with which webhook secrets or IAM principals, and what each may touch
// (dispatch.Caller). Callers are read from caller documents (one JSON
// document per caller: an SSM SecureString parameter each, or the CALLERS
// environment variable locally) plus the legacy single caller of
// WEBHOOK_SECRETS, and read again while an instance lives (Refreshing).
package caller

import (
	"context"
	"encoding/json"
	"fmt"
	"slices"
	"sort"
	"strings"

	"github.com/dispatcher-dev/dispatcher/internal/dispatch"
	"github.com/dispatcher-dev/dispatcher/internal/webhook"
)

// Limits of the registry, each checked when it is read.
const (
	// MaxDocumentBytes bounds one caller document: a standard SSM
	// parameter's value is at most 4 KB.
	MaxDocumentBytes = 4096
	// MaxCallers bounds a deployment's callers: each is an entry in memory,
	// a page in ten of the cold start's GetParametersByPath, and a value of
	// the metrics' CallerId dimension (a custom metric each).
	MaxCallers = 100
	// MaxPatterns bounds each list of a document (principals, aggregates,
	// templates, events): every request of the caller may walk them.
	MaxPatterns = 32
	// MaxPrincipalLen is IAM's limit on an ARN.
	MaxPrincipalLen = 2048
	// MaxRatePerSecond and MaxBurst bound a caller's own rate: API
	// Gateway's default account-level throttle (10,000 requests a second,
	// a burst of 5,000), which a stage cannot exceed anyway.
	MaxRatePerSecond = 10000
	MaxBurst         = 5000
)

// Document is one caller's configuration as stored (docs/api.md,
// "Callers"). ID is given only in the CALLERS list; in a parameter tree
// the caller's id is its parameter's name.
type document struct {
	ID         string   `json:"id"`
	Secrets    []string `json:"secrets"`
	Principals []string `json:"principals"`
	Aggregates []string `json:"aggregates"`
	Templates  []string `json:"templates"`
	Events     []string `json:"events"`
	Rate       *rate    `json:"rate"`
}

type rate struct {
	PerSecond *json.Number `json:"perSecond"`
	Burst     *json.Number `json:"burst"`
}

// entry is a parsed caller: what it may do, and how it authenticates.
type entry struct {
	caller     dispatch.Caller
	verifier   *webhook.Verifier // nil: it authenticates with IAM only
	principals []string          // principalKey of each
	raw        string            // the document, to tell a change
}

func invalid(id, field, format string, args ...any) error {
	msg := fmt.Sprintf(format, args...)
	if field != "" {
		msg = field + ": " + msg
	}
	return dispatch.E("caller.parse", dispatch.Invalid, "caller "+id+": "+msg, nil)
}

// parse reads the document of caller id.
func parse(id, raw string) (*entry, error) {
	if !dispatch.ValidCallerID(id) {
		return nil, invalid(strings.ToValidUTF8(dispatch.Truncate(id, dispatch.MaxCallerIDLen+1), "?"), "id", "must be 1 to %d characters of a-z 0-9 -, starting with a letter or digit", dispatch.MaxCallerIDLen)
	}
	if len(raw) > MaxDocumentBytes {
		return nil, invalid(id, "", "the document is %d bytes, at most %d", len(raw), MaxDocumentBytes)
	}
	var d document
	if err := dispatch.DecodeStrict([]byte(raw), &d); err != nil {
		var field, msg string
		if ve, ok := err.(*dispatch.ValidationError); ok && len(ve.Fields) > 0 {
			field, msg = ve.Fields[0].Field, ve.Fields[0].Message
		} else {
			msg = err.Error()
		}
		return nil, invalid(id, field, "%s", msg)
	}
	if d.ID != "" && d.ID != id {
		return nil, invalid(id, "id", "the document says %q; a caller's id is its name", dispatch.Truncate(d.ID, dispatch.MaxCallerIDLen+1))
	}
	e := &entry{raw: raw, caller: dispatch.Caller{ID: id, Scope: dispatch.CallerScope(id), Aggregates: d.Aggregates,
		Grant: dispatch.Grant{Templates: d.Templates, Events: d.Events}}}
	lists := []struct {
		field string
		items []string
		valid func(string) bool
		want  string
	}{
		{"principals", d.Principals, validPrincipal, "an IAM role or user ARN (arn:aws:iam::123456789012:role/NAME); a role's sessions map to it"},
		{"aggregates", d.Aggregates, dispatch.ValidAggregatePattern, `"Type/idPattern": a type or *, then an id or a prefix ending in * ("Account/team-a-*")`},
		{"templates", d.Templates, dispatch.ValidTemplateName, "a template name of a-z 0-9 -"},
		{"events", d.Events, dispatch.ValidEventPattern, `an event type, or a prefix of one ending in * ("order.*")`},
	}
	for _, l := range lists {
		if len(l.items) > MaxPatterns {
			return nil, invalid(id, l.field, "at most %d, got %d", MaxPatterns, len(l.items))
		}
		for i, s := range l.items {
			if !l.valid(s) {
				return nil, invalid(id, fmt.Sprintf("%s[%d]", l.field, i), "want %s", l.want)
			}
		}
	}
	switch n := len(d.Secrets); {
	case n > webhook.MaxSecrets:
		return nil, invalid(id, "secrets", "at most %d (the current secret and, while rotating, the other one), got %d", webhook.MaxSecrets, n)
	case n == 0 && len(d.Principals) == 0:
		return nil, invalid(id, "", "give secrets or principals: a caller needs a way to authenticate")
	case n > 0:
		v, err := webhook.NewVerifier(d.Secrets)
		if err != nil {
			// NewVerifier names the secret by position, never by content.
			return nil, invalid(id, "secrets", "%s", strings.TrimPrefix(err.Error(), "webhook: "))
		}
		e.verifier = v
	}
	for _, p := range d.Principals {
		k := principalKey(p)
		if slices.Contains(e.principals, k) {
			return nil, invalid(id, "principals", "%s is listed twice", p)
		}
		e.principals = append(e.principals, k)
	}
	if d.Rate != nil {
		r, err := parseRate(d.Rate)
		if err != nil {
			return nil, invalid(id, "rate", "%s", err)
		}
		e.caller.Rate = r
	}
	return e, nil
}

func parseRate(r *rate) (dispatch.Rate, error) {
	if r.PerSecond == nil || r.Burst == nil {
		return dispatch.Rate{}, fmt.Errorf("give both perSecond and burst")
	}
	ps, err := r.PerSecond.Float64()
	if err != nil || ps <= 0 || ps > MaxRatePerSecond {
		return dispatch.Rate{}, fmt.Errorf("perSecond must be more than 0 and at most %d", MaxRatePerSecond)
	}
	b, err := r.Burst.Int64()
	if err != nil || b < 1 || b > MaxBurst {
		return dispatch.Rate{}, fmt.Errorf("burst must be a whole number from 1 to %d", MaxBurst)
	}
	return dispatch.Rate{PerSecond: ps, Burst: int(b)}, nil
}

// validPrincipal accepts an IAM role or user ARN. An STS assumed-role ARN
// is refused: it names one session, and sessions change; the role's ARN
// maps all of them.
func validPrincipal(p string) bool {
	parts := strings.SplitN(p, ":", 6)
	if len(p) > MaxPrincipalLen || len(parts) != 6 || parts[0] != "arn" || parts[1] == "" || parts[2] != "iam" || parts[3] != "" || !isAccount(parts[4]) {
		return false
	}
	kind, name, ok := strings.Cut(parts[5], "/")
	return ok && (kind == "role" || kind == "user") && name != "" && !strings.HasSuffix(name, "/") &&
		!strings.ContainsFunc(name, func(r rune) bool { return r <= ' ' || r > '~' || r == '*' })
}

func isAccount(s string) bool {
	return len(s) == 12 && strings.Trim(s, "0123456789") == ""
}

// principalKey is what a principal is looked up by: a role's, whatever its
// path, and its sessions' (arn:aws:sts::ACCOUNT:assumed-role/ROLE/SESSION,
// as API Gateway reports a caller that assumed it) are the same key;
// anything else is its ARN.
func principalKey(arn string) string {
	parts := strings.SplitN(arn, ":", 6)
	if len(parts) != 6 || parts[0] != "arn" {
		return arn
	}
	part, service, account, resource := parts[1], parts[2], parts[4], parts[5]
	switch {
	case service == "iam" && strings.HasPrefix(resource, "role/"):
		name := resource[strings.LastIndexByte(resource, '/')+1:]
		return "role:" + part + ":" + account + ":" + name
	case service == "sts" && strings.HasPrefix(resource, "assumed-role/"):
		role, _, ok := strings.Cut(strings.TrimPrefix(resource, "assumed-role/"), "/")
		if ok && role != "" {
			return "role:" + part + ":" + account + ":" + role
		}
	}
	return arn
}

// Source reads the caller documents: caller id → raw JSON document.
// FromEnv reads the CALLERS variable; an SSM parameter tree is another.
type Source func(ctx context.Context) (map[string]string, error)

// FromEnv parses CALLERS: a JSON array of caller documents, each with its
// "id". The value cannot change while an instance lives, so it is parsed
// once; the documents themselves are checked as any source's are.
func FromEnv(value string) (Source, error) {
	const op = "caller.FromEnv"
	docs := map[string]string{}
	if strings.TrimSpace(value) != "" {
		var list []json.RawMessage
		if err := json.Unmarshal([]byte(value), &list); err != nil {
			return nil, dispatch.E(op, dispatch.Invalid, "CALLERS is not a JSON array of caller documents", err)
		}
		if len(list) > MaxCallers {
			return nil, dispatch.E(op, dispatch.Invalid, fmt.Sprintf("CALLERS lists %d callers, at most %d", len(list), MaxCallers), nil)
		}
		for i, raw := range list {
			var head struct {
				ID string `json:"id"`
			}
			if err := json.Unmarshal(raw, &head); err != nil || head.ID == "" {
				return nil, dispatch.E(op, dispatch.Invalid, fmt.Sprintf("CALLERS[%d]: a caller document is a JSON object with an \"id\"", i), nil)
			}
			if _, dup := docs[head.ID]; dup {
				return nil, dispatch.E(op, dispatch.Invalid, fmt.Sprintf("CALLERS[%d]: caller %s is listed twice", i, dispatch.Truncate(head.ID, dispatch.MaxCallerIDLen+1)), nil)
			}
			docs[head.ID] = string(raw)
		}
	}
	return func(context.Context) (map[string]string, error) { return docs, nil }, nil
}

// Merge reads every source; a caller id found in two is an error, not a
// silent choice.
func Merge(sources ...Source) Source {
	return func(ctx context.Context) (map[string]string, error) {
		out := map[string]string{}
		for _, s := range sources {
			docs, err := s(ctx)
			if err != nil {
				return nil, err
			}
			for id, raw := range docs {
				if _, dup := out[id]; dup {
					return nil, dispatch.E("caller.Merge", dispatch.Invalid, "caller "+id+" is configured twice", nil)
				}
				out[id] = raw
			}
		}
		return out, nil
	}
}

func sortedIDs(docs map[string]string) []string {
	ids := make([]string, 0, len(docs))
	for id := range docs {
		ids = append(ids, id)
	}
	sort.Strings(ids)
	return ids
}
