package orders_test

import (
	"os/exec"
	"strings"
	"testing"
)

// The example is what a user's own module can write: its code (not its
// tests) imports the standard library, the AWS SDK, aws-lambda-go and the
// public packages of this module, and links nothing of internal/, which Go
// refuses to import from another module.
func TestTheExampleImportsNoInternalPackage(t *testing.T) {
	if testing.Short() {
		t.Skip("runs the go command")
	}
	const module = "github.com/dispatcher-dev/dispatcher/"
	out, err := exec.Command("go", "list", "-deps", "-f",
		`{{range .Imports}}{{$.ImportPath}} {{.}}{{"\n"}}{{end}}`, "../...").CombinedOutput()
	if err != nil {
		t.Fatalf("go list: %v\n%s", err, out)
	}
	examples := 0
	for _, line := range strings.Split(strings.TrimSpace(string(out)), "\n") {
		from, to, _ := strings.Cut(line, " ")
		if strings.HasPrefix(to, module+"internal/") {
			t.Errorf("%s imports %s: the example may use only the public packages (outbox, emailtemplate)", from, to)
		}
		if !strings.HasPrefix(from, module+"examples/") {
			continue
		}
		examples++
		public := strings.HasPrefix(to, module+"outbox") || strings.HasPrefix(to, module+"emailtemplate") || strings.HasPrefix(to, module+"examples/")
		std := !strings.Contains(strings.Split(to, "/")[0], ".")
		if !std && !public && !strings.HasPrefix(to, "github.com/aws/") {
			t.Errorf("%s imports %s: want only the standard library, the AWS SDK, aws-lambda-go and the public packages", from, to)
		}
	}
	if examples == 0 {
		t.Fatalf("go list found no package of examples/:\n%s", out)
	}
}
