package testenv_test

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/dispatcher-dev/dispatcher/internal/local/emulator"
	"github.com/dispatcher-dev/dispatcher/internal/testkit/testenv"
)

// Every known difference a test skips an assertion for is named, with its
// reason, in docs/local.md; and each is declared once.
func TestEveryDifferenceIsDocumented(t *testing.T) {
	dir, err := emulator.FindDir()
	if err != nil {
		t.Fatal(err)
	}
	doc, err := os.ReadFile(filepath.Join(filepath.Dir(dir), "docs", "local.md"))
	if err != nil {
		t.Fatal(err)
	}
	seen := map[string]bool{}
	for _, d := range testenv.Differences {
		if seen[d.Name] {
			t.Errorf("%s is listed twice", d.Name)
		}
		seen[d.Name] = true
		if d.Name == "" || d.Why == "" || d.Backend == "" {
			t.Errorf("%+v: a difference needs a name, a backend and a reason", d)
		}
		if !strings.Contains(string(doc), "| `"+d.Name+"` |") {
			t.Errorf("docs/local.md has no table row for %s", d.Name)
		}
	}
	if len(testenv.Differences) == 0 {
		t.Error("no differences listed")
	}
}
