package runner_test

import (
	"bytes"
	"context"
	"encoding/base64"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/aws/aws-lambda-go/events"

	"github.com/dispatcher-dev/dispatcher/internal/local/runner"
)

// capture is a command function that records the events it gets and
// answers with what answer returns.
type capture struct {
	mu     sync.Mutex
	events []events.APIGatewayV2HTTPRequest
	answer func(events.APIGatewayV2HTTPRequest) (events.APIGatewayV2HTTPResponse, error)
}

func (c *capture) fn() runner.Function {
	return funcOf(func(_ context.Context, ev events.APIGatewayV2HTTPRequest) (events.APIGatewayV2HTTPResponse, error) {
		c.mu.Lock()
		c.events = append(c.events, ev)
		c.mu.Unlock()
		if c.answer != nil {
			return c.answer(ev)
		}
		return events.APIGatewayV2HTTPResponse{StatusCode: 200, Body: `{"ok":true}`, Headers: map[string]string{"Content-Type": "application/json"}}, nil
	})
}

func (c *capture) last(t *testing.T) events.APIGatewayV2HTTPRequest {
	t.Helper()
	c.mu.Lock()
	defer c.mu.Unlock()
	if len(c.events) == 0 {
		t.Fatal("the function was not invoked")
	}
	return c.events[len(c.events)-1]
}

func (c *capture) count() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return len(c.events)
}

func noop() runner.Function {
	return funcOf(func(context.Context, events.DynamoDBEvent) (events.DynamoDBEventResponse, error) {
		return events.DynamoDBEventResponse{}, nil
	})
}

func TestAGetWithPathParametersBecomesAnAPIGatewayV2Event(t *testing.T) {
	c := &capture{}
	r := start(t, freshStack(t), map[string]runner.Function{"CommandFunction": c.fn(), "StreamRelayFunction": noop()}, nil)
	req, _ := http.NewRequest(http.MethodGet, r.URL()+"/v1/aggregates/acc-42/outbox?limit=5&x=1&x=2", nil)
	req.Header.Set("X-Custom", "A")
	req.Header.Add("X-Custom", "B")
	req.Header.Set("User-Agent", "runner-test/1")
	req.AddCookie(&http.Cookie{Name: "a", Value: "1"})
	req.AddCookie(&http.Cookie{Name: "b", Value: "2"})
	resp, body := do(t, req)
	if resp.StatusCode != 200 || string(body) != `{"ok":true}` || resp.Header.Get("Content-Type") != "application/json" {
		t.Fatalf("status %d %q %q", resp.StatusCode, resp.Header.Get("Content-Type"), body)
	}
	if resp.Header.Get("Apigw-Requestid") == "" {
		t.Error("no apigw-requestid response header")
	}
	ev := c.last(t)
	rc := ev.RequestContext
	checks := []struct {
		what      string
		got, want any
	}{
		{"version", ev.Version, "2.0"},
		{"routeKey", ev.RouteKey, "GET /v1/aggregates/{id}/outbox"},
		{"requestContext.routeKey", rc.RouteKey, "GET /v1/aggregates/{id}/outbox"},
		{"rawPath", ev.RawPath, "/v1/aggregates/acc-42/outbox"},
		{"rawQueryString", ev.RawQueryString, "limit=5&x=1&x=2"},
		{"pathParameters.id", ev.PathParameters["id"], "acc-42"},
		{"queryStringParameters.limit", ev.QueryStringParameters["limit"], "5"},
		{"queryStringParameters.x (repeated, comma-joined)", ev.QueryStringParameters["x"], "1,2"},
		{"headers are lower-cased and joined", ev.Headers["x-custom"], "A,B"},
		{"cookies leave the headers", ev.Headers["cookie"], ""},
		{"cookies", strings.Join(ev.Cookies, ";"), "a=1;b=2"},
		{"http.method", rc.HTTP.Method, "GET"},
		{"http.path", rc.HTTP.Path, "/v1/aggregates/acc-42/outbox"},
		{"http.protocol", rc.HTTP.Protocol, "HTTP/1.1"},
		{"http.sourceIp", rc.HTTP.SourceIP, "127.0.0.1"},
		{"http.userAgent", rc.HTTP.UserAgent, "runner-test/1"},
		{"stage", rc.Stage, "$default"},
		{"body", ev.Body, ""},
		{"isBase64Encoded", ev.IsBase64Encoded, false},
	}
	for _, c := range checks {
		if c.got != c.want {
			t.Errorf("%s = %#v, want %#v", c.what, c.got, c.want)
		}
	}
	if rc.RequestID == "" || rc.Time == "" || time.Since(time.UnixMilli(rc.TimeEpoch)) > time.Minute {
		t.Errorf("requestId %q, time %q, timeEpoch %d", rc.RequestID, rc.Time, rc.TimeEpoch)
	}
	if _, err := time.Parse("02/Jan/2006:15:04:05 -0700", rc.Time); err != nil {
		t.Errorf("time %q is not in API Gateway's format: %v", rc.Time, err)
	}
	// The other GET route, one segment shorter.
	resp, _ = do(t, mustReq(t, http.MethodGet, r.URL()+"/v1/aggregates/acc%2043", nil))
	if ev := c.last(t); resp.StatusCode != 200 || ev.RouteKey != "GET /v1/aggregates/{id}" || ev.PathParameters["id"] != "acc 43" || ev.RawPath != "/v1/aggregates/acc%2043" {
		t.Errorf("status %d route %q id %q rawPath %q", resp.StatusCode, ev.RouteKey, ev.PathParameters["id"], ev.RawPath)
	}
}

func mustReq(t *testing.T, method, url string, body []byte) *http.Request {
	t.Helper()
	req, err := http.NewRequest(method, url, bytes.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	return req
}

func TestBodiesArePassedAsTextOrBase64LikeAPIGateway(t *testing.T) {
	c := &capture{}
	r := start(t, freshStack(t), map[string]runner.Function{"CommandFunction": c.fn(), "StreamRelayFunction": noop()}, nil)
	tests := []struct {
		name, contentType string
		body              []byte
		wantB64           bool
	}{
		{"JSON stays text", "application/json; charset=utf-8", []byte(`{"a":"é"}`), false},
		{"text/plain stays text", "text/plain", []byte("hello"), false},
		{"octet-stream is base64", "application/octet-stream", []byte("hello"), true},
		{"invalid UTF-8 is base64 even as JSON", "application/json", []byte{0xff, 0xfe, '{'}, true},
		{"no content type is base64", "", []byte("x"), true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			req := mustReq(t, http.MethodPost, r.URL()+"/v1/commands", tt.body)
			if tt.contentType != "" {
				req.Header.Set("Content-Type", tt.contentType)
			}
			if resp, _ := do(t, req); resp.StatusCode != 200 {
				t.Fatalf("status %d", resp.StatusCode)
			}
			ev := c.last(t)
			if ev.IsBase64Encoded != tt.wantB64 {
				t.Fatalf("isBase64Encoded %t, want %t", ev.IsBase64Encoded, tt.wantB64)
			}
			got := []byte(ev.Body)
			if ev.IsBase64Encoded {
				var err error
				if got, err = base64.StdEncoding.DecodeString(ev.Body); err != nil {
					t.Fatal(err)
				}
			}
			if !bytes.Equal(got, tt.body) || ev.Headers["content-length"] != strconv.Itoa(len(tt.body)) {
				t.Errorf("body %q (content-length %s), want %q", got, ev.Headers["content-length"], tt.body)
			}
		})
	}
}

func TestTheResponseComesBackAsTheFunctionShapedIt(t *testing.T) {
	c := &capture{answer: func(ev events.APIGatewayV2HTTPRequest) (events.APIGatewayV2HTTPResponse, error) {
		return events.APIGatewayV2HTTPResponse{
			StatusCode: 202, Headers: map[string]string{"Location": "/v1/aggregates/x", "Content-Type": "image/png"},
			Cookies: []string{"s=1; Path=/"}, Body: base64.StdEncoding.EncodeToString([]byte{0x89, 'P', 'N', 'G'}), IsBase64Encoded: true,
		}, nil
	}}
	r := start(t, freshStack(t), map[string]runner.Function{"CommandFunction": c.fn(), "StreamRelayFunction": noop()}, nil)
	resp, body := do(t, mustReq(t, http.MethodPost, r.URL()+"/v1/commands", []byte("{}")))
	if resp.StatusCode != 202 || resp.Header.Get("Location") != "/v1/aggregates/x" || resp.Header.Get("Set-Cookie") != "s=1; Path=/" || !bytes.Equal(body, []byte{0x89, 'P', 'N', 'G'}) {
		t.Errorf("status %d headers %v body %q", resp.StatusCode, resp.Header, body)
	}
}

func TestAPIGatewayErrorsComeFromTheAPINotTheFunction(t *testing.T) {
	c := &capture{answer: func(ev events.APIGatewayV2HTTPRequest) (events.APIGatewayV2HTTPResponse, error) {
		if ev.Headers["x-fail"] != "" {
			return events.APIGatewayV2HTTPResponse{}, context.DeadlineExceeded
		}
		return events.APIGatewayV2HTTPResponse{StatusCode: 200}, nil
	}}
	r := start(t, freshStack(t), map[string]runner.Function{"CommandFunction": c.fn(), "StreamRelayFunction": noop()}, nil)
	failing := mustReq(t, http.MethodPost, r.URL()+"/v1/commands", []byte("{}"))
	failing.Header.Set("X-Fail", "1")
	tests := []struct {
		name       string
		req        *http.Request
		wantStatus int
		wantBody   string
	}{
		// The template's $default route sends what matches no other route to
		// the function (which authenticates before it says 404).
		{"unknown path goes to $default", mustReq(t, http.MethodGet, r.URL()+"/v2/nothing", nil), 200, ""},
		{"known path, other method goes to $default", mustReq(t, http.MethodDelete, r.URL()+"/v1/commands", nil), 200, ""},
		{"a trailing segment is another route", mustReq(t, http.MethodGet, r.URL()+"/v1/aggregates/a/outbox/more", nil), 200, ""},
		{"an empty path parameter matches no named route", mustReq(t, http.MethodGet, r.URL()+"/v1/aggregates/", nil), 200, ""},
		{"a body over 10 MB is a 413", mustReq(t, http.MethodPost, r.URL()+"/v1/commands", bytes.Repeat([]byte("a"), runner.MaxRequestBody+1)), 413, `{"message":"Request Entity Too Large"}`},
		{"a function error is a 500", failing, 500, `{"message":"Internal Server Error"}`},
	}
	before := c.count()
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			tt.req.Header.Set("Content-Type", "application/json")
			resp, body := do(t, tt.req)
			if resp.StatusCode != tt.wantStatus || string(body) != tt.wantBody {
				t.Errorf("%d %s, want %d %s", resp.StatusCode, body, tt.wantStatus, tt.wantBody)
			}
			if tt.wantStatus == 200 {
				if ev := c.last(t); ev.RouteKey != "$default" {
					t.Errorf("route key %q, want $default", ev.RouteKey)
				}
			}
		})
	}
	if n := c.count() - before; n != 5 {
		t.Errorf("the function ran %d times, want 5 (the four $default requests and the function error; never for the 413)", n)
	}
}
