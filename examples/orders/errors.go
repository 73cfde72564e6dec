package orders

import "errors"

// Kind says what an error means to the caller; the Lambda's handler turns
// it into a status.
type Kind uint8

// The kinds. Zero is Internal: an error nobody classified.
const (
	Internal      Kind = iota // DynamoDB failed: 500, logged
	Invalid                   // bad input; nothing written: 400
	AlreadyPlaced             // the order exists; nothing written: 409
	Conflict                  // the order changed since it was read, or its version was written by another change; nothing written: 409
)

func (k Kind) explain(orderID string) string {
	if k == AlreadyPlaced {
		return "order " + orderID + " is already placed"
	}
	return "order " + orderID + " is not at the version read (changed since, or never placed)"
}

// Error is an error of the service: the operation, its kind, a message safe
// to show the caller and the cause, for logs.
type Error struct {
	Op   string
	Kind Kind
	Msg  string
	Err  error
}

func (e *Error) Error() string {
	s := e.Op
	if e.Msg != "" {
		s += ": " + e.Msg
	}
	if e.Err != nil {
		s += ": " + e.Err.Error()
	}
	return s
}

func (e *Error) Unwrap() error { return e.Err }

// KindOf returns the kind of err: Internal unless it is an *Error.
func KindOf(err error) Kind {
	var e *Error
	if errors.As(err, &e) {
		return e.Kind
	}
	return Internal
}
