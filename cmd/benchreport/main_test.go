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
		// Measured: the 5 ms round trip bound by DynamoDB Local's serial writes.
		"BenchmarkRelayThroughput/100x10@rtt=5ms": {"relay-events/s": 355.7, "floor-events/s": 210, "naive-events/s": 44.29,
			"relay-rtts/batch": 56.2, "floor-rtts/batch": 95.2, "naive-rtts/batch": 451.6, "relay-ddb-idle-%": 8.07, "floor-ddb-idle-%": 5.29},
		"BenchmarkRelayThroughput/100x10@rtt=20ms": {"relay-events/s": 318.8, "floor-events/s": 399.7, "naive-events/s": 14.26,
			"relay-rtts/batch": 15.7, "floor-rtts/batch": 12.5, "naive-rtts/batch": 350.5, "relay-ddb-idle-%": 47.7, "floor-ddb-idle-%": 40},
		// Measured although BENCH_RTT_MS no longer lists it.
		"BenchmarkRelayThroughput/100x10@rtt=2ms": {"relay-events/s": 400, "floor-events/s": 400, "naive-events/s": 30},
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
		{"relay 100x10 at 5 ms RTT vs naive", "no", "DynamoDB Local was busy 92%", 355.7 / 44.29},
		{"relay 100x10 at 5 ms RTT vs bare floor", "yes", "95% of the floor's", 355.7 / 210},
		{"relay 100x10 at 20 ms RTT vs naive", "yes", "15.7 round trips", 318.8 / 14.26},
		{"relay 100x10 at 20 ms RTT vs bare floor", "no", "bounds relay/floor near 0.75", 318.8 / 399.7},
		{"relay 100x10 at 2 ms RTT vs SQS FIFO batched quota", "-", "3,000 messages/s", 400.0 / 3000},
		{"relay 100x10 at 20 ms RTT vs SQS FIFO batched quota", "-", "see the first", 318.8 / 3000},
		{"relay 100x10 at 2 ms RTT vs naive", "yes", "", 400.0 / 30},
		{"relay 100x10 at 50 ms RTT vs naive", "no", "not measured", 0},
		{"relay 100x10 at 50 ms RTT vs bare floor", "no", "not measured", 0},
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
