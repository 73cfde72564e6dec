package main

import (
	"bytes"
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
