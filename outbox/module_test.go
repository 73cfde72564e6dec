package outbox_test

import (
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

// checkout is the repository's root: the module this package belongs to.
func checkout(t *testing.T) string {
	t.Helper()
	dir, err := filepath.Abs("..")
	if err != nil {
		t.Fatal(err)
	}
	return dir
}

func goCmd(t *testing.T, dir string, args ...string) string {
	t.Helper()
	cmd := exec.Command("go", args...)
	cmd.Dir = dir
	cmd.Env = append(os.Environ(), "GOFLAGS=-mod=mod")
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("go %s: %v\n%s", strings.Join(args, " "), err, out)
	}
	return string(out)
}

// The public packages link no AWS client and nothing of this module's
// internal packages: only the standard library, the SDK's DynamoDB
// attribute types and what those types import.
func TestThePublicPackagesLinkNoClient(t *testing.T) {
	if testing.Short() {
		t.Skip("runs the go command")
	}
	allowed := []string{
		"github.com/dispatcher-dev/dispatcher/outbox",
		"github.com/dispatcher-dev/dispatcher/emailtemplate",
		"github.com/aws/aws-sdk-go-v2/service/dynamodb/types",
		"github.com/aws/aws-sdk-go-v2/service/dynamodb/schemas", // imported by types
		"github.com/aws/smithy-go",                              // its document and prelude: data, no transport
		"github.com/aws/smithy-go/document",
		"github.com/aws/smithy-go/prelude",
		"github.com/aws/smithy-go/traits",
	}
	for _, pkg := range []string{"./outbox", "./emailtemplate"} {
		out := goCmd(t, checkout(t), "list", "-deps", "-f", "{{if not .Standard}}{{.ImportPath}}{{end}}", pkg)
		for _, dep := range strings.Fields(out) {
			ok := false
			for _, a := range allowed {
				ok = ok || dep == a
			}
			if !ok {
				t.Errorf("%s links %s: only the standard library and the SDK's DynamoDB attribute types are allowed", pkg, dep)
			}
		}
	}
}

// A module outside this repository imports the public packages, builds and
// runs, as a user's module does (with a replace to this checkout instead of
// a version): everything a user needs is outside internal/, which Go
// refuses to import across modules.
func TestAModuleOutsideTheRepositoryBuildsWithThePackages(t *testing.T) {
	if testing.Short() {
		t.Skip("runs the go command")
	}
	root := checkout(t)
	dir := t.TempDir()
	sum, err := os.ReadFile(filepath.Join(root, "go.sum"))
	if err != nil {
		t.Fatal(err)
	}
	files := map[string]string{
		"go.mod": "module example.com/orders\n\ngo 1.26.0\n\nrequire github.com/dispatcher-dev/dispatcher v0.0.0\n\n" +
			"replace github.com/dispatcher-dev/dispatcher => " + root + "\n",
		"go.sum": string(sum),
		"main.go": `package main

import (
	"fmt"
	"testing/fstest"

	"github.com/aws/aws-sdk-go-v2/service/dynamodb/types"
	"github.com/dispatcher-dev/dispatcher/emailtemplate"
	"github.com/dispatcher-dev/dispatcher/outbox"
)

func main() {
	set, err := emailtemplate.LoadFS(fstest.MapFS{
		"hi/subject.txt": {Data: []byte("Hi {{.name}}")},
		"hi/body.txt":    {Data: []byte("Hello {{.name}}")},
		"hi/body.html":   {Data: []byte("<p>Hello {{.name}}</p>")},
	})
	if err != nil {
		panic(err)
	}
	mail, err := set.Email("hi", []string{"ada@example.com"}, map[string]any{"name": "Ada"})
	if err != nil {
		panic(err)
	}
	items, ids, err := outbox.Writer{Table: "dispatcher"}.Items(outbox.Aggregate{Type: "Order", ID: "o-1", Version: 1},
		outbox.Event{Type: "OrderPlaced"}, mail)
	if err != nil {
		panic(err)
	}
	var _ []types.TransactWriteItem = items
	fmt.Println(len(items), len(ids))
}
`,
	}
	for name, body := range files {
		if err := os.WriteFile(filepath.Join(dir, name), []byte(body), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	goCmd(t, dir, "mod", "tidy")
	if out := goCmd(t, dir, "run", "."); strings.TrimSpace(out) != "2 2" {
		t.Errorf("the outside module printed %q, want 2 2", out)
	}
}
