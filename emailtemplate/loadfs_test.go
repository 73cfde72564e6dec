package emailtemplate

import (
	"strings"
	"testing"
	"testing/fstest"
)

// one builds an FS holding a single template called "t".
func one(subject, text, html string) fstest.MapFS {
	return fstest.MapFS{
		"t/subject.txt": {Data: []byte(subject)},
		"t/body.txt":    {Data: []byte(text)},
		"t/body.html":   {Data: []byte(html)},
	}
}

func TestLoadFS(t *testing.T) {
	without := func(file string) fstest.MapFS {
		f := one("s", "b", "b")
		delete(f, "t/"+file)
		return f
	}
	tests := []struct {
		name   string
		fsys   fstest.MapFS
		errHas string // "" means it loads
	}{
		{name: "loads a valid template", fsys: one("s {{.x}}\n", "b {{.x}}", "<p>{{.x}}</p>")},
		{name: "rejects template missing body.html naming it", fsys: without("body.html"), errHas: `"t": missing body.html`},
		{name: "rejects template missing body.txt naming it", fsys: without("body.txt"), errHas: `"t": missing body.txt`},
		{name: "rejects template missing subject.txt naming it", fsys: without("subject.txt"), errHas: `"t": missing subject.txt`},
		{
			name:   "rejects template missing several files naming them",
			fsys:   fstest.MapFS{"t/body.txt": {Data: []byte("b")}},
			errHas: "missing subject.txt, body.html",
		},
		{
			name:   "rejects unexpected file in a template",
			fsys:   plus(one("s", "b", "b"), "t/body.htm"),
			errHas: `unexpected file "body.htm"`,
		},
		{
			name:   "rejects a file beside the templates",
			fsys:   plus(one("s", "b", "b"), "README.md"),
			errHas: `unexpected file "README.md"`,
		},
		{name: "rejects upper case name", fsys: rename(one("s", "b", "b"), "Welcome"), errHas: `"Welcome"`},
		{name: "rejects underscore in name", fsys: rename(one("s", "b", "b"), "a_b"), errHas: `"a_b"`},
		{name: "rejects name over 64 bytes", fsys: rename(one("s", "b", "b"), strings.Repeat("a", 65)), errHas: "[a-z0-9-]{1,64}"},
		{name: "accepts name of 64 bytes", fsys: rename(one("s", "b", "b"), strings.Repeat("a", 64))},
		{name: "rejects multi-line subject", fsys: one("line one\nline two", "b", "b"), errHas: "one line"},
		{name: "rejects empty subject file", fsys: one("\n", "b", "b"), errHas: "subject.txt is empty"},
		{name: "rejects empty body", fsys: one("s", "b", ""), errHas: "body.html is empty"},
		{name: "rejects text template syntax error", fsys: one("s", "{{.x", "b"), errHas: `"t"`},
		{name: "rejects HTML template syntax error", fsys: one("s", "b", "{{if .x}}"), errHas: `"t"`},
		{name: "rejects HTML template that cannot be escaped", fsys: one("s", "b", `<a title="{{.x}}`), errHas: "non-text context"},
		{name: "rejects an empty set", fsys: fstest.MapFS{}, errHas: "no templates"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			s, err := LoadFS(tc.fsys)
			if tc.errHas == "" {
				if err != nil {
					t.Fatalf("LoadFS: %v", err)
				}
				if len(s.Names()) != 1 {
					t.Errorf("Names() = %v, want one template", s.Names())
				}
				return
			}
			if err == nil || !strings.Contains(err.Error(), tc.errHas) {
				t.Fatalf("err = %v, want it to contain %q", err, tc.errHas)
			}
		})
	}
}

func plus(f fstest.MapFS, file string) fstest.MapFS {
	f[file] = &fstest.MapFile{Data: []byte("x")}
	return f
}

func rename(f fstest.MapFS, name string) fstest.MapFS {
	out := fstest.MapFS{}
	for p, file := range f {
		out[name+strings.TrimPrefix(p, "t")] = file
	}
	return out
}
