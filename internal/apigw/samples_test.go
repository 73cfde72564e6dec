package apigw_test

import (
	"encoding/json"
	"github.com/dispatcher-dev/dispatcher/internal/testkit/samples"
	"net/http"
	"strings"
	"testing"

	"github.com/aws/aws-lambda-go/events"

	"github.com/dispatcher-dev/dispatcher/internal/apigw"
)

// apiSamples are the real HTTP API (payload 2.0) samples of testdata/samples
// (see its README.md), each with what the command API must answer it as
// given. None carries a webhook signature, and none targets one of our
// routes. The only one API Gateway authorized with IAM is authenticated, so
// it gets past authentication to the route lookup: 404. Every other one is
// refused with 401 before any route lookup (its path is an unknown route, so
// a 404 would mean the route was looked up first).
var apiSamples = []struct {
	file   string
	status int
	slug   string
}{
	{"sam-apigateway-http-api-proxy.json", 401, "unauthorized"},                    // POST /path/to/resource, JWT authorizer, base64 body
	{"aws-lambda-go-apigw-v2-request-no-authorizer.json", 401, "unauthorized"},     // GET /
	{"aws-lambda-go-apigw-v2-request-jwt-authorizer.json", 401, "unauthorized"},    // GET /my/path
	{"aws-lambda-go-apigw-v2-request-lambda-authorizer.json", 401, "unauthorized"}, // GET /my/path
	{"aws-lambda-go-apigw-v2-request-iam.json", 404, "not-found"},                  // GET /my/path, IAM userArn: authenticated
}

func readSample(t *testing.T, file string) events.APIGatewayV2HTTPRequest {
	t.Helper()
	raw := samples.Read(t, file)
	var req events.APIGatewayV2HTTPRequest
	if err := json.Unmarshal(raw, &req); err != nil {
		t.Fatalf("decoding the sample as an APIGatewayV2HTTPRequest: %v", err)
	}
	if req.Version != "2.0" || req.RequestContext.HTTP.Method == "" {
		t.Fatalf("the sample is not an HTTP API 2.0 request: version %q, method %q", req.Version, req.RequestContext.HTTP.Method)
	}
	for k := range req.Headers {
		if strings.HasPrefix(strings.ToLower(k), "webhook-") {
			t.Fatalf("the sample carries a %s header: it must be unsigned", k)
		}
	}
	return req
}

// The table above and the samples folder must agree: a sample added without
// an expected outcome, or a table that lost its samples, fails.
func TestSamplesFolderMatchesTheTable(t *testing.T) {
	var names []string
	for _, s := range apiSamples {
		names = append(names, s.file)
	}
	samples.MatchFolder(t, names)
}

func checkProblem(t *testing.T, resp events.APIGatewayV2HTTPResponse, body map[string]any, status int, slug string) {
	t.Helper()
	if resp.StatusCode != status {
		t.Fatalf("status %d, want %d: %s", resp.StatusCode, status, resp.Body)
	}
	if typ, _ := body["type"].(string); typ != apigw.ProblemBase+slug || !strings.HasSuffix(typ, "#"+slug) {
		t.Errorf("problem type %q, want %s", body["type"], apigw.ProblemBase+slug)
	}
	if s, _ := body["status"].(float64); int(s) != status {
		t.Errorf("problem status %v, want %d", body["status"], status)
	}
	if title, _ := body["title"].(string); title == "" {
		t.Errorf("problem without a title: %s", resp.Body)
	}
	ct := resp.Headers["Content-Type"]
	if ct == "" {
		ct = resp.Headers["content-type"]
	}
	if !strings.HasPrefix(ct, "application/problem+json") {
		t.Errorf("content type %q, want application/problem+json", ct)
	}
}

// Each real HTTP API sample, as AWS and the SAM CLI generate it, is answered
// with an RFC 9457 problem: 401 unless API Gateway authorized it with IAM.
func TestSampleRequestsAreRefusedBeforeRouting(t *testing.T) {
	f := newFixture(t)
	for _, s := range apiSamples {
		t.Run(s.file, func(t *testing.T) {
			resp, body := f.do(readSample(t, s.file))
			checkProblem(t, resp, body, s.status, s.slug)
		})
	}
}

// Each sample turned into a command on the command route, still unsigned and
// not IAM-authorized, is refused with 401 and writes nothing.
func TestSampleRequestsSentAsCommandsWriteNothing(t *testing.T) {
	f := newFixture(t)
	asCommand := func(t *testing.T, file, id string) events.APIGatewayV2HTTPRequest {
		t.Helper()
		req := readSample(t, file)
		req.RouteKey, req.RequestContext.RouteKey = apigw.RouteCommands, apigw.RouteCommands
		req.RawPath, req.RequestContext.HTTP.Path, req.RequestContext.HTTP.Method = "/v1/commands", "/v1/commands", http.MethodPost
		req.Body, req.IsBase64Encoded = openAccount(id), false
		if req.Headers == nil {
			req.Headers = map[string]string{}
		}
		req.Headers["content-type"] = "application/json"
		req.Headers["idempotency-key"] = "sample-" + id
		return req
	}
	// The probe can see a write: the IAM sample, left IAM-authorized, applies.
	t.Run("control: the IAM sample applies", func(t *testing.T) {
		id := newID("sample-iam")
		if resp, _ := f.do(asCommand(t, "aws-lambda-go-apigw-v2-request-iam.json", id)); resp.StatusCode != http.StatusAccepted {
			t.Fatalf("status %d, want 202: %s", resp.StatusCode, resp.Body)
		}
		if f.count(id) == 0 {
			t.Fatalf("nothing written for aggregate %s: the probe cannot see writes", id)
		}
	})
	for _, s := range apiSamples {
		t.Run(s.file, func(t *testing.T) {
			id := newID("sample")
			req := asCommand(t, s.file, id)
			if a := req.RequestContext.Authorizer; a != nil {
				a.IAM = nil // only IAM authorizes; the others must not
			}
			resp, body := f.do(req)
			checkProblem(t, resp, body, 401, "unauthorized")
			if n := f.count(id); n != 0 {
				t.Errorf("%d items written for aggregate %s, want none", n, id)
			}
		})
	}
}
