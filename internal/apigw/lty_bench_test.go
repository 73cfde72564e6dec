package apigw_test

import (
	"context"
	"fmt"
	"net/http"
	"testing"
	"time"

	sqsapi "github.com/aws/aws-sdk-go-v2/service/sqs"

	"github.com/dispatcher-dev/dispatcher/internal/apigw"
	"github.com/dispatcher-dev/dispatcher/internal/caller"
	"github.com/dispatcher-dev/dispatcher/internal/command"
	"github.com/dispatcher-dev/dispatcher/internal/commandqueue"
	"github.com/dispatcher-dev/dispatcher/internal/dynamo"
	"github.com/dispatcher-dev/dispatcher/internal/emails"
	"github.com/dispatcher-dev/dispatcher/internal/obs"
	"github.com/dispatcher-dev/dispatcher/internal/sqs"
	"github.com/dispatcher-dev/dispatcher/internal/testkit/testenv"
)

// BenchmarkCommandLatencyListenToYourselfVsOutbox times the 202 of a deposit
// on both paths, alternately, against the emulators: the outbox path (read
// the account, one TransactWriteItems) and listen to yourself (validate, one
// SendMessage to the FIFO commands queue; the consumer's work is not timed:
// nothing consumes here).
func BenchmarkCommandLatencyListenToYourselfVsOutbox(b *testing.B) {
	f := newFixture(b)
	env := testenv.Get(b)
	store := dynamo.New(f.db, f.table, 8)
	tmpl, err := emails.Load()
	if err != nil {
		b.Fatal(err)
	}
	v, err := caller.New(caller.Config{DefaultSecrets: []string{secretOld, secretNew}})
	if err != nil {
		b.Fatal(err)
	}
	log, metrics := obs.NewLogger(discard{}, 8), obs.NewMetrics(discard{}, "Dispatcher")
	svc := command.New(store, tmpl)
	outbox := apigw.New(svc, store, v, log, metrics)
	q := commandqueue.New(sqs.New(sqsapi.NewFromConfig(env.AWS)), env.Stack.Physical("CommandsQueue"))
	lty := apigw.New(command.NewListener(svc, q, []string{"DepositFunds"}), store, v, log, metrics)

	ctx := context.Background()
	account := fmt.Sprintf("bench-lty-%d", time.Now().UnixNano())
	if resp, _ := outbox.Handle(ctx, f.post(openAccount(account))); resp.StatusCode != http.StatusAccepted {
		b.Fatalf("open: %s", resp.Body)
	}
	run := func(h *apigw.Handler, i int, path string) time.Duration {
		req := f.post(deposit(account, 100, fmt.Sprintf("%s-%d", path, i))) // signing is the client's: not timed
		t0 := time.Now()
		resp, err := h.Handle(ctx, req)
		d := time.Since(t0)
		if err != nil || resp.StatusCode != http.StatusAccepted {
			b.Fatalf("%s: %d %s", path, resp.StatusCode, resp.Body)
		}
		return d
	}
	for i := range 20 { // warm connections and the JVM
		run(outbox, -1-i, "warm-outbox")
		run(lty, -1-i, "warm-lty")
	}
	var ltys, outboxes []time.Duration
	b.ResetTimer()
	for i := 0; b.Loop(); i++ {
		ltys = append(ltys, run(lty, i, "lty"))
		outboxes = append(outboxes, run(outbox, i, "outbox"))
	}
	b.StopTimer()
	ms := func(d time.Duration) float64 { return float64(d.Microseconds()) / 1000 }
	lp50, op50 := percentile(ltys, 0.5), percentile(outboxes, 0.5)
	b.ReportMetric(ms(lp50), "lty-p50-ms")
	b.ReportMetric(ms(percentile(ltys, 0.99)), "lty-p99-ms")
	b.ReportMetric(ms(op50), "outbox-p50-ms")
	b.ReportMetric(ms(percentile(outboxes, 0.99)), "outbox-p99-ms")
	b.ReportMetric(float64(lp50)/float64(op50), "p50-ratio")
	b.ReportMetric(float64(percentile(ltys, 0.99))/float64(percentile(outboxes, 0.99)), "p99-ratio")
	b.ReportMetric(0, "ns/op")
}
