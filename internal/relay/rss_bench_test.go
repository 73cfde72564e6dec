package relay_test

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/aws/aws-lambda-go/events"
	"github.com/aws/aws-sdk-go-v2/config"

	"github.com/dispatcher-dev/dispatcher/internal/app/deliveryfn"
	"github.com/dispatcher-dev/dispatcher/internal/command"
	"github.com/dispatcher-dev/dispatcher/internal/dispatch"
	"github.com/dispatcher-dev/dispatcher/internal/testkit/flowtest"
	"github.com/dispatcher-dev/dispatcher/internal/testkit/testenv"
)

// rssBatchEnv names the file of the stream batch the child process handles.
const rssBatchEnv = "DISPATCHER_RSS_BATCH"

// BenchmarkRelayPeakRSS measures the peak resident memory (VmHWM) of a
// process that runs the relay, built by the same constructor as the
// stream-relay function, on one batch of 1,000 stream records (10 times the
// template's BatchSize: a margin). The child is this test binary re-run
// with -test.short (no emulators of its own) and the parent's AWS endpoints,
// so it also carries the test binary's code: an upper bound of the built
// bootstrap. Target: fits a 128 MB function with room (at most 64 MB).
func BenchmarkRelayPeakRSS(b *testing.B) {
	f := flowtest.New(b, nil)
	env := testenv.Get(b)
	vars, err := env.Stack.FunctionEnv("StreamRelayFunction")
	if err != nil {
		b.Fatal(err)
	}
	var peaks, bases []float64
	for b.Loop() {
		file := seedBatch(b, f, 100, 10)
		cmd := exec.Command(os.Args[0], "-test.run=^TestRelayPeakRSSChild$", "-test.short", "-test.count=1", "-test.v")
		cmd.Env = append(os.Environ(), rssBatchEnv+"="+file)
		for k, v := range vars {
			cmd.Env = append(cmd.Env, k+"="+v)
		}
		out, err := cmd.CombinedOutput()
		if err != nil {
			b.Fatalf("child: %v\n%s", err, tail(out))
		}
		base, peak, ok := parseRSS(out)
		if !ok {
			b.Fatalf("child printed no RSS line:\n%s", tail(out))
		}
		bases, peaks = append(bases, base), append(peaks, peak)
		f.Drain(f.Events)
	}
	maxOf := func(s []float64) float64 {
		m := 0.0
		for _, v := range s {
			m = max(m, v)
		}
		return m
	}
	b.ReportMetric(maxOf(peaks)/1024, "peak-rss-MB")
	b.ReportMetric(maxOf(bases)/1024, "idle-rss-MB")
	b.ReportMetric(0, "ns/op")
}

// seedBatch applies one Dispatch command of events events to each of
// aggregates fresh aggregates and writes their outbox stream records, as
// one DynamoDBEvent, to a file.
func seedBatch(b *testing.B, f *flowtest.Fixture, aggregates, evs int) string {
	b.Helper()
	list := make([]string, evs)
	for i := range list {
		list[i] = fmt.Sprintf(`{"type":"BenchItemAdded","data":{"line":%d,"sku":"SKU-%04d","quantity":3,"price":{"amount":1250,"currency":"EUR"}}}`, i, i)
	}
	body := strings.Join(list, ",")
	ids := make([]string, aggregates)
	for i := range ids {
		ids[i] = flowtest.Unique(fmt.Sprintf("rss-%d", i))
	}
	work := make(chan string)
	var wg sync.WaitGroup
	var mu sync.Mutex
	var errs []error
	for range 4 {
		wg.Go(func() {
			for id := range work {
				req := command.Request{Body: []byte(`{"type":"Dispatch","aggregateId":"` + id + `","data":{"aggregateType":"BenchOrder","state":{"status":"open"},"events":[` + body + `]}}`), Caller: dispatch.Caller{ID: "bench", Scope: "bench", All: true}, IdempotencyKey: "rss-" + id}
				if _, err := f.Svc.Execute(context.Background(), req); err != nil {
					mu.Lock()
					errs = append(errs, err)
					mu.Unlock()
				}
			}
		})
	}
	for _, id := range ids {
		work <- id
	}
	close(work)
	wg.Wait()
	if len(errs) > 0 {
		b.Fatal(errs[0])
	}
	ev := events.DynamoDBEvent{Records: flowtest.OutboxRecords(f.Batch(ids...))}
	if len(ev.Records) != aggregates*evs {
		b.Fatalf("%d outbox records in the stream, want %d", len(ev.Records), aggregates*evs)
	}
	raw, err := json.Marshal(ev)
	if err != nil {
		b.Fatal(err)
	}
	file := filepath.Join(b.TempDir(), "batch.json")
	if err := os.WriteFile(file, raw, 0o600); err != nil {
		b.Fatal(err)
	}
	return file
}

// TestRelayPeakRSSChild is the child of BenchmarkRelayPeakRSS; it does
// nothing unless run by it.
func TestRelayPeakRSSChild(t *testing.T) {
	file := os.Getenv(rssBatchEnv)
	if file == "" {
		t.Skip("run by BenchmarkRelayPeakRSS")
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	cfg, err := config.LoadDefaultConfig(ctx)
	if err != nil {
		t.Fatal(err)
	}
	h, err := deliveryfn.Build(ctx, cfg, os.Getenv) // as the function's cold start
	if err != nil {
		t.Fatal(err)
	}
	base := vmHWM(t)
	raw, err := os.ReadFile(file) // the payload the Runtime API would hand over
	if err != nil {
		t.Fatal(err)
	}
	var ev events.DynamoDBEvent
	if err := json.Unmarshal(raw, &ev); err != nil {
		t.Fatal(err)
	}
	raw = nil
	resp, err := h.Handle(ctx, ev)
	if err != nil || len(resp.BatchItemFailures) > 0 {
		t.Fatalf("Handle: %v, %d failures", err, len(resp.BatchItemFailures))
	}
	fmt.Printf("\nRSS idle-kB %d peak-kB %d records %d\n", base, vmHWM(t), len(ev.Records))
}

// vmHWM is this process's peak resident set size in kB.
func vmHWM(t *testing.T) int {
	st, err := os.Open("/proc/self/status")
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	sc := bufio.NewScanner(st)
	for sc.Scan() {
		if v, ok := strings.CutPrefix(sc.Text(), "VmHWM:"); ok {
			n, err := strconv.Atoi(strings.TrimSpace(strings.TrimSuffix(strings.TrimSpace(v), "kB")))
			if err != nil {
				t.Fatal(err)
			}
			return n
		}
	}
	t.Fatal("no VmHWM in /proc/self/status")
	return 0
}

func parseRSS(out []byte) (base, peak float64, ok bool) {
	for line := range strings.SplitSeq(string(out), "\n") {
		var n int
		if _, err := fmt.Sscanf(line, "RSS idle-kB %f peak-kB %f records %d", &base, &peak, &n); err == nil {
			return base, peak, true
		}
	}
	return 0, 0, false
}

func tail(out []byte) string {
	if len(out) > 4000 {
		out = out[len(out)-4000:]
	}
	return string(out)
}
