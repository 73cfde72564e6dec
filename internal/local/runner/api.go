package runner

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"io"
	"log/slog"
	"mime"
	"net"
	"net/http"
	"net/url"
	"sort"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/aws/aws-lambda-go/events"
)

// API Gateway HTTP API limits.
const (
	// MaxRequestBody is API Gateway's payload limit for HTTP APIs.
	MaxRequestBody = 10 << 20
	// MaxInvokePayload is Lambda's limit for a synchronous invocation's
	// request (the event, not only the body).
	MaxInvokePayload = 6 << 20
)

// ReplayPath is the runner's own route that invokes the replay function.
// It is not part of the template's API.
const ReplayPath = "/_local/replay"

// ReplayRequestErrorType is the errorType Lambda gives the replay's
// *replay.RequestError (the type's name).
const ReplayRequestErrorType = "RequestError"

// api serves the template's HttpApi routes, as API Gateway (payload format
// 2.0) would, plus the runner's replay route.
type api struct {
	routes    []Route
	functions map[string]Function
	replay    Function // nil: no replay route
	log       *slog.Logger
	now       func() time.Time
}

func (a *api) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if r.URL.Path == ReplayPath {
		a.serveReplay(w, r)
		return
	}
	reqID := apiRequestID()
	w.Header().Set("Apigw-Requestid", reqID)
	route, params, ok := a.match(r.Method, rawPath(r))
	if !ok {
		writeMessage(w, http.StatusNotFound, "Not Found")
		return
	}
	var iam *events.APIGatewayV2HTTPRequestContextAuthorizerIAMDescription
	if route.IAM {
		if iam = sigV4Caller(r.Header.Get("Authorization")); iam == nil {
			writeMessage(w, http.StatusForbidden, "Forbidden")
			return
		}
	}
	body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, MaxRequestBody))
	if err != nil {
		var tooBig *http.MaxBytesError
		if errors.As(err, &tooBig) {
			writeMessage(w, http.StatusRequestEntityTooLarge, "Request Entity Too Large")
			return
		}
		writeMessage(w, http.StatusBadRequest, "Bad Request")
		return
	}
	ev := a.event(r, route, params, body, reqID)
	if iam != nil {
		ev.RequestContext.Authorizer = &events.APIGatewayV2HTTPRequestContextAuthorizerDescription{IAM: iam}
	}
	payload, err := json.Marshal(ev)
	if err != nil {
		writeMessage(w, http.StatusInternalServerError, "Internal Server Error")
		return
	}
	if len(payload) > MaxInvokePayload {
		writeMessage(w, http.StatusRequestEntityTooLarge, "Request Entity Too Large")
		return
	}
	fn := a.functions[route.Function]
	start := a.now()
	out, err := fn.Invoke(r.Context(), reqID, payload)
	took := a.now().Sub(start)
	if err != nil {
		var fe *FunctionError
		status := http.StatusInternalServerError
		msg := "Internal Server Error"
		if errors.As(err, &fe) && fe.Type == "Sandbox.Timedout" {
			status, msg = http.StatusServiceUnavailable, "Service Unavailable"
		}
		a.log.Error("function failed", "route", route.Key(), "function", route.Function, "requestId", reqID, "error", err.Error())
		writeMessage(w, status, msg)
		return
	}
	status := writeResult(w, out)
	a.log.Debug("request", "route", route.Key(), "status", status, "ms", took.Milliseconds())
}

// sigV4Caller reads the access key of a SigV4 Authorization header. The
// signature is not verified: locally there is no IAM to verify it against.
func sigV4Caller(h string) *events.APIGatewayV2HTTPRequestContextAuthorizerIAMDescription {
	rest, ok := strings.CutPrefix(h, "AWS4-HMAC-SHA256 ")
	if !ok {
		return nil
	}
	for part := range strings.SplitSeq(rest, ",") {
		cred, ok := strings.CutPrefix(strings.TrimSpace(part), "Credential=")
		if !ok {
			continue
		}
		key, _, _ := strings.Cut(cred, "/")
		if key == "" {
			return nil
		}
		return &events.APIGatewayV2HTTPRequestContextAuthorizerIAMDescription{
			AccessKey: key, AccountID: LocalAccountID, CallerID: key,
			UserARN: "arn:aws:iam::" + LocalAccountID + ":user/local-" + key, UserID: key,
		}
	}
	return nil
}

// match finds the route of a request as API Gateway does: an exact path
// first, then the most specific route with parameters, greedy ones last;
// a route of the request's method before an ANY route; $default last.
func (a *api) match(method, raw string) (Route, map[string]string, bool) {
	path := raw
	if p, err := url.PathUnescape(raw); err == nil {
		path = p
	}
	segs := strings.Split(strings.TrimPrefix(path, "/"), "/")
	type cand struct {
		r      Route
		params map[string]string
		score  []int
	}
	var best *cand
	for _, r := range a.routes {
		if r.Method != "ANY" && r.Method != method {
			continue
		}
		params, score, ok := matchSegments(r.segments, segs)
		if !ok {
			continue
		}
		methodScore := 1
		if r.Method == "ANY" {
			methodScore = 0
		}
		defScore := 1
		if r.Default {
			defScore = 0
		}
		c := &cand{r, params, append([]int{defScore}, append(score, methodScore)...)}
		if best == nil || better(c.score, best.score) {
			best = c
		}
	}
	if best == nil {
		return Route{}, nil, false
	}
	return best.r, best.params, true
}

// matchSegments matches path segments; the score ranks literal segments
// over {param} over {greedy+}, position by position.
func matchSegments(route, path []string) (map[string]string, []int, bool) {
	params := map[string]string{}
	score := make([]int, 0, len(route))
	for i, rs := range route {
		if strings.HasPrefix(rs, "{") && strings.HasSuffix(rs, "+}") {
			if i >= len(path) || (len(path) == i+1 && path[i] == "") {
				return nil, nil, false
			}
			params[rs[1:len(rs)-2]] = strings.Join(path[i:], "/")
			score = append(score, 0)
			return params, score, true
		}
		if i >= len(path) {
			return nil, nil, false
		}
		if strings.HasPrefix(rs, "{") && strings.HasSuffix(rs, "}") {
			if path[i] == "" {
				return nil, nil, false
			}
			params[rs[1:len(rs)-1]] = path[i]
			score = append(score, 1)
			continue
		}
		if rs != path[i] {
			return nil, nil, false
		}
		score = append(score, 2)
	}
	if len(path) != len(route) {
		return nil, nil, false
	}
	return params, score, true
}

func better(a, b []int) bool {
	for i := 0; i < len(a) && i < len(b); i++ {
		if a[i] != b[i] {
			return a[i] > b[i]
		}
	}
	return len(a) > len(b)
}

// rawPath is the path as the client sent it (percent-encoding kept).
func rawPath(r *http.Request) string {
	p := r.RequestURI
	if i := strings.IndexByte(p, '?'); i >= 0 {
		p = p[:i]
	}
	if p == "" || !strings.HasPrefix(p, "/") {
		p = r.URL.EscapedPath()
	}
	return p
}

func (a *api) event(r *http.Request, route Route, params map[string]string, body []byte, reqID string) events.APIGatewayV2HTTPRequest {
	now := a.now()
	headers := map[string]string{}
	var cookies []string
	for k, vs := range r.Header {
		lk := strings.ToLower(k)
		if lk == "cookie" {
			for _, v := range vs {
				for c := range strings.SplitSeq(v, ";") {
					if c = strings.TrimSpace(c); c != "" {
						cookies = append(cookies, c)
					}
				}
			}
			continue
		}
		headers[lk] = strings.Join(vs, ",")
	}
	headers["host"] = r.Host
	if r.ContentLength >= 0 && (r.ContentLength > 0 || r.Header.Get("Content-Length") != "" || len(body) > 0) {
		headers["content-length"] = strconv.Itoa(len(body))
	}
	ip := sourceIP(r)
	if prev := headers["x-forwarded-for"]; prev != "" {
		headers["x-forwarded-for"] = prev + ", " + ip
	} else {
		headers["x-forwarded-for"] = ip
	}
	_, port, _ := net.SplitHostPort(r.Host)
	if port == "" {
		port = "80"
	}
	headers["x-forwarded-port"] = port
	headers["x-forwarded-proto"] = "http"
	if headers["x-amzn-trace-id"] == "" {
		headers["x-amzn-trace-id"] = traceID(now)
	}

	var query map[string]string
	if r.URL.RawQuery != "" {
		query = map[string]string{}
		vals, _ := url.ParseQuery(r.URL.RawQuery)
		keys := make([]string, 0, len(vals))
		for k := range vals {
			keys = append(keys, k)
		}
		sort.Strings(keys)
		for _, k := range keys {
			query[k] = strings.Join(vals[k], ",")
		}
	}
	if len(params) == 0 {
		params = nil
	}
	host, _, err := net.SplitHostPort(r.Host)
	if err != nil {
		host = r.Host
	}
	prefix, _, _ := strings.Cut(host, ".")
	ev := events.APIGatewayV2HTTPRequest{
		Version:               "2.0",
		RouteKey:              route.Key(),
		RawPath:               rawPath(r),
		RawQueryString:        r.URL.RawQuery,
		Cookies:               cookies,
		Headers:               headers,
		QueryStringParameters: query,
		PathParameters:        params,
		RequestContext: events.APIGatewayV2HTTPRequestContext{
			RouteKey:     route.Key(),
			AccountID:    "000000000000",
			Stage:        "$default",
			RequestID:    reqID,
			APIID:        "local",
			DomainName:   host,
			DomainPrefix: prefix,
			Time:         now.UTC().Format("02/Jan/2006:15:04:05 -0700"),
			TimeEpoch:    now.UnixMilli(),
			HTTP: events.APIGatewayV2HTTPRequestContextHTTPDescription{
				Method:    r.Method,
				Path:      r.URL.Path,
				Protocol:  r.Proto,
				SourceIP:  ip,
				UserAgent: r.UserAgent(),
			},
		},
	}
	if len(body) > 0 {
		if isText(r.Header.Get("Content-Type")) && utf8.Valid(body) {
			ev.Body = string(body)
		} else {
			ev.Body = base64.StdEncoding.EncodeToString(body)
			ev.IsBase64Encoded = true
		}
	}
	return ev
}

// isText reports a content type API Gateway passes as text; every other
// body (or one that is not UTF-8) reaches the function base64-encoded.
func isText(ct string) bool {
	mt, _, err := mime.ParseMediaType(ct)
	if err != nil {
		return false
	}
	switch {
	case strings.HasPrefix(mt, "text/"),
		mt == "application/json", mt == "application/xml", mt == "application/javascript",
		mt == "application/x-www-form-urlencoded", mt == "application/graphql",
		strings.HasSuffix(mt, "+json"), strings.HasSuffix(mt, "+xml"):
		return true
	}
	return false
}

func sourceIP(r *http.Request) string {
	host, _, err := net.SplitHostPort(r.RemoteAddr)
	if err != nil {
		return r.RemoteAddr
	}
	return host
}

// writeResult turns the function's result into the HTTP response, by API
// Gateway's rules for payload format 2.0: a JSON object with a statusCode is
// a response; anything else valid is a 200 with the result as a JSON body.
func writeResult(w http.ResponseWriter, out []byte) int {
	var probe map[string]json.RawMessage
	if json.Unmarshal(out, &probe) == nil {
		if _, ok := probe["statusCode"]; ok {
			var resp events.APIGatewayV2HTTPResponse
			if err := json.Unmarshal(out, &resp); err != nil || resp.StatusCode < 100 || resp.StatusCode > 599 {
				writeMessage(w, http.StatusInternalServerError, "Internal Server Error")
				return http.StatusInternalServerError
			}
			body := []byte(resp.Body)
			if resp.IsBase64Encoded {
				b, err := base64.StdEncoding.DecodeString(resp.Body)
				if err != nil {
					writeMessage(w, http.StatusInternalServerError, "Internal Server Error")
					return http.StatusInternalServerError
				}
				body = b
			}
			for k, v := range resp.Headers {
				w.Header().Set(k, v)
			}
			for k, vs := range resp.MultiValueHeaders {
				for _, v := range vs {
					w.Header().Add(k, v)
				}
			}
			for _, c := range resp.Cookies {
				w.Header().Add("Set-Cookie", c)
			}
			w.Header().Set("Content-Length", strconv.Itoa(len(body)))
			w.WriteHeader(resp.StatusCode)
			_, _ = w.Write(body)
			return resp.StatusCode
		}
	}
	if !json.Valid(out) {
		writeMessage(w, http.StatusInternalServerError, "Internal Server Error")
		return http.StatusInternalServerError
	}
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(http.StatusOK)
	_, _ = w.Write(out)
	return http.StatusOK
}

// writeMessage answers as API Gateway does for its own errors.
func writeMessage(w http.ResponseWriter, status int, msg string) {
	b, _ := json.Marshal(map[string]string{"message": msg})
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	_, _ = w.Write(b)
}

// serveReplay invokes the replay function with the request body (a
// replay.Request) and answers with its result (a replay.Report).
func (a *api) serveReplay(w http.ResponseWriter, r *http.Request) {
	if a.replay == nil {
		writeMessage(w, http.StatusNotFound, "Not Found")
		return
	}
	if r.Method != http.MethodPost {
		w.Header().Set("Allow", http.MethodPost)
		writeMessage(w, http.StatusMethodNotAllowed, "POST a replay request, e.g. {\"mode\":\"all\"}")
		return
	}
	body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, MaxInvokePayload))
	if err != nil {
		writeMessage(w, http.StatusRequestEntityTooLarge, "Request Entity Too Large")
		return
	}
	if len(strings.TrimSpace(string(body))) == 0 {
		body = []byte("{}")
	}
	if !json.Valid(body) {
		writeMessage(w, http.StatusBadRequest, "the body must be a JSON replay request, e.g. {\"mode\":\"all\"}")
		return
	}
	ctx := context.WithoutCancel(r.Context()) // a replay runs to its end, as an invocation does
	out, err := a.replay.Invoke(ctx, newRequestID(), body)
	if err != nil {
		var fe *FunctionError
		if !errors.As(err, &fe) {
			fe = &FunctionError{Type: "InvokeError", Message: err.Error()}
		}
		b, _ := json.Marshal(fe)
		w.Header().Set("Content-Type", "application/json")
		w.Header().Set("X-Amz-Function-Error", "Unhandled")
		// A request the replay refuses is the caller's to fix: 400, with
		// the function's own message; anything else is the function's.
		status := http.StatusInternalServerError
		if fe.Type == ReplayRequestErrorType {
			status = http.StatusBadRequest
		}
		w.WriteHeader(status)
		_, _ = w.Write(b)
		return
	}
	w.Header().Set("Content-Type", "application/json")
	_, _ = w.Write(out)
}

// apiRequestID looks like API Gateway's: 16 base64 characters.
func apiRequestID() string {
	id := newRequestID()
	return base64.StdEncoding.EncodeToString([]byte(id))[:14] + "="
}

func traceID(now time.Time) string {
	id := strings.ReplaceAll(newRequestID(), "-", "")
	return "Root=1-" + strconv.FormatInt(now.Unix(), 16) + "-" + id[:24]
}
