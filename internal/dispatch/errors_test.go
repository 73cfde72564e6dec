package dispatch

import (
	"errors"
	"fmt"
	"testing"
)

func TestKindOf(t *testing.T) {
	cause := errors.New("ThrottlingException")
	tests := []struct {
		name string
		err  error
		want Kind
	}{
		{"finds the kind of a direct error", E("relay.send", Transient, "", cause), Transient},
		{"finds the kind through wrapping", fmt.Errorf("batch 3: %w", E("relay.send", Permanent, "rejected", cause)), Permanent},
		{"treats an unclassified error as internal", cause, Internal},
		{"treats nil as internal", nil, Internal},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := KindOf(tt.err); got != tt.want {
				t.Errorf("KindOf = %v, want %v", got, tt.want)
			}
		})
	}
}

func TestErrorTextAndUnwrap(t *testing.T) {
	cause := errors.New("boom")
	err := E("command.decode", Invalid, "body is not JSON", cause)
	if got, want := err.Error(), "command.decode: invalid: body is not JSON: boom"; got != want {
		t.Errorf("Error() = %q, want %q", got, want)
	}
	if !errors.Is(err, cause) {
		t.Error("errors.Is does not reach the cause")
	}
	if got := Kind(200).String(); got != "kind(200)" {
		t.Errorf("unknown kind prints %q", got)
	}
}
