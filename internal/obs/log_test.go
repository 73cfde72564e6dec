package obs

import (
	"bytes"
	"context"
	"encoding/json"
	"log/slog"
	"strings"
	"testing"
	"testing/slogtest"

	"github.com/aws/aws-lambda-go/lambdacontext"
)

func invocation(id string) context.Context {
	return lambdacontext.NewContext(context.Background(), &lambdacontext.LambdaContext{AwsRequestID: id})
}

func TestLogLinesCarryTheRequestID(t *testing.T) {
	tests := []struct {
		name string
		log  func(*slog.Logger)
		want string // the line, without time and level
	}{
		{"adds the request id from the context",
			func(l *slog.Logger) { l.InfoContext(invocation("req-1"), "sent", "eventId", "e-1") },
			`{"msg":"sent","eventId":"e-1","requestId":"req-1"}`},
		{"adds nothing without a Lambda context",
			func(l *slog.Logger) { l.InfoContext(context.Background(), "sent", "eventId", "e-1") },
			`{"msg":"sent","eventId":"e-1"}`},
		{"adds nothing to a call without a context",
			func(l *slog.Logger) { l.Info("cold start") },
			`{"msg":"cold start"}`},
		{"keeps the attributes given to With",
			func(l *slog.Logger) { l.With("function", "command").InfoContext(invocation("req-2"), "request") },
			`{"msg":"request","function":"command","requestId":"req-2"}`},
		{"keeps the id at the top level inside a group",
			func(l *slog.Logger) {
				l.With("function", "relay").WithGroup("batch").With("size", 3).InfoContext(invocation("req-3"), "done", "failed", 1)
			},
			`{"msg":"done","function":"relay","requestId":"req-3","batch":{"size":3,"failed":1}}`},
		{"keeps nested groups and their attributes",
			func(l *slog.Logger) {
				l.WithGroup("a").WithGroup("b").With("x", 1).InfoContext(invocation("req-4"), "m", "y", 2)
			},
			`{"msg":"m","requestId":"req-4","a":{"b":{"x":1,"y":2}}}`},
		{"does not repeat an id the record names",
			func(l *slog.Logger) { l.InfoContext(invocation("req-5"), "request", "requestId", "req-5") },
			`{"msg":"request","requestId":"req-5"}`},
		{"does not repeat an id the logger names",
			func(l *slog.Logger) { l.With("requestId", "req-6").InfoContext(invocation("req-6"), "request") },
			`{"msg":"request","requestId":"req-6"}`},
		{"leaves the level filter to the wrapped handler",
			func(l *slog.Logger) { l.DebugContext(invocation("req-7"), "noise") },
			``},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var buf bytes.Buffer
			tt.log(NewLogger(&buf, slog.LevelInfo))
			if got := withoutTimeAndLevel(t, buf.String()); got != tt.want {
				t.Errorf("line\n got %s\nwant %s", got, tt.want)
			}
		})
	}
}

// withoutTimeAndLevel drops the first two keys of a JSON line, keeping the
// order of the rest (which says where the id went).
func withoutTimeAndLevel(t *testing.T, line string) string {
	t.Helper()
	line = strings.TrimSuffix(line, "\n")
	if line == "" {
		return ""
	}
	if strings.Count(line, "\n") > 0 {
		t.Fatalf("more than one line: %s", line)
	}
	var m map[string]any
	if err := json.Unmarshal([]byte(line), &m); err != nil {
		t.Fatalf("not JSON: %v: %s", err, line)
	}
	if m["time"] == nil || m["level"] == nil {
		t.Fatalf("no time or level: %s", line)
	}
	_, rest, _ := strings.Cut(line, `,"msg":`)
	return `{"msg":` + rest
}

func TestParseLevel(t *testing.T) {
	tests := []struct {
		name    string
		in      string
		want    slog.Level
		wantErr bool
	}{
		{"reads DEBUG", "DEBUG", slog.LevelDebug, false},
		{"reads INFO", "INFO", slog.LevelInfo, false},
		{"reads WARN", "WARN", slog.LevelWarn, false},
		{"reads ERROR", "ERROR", slog.LevelError, false},
		{"reads lower case", "debug", slog.LevelDebug, false},
		{"reads mixed case", "Warn", slog.LevelWarn, false},
		{"refuses an unknown name", "LOUD", 0, true},
		{"refuses WARNING", "WARNING", 0, true},
		{"refuses slog's offsets", "INFO+2", 0, true},
		{"refuses a number", "-4", 0, true},
		{"refuses surrounding spaces", " INFO", 0, true},
		{"refuses the empty string", "", 0, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := ParseLevel(tt.in)
			if tt.wantErr {
				if err == nil {
					t.Fatalf("ParseLevel(%q) = %v, want an error", tt.in, got)
				}
				if !strings.Contains(err.Error(), "DEBUG, INFO, WARN or ERROR") {
					t.Errorf("error %q does not say what is accepted", err)
				}
				return
			}
			if err != nil || got != tt.want {
				t.Errorf("ParseLevel(%q) = %v, %v; want %v", tt.in, got, err, tt.want)
			}
		})
	}
}

// The wrapped handler's own behaviour (attributes, groups, empty groups,
// resolved values) passes through unchanged.
func TestContextHandlerIsAConformingHandler(t *testing.T) {
	var buf bytes.Buffer
	h := NewContextHandler(slog.NewJSONHandler(&buf, nil))
	err := slogtest.TestHandler(h, func() []map[string]any {
		var out []map[string]any
		for _, line := range bytes.Split(bytes.TrimSpace(buf.Bytes()), []byte("\n")) {
			var m map[string]any
			if err := json.Unmarshal(line, &m); err != nil {
				t.Fatalf("not JSON: %v: %s", err, line)
			}
			out = append(out, m)
		}
		return out
	})
	if err != nil {
		t.Error(err)
	}
}
