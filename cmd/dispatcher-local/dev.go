package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/aws/aws-sdk-go-v2/config"

	"github.com/dispatcher-dev/dispatcher/internal/local/emulator"
	"github.com/dispatcher-dev/dispatcher/internal/local/provision"
	"github.com/dispatcher-dev/dispatcher/internal/local/runner"
	"github.com/dispatcher-dev/dispatcher/internal/webhook"
)

// devOptions are the flags of `dev`.
type devOptions struct {
	port      int
	stack     string
	endpoint  string
	poll      time.Duration
	binary    bool
	schedules bool
	templates string // the template folder ("" : the built-in one)
	ports     map[emulator.Name]int
}

func devCmd(ctx context.Context, args []string) error {
	fs := flag.NewFlagSet("dev", flag.ContinueOnError)
	o := devOptions{ports: map[emulator.Name]int{}}
	apiPort, err := portFromEnv("DISPATCHER_API_PORT", 3000)
	if err != nil {
		return err
	}
	fs.IntVar(&o.port, "port", apiPort, "API port on 127.0.0.1 (env DISPATCHER_API_PORT)")
	fs.StringVar(&o.stack, "stack", "dispatcher-local", "stack name for resource names")
	fs.StringVar(&o.endpoint, "endpoint", os.Getenv("AWS_ENDPOINT_URL"), "use this already running AWS endpoint (LocalStack, ...) instead of starting the emulators (env AWS_ENDPOINT_URL)")
	fs.DurationVar(&o.poll, "poll", runner.DefaultPollInterval, "stream poll interval per shard")
	fs.BoolVar(&o.binary, "binary", false, "run the built bootstrap binaries under the Lambda Runtime Interface Emulator instead of in-process")
	fs.BoolVar(&o.schedules, "schedules", true, "run the template's rate() schedules (the sweeper)")
	fs.StringVar(&o.templates, "templates", os.Getenv("EMAIL_TEMPLATES"), "the email template folder the functions load, as the template layer deploys it (env EMAIL_TEMPLATES; default: the built-in one)")
	ports := map[emulator.Name]*int{}
	for _, p := range emulatorPorts {
		def, err := portFromEnv(p.env, p.def)
		if err != nil {
			return err
		}
		ports[p.n] = fs.Int(p.flag, def, fmt.Sprintf("%s port on 127.0.0.1 (env %s)", p.n, p.env))
	}
	if err := fs.Parse(args); err != nil {
		return err
	}
	for n, v := range ports {
		o.ports[n] = *v
	}
	err = dev(ctx, o)
	if err != nil && ctx.Err() != nil {
		// Ctrl-C while starting: what failed failed because it was
		// stopped, and everything started is stopped again.
		fmt.Println("\nstopped while starting")
		return nil
	}
	return err
}

var emulatorPorts = []struct {
	n    emulator.Name
	env  string
	flag string
	def  int
}{
	{emulator.DynamoDB, "DISPATCHER_DYNAMODB_PORT", "dynamodb-port", 8000},
	{emulator.SQS, "DISPATCHER_SQS_PORT", "sqs-port", 9324},
	{emulator.SES, "DISPATCHER_SES_PORT", "ses-port", 8005},
}

func dev(ctx context.Context, o devOptions) error {
	started := time.Now()
	dir, err := emulator.FindDir()
	if err != nil {
		return err
	}
	root := filepath.Dir(dir)
	addr := net.JoinHostPort("127.0.0.1", strconv.Itoa(o.port))
	if l, err := net.Listen("tcp", addr); err != nil {
		return fmt.Errorf("API port %d is taken (%v): stop what listens there or use -port / DISPATCHER_API_PORT", o.port, err)
	} else {
		l.Close()
	}
	log := slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelInfo}))

	// Where AWS is: a given endpoint, emulators already started by
	// `make emulators-up`, or emulators started (and stopped) here.
	var where awsPlace
	var warnings []string
	switch {
	case o.endpoint != "":
		where = awsPlace{kind: "endpoint", endpoint: strings.TrimRight(o.endpoint, "/")}
		os.Setenv("AWS_ENDPOINT_URL", where.endpoint)
		setDefault("AWS_REGION", "us-east-1")
		setDefault("AWS_ACCESS_KEY_ID", "test")
		setDefault("AWS_SECRET_ACCESS_KEY", "test")
	default:
		if st, ok := detachedEmulators(); ok {
			where = awsPlace{kind: "detached", endpoints: st.Endpoints}
		} else {
			fmt.Println("Starting the emulators (DynamoDB Local, fauxqs, aws-ses-v2-local)...")
			s, err := emulator.Start(ctx, emulator.Options{Dir: dir, Ports: o.ports, LogDir: filepath.Join(root, ".local", "emulator-logs")})
			if err != nil {
				return err
			}
			defer func() {
				s.Stop()
				fmt.Println("emulators stopped")
			}()
			where = awsPlace{kind: "started", endpoints: s.Endpoints(), logDir: s.LogDir}
			for _, p := range s.Processes() {
				if p.Warning != "" {
					warnings = append(warnings, p.Warning)
				}
			}
		}
		for k, v := range where.endpoints {
			os.Setenv(k, v)
		}
	}
	cfg, err := config.LoadDefaultConfig(ctx, config.WithLogger(emulator.QuietSDKLogger{}))
	if err != nil {
		return err
	}
	stack, err := provision.Apply(ctx, cfg, provision.Options{TemplatePath: filepath.Join(root, "infra", "template.yaml"), StackName: o.stack, EmailTemplates: o.templates})
	if err != nil {
		return fmt.Errorf("provision infra/template.yaml: %w", err)
	}
	spec, err := runner.ReadSpec(stack)
	if err != nil {
		return err
	}
	dirs, err := runner.FunctionDirs(root)
	if err != nil {
		return err
	}
	extra := runner.LocalEnv(os.Getenv)
	var fns map[string]runner.Function
	mode := "in-process"
	if o.binary {
		mode = "bootstrap binaries under the Runtime Interface Emulator"
		bin, err := runner.StartBinaries(ctx, runner.BinaryOptions{
			Root: root, Spec: spec, Dirs: dirs, Extra: extra, StackName: o.stack, Log: os.Stderr,
			Progress: func(s string) { fmt.Println(s) },
		})
		if err != nil {
			return err
		}
		defer bin.Stop()
		fns = bin.Functions
	} else {
		fns, err = runner.InProcessFunctions(ctx, cfg, spec, o.stack, dirs, extra)
		if err != nil {
			return err
		}
	}
	r, err := runner.New(runner.Options{Stack: stack, AWS: cfg, Functions: fns, Addr: addr, PollInterval: o.poll, Log: log, Schedules: o.schedules})
	if err != nil {
		return err
	}
	if err := r.Start(ctx); err != nil {
		return err
	}
	defer r.Close()
	// Each template once, with its sample data, on the SES page.
	previews, err := runner.SendPreviews(ctx, cfg, stack)
	if err != nil {
		warnings = append(warnings, "template previews not sent: "+err.Error())
	}
	printBanner(os.Stdout, banner{runner: r, stack: stack, where: where, secret: extra["WEBHOOK_SECRETS"], secondCaller: os.Getenv("CALLERS") == "", mode: mode, took: time.Since(started), self: selfCommand(root), warnings: warnings, previews: previews})
	<-ctx.Done()
	fmt.Println("\nstopping...")
	return nil
}

type awsPlace struct {
	kind      string // endpoint, detached, started
	endpoint  string
	endpoints map[string]string
	logDir    string
}

func (p awsPlace) url(service string) string {
	if p.kind == "endpoint" {
		return p.endpoint
	}
	return p.endpoints["AWS_ENDPOINT_URL_"+service]
}

func setDefault(k, v string) {
	if os.Getenv(k) == "" {
		os.Setenv(k, v)
	}
}

// detachedEmulators returns the emulators `make emulators-up` left running.
func detachedEmulators() (state, bool) {
	sp, err := statePath()
	if err != nil {
		return state{}, false
	}
	b, err := os.ReadFile(sp)
	if err != nil {
		return state{}, false
	}
	var st state
	if json.Unmarshal(b, &st) != nil || len(st.PIDs) == 0 {
		return state{}, false
	}
	for _, pid := range st.PIDs {
		if !emulator.Alive(pid) {
			return state{}, false
		}
	}
	return st, true
}

type banner struct {
	runner *runner.Runner
	stack  *provision.Stack
	where  awsPlace
	secret string
	// secondCaller: the registry is `make dev`'s own (runner.DevSecondCaller),
	// so the banner shows a request of that second caller.
	secondCaller bool
	mode         string
	took         time.Duration
	self         string   // how to run this tool from any shell
	warnings     []string // the emulators' warnings (DynamoDB Local not on loopback)
	previews     runner.Previews
}

// The banner's commands: every line that starts with exactly bannerIndent
// is a command, ready to paste into bash as is, from any folder, in a shell
// that has none of make's variables; a command line ending in " \\"
// continues on the next line. Consecutive command lines are one block (the
// signing snippet's lines share variables). Everything else is indented by
// two spaces, or by six.
const bannerIndent = "    "

func printBanner(w io.Writer, b banner) {
	api := b.runner.URL()
	p := func(format string, a ...any) { fmt.Fprintf(w, format+"\n", a...) }
	cmd := func(format string, a ...any) { p(bannerIndent+format, a...) }
	p("")
	p("Dispatcher is running locally (functions: %s; ready in %s).", b.mode, b.took.Round(100*time.Millisecond))
	p("Every line indented by four spaces below is a command: paste it into bash as is, from any folder.")
	p("")
	p("API (API Gateway HTTP API emulation): %s", api)
	for _, l := range b.runner.Describe() {
		if strings.HasPrefix(l, " ") {
			p("    %s", l) // a setting of the line above, never a command
		} else {
			p("  %s", l)
		}
	}
	p("")
	ses := b.where.url("SESV2")
	switch b.where.kind {
	case "endpoint":
		p("AWS endpoint: %s (nothing started here; LocalStack shows sent mail at %s/_aws/ses)", b.where.endpoint, b.where.endpoint)
	default:
		p("Sent mail (SES emulator): %s/   (JSON: %s/store)", ses, ses)
		if b.where.kind == "detached" {
			p("  (using the emulators started by `make emulators-up`; `make emulators-down` stops them)")
		} else {
			p("  emulator logs: %s", b.where.logDir)
		}
	}
	if len(b.previews.Templates) > 0 {
		p("Email templates from %s: a preview of each (%s), rendered with its sample.json, sent to %s",
			b.previews.Folder, strings.Join(b.previews.Templates, ", "), runner.PreviewAddress)
		p("  with the subject prefixed %q: on the SES page above (make templates-check EMAIL_TEMPLATES=dir checks a folder)", strings.TrimSpace(runner.PreviewPrefix))
	}
	for _, warn := range b.warnings {
		p("WARN: %s", warn)
	}
	p("")

	// A ready-to-paste signed request, valid five minutes.
	secrets, _ := webhook.ParseSecrets(b.secret)
	secret := b.secret
	if len(secrets) > 0 {
		secret = secrets[0]
	}
	if secret == runner.DevWebhookSecret {
		p("Webhook secret (a fixed LOCAL DEV secret, never use it anywhere else; set WEBHOOK_SECRETS to change it):")
	} else {
		p("Webhook secret (from WEBHOOK_SECRETS):")
	}
	p("  %s", secret)
	p("")
	now := time.Now()
	agg := fmt.Sprintf("acc-%d", now.UnixNano())
	body := fmt.Sprintf(`{"type":"OpenAccount","aggregateId":%q,"data":{"owner":"Ada Lovelace","email":"ada@example.com","currency":"EUR"}}`, agg)
	id := fmt.Sprintf("msg_%d", now.UnixNano())
	sig, err := webhook.Sign(secret, id, now, []byte(body))
	if err == nil {
		p("Try it: a signed OpenAccount command (the signature is valid for 5 minutes, until %s):", now.Add(5*time.Minute).Format("15:04:05"))
		cmd("curl -i --fail-with-body %s/v1/commands \\", api)
		cmd("  -H 'content-type: application/json' \\")
		cmd("  -H 'webhook-id: %s' \\", id)
		cmd("  -H 'webhook-timestamp: %d' \\", now.Unix())
		cmd("  -H 'webhook-signature: %s' \\", sig)
		cmd("  --data-raw '%s'", body)
		gid := id + "_get"
		gsig, _ := webhook.Sign(secret, gid, now, webhook.SignedContent("GET", "/v1/aggregates/"+agg+"/outbox", "", nil))
		p("Then read it back (GET routes are signed too, over their request line \"GET /path?query\"):")
		cmd("curl -sS --fail-with-body %s/v1/aggregates/%s/outbox -H 'webhook-id: %s' -H 'webhook-timestamp: %d' -H 'webhook-signature: %s'", api, agg, gid, now.Unix(), gsig)
		if b.secondCaller {
			printSecondCaller(p, cmd, api, id, now)
		}
	} else {
		p("(cannot sign an example with this secret: %v)", err)
	}
	p("")
	p("Sign new requests yourself (bash + openssl; paste the six lines together):")
	cmd(`secret='%s'`, secret)
	cmd(`id="msg_$(date +%%s%%N)"; ts=$(date +%%s)`)
	cmd(`body='{"type":"OpenAccount","aggregateId":"acc-'${id#msg_}'","data":{"owner":"Ada Lovelace","email":"ada@example.com","currency":"EUR"}}'`)
	cmd(`key=$(printf '%%s' "${secret#whsec_}" | base64 -d | od -An -v -tx1 | tr -d ' \n')`)
	cmd(`sig=$(printf '%%s' "$id.$ts.$body" | openssl dgst -sha256 -mac HMAC -macopt "hexkey:$key" -binary | base64)`)
	cmd(`curl -i --fail-with-body %s/v1/commands -H 'content-type: application/json' -H "webhook-id: $id" -H "webhook-timestamp: $ts" -H "webhook-signature: v1,$sig" --data-raw "$body"`, api)
	p("")

	if b.where.kind != "endpoint" {
		sqsURL := b.where.url("SQS")
		p("Peek at the events queue and the DLQ without consuming (fauxqs's inspection endpoint):")
		cmd("curl -sS --fail-with-body %s/_fauxqs/queues/%s", sqsURL, b.stack.Attr("EventsQueue", "QueueName"))
		cmd("curl -sS --fail-with-body %s/_fauxqs/queues/%s", sqsURL, b.stack.Attr("DeadLetterQueue", "QueueName"))
		p("")
	}
	p("Replay the DLQ (and sweep undelivered items):")
	cmd(`curl -sS --fail-with-body -X POST %s%s -d '{"mode":"all"}'`, api, runner.ReplayPath)
	cmd(`%s replay -api %s '{"mode":"all"}'`, b.self, api)
	p("")
	p(bannerEnd)
}

// printSecondCaller prints a signed command of `make dev`'s second caller,
// sent with the same webhook-id as the default caller's: idempotency keys
// are per caller, so it is a command of its own.
func printSecondCaller(p, cmd func(string, ...any), api, id string, now time.Time) {
	agg := fmt.Sprintf("%sacc-%d", runner.DevSecondCallerPrefix, now.UnixNano())
	body := fmt.Sprintf(`{"type":"OpenAccount","aggregateId":%q,"data":{"owner":"Grace Hopper","email":"grace@example.com","currency":"USD"}}`, agg)
	sig, err := webhook.Sign(runner.DevSecondCallerSecret, id, now, []byte(body))
	if err != nil {
		return
	}
	p("A second caller, %s, with its own secret (%s), its own idempotency keys (this webhook-id is the one above,", runner.DevSecondCaller, runner.DevSecondCallerSecret)
	p("yet a command of its own) and a grant of the accounts whose id starts with %q; the Dispatcher-Caller header names it:", runner.DevSecondCallerPrefix)
	cmd("curl -i --fail-with-body %s/v1/commands \\", api)
	cmd("  -H 'content-type: application/json' \\")
	cmd("  -H 'dispatcher-caller: %s' \\", runner.DevSecondCaller)
	cmd("  -H 'webhook-id: %s' \\", id)
	cmd("  -H 'webhook-timestamp: %d' \\", now.Unix())
	cmd("  -H 'webhook-signature: %s' \\", sig)
	cmd("  --data-raw '%s'", body)
}

// bannerEnd is the banner's last line.
const bannerEnd = "Ctrl-C stops everything this started."

// selfCommand is how a person runs this tool again from any shell: its own
// path when it was built (make dev builds it into .local/bin), or, under
// `go run`, whose binary vanishes on exit, go run in the repository with the
// toolchain this binary was built with (slow: a new shell's go may be older
// than go.mod's toolchain, and would build it again).
func selfCommand(root string) string {
	exe, err := os.Executable()
	if err == nil && !strings.Contains(exe, string(filepath.Separator)+"go-build") {
		return shellQuote(exe)
	}
	return fmt.Sprintf("GOTOOLCHAIN=%s go -C %s run ./cmd/dispatcher-local", runtime.Version(), shellQuote(root))
}

// shellQuote quotes s for bash when it needs it.
func shellQuote(s string) string {
	if s != "" && strings.Trim(s, "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789/._-+:=@") == "" {
		return s
	}
	return "'" + strings.ReplaceAll(s, "'", `'\''`) + "'"
}

// replayCmd sends a replay request to a running `dev`, or, when none
// answers, runs the replay function once against the emulators that
// `make emulators-up` started (or AWS_ENDPOINT_URL).
func replayCmd(ctx context.Context, args []string) error {
	fs := flag.NewFlagSet("replay", flag.ContinueOnError)
	port, err := portFromEnv("DISPATCHER_API_PORT", 3000)
	if err != nil {
		return err
	}
	api := fs.String("api", "http://127.0.0.1:"+strconv.Itoa(port), "the running `dev` API")
	stackName := fs.String("stack", "dispatcher-local", "stack name (one-shot mode)")
	if err := fs.Parse(args); err != nil {
		return err
	}
	reqBody := `{"mode":"dlq"}`
	if fs.NArg() > 0 {
		reqBody = strings.Join(fs.Args(), " ")
	}
	if !json.Valid([]byte(reqBody)) {
		return fmt.Errorf("the replay request must be JSON, e.g. '{\"mode\":\"all\"}'")
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, strings.TrimRight(*api, "/")+runner.ReplayPath, strings.NewReader(reqBody))
	if err != nil {
		return err
	}
	resp, err := http.DefaultClient.Do(req)
	if err == nil {
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		printJSON(b)
		if resp.StatusCode != http.StatusOK {
			return fmt.Errorf("replay failed: %s", resp.Status)
		}
		return nil
	}
	if !errors.Is(err, syscall.ECONNREFUSED) {
		return err
	}
	return replayOnce(ctx, *stackName, reqBody)
}

func replayOnce(ctx context.Context, stackName, reqBody string) error {
	if st, ok := detachedEmulators(); ok {
		for k, v := range st.Endpoints {
			os.Setenv(k, v)
		}
	} else if os.Getenv("AWS_ENDPOINT_URL") == "" {
		return errors.New("nothing to replay against: no `dev` answers and no emulators run; start `make dev` (or `make emulators-up`, or set AWS_ENDPOINT_URL)")
	}
	fmt.Fprintln(os.Stderr, "no `dev` answers: running the replay function once against the emulators")
	dir, err := emulator.FindDir()
	if err != nil {
		return err
	}
	root := filepath.Dir(dir)
	cfg, err := config.LoadDefaultConfig(ctx, config.WithLogger(emulator.QuietSDKLogger{}))
	if err != nil {
		return err
	}
	stack, err := provision.Apply(ctx, cfg, provision.Options{TemplatePath: filepath.Join(root, "infra", "template.yaml"), StackName: stackName, EmailTemplates: os.Getenv("EMAIL_TEMPLATES")})
	if err != nil {
		return err
	}
	spec, err := runner.ReadSpec(stack)
	if err != nil {
		return err
	}
	dirs, err := runner.FunctionDirs(root)
	if err != nil {
		return err
	}
	only := &runner.Spec{Functions: map[string]runner.FunctionSpec{runner.ReplayFunction: spec.Functions[runner.ReplayFunction]}}
	fns, err := runner.InProcessFunctions(ctx, cfg, only, stackName, dirs, runner.LocalEnv(os.Getenv))
	if err != nil {
		return err
	}
	out, err := fns[runner.ReplayFunction].Invoke(ctx, "replay-once", []byte(reqBody))
	if err != nil {
		return err
	}
	printJSON(out)
	return nil
}

func printJSON(b []byte) {
	var buf bytes.Buffer
	if json.Indent(&buf, b, "", "  ") == nil {
		fmt.Println(buf.String())
		return
	}
	fmt.Println(string(b))
}
