package emails

import (
	"encoding/json"
	"errors"
	"maps"
	"slices"
	"strings"
	"sync"
	"testing"
	"testing/fstest"

	"github.com/dispatcher-dev/dispatcher/internal/dispatch"
)

// one builds an FS holding a single template called "t".
func one(subject, text, html string) fstest.MapFS {
	return fstest.MapFS{
		"t/subject.txt": {Data: []byte(subject)},
		"t/body.txt":    {Data: []byte(text)},
		"t/body.html":   {Data: []byte(html)},
	}
}

func mustLoad(t *testing.T) *Set {
	t.Helper()
	s, err := Load()
	if err != nil {
		t.Fatalf("Load: %v", err)
	}
	return s
}

func receipt() map[string]any {
	return map[string]any{
		"owner": "Ada Lovelace", "accountId": "acc-123", "amount": "12.34",
		"currency": "EUR", "reference": "INV-7", "balance": "112.34",
	}
}

// shipped documents the data each embedded template takes; the test below
// holds the templates to exactly this.
var shipped = map[string]map[string]any{
	"account-welcome":    {"owner": "Ada Lovelace", "accountId": "acc-123", "currency": "EUR"},
	"deposit-receipt":    receipt(),
	"withdrawal-receipt": receipt(),
	"notification":       {"title": "Build finished", "message": "All green."},
}

func TestLoad(t *testing.T) {
	s := mustLoad(t)
	want := slices.Sorted(maps.Keys(shipped))
	if got := s.Names(); !slices.Equal(got, want) {
		t.Errorf("Names() = %v, want %v", got, want)
	}
	if again := mustLoad(t); again != s {
		t.Error("Load parsed the embedded templates again; want the same Set")
	}
	for _, tc := range []struct {
		name string
		in   string
		want bool
	}{
		{"has a shipped template", "deposit-receipt", true},
		{"lacks an unknown template", "nope", false},
		{"lacks an invalid name", "../deposit-receipt", false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if got := s.Has(tc.in); got != tc.want {
				t.Errorf("Has(%q) = %v, want %v", tc.in, got, tc.want)
			}
		})
	}
}

// Every shipped template renders with its documented data, and needs every
// documented key, so the documentation above cannot drift from the files.
func TestShippedTemplates(t *testing.T) {
	s := mustLoad(t)
	for name, data := range shipped {
		t.Run("renders "+name, func(t *testing.T) {
			r, err := s.Render(name, data)
			if err != nil {
				t.Fatalf("Render: %v", err)
			}
			if r.Subject == "" || r.Text == "" || r.HTML == "" {
				t.Fatalf("Render = %+v, want all parts", r)
			}
			for _, v := range data {
				if !strings.Contains(r.Text, v.(string)) || !strings.Contains(r.HTML, v.(string)) {
					t.Errorf("bodies lack %q", v)
				}
			}
			for _, part := range []string{r.Subject, r.Text, r.HTML} {
				if strings.Contains(part, "<no value>") {
					t.Errorf("rendered %q", part)
				}
			}
		})
		for key := range data {
			t.Run(name+" rejects missing "+key, func(t *testing.T) {
				d := maps.Clone(data)
				delete(d, key)
				_, err := s.Render(name, d)
				if !errors.Is(err, ErrMissingData) || !strings.Contains(err.Error(), `"`+key+`"`) {
					t.Errorf("Render without %q: err = %v, want ErrMissingData naming it", key, err)
				}
			})
		}
	}
}

func TestRender(t *testing.T) {
	with := func(k string, v any) map[string]any {
		d := receipt()
		d[k] = v
		return d
	}
	note := func(title, message string) map[string]any {
		return map[string]any{"title": title, "message": message}
	}
	tests := []struct {
		name     string
		fsys     fstest.MapFS // nil: the embedded templates
		template string
		data     map[string]any
		wantErr  error
		errHas   string // the error message must contain this
		check    func(t *testing.T, r Rendered)
	}{
		{
			name: "renders deposit receipt", template: "deposit-receipt", data: receipt(),
			check: func(t *testing.T, r Rendered) {
				if r.Subject != "Deposit of 12.34 EUR received" {
					t.Errorf("Subject = %q", r.Subject)
				}
			},
		},
		{
			name: "rejects unknown template", template: "no-such-template", data: receipt(),
			wantErr: ErrUnknownTemplate, errHas: "no-such-template",
		},
		{
			name: "rejects invalid template name without echoing it", template: "Deposit\nReceipt", data: receipt(),
			wantErr: ErrUnknownTemplate, errHas: "invalid name",
		},
		{
			name: "rejects empty template name", template: "", data: receipt(),
			wantErr: ErrUnknownTemplate,
		},
		{
			name: "rejects missing keys naming each", template: "deposit-receipt",
			data:    map[string]any{"owner": "A", "accountId": "x", "currency": "EUR", "balance": "1"},
			wantErr: ErrMissingData, errHas: `"amount", "reference"`,
		},
		{
			name: "rejects nil data", template: "notification", data: nil,
			wantErr: ErrMissingData, errHas: `"message", "title"`,
		},
		{
			name: "rejects null value as missing", template: "deposit-receipt", data: with("reference", nil),
			wantErr: ErrMissingData, errHas: `"reference"`,
		},
		{
			name: "rejects key used only in an untaken branch",
			fsys: one("Hi", "{{if .vip}}Dear {{.title}}{{end}}", "x"), template: "t",
			data:    map[string]any{"vip": false},
			wantErr: ErrMissingData, errHas: `"title"`,
		},
		{
			name: "rejects key used through $ inside with",
			fsys: one("Hi", "{{with .a}}{{$.b}}{{end}}", "x"), template: "t",
			data:    map[string]any{"a": "1"},
			wantErr: ErrMissingData, errHas: `"b"`,
		},
		{
			name: "rejects key missing in a called template",
			fsys: one("Hi", `{{define "sig"}}{{.who}}{{end}}{{template "sig" .}}`, "x"), template: "t",
			data:    map[string]any{},
			wantErr: ErrMissingData, errHas: `"who"`,
		},
		{
			name: "accepts extra keys", template: "notification",
			data: map[string]any{"title": "T", "message": "M", "unused": map[string]any{"nested": 1}},
		},
		{
			name: "accepts values as decoded from JSON",
			fsys: one("{{.n}} {{.j}}", "{{.b}} {{.f}} {{.i}}", "{{.n}}"), template: "t",
			data: map[string]any{"n": 12.5, "j": json.Number("7"), "b": true, "f": float32(0.5), "i": 3},
			check: func(t *testing.T, r Rendered) {
				if r.Subject != "12.5 7" || r.Text != "true 0.5 3" {
					t.Errorf("Render = %+v", r)
				}
			},
		},
		{
			name: "rejects non-scalar value", template: "deposit-receipt", data: with("amount", []any{"1"}),
			wantErr: ErrInvalidData, errHas: `"amount"`,
		},
		{
			name: "escapes data in the HTML body only", template: "deposit-receipt", data: with("owner", "<script>alert(1)</script>"),
			check: func(t *testing.T, r Rendered) {
				if strings.Contains(r.HTML, "<script>") || !strings.Contains(r.HTML, "&lt;script&gt;") {
					t.Errorf("HTML not escaped: %s", r.HTML)
				}
				if !strings.Contains(r.Text, "Hello <script>alert(1)</script>,") {
					t.Errorf("Text escaped: %s", r.Text)
				}
			},
		},
		{
			name: "trims surrounding spaces from the subject", template: "notification", data: note("  Hello  ", "m"),
			check: func(t *testing.T, r Rendered) {
				if r.Subject != "Hello" {
					t.Errorf("Subject = %q, want %q", r.Subject, "Hello")
				}
			},
		},
		{
			name: "strips a subject file's final CRLF", fsys: one("Hi {{.x}}\r\n", "b", "b"), template: "t",
			data: map[string]any{"x": "there"},
			check: func(t *testing.T, r Rendered) {
				if r.Subject != "Hi there" {
					t.Errorf("Subject = %q", r.Subject)
				}
			},
		},
		{name: "rejects LF in the subject", template: "notification", data: note("a\nBcc: x@example.com", "m"), wantErr: ErrUnsafeSubject},
		{name: "rejects CR in the subject", template: "notification", data: note("a\rb", "m"), wantErr: ErrUnsafeSubject},
		{name: "rejects a trailing LF in the subject", template: "notification", data: note("a\n", "m"), wantErr: ErrUnsafeSubject},
		{name: "rejects tab in the subject", template: "notification", data: note("a\tb", "m"), wantErr: ErrUnsafeSubject},
		{name: "rejects NUL in the subject", template: "notification", data: note("a\x00b", "m"), wantErr: ErrUnsafeSubject},
		{name: "rejects DEL in the subject", template: "notification", data: note("a\x7fb", "m"), wantErr: ErrUnsafeSubject},
		{name: "rejects C1 next line in the subject", template: "notification", data: note("a\u0085b", "m"), wantErr: ErrUnsafeSubject},
		{name: "rejects line separator in the subject", template: "notification", data: note("a\u2028b", "m"), wantErr: ErrUnsafeSubject},
		{name: "rejects invalid UTF-8 in the subject", template: "notification", data: note("a\xffb", "m"), wantErr: ErrUnsafeSubject},
		{name: "rejects a right-to-left override in subject data, naming the key", template: "notification", data: note("Invoice \u202egnp.exe", "m"), wantErr: ErrUnsafeSubject, errHas: `"title" goes into the subject and must not contain U+202E`},
		{name: "rejects a left-to-right embedding in the subject", template: "notification", data: note("a\u202ab", "m"), wantErr: ErrUnsafeSubject, errHas: "U+202A"},
		{name: "rejects a left-to-right isolate in the subject", template: "notification", data: note("a\u2066b", "m"), wantErr: ErrUnsafeSubject, errHas: "U+2066"},
		{name: "rejects a pop directional isolate in the subject", template: "notification", data: note("a\u2069b", "m"), wantErr: ErrUnsafeSubject, errHas: "U+2069"},
		{name: "names the key of a line break in subject data", template: "notification", data: note("a\r\nBcc: x@example.com", "m"), wantErr: ErrUnsafeSubject, errHas: `"title"`},
		{name: "rejects an owner's override in the welcome subject", template: "account-welcome", data: map[string]any{"owner": "\u202eAda", "accountId": "a", "currency": "EUR"}, wantErr: ErrUnsafeSubject, errHas: `"owner"`},
		{
			name: "rejects an override the template itself puts in the subject", fsys: one(`Hi {{printf "%c" .x}}`, "b", "b"), template: "t",
			data: map[string]any{"x": 0x202e}, wantErr: ErrUnsafeSubject, errHas: "subject contains U+202E",
		},
		{
			name: "accepts a right-to-left mark in the subject", template: "notification", data: note("\u05e9\u05dc\u05d5\u05dd \u200f1", "m"),
			check: func(t *testing.T, r Rendered) {
				if r.Subject != "\u05e9\u05dc\u05d5\u05dd \u200f1" {
					t.Errorf("Subject = %q", r.Subject)
				}
			},
		},
		{
			name: "leaves an override in body-only data to the body", template: "notification", data: note("t", "a\u202eb"),
			check: func(t *testing.T, r Rendered) {
				if !strings.Contains(r.Text, "a\u202eb") {
					t.Errorf("Text = %q", r.Text)
				}
			},
		},
		{name: "rejects empty subject", template: "notification", data: note("   ", "m"), wantErr: ErrUnsafeSubject, errHas: "empty"},
		{
			name: "accepts non-ASCII subject", template: "notification", data: note("Überweisung erhalten ✓", "m"),
			check: func(t *testing.T, r Rendered) {
				if r.Subject != "Überweisung erhalten ✓" {
					t.Errorf("Subject = %q", r.Subject)
				}
			},
		},
		{name: "accepts subject of 998 bytes", template: "notification", data: note(strings.Repeat("a", MaxSubjectBytes), "m")},
		{name: "rejects subject over 998 bytes", template: "notification", data: note(strings.Repeat("a", MaxSubjectBytes+1), "m"), wantErr: ErrTooLarge},
		{
			name: "accepts bodies totalling MaxRenderedBytes", fsys: one("s", "{{.m}}", "{{.m}}"), template: "t",
			data: map[string]any{"m": strings.Repeat("a", MaxRenderedBytes/2)},
		},
		{
			name: "rejects bodies over MaxRenderedBytes", fsys: one("s", "{{.m}}", "{{.m}}"), template: "t",
			data:    map[string]any{"m": strings.Repeat("a", MaxRenderedBytes/2+1)},
			wantErr: ErrTooLarge, errHas: "body.html",
		},
		{
			name: "rejects text body alone over MaxRenderedBytes", template: "notification",
			data:    note("t", strings.Repeat("a", MaxRenderedBytes+1)),
			wantErr: ErrTooLarge, errHas: "body.txt",
		},
		{
			name: "counts HTML escaping towards the limit", template: "notification",
			data:    note("t", strings.Repeat("<", MaxRenderedBytes/5)),
			wantErr: ErrTooLarge, errHas: "body.html",
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			s := mustLoad(t)
			if tc.fsys != nil {
				var err error
				if s, err = LoadFS(tc.fsys); err != nil {
					t.Fatalf("LoadFS: %v", err)
				}
			}
			r, err := s.Render(tc.template, tc.data)
			if tc.wantErr != nil {
				if !errors.Is(err, tc.wantErr) {
					t.Fatalf("err = %v, want %v", err, tc.wantErr)
				}
				if !strings.Contains(err.Error(), tc.errHas) {
					t.Errorf("err = %q, want it to contain %q", err, tc.errHas)
				}
				if r != (Rendered{}) {
					t.Errorf("Render returned content with an error: %+v", r)
				}
				return
			}
			if err != nil {
				t.Fatalf("Render: %v", err)
			}
			if tc.check != nil {
				tc.check(t, r)
			}
		})
	}
}

// A Set is shared by every request a Lambda instance serves.
func TestRenderConcurrently(t *testing.T) {
	s := mustLoad(t)
	var wg sync.WaitGroup
	for i := range 8 {
		wg.Go(func() {
			d := receipt()
			d["owner"] = strings.Repeat("<b>", i)
			if _, err := s.Render("deposit-receipt", d); err != nil {
				t.Error(err)
			}
		})
	}
	wg.Wait()
}

// The command types' templates (their own, dispatch.TemplatesFor, and the
// built-in folder's grants) and the shipped templates agree both ways: every
// listed template exists, and every shipped template belongs to a command,
// so a new one must be given to one.
func TestEveryTemplateBelongsToACommand(t *testing.T) {
	s := mustLoad(t)
	b, err := Builtin()
	if err != nil {
		t.Fatal(err)
	}
	owner := map[string][]string{}
	for _, cmd := range dispatch.CommandTypes() {
		for _, name := range append(dispatch.TemplatesFor(cmd), b.Grants[cmd].Templates...) {
			owner[name] = append(owner[name], cmd)
			if !s.Has(name) {
				t.Errorf("%s may send %q, which is not shipped", cmd, name)
			}
		}
	}
	for _, name := range s.Names() {
		if len(owner[name]) == 0 {
			t.Errorf("template %q is sent by no command type", name)
		}
	}
	for _, bank := range []string{dispatch.TemplateAccountWelcome, dispatch.TemplateDepositReceipt, dispatch.TemplateWithdrawalReceipt} {
		if b.Grants["Dispatch"].AllowsTemplate(bank) {
			t.Errorf("Dispatch callers may send the bank's %q", bank)
		}
	}
}

// The command function's renderer parses nothing until its first render,
// then renders exactly as the loaded set does.
func TestEmbeddedRendersAsTheLoadedSet(t *testing.T) {
	set, err := Load()
	if err != nil {
		t.Fatal(err)
	}
	data := map[string]any{"owner": "Ada", "accountId": "acc-1", "currency": "EUR"}
	want, err := set.Render(dispatch.TemplateAccountWelcome, data)
	if err != nil {
		t.Fatal(err)
	}
	got, err := Embedded{}.Render(dispatch.TemplateAccountWelcome, data)
	if err != nil || got != want {
		t.Fatalf("Embedded rendered %+v, %v; the set %+v", got, err, want)
	}
	if _, err := (Embedded{}).Render("no-such-template", data); err == nil {
		t.Error("an unknown template rendered")
	}
}
