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
	Conflict                  // version mismatch: 409
	Unprocessable             // well-formed but refused by the domain: 422
	TooLarge                  // a named limit exceeded: 413
	Transient                 // throttling, 5xx, timeout: retry with backoff
	Permanent                 // the target refuses this item for good: mark FAILED, park in the DLQ
	AccountWide               // sending paused or account suspended: stop the batch, retry nothing
)

var kindNames = [...]string{"internal", "invalid", "unauthorized", "not found", "conflict", "unprocessable", "too large", "transient", "permanent", "account-wide"}

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

// KindOf returns the kind of the outermost *Error in err's chain, or
// Internal when there is none.
func KindOf(err error) Kind {
	var e *Error
	if errors.As(err, &e) {
		return e.Kind
	}
	return Internal
}
