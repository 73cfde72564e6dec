package dispatch

import (
	"errors"
	"fmt"
)

// Kind says what an error means to the edge that handles it: the HTTP
// handler maps it to a status, the relay to retry, park or stop.
type Kind uint8

// The kinds of error. Zero is Internal: an error nobody classified is a bug.
const (
	Internal      Kind = iota // a bug or an unexpected state: 500, logged with detail
	Invalid                   // bad input: 400
	Unauthorized              // authentication failed: 401
	NotFound                  // no such aggregate: 404
	Conflict                  // refused by the current state (an open account opened again), or a write lost a race: 409
	Unprocessable             // well-formed but refused by the domain: 422
	TooLarge                  // a named limit exceeded: 413
	Transient                 // throttling, 5xx, timeout: retry with backoff
	Permanent                 // the target refuses this item for good: mark FAILED, park in the DLQ
	AccountWide               // sending paused or account suspended: stop the batch, retry nothing
	Stale                     // the caller's expectedVersion is not the current one: 409 with the current version (*VersionConflict)
	Forbidden                 // the caller is authenticated but not granted this: 403
	Throttled                 // the caller exceeded its rate: 429 with Retry-After
)

var kindNames = [...]string{"internal", "invalid", "unauthorized", "not found", "conflict", "unprocessable", "too large", "transient", "permanent", "account-wide", "stale", "forbidden", "throttled"}

func (k Kind) String() string {
	if int(k) < len(kindNames) {
		return kindNames[k]
	}
	return fmt.Sprintf("kind(%d)", k)
}

// Error is Dispatcher's error: an operation, a kind, an optional message
// safe to show a caller, and the underlying cause.
type Error struct {
	Op   string // what was being done, such as "relay.sendEmail"
	Kind Kind
	Msg  string // for the caller; never holds secrets, addresses or bodies
	Err  error  // the cause, for logs
}

func (e *Error) Error() string {
	s := e.Op + ": " + e.Kind.String()
	if e.Msg != "" {
		s += ": " + e.Msg
	}
	if e.Err != nil {
		s += ": " + e.Err.Error()
	}
	return s
}

func (e *Error) Unwrap() error { return e.Err }

// E builds an Error.
func E(op string, kind Kind, msg string, cause error) *Error {
	return &Error{Op: op, Kind: kind, Msg: msg, Err: cause}
}

// kinded is an error that carries a kind: *Error, *ValidationError and
// *VersionConflict. The method is unexported so that no other package's
// error can claim a kind without being one of these.
type kinded interface {
	error
	kind() Kind
}

func (e *Error) kind() Kind { return e.Kind }

// kind is Unprocessable or Invalid: field-level problems are the caller's,
// whatever Kind a literal left unset.
func (e *ValidationError) kind() Kind {
	if e.Kind == Unprocessable {
		return Unprocessable
	}
	return Invalid
}

func (e *VersionConflict) kind() Kind { return Stale }

func classified(err error) kinded {
	var k kinded
	if errors.As(err, &k) {
		return k
	}
	return nil
}

// KindOf returns the kind of the outermost *Error, *ValidationError or
// *VersionConflict in err's chain, or Internal when there is none.
func KindOf(err error) Kind {
	if k := classified(err); k != nil {
		return k.kind()
	}
	return Internal
}

// Classified returns the error whose kind KindOf reports: the outermost
// *Error, *ValidationError or *VersionConflict in err's chain, or nil. An
// edge that shows more than the kind (a message, fields, a version) reads
// them from this one, so that what it shows and the kind agree.
func Classified(err error) error {
	if k := classified(err); k != nil {
		return k
	}
	return nil
}
