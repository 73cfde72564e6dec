package ses

import (
	"errors"
	"regexp"
	"strings"

	"github.com/aws/smithy-go"

	"github.com/dispatcher-dev/dispatcher/internal/awserr"
	"github.com/dispatcher-dev/dispatcher/internal/dispatch"
)

// codeKinds classifies SES v2 error codes; the codes every AWS service
// shares (server failures, credentials) are awserr's.
//
//   - Permanent: SES refuses this email (its content, its sender's domain,
//     a missing configuration set, identity or template, an invalid
//     address); sending it again cannot help.
//   - Transient: throttling and quotas, server-side failures, expired
//     credentials. TooManyRequestsException is the sending rate;
//     LimitExceededException (and the SES v1 style ThrottlingException) may
//     carry "Daily message quota exceeded", a 24-hour quota that no backoff
//     within an invocation will outlast: still Transient (it clears by
//     itself), but Msg then says "(daily quota)" so the edge can tell.
//   - AccountWide: the account cannot send at all (sending paused, account
//     suspended, credentials refused): stop, retry nothing.
var codeKinds = map[string]dispatch.Kind{
	"MessageRejected":                    dispatch.Permanent,
	"MailFromDomainNotVerifiedException": dispatch.Permanent,
	"NotFoundException":                  dispatch.Permanent,
	"BadRequestException":                dispatch.Permanent,

	"TooManyRequestsException":        dispatch.Transient,
	"LimitExceededException":          dispatch.Transient,
	"ThrottlingException":             dispatch.Transient,
	"Throttling":                      dispatch.Transient,
	"InternalServiceErrorException":   dispatch.Transient,
	"ConcurrentModificationException": dispatch.Transient,

	"SendingPausedException":    dispatch.AccountWide,
	"AccountSuspendedException": dispatch.AccountWide,
}

// classify turns an SES error into a *dispatch.Error whose Msg is log-safe:
// an AWS error code, "HTTP <status>", or a word for a transport failure;
// never SES's message, which may quote addresses. An unknown code goes by
// its HTTP status: 429 and 5xx are Transient, other 4xx Permanent. Anything
// that never got an answer (timeout, reset, refused) is Transient: the email
// may or may not have been accepted.
func classify(op string, err error) *dispatch.Error {
	err = redacted{err}
	var ae smithy.APIError
	isAPI := errors.As(err, &ae)
	if isAPI {
		code := ae.ErrorCode()
		if kind, ok := codeKinds[code]; ok {
			if kind == dispatch.Transient && strings.Contains(strings.ToLower(ae.ErrorMessage()), "daily message quota") {
				code += " (daily quota)"
			}
			return dispatch.E(op, kind, code, err)
		}
	}
	return awserr.Classify(op, err)
}

// redacted hides email addresses in an SES error's text (MessageRejected
// quotes the identities that failed its check), since the cause ends up in
// logs and DLQ messages. errors.As and errors.Is still see the SDK error.
type redacted struct{ err error }

var address = regexp.MustCompile(`[^\s@<>()"',;:]+@[^\s@<>()"',;:]+`)

func (r redacted) Error() string { return address.ReplaceAllString(r.err.Error(), "<address>") }
func (r redacted) Unwrap() error { return r.err }
