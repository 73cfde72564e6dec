package load_test

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	sqsapi "github.com/aws/aws-sdk-go-v2/service/sqs"

	"github.com/dispatcher-dev/dispatcher/internal/dispatch"
	"github.com/dispatcher-dev/dispatcher/internal/local/provision"
	"github.com/dispatcher-dev/dispatcher/internal/local/runner"
	"github.com/dispatcher-dev/dispatcher/internal/testkit/flowtest"
	"github.com/dispatcher-dev/dispatcher/internal/testkit/testenv"
	"github.com/dispatcher-dev/dispatcher/internal/webhook"
)

func TestMain(m *testing.M) { testenv.Main(m) }

const secret = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"

func setting(t *testing.T, name, def string) string {
	if v := os.Getenv(name); v != "" {
		return v
	}
	return def
}

func TestLoadEveryAcceptedCommandIsDeliveredWithNoErrors(t *testing.T) {
	if os.Getenv("LOAD_DURATION") == "" {
		t.Skip("the load run: `make load` (sets LOAD_DURATION)")
	}
	d, err := time.ParseDuration(setting(t, "LOAD_DURATION", "10s"))
	if err != nil {
		t.Fatal(err)
	}
	clients, err := strconv.Atoi(setting(t, "LOAD_CLIENTS", "8"))
	if err != nil {
		t.Fatal(err)
	}
	env := testenv.Get(t)
	ctx := context.Background()
	s, err := provision.Apply(ctx, env.AWS, provision.Options{
		TemplatePath: filepath.Join(env.Root, "infra", "template.yaml"), StackName: fmt.Sprintf("load%d", os.Getpid()%100000),
	})
	if err != nil {
		t.Fatal(err)
	}
	spec, err := runner.ReadSpec(s)
	if err != nil {
		t.Fatal(err)
	}
	dirs, err := runner.FunctionDirs(env.Root)
	if err != nil {
		t.Fatal(err)
	}
	// The load measures the functions' throughput, not the per-caller rate
	// limit (50 a second by default, which these clients pass): the
	// highest rate dispatch.Rate allows. The bucket is still taken on every
	// request, so its cost is in the figures.
	fns, err := runner.InProcessFunctions(ctx, env.AWS, spec, s.Eval.StackName(), dirs, map[string]string{
		"WEBHOOK_SECRETS": secret, "CALLER_RATE_PER_SECOND": strconv.Itoa(dispatch.MaxRatePerSecond), "CALLER_BURST": strconv.Itoa(dispatch.MaxRateBurst)})
	if err != nil {
		t.Fatal(err)
	}
	r, err := runner.New(runner.Options{Stack: s, AWS: env.AWS, Functions: fns, Addr: "127.0.0.1:0",
		PollInterval: 20 * time.Millisecond, RetryDelay: 5 * time.Millisecond, Log: slog.New(slog.NewTextHandler(io.Discard, nil))})
	if err != nil {
		t.Fatal(err)
	}
	if err := r.Start(ctx); err != nil {
		t.Fatal(err)
	}
	defer r.Close()

	prefix := flowtest.Unique("load")
	var (
		mu        sync.Mutex
		latencies []time.Duration
		accepted  = map[string]bool{}
		errs      int
		wg        sync.WaitGroup
	)
	start := time.Now()
	for c := range clients {
		wg.Add(1)
		go func() {
			defer wg.Done()
			hc := &http.Client{Timeout: 30 * time.Second}
			for i := 0; time.Since(start) < d; i++ {
				id := fmt.Sprintf("%s-%d-%d", prefix, c, i)
				body := flowtest.Open(id, id+"@example.com")
				req, err := signed(r.URL()+"/v1/commands", body)
				if err != nil {
					t.Error(err)
					return
				}
				t0 := time.Now()
				resp, err := hc.Do(req)
				lat := time.Since(t0)
				ok := err == nil && resp.StatusCode == http.StatusAccepted
				if err == nil {
					io.Copy(io.Discard, resp.Body)
					resp.Body.Close()
				}
				mu.Lock()
				latencies = append(latencies, lat)
				if ok {
					accepted[id] = true
				} else {
					errs++
				}
				mu.Unlock()
			}
		}()
	}
	wg.Wait()
	elapsed := time.Since(start)

	// Account for every event and email of the accepted commands.
	sqs := sqsapi.NewFromConfig(env.AWS)
	queue := s.Physical("EventsQueue")
	events, mails := map[string]bool{}, 0
	deadline := time.Now().Add(2 * time.Minute)
	for time.Now().Before(deadline) && (len(events) < len(accepted) || mails < len(accepted)) {
		out, err := sqs.ReceiveMessage(ctx, &sqsapi.ReceiveMessageInput{QueueUrl: aws.String(queue), MaxNumberOfMessages: 10, WaitTimeSeconds: 1, VisibilityTimeout: 5})
		if err != nil {
			t.Fatal(err)
		}
		for _, m := range out.Messages {
			if i := strings.Index(aws.ToString(m.Body), `"subject":"`); i >= 0 {
				rest := aws.ToString(m.Body)[i+len(`"subject":"`):]
				events[rest[:strings.IndexByte(rest, '"')]] = true
			}
			if _, err := sqs.DeleteMessage(ctx, &sqsapi.DeleteMessageInput{QueueUrl: aws.String(queue), ReceiptHandle: m.ReceiptHandle}); err != nil {
				t.Fatal(err)
			}
		}
		if len(out.Messages) == 0 {
			all, err := env.SentEmails(ctx)
			if err != nil {
				t.Fatal(err)
			}
			seen := map[string]bool{}
			for _, e := range all {
				for _, to := range e.Destination.To {
					if id := strings.TrimSuffix(to, "@example.com"); accepted[id] {
						seen[id] = true
					}
				}
			}
			mails = len(seen)
		}
	}
	missingEvents := 0
	for id := range accepted {
		if !events[id] {
			missingEvents++
		}
	}
	slices.Sort(latencies)
	pct := func(p float64) time.Duration {
		if len(latencies) == 0 {
			return 0
		}
		return latencies[min(len(latencies)-1, int(p*float64(len(latencies))))]
	}
	t.Logf("\n%d clients for %s: %d requests, %.1f requests/s, p50 %s, p99 %s, errors %d; accepted %d, events missing %d, emails %d/%d",
		clients, d, len(latencies), float64(len(latencies))/elapsed.Seconds(), pct(0.50).Round(time.Microsecond), pct(0.99).Round(time.Microsecond),
		errs, len(accepted), missingEvents, mails, len(accepted))
	if errs != 0 || missingEvents != 0 || mails != len(accepted) || len(accepted) == 0 {
		t.Errorf("%d errors, %d events missing, %d of %d emails: want 0, 0 and all", errs, missingEvents, mails, len(accepted))
	}
}

func signed(url, body string) (*http.Request, error) {
	req, err := http.NewRequest(http.MethodPost, url, strings.NewReader(body))
	if err != nil {
		return nil, err
	}
	id := fmt.Sprintf("msg_%d", time.Now().UnixNano())
	now := time.Now()
	sig, err := webhook.Sign(secret, id, now, []byte(body))
	if err != nil {
		return nil, err
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("webhook-id", id)
	req.Header.Set("webhook-timestamp", strconv.FormatInt(now.Unix(), 10))
	req.Header.Set("webhook-signature", sig)
	return req, nil
}
