package caller

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/dispatcher-dev/dispatcher/internal/dispatch"
	"github.com/dispatcher-dev/dispatcher/internal/webhook"
)

const (
	secretA  = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"
	secretA2 = "whsec_dGhpcyBzZWNyZXQgd2FzIHJvdGF0ZWQgb3V0IQ=="
	secretB  = "whsec_C2FVsBQIhrscChlQIMV+b5sSYspob7oD"
	roleARN  = "arn:aws:iam::123456789012:role/team-a-api"
)

func doc(fields string) string {
	return `{"secrets":["` + secretA + `"],"aggregates":["Account/team-a-*"]` + fields + `}`
}

// pad pads a document with spaces to n bytes.
func pad(d string, n int) string { return d[:len(d)-1] + strings.Repeat(" ", n-len(d)) + "}" }

func list(field string, n int, item func(i int) string) string {
	items := make([]string, n)
	for i := range items {
		items[i] = strconv.Quote(item(i))
	}
	return `,"` + field + `":[` + strings.Join(items, ",") + `]`
}

func TestParse(t *testing.T) {
	tests := []struct {
		name, id, raw string
		wantErr       string // "" accepts; else the caller and field it names
	}{
		{"accepts a full document", "team-a", `{"secrets":["` + secretA + `","` + secretA2 + `"],"principals":["` + roleARN + `"],"aggregates":["Account/team-a-*"],"templates":["welcome"],"events":["account.*"],"rate":{"perSecond":10,"burst":20}}`, ""},
		{"accepts principals without secrets", "team-a", `{"principals":["arn:aws:iam::123456789012:user/ops"]}`, ""},
		{"accepts a role with a path", "team-a", `{"principals":["arn:aws:iam::123456789012:role/service/team-a"]}`, ""},
		{"accepts the id the document gives", "team-a", `{"id":"team-a","principals":["` + roleARN + `"]}`, ""},
		{"accepts a document of 4096 bytes", "team-a", pad(doc(""), MaxDocumentBytes), ""},
		{"refuses a document of 4097 bytes", "team-a", pad(doc(""), MaxDocumentBytes+1), "caller team-a: the document is 4097 bytes, at most 4096"},
		{"refuses an unknown field, naming it", "team-a", doc(`,"templatess":[]`), `caller team-a: unknown field "templatess"`},
		{"refuses a key given twice", "team-a", doc(`,"templates":[],"templates":["x"]`), "caller team-a: templates"},
		{"refuses a wrong type, naming the field", "team-a", `{"secrets":"` + secretA + `"}`, "caller team-a: secrets"},
		{"refuses trailing data", "team-a", doc("") + "{}", "caller team-a: unexpected data"},
		{"refuses another id than its name", "team-a", `{"id":"team-b","principals":["` + roleARN + `"]}`, `caller team-a: id: the document says "team-b"`},
		{"refuses a bad caller id", "Team-A", doc(""), "caller Team-A: id"},
		{"refuses an id of 65 characters", strings.Repeat("a", 65), doc(""), "caller " + strings.Repeat("a", 65) + ": id"},
		{"accepts an id of 64 characters", strings.Repeat("a", 64), doc(""), ""},
		{"accepts 2 secrets", "team-a", `{"secrets":["` + secretA + `","` + secretB + `"]}`, ""},
		{"refuses 3 secrets", "team-a", `{"secrets":["` + secretA + `","` + secretB + `","` + secretA2 + `"]}`, "caller team-a: secrets: at most 2"},
		{"refuses a malformed secret by position, without quoting it", "team-a", `{"secrets":["` + secretA + `","whsec_short"]}`, "caller team-a: secrets: secret 2 of 2"},
		{"refuses a caller with no way to authenticate", "team-a", `{"aggregates":["*/*"]}`, "caller team-a: give secrets or principals"},
		{"refuses a bad aggregate pattern, naming its index", "team-a", doc(`,"events":["a"]`)[:0] + `{"secrets":["` + secretA + `"],"aggregates":["Account/x","Account"]}`, "caller team-a: aggregates[1]"},
		{"refuses a bad template name", "team-a", doc(`,"templates":["Welcome"]`), "caller team-a: templates[0]"},
		{"refuses a bad event pattern", "team-a", doc(`,"events":["*.x"]`), "caller team-a: events[0]"},
		{"refuses an assumed-role ARN as a principal", "team-a", `{"principals":["arn:aws:sts::123456789012:assumed-role/team-a-api/s1"]}`, "caller team-a: principals[0]"},
		{"refuses a principal with a wildcard", "team-a", `{"principals":["arn:aws:iam::123456789012:role/*"]}`, "caller team-a: principals[0]"},
		{"refuses a principal listed twice (a role under two paths)", "team-a", `{"principals":["` + roleARN + `","arn:aws:iam::123456789012:role/x/team-a-api"]}`, "caller team-a: principals: "},
		{"accepts 32 templates", "team-a", doc(list("templates", MaxPatterns, func(i int) string { return fmt.Sprint("t-", i) })), ""},
		{"refuses 33 templates", "team-a", doc(list("templates", MaxPatterns+1, func(i int) string { return fmt.Sprint("t-", i) })), "caller team-a: templates: at most 32, got 33"},
		{"refuses 33 aggregates", "team-a", `{"secrets":["` + secretA + `"]` + list("aggregates", MaxPatterns+1, func(i int) string { return fmt.Sprint("Order/o-", i) }) + `}`, "caller team-a: aggregates: at most 32"},
		{"refuses 33 principals", "team-a", `{"secrets":["` + secretA + `"]` + list("principals", MaxPatterns+1, func(i int) string { return fmt.Sprint("arn:aws:iam::123456789012:user/u", i) }) + `}`, "caller team-a: principals: at most 32"},
		{"refuses 33 event patterns", "team-a", doc(list("events", MaxPatterns+1, func(i int) string { return fmt.Sprint("e", i) })), "caller team-a: events: at most 32"},
		{"refuses a rate without burst", "team-a", doc(`,"rate":{"perSecond":1}`), "caller team-a: rate: give both"},
		{"refuses a zero rate", "team-a", doc(`,"rate":{"perSecond":0,"burst":1}`), "caller team-a: rate: perSecond"},
		{"accepts the highest rate", "team-a", doc(`,"rate":{"perSecond":10000,"burst":5000}`), ""},
		{"refuses a rate one over", "team-a", doc(`,"rate":{"perSecond":10000.5,"burst":5000}`), "caller team-a: rate: perSecond"},
		{"refuses a burst one over", "team-a", doc(`,"rate":{"perSecond":1,"burst":5001}`), "caller team-a: rate: burst"},
		{"refuses a fractional burst", "team-a", doc(`,"rate":{"perSecond":1,"burst":1.5}`), "caller team-a: rate: burst"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			e, err := parse(tt.id, tt.raw)
			if tt.wantErr == "" {
				if err != nil {
					t.Fatalf("refused: %v", err)
				}
				if e.caller.ID != tt.id || e.caller.Scope != "caller:"+tt.id || e.caller.All {
					t.Errorf("caller %+v", e.caller)
				}
				return
			}
			if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
				t.Fatalf("err = %v, want it to say %q", err, tt.wantErr)
			}
			if strings.Contains(err.Error(), secretA[6:]) || strings.Contains(err.Error(), "short") {
				t.Errorf("the error quotes a secret: %v", err)
			}
		})
	}
}

func TestFromEnv(t *testing.T) {
	one := func(id string) string {
		return `{"id":"` + id + `","principals":["arn:aws:iam::123456789012:user/` + id + `"]}`
	}
	many := func(n int) string {
		parts := make([]string, n)
		for i := range parts {
			parts[i] = one(fmt.Sprint("c", i))
		}
		return "[" + strings.Join(parts, ",") + "]"
	}
	tests := []struct {
		name, value, wantErr string
		n                    int
	}{
		{"reads nothing from an empty value", "", "", 0},
		{"reads two callers", "[" + one("a") + "," + one("b") + "]", "", 2},
		{"reads 100 callers", many(MaxCallers), "", MaxCallers},
		{"refuses 101 callers", many(MaxCallers + 1), "101 callers, at most 100", 0},
		{"refuses an object", one("a"), "not a JSON array", 0},
		{"refuses a document without id", `[{"principals":[]}]`, `CALLERS[0]: a caller document is a JSON object with an "id"`, 0},
		{"refuses an id given twice", "[" + one("a") + "," + one("a") + "]", "CALLERS[1]: caller a is listed twice", 0},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			src, err := FromEnv(tt.value)
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("err = %v, want %q", err, tt.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			docs, _ := src(context.Background())
			r, err := New(Config{Documents: docs})
			if err != nil || r.Len() != tt.n {
				t.Fatalf("registry of %d callers, %v; want %d", r.Len(), err, tt.n)
			}
		})
	}
	t.Run("a registry refuses 101 documents from any source", func(t *testing.T) {
		docs := map[string]string{}
		for i := range MaxCallers + 1 {
			docs[fmt.Sprint("c", i)] = `{"principals":["arn:aws:iam::123456789012:user/` + fmt.Sprint("c", i) + `"]}`
		}
		if _, err := New(Config{Documents: docs}); err == nil || !strings.Contains(err.Error(), "101 callers, at most 100") {
			t.Fatalf("err = %v", err)
		}
	})
	t.Run("Merge refuses an id from two sources", func(t *testing.T) {
		a, _ := FromEnv("[" + one("a") + "]")
		if _, err := Merge(a, a)(context.Background()); err == nil || !strings.Contains(err.Error(), "caller a is configured twice") {
			t.Fatalf("err = %v", err)
		}
	})
}

// signed returns the headers of a request signed with secret, naming
// caller (none when "").
func signed(t *testing.T, secret, caller string, body []byte) map[string]string {
	t.Helper()
	now := time.Now()
	id := fmt.Sprintf("msg_%d", now.UnixNano())
	sig, err := webhook.Sign(secret, id, now, body)
	if err != nil {
		t.Fatal(err)
	}
	h := map[string]string{"webhook-id": id, "webhook-timestamp": strconv.FormatInt(now.Unix(), 10), "webhook-signature": sig}
	if caller != "" {
		h["dispatcher-caller"] = caller
	}
	return h
}

func TestAuthenticate(t *testing.T) {
	body := []byte(`{"a":1}`)
	docs := map[string]string{
		"team-a": `{"secrets":["` + secretA + `"],"principals":["arn:aws:iam::123456789012:role/service/team-a-api"],"aggregates":["Account/team-a-*"]}`,
		"team-b": `{"secrets":["` + secretB + `"],"aggregates":["*/team-b-*"],"rate":{"perSecond":5,"burst":10}}`,
		"ops":    `{"principals":["arn:aws:iam::123456789012:user/ops"],"aggregates":["*/*"]}`,
	}
	full, err := New(Config{Documents: docs, DefaultSecrets: []string{secretA2}})
	if err != nil {
		t.Fatal(err)
	}
	noDefault, err := New(Config{Documents: docs})
	if err != nil {
		t.Fatal(err)
	}
	legacyOnly, err := New(Config{DefaultSecrets: []string{secretA2}})
	if err != nil {
		t.Fatal(err)
	}
	iamOnly, err := New(Config{})
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name      string
		r         *Registry
		principal string
		headers   map[string]string
		wantID    string
		wantScope string
		wantKind  dispatch.Kind
		wantMsg   string
	}{
		{"finds the caller the header names by its secret", full, "", signed(t, secretA, "team-a", body), "team-a", "caller:team-a", 0, ""},
		{"finds the header in any case", full, "", func() map[string]string {
			h := signed(t, secretB, "", body)
			h["DISPATCHER-CALLER"] = "team-b"
			return h
		}(), "team-b", "caller:team-b", 0, ""},
		{"refuses another caller's secret", full, "", signed(t, secretB, "team-a", body), "", "", dispatch.Unauthorized, "no signature"},
		{"refuses an unknown caller with 401", full, "", signed(t, secretA, "team-z", body), "", "", dispatch.Unauthorized, "Dispatcher-Caller names no caller"},
		{"refuses a caller without secrets with 401", full, "", signed(t, secretA, "ops", body), "", "", dispatch.Unauthorized, "caller ops has no webhook secrets"},
		{"refuses the header given twice with different values", full, "", func() map[string]string {
			h := signed(t, secretA, "team-a", body)
			h["Dispatcher-Caller"] = "team-b"
			return h
		}(), "", "", dispatch.Unauthorized, "given twice"},
		{"takes the default caller without the header", full, "", signed(t, secretA2, "", body), "default", "webhook", 0, ""},
		{"takes the default caller by name", full, "", signed(t, secretA2, "default", body), "default", "webhook", 0, ""},
		{"refuses a registered caller's secret as the default's", full, "", signed(t, secretA, "", body), "", "", dispatch.Unauthorized, "no signature"},
		{"asks for the header without a default caller", noDefault, "", signed(t, secretA, "", body), "", "", dispatch.Unauthorized, "missing Dispatcher-Caller"},
		{"keeps the legacy deployment working", legacyOnly, "", signed(t, secretA2, "", body), "default", "webhook", 0, ""},
		{"maps an assumed role to the caller listing the role (whatever its path)", full, "arn:aws:sts::123456789012:assumed-role/team-a-api/session-1", nil, "team-a", "caller:team-a", 0, ""},
		{"maps a user", full, "arn:aws:iam::123456789012:user/ops", nil, "ops", "caller:ops", 0, ""},
		{"refuses the same role name in another account with 403", full, "arn:aws:sts::210987654321:assumed-role/team-a-api/s", nil, "", "", dispatch.Forbidden, "is not a caller"},
		{"refuses an unmapped principal with 403", full, "arn:aws:iam::123456789012:user/intruder", nil, "", "", dispatch.Forbidden, "is not a caller"},
		{"makes every principal its own caller without documents", legacyOnly, "arn:aws:iam::123456789012:user/x", nil, "arn:aws:iam::123456789012:user/x", "iam:arn:aws:iam::123456789012:user/x", 0, ""},
		{"refuses a signed caller without any secrets configured", iamOnly, "", signed(t, secretA, "", body), "", "", dispatch.Unauthorized, "only callers that API Gateway authorized with IAM"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c, _, err := tt.r.Authenticate(context.Background(), tt.principal, tt.headers, body)
			if tt.wantKind != 0 {
				if err == nil || dispatch.KindOf(err) != tt.wantKind || !strings.Contains(err.Error(), tt.wantMsg) {
					t.Fatalf("err = %v (%v), want %v saying %q", err, dispatch.KindOf(err), tt.wantKind, tt.wantMsg)
				}
				return
			}
			if err != nil || c.ID != tt.wantID || c.Scope != tt.wantScope {
				t.Fatalf("caller %+v, %v; want %s in scope %s", c, err, tt.wantID, tt.wantScope)
			}
		})
	}
	t.Run("the caller carries its grants and rate", func(t *testing.T) {
		c, id, err := full.Authenticate(context.Background(), "", signed(t, secretB, "team-b", body), body)
		if err != nil || id == "" || c.Rate != (dispatch.Rate{PerSecond: 5, Burst: 10}) || !c.MayAccess("X", "team-b-1") || c.MayAccess("X", "team-a-1") {
			t.Fatalf("%+v %q %v", c, id, err)
		}
	})
	t.Run("a document named default conflicts with WEBHOOK_SECRETS", func(t *testing.T) {
		_, err := New(Config{Documents: map[string]string{"default": docs["team-b"]}, DefaultSecrets: []string{secretA2}})
		if err == nil || !strings.Contains(err.Error(), "WEBHOOK_SECRETS") {
			t.Fatalf("err = %v", err)
		}
	})
	t.Run("two callers listing one role are refused", func(t *testing.T) {
		_, err := New(Config{Documents: map[string]string{"x": `{"principals":["` + roleARN + `"]}`, "y": `{"principals":["arn:aws:iam::123456789012:role/p/team-a-api"]}`}})
		if err == nil || !strings.Contains(err.Error(), "callers x and y list the same principal") {
			t.Fatalf("err = %v", err)
		}
	})
}

// source is a caller configuration that a test changes while a registry
// reads it.
type source struct {
	mu   sync.Mutex
	docs map[string]string
	err  error
}

func (s *source) set(id, raw string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	next := map[string]string{}
	for k, v := range s.docs {
		next[k] = v
	}
	next[id] = raw
	s.docs = next
}

func (s *source) load(context.Context) (Config, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return Config{Documents: s.docs}, s.err
}

// A rotation of team-a's secrets reaches a warm registry, and team-b's
// requests, signed all along, are never refused; a faulty edit of team-a's
// document keeps team-a's secrets in use and does not stop team-b's
// rotation.
func TestRefreshRotatesOneCallerWithoutRefusingAnother(t *testing.T) {
	body := []byte(`{}`)
	a := func(secrets ...string) string {
		return `{"secrets":["` + strings.Join(secrets, `","`) + `"],"aggregates":["*/a-*"]}`
	}
	b := func(secrets ...string) string {
		return `{"secrets":["` + strings.Join(secrets, `","`) + `"],"aggregates":["*/b-*"]}`
	}
	src := &source{docs: map[string]string{"team-a": a(secretA), "team-b": b(secretB)}}
	c, _ := src.load(context.Background())
	initial, err := New(c)
	if err != nil {
		t.Fatal(err)
	}
	now := time.Now()
	var mu sync.Mutex
	clock := func() time.Time { mu.Lock(); defer mu.Unlock(); return now }
	tick := func() { mu.Lock(); now = now.Add(2 * time.Minute); mu.Unlock() }
	var errs []error
	var changes int
	r, err := NewRefreshing(initial, src.load, RefreshOptions{Every: time.Minute, Now: clock,
		OnError: func(_ context.Context, err error) { errs = append(errs, err) }, OnChange: func(context.Context, int) { changes++ }})
	if err != nil {
		t.Fatal(err)
	}
	auth := func(secret, caller string) error {
		_, _, err := r.Authenticate(context.Background(), "", signed(t, secret, caller, body), body)
		return err
	}
	step := func(what string, change func()) {
		t.Helper()
		change()
		tick()
		if err := auth(secretB, "team-b"); err != nil {
			t.Fatalf("%s: team-b refused: %v", what, err)
		}
	}
	step("team-a adds its new secret", func() { src.set("team-a", a(secretA, secretA2)) })
	if auth(secretA, "team-a") != nil || auth(secretA2, "team-a") != nil {
		t.Fatal("during the rotation, team-a's two secrets must verify")
	}
	step("team-a drops its old secret", func() { src.set("team-a", a(secretA2)) })
	if auth(secretA, "team-a") == nil || auth(secretA2, "team-a") != nil {
		t.Fatal("after the rotation, only team-a's new secret must verify")
	}
	if changes != 2 {
		t.Errorf("%d changes told, want 2", changes)
	}
	step("team-a's document is broken", func() { src.set("team-a", `{"secrets":"oops"}`) })
	if auth(secretA2, "team-a") != nil {
		t.Error("a broken document must keep team-a's secrets in use")
	}
	if len(errs) != 1 || !strings.Contains(errs[0].Error(), "caller team-a: secrets") {
		t.Errorf("errors told %v, want one naming team-a's secrets", errs)
	}
	step("team-b rotates while team-a's document is broken", func() { src.set("team-b", b(secretB, secretA)) })
	if auth(secretA, "team-b") != nil {
		t.Error("team-b's rotation must not wait for team-a's fix")
	}
	step("the source fails", func() {
		src.mu.Lock()
		src.err = errors.New("AccessDeniedException")
		src.mu.Unlock()
	})
	if auth(secretA2, "team-a") != nil || len(errs) != 3 || !strings.Contains(errs[2].Error(), "AccessDenied") {
		t.Errorf("after a failed read: errors %v; the registry in use must stay", errs)
	}
}
