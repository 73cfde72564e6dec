package runner

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"reflect"
	"sync"
	"time"

	"github.com/aws/aws-lambda-go/lambda"
	"github.com/aws/aws-lambda-go/lambdacontext"
)

// Function is one Lambda function as the emulated triggers see it: a JSON
// event in, a JSON result out, as Lambda's Invoke API sees it. In-process
// functions and bootstraps under the Runtime Interface Emulator look alike.
type Function interface {
	Invoke(ctx context.Context, requestID string, payload []byte) ([]byte, error)
}

// FunctionError is the function's own failure (Lambda's "Unhandled": it
// returned an error, panicked or timed out), as opposed to a failure to
// reach it.
type FunctionError struct {
	Type    string `json:"errorType"`
	Message string `json:"errorMessage"`
}

func (e *FunctionError) Error() string { return "function error " + e.Type + ": " + e.Message }

// InProcess runs a handler in this process, through aws-lambda-go's own
// JSON handling (lambda.NewHandler), with a Lambda context (request id,
// function ARN) and the function's timeout as the deadline.
type InProcess struct {
	arn     string
	timeout time.Duration
	h       lambda.Handler
}

// NewInProcess wraps a handler function of any signature lambda.Start takes.
func NewInProcess(functionArn string, timeout time.Duration, handler any) *InProcess {
	return &InProcess{arn: functionArn, timeout: timeout, h: lambda.NewHandler(handler)}
}

// Invoke implements Function.
func (f *InProcess) Invoke(ctx context.Context, requestID string, payload []byte) (out []byte, err error) {
	if f.timeout > 0 {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, f.timeout)
		defer cancel()
	}
	ctx = lambdacontext.NewContext(ctx, &lambdacontext.LambdaContext{AwsRequestID: requestID, InvokedFunctionArn: f.arn})
	defer func() {
		if p := recover(); p != nil {
			out, err = nil, &FunctionError{Type: "Runtime.Panic", Message: fmt.Sprint(p)}
		}
	}()
	out, err = f.h.Invoke(ctx, payload)
	if err != nil {
		if ctx.Err() == context.DeadlineExceeded && errors.Is(err, context.DeadlineExceeded) {
			return nil, &FunctionError{Type: "Sandbox.Timedout", Message: fmt.Sprintf("Task timed out after %.2f seconds", f.timeout.Seconds())}
		}
		return nil, &FunctionError{Type: errorType(err), Message: err.Error()}
	}
	return out, nil
}

// errorType names an error as aws-lambda-go does in its error response.
func errorType(err error) string {
	t := reflect.TypeOf(err)
	if t.Kind() == reflect.Pointer {
		return t.Elem().Name()
	}
	return t.Name()
}

// RIEFunction invokes a bootstrap running under the Lambda Runtime
// Interface Emulator. The emulator runs one invocation at a time (as one
// Lambda execution environment does), so calls are serialised.
type RIEFunction struct {
	URL    string // http://127.0.0.1:<port>/2015-03-31/functions/function/invocations
	Client *http.Client
	mu     sync.Mutex
}

// Invoke implements Function.
func (f *RIEFunction) Invoke(ctx context.Context, requestID string, payload []byte) ([]byte, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, f.URL, bytes.NewReader(payload))
	if err != nil {
		return nil, err
	}
	req.Header.Set("X-Amzn-RequestId", requestID)
	req.Header.Set("Content-Type", "application/json")
	c := f.Client
	if c == nil {
		c = http.DefaultClient
	}
	resp, err := c.Do(req)
	if err != nil {
		return nil, fmt.Errorf("invoke through the Runtime Interface Emulator: %w", err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		return nil, err
	}
	if resp.StatusCode != http.StatusOK {
		// 502: the runtime crashed (Runtime.ExitError) or failed its init;
		// the body says which, in the runtime's error document.
		if fe, ok := asErrorPayload(body); ok && fe.Type != "" {
			return nil, fe
		}
		return nil, &FunctionError{Type: "Runtime.Failure", Message: fmt.Sprintf("emulator answered %s: %s", resp.Status, bytes.TrimSpace(body))}
	}
	if bytes.HasPrefix(body, []byte("Task timed out after")) {
		return nil, &FunctionError{Type: "Sandbox.Timedout", Message: string(body)}
	}
	if fe, ok := asErrorPayload(body); ok {
		return nil, fe
	}
	return body, nil
}

// asErrorPayload recognises the runtime's error document: the emulator
// drops the X-Amz-Function-Error header that Lambda's Invoke API sets, so the
// body's shape is all there is.
func asErrorPayload(body []byte) (*FunctionError, bool) {
	var m map[string]json.RawMessage
	if json.Unmarshal(body, &m) != nil {
		return nil, false
	}
	if _, ok := m["errorMessage"]; !ok {
		return nil, false
	}
	for k := range m {
		switch k {
		case "errorMessage", "errorType", "stackTrace":
		default:
			return nil, false
		}
	}
	var fe FunctionError
	_ = json.Unmarshal(body, &fe)
	return &fe, true
}

// newRequestID returns a random UUID (version 4), as Lambda request ids are.
func newRequestID() string {
	var b [16]byte
	_, _ = rand.Read(b[:])
	b[6] = b[6]&0x0f | 0x40
	b[8] = b[8]&0x3f | 0x80
	return fmt.Sprintf("%x-%x-%x-%x-%x", b[0:4], b[4:6], b[6:8], b[8:10], b[10:16])
}
