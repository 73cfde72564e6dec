package obs

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"slices"
	"strings"

	"github.com/aws/aws-lambda-go/lambdacontext"
)

// RequestIDKey is the attribute that carries the Lambda request id.
const RequestIDKey = "requestId"

// NewLogger returns a JSON logger writing to w. Every record logged with a
// ...Context method carries the invocation's request id (ContextHandler).
func NewLogger(w io.Writer, level slog.Level) *slog.Logger {
	return slog.New(NewContextHandler(slog.NewJSONHandler(w, &slog.HandlerOptions{Level: level})))
}

// RequestID returns the Lambda request id of the invocation, or "".
func RequestID(ctx context.Context) string {
	if lc, ok := lambdacontext.FromContext(ctx); ok {
		return lc.AwsRequestID
	}
	return ""
}

// ParseLevel reads a log level as LOG_LEVEL gives it: DEBUG, INFO, WARN or
// ERROR, in any case. slog's own parser also takes offsets ("INFO+2"),
// which no one should have to guess the meaning of in a configuration.
func ParseLevel(s string) (slog.Level, error) {
	switch strings.ToUpper(s) {
	case "DEBUG":
		return slog.LevelDebug, nil
	case "INFO":
		return slog.LevelInfo, nil
	case "WARN":
		return slog.LevelWarn, nil
	case "ERROR":
		return slog.LevelError, nil
	}
	return slog.LevelInfo, fmt.Errorf("log level %q: want DEBUG, INFO, WARN or ERROR", s)
}

// ContextHandler adds what the context says about the invocation to every
// record logged with a ...Context method: the Lambda request id, as
// requestId, at the top level even inside a group. A record or a logger that
// names requestId itself keeps its own and gets no second one.
type ContextHandler struct {
	root  slog.Handler // the wrapped handler with the attributes given before any group
	inner slog.Handler // root with the groups and the attributes after them
	// after turns root into inner; empty while no group is open.
	after []func(slog.Handler) slog.Handler
	named bool // root already has a requestId attribute
}

// NewContextHandler wraps h.
func NewContextHandler(h slog.Handler) *ContextHandler {
	return &ContextHandler{root: h, inner: h}
}

// Enabled implements slog.Handler.
func (h *ContextHandler) Enabled(ctx context.Context, l slog.Level) bool {
	return h.inner.Enabled(ctx, l)
}

// Handle implements slog.Handler.
func (h *ContextHandler) Handle(ctx context.Context, r slog.Record) error {
	id := RequestID(ctx)
	if id == "" || h.named {
		return h.inner.Handle(ctx, r)
	}
	attr := slog.String(RequestIDKey, id)
	if len(h.after) == 0 {
		if hasKey(r, RequestIDKey) {
			return h.inner.Handle(ctx, r)
		}
		r = r.Clone() // the caller's record may share its attributes' array
		r.AddAttrs(attr)
		return h.inner.Handle(ctx, r)
	}
	// A group is open: the id goes in before it, the rest as given.
	top := h.root.WithAttrs([]slog.Attr{attr})
	for _, f := range h.after {
		top = f(top)
	}
	return top.Handle(ctx, r)
}

// WithAttrs implements slog.Handler.
func (h *ContextHandler) WithAttrs(attrs []slog.Attr) slog.Handler {
	if len(attrs) == 0 {
		return h
	}
	c := *h
	c.inner = h.inner.WithAttrs(attrs)
	if len(h.after) == 0 {
		c.root = c.inner
		c.named = h.named || slices.ContainsFunc(attrs, func(a slog.Attr) bool { return a.Key == RequestIDKey })
		return &c
	}
	c.after = append(slices.Clip(h.after), func(x slog.Handler) slog.Handler { return x.WithAttrs(attrs) })
	return &c
}

// WithGroup implements slog.Handler.
func (h *ContextHandler) WithGroup(name string) slog.Handler {
	if name == "" {
		return h
	}
	c := *h
	c.inner = h.inner.WithGroup(name)
	c.after = append(slices.Clip(h.after), func(x slog.Handler) slog.Handler { return x.WithGroup(name) })
	return &c
}

func hasKey(r slog.Record, key string) bool {
	found := false
	r.Attrs(func(a slog.Attr) bool {
		found = a.Key == key
		return !found
	})
	return found
}
