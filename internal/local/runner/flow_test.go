package runner_test

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/aws/aws-lambda-go/events"
	"github.com/aws/aws-sdk-go-v2/aws"

	"github.com/dispatcher-dev/dispatcher/internal/local/provision"
	"github.com/dispatcher-dev/dispatcher/internal/local/runner"
	"github.com/dispatcher-dev/dispatcher/internal/testkit/testenv"
)

// realFunctions builds the template's functions in-process with the same
// constructors as their main.go.
func realFunctions(t *testing.T, s *provision.Stack) map[string]runner.Function {
	t.Helper()
	return realFunctionsWith(t, s, nil)
}

// realFunctionsWith is realFunctions with more environment for every
// function.
func realFunctionsWith(t *testing.T, s *provision.Stack, extra map[string]string) map[string]runner.Function {
	t.Helper()
	fns, err := coldStart(t, s, extra)
	if err != nil {
		t.Fatal(err)
	}
	return fns
}

// coldStart builds the stack's functions in-process, as realFunctionsWith
// does, and returns what their cold start returned.
func coldStart(t *testing.T, s *provision.Stack, extra map[string]string) (map[string]runner.Function, error) {
	t.Helper()
	env := testenv.Get(t)
	spec, err := runner.ReadSpec(s)
	if err != nil {
		t.Fatal(err)
	}
	dirs, err := runner.FunctionDirs(env.Root)
	if err != nil {
		t.Fatal(err)
	}
	vars := map[string]string{"WEBHOOK_SECRETS": testSecret}
	for k, v := range extra {
		vars[k] = v
	}
	return runner.InProcessFunctions(context.Background(), env.AWS, spec, s.Eval.StackName(), dirs, vars)
}

// watched wraps a stream function: it records every record it is given
// and fails while broken is set.
type watched struct {
	inner  runner.Function
	broken atomic.Bool
	mu     sync.Mutex
	seen   []string // "eventName sk"
}

func (w *watched) Invoke(ctx context.Context, reqID string, payload []byte) ([]byte, error) {
	var ev events.DynamoDBEvent
	if err := json.Unmarshal(payload, &ev); err != nil {
		return nil, err
	}
	w.mu.Lock()
	for _, r := range ev.Records {
		w.seen = append(w.seen, r.EventName+" "+r.Change.Keys["sk"].String())
	}
	w.mu.Unlock()
	if w.broken.Load() {
		return nil, &runner.FunctionError{Type: "errorString", Message: "relay down (test)"}
	}
	return w.inner.Invoke(ctx, reqID, payload)
}

func (w *watched) records() []string {
	w.mu.Lock()
	defer w.mu.Unlock()
	return append([]string(nil), w.seen...)
}

func emailsTo(t *testing.T, addr string) int {
	t.Helper()
	mails, err := testenv.Get(t).SentEmails(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	n := 0
	for _, m := range mails {
		for _, to := range m.Destination.To {
			if strings.Contains(to, addr) {
				n++
			}
		}
	}
	return n
}

func openAccount(id, email string) string {
	return fmt.Sprintf(`{"type":"OpenAccount","aggregateId":%q,"data":{"owner":"Ada Lovelace","email":%q,"currency":"EUR"}}`, id, email)
}

func outboxStatuses(t *testing.T, base, id string) []string {
	t.Helper()
	resp, body := do(t, signed(t, http.MethodGet, base+"/v1/aggregates/"+id+"/outbox", ""))
	if resp.StatusCode != 200 {
		t.Fatalf("GET outbox: %d %s", resp.StatusCode, body)
	}
	var out struct {
		Items []struct {
			Status string `json:"status"`
		} `json:"items"`
	}
	if err := json.Unmarshal(body, &out); err != nil {
		t.Fatal(err)
	}
	var st []string
	for _, it := range out.Items {
		st = append(st, it.Status)
	}
	return st
}

func allDelivered(st []string) bool {
	for _, s := range st {
		if s != "DELIVERED" {
			return false
		}
	}
	return len(st) > 0
}

func TestASignedCommandThroughTheAPIEndsAsAnEventAndAnEmail(t *testing.T) {
	s := freshStack(t)
	fns := realFunctions(t, s)
	relay := &watched{inner: fns["StreamRelayFunction"]}
	fns["StreamRelayFunction"] = relay
	r := start(t, s, fns, nil)

	id := fmt.Sprintf("acc-%d", time.Now().UnixNano())
	email := id + "@example.com"
	resp, body := do(t, signed(t, http.MethodPost, r.URL()+"/v1/commands", openAccount(id, email)))
	if resp.StatusCode != http.StatusAccepted || resp.Header.Get("Location") != "/v1/aggregates/"+id {
		t.Fatalf("POST: %d %s (Location %q)", resp.StatusCode, body, resp.Header.Get("Location"))
	}

	var msgs []string
	var groups []string
	eventually(t, 20*time.Second, "an event in the FIFO events queue", func() bool {
		for _, m := range receiveAll(t, s.Physical("EventsQueue")) {
			msgs = append(msgs, aws.ToString(m.Body))
			groups = append(groups, m.Attributes["MessageGroupId"])
		}
		return len(msgs) > 0
	})
	ce := jsonOf(t, []byte(msgs[0]))
	if ce["subject"] != id || ce["specversion"] != "1.0" || groups[0] != id {
		t.Errorf("event %s in group %q: want a CloudEvent about %s in group %s", msgs[0], groups[0], id, id)
	}
	if !strings.HasSuffix(s.Physical("EventsQueue"), ".fifo") {
		t.Errorf("events queue %s is not FIFO", s.Physical("EventsQueue"))
	}
	eventually(t, 20*time.Second, "an email in the SES store", func() bool { return emailsTo(t, email) == 1 })
	eventually(t, 20*time.Second, "every outbox item DELIVERED", func() bool { return allDelivered(outboxStatuses(t, r.URL(), id)) })

	resp, body = do(t, signed(t, http.MethodGet, r.URL()+"/v1/aggregates/"+id, ""))
	if got := jsonOf(t, body); resp.StatusCode != 200 || got["aggregateId"] != id || got["version"] != float64(1) {
		t.Errorf("GET aggregate: %d %s", resp.StatusCode, body)
	}

	// The filter kept the state item, the idempotency record and every
	// MODIFY (the DELIVERED marks) from the relay.
	for _, rec := range relay.records() {
		if !strings.HasPrefix(rec, "INSERT OUTBOX#") {
			t.Errorf("the relay was given %q", rec)
		}
	}
	if st := r.Stats("StreamRelayFunction"); st.Filtered < 2 || st.Delivered != 2 || st.Discarded != 0 {
		t.Errorf("mapping stats %+v: want 2 delivered, the state and idempotency inserts filtered", st)
	}
}

// A batch the mapping gave up on is not a permanent failure: its
// on-failure record goes to the stream recovery, which delivers it with no
// person (and no replay), and leaves the DLQ empty.
func TestABatchGivenUpOnIsDeliveredByTheStreamRecoveryWithNoPerson(t *testing.T) {
	s := freshStack(t)
	fns := realFunctions(t, s)
	relay := &watched{inner: fns["StreamRelayFunction"]}
	relay.broken.Store(true)
	fns["StreamRelayFunction"] = relay
	r := start(t, s, fns, func(m *runner.StreamMapping) { m.MaxRetryAttempts = 0 })

	id := fmt.Sprintf("acc-%d", time.Now().UnixNano())
	email := id + "@example.com"
	if resp, body := do(t, signed(t, http.MethodPost, r.URL()+"/v1/commands", openAccount(id, email))); resp.StatusCode != 202 {
		t.Fatalf("POST: %d %s", resp.StatusCode, body)
	}
	eventually(t, 20*time.Second, "both outbox records given up on", func() bool { return r.Stats("StreamRelayFunction").Discarded == 2 })
	eventually(t, 20*time.Second, "every outbox item DELIVERED by the recovery", func() bool { return allDelivered(outboxStatuses(t, r.URL(), id)) })
	if n := len(receiveAll(t, s.Physical("EventsQueue"))); n != 1 {
		t.Errorf("%d events after the recovery, want 1", n)
	}
	if n := emailsTo(t, email); n != 1 {
		t.Errorf("%d emails after the recovery, want 1", n)
	}
	if st := r.QueueStats("StreamRecoveryFunction"); st.Received == 0 || st.Failed != 0 {
		t.Errorf("recovery mapping stats %+v: want the records received and none failed", st)
	}
	if n := len(receiveAll(t, s.Physical("DeadLetterQueue"))); n != 0 {
		t.Errorf("%d messages in the DLQ, want none: nothing here waits for a person", n)
	}

	// The replay route (a person's) finds nothing left to do; a bad request
	// is the caller's to fix: 400, with the function's error as Lambda
	// reports it.
	resp, body := do(t, mustReq(t, http.MethodPost, r.URL()+runner.ReplayPath, []byte(`{"mode":"dlq"}`)))
	if rep := jsonOf(t, body); resp.StatusCode != 200 || rep["messages"] != float64(0) {
		t.Errorf("replay after the recovery: %d %s, want 200 and no DLQ message", resp.StatusCode, body)
	}
	resp, body = do(t, mustReq(t, http.MethodPost, r.URL()+runner.ReplayPath, []byte(`{"mode":"everything"}`)))
	if resp.StatusCode != 400 || resp.Header.Get("X-Amz-Function-Error") != "Unhandled" || !strings.Contains(string(body), `"errorType":"RequestError"`) || !strings.Contains(string(body), "mode") {
		t.Errorf("bad replay request: %d %s", resp.StatusCode, body)
	}
}
