package main

import (
	"bytes"
	"math"
	"strings"
	"testing"
)

func TestParseKeepsEveryMetricOfABenchmarkLine(t *testing.T) {
	in := "goos: linux\npkg: x\n{\"level\":\"INFO\"}\n" +
		"BenchmarkEndToEnd/template-2   \t      40\t  1159 e2e-p50-ms\t 1262 parts-p50-ms\t  0 ns/op\t  12 B/op\n"
	res := results{}
	var raw bytes.Buffer
	parse(strings.NewReader(in), res, &raw)
	m := res["BenchmarkEndToEnd/template"]
	if m["e2e-p50-ms"] != 1159 || m["parts-p50-ms"] != 1262 || m["B/op"] != 12 {
		t.Errorf("parsed %v", res)
	}
	if strings.Contains(raw.String(), "INFO") || !strings.Contains(raw.String(), "pkg: x") {
		t.Errorf("raw output for benchstat:\n%s", raw.String())
	}
}

func TestAMissedTargetSaysNoAndAMissingBenchmarkIsReported(t *testing.T) {
	res := results{"BenchmarkColdStart": {"hello-MB": 6, "hello-init-ms": 2,
		"command-size-x": 3, "command-init-x": 1, "stream-relay-size-x": 1, "stream-relay-init-x": 1, "dlq-replay-size-x": 1, "dlq-replay-init-x": 1}}
	got := map[string]Row{}
	for _, r := range rows(res) {
		got[r.Metric] = r
	}
	if r := got["cold start command size vs hello world"]; r.Holds != "no" || r.Note == "" || *r.Value != 18 {
		t.Errorf("command size row %+v", r)
	}
	if r := got["cold start command init vs hello world"]; r.Holds != "yes" {
		t.Errorf("command init row %+v", r)
	}
	if r := got["relay peak RSS, 1,000-record batch"]; r.Holds != "no" || r.Value != nil {
		t.Errorf("missing RSS row %+v", r)
	}
}

func TestScaledShrinksIterationCountsOnly(t *testing.T) {
	for in, want := range map[string]string{"300x": "30x", "2x": "1x", "5s": "5s"} {
		if got := scaled(in, 0.1); got != want {
			t.Errorf("scaled(%q) = %q, want %q", in, got, want)
		}
	}
}

func TestRelayRowsUnderTheLatencyModelHoldOrSayWhy(t *testing.T) {
	t.Setenv("BENCH_RTT_MS", "5,20,50")
	res := results{
		// Measured (issue 24): DynamoDB Local's serial writes set the pace.
		"BenchmarkRelayThroughput/100x10@rtt=5ms": {"relay-events/s": 189.2, "floor-events/s": 173.3, "naive-events/s": 32.73, "ordered-events/s": 194.3,
			"relay-rtts/batch": 105.7, "floor-rtts/batch": 115.4, "naive-rtts/batch": 611.1, "ordered-rtts/batch": 102.9, "relay-ddb-idle-%": 5.9, "ordered-ddb-idle-%": 4.556},
		// A miss against the order-keeping floor.
		"BenchmarkRelayThroughput/100x10@rtt=20ms": {"relay-events/s": 250, "floor-events/s": 399.7, "naive-events/s": 14.26, "ordered-events/s": 300,
			"relay-rtts/batch": 20, "floor-rtts/batch": 12.5, "naive-rtts/batch": 350.5, "ordered-rtts/batch": 16.7, "relay-ddb-idle-%": 47.7, "ordered-ddb-idle-%": 40},
		// Measured although BENCH_RTT_MS no longer lists it.
		"BenchmarkRelayThroughput/100x10@rtt=2ms": {"relay-events/s": 400, "floor-events/s": 400, "naive-events/s": 30, "ordered-events/s": 400},
	}
	got := map[string]Row{}
	var order []string
	for _, r := range rows(res) {
		got[r.Metric] = r
		if strings.Contains(r.Metric, "RTT") {
			order = append(order, r.Metric)
		}
	}
	tests := []struct {
		metric, holds, note string
		ratio               float64
	}{
		{"relay 100x10 at 5 ms RTT vs naive", "no", "DynamoDB Local was busy 94%", 189.2 / 32.73},
		{"relay 100x10 at 5 ms RTT vs order-keeping floor", "yes", "105.7 round trips of wall time, the order-keeping floor 102.9", 189.2 / 194.3},
		{"relay 100x10 at 5 ms RTT vs bare floor (ignores order)", "-", "informative", 189.2 / 173.3},
		{"relay 100x10 at 20 ms RTT vs naive", "yes", "20.0 round trips", 250 / 14.26},
		{"relay 100x10 at 20 ms RTT vs order-keeping floor", "no", "busy 52% of the relay's time and 60% of the floor's", 250.0 / 300},
		{"relay 100x10 at 20 ms RTT vs bare floor (ignores order)", "-", "12.5 round trips of wall time per batch against the order-keeping floor's 16.7", 250 / 399.7},
		{"relay 100x10 at 2 ms RTT vs SQS FIFO batched quota", "-", "3,000 messages/s", 400.0 / 3000},
		{"relay 100x10 at 20 ms RTT vs SQS FIFO batched quota", "-", "see the first", 250.0 / 3000},
		{"relay 100x10 at 2 ms RTT vs naive", "yes", "", 400.0 / 30},
		{"relay 100x10 at 50 ms RTT vs naive", "no", "not measured", 0},
		{"relay 100x10 at 50 ms RTT vs order-keeping floor", "no", "not measured", 0},
	}
	for _, tt := range tests {
		r, ok := got[tt.metric]
		switch {
		case !ok:
			t.Errorf("no row %q", tt.metric)
		case r.Holds != tt.holds || !strings.Contains(r.Note, tt.note):
			t.Errorf("%s: holds %q, note %q; want %q and a note with %q", tt.metric, r.Holds, r.Note, tt.holds, tt.note)
		case tt.ratio != 0 && (r.Ratio == nil || math.Abs(*r.Ratio-tt.ratio) > 1e-9):
			t.Errorf("%s: ratio %v, want %v", tt.metric, num(r.Ratio), tt.ratio)
		}
	}
	if r := got["relay 100x10 at 2 ms RTT vs SQS FIFO batched quota"]; !strings.Contains(r.Note, "RELAY_WORKERS") || !strings.Contains(r.Note, "300 API calls/s") {
		t.Errorf("the first quota row does not give the bound and what the model makes count: %+v", r)
	}
	if order[0] != "relay 100x10 at 2 ms RTT vs naive" || !strings.HasPrefix(order[len(order)-1], "relay 100x10 at 50 ms RTT") {
		t.Errorf("rows not in RTT order: %q", order)
	}
}

func TestRateLimitRowsHoldOrSayWhatIsMissing(t *testing.T) {
	take := func(m map[string]float64) func(string, string) (float64, bool) {
		return func(bench, unit string) (float64, bool) { v, ok := m[unit]; return v, ok && bench == "BenchmarkTake" }
	}
	got := map[string]Row{}
	for _, r := range rateLimitRows(take(map[string]float64{"take-p50-ms": 5.8, "update-p50-ms": 6.3, "get-p50-ms": 3.4, "calls/take": 1})) {
		got[r.Metric] = r
	}
	if r := got["rate limit Take p50 vs its UpdateItem by hand"]; r.Holds != "yes" || *r.Baseline != 6.3 {
		t.Errorf("Take row %+v", r)
	}
	if r := got["rate limit DynamoDB calls per granted Take"]; r.Holds != "yes" {
		t.Errorf("calls row %+v", r)
	}
	for _, r := range rateLimitRows(take(map[string]float64{"take-p50-ms": 5.8, "update-p50-ms": 6.3, "calls/take": 2})) {
		if r.Metric == "rate limit DynamoDB calls per granted Take" && r.Holds != "no" {
			t.Errorf("2 calls a Take: %+v", r)
		}
	}
	if rs := rateLimitRows(take(nil)); len(rs) != 1 || rs[0].Holds != "no" || rs[0].Note == "" {
		t.Errorf("missing benchmark: %+v", rs)
	}
}
