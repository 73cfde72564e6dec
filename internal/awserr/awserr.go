// Package awserr classifies what an AWS SDK error says when no service-
// specific code decides it: an HTTP status, a timeout, a network failure,
// an unreadable answer. The SQS and SES adapters look their own error codes
// up first and fall back to this, so the generic rules live in one place.
package awserr

import (
	"context"
	"errors"
	"net"
	"strconv"

	"github.com/aws/smithy-go"

	"github.com/dispatcher-dev/dispatcher/internal/dispatch"
)

// commonKinds are the error codes every AWS service may answer with:
// server-side failures and expired credentials (Transient: the same request
// can succeed later; the SDK refreshes credentials), and refused credentials
// or access (AccountWide: nothing will succeed until an operator acts).
var commonKinds = map[string]dispatch.Kind{
	"InternalError":           dispatch.Transient,
	"InternalFailure":         dispatch.Transient,
	"ServiceUnavailable":      dispatch.Transient,
	"RequestTimeout":          dispatch.Transient,
	"RequestTimeoutException": dispatch.Transient,
	"ExpiredToken":            dispatch.Transient,
	"ExpiredTokenException":   dispatch.Transient,
	"RequestExpired":          dispatch.Transient,

	"AccessDenied":                dispatch.AccountWide,
	"AccessDeniedException":       dispatch.AccountWide,
	"InvalidClientTokenId":        dispatch.AccountWide,
	"UnrecognizedClientException": dispatch.AccountWide,
	"SignatureDoesNotMatch":       dispatch.AccountWide,
	"IncompleteSignature":         dispatch.AccountWide,
	"MissingAuthenticationToken":  dispatch.AccountWide,
	"OptInRequired":               dispatch.AccountWide,
}

// Classify sorts an error that no service code table matched: first the
// codes common to AWS services, then by HTTP status, then by what went
// wrong on the way.
func Classify(op string, err error) *dispatch.Error {
	var ae smithy.APIError
	isAPI := errors.As(err, &ae)
	if isAPI {
		if kind, ok := commonKinds[ae.ErrorCode()]; ok {
			return dispatch.E(op, kind, ae.ErrorCode(), err)
		}
	}
	var resp interface{ HTTPStatusCode() int }
	if errors.As(err, &resp) && resp.HTTPStatusCode() >= 400 {
		status := resp.HTTPStatusCode()
		msg := "HTTP " + strconv.Itoa(status)
		if isAPI && ae.ErrorCode() != "" && ae.ErrorCode() != "UnknownError" {
			msg = ae.ErrorCode()
		}
		if status == 408 || status == 429 || status >= 500 {
			return dispatch.E(op, dispatch.Transient, msg, err)
		}
		return dispatch.E(op, dispatch.Permanent, msg, err)
	}
	var netErr net.Error
	var invalid smithy.InvalidParamsError
	var unreadable *smithy.DeserializationError
	switch {
	case errors.Is(err, context.DeadlineExceeded) || errors.As(err, &netErr) && netErr.Timeout():
		return dispatch.E(op, dispatch.Transient, "Timeout", err)
	case errors.Is(err, context.Canceled):
		return dispatch.E(op, dispatch.Transient, "Canceled", err)
	case errors.As(err, &invalid):
		// The SDK's own check of required fields: the adapter built an
		// incomplete request, a bug.
		return dispatch.E(op, dispatch.Internal, "InvalidParams", err)
	case errors.As(err, &unreadable):
		// An answer came but could not be read: the call may have applied.
		return dispatch.E(op, dispatch.Transient, "ResponseUnreadable", err)
	case isAPI:
		return dispatch.E(op, dispatch.Transient, ae.ErrorCode(), err)
	default:
		return dispatch.E(op, dispatch.Transient, "Network", err)
	}
}
