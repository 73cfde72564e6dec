// Package testenv gives a test binary its own local AWS: it starts the
// emulators on free loopback ports (once per package, from TestMain),
// provisions infra/template.yaml into them, points the standard
// AWS_ENDPOINT_URL* variables at them and always stops them, on success, on
// failure, on Ctrl-C, and (through the kernel's parent-death signal) when the
// binary is killed by `go test -timeout`.
//
// Use it as:
//
//	func TestMain(m *testing.M) { testenv.Main(m) }
//
// and in a test: env := testenv.Get(t).
package testenv

import (
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"net/http"
	"os"
	"os/signal"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/config"

	"github.com/dispatcher-dev/dispatcher/internal/local/emulator"
	"github.com/dispatcher-dev/dispatcher/internal/local/provision"
)

// StackName is the stack name every test binary provisions under.
const StackName = "dispatcher-test"

// Env is one test binary's local AWS.
type Env struct {
	Root      string // repository root
	Emulators *emulator.Stack
	Stack     *provision.Stack
	AWS       aws.Config
}

var current *Env

// Main runs the package's tests against freshly started emulators and exits.
// With -short it starts nothing, and tests that call Get are skipped.
func Main(m *testing.M) {
	flag.Parse()
	if testing.Short() {
		os.Exit(m.Run())
	}
	os.Exit(run(m))
}

func run(m *testing.M) int {
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()

	// Ctrl-C during startup or tests: stop the emulators, then exit.
	sigs := make(chan os.Signal, 1)
	signal.Notify(sigs, os.Interrupt, syscall.SIGTERM, syscall.SIGHUP)
	defer signal.Stop(sigs)

	dir, err := emulator.FindDir()
	if err != nil {
		fmt.Fprintln(os.Stderr, "testenv:", err)
		return 1
	}
	root := filepath.Dir(dir)
	type started struct {
		s   *emulator.Stack
		err error
	}
	ch := make(chan started, 1)
	backend, err := emulator.ParseBackend(os.Getenv("DISPATCHER_BACKEND"))
	if err != nil {
		fmt.Fprintln(os.Stderr, "testenv:", err)
		return 1
	}
	go func() {
		s, err := emulator.Start(ctx, emulator.Options{Dir: dir, StartTimeout: startTimeout(), Backend: backend})
		ch <- started{s, err}
	}()
	var stack *emulator.Stack
	select {
	case r := <-ch:
		if r.err != nil {
			fmt.Fprintln(os.Stderr, "testenv: cannot start the local emulators:", r.err)
			return 1
		}
		stack = r.s
	case sig := <-sigs:
		cancel()
		if r := <-ch; r.s != nil {
			r.s.Stop()
		}
		fmt.Fprintf(os.Stderr, "testenv: %s during startup: emulators stopped\n", sig)
		return 130
	}
	go func() {
		sig, ok := <-sigs
		if !ok {
			return
		}
		stack.Stop()
		fmt.Fprintf(os.Stderr, "testenv: %s: emulators stopped\n", sig)
		os.Exit(130)
	}()
	defer stack.Stop()
	watchTimeout(stack)

	for k, v := range stack.Endpoints() {
		os.Setenv(k, v)
	}
	cfg, err := config.LoadDefaultConfig(ctx, config.WithLogger(emulator.QuietSDKLogger{}))
	if err != nil {
		fmt.Fprintln(os.Stderr, "testenv: load AWS config:", err)
		return 1
	}
	prov, err := provision.Apply(ctx, cfg, provision.Options{
		TemplatePath: filepath.Join(root, "infra", "template.yaml"),
		StackName:    StackName,
	})
	if err != nil {
		fmt.Fprintf(os.Stderr, "testenv: provision infra/template.yaml: %v\n%s", err, stack.Tails(30))
		return 1
	}
	current = &Env{Root: root, Emulators: stack, Stack: prov, AWS: cfg}

	code := m.Run()
	if code != 0 {
		fmt.Fprintf(os.Stderr, "\ntestenv: tests failed; emulator logs are kept in %s\n%s", stack.LogDir, stack.Tails(40))
	} else {
		stack.Stop()
		os.RemoveAll(stack.LogDir)
	}
	return code
}

// startTimeout allows DISPATCHER_EMULATOR_START_TIMEOUT (a Go duration) to
// lengthen the wait on a slow machine.
func startTimeout() time.Duration {
	if s := os.Getenv("DISPATCHER_EMULATOR_START_TIMEOUT"); s != "" {
		if d, err := time.ParseDuration(s); err == nil {
			return d
		}
	}
	return emulator.DefaultStartTimeout
}

// watchTimeout prints the emulator logs shortly before `go test -timeout`
// kills the binary: the timeout panic runs no deferred code, and the logs
// are usually what explains a hang. The emulators themselves die with the
// binary (parent-death signal).
func watchTimeout(stack *emulator.Stack) {
	f := flag.Lookup("test.timeout")
	if f == nil {
		return
	}
	d, err := time.ParseDuration(f.Value.String())
	if err != nil || d <= 0 {
		return
	}
	margin := 10 * time.Second
	if d <= 2*margin {
		margin = d / 4
	}
	time.AfterFunc(d-margin, func() {
		fmt.Fprintf(os.Stderr, "\ntestenv: about to reach -timeout %s; emulator logs:\n%s", d, stack.Tails(40))
	})
}

// Get returns the binary's local AWS, or skips the test in -short mode.
func Get(t testing.TB) *Env {
	t.Helper()
	if current == nil {
		if testing.Short() {
			t.Skip("integration test: needs the local emulators (skipped with -short)")
		}
		t.Fatal("testenv: no local AWS; call testenv.Main(m) from TestMain")
	}
	return current
}

// SentEmail is one message kept by the SES emulator (its /store shape).
type SentEmail struct {
	MessageID   string   `json:"messageId"`
	From        string   `json:"from"`
	ReplyTo     []string `json:"replyTo"`
	Destination struct {
		To  []string `json:"to"`
		Cc  []string `json:"cc"`
		Bcc []string `json:"bcc"`
	} `json:"destination"`
	Subject string `json:"subject"`
	Body    struct {
		HTML string `json:"html"`
		Text string `json:"text"`
	} `json:"body"`
	Headers []struct {
		Name  string `json:"name"`
		Value string `json:"value"`
	} `json:"headers"`
	At int64 `json:"at"`
}

// Header returns the value of a header of the email, or "".
func (e SentEmail) Header(name string) string {
	for _, h := range e.Headers {
		if strings.EqualFold(h.Name, name) {
			return h.Value
		}
	}
	return ""
}

// SentEmails reads every email the SES emulator (or moto) has accepted, in
// the order it accepted them.
func (e *Env) SentEmails(ctx context.Context) ([]SentEmail, error) {
	if e.Emulators.Backend() == emulator.MotoServer {
		return motoSentEmails(ctx, e.Emulators.Get(emulator.Moto).URL)
	}
	var store struct {
		Emails []SentEmail `json:"emails"`
	}
	if err := getJSON(ctx, e.Emulators.Get(emulator.SES).URL+"/store", &store); err != nil {
		return nil, err
	}
	return store.Emails, nil
}

// getJSON decodes the JSON answer of a GET into v.
func getJSON(ctx context.Context, url string, v any) error {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return err
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("GET %s: %s", url, resp.Status)
	}
	if err := json.NewDecoder(resp.Body).Decode(v); err != nil {
		return fmt.Errorf("decode %s: %w", url, err)
	}
	return nil
}
