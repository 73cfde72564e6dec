package emails_test

import (
	"path"
	"testing"
	"testing/fstest"

	"github.com/dispatcher-dev/dispatcher/emailtemplate"
	"github.com/dispatcher-dev/dispatcher/internal/emails"
	"github.com/dispatcher-dev/dispatcher/internal/testkit/templatedir"
)

// What a cold start spends on the built-in folder: loading and checking it
// (parse, render each sample, dispatcher.yaml), against the baseline of
// parsing the same templates alone (emailtemplate.LoadFS, what the command
// function did at its first email before folders). Compare the two ns/op
// of one run: a ratio, not a time.
func BenchmarkLoadDirFS(b *testing.B) {
	for b.Loop() {
		if _, err := emails.LoadDirFS(emails.BuiltinFS(), "builtin"); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkLoadDirFSBaselineParseOnly(b *testing.B) {
	templates := templatesOnly(b)
	for b.Loop() {
		if _, err := emailtemplate.LoadFS(templates); err != nil {
			b.Fatal(err)
		}
	}
}

// templatesOnly is the built-in folder without its samples and
// dispatcher.yaml, as emailtemplate.LoadFS takes it.
func templatesOnly(b *testing.B) fstest.MapFS {
	out := fstest.MapFS{}
	for p, content := range templatedir.Builtin(b) {
		if p == emails.ConfigFile || path.Base(p) == emails.SampleFile {
			continue
		}
		out[p] = &fstest.MapFile{Data: []byte(content)}
	}
	return out
}
