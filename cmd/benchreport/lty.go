package main

// ltySuite measures the 202 of a deposit on the listen-to-yourself path
// (validate, one SendMessage to the FIFO commands queue) against the outbox
// path (read, one TransactWriteItems), alternately, against the emulators.
var ltySuite = suite{pkg: "./internal/apigw", bench: "^BenchmarkCommandLatencyListenToYourselfVsOutbox$", benchtime: "300x"}

const ltyBench = "BenchmarkCommandLatencyListenToYourselfVsOutbox"

// ltyNote is what the 202's latency does not say.
const ltyNote = "the command's 202 only: on the listen-to-yourself path the change is applied later by the consumer " +
	"(an SQS event source poll plus the same transaction), so the time to a visible change is longer, not shorter"

// ltyRows reports the listen-to-yourself benchmark: the p50 and p99 of the
// 202 on both paths, as ratios to the outbox path (the target: queueing is
// not slower than applying at the median).
func ltyRows(get func(bench, unit string) (float64, bool)) []Row {
	var out []Row
	for i, p := range []string{"p50", "p99"} {
		name := "command 202 latency " + p + ", listen to yourself vs outbox"
		target := "-"
		if p == "p50" {
			target = "≤ 1"
		}
		v, ok := get(ltyBench, "lty-"+p+"-ms")
		base, baseOK := get(ltyBench, "outbox-"+p+"-ms")
		if !ok || !baseOK || base <= 0 {
			r := Row{Metric: name, Target: target, Holds: "-", Note: "not measured: the benchmark failed or did not run"}
			if p == "p50" {
				r.Holds = "no"
			}
			out = append(out, r)
			continue
		}
		ratio := v / base
		hold := "-"
		if p == "p50" {
			hold = holds(ratio <= 1)
		}
		r := Row{Metric: name, Value: ptr(v), Baseline: ptr(base), Unit: "ms", Ratio: ptr(ratio), Target: target, Holds: hold}
		if i == 0 {
			r.Note = ltyNote
		}
		out = append(out, r)
	}
	return out
}
