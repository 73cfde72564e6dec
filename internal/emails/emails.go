package emails

import (
	"embed"
	"fmt"
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

var loadEmbedded = sync.OnceValues(func() (*Set, error) {
	sub, err := fs.Sub(embedded, "templates")
	if err != nil {
		return nil, fmt.Errorf("emails: embedded templates: %w", err)
	}
	return LoadFS(sub)
})

// Load returns the templates embedded in the binary. They are parsed once
// and the same Set is returned on every call; an error means a shipped
// template is broken, which the package tests catch before a deploy.
func Load() (*Set, error) {
	return loadEmbedded()
}

// Embedded renders the embedded templates, parsing them at its first
// Render rather than at cold start (0.3 ms of the command function's init,
// GODEBUG=inittrace=1 and bench/coldstart): most commands send no email
// from a fresh instance's first request, and a broken template, which the
// package tests catch before a deploy, still fails every render.
type Embedded struct{}

// Render implements the command service's Renderer.
func (Embedded) Render(name string, data map[string]any) (Rendered, error) {
	s, err := Load()
	if err != nil {
		return Rendered{}, err
	}
	return s.Render(name, data)
}
