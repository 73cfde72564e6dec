// Package emailtemplate renders emails from templates: the renderer of
// Dispatcher's command API, for writers of outbox items that keep their
// templates in their own service (the outbox package of this module).
//
// Render an email when the change is committed, not when it is sent: the
// outbox item then holds the exact subject and bodies that will go out, so
// a redeploy or a template edit never changes an email already committed, a
// retry or a replay resends the same bytes, and every rendering failure
// surfaces while your caller is still waiting.
//
// A template set is a directory (any fs.FS: os.DirFS, embed.FS) with one
// directory per template, named [a-z0-9-]{1,64}, each holding exactly
// subject.txt, body.txt and body.html. The subject and text body use
// text/template; the HTML body uses html/template, so that data is escaped
// for HTML. LoadFS refuses anything else found there, so a misnamed file
// fails loudly instead of leaving a template silently absent.
//
// Data is a flat map of scalars, as encoding/json decodes a request body:
// string, bool, float64, json.Number, or any other integer or float type.
// Numbers print with Go's %v formatting (1e+21, 0.30000000000000004), so
// money and other values whose display matters must arrive as formatted
// strings. Every key a template refers to is required, even one used only in
// a branch that the data does not take, so that what a template needs does
// not depend on the data; a null value counts as missing. Extra keys are
// ignored, so callers can share one data map across templates.
//
// Errors wrap the package's sentinels (ErrUnknownTemplate, ErrMissingData,
// ErrInvalidData, ErrUnsafeSubject, ErrTooLarge); they all mean the data
// cannot be rendered, which Dispatcher's API answers with a 422. Any other
// error from Render is a bug in a template.
package emailtemplate
