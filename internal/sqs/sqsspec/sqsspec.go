// Package sqsspec is what SQS allows and what its error codes mean, apart
// from the SDK client: the SQS adapter (internal/sqs) and the command
// function's one signed SendMessage (internal/sqs/signed) classify alike.
package sqsspec

import (
	"errors"
	"fmt"
	"strings"
	"unicode/utf8"

	"github.com/aws/smithy-go"

	"github.com/dispatcher-dev/dispatcher/internal/awserr"
	"github.com/dispatcher-dev/dispatcher/internal/dispatch"
)

// MaxMessageBytes is the size the SQS adapter holds each message and each
// batch's total to: 256 KiB, SQS's limit until 2025 and still the
// MaximumMessageSize of a queue created with it set so.
const MaxMessageBytes = 262144

// MaxQueueMessageBytes is the most SQS takes in one message on any queue
// (the ceiling of a queue's MaximumMessageSize, and its default, since
// 2025): 1 MiB. A queue may be set to take less; SQS refuses a longer
// message with InvalidParameterValue.
const MaxQueueMessageBytes = 1 << 20

// TooLong is the Permanent error of op for a message of size bytes that is
// over limit, or nil when it is within it.
func TooLong(op string, size, limit int) error {
	if size <= limit {
		return nil
	}
	return dispatch.E(op, dispatch.Permanent, "MessageTooLong",
		fmt.Errorf("message of %d bytes (body and attributes) exceeds %d", size, limit))
}

// Size is what SQS counts toward a message's size limit: the body and each
// attribute's name, data type and value.
func Size(m dispatch.QueueMessage) int {
	n := len(m.Body)
	for k, v := range m.Attributes {
		n += len(k) + len("String") + len(v)
	}
	return n
}

// ValidText reports whether SQS takes s as a message body or a String
// attribute value: only the characters #x9 | #xA | #xD | #x20 to #xD7FF |
// #xE000 to #xFFFD | #x10000 to #x10FFFF (XML's), as valid UTF-8; it
// refuses anything else with InvalidMessageContents. Valid JSON can hold
// two that it refuses, U+FFFE and U+FFFF, unescaped in a string.
func ValidText(s string) bool {
	for i, r := range s {
		switch {
		case r == utf8.RuneError:
			if _, n := utf8.DecodeRuneInString(s[i:]); n == 1 {
				return false // a byte that is not UTF-8 (U+FFFD itself is allowed)
			}
		case r == 0x9 || r == 0xA || r == 0xD:
		case r < 0x20 || r == 0xFFFE || r == 0xFFFF:
			return false
		}
	}
	return true
}

// codeKinds classifies SQS error codes. SQS speaks the JSON protocol in
// "query-compatible" mode: the SDK reports the legacy code from the
// x-amzn-query-error header when there is one (QueueDoesNotExist arrives as
// "AWS.SimpleQueueService.NonExistentQueue", KmsDisabled as
// "KMS.DisabledException"), so both spellings are listed; the
// "AWS.SimpleQueueService." prefix is dropped before the lookup (Kind).
//
//   - Transient: throttling, server-side failures and expired credentials;
//     the same request can succeed later.
//   - Permanent: this message is refused as it is (invalid characters,
//     parameters or attributes); sending it again cannot help.
//   - AccountWide: the queue itself refuses everything (it does not exist,
//     its KMS key is unusable, the credentials lack access): every message
//     would fail the same way until an operator fixes the configuration, so
//     the caller should stop rather than park each message.
//   - Internal: this adapter built a bad batch (too many entries, ids not
//     distinct, over the size limit); a bug here, not a bad message.
var codeKinds = map[string]dispatch.Kind{
	// Throttling. KmsThrottled is KMS throttling SQS's data key requests.
	"RequestThrottled":         dispatch.Transient,
	"ThrottlingException":      dispatch.Transient,
	"Throttling":               dispatch.Transient,
	"TooManyRequestsException": dispatch.Transient,
	"KmsThrottled":             dispatch.Transient,
	"KMS.ThrottlingException":  dispatch.Transient,
	// OverLimit is a count limit (in-flight messages, permissions) that
	// frees up as consumers drain; SQS does not list it for sends.
	"OverLimit": dispatch.Transient,
	// Server-side failures and credentials: see awserr (common to every service).
	"InvalidMessageContents":      dispatch.Permanent,
	"InvalidParameterValue":       dispatch.Permanent,
	"InvalidParameterCombination": dispatch.Permanent,
	"MissingParameter":            dispatch.Permanent,
	"InvalidAttributeName":        dispatch.Permanent,
	"InvalidAttributeValue":       dispatch.Permanent,
	"MessageTooLong":              dispatch.Permanent,
	// A parameter the queue type does not support (such as a per-message
	// delay on a FIFO queue).
	"UnsupportedOperation": dispatch.Permanent,

	// The queue refuses everything.
	"QueueDoesNotExist":            dispatch.AccountWide,
	"NonExistentQueue":             dispatch.AccountWide, // its legacy code
	"InvalidAddress":               dispatch.AccountWide, // the queue URL's account id
	"InvalidSecurity":              dispatch.AccountWide, // not HTTPS or not SigV4
	"KmsAccessDenied":              dispatch.AccountWide,
	"KMS.AccessDeniedException":    dispatch.AccountWide,
	"KmsDisabled":                  dispatch.AccountWide,
	"KMS.DisabledException":        dispatch.AccountWide,
	"KmsInvalidKeyUsage":           dispatch.AccountWide,
	"KMS.InvalidKeyUsageException": dispatch.AccountWide,
	"KmsInvalidState":              dispatch.AccountWide,
	"KMS.InvalidStateException":    dispatch.AccountWide,
	"KmsNotFound":                  dispatch.AccountWide,
	"KMS.NotFoundException":        dispatch.AccountWide,
	"KmsOptInRequired":             dispatch.AccountWide,
	"KMS.OptInRequired":            dispatch.AccountWide,
	"TooManyEntriesInBatchRequest": dispatch.Internal,
	"EmptyBatchRequest":            dispatch.Internal,
	"BatchEntryIdsNotDistinct":     dispatch.Internal,
	"InvalidBatchEntryId":          dispatch.Internal,
	"BatchRequestTooLong":          dispatch.Internal,
}

// Kind looks code up in codeKinds, with or without SQS's legacy prefix.
func Kind(code string) (dispatch.Kind, bool) {
	if kind, ok := codeKinds[code]; ok {
		return kind, true
	}
	kind, ok := codeKinds[strings.TrimPrefix(code, "AWS.SimpleQueueService.")]
	return kind, ok
}

// Classify turns an error of a whole SQS call into a *dispatch.Error whose
// Msg is log-safe: an AWS error code, "HTTP <status>", or a word for a
// transport failure. An unknown code goes by its HTTP status: 429 and 5xx
// are Transient, other 4xx Permanent. Anything that never got an answer
// (timeout, reset, refused) is Transient: the send may or may not have
// applied, and a retry with the same dedup id is safe.
func Classify(op string, err error) *dispatch.Error {
	var ae smithy.APIError
	isAPI := errors.As(err, &ae)
	if isAPI {
		if kind, ok := Kind(ae.ErrorCode()); ok {
			return dispatch.E(op, kind, ae.ErrorCode(), err)
		}
	}
	return awserr.Classify(op, err)
}
