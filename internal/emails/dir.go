package emails

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"maps"
	"net/mail"
	"os"
	"path"
	"regexp"
	"slices"
	"strconv"
	"strings"
	texttemplate "text/template"
	"text/template/parse"
	"unicode"

	"gopkg.in/yaml.v3"

	"github.com/dispatcher-dev/dispatcher/emailtemplate"
	"github.com/dispatcher-dev/dispatcher/internal/dispatch"
)

// A template folder (docs/templates.md) holds one directory per template,
// each with subject.txt, body.txt, body.html and sample.json (the data the
// check and the preview render it with), and ConfigFile: the senders, which
// template each sends, and what Dispatch may send.
const (
	ConfigFile = "dispatcher.yaml"
	SampleFile = "sample.json"
	// EnvDir names the folder a function loads at cold start (the template
	// layer's mount, /opt/dispatcher-templates); unset: the built-in one.
	EnvDir = "EMAIL_TEMPLATES_DIR"
)

var templateFiles = []string{"subject.txt", "body.txt", "body.html"}

// Sender is one sender of dispatcher.yaml.
type Sender struct {
	Name     string   // display name; "" for none
	Address  string   // the From address
	ReplyTo  []string // Reply-To addresses, as written (display names kept)
	Identity string   // the SES identity: Address or its domain
}

// Wire is the sender as SES is given it: the From with its display name,
// MIME-encoded (RFC 2047) when it is not ASCII, as SES requires.
func (s Sender) Wire() dispatch.Sender {
	from := s.Address
	if s.Name != "" {
		from = (&mail.Address{Name: s.Name, Address: s.Address}).String()
	}
	var replyTo []string
	for _, r := range s.ReplyTo {
		a, err := mail.ParseAddress(r)
		if err != nil { // checked at load; kept as written
			replyTo = append(replyTo, r)
			continue
		}
		if a.Name == "" {
			replyTo = append(replyTo, a.Address)
			continue
		}
		replyTo = append(replyTo, a.String())
	}
	return dispatch.Sender{From: from, ReplyTo: replyTo}
}

// Dir is a checked template folder: every template parses and renders
// with its sample, and dispatcher.yaml names only senders, templates and
// command types that exist.
type Dir struct {
	Path    string                    // as errors name it
	Set     *Set                      // the templates
	Samples map[string]map[string]any // each template's sample.json
	Senders map[string]Sender         // by name
	// TemplateSenders maps a template to its sender's name; DefaultSender
	// is the sender of the others ("" : the stack's SENDER_ADDRESS).
	TemplateSenders map[string]string
	DefaultSender   string
	Grants          dispatch.Grants
}

// Render renders a template of the folder (the command service's Renderer).
func (d *Dir) Render(name string, data map[string]any) (Rendered, error) {
	return d.Set.Render(name, data)
}

// Preview renders a template with its sample data.
func (d *Dir) Preview(name string) (Rendered, error) {
	if !d.Set.Has(name) {
		return Rendered{}, fmt.Errorf("%w %q; the folder %s has: %s", ErrUnknownTemplate, name, d.Path, strings.Join(d.Set.Names(), ", "))
	}
	return d.Set.Render(name, d.Samples[name])
}

// SenderOf returns the sender of a template, if dispatcher.yaml gives it
// one (directly or as the default sender).
func (d *Dir) SenderOf(template string) (Sender, bool) {
	name, ok := d.TemplateSenders[template]
	if !ok {
		name = d.DefaultSender
	}
	s, ok := d.Senders[name]
	return s, ok
}

// WireSenders is what the relay sends each template's emails from.
func (d *Dir) WireSenders() dispatch.Senders {
	out := dispatch.Senders{ByTemplate: map[string]dispatch.Sender{}}
	for t, name := range d.TemplateSenders {
		out.ByTemplate[t] = d.Senders[name].Wire()
	}
	if s, ok := d.Senders[d.DefaultSender]; ok {
		w := s.Wire()
		out.Default = &w
	}
	return out
}

// Problem is one thing wrong in a template folder, at a file and line
// (Line 0: the file as a whole).
type Problem struct {
	File string
	Line int
	Msg  string
}

func (p Problem) String() string {
	if p.Line > 0 {
		return fmt.Sprintf("%s:%d: %s", p.File, p.Line, p.Msg)
	}
	return fmt.Sprintf("%s: %s", p.File, p.Msg)
}

// CheckError lists every problem of a template folder.
type CheckError struct {
	Path     string
	Problems []Problem
}

func (e *CheckError) Error() string {
	lines := make([]string, len(e.Problems))
	for i, p := range e.Problems {
		lines[i] = p.String()
	}
	return fmt.Sprintf("email templates %s: %d problem(s):\n%s", e.Path, len(e.Problems), strings.Join(lines, "\n"))
}

// LoadDir reads and checks the template folder at dir. Every problem found
// is in the *CheckError, each with its file and line.
func LoadDir(dir string) (*Dir, error) {
	if st, err := os.Stat(dir); err != nil || !st.IsDir() {
		return nil, &CheckError{Path: dir, Problems: []Problem{{File: dir, Msg: "not a readable directory"}}}
	}
	return LoadDirFS(os.DirFS(dir), dir)
}

// FromEnv loads the folder EMAIL_TEMPLATES_DIR names, or the built-in one
// when it is unset: what each function does at cold start, so that a broken
// folder stops its init with the file and line instead of failing emails.
func FromEnv(getenv func(string) string) (*Dir, error) {
	if dir := getenv(EnvDir); dir != "" {
		d, err := LoadDir(dir)
		if err != nil {
			return nil, fmt.Errorf("%s: %w", EnvDir, err)
		}
		return d, nil
	}
	return Builtin()
}

// LoadDirFS is LoadDir on any file system; root names it in problems.
func LoadDirFS(fsys fs.FS, root string) (*Dir, error) {
	c := &checker{fsys: fsys, root: root}
	d := &Dir{Path: root, Samples: map[string]map[string]any{}}
	names := c.templates()
	set, err := emailtemplate.LoadFS(only{fsys, func(p string) bool { return p != ConfigFile && path.Base(p) != SampleFile }})
	if err != nil {
		// The renderer stops at the first broken template: each alone,
		// to report them all.
		before := len(c.problems)
		for _, name := range names {
			c.template(name)
		}
		if len(c.problems) == 0 && before == 0 {
			c.add(root, 0, "%s", err)
		}
	}
	for _, name := range names {
		d.Samples[name] = c.sample(name)
	}
	if set != nil {
		d.Set = set
		for _, name := range names {
			c.render(d, name)
		}
	}
	c.config(d, names)
	if len(c.problems) > 0 {
		return nil, &CheckError{Path: root, Problems: c.problems}
	}
	return d, nil
}

type checker struct {
	fsys     fs.FS
	root     string
	problems []Problem
}

func (c *checker) add(file string, line int, format string, args ...any) {
	c.problems = append(c.problems, Problem{File: file, Line: line, Msg: fmt.Sprintf(format, args...)})
}

func (c *checker) file(p string) string { return path.Join(c.root, p) }

// templates lists the template directories; anything else beside
// dispatcher.yaml is a problem.
func (c *checker) templates() []string {
	entries, err := fs.ReadDir(c.fsys, ".")
	if err != nil {
		c.add(c.root, 0, "%v", err)
		return nil
	}
	var names []string
	for _, e := range entries {
		switch {
		case e.Name() == ConfigFile:
		case !e.IsDir():
			c.add(c.file(e.Name()), 0, "unexpected file: the folder holds one directory per template and %s", ConfigFile)
		default:
			names = append(names, e.Name())
		}
	}
	if len(names) == 0 && len(c.problems) == 0 {
		c.add(c.root, 0, "no templates")
	}
	return names
}

var (
	templatePrefix = regexp.MustCompile(`^emailtemplate: template "[^"]*": `)
	fileLine       = regexp.MustCompile(`(subject\.txt|body\.txt|body\.html):(\d+)`)
	unexpectedFile = regexp.MustCompile(`unexpected file "([^"]+)"`)
)

// template parses one template alone and reports what is wrong with it.
func (c *checker) template(name string) {
	_, err := emailtemplate.LoadFS(only{c.fsys, func(p string) bool {
		return p == "." || p == name || strings.HasPrefix(p, name+"/") && p != name+"/"+SampleFile
	}})
	if err == nil {
		return
	}
	msg := templatePrefix.ReplaceAllString(err.Error(), "")
	file, line := c.file(name), 0
	if m := fileLine.FindStringSubmatch(msg); m != nil {
		file = c.file(name + "/" + m[1])
		line, _ = strconv.Atoi(m[2])
	} else if m := unexpectedFile.FindStringSubmatch(msg); m != nil {
		file = c.file(name + "/" + m[1])
	} else if strings.Contains(msg, "subject.txt must be one line") {
		file, line = c.file(name+"/subject.txt"), 2
	} else if f, _, ok := strings.Cut(msg, " is empty"); ok && slices.Contains(templateFiles, f) {
		file = c.file(name + "/" + f)
	}
	c.add(file, line, "%s", msg)
}

// sample reads a template's sample.json: one JSON object.
func (c *checker) sample(name string) map[string]any {
	p := name + "/" + SampleFile
	b, err := fs.ReadFile(c.fsys, p)
	if err != nil {
		c.add(c.file(p), 0, "missing: each template needs its sample data (a JSON object), which the check and the preview render it with")
		return nil
	}
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.UseNumber()
	var data map[string]any
	if err := dec.Decode(&data); err != nil || data == nil {
		line := 0
		var se *json.SyntaxError
		if errors.As(err, &se) {
			line = lineAt(b, int(se.Offset))
		}
		c.add(c.file(p), line, "not a JSON object: %v", err)
		return nil
	}
	return data
}

var (
	needsKey   = regexp.MustCompile(`needs "((?:[^"\\]|\\.)*)"`)
	subjectKey = regexp.MustCompile(`"((?:[^"\\]|\\.)*)" goes into the subject`)
)

// render renders a template with its sample and places any failure: a
// missing key where a file uses it, unsafe subject data where the sample
// gives it.
func (c *checker) render(d *Dir, name string) {
	data := d.Samples[name]
	if data == nil {
		return
	}
	_, err := d.Set.Render(name, data)
	if err == nil {
		return
	}
	msg := templatePrefix.ReplaceAllString(err.Error(), "")
	sample := c.file(name + "/" + SampleFile)
	switch {
	case errors.Is(err, ErrMissingData):
		for _, m := range needsKey.FindAllStringSubmatch(msg, -1) {
			key, _ := strconv.Unquote(`"` + m[1] + `"`)
			file, line := c.keyUse(name, key)
			c.add(file, line, "uses %q, which %s does not give", key, sample)
		}
	case errors.Is(err, ErrUnsafeSubject):
		if m := subjectKey.FindStringSubmatch(msg); m != nil {
			key, _ := strconv.Unquote(`"` + m[1] + `"`)
			b, _ := fs.ReadFile(c.fsys, name+"/"+SampleFile)
			c.add(sample, keyLine(b, key), "%s", msg)
			return
		}
		c.add(c.file(name+"/subject.txt"), 1, "%s", msg)
	default:
		file, line := sample, 0
		if m := fileLine.FindStringSubmatch(msg); m != nil {
			file = c.file(name + "/" + m[1])
			line, _ = strconv.Atoi(m[2])
		}
		c.add(file, line, "%s", msg)
	}
}

// keyUse finds the first file and line of a template that refers to key.
func (c *checker) keyUse(name, key string) (string, int) {
	for _, f := range templateFiles {
		b, err := fs.ReadFile(c.fsys, name+"/"+f)
		if err != nil {
			continue
		}
		t, err := texttemplate.New(f).Parse(string(b))
		if err != nil || t.Tree == nil {
			continue
		}
		if pos, ok := findKey(t.Tree.Root, key); ok {
			return c.file(name + "/" + f), lineAt(b, int(pos))
		}
	}
	return c.file(name), 0
}

// findKey finds a reference to the data key in a template tree: .key, or
// $.key anywhere.
func findKey(node parse.Node, key string) (parse.Pos, bool) {
	switch n := node.(type) {
	case *parse.ListNode:
		if n == nil {
			return 0, false
		}
		for _, c := range n.Nodes {
			if p, ok := findKey(c, key); ok {
				return p, true
			}
		}
	case *parse.ActionNode:
		return findKey(n.Pipe, key)
	case *parse.PipeNode:
		if n == nil {
			return 0, false
		}
		for _, c := range n.Cmds {
			if p, ok := findKey(c, key); ok {
				return p, true
			}
		}
	case *parse.CommandNode:
		for _, a := range n.Args {
			if p, ok := findKey(a, key); ok {
				return p, true
			}
		}
	case *parse.FieldNode:
		if len(n.Ident) > 0 && n.Ident[0] == key {
			return n.Pos, true
		}
	case *parse.VariableNode:
		if len(n.Ident) > 1 && n.Ident[0] == "$" && n.Ident[1] == key {
			return n.Pos, true
		}
	case *parse.ChainNode:
		return findKey(n.Node, key)
	case *parse.BranchNode:
		for _, c := range []parse.Node{n.Pipe, n.List, n.ElseList} {
			if p, ok := findKey(c, key); ok {
				return p, true
			}
		}
	case *parse.IfNode:
		return findKey(&n.BranchNode, key)
	case *parse.WithNode:
		return findKey(&n.BranchNode, key)
	case *parse.RangeNode:
		return findKey(&n.BranchNode, key)
	case *parse.TemplateNode:
		return findKey(n.Pipe, key)
	}
	return 0, false
}

// lineAt is the 1-based line of a byte offset.
func lineAt(b []byte, off int) int {
	off = min(max(off, 0), len(b))
	return bytes.Count(b[:off], []byte("\n")) + 1
}

// keyLine is the line of a JSON object's key in its source (0 if absent).
func keyLine(b []byte, key string) int {
	q, _ := json.Marshal(key)
	re := regexp.MustCompile(regexp.QuoteMeta(string(q)) + `\s*:`)
	if loc := re.FindIndex(b); loc != nil {
		return lineAt(b, loc[0])
	}
	return 0
}

// fileConfig is dispatcher.yaml, decoded strictly (unknown keys refused).
type fileConfig struct {
	Senders       map[string]fileSender `yaml:"senders"`
	DefaultSender string                `yaml:"defaultSender"`
	Templates     map[string]string     `yaml:"templates"`
	Commands      map[string]fileGrant  `yaml:"commands"`
}

type fileSender struct {
	From     string   `yaml:"from"`
	ReplyTo  []string `yaml:"replyTo"`
	Identity string   `yaml:"identity"`
}

type fileGrant struct {
	Templates []string `yaml:"templates"`
	Events    []string `yaml:"events"`
}

var yamlLine = regexp.MustCompile(`^(?:yaml: )?line (\d+): (.*)$`)

// config reads dispatcher.yaml and checks it against the templates.
func (c *checker) config(d *Dir, names []string) {
	file := c.file(ConfigFile)
	b, err := fs.ReadFile(c.fsys, ConfigFile)
	if err != nil {
		c.add(file, 0, "missing: the folder's senders and what Dispatch may send (docs/templates.md)")
		return
	}
	var cfg fileConfig
	var root yaml.Node
	dec := yaml.NewDecoder(bytes.NewReader(b))
	dec.KnownFields(true)
	err = dec.Decode(&cfg)
	if err == nil {
		err = yaml.Unmarshal(b, &root)
	}
	if errors.Is(err, io.EOF) {
		err = nil // an empty file: nothing configured
	}
	if err != nil {
		var te *yaml.TypeError
		if errors.As(err, &te) {
			for _, e := range te.Errors {
				c.yamlProblem(file, e)
			}
		} else {
			c.yamlProblem(file, err.Error())
		}
		return
	}
	at := func(keys ...string) int { return nodeLine(&root, keys...) }
	has := func(t string) bool { return slices.Contains(names, t) }

	d.Senders = map[string]Sender{}
	for _, name := range slices.Sorted(maps.Keys(cfg.Senders)) {
		fs := cfg.Senders[name]
		s, ok := c.sender(file, at, name, fs)
		if ok {
			d.Senders[name] = s
		}
	}
	d.DefaultSender = cfg.DefaultSender
	if cfg.DefaultSender != "" {
		if _, ok := cfg.Senders[cfg.DefaultSender]; !ok {
			c.add(file, at("defaultSender"), "defaultSender %q is not one of the senders", cfg.DefaultSender)
		}
	}
	d.TemplateSenders = map[string]string{}
	for _, t := range slices.Sorted(maps.Keys(cfg.Templates)) {
		sender := cfg.Templates[t]
		if !has(t) {
			c.add(file, at("templates", t), "template %q is not in the folder", t)
		}
		if _, ok := cfg.Senders[sender]; !ok {
			c.add(file, at("templates", t), "template %q: sender %q is not one of the senders", t, sender)
		}
		d.TemplateSenders[t] = sender
	}
	d.Grants = dispatch.Grants{}
	for _, cmd := range slices.Sorted(maps.Keys(cfg.Commands)) {
		g := cfg.Commands[cmd]
		switch {
		case !slices.Contains(dispatch.CommandTypes(), cmd):
			c.add(file, at("commands", cmd), "unknown command type %q; known: %s", cmd, strings.Join(dispatch.CommandTypes(), ", "))
			continue
		case !dispatch.CallerChoosesEffects(cmd):
			c.add(file, at("commands", cmd), "%s decides its own effects (templates: %s); only a command whose caller chooses them (Dispatch) takes a grant", cmd, strings.Join(dispatch.TemplatesFor(cmd), ", "))
			continue
		}
		for i, t := range g.Templates {
			if !has(t) {
				c.add(file, at("commands", cmd, "templates", strconv.Itoa(i)), "%s is granted template %q, which is not in the folder", cmd, t)
			}
		}
		for i, e := range g.Events {
			if !dispatch.ValidEventPattern(e) {
				c.add(file, at("commands", cmd, "events", strconv.Itoa(i)), "%s: event pattern %q must be an event type (A-Z a-z 0-9 . _ -, starting with a letter), a prefix of one ending in *, or *", cmd, e)
			}
		}
		d.Grants[cmd] = dispatch.Grant{Templates: slices.Clone(g.Templates), Events: slices.Clone(g.Events)}
	}
	// The account commands send their own templates, whatever the folder.
	for _, cmd := range dispatch.CommandTypes() {
		for _, t := range dispatch.TemplatesFor(cmd) {
			if !has(t) {
				c.add(c.file(t), 0, "missing: %s sends template %q, so every folder has it (copy it from the built-in folder)", cmd, t)
			}
		}
	}
}

func (c *checker) yamlProblem(file, msg string) {
	msg = strings.TrimPrefix(msg, "yaml: unmarshal errors:\n")
	for _, l := range strings.Split(msg, "\n") {
		l = strings.TrimSpace(l)
		if m := yamlLine.FindStringSubmatch(l); m != nil {
			n, _ := strconv.Atoi(m[1])
			c.add(file, n, "%s", m[2])
			continue
		}
		c.add(file, 0, "%s", l)
	}
}

// sender checks one sender: a From address (with an optional display name),
// Reply-To addresses, and an identity that is the address or its domain.
func (c *checker) sender(file string, at func(...string) int, name string, fs fileSender) (Sender, bool) {
	ok := true
	bad := func(line int, format string, args ...any) {
		c.add(file, line, "sender %q: "+format, append([]any{name}, args...)...)
		ok = false
	}
	var s Sender
	a, err := mail.ParseAddress(fs.From)
	switch {
	case fs.From == "":
		bad(at("senders", name), "from is required")
	case err != nil:
		bad(at("senders", name, "from"), "from %q is not an address or Name <address>: %v", fs.From, err)
	default:
		s.Name = a.Name
		if s.Address, err = dispatch.ParseAddress(a.Address); err != nil {
			bad(at("senders", name, "from"), "from address %q: %v", a.Address, err)
		}
		if strings.IndexFunc(a.Name, unicode.IsControl) >= 0 {
			bad(at("senders", name, "from"), "the display name must not contain control characters")
		}
	}
	for i, r := range fs.ReplyTo {
		ra, err := mail.ParseAddress(r)
		if err == nil {
			_, err = dispatch.ParseAddress(ra.Address)
		}
		if err != nil {
			bad(at("senders", name, "replyTo", strconv.Itoa(i)), "replyTo %q: %v", r, err)
		}
	}
	s.ReplyTo = slices.Clone(fs.ReplyTo)
	s.Identity = strings.ToLower(fs.Identity)
	if fs.Identity == "" {
		bad(at("senders", name), "identity is required: the SES identity it sends under, %s or its domain", orAddress(s.Address))
	} else if s.Address != "" {
		_, domain, _ := strings.Cut(strings.ToLower(s.Address), "@")
		if s.Identity != strings.ToLower(s.Address) && s.Identity != domain {
			bad(at("senders", name, "identity"), "identity %q does not cover the from address %s: give the address or its domain %s", fs.Identity, s.Address, domain)
		}
	}
	return s, ok
}

func orAddress(a string) string {
	if a == "" {
		return "the from address"
	}
	return a
}

// nodeLine is the line of the value at a path of mapping keys (or sequence
// indexes) in a YAML document; the deepest node found if the path ends early.
func nodeLine(n *yaml.Node, keys ...string) int {
	if n.Kind == yaml.DocumentNode && len(n.Content) > 0 {
		n = n.Content[0]
	}
	line := n.Line
	for _, k := range keys {
		var next *yaml.Node
		switch n.Kind {
		case yaml.MappingNode:
			for i := 0; i+1 < len(n.Content); i += 2 {
				if n.Content[i].Value == k {
					line, next = n.Content[i].Line, n.Content[i+1]
				}
			}
		case yaml.SequenceNode:
			if i, err := strconv.Atoi(k); err == nil && i < len(n.Content) {
				next = n.Content[i]
				line = next.Line
			}
		}
		if next == nil {
			return line
		}
		n = next
	}
	return line
}

// only shows the paths of fsys that keep accepts, so that emailtemplate,
// which refuses files it does not know, sees just the template files.
type only struct {
	fsys fs.FS
	keep func(path string) bool
}

func (o only) Open(name string) (fs.File, error) {
	if !o.keep(name) {
		return nil, &fs.PathError{Op: "open", Path: name, Err: fs.ErrNotExist}
	}
	return o.fsys.Open(name)
}

func (o only) ReadDir(name string) ([]fs.DirEntry, error) {
	entries, err := fs.ReadDir(o.fsys, name)
	if err != nil {
		return nil, err
	}
	out := entries[:0:0]
	for _, e := range entries {
		if o.keep(path.Join(name, e.Name())) {
			out = append(out, e)
		}
	}
	return out, nil
}
