package emails_test

import (
	"errors"
	"net/mail"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/dispatcher-dev/dispatcher/internal/dispatch"
	"github.com/dispatcher-dev/dispatcher/internal/emails"
	"github.com/dispatcher-dev/dispatcher/internal/testkit/templatedir"
)

func userFolder(t *testing.T) map[string]string { return templatedir.User(t) }

func writeFolder(t *testing.T, files map[string]string) string { return templatedir.Write(t, files) }

var templateFiles = []string{"subject.txt", "body.txt", "body.html"}

func TestLoadDirUserFolder(t *testing.T) {
	d, err := emails.LoadDir(writeFolder(t, userFolder(t)))
	if err != nil {
		t.Fatal(err)
	}
	r, err := d.Preview("order-confirmation")
	if err != nil || r.Subject != "Order o-1001 is confirmed" || !strings.Contains(r.HTML, "<b>o-1001</b>") {
		t.Fatalf("Preview = %+v, %v", r, err)
	}
	if got := d.Grants["Dispatch"]; !got.AllowsTemplate("order-confirmation") || !got.AllowsEvent("order.paid") || got.AllowsEvent("AccountOpened") {
		t.Errorf("Dispatch grant = %+v", got)
	}
	w := d.WireSenders()
	if got := w.For("order-confirmation", "fallback@example.com"); got.From != `"Shop" <orders@shop.example>` || !slices.Equal(got.ReplyTo, []string{"help@shop.example"}) {
		t.Errorf("order-confirmation's sender = %+v", got)
	}
	if got := w.For("notification", "fallback@example.com"); got.From != "fallback@example.com" || got.ReplyTo != nil {
		t.Errorf("notification's sender = %+v, want the fallback", got)
	}
}

func TestBuiltinGrantsAndSenders(t *testing.T) {
	d, err := emails.Builtin()
	if err != nil {
		t.Fatal(err)
	}
	if g := d.Grants["Dispatch"]; !slices.Equal(g.Templates, []string{"notification"}) || !g.AllowsEvent("Anything") {
		t.Errorf("built-in Dispatch grant = %+v", g)
	}
	if got := d.WireSenders().For("notification", "no-reply@example.com"); got.From != "no-reply@example.com" {
		t.Errorf("built-in sender = %+v, want SENDER_ADDRESS", got)
	}
	for _, name := range d.Set.Names() {
		if _, err := d.Preview(name); err != nil {
			t.Errorf("Preview(%s): %v", name, err)
		}
	}
}

// A display name that is not ASCII goes out as an RFC 2047 encoded word,
// as SES requires, and reads back as written.
func TestSenderWireEncodesNonASCIIName(t *testing.T) {
	s := emails.Sender{Name: "Café Ünïcode", Address: "orders@shop.example", ReplyTo: []string{"Aide <help@shop.example>"}}
	w := s.Wire()
	if !strings.HasPrefix(w.From, "=?utf-8?") {
		t.Errorf("From = %q, want an encoded word", w.From)
	}
	for _, r := range w.From {
		if r > 127 {
			t.Fatalf("From %q is not ASCII", w.From)
		}
	}
	a, err := mail.ParseAddress(w.From)
	if err != nil || a.Name != s.Name || a.Address != s.Address {
		t.Errorf("ParseAddress(%q) = %+v, %v", w.From, a, err)
	}
	if !slices.Equal(w.ReplyTo, []string{`"Aide" <help@shop.example>`}) {
		t.Errorf("ReplyTo = %q", w.ReplyTo)
	}
}

// Every broken folder is refused with the file and line of each problem.
func TestLoadDirReportsFileAndLine(t *testing.T) {
	tests := []struct {
		name string
		edit func(f map[string]string)
		want []string // problems, as "file:line: ..." prefixes relative to the folder
	}{
		{
			name: "a template syntax error",
			edit: func(f map[string]string) { f["order-confirmation/body.txt"] = "Hello\n{{.name\n" },
			want: []string{"order-confirmation/body.txt:3: template: body.txt:3: unclosed action started at body.txt:2"},
		},
		{
			name: "an HTML syntax error",
			edit: func(f map[string]string) { f["order-confirmation/body.html"] = "<p>\n\n{{.name | shout}}</p>\n" },
			want: []string{`order-confirmation/body.html:3: template: body.html:3: function "shout" not defined`},
		},
		{
			name: "a subject over two lines",
			edit: func(f map[string]string) {
				f["order-confirmation/subject.txt"] = "Order {{.orderId}}\nBcc: x@example.com\n"
			},
			want: []string{"order-confirmation/subject.txt:2: subject.txt must be one line"},
		},
		{
			name: "sample data that puts a line break in the subject",
			edit: func(f map[string]string) {
				f["order-confirmation/sample.json"] = "{\n  \"name\": \"Ada\",\n  \"orderId\": \"o-1\\r\\nBcc: x@example.com\"\n}\n"
			},
			want: []string{`order-confirmation/sample.json:3: emailtemplate: unsafe subject: template "order-confirmation": "orderId" goes into the subject`},
		},
		{
			name: "a variable the sample does not give",
			edit: func(f map[string]string) {
				f["order-confirmation/body.html"] = "<p>Hello {{.name}},</p>\n<p>{{.total}}</p>\n"
			},
			want: []string{`order-confirmation/body.html:2: uses "total", which`},
		},
		{
			name: "a missing sample",
			edit: func(f map[string]string) { delete(f, "order-confirmation/sample.json") },
			want: []string{"order-confirmation/sample.json: missing"},
		},
		{
			name: "a sample that is not JSON",
			edit: func(f map[string]string) { f["order-confirmation/sample.json"] = "{\n  \"name\": \"Ada\",\n  oops\n}" },
			want: []string{"order-confirmation/sample.json:3: not a JSON object"},
		},
		{
			name: "a template file missing",
			edit: func(f map[string]string) { delete(f, "order-confirmation/body.html") },
			want: []string{"order-confirmation: missing body.html"},
		},
		{
			name: "a stray file",
			edit: func(f map[string]string) { f["order-confirmation/body.htm"] = "x" },
			want: []string{`order-confirmation/body.htm: unexpected file "body.htm"`},
		},
		{
			name: "an unknown key in dispatcher.yaml",
			edit: func(f map[string]string) {
				f[emails.ConfigFile] = strings.Replace(f[emails.ConfigFile], "    identity: shop.example\n", "    identity: shop.example\n    replyto: [x@shop.example]\n", 1)
			},
			want: []string{"dispatcher.yaml:6: field replyto not found"},
		},
		{
			name: "an unknown sender",
			edit: func(f map[string]string) {
				f[emails.ConfigFile] = strings.Replace(f[emails.ConfigFile], "order-confirmation: shop", "order-confirmation: shopp", 1)
			},
			want: []string{`dispatcher.yaml:7: template "order-confirmation": sender "shopp" is not one of the senders`},
		},
		{
			name: "an identity that does not cover the from address",
			edit: func(f map[string]string) {
				f[emails.ConfigFile] = strings.Replace(f[emails.ConfigFile], "identity: shop.example", "identity: other.example", 1)
			},
			want: []string{`dispatcher.yaml:5: sender "shop": identity "other.example" does not cover the from address orders@shop.example`},
		},
		{
			name: "a from that is not an address",
			edit: func(f map[string]string) {
				f[emails.ConfigFile] = strings.Replace(f[emails.ConfigFile], "from: Shop <orders@shop.example>", "from: Shop orders", 1)
			},
			want: []string{`dispatcher.yaml:3: sender "shop": from "Shop orders" is not an address`},
		},
		{
			name: "a command granted a template that does not exist",
			edit: func(f map[string]string) {
				f[emails.ConfigFile] = strings.Replace(f[emails.ConfigFile], "templates: [notification, order-confirmation]", "templates: [notification, order-confirmaton]", 1)
			},
			want: []string{`dispatcher.yaml:10: Dispatch is granted template "order-confirmaton", which is not in the folder`},
		},
		{
			name: "a grant to an account command",
			edit: func(f map[string]string) { f[emails.ConfigFile] += "  OpenAccount:\n    templates: [notification]\n" },
			want: []string{`dispatcher.yaml:12: OpenAccount decides its own effects (templates: account-welcome)`},
		},
		{
			name: "an invalid event pattern",
			edit: func(f map[string]string) {
				f[emails.ConfigFile] = strings.Replace(f[emails.ConfigFile], `"order.*"`, `"*.paid"`, 1)
			},
			want: []string{`dispatcher.yaml:11: Dispatch: event pattern "*.paid"`},
		},
		{
			name: "an account template missing",
			edit: func(f map[string]string) {
				for _, n := range templateFiles {
					delete(f, "account-welcome/"+n)
				}
				delete(f, "account-welcome/sample.json")
			},
			want: []string{`account-welcome: missing: OpenAccount sends template "account-welcome"`},
		},
		{
			name: "no dispatcher.yaml",
			edit: func(f map[string]string) { delete(f, emails.ConfigFile) },
			want: []string{"dispatcher.yaml: missing"},
		},
		{
			name: "two problems at once",
			edit: func(f map[string]string) {
				f["notification/subject.txt"] = "{{.title\n"
				f[emails.ConfigFile] = strings.Replace(f[emails.ConfigFile], "identity: shop.example", "identity: other.example", 1)
			},
			want: []string{"notification/subject.txt:1: ", `dispatcher.yaml:5: sender "shop": identity`},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			files := userFolder(t)
			tt.edit(files)
			dir := writeFolder(t, files)
			_, err := emails.LoadDir(dir)
			var ce *emails.CheckError
			if !errors.As(err, &ce) {
				t.Fatalf("LoadDir = %v, want a *emails.CheckError", err)
			}
			var got []string
			for _, p := range ce.Problems {
				got = append(got, strings.TrimPrefix(p.String(), dir+"/"))
			}
			if len(got) != len(tt.want) {
				t.Fatalf("problems = %q, want %d: %q", got, len(tt.want), tt.want)
			}
			for i, w := range tt.want {
				if !strings.HasPrefix(got[i], w) {
					t.Errorf("problem %d = %q, want it to start with %q", i, got[i], w)
				}
			}
			if !strings.Contains(err.Error(), dir) {
				t.Errorf("the error does not name the folder: %v", err)
			}
		})
	}
}

// A function's cold start loads EMAIL_TEMPLATES_DIR, or the built-in
// folder when it is unset, and stops on a broken folder naming the file.
func TestFromEnv(t *testing.T) {
	b, err := emails.FromEnv(func(string) string { return "" })
	if err != nil || b.Path != emails.BuiltinPath {
		t.Fatalf("emails.FromEnv(unset) = %v, %v; want the built-in folder", b, err)
	}
	files := userFolder(t)
	dir := writeFolder(t, files)
	d, err := emails.FromEnv(func(k string) string { return map[string]string{emails.EnvDir: dir}[k] })
	if err != nil || !d.Set.Has("order-confirmation") {
		t.Fatalf("emails.FromEnv(%s) = %v, %v", dir, d, err)
	}
	files["order-confirmation/subject.txt"] = "{{.orderId\n"
	broken := writeFolder(t, files)
	_, err = emails.FromEnv(func(k string) string { return map[string]string{emails.EnvDir: broken}[k] })
	if err == nil || !strings.Contains(err.Error(), emails.EnvDir+": ") || !strings.Contains(err.Error(), filepath.Join(broken, "order-confirmation", "subject.txt")+":1: ") {
		t.Fatalf("emails.FromEnv(broken) = %v, want the file and line", err)
	}
	if _, err := emails.FromEnv(func(k string) string { return map[string]string{emails.EnvDir: filepath.Join(dir, "nope")}[k] }); err == nil {
		t.Fatal("FromEnv loaded a folder that does not exist")
	}
}

// The grant a folder gives is what the command service enforces.
func TestGrantsComeFromTheFolder(t *testing.T) {
	d, err := emails.LoadDir(writeFolder(t, userFolder(t)))
	if err != nil {
		t.Fatal(err)
	}
	dec := dispatch.Decision{Emails: []dispatch.Email{{Template: "order-confirmation"}}}
	if err := d.Grants.Check("Dispatch", dec); err != nil {
		t.Errorf("the user's grant refused its template: %v", err)
	}
	b, _ := emails.Builtin()
	if err := b.Grants.Check("Dispatch", dec); err == nil {
		t.Error("the built-in grant let Dispatch send order-confirmation")
	}
}
