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
		{"finds an invalid field", InvalidField("data.amount", "must be positive"), Invalid},
		{"finds an unprocessable field through wrapping", fmt.Errorf("render: %w", UnprocessableField("data.emails[0].template", "unknown")), Unprocessable},
		{"treats fields without a kind as invalid", &ValidationError{Fields: []FieldError{{"type", "is required"}}}, Invalid},
		{"finds a version conflict as stale", fmt.Errorf("commit: %w", &VersionConflict{Current: 3, Msg: "expected 2"}), Stale},
		{"takes the outermost kind when kinds nest", E("command.Execute", Transient, "", &VersionConflict{Current: 3}), Transient},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := KindOf(tt.err); got != tt.want {
				t.Errorf("KindOf = %v, want %v", got, tt.want)
			}
		})
	}
}

func TestClassifiedIsWhatKindOfReads(t *testing.T) {
	vc := &VersionConflict{Current: 3, Msg: "expected version 2, the aggregate is at version 3"}
	outer := E("command.Execute", Transient, "", vc)
	tests := []struct {
		name string
		err  error
		want error
	}{
		{"returns the version conflict inside a plain wrapper", fmt.Errorf("attempt 2: %w", vc), vc},
		{"returns the outermost of nested kinded errors", fmt.Errorf("x: %w", outer), outer},
		{"returns nil for an unclassified error", errors.New("boom"), nil},
		{"returns nil for nil", nil, nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := Classified(tt.err); got != tt.want {
				t.Errorf("Classified = %v, want %v", got, tt.want)
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
	if got := Stale.String(); got != "stale" {
		t.Errorf("Stale prints %q", got)
	}
	if got := Kind(200).String(); got != "kind(200)" {
		t.Errorf("unknown kind prints %q", got)
	}
}
