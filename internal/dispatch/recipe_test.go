package dispatch

import (
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
)

// The recipe docs/api.md gives ("Adding a command type"), run as written in a
// temporary copy of the module: a new file with the type, the registry line
// the doc shows, and its aggregate type. The domain's tests and the email
// templates' tests (which check every command type's template list) then
// pass there unchanged, and Parse accepts the new type. Any test that kept
// its own list of command types fails here.
func TestTheAddACommandTypeRecipe(t *testing.T) {
	if testing.Short() {
		t.Skip("builds and runs tests in a copy of the module")
	}
	if os.Getenv("DISPATCHER_RECIPE_COPY") != "" {
		t.Skip("already in the copy")
	}
	root, err := filepath.Abs(filepath.Join("..", ".."))
	if err != nil {
		t.Fatal(err)
	}
	doc, err := os.ReadFile(filepath.Join(root, "docs", "api.md"))
	if err != nil {
		t.Fatal(err)
	}
	_, section, ok := strings.Cut(string(doc), "\n## Adding a command type\n")
	if !ok {
		t.Fatal(`docs/api.md has no section "Adding a command type"`)
	}
	section, _, _ = strings.Cut(section, "\n## ")
	line := regexp.MustCompile("`(\"CloseAccount\": func\\(\\) Command \\{ return &CloseAccount\\{\\} \\},)`").FindStringSubmatch(section)
	if line == nil {
		t.Fatal("the recipe shows no registry line for CloseAccount")
	}
	for _, named := range []string{"internal/dispatch/command.go", "`commands`", "`aggregateTypes`", "`templates`"} {
		if !strings.Contains(section, named) {
			t.Errorf("the recipe does not name %s", named)
		}
	}

	dir := t.TempDir()
	for _, f := range []string{"go.mod", "go.sum"} {
		recipeCopyFile(t, filepath.Join(root, f), filepath.Join(dir, f))
	}
	// The packages the two test runs build: the domain, the public outbox
	// contract it imports, the email templates and their renderer.
	for _, d := range []string{"internal/dispatch", "internal/emails", "internal/testkit/templatedir", "outbox", "emailtemplate"} {
		recipeCopyTree(t, filepath.Join(root, d), filepath.Join(dir, d))
	}
	pkg := filepath.Join(dir, "internal", "dispatch")
	os.Remove(filepath.Join(pkg, "recipe_test.go"))

	// Step 1: the type, in a file of its own.
	recipeWrite(t, filepath.Join(pkg, "closeaccount.go"), `package dispatch

import "time"

// CloseAccount closes an account (the recipe's example).
type CloseAccount struct {
	Reason string `+"`json:\"reason\"`"+`
}

func (c *CloseAccount) Validate() []FieldError {
	if c.Reason == "" {
		return []FieldError{{"reason", "is required"}}
	}
	return nil
}

func (c *CloseAccount) Decide(current Aggregate, _ time.Time) (Decision, error) {
	return Decision{AggregateType: AccountType, Data: map[string]any{"closed": true, "reason": c.Reason}}, nil
}
`)
	// Steps 2 and 3: one line in each registry.
	src, err := os.ReadFile(filepath.Join(pkg, "command.go"))
	if err != nil {
		t.Fatal(err)
	}
	s := string(src)
	for _, edit := range []struct{ after, add string }{
		{"var commands = map[string]func() Command{\n", "\t" + line[1] + "\n"},
		{"var aggregateTypes = map[string]string{\n", "\t\"CloseAccount\": AccountType,\n"},
	} {
		if !strings.Contains(s, edit.after) {
			t.Fatalf("internal/dispatch/command.go has no %q: the recipe no longer matches the code", strings.TrimSpace(edit.after))
		}
		s = strings.Replace(s, edit.after, edit.after+edit.add, 1)
	}
	recipeWrite(t, filepath.Join(pkg, "command.go"), s)
	// And a test of the new type: Parse accepts it.
	recipeWrite(t, filepath.Join(pkg, "closeaccount_test.go"), `package dispatch

import (
	"slices"
	"testing"
)

func TestParseAcceptsTheNewType(t *testing.T) {
	_, cmd, err := Parse([]byte(`+"`"+`{"type":"CloseAccount","aggregateId":"acc-1","data":{"reason":"moving"}}`+"`"+`))
	if err != nil {
		t.Fatalf("Parse: %v", err)
	}
	if c, ok := cmd.(*CloseAccount); !ok || c.Reason != "moving" {
		t.Fatalf("Parse gave %#v", cmd)
	}
	if !slices.Contains(CommandTypes(), "CloseAccount") {
		t.Fatalf("CommandTypes() = %v", CommandTypes())
	}
}
`)

	cmd := exec.Command("go", "test", "-count=1", "./internal/dispatch/...", "./internal/emails/...")
	cmd.Dir = dir
	cmd.Env = append(os.Environ(), "DISPATCHER_RECIPE_COPY=1")
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("after the recipe, tests fail in the copy: %v\n%s", err, out)
	}
	if !strings.Contains(string(out), "ok  \tgithub.com/dispatcher-dev/dispatcher/internal/dispatch") {
		t.Fatalf("the domain's tests did not run in the copy:\n%s", out)
	}
}

func recipeWrite(t *testing.T, path, content string) {
	t.Helper()
	if err := os.WriteFile(path, []byte(content), 0o644); err != nil {
		t.Fatal(err)
	}
}

func recipeCopyFile(t *testing.T, from, to string) {
	t.Helper()
	b, err := os.ReadFile(from)
	if err != nil {
		t.Fatal(err)
	}
	recipeWrite(t, to, string(b))
}

func recipeCopyTree(t *testing.T, from, to string) {
	t.Helper()
	err := filepath.WalkDir(from, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(from, p)
		if d.IsDir() {
			return os.MkdirAll(filepath.Join(to, rel), 0o755)
		}
		b, err := os.ReadFile(p)
		if err != nil {
			return err
		}
		return os.WriteFile(filepath.Join(to, rel), b, 0o644)
	})
	if err != nil {
		t.Fatal(err)
	}
}
