package apigw

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"os"
	"strconv"
	"strings"
	"testing"

	"github.com/aws/aws-lambda-go/events"
	"github.com/aws/aws-lambda-go/lambdacontext"

	"github.com/dispatcher-dev/dispatcher/internal/command"
	"github.com/dispatcher-dev/dispatcher/internal/dispatch"
	"github.com/dispatcher-dev/dispatcher/internal/obs"
)

func TestEveryKindMapsToOneStatus(t *testing.T) {
	tests := []struct {
		kind   dispatch.Kind
		status int
		slug   string
	}{
		{dispatch.Internal, 500, "internal"},
		{dispatch.Invalid, 400, "validation-error"},
		{dispatch.Unauthorized, 401, "unauthorized"},
		{dispatch.NotFound, 404, "not-found"},
		{dispatch.Conflict, 409, "conflict"},
		{dispatch.Unprocessable, 422, "refused"},
		{dispatch.TooLarge, 413, "too-large"},
		{dispatch.Transient, 503, "unavailable"},
		{dispatch.Permanent, 500, "internal"},
		{dispatch.AccountWide, 500, "internal"},
		{dispatch.Stale, 409, "version-conflict"},
		{dispatch.Forbidden, 403, "forbidden"},
		{dispatch.Throttled, 429, "rate-limited"},
		{dispatch.Kind(200), 500, "internal"},
	}
	for _, tt := range tests {
		t.Run(fmt.Sprintf("maps %v to %d %s", tt.kind, tt.status, tt.slug), func(t *testing.T) {
			got := typeOf(tt.kind)
			if got.status != tt.status || got.slug != tt.slug || got.title == "" {
				t.Errorf("typeOf(%v) = %+v, want %d %s", tt.kind, got, tt.status, tt.slug)
			}
			if got.private != (tt.status >= 500) {
				t.Errorf("typeOf(%v) private = %v: a 5xx shows no message, a 4xx shows its own", tt.kind, got.private)
			}
		})
	}
	// A kind added to dispatch must be mapped on purpose: every named kind is
	// in the table above.
	tested := map[dispatch.Kind]bool{}
	for _, tt := range tests {
		tested[tt.kind] = true
	}
	for k := dispatch.Kind(0); !strings.HasPrefix(k.String(), "kind("); k++ {
		if !tested[k] {
			t.Errorf("kind %v is not in this test", k)
		}
	}
}

func TestEveryProblemTypeIsDocumented(t *testing.T) {
	doc, err := os.ReadFile("../../docs/problems.md")
	if err != nil {
		t.Fatal(err)
	}
	types := []problemType{internalProblem, noRouteProblem, mediaTypeProblem}
	for _, pt := range problemTypes {
		types = append(types, pt)
	}
	for _, pt := range types {
		if !strings.Contains(string(doc), "\n## "+pt.slug+"\n"+strconv.Itoa(pt.status)+".") &&
			!strings.Contains(string(doc), "\n## "+pt.slug+"\n"+strconv.Itoa(pt.status)+" ") {
			t.Errorf("docs/problems.md has no section \"## %s\" starting with %d", pt.slug, pt.status)
		}
	}
}

// The bodies are pinned byte for byte: clients parse them, and docs/problems.md
// documents them.
func TestProblemForBodies(t *testing.T) {
	const base = `{"type":"https://github.com/dispatcher-dev/dispatcher/blob/main/docs/problems.md#`
	cause := errors.New("ResourceNotFoundException: no-such-table")
	tests := []struct {
		name string
		err  error
		want string
	}{
		{"shows one invalid field with its detail", dispatch.InvalidField("data.amount", "must be a whole number"),
			base + `validation-error","title":"The request is not valid","status":400,"detail":"validation: data.amount: must be a whole number","errors":[{"field":"data.amount","message":"must be a whole number"}]}`},
		{"shows several invalid fields without a detail", &dispatch.ValidationError{Kind: dispatch.Invalid, Fields: []dispatch.FieldError{{Field: "type", Message: "is required"}, {Field: "data", Message: "is required"}}},
			base + `validation-error","title":"The request is not valid","status":400,"errors":[{"field":"type","message":"is required"},{"field":"data","message":"is required"}]}`},
		{"shows a refused field as 422", dispatch.UnprocessableField("data.currency", "the account is in EUR"),
			base + `refused","title":"Command refused","status":422,"detail":"refused: data.currency: the account is in EUR","errors":[{"field":"data.currency","message":"the account is in EUR"}]}`},
		{"shows a version conflict with the current version", &dispatch.VersionConflict{Current: 2, Msg: "expected version 1, the aggregate is at version 2"},
			base + `version-conflict","title":"The aggregate is at another version","status":409,"detail":"expected version 1, the aggregate is at version 2","currentVersion":2}`},
		{"shows current version 0 of a missing aggregate", fmt.Errorf("wrapped: %w", &dispatch.VersionConflict{Current: 0, Msg: "expected version 3, the aggregate is at version 0"}),
			base + `version-conflict","title":"The aggregate is at another version","status":409,"detail":"expected version 3, the aggregate is at version 0","currentVersion":0}`},
		{"shows an invalid request's message", dispatch.E("apigw", dispatch.Invalid, "the body is not valid base64", cause),
			base + `validation-error","title":"The request is not valid","status":400,"detail":"the body is not valid base64"}`},
		{"shows why authentication failed", dispatch.E("webhook.Verify", dispatch.Unauthorized, "the signature does not match", nil),
			base + `unauthorized","title":"Authentication failed","status":401,"detail":"the signature does not match"}`},
		{"shows what was not found, through wrapping", fmt.Errorf("load: %w", dispatch.E("DepositFunds", dispatch.NotFound, "no account acct-1", nil)),
			base + `not-found","title":"Not found","status":404,"detail":"no account acct-1"}`},
		{"shows a conflict with the state", dispatch.E("OpenAccount", dispatch.Conflict, "the account is already open", nil),
			base + `conflict","title":"The command conflicts with the current state","status":409,"detail":"the account is already open"}`},
		{"shows a domain refusal as 422", dispatch.E("WithdrawFunds", dispatch.Unprocessable, "insufficient funds", nil),
			base + `refused","title":"Command refused","status":422,"detail":"insufficient funds"}`},
		{"shows which limit was exceeded", dispatch.E("command.render", dispatch.TooLarge, "email 0: too large", cause),
			base + `too-large","title":"The request exceeds a limit","status":413,"detail":"email 0: too large"}`},
		{"hides a transient error's message", dispatch.E("command.Execute", dispatch.Transient, "throttled on table x", cause),
			base + `unavailable","title":"Temporarily unavailable; retry with the same Idempotency-Key","status":503}`},
		{"hides an internal error's message", dispatch.E("command.render", dispatch.Internal, "template bug", cause),
			base + `internal","title":"Internal error","status":500}`},
		{"hides a permanent delivery error as internal", dispatch.E("ses.Send", dispatch.Permanent, "rejected", cause),
			base + `internal","title":"Internal error","status":500}`},
		{"hides an account-wide delivery error as internal", dispatch.E("ses.Send", dispatch.AccountWide, "sending paused", cause),
			base + `internal","title":"Internal error","status":500}`},
		{"hides an unclassified error", cause,
			base + `internal","title":"Internal error","status":500}`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := problemFor(tt.err).body(); got != tt.want {
				t.Errorf("body\n got %s\nwant %s", got, tt.want)
			}
		})
	}
}

type execFunc func(ctx context.Context, req command.Request) (command.Result, error)

func (f execFunc) Execute(ctx context.Context, req command.Request) (command.Result, error) {
	return f(ctx, req)
}

// The problems the handler answers itself, and what it adds to a 5xx: the
// request id, and nothing of the cause.
func TestHandlerProblemBodies(t *testing.T) {
	const base = `{"type":"https://github.com/dispatcher-dev/dispatcher/blob/main/docs/problems.md#`
	iam := func(r *events.APIGatewayV2HTTPRequest) {
		r.RequestContext.Authorizer = &events.APIGatewayV2HTTPRequestContextAuthorizerDescription{
			IAM: &events.APIGatewayV2HTTPRequestContextAuthorizerIAMDescription{UserARN: "arn:aws:iam::123456789012:user/ci"},
		}
	}
	post := func(body string, edits ...func(*events.APIGatewayV2HTTPRequest)) events.APIGatewayV2HTTPRequest {
		r := events.APIGatewayV2HTTPRequest{
			RouteKey: RouteCommands, RawPath: "/v1/commands", Body: body,
			Headers: map[string]string{"content-type": "application/json", "idempotency-key": "k-1"},
		}
		r.RequestContext.HTTP.Method = http.MethodPost
		iam(&r)
		for _, e := range edits {
			e(&r)
		}
		return r
	}
	fails := func(err error) Executor {
		return execFunc(func(context.Context, command.Request) (command.Result, error) { return command.Result{}, err })
	}
	secret := errors.New("ResourceNotFoundException: no-such-table")
	tests := []struct {
		name       string
		exec       Executor
		req        events.APIGatewayV2HTTPRequest
		wantStatus int
		want       string
	}{
		{"answers 500 with only the request id to an unknown error", fails(secret), post(`{}`), 500,
			base + `internal","title":"Internal error","status":500,"requestId":"req-1"}`},
		{"answers 503 with only the request id to a transient error", fails(dispatch.E("command.Execute", dispatch.Transient, "throttled", secret)), post(`{}`), 503,
			base + `unavailable","title":"Temporarily unavailable; retry with the same Idempotency-Key","status":503,"requestId":"req-1"}`},
		{"refuses a body over the limit", nil, post(strings.Repeat("x", dispatch.MaxBodyBytes+1)), 413,
			base + `too-large","title":"The request exceeds a limit","status":413,"detail":"the body exceeds 262144 bytes"}`},
		{"refuses a body that is not base64", nil, post("%%%", func(r *events.APIGatewayV2HTTPRequest) { r.IsBase64Encoded = true }), 400,
			base + `validation-error","title":"The request is not valid","status":400,"detail":"the body is not valid base64"}`},
		{"refuses an unknown route", nil, post(`{}`, func(r *events.APIGatewayV2HTTPRequest) { r.RouteKey, r.RawPath = "POST /v1/other", "/v1/other" }), 404,
			base + `not-found","title":"No such route","status":404,"detail":"POST /v1/other"}`},
		{"refuses a command without Content-Type", nil, post(`{}`, func(r *events.APIGatewayV2HTTPRequest) { delete(r.Headers, "content-type") }), 415,
			base + `unsupported-media-type","title":"Unsupported media type","status":415,"detail":"a command needs Content-Type: application/json"}`},
		{"refuses a command without a key", nil, post(`{}`, func(r *events.APIGatewayV2HTTPRequest) { delete(r.Headers, "idempotency-key") }), 400,
			base + `validation-error","title":"The request is not valid","status":400,"detail":"validation: Idempotency-Key: is required on POST (or a webhook-id)","errors":[{"field":"Idempotency-Key","message":"is required on POST (or a webhook-id)"}]}`},
		{"refuses a caller that IAM did not authorize", nil, post(`{}`, func(r *events.APIGatewayV2HTTPRequest) { r.RequestContext.Authorizer = nil }), 401,
			base + `unauthorized","title":"Authentication failed","status":401,"detail":"this API accepts only callers that API Gateway authorized with IAM (SigV4)"}`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			h := New(tt.exec, nil, iamOnly(t), slog.New(slog.DiscardHandler), obs.NewMetrics(io.Discard, "Dispatcher"))
			ctx := lambdacontext.NewContext(context.Background(), &lambdacontext.LambdaContext{AwsRequestID: "req-1"})
			resp, err := h.Handle(ctx, tt.req)
			if err != nil {
				t.Fatal(err)
			}
			if resp.StatusCode != tt.wantStatus || resp.Body != tt.want {
				t.Errorf("got %d %s\nwant %d %s", resp.StatusCode, resp.Body, tt.wantStatus, tt.want)
			}
		})
	}
}
