package docs_test

import (
	"bufio"
	"bytes"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"unicode"
)

// maxReadmeLines bounds the whole README: it is the first screen (what
// Dispatcher is, the picture, Quick start with what the first run downloads
// and how long it takes, the two commands, what to look at after `make dev`,
// `make help`, and links to docs/). That takes 70 lines, 26 of them the
// picture; 80 leaves room for a line or two more of each, and bounding the
// whole file, not a part of it, keeps the rest from growing back below the
// fold. Everything else lives in docs/, reached through the links.
const maxReadmeLines = 80

func TestTheReadmeIsOneScreen(t *testing.T) {
	b, err := os.ReadFile("../README.md")
	if err != nil {
		t.Fatal(err)
	}
	if n := bytes.Count(b, []byte("\n")); n > maxReadmeLines {
		t.Errorf("README.md has %d lines, at most %d: move the detail to a page in docs/ and link it", n, maxReadmeLines)
	}
	// What the first screen must say (issue 31): the two commands, what the
	// first run downloads and about how long it takes, and `make help`.
	for _, want := range []string{"## Quick start", "make dev", "make test", "make help", "npm ci", "go1.27.3", "minutes"} {
		if !bytes.Contains(b, []byte(want)) {
			t.Errorf("README.md does not say %q", want)
		}
	}
}

// Every relative link of the README and of docs/*.md names a file of the
// repository that exists, and a #fragment names a heading (or an <a id>) of
// that file. No link leaves the repository, and no page names a Markdown
// document the repository does not hold: users have only what it ships.
func TestEveryDocLinkResolves(t *testing.T) {
	root, err := filepath.Abs("..")
	if err != nil {
		t.Fatal(err)
	}
	files, err := filepath.Glob(filepath.Join(root, "docs", "*.md"))
	if err != nil {
		t.Fatal(err)
	}
	files = append([]string{filepath.Join(root, "README.md")}, files...)
	anchors := map[string]map[string]bool{}
	checked := 0
	for _, file := range files {
		if b, err := os.ReadFile(file); err == nil {
			for _, m := range namedDoc.FindAllSubmatch(b, -1) {
				if !docExists(root, filepath.Dir(file), string(m[1])) {
					t.Errorf("%s names %s, which is not in the repository: users have only what it ships", file, m[1])
				}
			}
		}
		for _, l := range links(t, file) {
			rel, _ := filepath.Rel(root, file)
			where := rel + ":" + l.line
			if isExternal(l.target) {
				continue
			}
			if path, _, _ := strings.Cut(l.target, "#"); path != "" {
				if r, err := filepath.Rel(root, filepath.Join(filepath.Dir(file), path)); err != nil || strings.HasPrefix(r, "..") {
					t.Errorf("%s links to %s, outside the repository: users have only what it ships", where, l.target)
					continue
				}
			}
			checked++
			path, frag, _ := strings.Cut(l.target, "#")
			target := file
			if path != "" {
				target = filepath.Join(filepath.Dir(file), filepath.FromSlash(path))
				if r, err := filepath.Rel(root, target); err != nil || strings.HasPrefix(r, "..") {
					t.Errorf("%s links to %s, outside the repository", where, l.target)
					continue
				}
				if _, err := os.Stat(target); err != nil {
					t.Errorf("%s links to %s, which does not exist", where, l.target)
					continue
				}
			}
			if frag == "" {
				continue
			}
			if !strings.HasSuffix(target, ".md") {
				t.Errorf("%s links to %s: a fragment of a file that has no headings", where, l.target)
				continue
			}
			if anchors[target] == nil {
				anchors[target] = headingAnchors(t, target)
			}
			if !anchors[target][frag] {
				t.Errorf("%s links to %s: no heading of %s has the anchor #%s", where, l.target, filepath.Base(target), frag)
			}
		}
	}
	if checked < 20 {
		t.Errorf("only %d relative links found: the link reader is broken", checked)
	}
}

func isExternal(target string) bool {
	for _, p := range []string{"http://", "https://", "mailto:"} {
		if strings.HasPrefix(target, p) {
			return true
		}
	}
	return false
}

type link struct{ line, target string }

var (
	linkRE       = regexp.MustCompile(`\]\(([^)\s]+)(?:\s+"[^"]*")?\)`)
	codeSpanRE   = regexp.MustCompile("`[^`]*`")
	htmlAnchorRE = regexp.MustCompile(`<a\s+(?:id|name)="([^"]+)"`)
)

// links returns the Markdown links of a file outside code blocks and code
// spans, with their line numbers.
func links(t *testing.T, file string) []link {
	t.Helper()
	var out []link
	eachLine(t, file, func(n int, line string) {
		for _, m := range linkRE.FindAllStringSubmatch(codeSpanRE.ReplaceAllString(line, ""), -1) {
			out = append(out, link{strconv.Itoa(n), m[1]})
		}
	})
	return out
}

// headingAnchors returns the anchors GitHub gives a file's headings (and
// its explicit <a id> anchors).
func headingAnchors(t *testing.T, file string) map[string]bool {
	t.Helper()
	seen := map[string]int{}
	out := map[string]bool{}
	eachLine(t, file, func(_ int, line string) {
		for _, m := range htmlAnchorRE.FindAllStringSubmatch(line, -1) {
			out[m[1]] = true
		}
		if !strings.HasPrefix(line, "#") {
			return
		}
		text := strings.TrimLeft(line, "#")
		if text == "" || text[0] != ' ' {
			return
		}
		a := slug(text)
		if k := seen[a]; k > 0 {
			out[a+"-"+strconv.Itoa(k)] = true
		} else {
			out[a] = true
		}
		seen[a]++
	})
	return out
}

// slug is GitHub's anchor for a heading: lower case, letters, digits,
// spaces, '-' and '_' kept (a space becomes '-'), everything else dropped.
func slug(heading string) string {
	var b strings.Builder
	for _, r := range strings.ToLower(strings.TrimSpace(heading)) {
		switch {
		case r == ' ':
			b.WriteRune('-')
		case r == '-' || r == '_' || unicode.IsLetter(r) || unicode.IsDigit(r):
			b.WriteRune(r)
		}
	}
	return b.String()
}

func TestSlug(t *testing.T) {
	for in, want := range map[string]string{
		"Rotating the webhook secret":      "rotating-the-webhook-secret",
		"Proven, not claimed":              "proven-not-claimed",
		"What `make dev` does":             "what-make-dev-does",
		"moto, a second implementation":    "moto-a-second-implementation",
		"DynamoDB Streams event source ma": "dynamodb-streams-event-source-ma",
		"The outbox run: a b (c, d; e)":    "the-outbox-run-a-b-c-d-e",
	} {
		if got := slug(in); got != want {
			t.Errorf("slug(%q) = %q, want %q", in, got, want)
		}
	}
}

// eachLine calls fn with each line of file that is outside a fenced code
// block.
func eachLine(t *testing.T, file string, fn func(n int, line string)) {
	t.Helper()
	b, err := os.ReadFile(file)
	if err != nil {
		t.Fatal(err)
	}
	sc := bufio.NewScanner(bytes.NewReader(b))
	sc.Buffer(make([]byte, 0, 64<<10), 1<<20)
	inFence := false
	for n := 1; sc.Scan(); n++ {
		line := sc.Text()
		if strings.HasPrefix(strings.TrimSpace(line), "```") {
			inFence = !inFence
			continue
		}
		if !inFence {
			fn(n, line)
		}
	}
	if err := sc.Err(); err != nil {
		t.Fatal(err)
	}
}

// namedDoc finds a Markdown document named in code spans (`NAME.md`).
var namedDoc = regexp.MustCompile("`([A-Za-z0-9_./-]+\\.md)`")

// docExists says whether a named document is in the repository: relative to
// the page, to the root, or in docs/.
func docExists(root, dir, name string) bool {
	for _, p := range []string{filepath.Join(dir, name), filepath.Join(root, name), filepath.Join(root, "docs", name)} {
		if r, err := filepath.Rel(root, p); err != nil || strings.HasPrefix(r, "..") {
			continue
		}
		if _, err := os.Stat(p); err == nil {
			return true
		}
	}
	return false
}
