package emailtemplate

import (
	"errors"
	"fmt"
	htmltemplate "html/template"
	"io"
	"io/fs"
	"path"
	"reflect"
	"regexp"
	"slices"
	"strconv"
	"strings"
	texttemplate "text/template"
	"unicode/utf8"

	"github.com/dispatcher-dev/dispatcher/outbox"
)

// Sentinels for the errors Render returns; wrap-checked with errors.Is.
var (
	ErrUnknownTemplate = errors.New("emailtemplate: unknown template")
	ErrMissingData     = errors.New("emailtemplate: missing template data")
	ErrInvalidData     = errors.New("emailtemplate: invalid template data")
	ErrUnsafeSubject   = errors.New("emailtemplate: unsafe subject")
	ErrTooLarge        = errors.New("emailtemplate: rendered email too large")
)

const (
	// MaxRenderedBytes bounds Text+HTML so that an outbox item, which also
	// holds the envelope and the subject, stays well under DynamoDB's 400 KB
	// item limit.
	MaxRenderedBytes = 200 * 1024

	// MaxSubjectBytes is RFC 5322's line limit: a longer subject would need
	// folding that not every relay and client gets right.
	MaxSubjectBytes = outbox.MaxSubjectBytes
)

const (
	subjectFile = "subject.txt"
	textFile    = "body.txt"
	htmlFile    = "body.html"
)

var validName = regexp.MustCompile(`^[a-z0-9-]{1,64}$`)

// Rendered is an email ready to send.
type Rendered struct {
	Subject, Text, HTML string
}

// Set is a parsed set of templates. It is immutable, so one Set can serve
// concurrent renders.
type Set struct {
	templates map[string]*tmpl
}

type tmpl struct {
	subject   *texttemplate.Template
	text      *texttemplate.Template
	html      *htmltemplate.Template
	keys      []string // sorted data keys the three files refer to
	inSubject []string // sorted data keys the subject refers to
}

// LoadFS parses the templates in fsys, one directory per template at its
// root. It rejects anything else found there, so a misnamed file or
// directory fails loudly instead of leaving a template silently absent.
func LoadFS(fsys fs.FS) (*Set, error) {
	entries, err := fs.ReadDir(fsys, ".")
	if err != nil {
		return nil, fmt.Errorf("emailtemplate: read templates: %w", err)
	}
	s := &Set{templates: make(map[string]*tmpl, len(entries))}
	for _, e := range entries {
		name := e.Name()
		if !e.IsDir() {
			return nil, fmt.Errorf("emailtemplate: unexpected file %q: each template is a directory", name)
		}
		if !validName.MatchString(name) {
			return nil, fmt.Errorf("emailtemplate: template %q: name must match [a-z0-9-]{1,64}", name)
		}
		t, err := loadTemplate(fsys, name)
		if err != nil {
			return nil, err
		}
		s.templates[name] = t
	}
	if len(s.templates) == 0 {
		return nil, errors.New("emailtemplate: no templates found")
	}
	return s, nil
}

func loadTemplate(fsys fs.FS, name string) (*tmpl, error) {
	files, err := fs.ReadDir(fsys, name)
	if err != nil {
		return nil, fmt.Errorf("emailtemplate: template %q: %w", name, err)
	}
	src := make(map[string]string, 3)
	for _, f := range files {
		switch f.Name() {
		case subjectFile, textFile, htmlFile:
		default:
			return nil, fmt.Errorf("emailtemplate: template %q: unexpected file %q: want only %s, %s and %s",
				name, f.Name(), subjectFile, textFile, htmlFile)
		}
		b, err := fs.ReadFile(fsys, path.Join(name, f.Name()))
		if err != nil {
			return nil, fmt.Errorf("emailtemplate: template %q: %w", name, err)
		}
		if strings.TrimSpace(string(b)) == "" {
			return nil, fmt.Errorf("emailtemplate: template %q: %s is empty", name, f.Name())
		}
		src[f.Name()] = string(b)
	}
	var missing []string
	for _, f := range []string{subjectFile, textFile, htmlFile} {
		if _, ok := src[f]; !ok {
			missing = append(missing, f)
		}
	}
	if len(missing) > 0 {
		return nil, fmt.Errorf("emailtemplate: template %q: missing %s", name, strings.Join(missing, ", "))
	}

	// Editors end files with a newline; any other line break would make
	// every rendering of the subject fail, so it is a template bug.
	subjectSrc := strings.TrimSuffix(strings.TrimSuffix(src[subjectFile], "\n"), "\r")
	if strings.ContainsAny(subjectSrc, "\r\n") {
		return nil, fmt.Errorf("emailtemplate: template %q: %s must be one line", name, subjectFile)
	}

	t := &tmpl{}
	if t.subject, err = texttemplate.New(subjectFile).Option("missingkey=error").Parse(subjectSrc); err != nil {
		return nil, fmt.Errorf("emailtemplate: template %q: %w", name, err)
	}
	if t.text, err = texttemplate.New(textFile).Option("missingkey=error").Parse(src[textFile]); err != nil {
		return nil, fmt.Errorf("emailtemplate: template %q: %w", name, err)
	}
	if t.html, err = htmltemplate.New(htmlFile).Option("missingkey=error").Parse(src[htmlFile]); err != nil {
		return nil, fmt.Errorf("emailtemplate: template %q: %w", name, err)
	}
	// html/template escapes lazily, on the first Execute, so a template that
	// cannot be escaped would otherwise fail only when a command uses it.
	// Executing without data triggers the escaping; the execution error that
	// follows (no data) is expected and ignored.
	var escErr *htmltemplate.Error
	if err := t.html.Execute(io.Discard, nil); errors.As(err, &escErr) {
		return nil, fmt.Errorf("emailtemplate: template %q: %w", name, err)
	}

	keys := map[string]bool{}
	for _, tree := range []*texttemplate.Template{t.subject, t.text} {
		collectKeys(tree.Tree.Root, true, keys)
	}
	if t.html.Tree != nil {
		collectKeys(t.html.Tree.Root, true, keys)
	}
	for k := range keys {
		t.keys = append(t.keys, k)
	}
	slices.Sort(t.keys)

	inSubject := map[string]bool{}
	collectKeys(t.subject.Tree.Root, true, inSubject)
	for k := range inSubject {
		t.inSubject = append(t.inSubject, k)
	}
	slices.Sort(t.inSubject)
	return t, nil
}

// Has reports whether the set holds a template with this name.
func (s *Set) Has(name string) bool {
	_, ok := s.templates[name]
	return ok
}

// Names returns the template names, sorted.
func (s *Set) Names() []string {
	names := make([]string, 0, len(s.templates))
	for n := range s.templates {
		names = append(names, n)
	}
	slices.Sort(names)
	return names
}

// Render renders the named template with data. See the package comment for
// what data may hold.
func (s *Set) Render(name string, data map[string]any) (Rendered, error) {
	if !validName.MatchString(name) {
		// Not echoed: the name comes from the request and may be anything.
		return Rendered{}, fmt.Errorf("%w: invalid name", ErrUnknownTemplate)
	}
	t, ok := s.templates[name]
	if !ok {
		return Rendered{}, fmt.Errorf("%w %q", ErrUnknownTemplate, name)
	}
	if err := t.check(name, data); err != nil {
		return Rendered{}, err
	}

	subject, err := execute(name, subjectFile, t.subject, data, &limitWriter{max: MaxRenderedBytes})
	if err != nil {
		return Rendered{}, err
	}
	if subject, err = cleanSubject(name, subject); err != nil {
		return Rendered{}, err
	}

	// One budget for both bodies: the limit is on what the outbox item holds.
	budget := &limitWriter{max: MaxRenderedBytes}
	text, err := execute(name, textFile, t.text, data, budget)
	if err != nil {
		return Rendered{}, err
	}
	html, err := execute(name, htmlFile, t.html, data, budget)
	if err != nil {
		return Rendered{}, err
	}
	return Rendered{Subject: subject, Text: text, HTML: html}, nil
}

// check finds every problem with data before anything is rendered, so the
// caller gets the whole list of missing keys at once.
func (t *tmpl) check(name string, data map[string]any) error {
	var missing, invalid []string
	for _, k := range t.keys {
		v, ok := data[k]
		switch {
		case !ok || v == nil:
			missing = append(missing, strconv.Quote(k))
		case !isScalar(v):
			invalid = append(invalid, strconv.Quote(k))
		}
	}
	if len(missing) > 0 {
		return fmt.Errorf("%w: template %q needs %s", ErrMissingData, name, strings.Join(missing, ", "))
	}
	if len(invalid) > 0 {
		return fmt.Errorf("%w: template %q: %s must be a string, number or bool",
			ErrInvalidData, name, strings.Join(invalid, ", "))
	}
	// Named here, while the key is known; cleanSubject checks the rendered
	// subject again, whatever put the character there.
	for _, k := range t.inSubject {
		if s, ok := data[k].(string); ok {
			if r, bad := outbox.UnsafeSubjectRune(s); bad {
				return fmt.Errorf("%w: template %q: %q goes into the subject and must not contain %U",
					ErrUnsafeSubject, name, k, r)
			}
		}
	}
	return nil
}

// isScalar accepts what JSON decoding yields for a scalar, and named types
// built on those kinds (json.Number is a string).
func isScalar(v any) bool {
	switch reflect.ValueOf(v).Kind() {
	case reflect.String, reflect.Bool,
		reflect.Int, reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64,
		reflect.Uint, reflect.Uint8, reflect.Uint16, reflect.Uint32, reflect.Uint64,
		reflect.Float32, reflect.Float64:
		return true
	}
	return false
}

type executor interface {
	Execute(io.Writer, any) error
}

// noEntry matches text/template's missingkey=error message, which is the
// only place the key is given. check catches every key it can see in the
// trees; this catches the rest (inside with, range or a called template).
var noEntry = regexp.MustCompile(`no entry for key "((?:[^"\\]|\\.)*)"`)

func execute(name, file string, t executor, data map[string]any, w *limitWriter) (string, error) {
	start := w.b.Len()
	err := t.Execute(w, data)
	switch {
	case err == nil:
		return w.b.String()[start:], nil
	case errors.Is(err, errLimit):
		return "", fmt.Errorf("%w: template %q: %s over %d bytes", ErrTooLarge, name, file, w.max)
	}
	if m := noEntry.FindStringSubmatch(err.Error()); m != nil {
		key, qerr := strconv.Unquote(`"` + m[1] + `"`)
		if qerr != nil {
			key = m[1]
		}
		return "", fmt.Errorf("%w: template %q needs %q", ErrMissingData, name, key)
	}
	return "", fmt.Errorf("emailtemplate: template %q: %s: %w", name, file, err)
}

func cleanSubject(name, s string) (string, error) {
	if !utf8.ValidString(s) {
		return "", fmt.Errorf("%w: template %q: subject is not valid UTF-8", ErrUnsafeSubject, name)
	}
	// Checked before trimming: a line break from the data is an injection
	// attempt, not whitespace to tidy away.
	if r, bad := outbox.UnsafeSubjectRune(s); bad {
		return "", fmt.Errorf("%w: template %q: subject contains %U", ErrUnsafeSubject, name, r)
	}
	s = strings.TrimSpace(s)
	if s == "" {
		return "", fmt.Errorf("%w: template %q: subject is empty", ErrUnsafeSubject, name)
	}
	if len(s) > MaxSubjectBytes {
		return "", fmt.Errorf("%w: template %q: subject is %d bytes, over %d", ErrTooLarge, name, len(s), MaxSubjectBytes)
	}
	return s, nil
}

var errLimit = errors.New("emailtemplate: output limit reached")

// limitWriter stops a template as soon as its output passes max, so that
// large data cannot make a render hold more than max bytes in memory.
type limitWriter struct {
	b   strings.Builder
	max int
}

func (w *limitWriter) Write(p []byte) (int, error) {
	if w.b.Len()+len(p) > w.max {
		return 0, errLimit
	}
	return w.b.Write(p)
}

// Email renders the named template with data into an email to the
// addresses in to, ready for outbox.Writer.Items.
func (s *Set) Email(name string, to []string, data map[string]any) (outbox.Email, error) {
	r, err := s.Render(name, data)
	if err != nil {
		return outbox.Email{}, err
	}
	return outbox.Email{To: to, Template: name, Subject: r.Subject, Text: r.Text, HTML: r.HTML}, nil
}
