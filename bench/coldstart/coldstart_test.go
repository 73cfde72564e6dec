// Package coldstart measures what a cold start costs each function: the
// size of its bootstrap and the time from process start to its first
// request for work from a Lambda Runtime API endpoint, both against a
// hello-world aws-lambda-go binary built the same way in the same run.
// Targets (issue 17): size at most 2x, init at most 1.5x.
package coldstart_test

import (
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"testing"
	"time"
)

var functions = map[string]string{
	"hello":            "./bench/coldstart/hello",
	"command":          "./functions/command",
	"stream-relay":     "./functions/stream-relay",
	"dlq-replay":       "./functions/dlq-replay",
	"command-consumer": "./functions/command-consumer",
	"stream-recovery":  "./functions/stream-recovery",
}

// env is a complete function configuration; init must not need the network.
var env = []string{
	"AWS_REGION=us-east-1", "AWS_ACCESS_KEY_ID=x", "AWS_SECRET_ACCESS_KEY=x",
	"AWS_LAMBDA_FUNCTION_NAME=f", "AWS_LAMBDA_FUNCTION_MEMORY_SIZE=256", "AWS_LAMBDA_FUNCTION_VERSION=$LATEST",
	"TABLE_NAME=t", "UNDELIVERED_INDEX_SHARDS=8", "EVENTS_QUEUE_URL=http://127.0.0.1:1/q.fifo", "DLQ_URL=http://127.0.0.1:1/dlq",
	"SENDER_ADDRESS=no-reply@example.com", "WEBHOOK_SECRETS=whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw",
	// The delivery functions read the SES send quota at init: refused at once
	// here, so they go on at SES_ACCOUNT_SEND_RATE (a WARN line) without the network.
	"AWS_ENDPOINT_URL_SESV2=http://127.0.0.1:1",
}

func build(b *testing.B, dir string) map[string]string {
	b.Helper()
	root, err := filepath.Abs("../..")
	if err != nil {
		b.Fatal(err)
	}
	out := map[string]string{}
	for name, pkg := range functions {
		bin := filepath.Join(dir, name)
		// The deployable flags (see the Makefile), for this machine's architecture.
		cmd := exec.Command("go", "build", "-tags", "lambda.norpc", "-trimpath", "-ldflags=-s -w", "-o", bin, pkg)
		cmd.Dir = root
		cmd.Env = append(os.Environ(), "CGO_ENABLED=0", "GOOS=linux")
		if o, err := cmd.CombinedOutput(); err != nil {
			b.Fatalf("build %s: %v\n%s", name, err, o)
		}
		out[name] = bin
	}
	return out
}

// initTime starts bin against a one-shot Runtime API and returns the time
// until it asks for its first invocation.
func initTime(b *testing.B, bin string) time.Duration {
	b.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		b.Fatal(err)
	}
	asked := make(chan time.Time, 1)
	srv := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		select {
		case asked <- time.Now():
		default:
		}
		// Never answer: the measurement ends at the request.
		<-r.Context().Done()
	})}
	go srv.Serve(l)
	defer srv.Close()
	cmd := exec.Command(bin)
	cmd.Env = append(env, "AWS_LAMBDA_RUNTIME_API="+l.Addr().String())
	start := time.Now()
	if err := cmd.Start(); err != nil {
		b.Fatal(err)
	}
	defer func() { cmd.Process.Kill(); cmd.Wait() }()
	select {
	case t := <-asked:
		return t.Sub(start)
	case <-time.After(10 * time.Second):
		b.Fatalf("%s never asked for work (a cold-start error?)", bin)
		return 0
	}
}

func BenchmarkColdStart(b *testing.B) {
	if testing.Short() {
		b.Skip("builds binaries")
	}
	bins := build(b, b.TempDir())
	size := func(n string) float64 {
		st, err := os.Stat(bins[n])
		if err != nil {
			b.Fatal(err)
		}
		return float64(st.Size())
	}
	inits := map[string][]time.Duration{}
	b.ResetTimer()
	for b.Loop() {
		// Interleaved, so machine noise hits every binary alike.
		for _, n := range []string{"hello", "command", "stream-relay", "dlq-replay", "command-consumer", "stream-recovery"} {
			inits[n] = append(inits[n], initTime(b, bins[n]))
		}
	}
	b.StopTimer()
	med := func(n string) float64 {
		s := slices.Clone(inits[n])
		slices.Sort(s)
		return float64(s[len(s)/2])
	}
	b.ReportMetric(size("hello")/1e6, "hello-MB")
	b.ReportMetric(med("hello")/1e6, "hello-init-ms")
	for _, n := range []string{"command", "stream-relay", "dlq-replay", "command-consumer", "stream-recovery"} {
		b.ReportMetric(size(n)/size("hello"), n+"-size-x")
		b.ReportMetric(med(n)/med("hello"), n+"-init-x")
	}
	b.ReportMetric(0, "ns/op")
	for _, n := range []string{"command", "stream-relay", "dlq-replay", "command-consumer", "stream-recovery"} {
		fmt.Fprintf(os.Stderr, "coldstart %-16s size %5.1f MB (%.2fx, target <= 2x)  init %5.1f ms (%.2fx, target <= 1.5x)\n",
			n, size(n)/1e6, size(n)/size("hello"), med(n)/1e6, med(n)/med("hello"))
	}
}
