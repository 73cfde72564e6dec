// Package obs is logging and metrics for the functions: slog JSON lines that
// carry the Lambda request id, and CloudWatch Embedded Metric Format lines,
// which CloudWatch turns into metrics without an API call.
package obs

import (
	"encoding/json"
	"io"
	"sort"
	"sync"
	"time"
)

// Unit is a CloudWatch metric unit.
type Unit string

// The units used here.
const (
	Count        Unit = "Count"
	Milliseconds Unit = "Milliseconds"
	Seconds      Unit = "Seconds"
)

// Metric is one value.
type Metric struct {
	Name   string
	Value  float64
	Values []float64 // several samples in one line (at most 100), instead of Value
	Unit   Unit
}

// Metrics writes EMF lines. It is safe for concurrent use.
type Metrics struct {
	mu        sync.Mutex
	w         io.Writer
	namespace string
	now       func() time.Time
}

// NewMetrics returns an EMF writer for one namespace.
func NewMetrics(w io.Writer, namespace string) *Metrics {
	return &Metrics{w: w, namespace: namespace, now: time.Now}
}

// Emit writes one EMF line with the given dimensions and metrics.
func (m *Metrics) Emit(dims map[string]string, metrics ...Metric) {
	keys := make([]string, 0, len(dims))
	for k := range dims {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	m.EmitSets(dims, [][]string{keys}, metrics...)
}

// EmitSets writes one EMF line whose metrics CloudWatch records under each
// dimension set in sets (each a list of keys of dims): one line, several
// views of it, such as by command type and by caller.
func (m *Metrics) EmitSets(dims map[string]string, sets [][]string, metrics ...Metric) {
	type def struct {
		Name string `json:"Name"`
		Unit Unit   `json:"Unit"`
	}
	defs := make([]def, len(metrics))
	line := map[string]any{}
	for k, v := range dims {
		line[k] = v
	}
	for i, mt := range metrics {
		defs[i] = def{mt.Name, mt.Unit}
		line[mt.Name] = mt.Value
		if len(mt.Values) > 0 {
			vs := mt.Values
			if len(vs) > 100 {
				vs = vs[:100]
			}
			line[mt.Name] = vs
		}
	}
	line["_aws"] = map[string]any{
		"Timestamp": m.now().UnixMilli(),
		"CloudWatchMetrics": []any{map[string]any{
			"Namespace":  m.namespace,
			"Dimensions": sets,
			"Metrics":    defs,
		}},
	}
	b, err := json.Marshal(line)
	if err != nil {
		return
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	_, _ = m.w.Write(append(b, '\n'))
}
