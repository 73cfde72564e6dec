// Package faults injects AWS failures at the HTTP layer, below the AWS SDK,
// so tests (and a chaos harness) see exactly what the SDK makes of a real
// throttle, 5xx, rejection or lost response. The emulators reject nothing the
// way AWS does; this is how the adapters' error classification is tested.
//
// Use it as:
//
//	tr := faults.New(nil) // nil: http.DefaultTransport, which reaches the emulators
//	tr.Add(faults.Fault{Match: faults.Target("SendMessageBatch"), Times: 1, Status: 500, Code: "InternalError"})
//	cfg := env.AWS.Copy()
//	cfg.HTTPClient = tr
//	cfg.RetryMaxAttempts = 1
package faults

import (
	"encoding/json"
	"io"
	"net"
	"net/http"
	"os"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"
)

// Fault describes one failure to inject.
type Fault struct {
	Match func(*http.Request) bool // which requests (nil = all)
	Times int                      // how many matching requests to affect (0 = unlimited)

	// The AWS error response returned instead of forwarding the request.
	// Code alone implies Status 400; Status alone implies the code
	// "InternalFailure" for 5xx and "BadRequest" otherwise.
	Status  int
	Code    string // e.g. "ThrottlingException", "MessageRejected"
	Message string
	// QueryCode is, for query-compatible JSON services (SQS), the legacy
	// code sent in the x-amzn-query-error header, which the SDK then reports
	// as ErrorCode(): real SQS answers QueueDoesNotExist with
	// "AWS.SimpleQueueService.NonExistentQueue". Empty means Code.
	QueryCode string

	// AfterApply forwards the request, so the write applies, then drops the
	// response and returns a connection reset: the response lost in transit.
	AfterApply bool

	// Delay waits this long (or until the request's context ends) before
	// anything else; with no Status, Code or AfterApply the request is then
	// forwarded, so Delay alone is a slow network.
	Delay time.Duration
}

// Transport is an http.RoundTripper (and an aws.HTTPClient) that injects
// Faults in front of Base. It is safe for concurrent use.
type Transport struct {
	Base http.RoundTripper

	client *http.Client

	mu       sync.Mutex
	faults   []*rule
	seen     []*http.Request // header-only copies of every request, for Count
	injected int
}

type rule struct {
	Fault
	used int
}

// New returns a Transport that forwards to base; nil means
// http.DefaultTransport, which reaches the local emulators (loopback
// endpoints from AWS_ENDPOINT_URL*) as well as AWS.
func New(base http.RoundTripper) *Transport {
	if base == nil {
		base = http.DefaultTransport
	}
	t := &Transport{Base: base}
	t.client = &http.Client{Transport: t}
	return t
}

// Client returns an *http.Client that sends through t.
func (t *Transport) Client() *http.Client { return t.client }

// Do sends req through t, so that a *Transport can be set as
// aws.Config.HTTPClient directly.
func (t *Transport) Do(req *http.Request) (*http.Response, error) { return t.client.Do(req) }

// Add appends a fault. Faults are consulted in order; the first one that
// matches and is not used up applies.
func (t *Transport) Add(f Fault) {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.faults = append(t.faults, &rule{Fault: f})
}

// Reset removes every fault and clears the counts.
func (t *Transport) Reset() {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.faults, t.seen, t.injected = nil, nil, 0
}

// Injected returns how many faults were applied since New or Reset.
func (t *Transport) Injected() int {
	t.mu.Lock()
	defer t.mu.Unlock()
	return t.injected
}

// Count returns how many requests matching match (nil = all) reached the
// transport since New or Reset, faulted or not.
func (t *Transport) Count(match func(*http.Request) bool) int {
	t.mu.Lock()
	defer t.mu.Unlock()
	n := 0
	for _, r := range t.seen {
		if match == nil || match(r) {
			n++
		}
	}
	return n
}

// RoundTrip implements http.RoundTripper.
func (t *Transport) RoundTrip(req *http.Request) (*http.Response, error) {
	f := t.pick(req)
	if f == nil {
		return t.Base.RoundTrip(req)
	}
	if f.Delay > 0 {
		timer := time.NewTimer(f.Delay)
		select {
		case <-timer.C:
		case <-req.Context().Done():
			timer.Stop()
			closeBody(req)
			return nil, req.Context().Err()
		}
	}
	switch {
	case f.AfterApply:
		resp, err := t.Base.RoundTrip(req)
		if err != nil {
			return nil, err
		}
		io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		return nil, connReset()
	case f.Status != 0 || f.Code != "":
		closeBody(req)
		return errorResponse(req, f), nil
	default:
		return t.Base.RoundTrip(req)
	}
}

// pick records req and returns the fault to apply to it, or nil.
func (t *Transport) pick(req *http.Request) *Fault {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.seen = append(t.seen, &http.Request{Method: req.Method, URL: req.URL, Header: req.Header.Clone(), Host: req.Host})
	for _, r := range t.faults {
		if r.Times > 0 && r.used >= r.Times {
			continue
		}
		if r.Match != nil && !r.Match(req) {
			continue
		}
		r.used++
		t.injected++
		f := r.Fault
		return &f
	}
	return nil
}

// Target matches JSON-protocol requests (SQS, DynamoDB) by operation, the
// suffix of their X-Amz-Target header: "SendMessageBatch" matches
// "AmazonSQS.SendMessageBatch".
func Target(op string) func(*http.Request) bool {
	return func(r *http.Request) bool {
		target := r.Header.Get("X-Amz-Target")
		return target == op || strings.HasSuffix(target, "."+op)
	}
}

// Path matches REST requests whose URL path contains substr, such as
// "/v2/email/outbound-emails" for SES v2 SendEmail.
func Path(substr string) func(*http.Request) bool {
	return func(r *http.Request) bool { return strings.Contains(r.URL.Path, substr) }
}

// errorResponse builds the error the SDK would get from AWS: for awsJson1_0
// services the code in the body's __type (plus x-amzn-query-error for the
// query-compatible ones, which the SDK prefers); for restJson1 services
// (SES v2) the code in the X-Amzn-Errortype header.
func errorResponse(req *http.Request, f *Fault) *http.Response {
	status, code := f.Status, f.Code
	switch {
	case status == 0:
		status = http.StatusBadRequest
	case code == "" && status >= 500:
		code = "InternalFailure"
	case code == "":
		code = "BadRequest"
	}
	msg := f.Message
	if msg == "" {
		msg = "injected fault: " + code
	}
	h := http.Header{}
	h.Set("X-Amzn-Requestid", "faults-"+strconv.Itoa(status))
	var body map[string]string
	if req.Header.Get("X-Amz-Target") != "" {
		body = map[string]string{"__type": code, "message": msg}
		h.Set("Content-Type", "application/x-amz-json-1.0")
		if strings.EqualFold(req.Header.Get("X-Amzn-Query-Mode"), "true") {
			q := f.QueryCode
			if q == "" {
				q = code
			}
			fault := "Sender"
			if status >= 500 {
				fault = "Receiver"
			}
			h.Set("X-Amzn-Query-Error", q+";"+fault)
		}
	} else {
		body = map[string]string{"message": msg}
		h.Set("Content-Type", "application/json")
		h.Set("X-Amzn-Errortype", code)
	}
	b, _ := json.Marshal(body)
	return &http.Response{
		Status:        strconv.Itoa(status) + " " + http.StatusText(status),
		StatusCode:    status,
		Proto:         "HTTP/1.1",
		ProtoMajor:    1,
		ProtoMinor:    1,
		Header:        h,
		Body:          io.NopCloser(strings.NewReader(string(b))),
		ContentLength: int64(len(b)),
		Request:       req,
	}
}

// connReset is the error a client sees when the server's connection drops
// before the response arrives.
func connReset() error {
	return &net.OpError{Op: "read", Net: "tcp", Err: os.NewSyscallError("read", syscall.ECONNRESET)}
}

func closeBody(req *http.Request) {
	if req.Body != nil {
		req.Body.Close()
	}
}
