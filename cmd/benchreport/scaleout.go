package main

import "fmt"

// scaleOutSuite measures the stream mapping's throughput on one shard at
// ParallelizationFactor 1, 2, 5 and 10 (the local runner's lanes, with a
// simulated relay latency of BENCH_RTT_MS per AWS call).
var scaleOutSuite = suite{pkg: "./internal/local/runner", bench: "^BenchmarkScaleOutPerShard$", benchtime: "1x"}

const scaleOutBench = "BenchmarkScaleOutPerShard"

// scaleOutNote is the physical bound the local numbers do not show.
const scaleOutNote = "records/s of one shard's lanes (200 aggregates × 5 versions, BatchSize 100, simulated relay round trips); " +
	"on AWS, DynamoDB Streams allows 4 GetRecords polls/s per shard shared by its consumers, and ParallelizationFactor " +
	"multiplies invocations, not polls: the SES account rate and SQS FIFO throughput per group bound it first"

// scaleOutRows reports the scale-out benchmark: one row per factor
// (records/s against factor 1; the target is on factor 10 only) and one
// row for the order per aggregate.
func scaleOutRows(get func(bench, unit string) (float64, bool)) []Row {
	var out []Row
	base, baseOK := get(scaleOutBench, "f1-records/s")
	for i, f := range []int{1, 2, 5, 10} {
		name := fmt.Sprintf("stream scale-out ParallelizationFactor %d vs 1", f)
		target, hold := "-", "-"
		if f == 10 {
			target = "≥ 6"
		}
		v, ok := get(scaleOutBench, fmt.Sprintf("f%d-records/s", f))
		if !ok || !baseOK || base <= 0 {
			r := Row{Metric: name, Target: target, Holds: "-", Note: "not measured: the benchmark failed or did not run"}
			if f == 10 {
				r.Holds = "no"
			}
			out = append(out, r)
			continue
		}
		ratio := v / base
		if f == 10 {
			hold = holds(ratio >= 6)
		}
		r := Row{Metric: name, Value: ptr(v), Baseline: ptr(base), Unit: "records/s", Ratio: ptr(ratio), Target: target, Holds: hold}
		if i == 0 {
			r.Note = scaleOutNote
		}
		out = append(out, r)
	}
	inv, ok := get(scaleOutBench, "inversions")
	r := Row{Metric: "stream scale-out order per aggregate (inversions, all factors)", Unit: "records", Target: "= 0"}
	if !ok {
		r.Holds, r.Note = "no", "not measured: the benchmark failed or did not run"
	} else {
		r.Value, r.Holds = ptr(inv), holds(inv == 0)
	}
	return append(out, r)
}
