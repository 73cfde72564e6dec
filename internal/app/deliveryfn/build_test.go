package deliveryfn

import (
	"context"
	"errors"
	"log/slog"
	"net"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/dispatcher-dev/dispatcher/internal/app/awscfg"
	"github.com/dispatcher-dev/dispatcher/internal/delivery"
	"github.com/dispatcher-dev/dispatcher/internal/local/emulator"
	"github.com/dispatcher-dev/dispatcher/internal/obs"
	"github.com/dispatcher-dev/dispatcher/internal/testkit/testenv"
)

func TestMain(m *testing.M) { testenv.Main(m) }

// buildRelay builds the relay from the template's environment with the
// given variables changed, on the AWS configuration the function's cold
// start loads (awscfg, from the process's endpoints and extra), and returns
// the engine and what it logged and counted.
func buildRelay(t *testing.T, vars map[string]string, extra map[string]string) (*Paced, string, string) {
	t.Helper()
	env := testenv.Get(t)
	fenv, err := env.Stack.FunctionEnv("StreamRelayFunction")
	if err != nil {
		t.Fatal(err)
	}
	for k, v := range vars {
		fenv[k] = v
	}
	cfg, err := awscfg.Load(func(k string) string {
		if v, ok := extra[k]; ok {
			return v
		}
		return os.Getenv(k)
	})
	if err != nil {
		t.Fatal(err)
	}
	var stdout, stderr testenv.SyncBuffer
	_, engine, err := build(context.Background(), cfg, func(k string) string { return fenv[k] }, &stdout, &stderr)
	if err != nil {
		t.Fatal(err)
	}
	return engine, stdout.String(), stderr.String()
}

// The relay reads the account's MaxSendRate (the emulator's account:
// emulator.SESMaxSendRate, 14) at cold start and paces at the lower of it
// and SES_ACCOUNT_SEND_RATE, over RELAY_EXPECTED_CONCURRENCY (the
// template's StreamParallelizationFactor, 2) as the parameter is.
func TestTheRelayPacesAtTheLowerOfTheAccountAndTheParameter(t *testing.T) {
	tests := []struct {
		name  string
		param string
		want  float64
	}{
		{"an account below the parameter: the account's rate", "20", emulator.SESMaxSendRate / 2.0},
		{"an account above the parameter: the parameter's rate", "5", 2.5},
		{"an account at the parameter", "14", 7},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			engine, metrics, logs := buildRelay(t, map[string]string{"SES_ACCOUNT_SEND_RATE": tt.param, "RELAY_EXPECTED_CONCURRENCY": "2"}, nil)
			if testenv.Skip(t, testenv.MotoServesNoGetAccount) {
				return
			}
			if got := engine.EmailRate(); got != tt.want {
				t.Errorf("the engine paces at %v a second, want %v", got, tt.want)
			}
			if strings.Contains(logs, "SES send quota not read") || strings.Contains(metrics, "SendQuotaUnread") {
				t.Errorf("the quota was read, yet the relay says it was not:\n%s\n%s", logs, metrics)
			}
		})
	}
}

// A send quota the relay cannot read (here: nothing answers at the SES
// endpoint) leaves the parameter's rate, says so once (a WARN line and
// SendQuotaUnread) and does not fail the cold start.
func TestARelayThatCannotReadTheQuotaPacesAtTheParameter(t *testing.T) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	closed := "http://" + l.Addr().String()
	l.Close()
	engine, metrics, logs := buildRelay(t, map[string]string{"SES_ACCOUNT_SEND_RATE": "3", "RELAY_EXPECTED_CONCURRENCY": "2"},
		map[string]string{"AWS_ENDPOINT_URL_SESV2": closed})
	if got := engine.EmailRate(); got != 1.5 {
		t.Errorf("the engine paces at %v a second, want the parameter's 3 over 2", got)
	}
	if n := strings.Count(logs, `"msg":"SES send quota not read; the email rate in use stays"`); n != 1 || !strings.Contains(logs, `"level":"WARN"`) {
		t.Errorf("%d WARN lines about the quota, want 1:\n%s", n, logs)
	}
	if n := strings.Count(metrics, `"SendQuotaUnread":1`); n != 1 {
		t.Errorf("SendQuotaUnread counted %d times, want 1:\n%s", n, metrics)
	}
}

// A relay instance reads the quota again every PaceEvery, on the request
// path: a quota SES changed is followed; a read that fails keeps the rate in
// use (WARN, SendQuotaUnread) and is tried again PaceEvery later.
func TestTheRelayFollowsTheAccountsQuota(t *testing.T) {
	var logs, metrics testenv.SyncBuffer
	log, m := obs.NewLogger(&logs, slog.LevelInfo), obs.NewMetrics(&metrics, "Dispatcher")
	c := Config{AccountSendRate: 20, Concurrency: 2, Delivery: delivery.Config{EmailRate: 10}}
	engine := delivery.New(c.Delivery, nil, nil, nil, log, m)
	clock := time.Unix(1_700_000_000, 0)
	quota, fail := 14.0, false
	reads := 0
	p, err := pace(context.Background(), engine, c, func(context.Context) (float64, error) {
		reads++
		if fail {
			return 0, errors.New("AccessDeniedException")
		}
		return quota, nil
	}, func() time.Time { return clock }, log, m)
	if err != nil {
		t.Fatal(err)
	}
	step := func(d time.Duration, want float64, wantReads int) {
		t.Helper()
		clock = clock.Add(d)
		p.Deliver(context.Background(), nil)
		if got := p.EmailRate(); got != want || reads != wantReads {
			t.Errorf("after %s: rate %v after %d reads, want %v after %d", d, got, reads, want, wantReads)
		}
	}
	step(0, 7, 1) // cold start: 14 over 2
	quota = 4
	step(PaceEvery-time.Second, 7, 1) // not due yet
	step(time.Second, 2, 2)           // due: 4 over 2
	quota = 100
	step(PaceEvery, 10, 3) // raised above the parameter: the parameter's 20 over 2
	fail = true
	step(PaceEvery, 10, 4) // failed: the rate in use stays
	step(PaceEvery-time.Second, 10, 4)
	if n := strings.Count(logs.String(), "SES send quota not read"); n != 1 || strings.Count(metrics.String(), `"SendQuotaUnread":1`) != 1 {
		t.Errorf("%d WARN lines for one failed read:\n%s\n%s", n, logs.String(), metrics.String())
	}
	fail, quota = false, 6
	step(time.Second, 3, 5) // tried again PaceEvery after the failure
}
