// Package emails holds the email templates that ship inside the binary
// (templates/, one directory per template) and renders them with the
// public renderer, package emailtemplate, whose documentation says what a
// template and its data may hold.
//
// Emails are rendered when the command runs, not when the relay sends them:
// the outbox item then holds the exact subject and bodies that will go out,
// so a redeploy or a template edit never changes an email that was already
// committed, a retry or a DLQ replay resends the same bytes, and the relay
// needs no template store and no data beyond the outbox item. It also means
// every rendering failure surfaces while the client is still waiting, as a
// 422, instead of as a permanent delivery failure in the dead-letter queue.
package emails
