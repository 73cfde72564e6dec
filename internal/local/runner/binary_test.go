package runner_test

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"os"
	"slices"
	"syscall"
	"testing"
	"time"

	"github.com/dispatcher-dev/dispatcher/internal/local/runner"
	"github.com/dispatcher-dev/dispatcher/internal/replay"
	"github.com/dispatcher-dev/dispatcher/internal/testkit/testenv"
)

// The deployable artifacts, built as `make build` builds them but for this
// machine, run the whole flow under the Lambda Runtime Interface Emulator:
// signed POST, event, email, DELIVERED; then a batch given up on, the DLQ,
// the replay function (a binary too), delivered.
func TestTheBuiltBinariesRunTheFlowUnderTheRuntimeInterfaceEmulator(t *testing.T) {
	env := testenv.Get(t)
	s := freshStack(t)
	spec, err := runner.ReadSpec(s)
	if err != nil {
		t.Fatal(err)
	}
	dirs, err := runner.FunctionDirs(env.Root)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	bin, err := runner.StartBinaries(ctx, runner.BinaryOptions{
		Root: env.Root, Spec: spec, Dirs: dirs, StackName: s.Eval.StackName(),
		Extra: map[string]string{"WEBHOOK_SECRETS": testSecret}, Log: tlogWriter{t},
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(bin.Stop)
	fns := bin.Functions
	relay := &watched{inner: fns["StreamRelayFunction"]}
	fns["StreamRelayFunction"] = relay
	r := start(t, s, fns, func(m *runner.StreamMapping) { m.MaxRetryAttempts = 0 })

	// The happy path.
	id := fmt.Sprintf("bin-%d", time.Now().UnixNano())
	email := id + "@example.com"
	if resp, body := do(t, signed(t, http.MethodPost, r.URL()+"/v1/commands", openAccount(id, email))); resp.StatusCode != 202 {
		t.Fatalf("POST: %d %s", resp.StatusCode, body)
	}
	eventually(t, 30*time.Second, "the email", func() bool { return emailsTo(t, email) == 1 })
	eventually(t, 30*time.Second, "every outbox item DELIVERED", func() bool { return allDelivered(outboxStatuses(t, r.URL(), id)) })
	if n := len(receiveAll(t, s.Physical("EventsQueue"))); n != 1 {
		t.Errorf("%d events, want 1", n)
	}

	// kill -9 of the relay's bootstrap: the next batch gets a fresh one.
	pids, err := bin.Kill("StreamRelayFunction")
	if err != nil || len(pids) != 1 {
		t.Fatalf("Kill: pids %v, err %v; want the one bootstrap", pids, err)
	}
	eventually(t, 5*time.Second, "the killed bootstrap gone", func() bool { return syscall.Kill(pids[0], 0) != nil })
	idk := id + "-k"
	if resp, body := do(t, signed(t, http.MethodPost, r.URL()+"/v1/commands", openAccount(idk, idk+"@example.com"))); resp.StatusCode != 202 {
		t.Fatalf("POST: %d %s", resp.StatusCode, body)
	}
	eventually(t, 30*time.Second, "the email after the kill", func() bool { return emailsTo(t, idk+"@example.com") == 1 })
	eventually(t, 30*time.Second, "its outbox items DELIVERED", func() bool { return allDelivered(outboxStatuses(t, r.URL(), idk)) })
	if _, err := bin.Kill("NoSuchFunction"); err == nil {
		t.Error("Kill of an unknown function: no error")
	}

	// A forced failure: the mapping gives up; the stream recovery's
	// bootstrap delivers, with no person; the replay finds nothing left.
	relay.broken.Store(true)
	id2 := id + "-2"
	email2 := id2 + "@example.com"
	if resp, body := do(t, signed(t, http.MethodPost, r.URL()+"/v1/commands", openAccount(id2, email2))); resp.StatusCode != 202 {
		t.Fatalf("POST: %d %s", resp.StatusCode, body)
	}
	eventually(t, 30*time.Second, "both records given up on", func() bool { return r.Stats("StreamRelayFunction").Discarded == 2 })
	eventually(t, 30*time.Second, "the email delivered by the stream recovery", func() bool { return emailsTo(t, email2) == 1 })
	eventually(t, 30*time.Second, "its outbox items DELIVERED", func() bool { return allDelivered(outboxStatuses(t, r.URL(), id2)) })
	relay.broken.Store(false)
	resp, body := do(t, mustReq(t, http.MethodPost, r.URL()+runner.ReplayPath, []byte(`{"mode":"dlq"}`)))
	var rep replay.Report
	if err := json.Unmarshal(body, &rep); resp.StatusCode != 200 || err != nil || rep.Messages != 0 {
		t.Fatalf("replay: %d %s, want nothing left in the DLQ", resp.StatusCode, body)
	}
}

func TestHostBuildsUseTheMakefileFlags(t *testing.T) {
	flags, err := runner.BuildFlags("../../..")
	if err != nil {
		t.Fatal(err)
	}
	if want := []string{"-tags", "lambda.norpc", "-trimpath", "-ldflags=-s -w", "-buildvcs=false"}; !slices.Equal(flags, want) {
		t.Errorf("GO_BUILD_FLAGS read as %q, want %q (update this test with the Makefile)", flags, want)
	}
	dirs, err := runner.FunctionDirs("../../..")
	if err != nil {
		t.Fatal(err)
	}
	want := map[string]string{"CommandFunction": "command", "StreamRelayFunction": "stream-relay", "DLQReplayFunction": "dlq-replay", "StreamRecoveryFunction": "stream-recovery"}
	for id, dir := range want {
		if dirs[id] != dir {
			t.Errorf("%s builds functions/%s, want functions/%s", id, dirs[id], dir)
		}
		if _, err := os.Stat("../../../functions/" + dir + "/main.go"); err != nil {
			t.Error(err)
		}
	}
}
