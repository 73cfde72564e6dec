package emulator

import (
	"context"
	"errors"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// pathWith builds a PATH folder holding only the named tools (symlinks to
// the real ones), to stand for a machine that lacks the others.
func pathWith(t *testing.T, tools ...string) string {
	t.Helper()
	dir := t.TempDir()
	for _, tool := range tools {
		real, err := exec.LookPath(tool)
		if err != nil {
			t.Skipf("%s is not installed here", tool)
		}
		if err := os.Symlink(real, filepath.Join(dir, tool)); err != nil {
			t.Fatal(err)
		}
	}
	return dir
}

func repoDir(t *testing.T) string {
	t.Helper()
	d, err := FindDir()
	if err != nil {
		t.Fatal(err)
	}
	return d
}

func TestBadSetupGetsAClearMessage(t *testing.T) {
	dir := repoDir(t)
	emptyDir := t.TempDir()
	tests := []struct {
		name string
		path []string // tools on PATH; nil keeps the real PATH
		dir  string
		want []string
	}{
		{name: "says Java is missing", path: []string{"node"}, dir: dir, want: []string{"java is not installed", "DynamoDB Local needs Java 17"}},
		{name: "says Node.js is missing", path: []string{"java"}, dir: dir, want: []string{"node is not installed", "Node.js 20"}},
		{name: "says the emulators are not installed", dir: emptyDir, want: []string{"not installed", "make emulators-install"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if tt.path != nil {
				t.Setenv("PATH", pathWith(t, tt.path...))
			}
			_, err := Start(context.Background(), Options{Dir: tt.dir, LogDir: t.TempDir()})
			var se *SetupError
			if !errors.As(err, &se) {
				t.Fatalf("err = %v, want a SetupError", err)
			}
			for _, w := range tt.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error %q does not say %q", err, w)
				}
			}
		})
	}
}

func TestTooOldJavaIsRefused(t *testing.T) {
	dir := t.TempDir()
	fake := filepath.Join(dir, "java")
	script := "#!/bin/sh\necho 'openjdk version \"11.0.2\" 2019-01-15' >&2\n"
	if err := os.WriteFile(fake, []byte(script), 0o755); err != nil {
		t.Fatal(err)
	}
	node := pathWith(t, "node")
	t.Setenv("PATH", dir+string(os.PathListSeparator)+node)
	err := Preflight(context.Background(), repoDir(t))
	if err == nil || !strings.Contains(err.Error(), "version 11") || !strings.Contains(err.Error(), "Java 17 or newer") {
		t.Fatalf("err = %v, want it to name version 11 and Java 17", err)
	}
}

func TestAPortInUseIsNamed(t *testing.T) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	port := l.Addr().(*net.TCPAddr).Port
	s, err := Start(context.Background(), Options{Dir: repoDir(t), LogDir: t.TempDir(), Ports: map[Name]int{SES: port}})
	if err == nil {
		s.Stop()
		t.Fatal("started although the SES port was taken")
	}
	var se *SetupError
	if !errors.As(err, &se) || !strings.Contains(err.Error(), "aws-ses-v2-local") || !strings.Contains(err.Error(), "already in use") {
		t.Fatalf("err = %v, want a SetupError naming aws-ses-v2-local and the port in use", err)
	}
}

func TestAnEmulatorThatDoesNotAnswerInTimeIsNamedWithItsLog(t *testing.T) {
	// No JVM answers within 1 ms: DynamoDB Local must be reported by name,
	// with the tail of its log, and nothing may be left running.
	_, err := Start(context.Background(), Options{Dir: repoDir(t), LogDir: t.TempDir(), StartTimeout: time.Millisecond})
	if err == nil {
		t.Fatal("started within 1ms; the timeout path was not exercised")
	}
	msg := err.Error()
	for _, want := range []string{"dynamodb-local did not answer", "within 1ms", "DynamoDBLocal.jar"} {
		if !strings.Contains(msg, want) {
			t.Errorf("error does not contain %q:\n%s", want, msg)
		}
	}
}

func TestStartAnswersAndStopLeavesNothing(t *testing.T) {
	s, err := Start(context.Background(), Options{Dir: repoDir(t), LogDir: t.TempDir()})
	if err != nil {
		t.Fatal(err)
	}
	procs := s.Processes()
	if len(procs) != 3 {
		t.Fatalf("%d processes, want 3", len(procs))
	}
	for _, p := range procs {
		if !strings.HasPrefix(p.URL, "http://127.0.0.1:") {
			t.Errorf("%s listens at %s, want loopback", p.Name, p.URL)
		}
	}
	if ep := s.Endpoints(); ep["AWS_ENDPOINT_URL_DYNAMODB"] != s.Get(DynamoDB).URL || ep["AWS_ENDPOINT_URL_SQS"] != s.Get(SQS).URL || ep["AWS_ENDPOINT_URL_SESV2"] != s.Get(SES).URL {
		t.Errorf("endpoints do not match the processes: %v", ep)
	}
	s.Stop()
	s.Stop() // idempotent
	for _, p := range procs {
		if Alive(p.PID) {
			t.Errorf("%s (pid %d) still running after Stop", p.Name, p.PID)
		}
	}
}

func TestParseBackend(t *testing.T) {
	for in, want := range map[string]Backend{"": Emulators, "emulators": Emulators, "moto": MotoServer} {
		if got, err := ParseBackend(in); err != nil || got != want {
			t.Errorf("ParseBackend(%q) = %q, %v; want %q", in, got, err, want)
		}
	}
	for _, in := range []string{"Moto", "localstack", "aws"} {
		_, err := ParseBackend(in)
		var se *SetupError
		if !errors.As(err, &se) || !strings.Contains(err.Error(), "DISPATCHER_BACKEND") {
			t.Errorf("ParseBackend(%q) = %v, want a SetupError naming DISPATCHER_BACKEND", in, err)
		}
	}
}
