package runner

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"runtime"
	"sort"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"
)

// RIEModule and RIEVersion pin the AWS Lambda Runtime Interface Emulator,
// installed with `go install` from the module proxy.
const (
	RIEModule  = "github.com/aws/aws-lambda-runtime-interface-emulator/cmd/aws-lambda-rie"
	RIEVersion = "v0.0.0-20261030222936-bef5c4ba774d"
)

// BinaryOptions configures StartBinaries.
type BinaryOptions struct {
	Root      string            // repository root (Makefile, functions/, .local/)
	Spec      *Spec             // the functions to run
	Dirs      map[string]string // logical id -> functions/ folder (FunctionDirs)
	Extra     map[string]string // added to every function's environment (LocalEnv)
	StackName string
	Log       io.Writer    // the emulators' and functions' output, prefixed by function
	Progress  func(string) // build and install steps, for a person watching; may be nil
}

// Binaries are bootstraps running under the Runtime Interface Emulator.
type Binaries struct {
	Functions map[string]Function
	procs     []*rieProcess
	byID      map[string]*rieProcess
	once      sync.Once
}

// StartBinaries builds each function's bootstrap for this machine's
// architecture with the Makefile's GO_BUILD_FLAGS (as `make build` does for
// arm64), installs the Runtime Interface Emulator into .local/bin if
// needed, and runs each bootstrap under its own emulator on free loopback
// ports, with the function's environment.
func StartBinaries(ctx context.Context, o BinaryOptions) (*Binaries, error) {
	progress := o.Progress
	if progress == nil {
		progress = func(string) {}
	}
	if o.Log == nil {
		o.Log = io.Discard
	}
	if runtime.GOOS != "linux" {
		return nil, fmt.Errorf("binary mode runs Linux bootstraps under the Runtime Interface Emulator: it needs Linux, not %s", runtime.GOOS)
	}
	ids := make([]string, 0, len(o.Spec.Functions))
	for id := range o.Spec.Functions {
		ids = append(ids, id)
	}
	sort.Strings(ids)
	outDir := filepath.Join(o.Root, ".local", "functions", runtime.GOARCH)
	boots := map[string]string{}
	for _, id := range ids {
		dir, ok := o.Dirs[id]
		if !ok {
			return nil, fmt.Errorf("function %s: no build-%s rule in the Makefile", id, id)
		}
		progress(fmt.Sprintf("Building functions/%s (linux/%s) ...", dir, runtime.GOARCH))
		out := filepath.Join(outDir, dir, "bootstrap")
		if err := BuildBootstrap(ctx, o.Root, dir, out); err != nil {
			return nil, err
		}
		boots[id] = out
	}
	progress("Installing the Lambda Runtime Interface Emulator (" + RIEVersion + ") into .local/bin if missing ...")
	rie, err := InstallRIE(ctx, o.Root)
	if err != nil {
		return nil, err
	}
	b := &Binaries{Functions: map[string]Function{}, byID: map[string]*rieProcess{}}
	for _, id := range ids {
		fs := o.Spec.Functions[id]
		env := mergeEnv(lambdaEnv(), fs.Env, o.Extra, map[string]string{
			"AWS_LAMBDA_FUNCTION_NAME":        o.StackName + "-" + id,
			"AWS_LAMBDA_FUNCTION_TIMEOUT":     strconv.Itoa(int(fs.Timeout / time.Second)),
			"AWS_LAMBDA_FUNCTION_MEMORY_SIZE": strconv.Itoa(fs.Memory),
			"AWS_LAMBDA_FUNCTION_VERSION":     "$LATEST",
			"_HANDLER":                        "bootstrap",
			"TZ":                              ":UTC",
			"LAMBDA_TASK_ROOT":                filepath.Dir(boots[id]),
		})
		p, err := startRIE(ctx, rie, boots[id], env, &prefixWriter{w: o.Log, prefix: "[" + id + "] "})
		if err != nil {
			b.Stop()
			return nil, fmt.Errorf("function %s: %w", id, err)
		}
		b.procs = append(b.procs, p)
		b.byID[id] = p
		b.Functions[id] = &RIEFunction{URL: p.url, Client: &http.Client{Timeout: fs.Timeout + 10*time.Second}}
		progress(fmt.Sprintf("%s: functions/%s/bootstrap under the emulator at %s", id, o.Dirs[id], p.url))
	}
	return b, nil
}

// Stop stops every emulator (and its bootstrap); safe to call twice.
func (b *Binaries) Stop() {
	b.once.Do(func() {
		var wg sync.WaitGroup
		for _, p := range b.procs {
			wg.Add(1)
			go func() { defer wg.Done(); p.stop() }()
		}
		wg.Wait()
	})
}

// Kill sends SIGKILL to a function's runtime process, its bootstrap (not
// the emulator around it), as a crash or an out-of-memory kill would. The
// invocation in flight fails with Runtime.ExitError, and the emulator starts
// a fresh bootstrap for the next one, as Lambda gives the next invocation a
// fresh execution environment. It returns the pids killed: none if no
// bootstrap was running at that moment.
func (b *Binaries) Kill(id string) ([]int, error) {
	p := b.byID[id]
	if p == nil {
		return nil, fmt.Errorf("no function %s runs under the emulator", id)
	}
	kids, err := childrenOf(p.cmd.Process.Pid)
	if err != nil {
		return nil, err
	}
	var killed []int
	for _, pid := range kids {
		if syscall.Kill(pid, syscall.SIGKILL) == nil {
			killed = append(killed, pid)
		}
	}
	return killed, nil
}

// childrenOf lists the processes whose parent is pid, from /proc.
func childrenOf(pid int) ([]int, error) {
	entries, err := os.ReadDir("/proc")
	if err != nil {
		return nil, err
	}
	var out []int
	for _, e := range entries {
		child, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		b, err := os.ReadFile("/proc/" + e.Name() + "/stat")
		if err != nil {
			continue // gone since the listing
		}
		// pid (comm) state ppid ...: comm may hold spaces and parentheses,
		// so read after the last ')'.
		i := bytes.LastIndexByte(b, ')')
		if i < 0 {
			continue
		}
		f := strings.Fields(string(b[i+1:]))
		if len(f) > 1 && f[1] == strconv.Itoa(pid) {
			out = append(out, child)
		}
	}
	return out, nil
}

// lambdaEnv keeps, of this process's environment, what reaches a function
// in AWS too (region, credentials) and the endpoint overrides that point
// its SDK at the local stack; nothing else of the host leaks in.
func lambdaEnv() map[string]string {
	out := map[string]string{"PATH": "/usr/local/bin:/usr/bin:/bin"}
	for _, kv := range os.Environ() {
		k, v, _ := strings.Cut(kv, "=")
		switch {
		case k == "AWS_REGION", k == "AWS_DEFAULT_REGION", k == "AWS_ACCESS_KEY_ID", k == "AWS_SECRET_ACCESS_KEY", k == "AWS_SESSION_TOKEN",
			strings.HasPrefix(k, "AWS_ENDPOINT_URL"):
			out[k] = v
		}
	}
	if out["AWS_REGION"] == "" {
		out["AWS_REGION"] = "us-east-1"
	}
	out["AWS_DEFAULT_REGION"] = out["AWS_REGION"]
	return out
}

// BuildFlags reads GO_BUILD_FLAGS from the Makefile, so that a host build
// is the `make build` build in everything but the architecture.
func BuildFlags(root string) ([]string, error) {
	b, err := os.ReadFile(filepath.Join(root, "Makefile"))
	if err != nil {
		return nil, err
	}
	m := regexp.MustCompile(`(?m)^GO_BUILD_FLAGS\s*:?=\s*(.*)$`).FindSubmatch(b)
	if m == nil {
		return nil, errors.New("no GO_BUILD_FLAGS in the Makefile")
	}
	return shellWords(string(m[1]))
}

// shellWords splits a Makefile value as the shell would for simple cases:
// spaces separate words, double or single quotes group.
func shellWords(s string) ([]string, error) {
	var out []string
	var cur strings.Builder
	in, quote, has := false, byte(0), false
	for i := 0; i < len(s); i++ {
		c := s[i]
		switch {
		case in && c == quote:
			in = false
		case in:
			cur.WriteByte(c)
		case c == '"' || c == '\'':
			in, quote, has = true, c, true
		case c == ' ' || c == '\t':
			if cur.Len() > 0 || has {
				out = append(out, cur.String())
				cur.Reset()
				has = false
			}
		case c == '$' || c == '\\' || c == '`':
			return nil, fmt.Errorf("GO_BUILD_FLAGS %q: only plain words and quotes are understood", s)
		default:
			cur.WriteByte(c)
		}
	}
	if in {
		return nil, fmt.Errorf("GO_BUILD_FLAGS %q: unclosed quote", s)
	}
	if cur.Len() > 0 || has {
		out = append(out, cur.String())
	}
	return out, nil
}

func goTool() string {
	if g := os.Getenv("GO"); g != "" {
		return g
	}
	return "go"
}

// BuildBootstrap builds ./functions/<dir> for linux on this machine's
// architecture, CGO off, with the Makefile's flags.
func BuildBootstrap(ctx context.Context, root, dir, out string) error {
	flags, err := BuildFlags(root)
	if err != nil {
		return err
	}
	if err := os.MkdirAll(filepath.Dir(out), 0o755); err != nil {
		return err
	}
	args := append([]string{"build"}, flags...)
	args = append(args, "-o", out, "./functions/"+dir)
	cmd := exec.CommandContext(ctx, goTool(), args...)
	cmd.Dir = root
	cmd.Env = append(os.Environ(), "GOOS=linux", "GOARCH="+runtime.GOARCH, "CGO_ENABLED=0")
	if b, err := cmd.CombinedOutput(); err != nil {
		return fmt.Errorf("go %s: %w\n%s", strings.Join(args, " "), err, b)
	}
	return nil
}

// InstallRIE installs the pinned Runtime Interface Emulator into
// <root>/.local/bin unless that version is there already.
func InstallRIE(ctx context.Context, root string) (string, error) {
	bin := filepath.Join(root, ".local", "bin")
	path := filepath.Join(bin, "aws-lambda-rie")
	stamp := path + ".version"
	if v, err := os.ReadFile(stamp); err == nil && strings.TrimSpace(string(v)) == RIEVersion {
		if _, err := os.Stat(path); err == nil {
			return path, nil
		}
	}
	if err := os.MkdirAll(bin, 0o755); err != nil {
		return "", err
	}
	cmd := exec.CommandContext(ctx, goTool(), "install", RIEModule+"@"+RIEVersion)
	cmd.Dir = root
	cmd.Env = append(os.Environ(), "GOBIN="+bin, "CGO_ENABLED=0")
	if b, err := cmd.CombinedOutput(); err != nil {
		return "", fmt.Errorf("go install %s@%s: %w\n%s", RIEModule, RIEVersion, err, b)
	}
	if err := os.WriteFile(stamp, []byte(RIEVersion+"\n"), 0o644); err != nil {
		return "", err
	}
	return path, nil
}

type rieProcess struct {
	cmd  *exec.Cmd
	url  string
	done chan struct{}
}

func freeLoopbackPort() (int, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, err
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port, nil
}

// startRIE runs one bootstrap under the emulator, in its own process group
// (killed with this process too), and waits until it listens.
func startRIE(ctx context.Context, rie, bootstrap string, env map[string]string, out io.Writer) (*rieProcess, error) {
	var lastErr error
	for attempt := 0; attempt < 3; attempt++ {
		invokePort, err := freeLoopbackPort()
		if err != nil {
			return nil, err
		}
		apiPort, err := freeLoopbackPort()
		if err != nil {
			return nil, err
		}
		addr := "127.0.0.1:" + strconv.Itoa(invokePort)
		cmd := exec.Command(rie,
			"--runtime-interface-emulator-address", addr,
			"--runtime-api-address", "127.0.0.1:"+strconv.Itoa(apiPort),
			"--log-level", "warn",
			bootstrap)
		cmd.Dir = filepath.Dir(bootstrap)
		for k, v := range env {
			cmd.Env = append(cmd.Env, k+"="+v)
		}
		cmd.Stdout, cmd.Stderr = out, out
		cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
		if err := cmd.Start(); err != nil {
			return nil, fmt.Errorf("start %s: %w", rie, err)
		}
		p := &rieProcess{cmd: cmd, url: "http://" + addr + "/2015-03-31/functions/function/invocations", done: make(chan struct{})}
		go func() { _ = cmd.Wait(); close(p.done) }()
		if lastErr = p.waitListening(ctx, addr, 10*time.Second); lastErr == nil {
			return p, nil
		}
		p.stop()
	}
	return nil, lastErr
}

func (p *rieProcess) waitListening(ctx context.Context, addr string, within time.Duration) error {
	deadline := time.Now().Add(within)
	for time.Now().Before(deadline) {
		select {
		case <-p.done:
			return errors.New("the Runtime Interface Emulator exited while starting (see its output above)")
		case <-ctx.Done():
			return ctx.Err()
		default:
		}
		if c, err := net.DialTimeout("tcp", addr, 200*time.Millisecond); err == nil {
			c.Close()
			return nil
		}
		time.Sleep(20 * time.Millisecond)
	}
	return fmt.Errorf("the Runtime Interface Emulator did not listen on %s within %s", addr, within)
}

func (p *rieProcess) stop() {
	pid := p.cmd.Process.Pid
	_ = syscall.Kill(-pid, syscall.SIGTERM)
	select {
	case <-p.done:
	case <-time.After(3 * time.Second):
	}
	_ = syscall.Kill(-pid, syscall.SIGKILL)
	<-p.done
}

// prefixWriter prefixes each line, so the output of several functions can
// share one terminal.
type prefixWriter struct {
	mu     sync.Mutex
	w      io.Writer
	prefix string
	buf    []byte
}

func (p *prefixWriter) Write(b []byte) (int, error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.buf = append(p.buf, b...)
	for {
		i := bytes.IndexByte(p.buf, '\n')
		if i < 0 {
			break
		}
		_, _ = io.WriteString(p.w, p.prefix+string(p.buf[:i+1]))
		p.buf = p.buf[i+1:]
	}
	return len(b), nil
}
