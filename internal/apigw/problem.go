package apigw

import (
	"encoding/json"
	"errors"
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
	slug           string
}

// Slug is the problem type's short name (the metric's Reason).
func (p Problem) Slug() string { return p.slug }

func problem(status int, slug, title, detail string) Problem {
	return Problem{Type: ProblemBase + slug, Title: title, Status: status, Detail: detail, slug: slug}
}

// problemFor maps an error to its problem. Only the messages the domain
// wrote for callers are shown; the cause of an internal error never is.
func problemFor(err error) Problem {
	var ve *dispatch.ValidationError
	var vc *dispatch.VersionConflict
	var de *dispatch.Error
	switch {
	case errors.As(err, &ve):
		p := problem(http.StatusBadRequest, "validation-error", "The request is not valid", "")
		if ve.Kind == dispatch.Unprocessable {
			p = problem(http.StatusUnprocessableEntity, "unprocessable", "The command cannot be applied", "")
		}
		p.Errors = ve.Fields
		if len(ve.Fields) == 1 {
			p.Detail = ve.Error()
		}
		return p
	case errors.As(err, &vc):
		p := problem(http.StatusConflict, "version-conflict", "The aggregate is at another version", vc.Msg)
		cur := vc.Current
		p.CurrentVersion = &cur
		return p
	case errors.As(err, &de):
		switch de.Kind {
		case dispatch.Invalid:
			return problem(http.StatusBadRequest, "validation-error", "The request is not valid", de.Msg)
		case dispatch.Unauthorized:
			return problem(http.StatusUnauthorized, "unauthorized", "Authentication failed", de.Msg)
		case dispatch.NotFound:
			return problem(http.StatusNotFound, "not-found", "Not found", de.Msg)
		case dispatch.Conflict:
			return problem(http.StatusConflict, "conflict", "The command conflicts with the current state", de.Msg)
		case dispatch.Unprocessable:
			return problem(http.StatusUnprocessableEntity, "unprocessable", "The command cannot be applied", de.Msg)
		case dispatch.TooLarge:
			return problem(http.StatusRequestEntityTooLarge, "too-large", "The request exceeds a limit", de.Msg)
		case dispatch.Transient:
			return problem(http.StatusServiceUnavailable, "unavailable", "Temporarily unavailable; retry with the same Idempotency-Key", "")
		}
	}
	return problem(http.StatusInternalServerError, "internal", "Internal error", "")
}

func (p Problem) body() string {
	b, _ := json.Marshal(p)
	return string(b)
}
