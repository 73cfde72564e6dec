// Package samples reads the real AWS event samples a test package keeps in
// testdata/samples/ and checks that its table of expected outcomes and the
// folder agree, so that a sample added without an outcome, or a table that
// lost its samples, fails.
package samples

import (
	"os"
	"path/filepath"
	"slices"
	"testing"
)

// Dir is where a test package keeps its samples.
const Dir = "testdata/samples"

// MatchFolder fails t unless Dir holds exactly the JSON files named.
func MatchFolder(t testing.TB, names []string) {
	t.Helper()
	got, err := filepath.Glob(filepath.Join(Dir, "*.json"))
	if err != nil {
		t.Fatal(err)
	}
	for i := range got {
		got[i] = filepath.Base(got[i])
	}
	want := slices.Clone(names)
	slices.Sort(got)
	slices.Sort(want)
	if len(want) == 0 || !slices.Equal(got, want) {
		t.Fatalf("%s holds %v, the table expects %v", Dir, got, want)
	}
}

// Read returns one sample's bytes.
func Read(t testing.TB, name string) []byte {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(Dir, name))
	if err != nil {
		t.Fatal(err)
	}
	return b
}
