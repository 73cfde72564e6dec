package apigw_test

import (
	"context"
	"fmt"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/aws/aws-lambda-go/events"

	"github.com/dispatcher-dev/dispatcher/internal/apigw"
	"github.com/dispatcher-dev/dispatcher/internal/caller"
	"github.com/dispatcher-dev/dispatcher/internal/command"
	"github.com/dispatcher-dev/dispatcher/internal/dynamo"
	"github.com/dispatcher-dev/dispatcher/internal/emails"
	"github.com/dispatcher-dev/dispatcher/internal/obs"
)

// withKey sets the Idempotency-Key of a request, after signing: the
// signature does not cover it, which is the point.
func withKey(r events.APIGatewayV2HTTPRequest, key string) events.APIGatewayV2HTTPRequest {
	h := make(map[string]string, len(r.Headers)+1)
	for k, v := range r.Headers {
		h[k] = v
	}
	h["idempotency-key"] = key
	r.Headers = h
	return r
}

func (f *fixture) balance(id string) any {
	f.t.Helper()
	resp, body := f.do(f.get("/v1/aggregates/"+id, id, nil))
	if resp.StatusCode != http.StatusOK {
		f.t.Fatalf("get %s: %d %s", id, resp.StatusCode, resp.Body)
	}
	return body["data"].(map[string]any)["balance"]
}

// The audit's scenario: one signed deposit of 100, captured and sent three
// times with a new Idempotency-Key each time, must deposit 100 once.
func TestASignedRequestAppliesOnceWhateverItsIdempotencyKey(t *testing.T) {
	f := newFixture(t)
	id := newID("acct")
	f.mustAccept(openAccount(id))
	before := f.count(id)
	captured := f.post(deposit(id, 100, "once"))

	var first map[string]any
	for i, key := range []string{"key-1-" + id, "key-2-" + id, "key-3-" + id} {
		resp, body := f.do(withKey(captured, key))
		if resp.StatusCode != http.StatusAccepted {
			t.Fatalf("send %d: %d %s", i+1, resp.StatusCode, resp.Body)
		}
		if i == 0 {
			if resp.Headers["Idempotent-Replayed"] != "" || body["replayed"] != false {
				t.Fatalf("the first send was answered as a replay: %v %s", resp.Headers, resp.Body)
			}
			first = body
			continue
		}
		if resp.Headers["Idempotent-Replayed"] != "true" || body["replayed"] != true {
			t.Errorf("send %d with a new key: %v %s, want the first answer as a replay", i+1, resp.Headers, resp.Body)
		}
		if fmt.Sprint(body["eventIds"]) != fmt.Sprint(first["eventIds"]) || body["version"] != first["version"] {
			t.Errorf("send %d answered %v, the first answer was %v", i+1, body, first)
		}
	}
	if got := f.balance(id); got != float64(100) {
		t.Errorf("balance = %v, want 100", got)
	}
	if got := f.count(id) - before; got != 2 {
		t.Errorf("%d outbox items written, want one set of 2 (an event and an email)", got)
	}

	t.Run("the same webhook-id with another body is refused with 422 and writes nothing", func(t *testing.T) {
		idemps := f.idempotencyRecords()
		other := f.post(deposit(id, 999, "other"), func(r *events.APIGatewayV2HTTPRequest) {
			sign(t, r, secretNew, captured.Headers["webhook-id"], time.Now())
		})
		resp, _ := f.do(withKey(other, "key-4-"+id))
		if resp.StatusCode != http.StatusUnprocessableEntity || !strings.Contains(resp.Body, `"field":"webhook-id"`) {
			t.Fatalf("got %d %s, want 422 naming the webhook-id", resp.StatusCode, resp.Body)
		}
		if f.count(id)-before != 2 || f.idempotencyRecords() != idemps {
			t.Error("the refused request wrote something")
		}
	})
	t.Run("a webhook-id sent without Idempotency-Key and reused with another body is refused naming it", func(t *testing.T) {
		first := f.post(deposit(id, 1, "no-key"))
		if resp, _ := f.do(first); resp.StatusCode != http.StatusAccepted {
			t.Fatalf("first: %d %s", resp.StatusCode, resp.Body)
		}
		other := f.post(deposit(id, 2, "no-key"), func(r *events.APIGatewayV2HTTPRequest) {
			sign(t, r, secretNew, first.Headers["webhook-id"], time.Now())
		})
		if resp, _ := f.do(other); resp.StatusCode != http.StatusUnprocessableEntity || !strings.Contains(resp.Body, `"field":"webhook-id"`) {
			t.Fatalf("got %d %s, want 422 naming the webhook-id", resp.StatusCode, resp.Body)
		}
	})
	t.Run("an Idempotency-Key alone still answers a new signature of the same command", func(t *testing.T) {
		// A sender that signs its retry again (new webhook-id) but keeps the key.
		resp, body := f.do(withKey(f.post(deposit(id, 100, "once")), "key-1-"+id))
		if resp.StatusCode != http.StatusAccepted || body["replayed"] != true {
			t.Fatalf("got %d %s, want the first answer as a replay", resp.StatusCode, resp.Body)
		}
		if got := f.balance(id); got != float64(101) {
			t.Errorf("balance = %v, want 101 (100 once, and the deposit of 1)", got)
		}
	})
}

func TestConcurrentFirstUsesOfOneWebhookIDApplyOnce(t *testing.T) {
	f := newFixture(t)
	id := newID("acct")
	f.mustAccept(openAccount(id))
	before := f.count(id)
	captured := f.post(deposit(id, 100, "race"))
	const n = 6
	var wg sync.WaitGroup
	var mu sync.Mutex
	applied, replayed := 0, 0
	for i := range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			resp, err := f.h.Handle(context.Background(), withKey(captured, fmt.Sprintf("race-%d-%s", i, id)))
			if err != nil || resp.StatusCode != http.StatusAccepted {
				t.Errorf("send %d: %d %s %v", i, resp.StatusCode, resp.Body, err)
				return
			}
			mu.Lock()
			defer mu.Unlock()
			if resp.Headers["Idempotent-Replayed"] == "true" {
				replayed++
			} else {
				applied++
			}
		}()
	}
	wg.Wait()
	if applied != 1 || replayed != n-1 {
		t.Errorf("%d applied, %d replayed; want 1 and %d", applied, replayed, n-1)
	}
	if got := f.balance(id); got != float64(100) {
		t.Errorf("balance = %v, want 100", got)
	}
	if got := f.count(id) - before; got != 2 {
		t.Errorf("%d outbox items written, want 2", got)
	}
}

// A read's signature covers its method, path and query: one made for
// aggregate A reads neither B nor A with another query.
func TestASignedReadIsBoundToItsPathAndQuery(t *testing.T) {
	f := newFixture(t)
	a, b := newID("a"), newID("b")
	f.mustAccept(openAccount(a))
	f.mustAccept(openAccount(b))
	moveTo := func(r events.APIGatewayV2HTTPRequest, id, suffix string) events.APIGatewayV2HTTPRequest {
		r.RawPath = "/v1/aggregates/" + id + suffix
		r.RequestContext.HTTP.Path = r.RawPath
		r.PathParameters = map[string]string{"id": id}
		return r
	}
	outboxA := f.get("/v1/aggregates/"+a+"/outbox", a, map[string]string{"limit": "10"})
	stateA := f.get("/v1/aggregates/"+a, a, nil)
	tests := []struct {
		name   string
		req    events.APIGatewayV2HTTPRequest
		status int
	}{
		{"accepts the outbox read on its own path", outboxA, 200},
		{"accepts the state read on its own path", stateA, 200},
		{"refuses A's outbox signature on B's outbox", moveTo(outboxA, b, "/outbox"), 401},
		{"refuses A's state signature on B's state", moveTo(stateA, b, ""), 401},
		{"refuses A's outbox signature on A's state", moveTo(outboxA, a, ""), 401},
		{"refuses a changed query", func() events.APIGatewayV2HTTPRequest {
			r := outboxA
			r.RawQueryString, r.QueryStringParameters = "limit=11", map[string]string{"limit": "11"}
			return r
		}(), 401},
		{"refuses an added query", func() events.APIGatewayV2HTTPRequest {
			r := stateA
			r.RawQueryString, r.QueryStringParameters = "x=1", map[string]string{"x": "1"}
			return r
		}(), 401},
		{"refuses a signature over the empty body (id and timestamp only)", func() events.APIGatewayV2HTTPRequest {
			r := stateA
			r.Headers = map[string]string{}
			for k, v := range stateA.Headers {
				r.Headers[k] = v
			}
			r.Body = ""
			r.RequestContext.HTTP.Method = http.MethodPost // so that sign signs the (empty) body
			sign(t, &r, secretNew, "empty-"+a, time.Now())
			r.RequestContext.HTTP.Method = http.MethodGet
			return r
		}(), 401},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			resp, body := f.do(tt.req)
			if resp.StatusCode != tt.status {
				t.Fatalf("status %d, want %d: %s", resp.StatusCode, tt.status, resp.Body)
			}
			if tt.status == 200 && body["aggregateId"] != a {
				t.Errorf("read %v, want aggregate %s", body["aggregateId"], a)
			}
		})
	}
}

// Authentication comes first: an unknown route is 401 to a stranger and 404
// to an authenticated caller, so strangers cannot map the routes.
func TestUnknownRoutesAre401UnlessAuthenticated(t *testing.T) {
	f := newFixture(t)
	route := func(method, path string, signed bool) events.APIGatewayV2HTTPRequest {
		r := sample(t, "get-aggregate.json")
		r.RouteKey, r.RequestContext.RouteKey = "$default", "$default"
		r.RequestContext.HTTP.Method, r.RawPath, r.RequestContext.HTTP.Path = method, path, path
		r.PathParameters = nil
		if signed {
			sign(t, &r, secretOld, newID("route"), time.Now())
		}
		return r
	}
	tests := []struct {
		name   string
		req    events.APIGatewayV2HTTPRequest
		status int
		slug   string
	}{
		{"answers 401 to an unsigned GET of an unknown path", route(http.MethodGet, "/v1/admin", false), 401, "unauthorized"},
		{"answers 401 to an unsigned DELETE of a known path", route(http.MethodDelete, "/v1/aggregates/a", false), 401, "unauthorized"},
		{"answers 401 to an unsigned POST of an unknown path", route(http.MethodPost, "/v1/other", false), 401, "unauthorized"},
		{"answers 404 to a signed GET of an unknown path", route(http.MethodGet, "/v1/admin", true), 404, "not-found"},
		{"answers 404 to a signed DELETE of a known path", route(http.MethodDelete, "/v1/aggregates/a", true), 404, "not-found"},
		{"answers 404 to a signed POST of an unknown path", route(http.MethodPost, "/v1/other", true), 404, "not-found"},
		{"answers 404 to an IAM caller on an unknown path", func() events.APIGatewayV2HTTPRequest {
			r := route(http.MethodGet, "/v1/admin", false)
			r.RequestContext.Authorizer = iamAuthorizer()
			return r
		}(), 404, "not-found"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			resp, body := f.do(tt.req)
			if resp.StatusCode != tt.status || body["type"] != apigw.ProblemBase+tt.slug {
				t.Fatalf("got %d %s, want %d %s", resp.StatusCode, resp.Body, tt.status, tt.slug)
			}
		})
	}
}

func iamAuthorizer() *events.APIGatewayV2HTTPRequestContextAuthorizerDescription {
	return &events.APIGatewayV2HTTPRequestContextAuthorizerDescription{
		IAM: &events.APIGatewayV2HTTPRequestContextAuthorizerIAMDescription{UserARN: "arn:aws:iam::123456789012:role/orders"},
	}
}

func TestCommandsMustBeJSON(t *testing.T) {
	f := newFixture(t)
	id := newID("acct")
	f.mustAccept(openAccount(id))
	contentType := func(ct string) func(*events.APIGatewayV2HTTPRequest) {
		return func(r *events.APIGatewayV2HTTPRequest) {
			delete(r.Headers, "content-type")
			if ct != "" {
				r.Headers["Content-Type"] = ct
			}
		}
	}
	refused := []struct{ name, ct string }{
		{"refuses a command without Content-Type with 415", ""},
		{"refuses text/plain with 415", "text/plain"},
		{"refuses application/jsonx with 415", "application/jsonx"},
		{"refuses a charset other than UTF-8 with 415", "application/json; charset=iso-8859-1"},
		{"refuses two media types with 415", "application/json, text/plain"},
	}
	before, idemps := f.count(id), f.idempotencyRecords()
	for _, tt := range refused {
		t.Run(tt.name, func(t *testing.T) {
			resp, body := f.do(f.post(deposit(id, 1, "r"), contentType(tt.ct)))
			if resp.StatusCode != http.StatusUnsupportedMediaType || resp.Headers["Content-Type"] != "application/problem+json" {
				t.Fatalf("got %d %v %s, want a 415 problem", resp.StatusCode, resp.Headers, resp.Body)
			}
			if body["type"] != apigw.ProblemBase+"unsupported-media-type" || body["status"] != float64(415) || body["title"] == "" {
				t.Errorf("problem = %v", body)
			}
		})
	}
	if f.count(id) != before || f.idempotencyRecords() != idemps {
		t.Error("a refused command wrote something")
	}
	accepted := []struct{ name, ct string }{
		{"accepts a charset parameter", "application/json; charset=utf-8"},
		{"accepts the media type in any case", "Application/JSON;Charset=UTF-8"},
	}
	for i, tt := range accepted {
		t.Run(tt.name, func(t *testing.T) {
			if resp, _ := f.do(f.post(deposit(id, 1, fmt.Sprint("ct-", i)), contentType(tt.ct))); resp.StatusCode != http.StatusAccepted {
				t.Fatalf("got %d %s", resp.StatusCode, resp.Body)
			}
		})
	}
	t.Run("answers 401 before 415 to a stranger", func(t *testing.T) {
		resp, _ := f.do(f.post(deposit(id, 1, "r"), contentType("text/plain"), func(r *events.APIGatewayV2HTTPRequest) { delete(r.Headers, "webhook-signature") }))
		if resp.StatusCode != http.StatusUnauthorized {
			t.Fatalf("got %d %s", resp.StatusCode, resp.Body)
		}
	})
}

// Without secrets (API_AUTH=iam) only IAM-authorized callers get in, even
// with a signature that would be valid.
func TestWithoutSecretsOnlyIAMCallersAreAccepted(t *testing.T) {
	f := newFixture(t)
	store := dynamo.New(f.db, f.table, 8)
	tmpl, err := emails.Load()
	if err != nil {
		t.Fatal(err)
	}
	iamOnly, err := caller.New(caller.Config{})
	if err != nil {
		t.Fatal(err)
	}
	f.h = apigw.New(command.New(store, tmpl), store, iamOnly, obs.NewLogger(f.logs, 0), obs.NewMetrics(f.metrics, "Dispatcher"))
	id := newID("acct")
	tests := []struct {
		name   string
		req    events.APIGatewayV2HTTPRequest
		status int
	}{
		{"refuses an unsigned caller with 401", f.post(openAccount(id), func(r *events.APIGatewayV2HTTPRequest) {
			for _, h := range []string{"webhook-id", "webhook-timestamp", "webhook-signature"} {
				delete(r.Headers, h)
			}
		}), 401},
		{"refuses a signed caller with 401", f.post(openAccount(id)), 401},
		{"refuses a stranger on an unknown route with 401", f.post(openAccount(id), func(r *events.APIGatewayV2HTTPRequest) { r.RouteKey, r.RawPath = "$default", "/v1/other" }), 401},
		{"accepts an IAM caller", f.post(openAccount(id), func(r *events.APIGatewayV2HTTPRequest) {
			r.Headers["idempotency-key"] = "iam-" + id
			r.RequestContext.Authorizer = iamAuthorizer()
		}), 202},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if resp, _ := f.do(tt.req); resp.StatusCode != tt.status {
				t.Fatalf("status %d, want %d: %s", resp.StatusCode, tt.status, resp.Body)
			}
		})
	}
}
