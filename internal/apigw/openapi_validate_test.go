package apigw_test

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"slices"
	"sort"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-lambda-go/events"
	pbyaml "github.com/pb33f/go-yaml"
	"github.com/pb33f/libopenapi"
	validator "github.com/pb33f/libopenapi-validator"
	"github.com/pb33f/libopenapi-validator/config"
	oaserrors "github.com/pb33f/libopenapi-validator/errors"
	"github.com/pb33f/libopenapi-validator/schema_validation"
	"github.com/pb33f/libopenapi/datamodel/high/base"
	v3 "github.com/pb33f/libopenapi/datamodel/high/v3"
	"github.com/pb33f/libopenapi/orderedmap"
	"gopkg.in/yaml.v3"

	"github.com/dispatcher-dev/dispatcher/internal/apigw"
	"github.com/dispatcher-dev/dispatcher/internal/caller"
	"github.com/dispatcher-dev/dispatcher/internal/command"
	"github.com/dispatcher-dev/dispatcher/internal/commandqueue"
	"github.com/dispatcher-dev/dispatcher/internal/dispatch"
	"github.com/dispatcher-dev/dispatcher/internal/ratelimit"
	"github.com/dispatcher-dev/dispatcher/internal/sqs/signed"
	"github.com/dispatcher-dev/dispatcher/internal/testkit/testenv"
)

// The outside check of api/openapi.yaml: pb33f/libopenapi-validator, an
// OpenAPI 3.1 / JSON Schema 2020-12 validator, reads the file and judges
// what the handler really sends and receives. TestOpenAPI (openapi_test.go)
// holds routes, statuses and problem types; this holds bodies and headers.

const specPath = "../../api/openapi.yaml"

// oasOptions: formats (date-time, uri) are asserted, not just annotations,
// and strict mode reports a property or header the file does not declare
// (a field the handler added and nobody described), except in the objects
// the file leaves free (an aggregate's data, an event's, a state patch) and
// the headers API Gateway adds to every request.
var oasOptions = []config.Option{
	config.WithFormatAssertions(),
	config.WithStrictMode(),
	config.WithStrictIgnorePaths("$.body.data.**", "$.body.events[*].data.**"),
	config.WithStrictIgnoredHeadersExtra("x-amzn-trace-id", "x-forwarded-port"),
}

func loadSpec(t testing.TB) (libopenapi.Document, *v3.Document) {
	t.Helper()
	b, err := os.ReadFile(specPath)
	if err != nil {
		t.Fatal(err)
	}
	doc, err := libopenapi.NewDocument(b)
	if err != nil {
		t.Fatalf("api/openapi.yaml: %v", err)
	}
	m, err := doc.BuildV3Model()
	if err != nil {
		t.Fatalf("api/openapi.yaml: %v", err)
	}
	return doc, &m.Model
}

// httpRequest is the request API Gateway received, as net/http has it.
func httpRequest(t testing.TB, req events.APIGatewayV2HTTPRequest) *http.Request {
	t.Helper()
	method := req.RequestContext.HTTP.Method
	if method == "" {
		method, _, _ = strings.Cut(req.RouteKey, " ")
	}
	u := "https://example.execute-api.us-east-1.amazonaws.com" + req.RawPath
	if req.RawQueryString != "" {
		u += "?" + req.RawQueryString
	}
	body := []byte(req.Body)
	if req.IsBase64Encoded {
		var err error
		if body, err = base64.StdEncoding.DecodeString(req.Body); err != nil {
			t.Fatal(err)
		}
	}
	r, err := http.NewRequest(method, u, strings.NewReader(string(body)))
	if err != nil {
		t.Fatal(err)
	}
	for k, v := range req.Headers {
		if !strings.EqualFold(k, "content-length") { // the sample's, not this body's
			r.Header.Set(k, v)
		}
	}
	return r
}

// httpResponse is the handler's answer as API Gateway sends it.
func httpResponse(t testing.TB, r *http.Request, resp events.APIGatewayV2HTTPResponse) *http.Response {
	t.Helper()
	body := []byte(resp.Body)
	if resp.IsBase64Encoded {
		var err error
		if body, err = base64.StdEncoding.DecodeString(resp.Body); err != nil {
			t.Fatal(err)
		}
	}
	h := http.Header{}
	for k, v := range resp.Headers {
		h.Set(k, v)
	}
	for k, vs := range resp.MultiValueHeaders {
		for _, v := range vs {
			h.Add(k, v)
		}
	}
	return &http.Response{
		StatusCode: resp.StatusCode, Status: fmt.Sprintf("%d %s", resp.StatusCode, http.StatusText(resp.StatusCode)),
		Proto: "HTTP/1.1", ProtoMajor: 1, ProtoMinor: 1, Header: h, Request: r,
		Body: io.NopCloser(strings.NewReader(string(body))), ContentLength: int64(len(body)),
	}
}

// messages renders the validator's errors, one a line, with the schema's
// own reasons.
func messages(errs []*oaserrors.ValidationError) string {
	var b strings.Builder
	for _, e := range errs {
		fmt.Fprintf(&b, "\n\t%s: %s", e.Message, e.Reason)
		for _, s := range e.SchemaValidationErrors {
			fmt.Fprintf(&b, "\n\t\t%s (at %s, %s)", s.Reason, s.FieldPath, s.KeywordLocation)
		}
	}
	return b.String()
}

// failing answers every command and read with an error of one kind: the
// 500 and the 503, which the emulators do not give on demand.
type failing struct{ kind dispatch.Kind }

func (f failing) err() error { return dispatch.E("test.failing", f.kind, "table gone", nil) }

func (f failing) Execute(context.Context, command.Request) (command.Result, error) {
	return command.Result{}, f.err()
}

func (f failing) Load(context.Context, string) (dispatch.Aggregate, error) {
	return dispatch.Aggregate{}, f.err()
}

func (f failing) ListOutbox(context.Context, string, int, string) ([]dispatch.OutboxItem, string, error) {
	return nil, "", f.err()
}

func (f failing) FirstUnsettled(context.Context, string) (dispatch.OutboxKey, bool, error) {
	return dispatch.OutboxKey{}, false, f.err()
}

func (f failing) ListEvents(context.Context, string, int, string) ([]dispatch.OutboxItem, string, error) {
	return nil, "", f.err()
}

// exchange is one row of the scenario: a request, the handler that answers
// it, and what it must answer.
type exchange struct {
	name   string
	route  string // the operation of api/openapi.yaml; "" when the path is none of its
	h      *apigw.Handler
	req    events.APIGatewayV2HTTPRequest
	status int
	slug   string // the problem type; "" for a success
	header string // a header the answer must carry
	// refused: the request breaks api/openapi.yaml itself, and the
	// validator must say so, as the handler does (a 4xx).
	refused bool
}

// TestTheHandlerSpeaksItsOpenAPIFile drives the real handler (a command
// service on DynamoDB Local) through every route's success and every error
// it can be made to give, and has libopenapi-validator check each request and
// answer against api/openapi.yaml: parameters, headers, bodies, statuses.
// Every documented response of every operation is driven.
func TestTheHandlerSpeaksItsOpenAPIFile(t *testing.T) {
	doc, model := loadSpec(t)
	v, errs := validator.NewValidator(doc, oasOptions...)
	if len(errs) > 0 {
		t.Fatalf("api/openapi.yaml: %v", errs)
	}
	ctx := context.Background()

	f := newFixture(t)
	es := newModeFixture(t, eventSourced(t))
	env := testenv.Get(t)
	lty := f.handler(command.NewListener(command.New(f.store, f.tmpl), commandqueue.New(signed.New(env.AWS), env.Stack.Physical("CommandsQueue")), []string{"DepositFunds"}), f.store)
	unavailable := f.handler(failing{dispatch.Transient}, failing{dispatch.Transient})
	internal := f.handler(failing{dispatch.Internal}, failing{dispatch.Internal})

	// The state the reads show: an account with a delivered, a leased, a
	// released (lastError) and a failed item, so that every field of an
	// outbox item appears; an order with events and an email; an
	// event-sourced account with a history.
	acct, order, esAcct, missing := newID("oas-acct"), newID("oas-order"), newID("oas-es"), newID("oas-missing")
	f.mustAccept(openAccount(acct))
	f.mustAccept(deposit(acct, 1000, "seed"))
	now := time.Now()
	key := func(version int64, seq int) dispatch.OutboxKey {
		return dispatch.OutboxKey{AggregateID: acct, Version: version, Seq: seq}
	}
	for _, err := range []error{
		f.store.Claim(ctx, key(1, 1), "relay-oas", now, now.Add(time.Minute)),
		f.store.MarkDelivered(ctx, key(1, 0), "", now, time.Hour),
		f.store.Claim(ctx, key(2, 0), "relay-oas", now, now.Add(time.Minute)),
		f.store.Release(ctx, key(2, 0), "relay-oas", "SQS: throttled"),
		f.store.Claim(ctx, key(2, 1), "relay-oas", now, now.Add(time.Minute)),
		f.store.MarkFailed(ctx, key(2, 1), "relay-oas", "SES: address rejected"),
	} {
		if err != nil {
			t.Fatal(err)
		}
	}
	f.mustAccept(`{"type":"Dispatch","aggregateId":"` + order + `","data":{"aggregateType":"Order","state":{"status":"shipped"},` +
		`"events":[{"type":"OrderShipped","data":{"carrier":"DHL"}}],` +
		`"emails":[{"to":["ada@example.com"],"template":"notification","data":{"title":"Shipped","message":"On its way"}}]}}`)
	es.mustAccept(openAccount(esAcct))
	es.mustAccept(deposit(esAcct, 500, "es-seed"))

	// The first answer to a key, then its replay.
	replayKey := func(r *events.APIGatewayV2HTTPRequest) { r.Headers["idempotency-key"] = "oas-replay-" + acct }
	if resp, _ := f.do(f.post(deposit(acct, 7, "replayed"), replayKey)); resp.StatusCode != http.StatusAccepted {
		t.Fatalf("the first answer to the replayed key: %d %s", resp.StatusCode, resp.Body)
	}
	cursor := func(resp events.APIGatewayV2HTTPResponse) string {
		var page struct {
			NextCursor string `json:"nextCursor"`
		}
		_ = json.Unmarshal([]byte(resp.Body), &page)
		return page.NextCursor
	}
	firstOutbox, _ := f.do(f.get("/v1/aggregates/"+acct+"/outbox", acct, map[string]string{"limit": "2"}))
	firstEvents, _ := es.do(es.events(esAcct, map[string]string{"limit": "1"}))
	if cursor(firstOutbox) == "" || cursor(firstEvents) == "" {
		t.Fatalf("no nextCursor on a first page: %s %s", firstOutbox.Body, firstEvents.Body)
	}

	big := strings.Repeat("x", dispatch.MaxBodyBytes)
	withBody := func(body string) func(*events.APIGatewayV2HTTPRequest) {
		return func(r *events.APIGatewayV2HTTPRequest) { r.Body = body }
	}
	unsigned := func(r *events.APIGatewayV2HTTPRequest) {
		for _, h := range []string{"webhook-id", "webhook-timestamp", "webhook-signature"} {
			delete(r.Headers, h)
		}
	}
	badSignature := func(r *events.APIGatewayV2HTTPRequest) { r.Headers["webhook-signature"] = "v1,AAAA" }
	// get builds a signed read on g's store; mods change it after signing.
	get := func(g *fixture, route, id string, q map[string]string, mods ...func(*events.APIGatewayV2HTTPRequest)) events.APIGatewayV2HTTPRequest {
		path := "/v1/aggregates/" + id + strings.TrimPrefix(route, apigw.RouteAggregate)
		req := g.get(path, id, q)
		req.RouteKey = route
		for _, m := range mods {
			m(&req)
		}
		return req
	}

	const (
		post = apigw.RouteCommands
		agg  = apigw.RouteAggregate
		obx  = apigw.RouteAggregateOutbox
		evs  = apigw.RouteAggregateEvents
	)
	rows := []exchange{
		{name: "OpenAccount is applied", route: post, h: f.h, req: f.post(openAccount(newID("oas-new"))), status: 202, header: "Location"},
		{name: "a deposit is applied", route: post, h: f.h, req: f.post(deposit(acct, 1, "oas")), status: 202},
		{name: "a Dispatch is applied", route: post, h: f.h, req: f.post(dispatchState(newID("oas-d"), `{"a":{"b":[1,null,"c"]}}`)), status: 202},
		{name: "a repeated key is replayed", route: post, h: f.h, req: f.post(deposit(acct, 7, "replayed"), replayKey), status: 202, header: "Idempotent-Replayed"},
		{name: "listen-to-yourself queues a deposit", route: post, h: lty, req: f.post(deposit(acct, 3, "queued")), status: 202},
		{name: "an unknown data field is a validation error", route: post, h: f.h, refused: true, status: 400, slug: "validation-error",
			req: f.post(`{"type":"DepositFunds","aggregateId":"` + acct + `","data":{"amount":1,"currency":"EUR","reference":"r","memo":"x"}}`)},
		{name: "a currency ISO 4217 never assigned is a validation error", route: post, h: f.h, status: 400, slug: "validation-error",
			req: f.post(`{"type":"OpenAccount","aggregateId":"x-` + acct + `","data":{"owner":"Bob","email":"bob@example.com","currency":"QQQ"}}`)},
		{name: "an idempotency key with a space is a validation error", route: post, h: f.h, refused: true, status: 400, slug: "validation-error",
			req: f.post(deposit(acct, 1, "r"), func(r *events.APIGatewayV2HTTPRequest) { r.Headers["idempotency-key"] = "a b" })},
		{name: "a bad signature is unauthorized", route: post, h: f.h, req: f.post(deposit(acct, 1, "r"), badSignature), status: 401, slug: "unauthorized"},
		{name: "no credentials are unauthorized", route: post, h: f.h, refused: true, req: f.post(deposit(acct, 1, "r"), unsigned), status: 401, slug: "unauthorized"},
		{name: "a deposit to no account is not found", route: post, h: f.h, req: f.post(deposit(missing, 1, "r")), status: 404, slug: "not-found"},
		{name: "a stale expectedVersion is a version conflict", route: post, h: f.h, status: 409, slug: "version-conflict",
			req: f.post(`{"type":"DepositFunds","aggregateId":"` + acct + `","expectedVersion":1,"data":{"amount":1,"currency":"EUR","reference":"r"}}`)},
		{name: "opening an open account is a conflict", route: post, h: f.h, req: f.post(openAccount(acct)), status: 409, slug: "conflict"},
		{name: "a body over the limit is too large", route: post, h: f.h, refused: true, status: 413, slug: "too-large",
			req: f.post(`{"type":"DepositFunds","aggregateId":"` + acct + `","data":{"amount":1,"currency":"EUR","reference":"` + big + `"}}`)},
		{name: "text/plain is an unsupported media type", route: post, h: f.h, refused: true, status: 415, slug: "unsupported-media-type",
			req: f.post(deposit(acct, 1, "r"), func(r *events.APIGatewayV2HTTPRequest) { r.Headers["content-type"] = "text/plain" })},
		{name: "an overdraw is refused", route: post, h: f.h, status: 422, slug: "refused", req: f.post(withdraw(acct, 1_000_000, "too much"))},
		{name: "a store that fails is internal", route: post, h: internal, req: f.post(deposit(acct, 1, "r")), status: 500, slug: "internal"},
		{name: "a throttled store is unavailable", route: post, h: unavailable, req: f.post(deposit(acct, 1, "r")), status: 503, slug: "unavailable", header: "Retry-After"},

		{name: "an account", route: agg, h: f.h, req: get(f, agg, acct, nil), status: 200},
		{name: "an order", route: agg, h: f.h, req: get(f, agg, order, nil), status: 200},
		{name: "an event-sourced account", route: agg, h: es.h, req: get(es, agg, esAcct, nil), status: 200},
		{name: "an outbox page with every field", route: obx, h: f.h, req: get(f, obx, acct, nil), status: 200},
		{name: "a first outbox page", route: obx, h: f.h, req: get(f, obx, acct, map[string]string{"limit": "2"}), status: 200},
		{name: "a next outbox page", route: obx, h: f.h, req: get(f, obx, acct, map[string]string{"limit": "2", "cursor": cursor(firstOutbox)}), status: 200},
		{name: "an order's outbox", route: obx, h: f.h, req: get(f, obx, order, nil), status: 200},
		{name: "an event-sourced account's events", route: evs, h: es.h, req: get(es, evs, esAcct, nil), status: 200},
		{name: "a next events page", route: evs, h: es.h, req: get(es, evs, esAcct, map[string]string{"limit": "1", "cursor": cursor(firstEvents)}), status: 200},
		{name: "an outbox-mode aggregate's empty events", route: evs, h: f.h, req: get(f, evs, order, nil), status: 200},
		{name: "no such route for an authenticated caller", h: f.h, refused: true, status: 404, slug: "not-found",
			req: f.post(deposit(acct, 1, "r"), func(r *events.APIGatewayV2HTTPRequest) { r.RouteKey = "POST /v1/other"; r.RawPath = "/v1/other" })},
		{name: "an unknown route for an unauthenticated caller", h: f.h, refused: true, status: 401, slug: "unauthorized",
			req: f.post(deposit(acct, 1, "r"), unsigned, func(r *events.APIGatewayV2HTTPRequest) { r.RouteKey = "$default"; r.RawPath = "/v1/other" })},
	}
	// The errors every read can give.
	for _, route := range []string{agg, obx, evs} {
		rows = append(rows,
			exchange{name: "a malformed id is a validation error", route: route, h: f.h, refused: true, req: get(f, route, "bad!id", nil), status: 400, slug: "validation-error"},
			exchange{name: "a bad signature is unauthorized", route: route, h: f.h, req: get(f, route, acct, nil, badSignature), status: 401, slug: "unauthorized"},
			exchange{name: "no such aggregate is not found", route: route, h: f.h, req: get(f, route, missing, nil), status: 404, slug: "not-found"},
			exchange{name: "a body over the limit is too large", route: route, h: f.h, req: get(f, route, acct, nil, withBody(big+"x")), status: 413, slug: "too-large"},
			exchange{name: "a store that fails is internal", route: route, h: internal, req: get(f, route, acct, nil), status: 500, slug: "internal"},
			exchange{name: "a throttled store is unavailable", route: route, h: unavailable, req: get(f, route, acct, nil), status: 503, slug: "unavailable", header: "Retry-After"},
		)
		if route != agg {
			rows = append(rows, exchange{name: "a limit of 0 is a validation error", route: route, h: f.h, refused: true,
				req: get(f, route, acct, map[string]string{"limit": "0"}), status: 400, slug: "validation-error"})
		}
	}
	// 403: a registered caller's command on another caller's aggregate, and
	// an IAM principal that no caller lists (a read outside the grant is a
	// 404, so an unmapped principal is what a read's 403 is). 429: the
	// default caller's bucket in the stack's RateLimitTable, emptied first.
	cf := newCallersFixture(t)
	intruder := func(r *events.APIGatewayV2HTTPRequest) {
		unsigned(r)
		r.RequestContext.Authorizer = iamAuthorizer()
		r.RequestContext.Authorizer.IAM.UserARN = "arn:aws:sts::123456789012:assumed-role/intruder/s"
		// What API Gateway passes on of the SigV4 request it authorized.
		r.Headers["authorization"] = "AWS4-HMAC-SHA256 Credential=AKIDEXAMPLE/20261208/us-east-1/execute-api/aws4_request, SignedHeaders=host;x-amz-date, Signature=0123456789abcdef"
	}
	rate := dispatch.Rate{PerSecond: 0.001, Burst: 1}
	rl := ratelimit.New(f.db, env.Stack.Physical("RateLimitTable"))
	if ok, _, err := rl.Take(ctx, caller.DefaultID, rate); err != nil || !ok {
		t.Fatalf("emptying the default caller's bucket: %v %v", ok, err)
	}
	limited := f.handler(command.New(f.store, f.tmpl), f.store).WithLimiter(rl, rate)
	rows = append(rows,
		exchange{name: "a caller's command on another caller's aggregate is forbidden", route: post, h: cf.h, status: 403, slug: "forbidden",
			req: cf.postAs(t, secretB, "team-b", openAccount(newID("ta-oas")), "")},
		exchange{name: "a caller past its rate is rate-limited", route: post, h: limited, status: 429, slug: "rate-limited", header: "Retry-After",
			req: f.post(deposit(acct, 1, "limited"))},
	)
	for _, route := range []string{agg, obx, evs} {
		rows = append(rows,
			exchange{name: "an IAM principal no caller lists is forbidden", route: route, h: cf.h, status: 403, slug: "forbidden", req: get(f, route, acct, nil, intruder)},
			exchange{name: "a caller past its rate is rate-limited", route: route, h: limited, status: 429, slug: "rate-limited", header: "Retry-After", req: get(f, route, acct, nil)},
		)
	}

	problem := model.Components.Schemas.GetOrZero("Problem").Schema()
	schemas := schema_validation.NewSchemaValidator(oasOptions...)
	driven := map[string]bool{}
	for _, x := range rows {
		t.Run(fmt.Sprintf("%s %d %s", x.route, x.status, x.name), func(t *testing.T) {
			resp, err := x.h.Handle(ctx, x.req)
			if err != nil {
				t.Fatal(err)
			}
			if resp.StatusCode != x.status {
				t.Fatalf("status %d, want %d: %s", resp.StatusCode, x.status, resp.Body)
			}
			if x.slug != "" && !strings.Contains(resp.Body, `"type":"`+apigw.ProblemBase+x.slug+`"`) {
				t.Errorf("problem %s, want type %s", resp.Body, x.slug)
			}
			if x.header != "" && resp.Headers[x.header] == "" {
				t.Errorf("no %s header: %v", x.header, resp.Headers)
			}
			driven[x.route+" "+strconv.Itoa(x.status)] = true
			hreq := httpRequest(t, x.req)
			if ok, errs := v.ValidateHttpRequestSync(hreq); x.refused && ok {
				t.Errorf("api/openapi.yaml accepts the request the handler refused with %d", resp.StatusCode)
			} else if !x.refused && !ok {
				t.Errorf("%s %s: the request does not match api/openapi.yaml:%s", hreq.Method, hreq.URL.Path, messages(errs))
			} else if x.refused {
				t.Logf("the validator refuses the request too:%s", messages(errs))
			}
			if x.route == "" {
				// A path the file does not describe: its answer is a Problem.
				if ok, errs := schemas.ValidateSchemaString(problem, resp.Body); !ok {
					t.Errorf("%d to %s %s: the body is not a Problem of api/openapi.yaml:%s", resp.StatusCode, hreq.Method, hreq.URL.Path, messages(errs))
				}
				return
			}
			if ok, errs := v.ValidateHttpResponse(hreq, httpResponse(t, hreq, resp)); !ok {
				t.Errorf("%s %d: the answer does not match api/openapi.yaml:%s\nbody: %s", x.route, resp.StatusCode, messages(errs), resp.Body)
			}
		})
	}

	// Every response the file documents was driven above.
	var undriven []string
	for path, item := range model.Paths.PathItems.FromOldest() {
		for method, op := range item.GetOperations().FromOldest() {
			for status := range op.Responses.Codes.KeysFromOldest() {
				if k := strings.ToUpper(method) + " " + path + " " + status; !driven[k] {
					undriven = append(undriven, k)
				}
			}
		}
	}
	sort.Strings(undriven)
	if len(undriven) > 0 && !t.Failed() {
		t.Errorf("api/openapi.yaml documents answers the scenario does not drive: %v", undriven)
	}
}

// TestOpenAPIExamplesMatchTheirSchemas validates every example of
// api/openapi.yaml against the schema it sits in (a schema's examples, a
// media type's, a parameter's or a header's); an example of a oneOf, anyOf
// or allOf branch is also one of the schema that holds the branch. A scan of
// the YAML itself makes sure no example sits where this walk does not look.
func TestOpenAPIExamplesMatchTheirSchemas(t *testing.T) {
	_, model := loadSpec(t)
	w := exampleWalk{t: t, v: schema_validation.NewSchemaValidator(oasOptions...), seen: map[int]bool{}}

	c := model.Components
	for name, s := range c.Schemas.FromOldest() {
		w.schema("#/components/schemas/"+name, s, nil)
	}
	for name, p := range c.Parameters.FromOldest() {
		w.parameter("#/components/parameters/"+name, p)
	}
	for name, h := range c.Headers.FromOldest() {
		w.header("#/components/headers/"+name, h)
	}
	for name, r := range c.Responses.FromOldest() {
		w.response("#/components/responses/"+name, r)
	}
	for name, b := range c.RequestBodies.FromOldest() {
		w.content("#/components/requestBodies/"+name, b.Content)
	}
	for path, item := range model.Paths.PathItems.FromOldest() {
		at := "#/paths/" + strings.ReplaceAll(path, "/", "~1")
		for i, p := range item.Parameters {
			w.parameter(fmt.Sprintf("%s/parameters/%d", at, i), p)
		}
		for method, op := range item.GetOperations().FromOldest() {
			for i, p := range op.Parameters {
				w.parameter(fmt.Sprintf("%s/%s/parameters/%d", at, method, i), p)
			}
			if op.RequestBody != nil {
				w.content(at+"/"+method+"/requestBody", op.RequestBody.Content)
			}
			for status, r := range op.Responses.Codes.FromOldest() {
				w.response(at+"/"+method+"/responses/"+status, r)
			}
		}
	}

	b, err := os.ReadFile(specPath)
	if err != nil {
		t.Fatal(err)
	}
	var root yaml.Node
	if err := yaml.Unmarshal(b, &root); err != nil {
		t.Fatal(err)
	}
	lines := exampleLines(&root, false)
	if len(lines) == 0 {
		t.Fatal("api/openapi.yaml has no examples; the scan is broken")
	}
	for _, l := range lines {
		if !w.seen[l] {
			t.Errorf("api/openapi.yaml:%d: an example this test does not validate; teach exampleWalk where it sits", l)
		}
	}
	t.Logf("%d examples validated", len(w.seen))
}

type exampleWalk struct {
	t    *testing.T
	v    schema_validation.SchemaValidator
	seen map[int]bool // the lines of the examples validated
}

// check validates one example value against the schemas it must satisfy.
func (w exampleWalk) check(at string, value *pbyaml.Node, against ...*base.Schema) {
	w.t.Helper()
	if value == nil {
		return
	}
	w.seen[value.Line] = true
	var v any
	if err := value.Decode(&v); err != nil {
		w.t.Errorf("api/openapi.yaml:%d (%s): the example does not decode: %v", value.Line, at, err)
		return
	}
	b, err := json.Marshal(v)
	if err != nil {
		w.t.Errorf("api/openapi.yaml:%d (%s): the example is not JSON: %v", value.Line, at, err)
		return
	}
	for _, s := range against {
		if s == nil {
			continue
		}
		if ok, errs := w.v.ValidateSchemaBytes(s, b); !ok {
			w.t.Errorf("api/openapi.yaml:%d (%s): the example %s does not match its schema:%s", value.Line, at, b, messages(errs))
		}
	}
}

// schema checks a schema's examples, against itself and the schemas whose
// oneOf/anyOf/allOf it is a branch of (holders), and walks its inline
// subschemas; a $ref is walked where it is defined.
func (w exampleWalk) schema(at string, p *base.SchemaProxy, holders []*base.Schema) {
	if p == nil || p.IsReference() {
		return
	}
	s := p.Schema()
	if s == nil {
		w.t.Errorf("%s: %v", at, p.GetBuildError())
		return
	}
	against := append([]*base.Schema{s}, holders...)
	for i, ex := range s.Examples {
		w.check(fmt.Sprintf("%s/examples/%d", at, i), ex, against...)
	}
	w.check(at+"/example", s.Example, against...)
	branches := map[string][]*base.SchemaProxy{"oneOf": s.OneOf, "anyOf": s.AnyOf, "allOf": s.AllOf}
	for _, kw := range []string{"oneOf", "anyOf", "allOf"} {
		for i, b := range branches[kw] {
			w.schema(fmt.Sprintf("%s/%s/%d", at, kw, i), b, against)
		}
	}
	for name, sub := range s.Properties.FromOldest() {
		w.schema(at+"/properties/"+name, sub, nil)
	}
	for name, sub := range s.PatternProperties.FromOldest() {
		w.schema(at+"/patternProperties/"+name, sub, nil)
	}
	for name, sub := range s.Defs.FromOldest() {
		w.schema(at+"/$defs/"+name, sub, nil)
	}
	for i, sub := range s.PrefixItems {
		w.schema(fmt.Sprintf("%s/prefixItems/%d", at, i), sub, nil)
	}
	if s.Items != nil && s.Items.IsA() {
		w.schema(at+"/items", s.Items.A, nil)
	}
	if s.AdditionalProperties != nil && s.AdditionalProperties.IsA() {
		w.schema(at+"/additionalProperties", s.AdditionalProperties.A, nil)
	}
	for kw, sub := range map[string]*base.SchemaProxy{"not": s.Not, "if": s.If, "then": s.Then, "else": s.Else, "contains": s.Contains, "propertyNames": s.PropertyNames} {
		w.schema(at+"/"+kw, sub, nil)
	}
}

func (w exampleWalk) parameter(at string, p *v3.Parameter) {
	w.examples(at, p.Schema, p.Example, p.Examples)
	w.content(at, p.Content)
}

func (w exampleWalk) header(at string, h *v3.Header) {
	w.examples(at, h.Schema, h.Example, h.Examples)
	w.content(at, h.Content)
}

func (w exampleWalk) response(at string, r *v3.Response) {
	for name, h := range r.Headers.FromOldest() {
		w.header(at+"/headers/"+name, h)
	}
	w.content(at, r.Content)
}

func (w exampleWalk) content(at string, content *orderedmap.Map[string, *v3.MediaType]) {
	for mt, m := range content.FromOldest() {
		w.examples(at+"/content/"+mt, m.Schema, m.Example, m.Examples)
	}
}

// examples checks the example and the Example Objects of a parameter,
// header or media type against its schema, and walks the schema.
func (w exampleWalk) examples(at string, p *base.SchemaProxy, example *pbyaml.Node, examples *orderedmap.Map[string, *base.Example]) {
	var s *base.Schema
	if p != nil {
		s = p.Schema()
		w.schema(at+"/schema", p, nil)
	}
	w.check(at+"/example", example, s)
	for name, ex := range examples.FromOldest() {
		w.check(at+"/examples/"+name, ex.Value, s)
	}
}

// exampleLines are the lines of the example values in a YAML document: each
// item of a schema's examples list, the value of an example, the value of
// each Example Object of an examples map. inNames: node is a map whose keys
// are names (of properties, schemas, ...), not keywords.
func exampleLines(node *yaml.Node, inNames bool) []int {
	var out []int
	switch node.Kind {
	case yaml.DocumentNode, yaml.SequenceNode:
		for _, c := range node.Content {
			out = append(out, exampleLines(c, false)...)
		}
	case yaml.MappingNode:
		for i := 0; i+1 < len(node.Content); i += 2 {
			k, v := node.Content[i].Value, node.Content[i+1]
			switch {
			case inNames || strings.HasPrefix(k, "x-"):
				out = append(out, exampleLines(v, false)...)
			case k == "example":
				out = append(out, v.Line)
			case k == "examples" && v.Kind == yaml.SequenceNode:
				for _, item := range v.Content {
					out = append(out, item.Line)
				}
			case k == "examples" && v.Kind == yaml.MappingNode:
				for j := 1; j < len(v.Content); j += 2 {
					ex := v.Content[j]
					for n := 0; n+1 < len(ex.Content); n += 2 {
						if ex.Content[n].Value == "value" {
							out = append(out, ex.Content[n+1].Line)
						}
					}
				}
			default:
				out = append(out, exampleLines(v, slices.Contains(nameMaps, k))...)
			}
		}
	}
	return out
}

// nameMaps are the OpenAPI and JSON Schema keywords whose value maps names
// to objects.
var nameMaps = []string{"properties", "patternProperties", "dependentSchemas", "$defs", "schemas", "responses", "parameters",
	"headers", "requestBodies", "securitySchemes", "links", "callbacks", "pathItems", "paths", "content", "variables", "encoding", "mapping"}
