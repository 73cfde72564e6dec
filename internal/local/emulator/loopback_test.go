package emulator

import (
	"context"
	"encoding/hex"
	"net"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
)

// listeners returns the local addresses on which something listens on port,
// read from /proc/net/tcp and /proc/net/tcp6.
func listeners(t *testing.T, port int) []net.IP {
	t.Helper()
	var ips []net.IP
	for _, f := range []string{"/proc/net/tcp", "/proc/net/tcp6"} {
		b, err := os.ReadFile(f)
		if err != nil {
			t.Skipf("cannot read the listening sockets: %v", err)
		}
		for _, line := range strings.Split(string(b), "\n")[1:] {
			fields := strings.Fields(line)
			if len(fields) < 4 || fields[3] != "0A" { // 0A: LISTEN
				continue
			}
			addr, p, ok := strings.Cut(fields[1], ":")
			if n, err := strconv.ParseUint(p, 16, 16); !ok || err != nil || int(n) != port {
				continue
			}
			raw, err := hex.DecodeString(addr)
			if err != nil || len(raw)%4 != 0 {
				t.Fatalf("%s: cannot read the address %q", f, fields[1])
			}
			// The kernel prints each 32-bit word in host (little-endian) order.
			for i := 0; i < len(raw); i += 4 {
				raw[i], raw[i+1], raw[i+2], raw[i+3] = raw[i+3], raw[i+2], raw[i+1], raw[i]
			}
			ips = append(ips, net.IP(raw))
		}
	}
	return ips
}

func assertLoopbackOnly(t *testing.T, port int) {
	t.Helper()
	ips := listeners(t, port)
	if len(ips) == 0 {
		t.Fatalf("nothing listens on port %d", port)
	}
	for _, ip := range ips {
		if !ip.IsLoopback() {
			t.Errorf("port %d listens on %s, want loopback only", port, ip)
		}
	}
}

func TestEmulatorsListenOnLoopbackOnly(t *testing.T) {
	if testing.Short() {
		t.Skip("starts the emulators")
	}
	s, err := Start(context.Background(), Options{LogDir: t.TempDir()})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Stop()
	for _, p := range s.Processes() {
		if p.Warning != "" {
			t.Errorf("%s: warning %q", p.Name, p.Warning)
		}
		assertLoopbackOnly(t, p.Port)
	}
}

// A DynamoDB Local whose classes the launcher does not recognise starts from
// the plain jar, on every interface, and says so.
func TestDynamoDBLocalFallsBackToThePlainJarWithAWarning(t *testing.T) {
	if testing.Short() {
		t.Skip("starts the emulators")
	}
	real := repoDir(t)
	dir := t.TempDir()
	for _, f := range []string{"package.json", "node_modules", "sqs-loopback.mjs"} {
		if err := os.Symlink(filepath.Join(real, f), filepath.Join(dir, f)); err != nil {
			t.Fatal(err)
		}
	}
	refusing := `public class LoopbackDynamoDB {
    public static void main(String[] args) {
        System.err.println("LoopbackDynamoDB: cannot bind to loopback: test");
        System.exit(3);
    }
}
`
	if err := os.WriteFile(filepath.Join(dir, loopbackSource), []byte(refusing), 0o644); err != nil {
		t.Fatal(err)
	}
	s, err := Start(context.Background(), Options{Dir: dir, LogDir: t.TempDir()})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Stop()
	p := s.Get(DynamoDB)
	if want := "port " + strconv.Itoa(p.Port) + " is open on *:" + strconv.Itoa(p.Port); !strings.Contains(p.Warning, want) {
		t.Errorf("warning %q does not say %q", p.Warning, want)
	}
	var wildcard bool
	for _, ip := range listeners(t, p.Port) {
		wildcard = wildcard || ip.IsUnspecified()
	}
	if !wildcard {
		t.Errorf("the plain jar should listen on every interface; listens on %v", listeners(t, p.Port))
	}
}

// DynamoDB Local runs with the client compiler only (jvmOptions says why),
// from the launcher and from the plain jar alike: the option must come
// before the class or jar, or java hands it to DynamoDB Local as an argument.
func TestDynamoDBLocalStartsWithTheClientCompilerOnly(t *testing.T) {
	for _, loopback := range []bool{true, false} {
		args := dynamoDBArgs("/x/localstack", 8000, loopback, "/cache/classes")
		main := slices.IndexFunc(args, func(a string) bool { return a == "-cp" || a == "-jar" })
		opt := slices.Index(args, "-XX:TieredStopAtLevel=1")
		if main < 0 || opt < 0 || opt > main {
			t.Errorf("loopback %v: java %s: want -XX:TieredStopAtLevel=1 before -cp or -jar", loopback, strings.Join(args, " "))
		}
	}
}
