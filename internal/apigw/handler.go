// Package apigw is the HTTP edge: API Gateway HTTP API (payload format 2.0)
// events in, responses out. It authenticates, then routes, turns errors into
// RFC 9457 problems, and logs and counts each request once.
package apigw

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"math"
	"mime"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/aws/aws-lambda-go/events"

	"github.com/dispatcher-dev/dispatcher/internal/command"
	"github.com/dispatcher-dev/dispatcher/internal/dispatch"
	"github.com/dispatcher-dev/dispatcher/internal/obs"
	"github.com/dispatcher-dev/dispatcher/internal/webhook"
)

// Routes, as the template declares them.
const (
	RouteCommands        = "POST /v1/commands"
	RouteAggregate       = "GET /v1/aggregates/{id}"
	RouteAggregateOutbox = "GET /v1/aggregates/{id}/outbox"
	RouteAggregateEvents = "GET /v1/aggregates/{id}/events"
)

// routes are the routes the handler answers; api/openapi.yaml describes
// each (TestOpenAPI).
var routes = []string{RouteCommands, RouteAggregate, RouteAggregateOutbox, RouteAggregateEvents}

// Authenticator finds who sent a request (*caller.Registry,
// *caller.Refreshing): the caller that API Gateway's IAM authorizer names
// by principalARN ("" when none), or whose webhook secrets verify the
// Standard Webhooks signature in headers over signed
// (webhook.SignedContent: a POST's body, a read's request line). It
// returns the caller and the request's webhook-id ("" for IAM). Its errors
// are *dispatch.Error: Unauthorized (401), Forbidden (403).
type Authenticator interface {
	Authenticate(ctx context.Context, principalARN string, headers map[string]string, signed []byte) (dispatch.Caller, string, error)
}

// Limiter spends one request of a caller's rate (a token bucket shared by
// the function's instances): ok false says the caller is over it, and
// retryAfter when a request would be allowed again.
type Limiter interface {
	Take(ctx context.Context, key string, rate dispatch.Rate) (ok bool, retryAfter time.Duration, err error)
}

// Reader reads what the GET routes show.
type Reader interface {
	Load(ctx context.Context, aggregateID string) (dispatch.Aggregate, error)
	ListOutbox(ctx context.Context, aggregateID string, limit int, cursor string) ([]dispatch.OutboxItem, string, error)
	FirstUnsettled(ctx context.Context, aggregateID string) (dispatch.OutboxKey, bool, error)
	// ListEvents pages through an event-sourced aggregate's events.
	ListEvents(ctx context.Context, aggregateID string, limit int, cursor string) ([]dispatch.OutboxItem, string, error)
}

// modeReader reads an aggregate in whichever mode it is stored (folding an
// event-sourced one's events); command.Service is one. An Executor that is
// not one leaves GET /v1/aggregates/{id} to Reader.Load.
type modeReader interface {
	Read(ctx context.Context, aggregateID string) (dispatch.Aggregate, error)
}

// Executor applies commands.
type Executor interface {
	Execute(ctx context.Context, req command.Request) (command.Result, error)
}

// Handler is the command function's handler.
type Handler struct {
	exec    Executor
	reader  Reader
	auth    Authenticator
	limiter Limiter
	rate    dispatch.Rate // a caller's rate when its own is zero
	log     *slog.Logger
	metrics *obs.Metrics
	now     func() time.Time
}

// New returns a Handler that accepts the callers auth finds.
func New(exec Executor, reader Reader, auth Authenticator, log *slog.Logger, metrics *obs.Metrics) *Handler {
	return &Handler{exec: exec, reader: reader, auth: auth, log: log, metrics: metrics, now: time.Now}
}

// WithLimiter bounds each caller's requests with l: its own rate, or def
// for a caller without one (a zero def: such a caller is not limited).
func (h *Handler) WithLimiter(l Limiter, def dispatch.Rate) *Handler {
	h.limiter, h.rate = l, def
	return h
}

// outcome is what one request did, for the log line and the metrics.
type outcome struct {
	reqID, callerID             string
	route, cmdType, aggregateID string
	attempts                    int
	replayed                    bool
	err                         error
	problem                     *Problem // the answer, when it is an error
}

// fail answers with a problem and remembers it for the log and metrics.
func (o *outcome) fail(p Problem) events.APIGatewayV2HTTPResponse {
	o.problem = &p
	return problemResponse(p)
}

// Handle serves one API Gateway request.
func (h *Handler) Handle(ctx context.Context, req events.APIGatewayV2HTTPRequest) (events.APIGatewayV2HTTPResponse, error) {
	start := h.now()
	reqID := obs.RequestID(ctx)
	if reqID == "" {
		reqID = req.RequestContext.RequestID
	}
	o := outcome{reqID: reqID}
	resp := h.serve(ctx, req, &o)
	if o.problem != nil && o.problem.Status >= 500 {
		// Only the request id, to quote to the operators; the cause is logged.
		o.problem.RequestID = reqID
		resp.Body = o.problem.body()
	}
	h.record(ctx, reqID, o, resp, h.now().Sub(start))
	return resp, nil
}

func (h *Handler) serve(ctx context.Context, req events.APIGatewayV2HTTPRequest, o *outcome) events.APIGatewayV2HTTPResponse {
	route := routeOf(req)
	o.route = route
	// The size comes before authentication because it bounds the work of
	// decoding and of the HMAC; it says nothing about the routes.
	if base64Len(req) > dispatch.MaxBodyBytes {
		o.err = errTooLarge
		return o.fail(problemFor(errTooLarge))
	}
	body, err := bodyOf(req)
	if err != nil {
		o.err = dispatch.E("apigw", dispatch.Invalid, "the body is not valid base64", err)
		return o.fail(problemFor(o.err))
	}
	if len(body) > dispatch.MaxBodyBytes {
		o.err = errTooLarge
		return o.fail(problemFor(errTooLarge))
	}
	// Authenticate, then route: a 404 given to anyone would let
	// unauthenticated callers map the routes.
	c, webhookID, err := h.authenticate(ctx, req, body)
	if err != nil {
		o.err = err
		return o.fail(problemFor(err))
	}
	o.callerID = c.ID
	if resp, refused := h.limit(ctx, c, o); refused {
		return resp
	}
	switch route {
	case RouteCommands:
		return h.command(ctx, req, body, c, webhookID, o)
	case RouteAggregate:
		return h.aggregate(ctx, req, c, o)
	case RouteAggregateOutbox:
		return h.outbox(ctx, req, c, o)
	case RouteAggregateEvents:
		return h.events(ctx, req, c, o)
	}
	return o.fail(noRouteProblem.problem(methodOf(req) + " " + req.RawPath))
}

var errTooLarge = dispatch.E("apigw", dispatch.TooLarge, "the body exceeds "+strconv.Itoa(dispatch.MaxBodyBytes)+" bytes", nil)

var errNoAuth = dispatch.E("apigw.authenticate", dispatch.Internal, "", errors.New("the handler has no Authenticator"))

// authenticate finds the caller: the IAM principal API Gateway authorized,
// or the caller whose secrets verify the signature over
// webhook.SignedContent (a POST's body, a read's request line).
func (h *Handler) authenticate(ctx context.Context, req events.APIGatewayV2HTTPRequest, body []byte) (dispatch.Caller, string, error) {
	if h.auth == nil {
		return dispatch.Caller{}, "", errNoAuth
	}
	if a := req.RequestContext.Authorizer; a != nil && a.IAM != nil && a.IAM.UserARN != "" {
		return h.auth.Authenticate(ctx, a.IAM.UserARN, req.Headers, nil)
	}
	return h.auth.Authenticate(ctx, "", req.Headers, webhook.SignedContent(methodOf(req), req.RawPath, req.RawQueryString, body))
}

// limit spends one request of the caller's rate; refused is true with the
// 429 to answer. A limiter that fails lets the request through (logged at
// WARN and counted as RateLimitUnavailable): the limit shares a caller's
// fair part of the deployment, and the stage's throttling still bounds
// the whole, so an outage of the limiter's table must not become an
// outage of the API.
func (h *Handler) limit(ctx context.Context, c dispatch.Caller, o *outcome) (resp events.APIGatewayV2HTTPResponse, refused bool) {
	rate := c.Rate
	if rate.PerSecond <= 0 {
		rate = h.rate
	}
	if h.limiter == nil || rate.PerSecond <= 0 {
		return resp, false
	}
	ok, after, err := h.limiter.Take(ctx, c.ID, rate)
	if err != nil {
		h.log.WarnContext(ctx, "rate limit not checked; the request goes on", slog.String("requestId", o.reqID),
			slog.String("callerId", c.ID), slog.String("error", err.Error()))
		h.metrics.Emit(map[string]string{"Service": "command"}, obs.Metric{Name: "RateLimitUnavailable", Value: 1, Unit: obs.Count})
		return resp, false
	}
	if ok {
		return resp, false
	}
	secs := max(1, int64(math.Ceil(after.Seconds())))
	o.err = dispatch.E("apigw.limit", dispatch.Throttled, fmt.Sprintf("caller %s is over its rate of %g requests a second (a burst of %d); retry after %d s", c.ID, rate.PerSecond, rate.Burst, secs), nil)
	resp = o.fail(problemFor(o.err))
	resp.Headers["Retry-After"] = strconv.FormatInt(secs, 10)
	return resp, true
}

func (h *Handler) command(ctx context.Context, req events.APIGatewayV2HTTPRequest, body []byte, c dispatch.Caller, webhookID string, o *outcome) events.APIGatewayV2HTTPResponse {
	if detail := checkContentType(header(req.Headers, "content-type")); detail != "" {
		return o.fail(mediaTypeProblem.problem(detail))
	}
	key, keyHeader := header(req.Headers, "idempotency-key"), "Idempotency-Key"
	if key == "" {
		key, keyHeader = webhookID, "webhook-id"
	}
	if err := checkKey(keyHeader, key); err != nil {
		o.err = err
		return o.fail(problemFor(err))
	}
	res, err := h.exec.Execute(ctx, command.Request{
		Body: body, Caller: c, IdempotencyKey: key, WebhookID: webhookID, Traceparent: header(req.Headers, "traceparent"),
	})
	o.cmdType, o.aggregateID, o.attempts, o.replayed = res.Type, res.AggregateID, res.Attempts, res.Replayed
	if err != nil {
		o.err = err
		return o.fail(problemFor(err))
	}
	b, _ := json.Marshal(res.Accepted)
	if res.Queued {
		b, _ = json.Marshal(queuedView{AggregateID: res.AggregateID, Status: "queued", Detail: queuedDetail})
	}
	hdr := map[string]string{
		"Content-Type": "application/json",
		"Location":     "/v1/aggregates/" + res.AggregateID,
	}
	if res.Replayed {
		hdr["Idempotent-Replayed"] = "true"
	}
	return events.APIGatewayV2HTTPResponse{StatusCode: http.StatusAccepted, Headers: hdr, Body: string(b)}
}

// checkContentType says what is wrong with a command's Content-Type, or
// "": the media type must be application/json (in any case, with parameters),
// and a charset, if given, UTF-8, the only encoding JSON has (RFC 8259).
func checkContentType(ct string) string {
	if ct == "" {
		return "a command needs Content-Type: application/json"
	}
	mt, params, err := mime.ParseMediaType(ct)
	if err != nil || mt != "application/json" {
		return "Content-Type must be application/json"
	}
	if cs, ok := params["charset"]; ok && !strings.EqualFold(cs, "utf-8") {
		return "the body must be UTF-8 (charset=utf-8, or no charset)"
	}
	return ""
}

// checkKey checks the request's idempotency key; name is the header that
// carried it (Idempotency-Key, or the webhook-id standing in for it), so that
// a refusal names what the caller sent.
func checkKey(name, key string) error {
	switch {
	case key == "":
		return dispatch.InvalidField("Idempotency-Key", "is required on POST (or a webhook-id)")
	case len(key) > dispatch.MaxIdempotencyKeyLen:
		return dispatch.InvalidField(name, "must be at most %d characters", dispatch.MaxIdempotencyKeyLen)
	}
	for i := 0; i < len(key); i++ {
		if key[i] < 0x21 || key[i] > 0x7e {
			return dispatch.InvalidField(name, "must be printable ASCII without spaces, as it is the idempotency key")
		}
	}
	return nil
}

type aggregateView struct {
	AggregateID string         `json:"aggregateId"`
	Type        string         `json:"type"`
	Version     int64          `json:"version"`
	Data        map[string]any `json:"data"`
	CreatedAt   time.Time      `json:"createdAt"`
	UpdatedAt   time.Time      `json:"updatedAt"`
}

// The reads outside a caller's grant answer exactly as an unknown
// aggregate does (errNoAggregate), so that a caller cannot learn which ids
// other callers use: a 403 would say "it exists, and it is not yours". The
// id is checked before anything is read (MayAccess with any type); the
// type, once the read tells it.

func (h *Handler) aggregate(ctx context.Context, req events.APIGatewayV2HTTPRequest, c dispatch.Caller, o *outcome) events.APIGatewayV2HTTPResponse {
	id, err := pathID(req)
	o.aggregateID = id
	if err == nil && !c.MayAccess("", id) {
		err = errNoAggregate(id)
	}
	if err != nil {
		o.err = err
		return o.fail(problemFor(err))
	}
	load := h.reader.Load
	if r, ok := h.exec.(modeReader); ok {
		load = r.Read
	}
	a, err := load(ctx, id)
	if err == nil && (!a.Exists() || !c.MayAccess(a.Type, id)) {
		err = errNoAggregate(id)
	}
	if err != nil {
		o.err = err
		return o.fail(problemFor(err))
	}
	return jsonResponse(o, http.StatusOK, aggregateView{id, a.Type, a.Version, a.Data, a.CreatedAt, a.UpdatedAt})
}

func errNoAggregate(id string) error {
	return dispatch.E("apigw.aggregate", dispatch.NotFound, "no aggregate "+id, nil)
}

// mustExist is the check behind an empty page: the outbox and the events of
// an aggregate that does not exist answer 404, as the aggregate does. An
// aggregate exists if it has a state item (outbox mode) or an event
// (event-sourced; events are never deleted). A page with items needs no
// such read, so the check costs one or two reads on empty pages only.
// It finds the aggregate's type too, which the caller's grant must allow.
func (h *Handler) mustExist(ctx context.Context, c dispatch.Caller, id string) error {
	a, err := h.reader.Load(ctx, id)
	if err != nil {
		return err
	}
	if a.Exists() {
		return mayRead(c, a.Type, id)
	}
	evs, _, err := h.reader.ListEvents(ctx, id, 1, "")
	if err != nil {
		return err
	}
	if len(evs) > 0 {
		return mayRead(c, evs[0].AggregateType, id)
	}
	return errNoAggregate(id)
}

// mayRead answers an aggregate of type typ outside the caller's grant as
// an unknown one.
func mayRead(c dispatch.Caller, typ, id string) error {
	if !c.MayAccess(typ, id) {
		return errNoAggregate(id)
	}
	return nil
}

type outboxView struct {
	EventID   string          `json:"eventId"`
	EventType string          `json:"eventType"`
	Target    dispatch.Target `json:"target"`
	Version   int64           `json:"version"`
	Seq       int             `json:"seq"`
	Status    dispatch.Status `json:"status"`
	Attempts  int             `json:"attempts"`
	LastError string          `json:"lastError,omitempty"`
	CreatedAt time.Time       `json:"createdAt"`
	// LeaseUntil: a SENDING email is claimed by a relay until then; after,
	// another relay, the replay or the sweeper may send it.
	LeaseUntil *time.Time `json:"leaseUntil,omitempty"`
	// WaitingFor: an undelivered item is held back by an earlier version of
	// its aggregate that is neither DELIVERED nor FAILED (the order rule).
	WaitingFor *waitView `json:"waitingFor,omitempty"`
}

type waitView struct {
	Version int64  `json:"version"`
	Seq     int    `json:"seq"`
	Reason  string `json:"reason"`
}

// Outbox page sizes.
const (
	DefaultOutboxLimit = 50
	MaxOutboxLimit     = 100
)

// listPage reads the aggregate id, the limit and the cursor of a paged GET
// and one page through list; on a bad request or a failed read it returns
// the problem response to send instead.
func (h *Handler) listPage(ctx context.Context, req events.APIGatewayV2HTTPRequest, c dispatch.Caller, o *outcome,
	list func(ctx context.Context, id string, limit int, cursor string) ([]dispatch.OutboxItem, string, error),
) (string, []dispatch.OutboxItem, string, *events.APIGatewayV2HTTPResponse) {
	id, err := pathID(req)
	o.aggregateID = id
	var items []dispatch.OutboxItem
	var next string
	if err == nil {
		err = mayRead(c, "", id)
	}
	if err == nil {
		var limit int
		if limit, err = pageLimit(req); err == nil {
			items, next, err = list(ctx, id, limit, req.QueryStringParameters["cursor"])
		}
		switch {
		case err == nil && len(items) == 0:
			err = h.mustExist(ctx, c, id)
		case err == nil:
			err = mayRead(c, items[0].AggregateType, id)
		}
	}
	if err != nil {
		o.err = err
		resp := o.fail(problemFor(err))
		return id, nil, "", &resp
	}
	return id, items, next, nil
}

func (h *Handler) outbox(ctx context.Context, req events.APIGatewayV2HTTPRequest, c dispatch.Caller, o *outcome) events.APIGatewayV2HTTPResponse {
	id, items, next, fail := h.listPage(ctx, req, c, o, h.reader.ListOutbox)
	if fail != nil {
		return *fail
	}
	views := make([]outboxView, len(items))
	var waits bool
	for i, it := range items {
		// The payload holds addresses and bodies: it is never shown here.
		views[i] = outboxView{EventID: it.EventID, EventType: it.EventType, Target: it.Target, Version: it.Version, Seq: it.Seq,
			Status: it.Status, Attempts: it.Attempts, LastError: it.LastError, CreatedAt: it.CreatedAt}
		if it.Status == dispatch.Sending {
			until := it.LeaseUntil
			views[i].LeaseUntil = &until
		}
		if it.Status == dispatch.Pending || it.Status == dispatch.Sending {
			waits = true
		}
	}
	if waits {
		// One read of the aggregate's first unsettled item, wherever it is
		// (it may be on an earlier page): every later version waits for it.
		first, ok, err := h.reader.FirstUnsettled(ctx, id)
		if err != nil {
			o.err = err
			return o.fail(problemFor(err))
		}
		for i, it := range items {
			if ok && (it.Status == dispatch.Pending || it.Status == dispatch.Sending) && first.Version < it.Version {
				views[i].WaitingFor = &waitView{first.Version, first.Seq, "an earlier version of this aggregate is neither DELIVERED nor FAILED"}
			}
		}
	}
	out := map[string]any{"aggregateId": id, "items": views}
	if next != "" {
		out["nextCursor"] = next
	}
	return jsonResponse(o, http.StatusOK, out)
}

// pageLimit reads a page's limit query parameter (the outbox's and the
// events' page sizes are the same).
func pageLimit(req events.APIGatewayV2HTTPRequest) (int, error) {
	s := req.QueryStringParameters["limit"]
	if s == "" {
		return DefaultOutboxLimit, nil
	}
	n, err := strconv.Atoi(s)
	if err != nil || n < 1 || n > MaxOutboxLimit {
		return 0, dispatch.InvalidField("limit", "must be a whole number from 1 to %d", MaxOutboxLimit)
	}
	return n, nil
}

type eventView struct {
	EventID   string          `json:"eventId"`
	EventType string          `json:"eventType"`
	Version   int64           `json:"version"`
	Data      map[string]any  `json:"data"`
	Status    dispatch.Status `json:"status"`
	Attempts  int             `json:"attempts"`
	LastError string          `json:"lastError,omitempty"`
	CreatedAt time.Time       `json:"createdAt"`
}

// events answers GET /v1/aggregates/{id}/events: an event-sourced
// aggregate's history, in version order, paged like the outbox. An
// aggregate in outbox mode keeps no history: its list is empty, not a 404
// (an unknown aggregate's is a 404).
func (h *Handler) events(ctx context.Context, req events.APIGatewayV2HTTPRequest, c dispatch.Caller, o *outcome) events.APIGatewayV2HTTPResponse {
	id, items, next, fail := h.listPage(ctx, req, c, o, h.reader.ListEvents)
	if fail != nil {
		return *fail
	}
	views := make([]eventView, len(items))
	for i, it := range items {
		data := map[string]any{}
		if m, err := dispatch.DecodeJSONObject(it.Payload); err == nil {
			if d, ok := m["data"].(map[string]any); ok {
				data = d
			}
		}
		views[i] = eventView{EventID: it.EventID, EventType: it.EventType, Version: it.Version, Data: data,
			Status: it.Status, Attempts: it.Attempts, LastError: it.LastError, CreatedAt: it.CreatedAt}
	}
	out := map[string]any{"aggregateId": id, "events": views}
	if next != "" {
		out["nextCursor"] = next
	}
	return jsonResponse(o, http.StatusOK, out)
}

func pathID(req events.APIGatewayV2HTTPRequest) (string, error) {
	id := req.PathParameters["id"]
	if !dispatch.ValidAggregateID(id) {
		return truncateID(id), dispatch.InvalidField("id", "must be 1 to %d characters of A-Z a-z 0-9 _ - starting with a letter or digit", dispatch.MaxAggregateIDLen)
	}
	return id, nil
}

func truncateID(id string) string {
	if len(id) > dispatch.MaxAggregateIDLen {
		return id[:dispatch.MaxAggregateIDLen]
	}
	return id
}

// routeOf returns the route key; with a $default route (or a local runner
// that leaves it empty) it is matched from the method and path.
func routeOf(req events.APIGatewayV2HTTPRequest) string {
	if slices.Contains(routes, req.RouteKey) {
		return req.RouteKey
	}
	method, path := req.RequestContext.HTTP.Method, req.RawPath
	parts := strings.Split(strings.Trim(path, "/"), "/")
	switch {
	case method == http.MethodPost && path == "/v1/commands":
		return RouteCommands
	case method == http.MethodGet && len(parts) == 3 && parts[0] == "v1" && parts[1] == "aggregates":
		return RouteAggregate
	case method == http.MethodGet && len(parts) == 4 && parts[0] == "v1" && parts[1] == "aggregates" && parts[3] == "outbox":
		return RouteAggregateOutbox
	case method == http.MethodGet && len(parts) == 4 && parts[0] == "v1" && parts[1] == "aggregates" && parts[3] == "events":
		return RouteAggregateEvents
	}
	return ""
}

// methodOf returns the request's method; an event built without the HTTP
// context (by hand) has it in its route key only.
func methodOf(req events.APIGatewayV2HTTPRequest) string {
	if m := req.RequestContext.HTTP.Method; m != "" {
		return m
	}
	m, _, _ := strings.Cut(req.RouteKey, " ")
	return m
}

func base64Len(req events.APIGatewayV2HTTPRequest) int {
	if req.IsBase64Encoded {
		return base64.StdEncoding.DecodedLen(len(req.Body))
	}
	return len(req.Body)
}

func bodyOf(req events.APIGatewayV2HTTPRequest) ([]byte, error) {
	if !req.IsBase64Encoded {
		return []byte(req.Body), nil
	}
	return base64.StdEncoding.DecodeString(req.Body)
}

func header(h map[string]string, name string) string {
	if v, ok := h[name]; ok {
		return v
	}
	for k, v := range h {
		if strings.EqualFold(k, name) {
			return v
		}
	}
	return ""
}

func jsonResponse(o *outcome, status int, v any) events.APIGatewayV2HTTPResponse {
	b, err := json.Marshal(v)
	if err != nil {
		o.err = err
		return o.fail(internalProblem.problem(""))
	}
	return events.APIGatewayV2HTTPResponse{StatusCode: status, Headers: map[string]string{"Content-Type": "application/json"}, Body: string(b)}
}

func problemResponse(p Problem) events.APIGatewayV2HTTPResponse {
	hdr := map[string]string{"Content-Type": "application/problem+json"}
	if p.Status == http.StatusServiceUnavailable {
		hdr["Retry-After"] = "1"
	}
	return events.APIGatewayV2HTTPResponse{StatusCode: p.Status, Headers: hdr, Body: p.body()}
}

// record logs the request once and emits its metrics. No bodies and no
// addresses: only ids, types, outcome and timing.
func (h *Handler) record(ctx context.Context, reqID string, o outcome, resp events.APIGatewayV2HTTPResponse, took time.Duration) {
	attrs := []any{
		slog.String("requestId", reqID), slog.String("callerId", o.callerID), slog.String("route", o.route),
		slog.Int("status", resp.StatusCode), slog.Float64("latencyMs", float64(took.Microseconds())/1000),
	}
	if o.cmdType != "" {
		attrs = append(attrs, slog.String("commandType", o.cmdType))
	}
	if o.aggregateID != "" {
		attrs = append(attrs, slog.String("aggregateId", o.aggregateID))
	}
	if o.attempts > 0 {
		attrs = append(attrs, slog.Int("attempts", o.attempts))
	}
	if o.replayed {
		attrs = append(attrs, slog.Bool("replayed", true))
	}
	var p Problem
	if resp.StatusCode >= 400 {
		if o.problem != nil {
			p = *o.problem
		} else {
			p = internalProblem.problem("")
		}
		attrs = append(attrs, slog.String("outcome", "rejected"), slog.String("reason", p.slug))
	} else {
		attrs = append(attrs, slog.String("outcome", "accepted"))
	}
	level := slog.LevelInfo
	if resp.StatusCode >= 500 {
		level = slog.LevelError
		if o.err != nil {
			attrs = append(attrs, slog.String("error", o.err.Error()))
		}
	}
	h.log.Log(ctx, level, "request", attrs...)

	if o.route != RouteCommands {
		return
	}
	ms := obs.Metric{Name: "CommandLatency", Value: float64(took.Microseconds()) / 1000, Unit: obs.Milliseconds}
	if resp.StatusCode < 400 {
		name := "CommandAccepted"
		if o.replayed {
			name = "CommandReplayed"
		}
		h.emit(o, "CommandType", o.cmdType, obs.Metric{Name: name, Value: 1, Unit: obs.Count}, ms)
		return
	}
	h.emit(o, "Reason", p.slug, obs.Metric{Name: "CommandRejected", Value: 1, Unit: obs.Count})
}

// emit counts a command under the dimension set the alarms and the
// dashboard use (Service and by), and under Service and CallerId as well
// for a registered caller (or the default one): their number is bounded
// (caller.MaxCallers), an IAM principal's ARN without a registry is not.
func (h *Handler) emit(o outcome, by, value string, ms ...obs.Metric) {
	dims := map[string]string{"Service": "command", by: value}
	sets := [][]string{{by, "Service"}}
	if dispatch.ValidCallerID(o.callerID) {
		dims["CallerId"] = o.callerID
		sets = append(sets, []string{"CallerId", "Service"})
	}
	h.metrics.EmitSets(dims, sets, ms...)
}
