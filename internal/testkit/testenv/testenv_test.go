package testenv_test

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/dispatcher-dev/dispatcher/internal/local/emulator"
	"github.com/dispatcher-dev/dispatcher/internal/testkit/testenv"
)

func TestMain(m *testing.M) { testenv.Main(m) }

const helperEnv = "DISPATCHER_TESTENV_HELPER"

// TestHelperProcess is not a test: the tests below run this binary again
// with helperEnv set, so that it starts its own emulators through Main,
// prints their process ids and ports, and waits to be interrupted or killed.
func TestHelperProcess(t *testing.T) {
	mode := os.Getenv(helperEnv)
	if mode == "" {
		t.Skip("helper process for the tests below")
	}
	env := testenv.Get(t)
	if mode == "fail" {
		t.Fatal("deliberate failure")
	}
	var fields []string
	for _, p := range env.Emulators.Processes() {
		fields = append(fields, fmt.Sprintf("%d:%d", p.PID, p.Port))
	}
	fmt.Println("EMULATORS", strings.Join(fields, " "))
	select {}
}

type helper struct {
	cmd   *exec.Cmd
	pids  []int
	ports []int
}

func startHelper(t *testing.T, extraArgs ...string) *helper {
	t.Helper()
	args := append([]string{"-test.run=^TestHelperProcess$", "-test.v"}, extraArgs...)
	cmd := exec.Command(os.Args[0], args...)
	cmd.Env = append(os.Environ(), helperEnv+"=1")
	cmd.Stderr = os.Stderr
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	h := &helper{cmd: cmd}
	lines := make(chan string)
	go func() {
		sc := bufio.NewScanner(out)
		for sc.Scan() {
			if strings.HasPrefix(sc.Text(), "EMULATORS ") {
				lines <- strings.TrimPrefix(sc.Text(), "EMULATORS ")
			}
		}
		close(lines)
	}()
	select {
	case l, ok := <-lines:
		if !ok {
			cmd.Wait()
			t.Fatal("helper exited before starting its emulators")
		}
		for _, f := range strings.Fields(l) {
			pid, port, _ := strings.Cut(f, ":")
			p, _ := strconv.Atoi(pid)
			n, _ := strconv.Atoi(port)
			h.pids, h.ports = append(h.pids, p), append(h.ports, n)
		}
	case <-time.After(2 * time.Minute):
		cmd.Process.Kill()
		t.Fatal("helper did not start its emulators within 2 minutes")
	}
	if len(h.pids) != 3 {
		t.Fatalf("helper reported %d emulators, want 3", len(h.pids))
	}
	return h
}

func (h *helper) waitExit(t *testing.T) int {
	t.Helper()
	done := make(chan error, 1)
	go func() { done <- h.cmd.Wait() }()
	select {
	case err := <-done:
		var ee *exec.ExitError
		if errors.As(err, &ee) {
			if ws, ok := ee.Sys().(syscall.WaitStatus); ok && ws.Signaled() {
				return -int(ws.Signal())
			}
			return ee.ExitCode()
		}
		if err != nil {
			t.Fatal(err)
		}
		return 0
	case <-time.After(time.Minute):
		h.cmd.Process.Kill()
		t.Fatal("helper did not exit within a minute")
		return 0
	}
}

func (h *helper) assertNoOrphans(t *testing.T) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for _, pid := range h.pids {
		for emulator.Alive(pid) && time.Now().Before(deadline) {
			time.Sleep(50 * time.Millisecond)
		}
		if emulator.Alive(pid) {
			t.Errorf("emulator pid %d outlived its test binary", pid)
			syscall.Kill(-pid, syscall.SIGKILL)
		}
	}
}

func TestEmulatorsNeverOutliveTheTestBinary(t *testing.T) {
	testenv.Get(t) // not in -short: this starts real emulators
	var (
		mu    sync.Mutex
		ports = map[int]string{}
	)
	tests := []struct {
		name     string
		args     []string
		act      func(*helper)
		wantExit int
	}{
		{name: "stopped on Ctrl-C", act: func(h *helper) { h.cmd.Process.Signal(os.Interrupt) }, wantExit: 130},
		{name: "stopped on SIGTERM", act: func(h *helper) { h.cmd.Process.Signal(syscall.SIGTERM) }, wantExit: 130},
		{name: "killed with the binary on SIGKILL", act: func(h *helper) { h.cmd.Process.Kill() }, wantExit: -int(syscall.SIGKILL)},
		// The -timeout clock starts in m.Run, after the emulators are up.
		{name: "killed with the binary on -timeout", args: []string{"-test.timeout=2s"}, act: func(*helper) {}, wantExit: 2},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			h := startHelper(t, tt.args...)
			mu.Lock()
			for _, p := range h.ports {
				if other, dup := ports[p]; dup {
					t.Errorf("port %d used by two concurrent runs (%s and %s)", p, other, tt.name)
				}
				ports[p] = tt.name
			}
			mu.Unlock()
			tt.act(h)
			if got := h.waitExit(t); got != tt.wantExit {
				t.Errorf("helper exit = %d, want %d", got, tt.wantExit)
			}
			h.assertNoOrphans(t)
		})
	}
}

func TestGetSkipsInShortMode(t *testing.T) {
	if testing.Short() {
		t.Skip("checked from the long run")
	}
	cmd := exec.CommandContext(context.Background(), os.Args[0], "-test.short", "-test.run=^TestHelperProcess$", "-test.v")
	cmd.Env = append(os.Environ(), helperEnv+"=1")
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("short run failed: %v\n%s", err, out)
	}
	if !strings.Contains(string(out), "SKIP: TestHelperProcess") || strings.Contains(string(out), "EMULATORS") {
		t.Fatalf("in -short mode the helper should skip without emulators:\n%s", out)
	}
}

func TestAFailedRunShowsTheEmulatorLogs(t *testing.T) {
	testenv.Get(t)
	cmd := exec.Command(os.Args[0], "-test.run=^TestHelperProcess$")
	cmd.Env = append(os.Environ(), helperEnv+"=fail")
	out, err := cmd.CombinedOutput()
	var ee *exec.ExitError
	if !errors.As(err, &ee) || ee.ExitCode() != 1 {
		t.Fatalf("failing helper: err = %v, want exit 1\n%s", err, out)
	}
	for _, want := range []string{"deliberate failure", "emulator logs are kept in", "--- dynamodb-local", "--- fauxqs", "--- aws-ses-v2-local", "DynamoDB Local"} {
		if !strings.Contains(string(out), want) {
			t.Errorf("output lacks %q:\n%s", want, out)
		}
	}
	// The logs stay on disk for a post-mortem; remove this run's.
	for _, line := range strings.Split(string(out), "\n") {
		if _, dir, ok := strings.Cut(line, "emulator logs are kept in "); ok {
			os.RemoveAll(strings.TrimSpace(dir))
		}
	}
}
