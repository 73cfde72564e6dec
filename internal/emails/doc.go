// Package emails renders the email templates that ship inside the binary.
//
// Emails are rendered when the command runs, not when the relay sends them:
// the outbox item then holds the exact subject and bodies that will go out,
// so a redeploy or a template edit never changes an email that was already
// committed, a retry or a DLQ replay resends the same bytes, and the relay
// needs no template store and no data beyond the outbox item. It also means
// every rendering failure surfaces while the client is still waiting, as a
// 422, instead of as a permanent delivery failure in the dead-letter queue.
//
// Templates are kept in the repository, one directory per template under
// templates/, each holding exactly subject.txt, body.txt and body.html. The
// subject and text body use text/template; the HTML body uses html/template
// so that caller data is escaped for HTML. Names are [a-z0-9-]{1,64}, so a
// name can travel in a URL or a log line as is.
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
// Errors are plain Go errors wrapping the package's sentinels; they all mean
// the request cannot be rendered (HTTP 422). Any other error from Render is a
// bug in a template.
package emails
