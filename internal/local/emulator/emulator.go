// Package emulator starts and stops the local AWS emulators that Dispatcher
// develops and tests against: DynamoDB Local (AWS's own jar, shipped by the
// npm package amplify-dynamodb-simulator), fauxqs for SQS and
// aws-ses-v2-local for SES v2. All three are pinned in localstack/package.json.
// All three listen on 127.0.0.1 only: DynamoDB Local through the launcher
// localstack/LoopbackDynamoDB.java (loopback.go), fauxqs through
// localstack/sqs-loopback.mjs, aws-ses-v2-local through its --host option.
//
// Every emulator runs in its own process group, so stopping it stops all it
// started; with Options.Detach unset the kernel also kills it when the parent
// process dies (PR_SET_PDEATHSIG), which covers a test binary killed by
// `go test -timeout` or by SIGKILL, where no deferred cleanup runs.
//
// Stack.StopOne and Stack.StartOne take one emulator down and bring it back on
// the same port, for chaos tests. Only fauxqs keeps its state across that, as
// the durable SQS would across an outage: it writes its queues and messages to
// SQSStateFile when stopped gracefully and reads them back when started.
// DynamoDB Local (-inMemory) and aws-ses-v2-local keep nothing: restarted,
// they come back empty.
package emulator

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"
)

// Name names one emulator.
type Name string

// The three emulators, in the order they are listed everywhere, and moto,
// the second implementation that serves all three services alone.
const (
	DynamoDB Name = "dynamodb-local"
	SQS      Name = "fauxqs"
	SES      Name = "aws-ses-v2-local"
	Moto     Name = "moto"
)

// All lists every emulator of the default backend.
var All = []Name{DynamoDB, SQS, SES}

// Backend chooses what serves the AWS APIs.
type Backend string

const (
	// Emulators is the default: DynamoDB Local, fauxqs and aws-ses-v2-local.
	Emulators Backend = "emulators"
	// MotoServer is moto (PyPI moto[server]) in server mode: one process
	// for DynamoDB, DynamoDB Streams, SQS and SES v2, written by other
	// people than the three emulators, so a test that passes on both is
	// not leaning on one implementation's quirks.
	MotoServer Backend = "moto"
)

// ParseBackend reads DISPATCHER_BACKEND's value; empty means Emulators.
func ParseBackend(s string) (Backend, error) {
	switch Backend(s) {
	case "", Emulators:
		return Emulators, nil
	case MotoServer:
		return MotoServer, nil
	}
	return "", &SetupError{Msg: fmt.Sprintf("DISPATCHER_BACKEND=%q: want %q (the default) or %q", s, Emulators, MotoServer)}
}

// Requirements, checked before anything starts.
const (
	MinJava = 17
	MinNode = 20
)

// SESMaxSendRate is the send rate of the account aws-ses-v2-local answers
// GetAccount with (SESAccount): the SES default of an account out of the
// sandbox, and the template's default SesAccountSendRate, so that the relay
// paced from the account (the lower of it and the parameter) paces locally
// as it did before it read the account. The sandbox's 1 a second would slow
// the local stack's relays to a 14th of that.
const SESMaxSendRate = 14

// SESAccount is the account aws-ses-v2-local answers GET /v2/email/account
// with (its AWS_SES_ACCOUNT, every field its schema requires): healthy, out
// of the sandbox, with SES's default quota (50,000 a day, SESMaxSendRate).
var SESAccount = fmt.Sprintf(`{"DedicatedIpAutoWarmupEnabled":false,`+
	`"Details":{"AdditionalContactEmailAddresses":[],"ContactLanguage":"EN","MailType":"TRANSACTIONAL",`+
	`"ReviewDetails":{"CaseId":"local","Status":"GRANTED"},"UseCaseDescription":"Dispatcher's local stack","WebsiteURL":"http://127.0.0.1"},`+
	`"EnforcementStatus":"HEALTHY","ProductionAccessEnabled":true,"SendingEnabled":true,`+
	`"SendQuota":{"Max24HourSend":50000,"MaxSendRate":%d,"SentLast24Hours":0},`+
	`"SuppressionAttributes":{"SuppressedReasons":["BOUNCE","COMPLAINT"]}}`, SESMaxSendRate)

// DefaultStartTimeout bounds how long one emulator may take to answer.
const DefaultStartTimeout = 60 * time.Second

// stopGrace is how long an emulator has to exit after SIGTERM before it is
// killed. fauxqs needs it to write its state.
const stopGrace = 5 * time.Second

// SQSStateFile is the file in Options.LogDir where fauxqs keeps its queues
// and messages between a StopOne and a StartOne. Start deletes it, so a new
// stack starts empty, like the in-memory DynamoDB Local beside it.
const SQSStateFile = "fauxqs-state.json"

// Options configures Start.
type Options struct {
	// Dir is the localstack/ folder holding package.json and node_modules.
	// Empty means: found by walking up from the working directory.
	Dir string
	// LogDir receives one log file per emulator. Empty means a new
	// temporary folder.
	LogDir string
	// Ports fixes the port of an emulator; 0 or absent picks a free one.
	Ports map[Name]int
	// StartTimeout bounds the wait for each emulator to answer.
	StartTimeout time.Duration
	// Detach leaves the emulators running after this process exits (for
	// `make emulators-up`). Stop them with StopPIDs.
	Detach bool
	// Backend chooses the emulators (the default) or moto.
	Backend Backend
	// loopback is where the compiled loopback launcher of DynamoDB Local
	// is, set by Start.
	loopback loopbackLauncher
	// MotoPython is the Python that has moto[server] (with Backend
	// MotoServer); it runs tools/moto/serve.py. Empty means
	// .venv-moto/bin/python beside Dir, where `make moto-install` puts it.
	MotoPython string
}

// names lists the processes a backend runs.
func (o Options) names() []Name {
	if o.Backend == MotoServer {
		return []Name{Moto}
	}
	return All
}

// Process is one running emulator.
type Process struct {
	Name    Name
	Port    int
	URL     string // http://127.0.0.1:<port>
	LogPath string
	PID     int
	// Warning, when set, says that the emulator does not keep to loopback
	// (DynamoDB Local started from the plain jar) and why; print it.
	Warning string

	cmd     *exec.Cmd
	done    chan struct{}
	waitErr error
}

// Stack is the set of running emulators.
type Stack struct {
	LogDir string
	opts   Options // as completed by Start; StartOne launches with them again

	mu       sync.Mutex
	procs    map[Name]*Process // the latest process of each emulator, running or stopped by StopOne
	starting map[Name]bool     // StartOne in progress
	stopped  bool              // Stop was called
	once     sync.Once
}

// SetupError is a problem with the machine or the configuration, as opposed
// to an emulator misbehaving: missing Java or Node.js, emulators not
// installed, a port already in use.
type SetupError struct{ Msg string }

func (e *SetupError) Error() string { return e.Msg }

// FindDir walks up from the working directory to the folder that holds
// localstack/package.json.
func FindDir() (string, error) {
	wd, err := os.Getwd()
	if err != nil {
		return "", err
	}
	for d := wd; ; d = filepath.Dir(d) {
		p := filepath.Join(d, "localstack", "package.json")
		if _, err := os.Stat(p); err == nil {
			return filepath.Join(d, "localstack"), nil
		}
		if filepath.Dir(d) == d {
			return "", &SetupError{Msg: fmt.Sprintf("cannot find localstack/package.json above %s: run from inside the Dispatcher repository", wd)}
		}
	}
}

// Start checks the machine, then starts the three emulators concurrently and
// waits until each answers. On any failure it stops what it started and says
// which emulator failed, with the tail of its log.
func Start(ctx context.Context, opts Options) (*Stack, error) {
	if opts.Dir == "" {
		d, err := FindDir()
		if err != nil {
			return nil, err
		}
		opts.Dir = d
	}
	if opts.StartTimeout <= 0 {
		opts.StartTimeout = DefaultStartTimeout
	}
	if opts.Backend == "" {
		opts.Backend = Emulators
	}
	if opts.Backend == MotoServer {
		if opts.MotoPython == "" {
			opts.MotoPython = filepath.Join(filepath.Dir(opts.Dir), ".venv-moto", "bin", "python")
		}
		if _, err := os.Stat(filepath.Join(filepath.Dir(opts.MotoPython), "moto_server")); err != nil {
			return nil, &SetupError{Msg: fmt.Sprintf("moto is not installed beside %s: run `make moto-install` (pip install -r tools/moto/requirements.txt into .venv-moto)", opts.MotoPython)}
		}
	} else if err := Preflight(ctx, opts.Dir); err != nil {
		return nil, err
	} else {
		opts.loopback = compileLoopback(ctx, opts.Dir)
	}
	for _, n := range opts.names() {
		if p := opts.Ports[n]; p != 0 {
			if err := checkPortFree(p); err != nil {
				return nil, &SetupError{Msg: fmt.Sprintf("%s: port %d is already in use (%v): stop what listens there or choose another port", n, p, err)}
			}
		}
	}
	if opts.LogDir == "" {
		d, err := os.MkdirTemp("", "dispatcher-emulators-")
		if err != nil {
			return nil, err
		}
		opts.LogDir = d
	} else if err := os.MkdirAll(opts.LogDir, 0o755); err != nil {
		return nil, err
	}
	// A state file left by an earlier stack in the same LogDir must not leak
	// into this one.
	if err := os.Remove(filepath.Join(opts.LogDir, SQSStateFile)); err != nil && !errors.Is(err, os.ErrNotExist) {
		return nil, fmt.Errorf("%s: remove old state: %w", SQS, err)
	}

	s := &Stack{LogDir: opts.LogDir, opts: opts, procs: map[Name]*Process{}, starting: map[Name]bool{}}
	var (
		mu   sync.Mutex
		errs []error
		wg   sync.WaitGroup
	)
	for _, n := range opts.names() {
		wg.Add(1)
		go func() {
			defer wg.Done()
			p, err := startOne(ctx, n, opts)
			mu.Lock()
			defer mu.Unlock()
			if p != nil {
				s.procs[n] = p
			}
			if err != nil {
				errs = append(errs, err)
			}
		}()
	}
	wg.Wait()
	if len(errs) > 0 {
		s.Stop()
		return nil, errors.Join(errs...)
	}
	return s, nil
}

// startOne starts one emulator, retrying on a fresh port when a port it
// picked itself was taken in the meantime (another test run won the race).
func startOne(ctx context.Context, n Name, opts Options) (*Process, error) {
	fixed := opts.Ports[n]
	const attempts = 3
	var lastErr error
	for i := 0; i < attempts; i++ {
		port := fixed
		if port == 0 {
			var err error
			if port, err = freePort(); err != nil {
				return nil, err
			}
		}
		p, err := launchReady(ctx, n, port, opts)
		if p == nil {
			return nil, err
		}
		if err == nil {
			return p, nil
		}
		lastErr = err
		if fixed != 0 || !p.logShowsPortInUse() {
			break
		}
	}
	return nil, lastErr
}

// launchReady launches one emulator and waits until it answers. DynamoDB
// Local starts through the loopback launcher (loopback.go); when the launcher
// cannot bind it to loopback, it starts again from the plain jar, on every
// interface, and the process carries a Warning that says so. On failure the
// process returned (if any) is stopped, and its log can be read.
func launchReady(ctx context.Context, n Name, port int, opts Options) (*Process, error) {
	p, err := launch(n, port, opts, true)
	if err != nil {
		return nil, err
	}
	err = p.waitReady(ctx, opts.StartTimeout)
	if err != nil && n == DynamoDB && p.launcherRefused() {
		why := fmt.Sprintf("the loopback launcher cannot bind it to 127.0.0.1 (its log %s says why)", p.LogPath)
		if p, err = launch(n, port, opts, false); err != nil {
			return nil, err
		}
		p.Warning = allInterfacesWarning(port, why)
		err = p.waitReady(ctx, opts.StartTimeout)
	} else if err == nil && n == DynamoDB && opts.loopback.classes == "" {
		p.Warning = allInterfacesWarning(port, opts.loopback.why)
	}
	if err != nil {
		p.stop()
	}
	return p, err
}

func launch(n Name, port int, opts Options, loopback bool) (*Process, error) {
	var args []string
	var bin string
	mod := filepath.Join(opts.Dir, "node_modules")
	switch n {
	case DynamoDB:
		bin = "java"
		args = dynamoDBArgs(opts.Dir, port, loopback && opts.loopback.classes != "", opts.loopback.classes)
	case SQS:
		bin = "node"
		args = []string{filepath.Join(opts.Dir, "sqs-loopback.mjs")}
	case SES:
		bin = "node"
		args = []string{filepath.Join(mod, "aws-ses-v2-local", "dist", "cli.js"), "--host", "127.0.0.1", "--port", strconv.Itoa(port)}
	case Moto:
		bin = opts.MotoPython
		args = []string{filepath.Join(filepath.Dir(opts.Dir), "tools", "moto", "serve.py"), "-H", "127.0.0.1", "-p", strconv.Itoa(port)}
	default:
		return nil, fmt.Errorf("unknown emulator %q", n)
	}
	logPath := filepath.Join(opts.LogDir, string(n)+".log")
	logf, err := os.OpenFile(logPath, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		return nil, err
	}
	fmt.Fprintf(logf, "--- %s: %s %s\n", time.Now().Format(time.RFC3339), bin, strings.Join(args, " "))
	cmd := exec.Command(bin, args...)
	cmd.Dir = opts.LogDir
	cmd.Stdout = logf
	cmd.Stderr = logf
	cmd.Env = append(os.Environ(),
		"FAUXQS_PORT="+strconv.Itoa(port),
		"FAUXQS_LOGGER=true",
		"FAUXQS_STATE_FILE="+filepath.Join(opts.LogDir, SQSStateFile),
		"NODE_NO_WARNINGS=1",
		"AWS_SES_ACCOUNT="+SESAccount,
	)
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if !opts.Detach {
		cmd.SysProcAttr.Pdeathsig = syscall.SIGKILL
	}
	if err := cmd.Start(); err != nil {
		logf.Close()
		return nil, fmt.Errorf("%s: start %s: %w", n, bin, err)
	}
	p := &Process{
		Name: n, Port: port, URL: "http://127.0.0.1:" + strconv.Itoa(port),
		LogPath: logPath, PID: cmd.Process.Pid, cmd: cmd, done: make(chan struct{}),
	}
	go func() {
		p.waitErr = cmd.Wait()
		logf.Close()
		close(p.done)
	}()
	return p, nil
}

// waitReady polls the emulator's health endpoint until it answers, the
// process exits, or the timeout passes.
func (p *Process) waitReady(ctx context.Context, timeout time.Duration) error {
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	client := &http.Client{Timeout: 2 * time.Second}
	tick := time.NewTicker(50 * time.Millisecond)
	defer tick.Stop()
	for {
		if p.answers(ctx, client) {
			return nil
		}
		select {
		case <-p.done:
			return fmt.Errorf("%s exited while starting (%v); its log %s ends with:\n%s", p.Name, p.waitErr, p.LogPath, p.Tail(20))
		case <-ctx.Done():
			return fmt.Errorf("%s did not answer on %s within %s; its log %s ends with:\n%s", p.Name, p.URL, timeout, p.LogPath, p.Tail(20))
		case <-tick.C:
		}
	}
}

func (p *Process) answers(ctx context.Context, client *http.Client) bool {
	var req *http.Request
	var err error
	switch p.Name {
	case DynamoDB:
		// Any HTTP answer means the server is up; an unsigned ListTables gets a 400.
		req, err = http.NewRequestWithContext(ctx, http.MethodPost, p.URL+"/", strings.NewReader("{}"))
		if err == nil {
			req.Header.Set("X-Amz-Target", "DynamoDB_20120810.ListTables")
			req.Header.Set("Content-Type", "application/x-amz-json-1.0")
		}
	case SQS:
		req, err = http.NewRequestWithContext(ctx, http.MethodGet, p.URL+"/health", nil)
	case SES:
		req, err = http.NewRequestWithContext(ctx, http.MethodGet, p.URL+"/health-check", nil)
	case Moto:
		req, err = http.NewRequestWithContext(ctx, http.MethodGet, p.URL+"/moto-api/", nil)
	}
	if err != nil {
		return false
	}
	resp, err := client.Do(req)
	if err != nil {
		return false
	}
	resp.Body.Close()
	if p.Name == DynamoDB {
		return resp.StatusCode > 0
	}
	return resp.StatusCode == http.StatusOK
}

var portInUse = regexp.MustCompile(`(?i)address already in use|EADDRINUSE|BindException`)

func (p *Process) logShowsPortInUse() bool {
	b, err := os.ReadFile(p.LogPath)
	return err == nil && portInUse.Match(b)
}

// Tail returns the last n lines of the emulator's log.
func (p *Process) Tail(n int) string {
	b, err := os.ReadFile(p.LogPath)
	if err != nil {
		return "(no log: " + err.Error() + ")"
	}
	return tail(b, n)
}

func tail(b []byte, n int) string {
	var lines []string
	sc := bufio.NewScanner(bytes.NewReader(b))
	sc.Buffer(make([]byte, 64*1024), 1024*1024)
	for sc.Scan() {
		lines = append(lines, "    "+sc.Text())
		if len(lines) > n {
			lines = lines[1:]
		}
	}
	return strings.Join(lines, "\n")
}

// running reports whether the process has not exited yet.
func (p *Process) running() bool {
	select {
	case <-p.done:
		return false
	default:
		return true
	}
}

// stop sends SIGTERM to the process group, then SIGKILL after a grace period.
// It reports whether the SIGKILL was needed; false also when the process had
// exited already.
func (p *Process) stop() (killed bool) {
	if !p.running() {
		return false
	}
	_ = syscall.Kill(-p.PID, syscall.SIGTERM)
	select {
	case <-p.done:
	case <-time.After(stopGrace):
		_ = syscall.Kill(-p.PID, syscall.SIGKILL)
		<-p.done
		killed = true
	}
	// Anything the emulator forked into its group goes too.
	_ = syscall.Kill(-p.PID, syscall.SIGKILL)
	return killed
}

// Get returns one emulator: the running one, or after StopOne the stopped
// one, whose URL is where StartOne will bring it back. On the moto backend
// every service's name returns the one moto process.
func (s *Stack) Get(n Name) *Process {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.procs[s.serving(n)]
}

// serving names the process that serves n's API.
func (s *Stack) serving(n Name) Name {
	if s.opts.Backend == MotoServer {
		return Moto
	}
	return n
}

// Backend says what serves the AWS APIs.
func (s *Stack) Backend() Backend { return s.opts.Backend }

// Stop stops every emulator; it is safe to call more than once. A StartOne
// still waiting for its emulator to answer stops it and fails.
func (s *Stack) Stop() {
	s.once.Do(func() {
		s.mu.Lock()
		s.stopped = true
		procs := make([]*Process, 0, len(s.procs))
		for _, p := range s.procs {
			procs = append(procs, p)
		}
		s.mu.Unlock()
		var wg sync.WaitGroup
		for _, p := range procs {
			wg.Add(1)
			go func() { defer wg.Done(); p.stop() }()
		}
		wg.Wait()
	})
}

// StopOne stops one emulator gracefully, as Stop does: SIGTERM to its process
// group, SIGKILL if it has not exited after a grace period. When it returns,
// the emulator's port refuses connections. Stopping one that is stopped
// already does nothing.
//
// fauxqs writes its queues and messages to SQSStateFile as it stops, so
// StartOne brings them back. DynamoDB Local and aws-ses-v2-local are
// in-memory: their tables and sent mail are gone for good.
//
// The error says that the stop was not clean, which for fauxqs means its
// state was not saved; the emulator is stopped all the same.
func (s *Stack) StopOne(n Name) error {
	if s.opts.Backend == MotoServer {
		return fmt.Errorf("stop %s: on the moto backend one process serves every service, and it keeps no state across a restart", n)
	}
	s.mu.Lock()
	p, busy := s.procs[n], s.starting[n]
	s.mu.Unlock()
	switch {
	case p == nil:
		return fmt.Errorf("stop %s: not an emulator of this stack", n)
	case busy:
		return fmt.Errorf("stop %s: it is being started", n)
	}
	wasRunning := p.running()
	if p.stop() {
		return fmt.Errorf("stop %s: it did not exit within %s of SIGTERM and was killed; its log %s ends with:\n%s", n, stopGrace, p.LogPath, p.Tail(20))
	}
	// Only fauxqs exits 0 on SIGTERM, after saving its state; the others
	// die of the signal, which is a clean stop for them.
	if n == SQS && wasRunning && p.waitErr != nil {
		return fmt.Errorf("stop %s: it exited with %v, so its state may not be saved; its log %s ends with:\n%s", n, p.waitErr, p.LogPath, p.Tail(20))
	}
	return nil
}

// StartOne starts an emulator stopped by StopOne again, on the same port and
// with the options the stack was started with, and waits until it answers.
// The stack then holds the new process (its PID differs), and Stop stops it.
// fauxqs comes back with the queues and messages it saved when it stopped;
// a state file it cannot read makes it exit, and StartOne fail with the
// file's name in the log tail it quotes, rather than start empty.
func (s *Stack) StartOne(ctx context.Context, n Name) error {
	if s.opts.Backend == MotoServer {
		return fmt.Errorf("start %s: the moto backend cannot restart one service", n)
	}
	s.mu.Lock()
	old := s.procs[n]
	switch {
	case old == nil:
		s.mu.Unlock()
		return fmt.Errorf("start %s: not an emulator of this stack", n)
	case s.stopped:
		s.mu.Unlock()
		return fmt.Errorf("start %s: the stack is stopped", n)
	case s.starting[n]:
		s.mu.Unlock()
		return fmt.Errorf("start %s: it is being started already", n)
	case old.running():
		s.mu.Unlock()
		return fmt.Errorf("start %s: it is running already (pid %d)", n, old.PID)
	}
	s.starting[n] = true
	s.mu.Unlock()

	p, err := launchReady(ctx, n, old.Port, s.opts)

	s.mu.Lock()
	defer s.mu.Unlock()
	delete(s.starting, n)
	if err != nil {
		return fmt.Errorf("start %s again on port %d: %w", n, old.Port, err)
	}
	if s.stopped {
		p.stop()
		return fmt.Errorf("start %s: the stack was stopped meanwhile", n)
	}
	s.procs[n] = p
	return nil
}

// Endpoints returns the standard AWS SDK endpoint variables that point the
// SDK at the emulators, plus a region and dummy credentials. The code under
// test reads nothing else: the same variables point it at LocalStack or AWS.
func (s *Stack) Endpoints() map[string]string {
	s.mu.Lock()
	defer s.mu.Unlock()
	ddb := s.procs[s.serving(DynamoDB)].URL
	if s.opts.Backend == MotoServer {
		// moto also serves what the command function reads its webhook
		// secrets from; the emulators have no such service.
		return map[string]string{
			"AWS_ENDPOINT_URL_DYNAMODB":         ddb,
			"AWS_ENDPOINT_URL_DYNAMODB_STREAMS": ddb,
			"AWS_ENDPOINT_URL_SQS":              ddb,
			"AWS_ENDPOINT_URL_SESV2":            ddb,
			"AWS_ENDPOINT_URL_SECRETS_MANAGER":  ddb,
			"AWS_ENDPOINT_URL_SSM":              ddb,
			"AWS_REGION":                        "us-east-1",
			"AWS_ACCESS_KEY_ID":                 "local",
			"AWS_SECRET_ACCESS_KEY":             "local",
		}
	}
	return map[string]string{
		"AWS_ENDPOINT_URL_DYNAMODB":         ddb,
		"AWS_ENDPOINT_URL_DYNAMODB_STREAMS": ddb,
		"AWS_ENDPOINT_URL_SQS":              s.procs[s.serving(SQS)].URL,
		"AWS_ENDPOINT_URL_SESV2":            s.procs[s.serving(SES)].URL,
		"AWS_REGION":                        "us-east-1",
		"AWS_ACCESS_KEY_ID":                 "local",
		"AWS_SECRET_ACCESS_KEY":             "local",
	}
}

// Tails returns the last n log lines of every emulator, labelled.
func (s *Stack) Tails(n int) string {
	var b strings.Builder
	for _, p := range s.Processes() {
		fmt.Fprintf(&b, "--- %s (%s), last %d lines:\n%s\n", p.Name, p.LogPath, n, p.Tail(n))
	}
	return b.String()
}

// Processes returns the stack's emulators in the usual order; after StopOne
// that includes the stopped one.
func (s *Stack) Processes() []*Process {
	s.mu.Lock()
	defer s.mu.Unlock()
	var out []*Process
	for _, n := range s.opts.names() {
		if p := s.procs[n]; p != nil {
			out = append(out, p)
		}
	}
	return out
}

// StopPIDs stops detached emulators by process group (for `make emulators-down`).
func StopPIDs(pids []int) {
	for _, pid := range pids {
		_ = syscall.Kill(-pid, syscall.SIGTERM)
	}
	deadline := time.Now().Add(5 * time.Second)
	for _, pid := range pids {
		for time.Now().Before(deadline) && syscall.Kill(pid, 0) == nil {
			time.Sleep(50 * time.Millisecond)
		}
		_ = syscall.Kill(-pid, syscall.SIGKILL)
	}
}

func freePort() (int, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, fmt.Errorf("pick a free port: %w", err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port, nil
}

// checkPortFree tries both loopback and the wildcard address, because DynamoDB
// Local binds every interface when its loopback launcher cannot be used.
func checkPortFree(port int) error {
	for _, addr := range []string{"127.0.0.1", "0.0.0.0"} {
		l, err := net.Listen("tcp", net.JoinHostPort(addr, strconv.Itoa(port)))
		if err != nil {
			return err
		}
		l.Close()
	}
	return nil
}

// Alive reports whether a process exists and is not a zombie (a killed child
// whose parent has not reaped it yet counts as gone).
func Alive(pid int) bool {
	if syscall.Kill(pid, 0) != nil {
		return false
	}
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return false
	}
	// The state follows the parenthesised command name.
	i := bytes.LastIndexByte(b, ')')
	return i < 0 || i+2 >= len(b) || b[i+2] != 'Z'
}
