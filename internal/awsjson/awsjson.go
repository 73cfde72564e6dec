// Package awsjson makes one AWS JSON-protocol call as a single request
// signed with the SDK's own SigV4 signer, for the few calls a function makes
// where linking the whole service client would cost more than the call: a
// service package and its schemas are megabytes of binary and milliseconds
// of init (docs/cost.md, "Cold start").
//
// The request is what the SDK's client sends (X-Amz-Target <prefix><op>, AWS
// JSON 1.0 or 1.1), to the endpoint the SDK would choose, retried as the
// SDK's standard retryer would (3 attempts on throttling, 5xx and network
// failures). Errors are *APIError, which is a smithy.APIError with its HTTP
// status, so the adapters' classifiers read them as they read the SDK's.
package awsjson

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"strings"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	v4 "github.com/aws/aws-sdk-go-v2/aws/signer/v4"
	"github.com/aws/smithy-go"

	"github.com/dispatcher-dev/dispatcher/internal/retry"
)

// Service is what a service needs to be called.
type Service struct {
	SigningName  string // SigV4 service name, also the regional endpoint's host prefix
	SDKID        string // the SDK's service id ("SQS", "Secrets Manager", "SSM")
	TargetPrefix string // X-Amz-Target prefix, e.g. "AmazonSQS."
	JSONVersion  string // "1.0" or "1.1" (the Content-Type's application/x-amz-json-<v>)
	// MaxResponse bounds what is read of an answer, in bytes.
	MaxResponse int64
	// QueryCompatible: the service also sends its legacy query-protocol
	// code in the x-amzn-query-error header, and the SDK reports that code
	// (SQS: "AWS.SimpleQueueService.NonExistentQueue").
	QueryCompatible bool
}

// Attempts is how many times a throttled or failed (5xx, network) call is
// tried, as the SDK's standard retryer does, unless the configuration's
// RetryMaxAttempts says otherwise.
const Attempts = 3

// retryBase and retryCap bound the wait before each retry.
const retryBase, retryCap = 100 * time.Millisecond, 2 * time.Second

// Client calls AWS JSON services with one configuration.
type Client struct {
	cfg    aws.Config
	signer *v4.Signer
	getenv func(string) string
}

// New returns a Client using cfg's region, credentials and HTTP client.
func New(cfg aws.Config) *Client { return &Client{cfg: cfg, signer: v4.NewSigner(), getenv: os.Getenv} }

// APIError is an error answer of the service.
type APIError struct {
	Operation string // e.g. "AmazonSQS.SendMessage"
	Status    int
	Code      string // e.g. "QueueDoesNotExist", or the legacy code of a query-compatible service
	Message   string
}

func (e *APIError) Error() string {
	return fmt.Sprintf("%s: HTTP %d %s: %s", e.Operation, e.Status, e.Code, e.Message)
}

// ErrorCode, ErrorMessage and ErrorFault make it a smithy.APIError.
func (e *APIError) ErrorCode() string    { return e.Code }
func (e *APIError) ErrorMessage() string { return e.Message }
func (e *APIError) ErrorFault() smithy.ErrorFault {
	if e.Status >= 500 {
		return smithy.FaultServer
	}
	return smithy.FaultClient
}

// HTTPStatusCode is the answer's status, as the SDK's response errors give it.
func (e *APIError) HTTPStatusCode() int { return e.Status }

// Retryable reports whether the SDK's standard retryer would try again.
func (e *APIError) Retryable() bool {
	switch e.Code {
	case "ThrottlingException", "Throttling", "TooManyUpdates", "RequestThrottled",
		"RequestThrottledException", "TooManyRequestsException", "RequestLimitExceeded",
		"ProvisionedThroughputExceededException", "SlowDown":
		return true
	}
	return e.Status >= 500 || e.Status == http.StatusTooManyRequests
}

// Call makes the call op with the JSON of in, retried as the SDK's standard
// retryer would, and decodes the answer into out (nil: the answer is read
// and dropped).
func (c *Client) Call(ctx context.Context, svc Service, op string, in, out any) error {
	body, err := json.Marshal(in)
	if err != nil {
		return err
	}
	endpoint, err := c.endpoint(svc)
	if err != nil {
		return err
	}
	attempts := Attempts
	if c.cfg.RetryMaxAttempts > 0 {
		attempts = c.cfg.RetryMaxAttempts
	}
	var last error
	for attempt := range attempts {
		if attempt > 0 {
			// The project's one backoff (capped exponential, full jitter).
			if err := retry.Sleep(ctx, retry.Backoff(attempt, retryBase, retryCap)); err != nil {
				return fmt.Errorf("%w (after: %v)", err, last)
			}
		}
		var apiErr *APIError
		var f *final
		last = c.once(ctx, svc, op, endpoint, body, out)
		if last == nil || errors.As(last, &apiErr) && !apiErr.Retryable() || errors.As(last, &f) || ctx.Err() != nil {
			return last
		}
	}
	return last
}

// final is an error that trying again cannot mend, or that must not be
// tried again: no credentials, or an answer of 200 that cannot be read (the
// call applied; sending it again would apply it twice).
type final struct{ error }

func (f *final) Unwrap() error { return f.error }

func (c *Client) once(ctx context.Context, svc Service, op, endpoint string, body []byte, out any) error {
	name := svc.TargetPrefix + op
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, endpoint, bytes.NewReader(body))
	if err != nil {
		return fmt.Errorf("%s: %w", name, err)
	}
	req.Header.Set("Content-Type", "application/x-amz-json-"+svc.JSONVersion)
	req.Header.Set("X-Amz-Target", name)
	if svc.QueryCompatible {
		req.Header.Set("X-Amzn-Query-Mode", "true") // as the SDK sends it
	}
	if c.cfg.Credentials == nil {
		return &final{fmt.Errorf("%s: no AWS credentials configured", name)}
	}
	creds, err := c.cfg.Credentials.Retrieve(ctx)
	if err != nil {
		return &final{fmt.Errorf("%s: credentials: %w", name, err)}
	}
	sum := sha256.Sum256(body)
	if err := c.signer.SignHTTP(ctx, creds, req, hex.EncodeToString(sum[:]), svc.SigningName, c.cfg.Region, time.Now()); err != nil {
		return &final{fmt.Errorf("%s: sign: %w", name, err)}
	}
	client := c.cfg.HTTPClient
	if client == nil {
		client = http.DefaultClient
	}
	resp, err := client.Do(req)
	if err != nil {
		return fmt.Errorf("%s: %w", name, err)
	}
	defer resp.Body.Close()
	data, err := io.ReadAll(io.LimitReader(resp.Body, svc.MaxResponse+1))
	if err != nil {
		return fmt.Errorf("%s: read the answer: %w", name, err)
	}
	if int64(len(data)) > svc.MaxResponse {
		return &final{fmt.Errorf("%s: the answer is over %d bytes", name, svc.MaxResponse)}
	}
	if resp.StatusCode != http.StatusOK {
		return decodeError(name, svc, resp, data)
	}
	if out == nil {
		return nil
	}
	if err := json.Unmarshal(data, out); err != nil {
		return &final{fmt.Errorf("%s: decode the answer: %w", name, err)}
	}
	return nil
}

// decodeError reads an AWS JSON error: the code in X-Amzn-ErrorType or the
// body's __type (either may carry a namespace before '#' and a suffix after
// ':'), or, for a query-compatible service, the legacy code before ';' in
// x-amzn-query-error; the message in "message" or "Message".
func decodeError(op string, svc Service, resp *http.Response, data []byte) error {
	var e struct {
		Type     string `json:"__type"`
		Message  string `json:"message"`
		MessageU string `json:"Message"`
	}
	_ = json.Unmarshal(data, &e)
	code := resp.Header.Get("X-Amzn-ErrorType")
	if code == "" {
		code = e.Type
	}
	if i := strings.LastIndexByte(code, '#'); i >= 0 {
		code = code[i+1:]
	}
	if i := strings.IndexByte(code, ':'); i >= 0 {
		code = code[:i]
	}
	if q := resp.Header.Get("X-Amzn-Query-Error"); svc.QueryCompatible && q != "" {
		if legacy, _, _ := strings.Cut(q, ";"); legacy != "" {
			code = legacy
		}
	}
	if code == "" {
		code = http.StatusText(resp.StatusCode)
	}
	msg := e.Message
	if msg == "" {
		msg = e.MessageU
	}
	return &APIError{Operation: op, Status: resp.StatusCode, Code: code, Message: msg}
}

// endpoint is where the SDK would send the service's requests:
// AWS_ENDPOINT_URL_<SERVICE>, then AWS_ENDPOINT_URL (both unless
// AWS_IGNORE_CONFIGURED_ENDPOINT_URLS=true), then the configuration's base
// endpoint, then the regional endpoint.
func (c *Client) endpoint(svc Service) (string, error) {
	if !strings.EqualFold(c.getenv("AWS_IGNORE_CONFIGURED_ENDPOINT_URLS"), "true") {
		for _, k := range []string{"AWS_ENDPOINT_URL_" + strings.ReplaceAll(strings.ToUpper(svc.SDKID), " ", "_"), "AWS_ENDPOINT_URL"} {
			if v := c.getenv(k); v != "" {
				return v, nil
			}
		}
	}
	if c.cfg.BaseEndpoint != nil && *c.cfg.BaseEndpoint != "" {
		return *c.cfg.BaseEndpoint, nil
	}
	region := c.cfg.Region
	if region == "" {
		return "", fmt.Errorf("%s: no AWS region configured (AWS_REGION)", svc.SigningName)
	}
	suffix := "amazonaws.com"
	if strings.HasPrefix(region, "cn-") {
		suffix = "amazonaws.com.cn"
	}
	return "https://" + svc.SigningName + "." + region + "." + suffix, nil
}
