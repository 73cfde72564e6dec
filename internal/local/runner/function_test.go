package runner_test

import (
	"context"
	"errors"
	"net/http"
	"net/http/httptest"
	"testing"

	"github.com/dispatcher-dev/dispatcher/internal/local/runner"
)

// The emulator's answers, as the pinned RIE gives them (recorded from it:
// a bootstrap killed mid-invocation, one that returned an error, one that
// returned a result), become what Lambda's Invoke API would report.
func TestRIEAnswersBecomeLambdaOutcomes(t *testing.T) {
	tests := []struct {
		name     string
		status   int
		body     string
		wantType string // "" = a result
	}{
		{"runtime killed", 502, `{"errorType":"Runtime.ExitError","errorMessage":"RequestId: 5de1b08c Error: Runtime exited with error: signal: killed"}`, "Runtime.ExitError"},
		{"handler error", 200, `{"errorMessage":"boom","errorType":"errorString"}`, "errorString"},
		{"timeout", 200, `Task timed out after 3.00 seconds`, "Sandbox.Timedout"},
		{"502 without an error document", 502, `upstream gone`, "Runtime.Failure"},
		{"a result", 200, `{"batchItemFailures":[]}`, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				w.WriteHeader(tt.status)
				_, _ = w.Write([]byte(tt.body))
			}))
			defer srv.Close()
			out, err := (&runner.RIEFunction{URL: srv.URL}).Invoke(context.Background(), "req-1", []byte(`{}`))
			var fe *runner.FunctionError
			switch {
			case tt.wantType == "" && err != nil:
				t.Fatalf("err %v, want the result", err)
			case tt.wantType == "" && string(out) != tt.body:
				t.Fatalf("result %q, want %q", out, tt.body)
			case tt.wantType != "" && !errors.As(err, &fe):
				t.Fatalf("err %v, want a FunctionError", err)
			case tt.wantType != "" && fe.Type != tt.wantType:
				t.Fatalf("error type %q, want %q", fe.Type, tt.wantType)
			}
		})
	}
}
