package emulator

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
)

// DynamoDB Local has no option for the address it listens on: its Jetty
// server listens on every interface. localstack/LoopbackDynamoDB.java builds
// the same server from the same arguments and sets its connectors' host to
// 127.0.0.1 before it starts. It is compiled once with javac into the user's
// cache directory, under the hash of its source, and run from there: about as
// fast to start as the plain jar, where Java's single-file source launcher
// would compile it again at every start.
const (
	loopbackSource = "LoopbackDynamoDB.java"
	loopbackClass  = "LoopbackDynamoDB"
	// loopbackRefused is the launcher's exit status when the jar's classes
	// are not as it expects (a future DynamoDB Local).
	loopbackRefused = 3
)

// loopbackLauncher is the compiled launcher: the folder holding its class,
// or, when it cannot be used, why not.
type loopbackLauncher struct {
	classes string
	why     string
}

// compileLoopback returns the compiled launcher, compiling it on first use.
// Any failure leaves classes empty and says why; DynamoDB Local then starts
// from the plain jar, with a Warning.
func compileLoopback(ctx context.Context, dir string) loopbackLauncher {
	src := filepath.Join(dir, loopbackSource)
	b, err := os.ReadFile(src)
	if err != nil {
		return loopbackLauncher{why: fmt.Sprintf("its loopback launcher is missing (%v)", err)}
	}
	cache, err := os.UserCacheDir()
	if err != nil {
		cache = os.TempDir()
	}
	sum := sha256.Sum256(b)
	out := filepath.Join(cache, "dispatcher", "loopback-dynamodb", hex.EncodeToString(sum[:8]))
	if _, err := os.Stat(filepath.Join(out, loopbackClass+".class")); err == nil {
		return loopbackLauncher{classes: out}
	}
	javac, err := exec.LookPath("javac")
	if err != nil {
		return loopbackLauncher{why: "javac (a JDK) is not installed to compile its loopback launcher " + src}
	}
	if err := os.MkdirAll(filepath.Dir(out), 0o755); err != nil {
		return loopbackLauncher{why: fmt.Sprintf("cannot compile its loopback launcher: %v", err)}
	}
	// Compile into a fresh folder and rename it into place, so two
	// processes compiling at once never see half a class.
	tmp, err := os.MkdirTemp(filepath.Dir(out), "tmp-")
	if err != nil {
		return loopbackLauncher{why: fmt.Sprintf("cannot compile its loopback launcher: %v", err)}
	}
	defer os.RemoveAll(tmp)
	if msg, err := exec.CommandContext(ctx, javac, "-d", tmp, src).CombinedOutput(); err != nil {
		return loopbackLauncher{why: fmt.Sprintf("javac %s failed (%v): %s", src, err, strings.TrimSpace(string(msg)))}
	}
	if err := os.Rename(tmp, out); err != nil {
		if _, statErr := os.Stat(filepath.Join(out, loopbackClass+".class")); statErr != nil {
			return loopbackLauncher{why: fmt.Sprintf("cannot store its compiled loopback launcher: %v", errors.Join(err, statErr))}
		}
	}
	return loopbackLauncher{classes: out}
}

// jvmOptions are DynamoDB Local's JVM options: the serial collector, the
// JDK's class-data archive, and the client compiler alone
// (TieredStopAtLevel=1): a test binary's emulator lives seconds to minutes,
// too short for the server compiler's work to pay back, and each test package
// starts its own; so started, it answers after about half the CPU time.
var jvmOptions = []string{"-XX:+UseSerialGC", "-Xshare:auto", "-XX:TieredStopAtLevel=1"}

// dynamoDBArgs is java's command line for DynamoDB Local: through the
// loopback launcher in classes, or the plain jar when loopback is false.
func dynamoDBArgs(dir string, port int, loopback bool, classes string) []string {
	emu := filepath.Join(dir, "node_modules", "amplify-dynamodb-simulator", "emulator")
	jar := filepath.Join(emu, "DynamoDBLocal.jar")
	args := append([]string{"-Djava.library.path=" + filepath.Join(emu, "DynamoDBLocal_lib")}, jvmOptions...)
	if loopback {
		// The jar's manifest Class-Path brings DynamoDBLocal_lib along.
		args = append(args, "-cp", jar+string(os.PathListSeparator)+classes, loopbackClass)
	} else {
		args = append(args, "-jar", jar)
	}
	return append(args, "-inMemory", "-disableTelemetry", "-port", strconv.Itoa(port))
}

// launcherRefused reports whether the process was the loopback launcher and
// exited because it could not bind DynamoDB Local to loopback.
func (p *Process) launcherRefused() bool {
	select {
	case <-p.done:
	default:
		return false
	}
	var ee *exec.ExitError
	return errors.As(p.waitErr, &ee) && ee.ExitCode() == loopbackRefused
}

func allInterfacesWarning(port int, why string) string {
	return fmt.Sprintf("DynamoDB Local listens on every interface (port %d is open on *:%d, not only 127.0.0.1): %s", port, port, why)
}
