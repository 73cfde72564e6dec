package apigw

import (
	"encoding/json"
	"net/http"

	"github.com/dispatcher-dev/dispatcher/internal/dispatch"
)

// ProblemBase is where each problem type is documented (docs/problems.md).
const ProblemBase = "https://github.com/dispatcher-dev/dispatcher/blob/main/docs/problems.md#"

// Problem is an RFC 9457 problem details body.
type Problem struct {
	Type           string                `json:"type"`
	Title          string                `json:"title"`
	Status         int                   `json:"status"`
	Detail         string                `json:"detail,omitempty"`
	Errors         []dispatch.FieldError `json:"errors,omitempty"`
	CurrentVersion *int64                `json:"currentVersion,omitempty"`
	RequestID      string                `json:"requestId,omitempty"`
	slug           string                // the problem type's short name: the log's and the metric's Reason
}

// problemType is one row of docs/problems.md.
type problemType struct {
	status      int
	slug, title string
	// private: the error's message is not shown; it may name tables,
	// queues or causes. The caller gets the request id instead (Handle).
	private bool
}

var internalProblem = problemType{http.StatusInternalServerError, "internal", "Internal error", true}

// problemTypes is the one place where an error's kind becomes an HTTP
// status and a problem type. A kind not listed (Internal, and the relay's
// Permanent and AccountWide, which no command returns) is internal.
var problemTypes = map[dispatch.Kind]problemType{
	dispatch.Invalid:       {http.StatusBadRequest, "validation-error", "The request is not valid", false},
	dispatch.Unauthorized:  {http.StatusUnauthorized, "unauthorized", "Authentication failed", false},
	dispatch.NotFound:      {http.StatusNotFound, "not-found", "Not found", false},
	dispatch.Conflict:      {http.StatusConflict, "conflict", "The command conflicts with the current state", false},
	dispatch.Stale:         {http.StatusConflict, "version-conflict", "The aggregate is at another version", false},
	dispatch.Unprocessable: {http.StatusUnprocessableEntity, "refused", "Command refused", false},
	dispatch.TooLarge:      {http.StatusRequestEntityTooLarge, "too-large", "The request exceeds a limit", false},
	dispatch.Transient:     {http.StatusServiceUnavailable, "unavailable", "Temporarily unavailable; retry with the same Idempotency-Key", true},
	dispatch.Forbidden:     {http.StatusForbidden, "forbidden", "The caller is not granted this", false},
	dispatch.Throttled:     {http.StatusTooManyRequests, "rate-limited", "Too many requests from this caller", false},
}

// The problems of HTTP itself, which no domain error has: the route and the
// media type are the edge's business.
var (
	noRouteProblem   = problemType{http.StatusNotFound, "not-found", "No such route", false}
	mediaTypeProblem = problemType{http.StatusUnsupportedMediaType, "unsupported-media-type", "Unsupported media type", false}
)

// edgeProblems are the problem types that no kind maps to; with
// problemTypes they are every problem the handler answers (TestOpenAPI).
var edgeProblems = []problemType{internalProblem, noRouteProblem, mediaTypeProblem}

func typeOf(k dispatch.Kind) problemType {
	if t, ok := problemTypes[k]; ok {
		return t
	}
	return internalProblem
}

func (t problemType) problem(detail string) Problem {
	return Problem{Type: ProblemBase + t.slug, Title: t.title, Status: t.status, Detail: detail, slug: t.slug}
}

// problemFor maps an error to its problem: its kind chooses the type, and
// only what the domain wrote for callers is shown (a message, the fields,
// the current version); the cause never is.
func problemFor(err error) Problem {
	c := dispatch.Classified(err)
	t := typeOf(dispatch.KindOf(c))
	p := t.problem("")
	if t.private {
		return p
	}
	switch e := c.(type) {
	case *dispatch.ValidationError:
		p.Errors = e.Fields
		if len(e.Fields) == 1 {
			p.Detail = e.Error()
		}
	case *dispatch.VersionConflict:
		p.Detail = e.Msg
		cur := e.Current
		p.CurrentVersion = &cur
	case *dispatch.Error:
		p.Detail = e.Msg
	}
	return p
}

func (p Problem) body() string {
	b, _ := json.Marshal(p)
	return string(b)
}
