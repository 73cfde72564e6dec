// Command benchreport runs the project's benchmarks against the local
// emulators and prints one table: each figure beside a baseline measured in
// the same run, the ratio, the target and whether it holds. It writes the
// raw benchmark output (benchstat input) and the table as JSON. `make bench`
// runs it.
package main

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"text/tabwriter"
	"time"
)

// suite is one `go test -bench` run.
type suite struct {
	pkg, bench, benchtime string
}

// suites: benchtimes chosen so that the whole report takes about five
// minutes on a small machine (each package also starts its emulators).
var suites = []suite{
	{"./internal/apigw", "^BenchmarkCommandPathVsBareTransactWriteItems$", "300x"},
	{"./internal/relay", "^BenchmarkRelayThroughput$", "2x"},
	{"./internal/relay", "^BenchmarkRelayPeakRSS$", "1x"},
	{"./internal/local/runner", "^BenchmarkEndToEnd$", "40x"},
	{"./bench/coldstart", "^BenchmarkColdStart$", "20x"},
	// The hot pure functions, for benchstat between runs (raw output only).
	{"./internal/dispatch", "^BenchmarkParse$", "1s"},
	{"./internal/dynamo", "^BenchmarkStreamRecord$", "1s"},
	{"./internal/delivery", "^BenchmarkEnvelope$", "1s"},
}

// Row is one line of the report.
type Row struct {
	Metric   string   `json:"metric"`
	Value    *float64 `json:"value,omitempty"`
	Baseline *float64 `json:"baseline,omitempty"`
	Unit     string   `json:"unit,omitempty"`
	Ratio    *float64 `json:"ratio,omitempty"`
	Target   string   `json:"target"`
	Holds    string   `json:"holds"` // yes, no, or "-" where the line informs only
	Note     string   `json:"note,omitempty"`
}

// Report is what .local/bench.json holds.
type Report struct {
	Date      time.Time `json:"date"`
	GoVersion string    `json:"goVersion"`
	GOARCH    string    `json:"goarch"`
	CPUs      int       `json:"cpus"`
	Seconds   float64   `json:"seconds"`
	Rows      []Row     `json:"rows"`
	Missing   []string  `json:"missing,omitempty"`
}

// results: benchmark name (without the -N GOMAXPROCS suffix) → unit → value.
type results map[string]map[string]float64

func main() {
	out := flag.String("o", ".local", "directory for bench.txt and bench.json")
	scale := flag.Float64("scale", 1, "multiply every Nx benchtime (0.1 for a quick look)")
	flag.Parse()
	if err := run(*out, *scale); err != nil {
		fmt.Fprintln(os.Stderr, "benchreport:", err)
		os.Exit(1)
	}
}

func run(dir string, scale float64) error {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt)
	defer stop()
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return err
	}
	raw, err := os.Create(filepath.Join(dir, "bench.txt"))
	if err != nil {
		return err
	}
	defer raw.Close()
	start := time.Now()
	res := results{}
	var failed []string
	for _, s := range suites {
		bt := scaled(s.benchtime, scale)
		fmt.Fprintf(os.Stderr, "benchreport: %s %s -benchtime %s\n", s.pkg, s.bench, bt)
		cmd := exec.CommandContext(ctx, "go", "test", "-run", "^$", "-bench", s.bench, "-benchtime", bt, "-benchmem", "-count", "1", "-timeout", "8m", s.pkg)
		var buf bytes.Buffer
		cmd.Stdout = &buf
		cmd.Stderr = os.Stderr
		err := cmd.Run()
		parse(&buf, res, raw)
		if err != nil {
			failed = append(failed, fmt.Sprintf("%s %s: %v", s.pkg, s.bench, err))
			fmt.Fprintf(os.Stderr, "benchreport: %s failed: %v\n%s\n", s.pkg, err, lastLines(buf.String(), 30))
		}
	}
	rep := Report{Date: time.Now().UTC(), GoVersion: runtime.Version(), GOARCH: runtime.GOARCH, CPUs: runtime.NumCPU(), Rows: rows(res), Missing: failed}
	rep.Seconds = time.Since(start).Seconds()
	print(os.Stdout, rep)
	js, err := json.MarshalIndent(rep, "", "  ")
	if err != nil {
		return err
	}
	if err := os.WriteFile(filepath.Join(dir, "bench.json"), append(js, '\n'), 0o644); err != nil {
		return err
	}
	fmt.Printf("\nwritten to %s and %s in %.0f s (compare runs with: go run golang.org/x/perf/cmd/benchstat old.txt new.txt)\n",
		filepath.Join(dir, "bench.json"), raw.Name(), rep.Seconds)
	if len(failed) > 0 {
		return fmt.Errorf("%d benchmark runs failed", len(failed))
	}
	return nil
}

func scaled(bt string, scale float64) string {
	n, err := strconv.Atoi(strings.TrimSuffix(bt, "x"))
	if err != nil || !strings.HasSuffix(bt, "x") || scale == 1 {
		return bt
	}
	return strconv.Itoa(max(1, int(float64(n)*scale))) + "x"
}

// parse reads `go test -bench` text output: the benchmark lines go to res
// and, with the header lines, to raw (benchstat's input format).
func parse(r io.Reader, res results, raw io.Writer) {
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 1<<20), 1<<20)
	for sc.Scan() {
		line := sc.Text()
		for _, p := range []string{"goos:", "goarch:", "pkg:", "cpu:", "ok ", "PASS", "FAIL"} {
			if strings.HasPrefix(line, p) {
				fmt.Fprintln(raw, line)
			}
		}
		if !strings.HasPrefix(line, "Benchmark") {
			continue
		}
		f := strings.Fields(line)
		if len(f) < 4 {
			continue
		}
		fmt.Fprintln(raw, line)
		name := f[0]
		if i := strings.LastIndex(name, "-"); i > 0 {
			if _, err := strconv.Atoi(name[i+1:]); err == nil {
				name = name[:i]
			}
		}
		m := map[string]float64{}
		for i := 2; i+1 < len(f); i += 2 {
			if v, err := strconv.ParseFloat(f[i], 64); err == nil {
				m[f[i+1]] = v
			}
		}
		res[name] = m
	}
}

func ptr(v float64) *float64 { return &v }

func holds(ok bool) string {
	if ok {
		return "yes"
	}
	return "no"
}

// rows turns the benchmark metrics into the report's lines.
func rows(res results) []Row {
	var out []Row
	get := func(bench, unit string) (float64, bool) {
		m, ok := res[bench]
		if !ok {
			return 0, false
		}
		v, ok := m[unit]
		return v, ok
	}
	missing := func(metric, target string) {
		out = append(out, Row{Metric: metric, Target: target, Holds: "no", Note: "not measured: the benchmark failed or did not run"})
	}

	// Command path.
	for _, kind := range []string{"create", "update"} {
		b := "BenchmarkCommandPathVsBareTransactWriteItems/" + kind
		cmd, ok1 := get(b, "cmd-p50-ms")
		bare, ok2 := get(b, "bare-p50-ms")
		r50, ok3 := get(b, "p50-ratio")
		if !(ok1 && ok2 && ok3) {
			missing("command "+kind+" p50 vs bare TransactWriteItems", "≤ 1.15")
			continue
		}
		row := Row{Metric: "command " + kind + " p50 vs bare TransactWriteItems", Value: ptr(cmd), Baseline: ptr(bare), Unit: "ms", Ratio: ptr(r50), Target: "≤ 1.15", Holds: holds(r50 <= 1.15)}
		if kind == "update" {
			row.Target, row.Holds = "- (reads first)", "-"
			row.Note = "an update must read the state to decide: see the line vs GetItem + TransactWriteItems"
		}
		out = append(out, row)
		if r99, ok := get(b, "p99-ratio"); ok {
			out = append(out, Row{Metric: "command " + kind + " p99 vs bare TransactWriteItems", Ratio: ptr(r99), Target: "-", Holds: "-"})
		}
		if r, ok := get(b, "p50-ratio-vs-read+transact"); ok {
			row := Row{Metric: "command update p50 vs bare GetItem + TransactWriteItems", Ratio: ptr(r), Target: "≤ 1.15", Holds: holds(r <= 1.15)}
			if r > 1.15 {
				row.Note = "the command path adds decode, signature check, decide and render to two round trips of about 1.5 ms each on DynamoDB Local; " +
					"between runs this ratio has spread from 0.9 to 1.5: rerun with a larger -scale before acting on it"
			}
			out = append(out, row)
		}
		rep, ok1 := get(b, "wcu/cmd-reported")
		floor, ok2 := get(b, "wcu/cmd-floor")
		if ok1 && ok2 && floor > 0 {
			out = append(out, Row{Metric: "WCU per " + kind + " command (reported vs floor)", Value: ptr(rep), Baseline: ptr(floor), Unit: "WCU", Ratio: ptr(rep / floor), Target: "= floor", Holds: "-",
				Note: "DynamoDB Local misreports transactional capacity; the floor (dynamo.FloorWCU: 2 WCU per KB, rounded up, of each item + 1 per sparse-index entry) is what AWS bills"})
		}
	}

	// Relay throughput.
	for _, shape := range []string{"100x10", "500x2"} {
		b := "BenchmarkRelayThroughput/" + shape
		relay, ok1 := get(b, "relay-events/s")
		floor, ok2 := get(b, "floor-events/s")
		naive, ok3 := get(b, "naive-events/s")
		if !(ok1 && ok2 && ok3) {
			missing("relay "+shape+" vs bare floor", "≥ 0.8")
			continue
		}
		out = append(out,
			Row{Metric: "relay " + shape + " throughput vs bare floor", Value: ptr(relay), Baseline: ptr(floor), Unit: "events/s", Ratio: ptr(relay / floor), Target: "≥ 0.8", Holds: holds(relay/floor >= 0.8)},
			Row{Metric: "relay " + shape + " throughput vs naive", Value: ptr(relay), Baseline: ptr(naive), Unit: "events/s", Ratio: ptr(relay / naive), Target: "≥ 5", Holds: holds(relay/naive >= 5),
				Note: naiveNote(relay, floor, naive)})
		if d, ok := get(b, "relay-ddb-calls/event"); ok {
			s, _ := get(b, "relay-sqs-calls/event")
			out = append(out, Row{Metric: "relay " + shape + " DynamoDB / SQS calls per event", Value: ptr(d), Baseline: ptr(s), Target: "-", Holds: "-", Note: "value: DynamoDB calls, baseline column: SQS calls"})
		}
	}

	// End to end.
	for _, v := range []string{"template", "nowindow"} {
		b := "BenchmarkEndToEnd/" + v
		for _, p := range []struct{ pct, target string }{{"p50", "≤ 1.0"}, {"p99", "≤ 1.15"}} {
			e, ok1 := get(b, "e2e-"+p.pct+"-ms")
			parts, ok2 := get(b, "parts-"+p.pct+"-ms")
			metric := "end to end (" + v + ") " + p.pct + " vs poll + window + transact + send"
			if !(ok1 && ok2) {
				missing(metric, p.target)
				continue
			}
			limit, _ := strconv.ParseFloat(strings.TrimPrefix(p.target, "≤ "), 64)
			out = append(out, Row{Metric: metric, Value: ptr(e), Baseline: ptr(parts), Unit: "ms", Ratio: ptr(e / parts), Target: p.target, Holds: holds(e/parts <= limit)})
		}
	}

	// Cold start.
	helloMB, ok1 := get("BenchmarkColdStart", "hello-MB")
	helloMS, ok2 := get("BenchmarkColdStart", "hello-init-ms")
	for _, fn := range []string{"command", "stream-relay", "dlq-replay"} {
		sx, ok3 := get("BenchmarkColdStart", fn+"-size-x")
		ix, ok4 := get("BenchmarkColdStart", fn+"-init-x")
		if !(ok1 && ok2 && ok3 && ok4) {
			missing("cold start "+fn, "size ≤ 2.5, init ≤ 2")
			continue
		}
		out = append(out,
			Row{Metric: "cold start " + fn + " size vs hello world", Value: ptr(sx * helloMB), Baseline: ptr(helloMB), Unit: "MB", Ratio: ptr(sx), Target: "≤ 2.5", Holds: holds(sx <= 2.5)},
			Row{Metric: "cold start " + fn + " init vs hello world", Value: ptr(ix * helloMS), Baseline: ptr(helloMS), Unit: "ms", Ratio: ptr(ix), Target: "≤ 2", Holds: holds(ix <= 2)})
		if sx > 2.5 {
			out[len(out)-2].Note = coldNotes[fn]
		}
		if ix > 2 {
			out[len(out)-1].Note = coldNotes[fn]
		}
	}

	// Memory.
	if peak, ok := get("BenchmarkRelayPeakRSS", "peak-rss-MB"); ok {
		idle, _ := get("BenchmarkRelayPeakRSS", "idle-rss-MB")
		out = append(out, Row{Metric: "relay peak RSS, 1,000-record batch (baseline: before the batch)", Value: ptr(peak), Baseline: ptr(idle), Unit: "MB", Ratio: ptr(peak / 128), Target: "≤ 0.5 of 128 MB", Holds: holds(peak <= 64),
			Note: "measured in the re-run test binary: an upper bound of the bootstrap"})
	} else {
		missing("relay peak RSS, 1,000-record batch", "≤ 0.5 of 128 MB")
	}
	return out
}

// coldNotes say why a function misses its cold-start target, from
// GODEBUG=inittrace=1 on the built bootstrap (see the report of issue 9).
var coldNotes = map[string]string{
	"command": "it links the SSM and Secrets Manager SDKs (for the webhook secrets): ssm/schemas alone spends 1.2 ms and 1.4 MB at init, " +
		"dynamodb/schemas 0.5 ms; fetching the secrets through one small client (or the Parameters and Secrets extension over HTTP) would close most of it",
	"stream-relay": "the SDK's service schemas (dynamodb 0.5 ms, sesv2 0.5 ms, sqs 0.1 ms at init) are most of the gap over hello world; " +
		"at a few ms against a 2 ms baseline, run-to-run noise is about ±0.3x",
	"dlq-replay": "as stream-relay: the SDK's service schemas initialised at start; noise about ±0.3x",
}

func naiveNote(relay, floor, naive float64) string {
	if relay/naive >= 5 {
		return ""
	}
	return fmt.Sprintf("on the emulators the bare floor itself is only %.1fx naive: DynamoDB Local serves requests mostly one at a time "+
		"(docs/local.md), so batching and concurrency buy little; the relay is at %.2f of that floor. 5x needs a backend that serves requests "+
		"in parallel (AWS): measure there", floor/naive, relay/floor)
}

func num(p *float64) string {
	if p == nil {
		return "-"
	}
	v := *p
	switch {
	case v >= 100:
		return strconv.FormatFloat(v, 'f', 0, 64)
	case v >= 10:
		return strconv.FormatFloat(v, 'f', 1, 64)
	default:
		return strconv.FormatFloat(v, 'f', 2, 64)
	}
}

func print(w io.Writer, rep Report) {
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "metric\tvalue\tbaseline\tunit\tratio\ttarget\tholds")
	for _, r := range rep.Rows {
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\t%s\n", r.Metric, num(r.Value), num(r.Baseline), r.Unit, num(r.Ratio), r.Target, r.Holds)
	}
	tw.Flush()
	for _, r := range rep.Rows {
		if r.Note != "" {
			fmt.Fprintf(w, "  note: %s: %s\n", r.Metric, r.Note)
		}
	}
}

func lastLines(s string, n int) string {
	lines := strings.Split(strings.TrimRight(s, "\n"), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "\n")
}
