package emails

import (
	"embed"
	"io/fs"
	"sync"

	"github.com/dispatcher-dev/dispatcher/emailtemplate"
)

// The renderer is the public emailtemplate package: its types, limits and
// errors, under the names the command service uses.
type (
	// Set is a parsed set of templates.
	Set = emailtemplate.Set
	// Rendered is an email ready to send.
	Rendered = emailtemplate.Rendered
)

// The renderer's errors (emailtemplate).
var (
	ErrUnknownTemplate = emailtemplate.ErrUnknownTemplate
	ErrMissingData     = emailtemplate.ErrMissingData
	ErrInvalidData     = emailtemplate.ErrInvalidData
	ErrUnsafeSubject   = emailtemplate.ErrUnsafeSubject
	ErrTooLarge        = emailtemplate.ErrTooLarge
)

// The renderer's limits (emailtemplate).
const (
	MaxRenderedBytes = emailtemplate.MaxRenderedBytes
	MaxSubjectBytes  = emailtemplate.MaxSubjectBytes
)

// LoadFS parses the templates in fsys (emailtemplate.LoadFS).
func LoadFS(fsys fs.FS) (*Set, error) { return emailtemplate.LoadFS(fsys) }

//go:embed templates
var embedded embed.FS

// BuiltinPath is the built-in template folder in the repository: the
// default of `make templates-check` and of the template layer.
const BuiltinPath = "internal/emails/templates"

// BuiltinFS is the built-in folder's files.
func BuiltinFS() fs.FS {
	sub, err := fs.Sub(embedded, "templates")
	if err != nil { // "templates" is a valid path: never
		return embedded
	}
	return sub
}

var loadBuiltin = sync.OnceValues(func() (*Dir, error) {
	return LoadDirFS(BuiltinFS(), BuiltinPath)
})

// Builtin returns the template folder embedded in the binary (BuiltinPath),
// checked as any folder is. It is read once; an error means a shipped
// template is broken, which the package tests catch before a deploy.
func Builtin() (*Dir, error) {
	return loadBuiltin()
}

// Load returns the built-in templates (Builtin's Set).
func Load() (*Set, error) {
	d, err := Builtin()
	if err != nil {
		return nil, err
	}
	return d.Set, nil
}

// Embedded renders the built-in templates, reading them at its first
// Render: for a service built without a template folder (tests, tools).
type Embedded struct{}

// Render implements the command service's Renderer.
func (Embedded) Render(name string, data map[string]any) (Rendered, error) {
	s, err := Load()
	if err != nil {
		return Rendered{}, err
	}
	return s.Render(name, data)
}
