package main

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"
	"unsafe"

	"github.com/dispatcher-dev/dispatcher/internal/local/emulator"
	"github.com/dispatcher-dev/dispatcher/internal/local/runner"
	"github.com/dispatcher-dev/dispatcher/internal/testkit/templatedir"
)

func repoRoot(t *testing.T) string {
	t.Helper()
	d, err := emulator.FindDir()
	if err != nil {
		t.Fatal(err)
	}
	return filepath.Dir(d)
}

// buildTool builds this command as `make dev` does, into a temporary folder.
func buildTool(t *testing.T) string {
	t.Helper()
	bin := filepath.Join(t.TempDir(), "dispatcher-local")
	cmd := exec.Command("go", "build", "-o", bin, ".")
	cmd.Env = append(os.Environ(), "GOTOOLCHAIN="+runtime.Version())
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("go build: %v\n%s", err, out)
	}
	return bin
}

// devPorts picks free ports for the API and the emulators and returns them
// as the environment variables `dev` reads.
func devPorts(t *testing.T) (env []string, ports []int) {
	t.Helper()
	for _, name := range []string{"DISPATCHER_API_PORT", "DISPATCHER_DYNAMODB_PORT", "DISPATCHER_SQS_PORT", "DISPATCHER_SES_PORT"} {
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		p := l.Addr().(*net.TCPAddr).Port
		l.Close()
		env = append(env, name+"="+strconv.Itoa(p))
		ports = append(ports, p)
	}
	return env, ports
}

func requireTools(t *testing.T, tools ...string) {
	t.Helper()
	for _, tool := range tools {
		if _, err := exec.LookPath(tool); err != nil {
			t.Skipf("%s is not installed: the banner's commands need it", tool)
		}
	}
}

// readBanner reads r until the banner's last line and returns what it read.
// The rest of r is drained in the background.
func readBanner(t *testing.T, r io.Reader, timeout time.Duration) string {
	t.Helper()
	type result struct {
		text string
		err  error
	}
	ch := make(chan result, 1)
	go func() {
		var b strings.Builder
		sc := bufio.NewScanner(r)
		sc.Buffer(make([]byte, 64*1024), 1024*1024)
		for sc.Scan() {
			b.WriteString(sc.Text() + "\n")
			if strings.TrimSpace(sc.Text()) == bannerEnd {
				ch <- result{text: b.String()}
				_, _ = io.Copy(io.Discard, r)
				return
			}
		}
		ch <- result{text: b.String(), err: fmt.Errorf("output ended before the banner did (%v)", sc.Err())}
	}()
	select {
	case res := <-ch:
		if res.err != nil {
			t.Fatalf("%v; output:\n%s", res.err, res.text)
		}
		return res.text
	case <-time.After(timeout):
		t.Fatalf("no banner within %s", timeout)
	}
	return ""
}

// bannerCommands applies the banner's rule (bannerIndent): a line that
// starts with exactly four spaces starts a command, a line ending in " \"
// continues onto the next one, and consecutive commands form one block.
func bannerCommands(banner string) []string {
	var blocks []string
	var cur []string
	cont := false
	for _, line := range strings.Split(banner, "\n") {
		isCmd := strings.HasPrefix(line, bannerIndent) && len(line) > len(bannerIndent) && line[len(bannerIndent)] != ' '
		switch {
		case cont:
			cur = append(cur, line)
		case isCmd:
			cur = append(cur, line[len(bannerIndent):])
		default:
			if len(cur) > 0 {
				blocks = append(blocks, strings.Join(cur, "\n"))
				cur = nil
			}
		}
		cont = (cont || isCmd) && strings.HasSuffix(line, " \\")
	}
	if len(cur) > 0 {
		blocks = append(blocks, strings.Join(cur, "\n"))
	}
	return blocks
}

func TestBannerCommandsRule(t *testing.T) {
	banner := "Title:\n  not a command\n    echo one \\\n      two\n    echo three\n      not a command\n\n    echo four\n"
	got := bannerCommands(banner)
	want := []string{"echo one \\\n      two\necho three", "echo four"}
	if fmt.Sprintf("%q", got) != fmt.Sprintf("%q", want) {
		t.Errorf("bannerCommands = %q, want %q", got, want)
	}
}

// freshShellEnv is a new shell's environment: no GOTOOLCHAIN, no AWS or
// Dispatcher variables, none of make's.
func freshShellEnv() []string {
	var env []string
	for _, k := range []string{"PATH", "HOME", "LANG", "TMPDIR"} {
		if v, ok := os.LookupEnv(k); ok {
			env = append(env, k+"="+v)
		}
	}
	return env
}

// Every command the banner prints runs as pasted, in a fresh shell in
// another folder, against the running stack.
func TestBannerCommandsRunAsPrinted(t *testing.T) {
	if testing.Short() {
		t.Skip("starts the emulators")
	}
	requireTools(t, "bash", "curl", "openssl", "base64", "od")
	bin := buildTool(t)
	env, _ := devPorts(t)
	// A user's template folder (EMAIL_TEMPLATES, as `make dev EMAIL_TEMPLATES=dir`
	// passes it): the banner says a preview of each template went to the SES page.
	templates := templatedir.Write(t, templatedir.User(t))
	cmd := exec.Command(bin, "dev")
	cmd.Dir = repoRoot(t)
	cmd.Env = append(append(os.Environ(), env...), "EMAIL_TEMPLATES="+templates)
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	cmd.Stderr = io.Discard
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	defer func() {
		_ = cmd.Process.Signal(os.Interrupt)
		if err := cmd.Wait(); err != nil {
			t.Errorf("dev after SIGINT: %v", err)
		}
	}()
	banner := readBanner(t, out, 3*time.Minute)
	if !strings.Contains(banner, "Email templates from "+templates) || !strings.Contains(banner, templatedir.UserTemplate) || !strings.Contains(banner, runner.PreviewAddress) {
		t.Errorf("the banner does not say the previews of %s went to %s:\n%s", templates, runner.PreviewAddress, banner)
	}
	// The second caller's request: its own header and secret, the first
	// caller's webhook-id (run below like every other command).
	if !strings.Contains(banner, "-H 'dispatcher-caller: "+runner.DevSecondCaller+"'") {
		t.Errorf("the banner shows no signed request of the second caller %s:\n%s", runner.DevSecondCaller, banner)
	}
	blocks := bannerCommands(banner)
	if len(blocks) < 6 {
		t.Fatalf("found %d command blocks in the banner, want at least 6:\n%s", len(blocks), banner)
	}
	elsewhere := t.TempDir()
	for _, block := range blocks {
		ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
		sh := exec.CommandContext(ctx, "bash", "-euo", "pipefail", "-c", block)
		sh.Dir = elsewhere
		sh.Env = freshShellEnv()
		got, err := sh.CombinedOutput()
		cancel()
		if err != nil {
			t.Errorf("banner command failed (%v):\n%s\noutput:\n%s", err, block, got)
		}
	}
	if t.Failed() {
		t.Logf("banner:\n%s", banner)
	}
}

// openPTY opens a pseudo-terminal: the master, and the slave for a child.
func openPTY(t *testing.T) (master, slave *os.File) {
	t.Helper()
	m, err := os.OpenFile("/dev/ptmx", os.O_RDWR|syscall.O_NOCTTY, 0)
	if err != nil {
		t.Skipf("no pseudo-terminals here: %v", err)
	}
	var n uint32
	var unlock int32
	if _, _, e := syscall.Syscall(syscall.SYS_IOCTL, m.Fd(), syscall.TIOCGPTN, uintptr(unsafe.Pointer(&n))); e != 0 {
		t.Fatal(e)
	}
	if _, _, e := syscall.Syscall(syscall.SYS_IOCTL, m.Fd(), syscall.TIOCSPTLCK, uintptr(unsafe.Pointer(&unlock))); e != 0 {
		t.Fatal(e)
	}
	s, err := os.OpenFile("/dev/pts/"+strconv.Itoa(int(n)), os.O_RDWR|syscall.O_NOCTTY, 0)
	if err != nil {
		t.Fatal(err)
	}
	return m, s
}

// makeDevOnTerminal starts `make dev` in a new session whose controlling
// terminal is a pseudo-terminal, as a shell starts it.
func makeDevOnTerminal(t *testing.T, target string, env []string) (*exec.Cmd, *os.File) {
	t.Helper()
	master, slave := openPTY(t)
	cmd := exec.Command("make", "--no-print-directory", "-o", ".venv/.installed", "-o", ".venv-moto/.installed", target)
	cmd.Dir = repoRoot(t)
	cmd.Env = append(os.Environ(), env...)
	cmd.Stdin, cmd.Stdout, cmd.Stderr = slave, slave, slave
	cmd.SysProcAttr = &syscall.SysProcAttr{Setsid: true, Setctty: true, Ctty: 0}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	slave.Close()
	t.Cleanup(func() {
		if cmd.ProcessState == nil {
			_ = syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL)
			_ = cmd.Wait()
		}
		master.Close()
	})
	return cmd, master
}

// Ctrl-C on the terminal stops everything `make dev` (and `make
// dev-binary`) started, and make exits 0, without "Error" or "Interrupt".
func TestCtrlCOfMakeDevExitsZero(t *testing.T) {
	if testing.Short() {
		t.Skip("starts the emulators")
	}
	requireTools(t, "make")
	for _, target := range []string{"dev", "dev-binary"} {
		t.Run(target, func(t *testing.T) { ctrlCExitsZero(t, target) })
	}
}

func ctrlCExitsZero(t *testing.T, target string) {
	env, ports := devPorts(t)
	cmd, master := makeDevOnTerminal(t, target, env)
	var tail strings.Builder
	pr, pw := io.Pipe()
	go func() {
		_, _ = io.Copy(io.MultiWriter(pw, &tail), master) // EIO once every side of the terminal closed
		pw.Close()
	}()
	readBanner(t, pr, 4*time.Minute)
	if running := sessionProcesses(t, cmd.Process.Pid); len(running) < 5 { // make, dev, three emulators
		t.Fatalf("the check for leftovers sees only %q", running)
	}
	if _, err := master.Write([]byte{0x03}); err != nil { // Ctrl-C, through the terminal's line discipline
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- cmd.Wait() }()
	select {
	case err := <-done:
		if err != nil {
			t.Errorf("make %s after Ctrl-C: %v, want exit status 0", target, err)
		}
	case <-time.After(time.Minute):
		t.Fatalf("make %s did not exit within a minute of Ctrl-C", target)
	}
	time.Sleep(200 * time.Millisecond) // the rest of the output
	if out := tail.String(); strings.Contains(out, "Error") || strings.Contains(out, "Interrupt") {
		t.Errorf("make %s's output says it failed:\n%s", target, out)
	}
	if left := sessionProcesses(t, cmd.Process.Pid); len(left) > 0 {
		t.Errorf("processes left running after Ctrl-C: %s", strings.Join(left, "; "))
	}
	for _, p := range ports {
		l, err := net.Listen("tcp", "127.0.0.1:"+strconv.Itoa(p))
		if err != nil {
			t.Errorf("port %d is still in use after Ctrl-C: %v", p, err)
			continue
		}
		l.Close()
	}
}

// sessionProcesses lists the live processes of session sid (every process
// make started, and what they started, unless it left the session).
func sessionProcesses(t *testing.T, sid int) []string {
	t.Helper()
	dirs, err := filepath.Glob("/proc/[0-9]*/stat")
	if err != nil {
		t.Fatal(err)
	}
	var left []string
	for _, d := range dirs {
		b, err := os.ReadFile(d)
		if err != nil {
			continue // gone meanwhile
		}
		// pid (comm) state ppid pgrp session ...
		i := strings.LastIndexByte(string(b), ')')
		f := strings.Fields(string(b[i+1:]))
		if len(f) > 3 && f[0] != "Z" && f[3] == strconv.Itoa(sid) {
			left = append(left, string(b[:i+1]))
		}
	}
	return left
}

// A start that fails still fails: make dev exits non-zero.
func TestMakeDevThatCannotStartExitsNonZero(t *testing.T) {
	if testing.Short() {
		t.Skip("builds the local tool")
	}
	requireTools(t, "make")
	taken, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer taken.Close()
	env, _ := devPorts(t)
	env = append(env, "DISPATCHER_API_PORT="+strconv.Itoa(taken.Addr().(*net.TCPAddr).Port))
	cmd, master := makeDevOnTerminal(t, "dev", env)
	out, _ := io.ReadAll(master) // until every side of the terminal closed
	err = cmd.Wait()
	var ee *exec.ExitError
	if !errors.As(err, &ee) || ee.ExitCode() == 0 {
		t.Errorf("make dev with its API port taken: %v, want a non-zero exit; output:\n%s", err, out)
	}
	if !strings.Contains(string(out), "is taken") {
		t.Errorf("make dev does not say the port is taken:\n%s", out)
	}
}
