package infra_test

import (
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// make lint-template keeps one file per check that passed (LINT_CHECKS), so
// that make audit after make test reuses them; a changed input must run the
// checks that read it again. Checked with `make -n` (nothing runs) on a copy
// of the Makefile and of the inputs in a temporary folder.
func TestLintTemplateRunsAgainOnlyTheChecksWhoseInputsChanged(t *testing.T) {
	dir := t.TempDir()
	inputs := []string{"Makefile", "infra/template.yaml", "tools/transform.py", "tools/requirements.txt"}
	for _, f := range inputs {
		b, err := os.ReadFile(filepath.Join("..", f))
		if err != nil {
			t.Fatal(err)
		}
		write(t, filepath.Join(dir, f), b)
	}
	// The Python tools, installed (the stamp py-tools leaves), and each
	// check's record of having passed, all newer than the inputs.
	write(t, filepath.Join(dir, ".venv/.installed"), nil)
	checks := map[string]string{
		".aws-sam/lint-template/cfn-lint.ok":           "cfn-lint infra/template.yaml",
		".aws-sam/lint-template/sam-validate.ok":       "sam validate --template-file",
		".aws-sam/lint-template/sam-validate-lint.ok":  "sam validate --lint",
		".aws-sam/transformed/.transformed-and-linted": "tools/transform.py infra/template.yaml",
	}
	for f := range checks {
		write(t, filepath.Join(dir, f), nil)
	}
	base := time.Now().Add(-time.Hour)
	age := func(f string, d time.Duration) {
		t.Helper()
		if err := os.Chtimes(filepath.Join(dir, f), base.Add(d), base.Add(d)); err != nil {
			t.Fatal(err)
		}
	}
	for _, f := range inputs {
		age(f, 0)
	}
	age(".venv/.installed", time.Minute)
	for f := range checks {
		age(f, 2*time.Minute)
	}
	// rerun lists the checks `make lint-template` would run.
	rerun := func() []string {
		t.Helper()
		out := makeN(t, dir, "lint-template")
		var ran []string
		for f, line := range checks {
			if strings.Contains(out, line) {
				ran = append(ran, f)
			}
		}
		if strings.Contains(out, "pip install") {
			ran = append(ran, "pip install")
		}
		return ran
	}
	if ran := rerun(); len(ran) != 0 {
		t.Errorf("nothing changed since every check passed, yet make lint-template would run %v", ran)
	}
	// make audit (after make test, its tools installed) runs its three
	// audits and reuses lint-template's checks.
	for _, f := range []string{"tools/audit/requirements.txt", ".venv-audit/.installed", ".local/cargo/bin/cfn-guard"} {
		write(t, filepath.Join(dir, f), nil)
	}
	out := makeN(t, dir, "audit")
	for _, want := range []string{"govulncheck", "checkov --config-file tools/audit/checkov.yaml -f infra/template.yaml", "checkov --config-file tools/audit/checkov.yaml -d .aws-sam/transformed", "cfn-guard validate"} {
		if !strings.Contains(out, want) {
			t.Errorf("make audit would not run %q:\n%s", want, out)
		}
	}
	for f, line := range checks {
		if strings.Contains(out, line) {
			t.Errorf("make audit after make test would run lint-template's check %s again", f)
		}
	}

	age("tools/transform.py", 3*time.Minute)
	if ran := rerun(); len(ran) != 1 || ran[0] != ".aws-sam/transformed/.transformed-and-linted" {
		t.Errorf("after tools/transform.py changed, make lint-template would run %v; want the transform and cfn-lint on its output only", ran)
	}

	age("infra/template.yaml", 3*time.Minute)
	if ran := rerun(); len(ran) != len(checks) {
		t.Errorf("after infra/template.yaml changed, make lint-template would run %v; want all %d checks", ran, len(checks))
	}

	// Without the transformed templates (deleted by hand), their check runs again.
	age("infra/template.yaml", 0)
	age("tools/transform.py", 0)
	if err := os.RemoveAll(filepath.Join(dir, ".aws-sam/transformed")); err != nil {
		t.Fatal(err)
	}
	if ran := rerun(); len(ran) != 1 || ran[0] != ".aws-sam/transformed/.transformed-and-linted" {
		t.Errorf("after .aws-sam/transformed was deleted, make lint-template would run %v; want the transform and cfn-lint on its output only", ran)
	}
}

// makeN returns what `make -n target` would run in dir.
func makeN(t *testing.T, dir, target string) string {
	t.Helper()
	cmd := exec.Command("make", "-n", "--no-print-directory", target)
	cmd.Dir = dir
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("make -n %s: %v\n%s", target, err, out)
	}
	return string(out)
}

func write(t *testing.T, path string, b []byte) {
	t.Helper()
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path, b, 0o644); err != nil {
		t.Fatal(err)
	}
}
