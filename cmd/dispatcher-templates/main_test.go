package main

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/dispatcher-dev/dispatcher/internal/dispatch"
	"github.com/dispatcher-dev/dispatcher/internal/emails"
	"github.com/dispatcher-dev/dispatcher/internal/testkit/templatedir"
)

func runOut(args ...string) (code int, stdout, stderr string) {
	var o, e bytes.Buffer
	code = run(args, &o, &e)
	return code, o.String(), e.String()
}

func TestCheck(t *testing.T) {
	if code, out, errOut := runOut("check"); code != 0 || !strings.Contains(out, emails.BuiltinPath+": ok: 4 templates") {
		t.Errorf("check (built-in) = %d %q %q", code, out, errOut)
	}
	user := templatedir.Write(t, templatedir.User(t))
	code, out, errOut := runOut("check", user)
	if code != 0 || !strings.Contains(out, `order-confirmation: from "Shop" <orders@shop.example>`) || !strings.Contains(out, "Dispatch may send templates [notification, order-confirmation]") {
		t.Errorf("check (user) = %d %q %q", code, out, errOut)
	}
	broken := templatedir.Write(t, templatedir.Broken(t))
	code, _, errOut = runOut("check", broken)
	if want := fmt.Sprintf("%s:%d: ", filepath.Join(broken, templatedir.BrokenFile), templatedir.BrokenLine); code != 1 || !strings.Contains(errOut, want) {
		t.Errorf("check (broken) = %d %q, want 1 naming %s", code, errOut, want)
	}
	if code, _, _ := runOut("check", "a", "b"); code != 1 {
		t.Errorf("check a b = %d, want 1", code)
	}
	if code, _, _ := runOut("lint"); code != 2 {
		t.Errorf("an unknown subcommand = %d, want 2", code)
	}
}

func TestPreview(t *testing.T) {
	user := templatedir.Write(t, templatedir.User(t))
	code, out, errOut := runOut("preview", "-dir", user, templatedir.UserTemplate)
	if code != 0 || !strings.Contains(out, "Subject: Order o-1001 is confirmed") || !strings.Contains(out, "<b>o-1001</b>") || !strings.Contains(out, "your order o-1001 is on its way.") {
		t.Errorf("preview to stdout = %d %q %q", code, out, errOut)
	}
	dir := filepath.Join(t.TempDir(), "out")
	if code, _, errOut := runOut("preview", "-dir", user, "-out", dir, templatedir.UserTemplate); code != 0 {
		t.Fatalf("preview -out = %d %q", code, errOut)
	}
	for file, want := range map[string]string{"subject.txt": "Order o-1001 is confirmed\n", "body.html": "<b>o-1001</b>", "body.txt": "Hello Ada,"} {
		b, err := os.ReadFile(filepath.Join(dir, file))
		if err != nil || !strings.Contains(string(b), want) {
			t.Errorf("%s = %q, %v; want %q", file, b, err, want)
		}
	}
	if code, _, errOut := runOut("preview", "-dir", user, "no-such"); code != 1 || !strings.Contains(errOut, "no-such") {
		t.Errorf("preview of an unknown template = %d %q", code, errOut)
	}
}

// recipeStep is one marked block of docs/templates.md's recipe.
type recipeStep struct {
	kind, arg, body string
}

var (
	recipeMarker = regexp.MustCompile(`^\s*<!-- recipe: (shell|file|edit)\s*(\S*) -->$`)
	fence        = regexp.MustCompile("^(\\s*)```")
)

// recipe reads the marked blocks of a doc's section, in order.
func recipe(t *testing.T, doc, heading string) []recipeStep {
	t.Helper()
	b, err := os.ReadFile(doc)
	if err != nil {
		t.Fatal(err)
	}
	_, section, ok := strings.Cut(string(b), "\n"+heading+"\n")
	if !ok {
		t.Fatalf("%s has no %q", doc, heading)
	}
	section, _, _ = strings.Cut(section, "\n## ")
	lines := strings.Split(section, "\n")
	var steps []recipeStep
	for i := 0; i < len(lines); i++ {
		m := recipeMarker.FindStringSubmatch(lines[i])
		if m == nil {
			continue
		}
		i++
		f := fence.FindStringSubmatch(lines[i])
		if f == nil {
			t.Fatalf("%s: the recipe marker %q is not followed by a fenced block", doc, lines[i-1])
		}
		var body []string
		for i++; i < len(lines) && !fence.MatchString(lines[i]); i++ {
			body = append(body, strings.TrimPrefix(lines[i], f[1]))
		}
		steps = append(steps, recipeStep{kind: m[1], arg: m[2], body: strings.Join(body, "\n") + "\n"})
	}
	return steps
}

// The recipe "Add a template" of docs/templates.md, run as written in a
// temporary folder: its shell lines (make lines through the Makefile's own
// recipe), its files, its edit; the folder it makes passes the check, and
// Dispatch may then send the new template.
func TestTheAddATemplateRecipe(t *testing.T) {
	root, err := filepath.Abs("../..")
	if err != nil {
		t.Fatal(err)
	}
	mk, err := os.ReadFile(filepath.Join(root, "Makefile"))
	if err != nil {
		t.Fatal(err)
	}
	work := t.TempDir()
	if err := os.Symlink(filepath.Join(root, "internal"), filepath.Join(work, "internal")); err != nil {
		t.Fatal(err)
	}
	var folder string // the folder the recipe checks
	steps := recipe(t, filepath.Join(root, "docs", "templates.md"), "## Add a template")
	if len(steps) < 4 {
		t.Fatalf("%d recipe steps, want the folder, the files, the grant and the check", len(steps))
	}
	checked := false
	for _, st := range steps {
		switch st.kind {
		case "shell":
			for _, line := range strings.Split(strings.TrimSpace(st.body), "\n") {
				if strings.HasPrefix(line, "make ") {
					folder = makeLine(t, mk, work, line)
					checked = checked || strings.HasPrefix(line, "make templates-check ")
					continue
				}
				ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
				sh := exec.CommandContext(ctx, "bash", "-euo", "pipefail", "-c", line)
				sh.Dir = work // the recipe's paths are relative to the repository's root
				out, err := sh.CombinedOutput()
				cancel()
				if err != nil {
					t.Fatalf("recipe line %q: %v\n%s", line, err, out)
				}
			}
		case "file":
			dir := mustGlob(t, work)[0]
			if err := os.WriteFile(filepath.Join(dir, st.arg), []byte(st.body), 0o644); err != nil {
				t.Fatalf("recipe file %s: %v", st.arg, err)
			}
		case "edit":
			for _, d := range mustGlob(t, work) {
				edit(t, filepath.Join(d, st.arg), st.body)
			}
		}
	}
	if !checked || folder == "" {
		t.Fatal("the recipe never runs make templates-check")
	}
	d, err := emails.LoadDir(folder)
	if err != nil {
		t.Fatal(err)
	}
	var added string
	for _, n := range d.Set.Names() {
		if _, builtin := mustBuiltin(t).Samples[n]; !builtin {
			added = n
		}
	}
	if added == "" {
		t.Fatal("the recipe added no template")
	}
	dec := dispatch.Decision{Emails: []dispatch.Email{{Template: added}}}
	if err := d.Grants.Check("Dispatch", dec); err != nil {
		t.Errorf("after the recipe Dispatch may not send %s: %v", added, err)
	}
	if _, err := d.Preview(added); err != nil {
		t.Errorf("preview of %s: %v", added, err)
	}
}

func mustBuiltin(t *testing.T) *emails.Dir {
	t.Helper()
	b, err := emails.Builtin()
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// mustGlob returns the folders the recipe made in work (beside the
// internal symlink).
func mustGlob(t *testing.T, work string) []string {
	t.Helper()
	entries, err := os.ReadDir(work)
	if err != nil {
		t.Fatal(err)
	}
	var out []string
	for _, e := range entries {
		if e.Name() != "internal" && e.IsDir() {
			out = append(out, filepath.Join(work, e.Name()))
		}
	}
	if len(out) != 1 {
		t.Fatalf("the recipe made %d folders, want 1", len(out))
	}
	return out
}

// edit replaces each line of the recipe's edit with the file's line of the
// same indentation and key.
func edit(t *testing.T, file, body string) {
	t.Helper()
	b, err := os.ReadFile(file)
	if err != nil {
		t.Fatal(err)
	}
	lines := strings.Split(string(b), "\n")
	for _, repl := range strings.Split(strings.TrimRight(body, "\n"), "\n") {
		key, _, _ := strings.Cut(repl, ":")
		n := 0
		for i, l := range lines {
			if strings.HasPrefix(l, key+":") {
				lines[i] = repl
				n++
			}
		}
		if n != 1 {
			t.Fatalf("the recipe's edit %q matches %d lines of %s, want 1", repl, n, file)
		}
	}
	if err := os.WriteFile(file, []byte(strings.Join(lines, "\n")), 0o644); err != nil {
		t.Fatal(err)
	}
}

// makeLine runs a recipe's make line as the Makefile would, without make:
// templates-check is this command's check (the Makefile's recipe says so);
// sam-build stages the checked folder first. It returns the folder.
func makeLine(t *testing.T, mk []byte, work, line string) string {
	t.Helper()
	m := regexp.MustCompile(`^make (templates-check|sam-build) EMAIL_TEMPLATES=(\S+)`).FindStringSubmatch(line)
	if m == nil {
		t.Fatalf("the recipe's %q is not a make line this test runs", line)
	}
	folder := filepath.Join(work, m[2])
	if !bytes.Contains(mk, []byte("templates-check:")) || !bytes.Contains(mk, []byte("\t$(GO) run ./cmd/dispatcher-templates check $(EMAIL_TEMPLATES)\n")) {
		t.Fatal("the Makefile's templates-check no longer runs `dispatcher-templates check $(EMAIL_TEMPLATES)`")
	}
	switch m[1] {
	case "templates-check":
		if code, out, errOut := runOut("check", folder); code != 0 {
			t.Fatalf("%s: exit %d\n%s%s", line, code, out, errOut)
		}
	case "sam-build":
		if !regexp.MustCompile(`(?m)^sam-build: .*templates-layer`).Match(mk) || !regexp.MustCompile(`(?m)^templates-layer: templates-check`).Match(mk) {
			t.Fatal("the Makefile's sam-build no longer stages the checked folder (templates-layer)")
		}
	}
	return folder
}
