package orders_test

import (
	"bytes"
	"encoding/json"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/dispatcher-dev/dispatcher/internal/testkit/flowtest"
	"github.com/dispatcher-dev/dispatcher/internal/testkit/testenv"
	"github.com/dispatcher-dev/dispatcher/outbox"
)

// placeWithPython runs python/place_order.py with the project's pinned
// Python (boto3 comes with `make py-tools`) against the test's DynamoDB.
func placeWithPython(t *testing.T, w world, args ...string) (stdout, stderr string, code int) {
	t.Helper()
	python := filepath.Join(testenv.Get(t).Root, ".venv", "bin", "python")
	if _, err := os.Stat(python); err != nil {
		t.Fatalf("%s is missing: run `make py-tools` (it installs boto3 from tools/requirements.txt)", python)
	}
	cmd := exec.Command(python, append([]string{filepath.Join("python", "place_order.py")}, args...)...)
	// The endpoints come from the test binary's environment (testenv sets
	// AWS_ENDPOINT_URL_DYNAMODB); the credentials are dummies.
	cmd.Env = append(os.Environ(), "ORDERS_TABLE="+ordersTable, "DISPATCHER_TABLE="+w.Table,
		"AWS_DEFAULT_REGION=us-east-1", "AWS_ACCESS_KEY_ID=local", "AWS_SECRET_ACCESS_KEY=local")
	var out, errOut bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errOut
	err := cmd.Run()
	var exit *exec.ExitError
	if err != nil && !errors.As(err, &exit) {
		t.Fatalf("run %s: %v", python, err)
	}
	return out.String(), errOut.String(), cmd.ProcessState.ExitCode()
}

// A writer in another language, following only the written contract,
// writes an order and its outbox items in one transaction (boto3's
// transact_write_items); the real relay delivers them.
func TestAPythonWriterFollowingTheContractIsDelivered(t *testing.T) {
	if testing.Short() {
		t.Skip("integration test: runs Python against the local emulators")
	}
	w := setup(t)
	id := flowtest.Unique("py")
	addr := id + "@example.com"
	stdout, stderr, code := placeWithPython(t, w, id, addr, "Ada", "42.00")
	if code != 0 {
		t.Fatalf("place_order.py exited %d: %s", code, stderr)
	}
	var placed struct {
		OrderID  string   `json:"orderId"`
		EventIDs []string `json:"eventIds"`
	}
	if err := json.Unmarshal([]byte(stdout), &placed); err != nil || len(placed.EventIDs) != 2 {
		t.Fatalf("stdout %q: want the order id and 2 event ids", stdout)
	}
	if o := w.order(t, id); o["version"] != "1" || o["email"] != addr {
		t.Errorf("the Orders table holds %v", o)
	}
	// Each item is one the contract allows, its shard the one the Go
	// package computes for the same key and shard count.
	items := w.Items(id)
	if len(items) != 2 {
		t.Fatalf("%d outbox items, want 2", len(items))
	}
	for seq, av := range items {
		it, err := outbox.Decode(av)
		if err != nil {
			t.Fatalf("item %d breaks the contract: %v", seq, err)
		}
		if want := outbox.Shard(id, 1, seq, 8); flowtest.S(av, outbox.AttrShard) != want || it.EventID != placed.EventIDs[seq] {
			t.Errorf("item %d: shard %s and event id %s, want %s and %s", seq, flowtest.S(av, outbox.AttrShard), it.EventID, want, placed.EventIDs[seq])
		}
	}

	w.deliver(t, id)
	if evs := w.events(id)[id]; len(evs) != 1 || evs[0].Type != "OrderPlaced" || evs[0].ID != placed.EventIDs[0] || evs[0].Data["total"] != "42.00" {
		t.Errorf("events %+v, want the OrderPlaced the script wrote", evs)
	}
	if mails := emailsTo(t, addr); len(mails) != 1 || mails[0].Subject != "Order "+id+" is confirmed" {
		t.Errorf("emails %+v, want the confirmation", mails)
	}
	w.delivered(t, id)

	t.Run("placed again: already placed, nothing written", func(t *testing.T) {
		before := w.outboxKeys(id)
		_, stderr, code := placeWithPython(t, w, id, addr, "Ada", "99.00")
		if code != 3 || !strings.Contains(stderr, "already placed") {
			t.Errorf("exit %d, %q: want 3, already placed", code, stderr)
		}
		if o := w.order(t, id); o["total"] != "42.00" {
			t.Errorf("the order holds total %s, want 42.00", o["total"])
		}
		if after := w.outboxKeys(id); strings.Join(after, ",") != strings.Join(before, ",") {
			t.Errorf("outbox items %q, want %q", after, before)
		}
	})
	t.Run("bad input: exit 2, nothing written", func(t *testing.T) {
		bad := flowtest.Unique("py")
		_, stderr, code := placeWithPython(t, w, bad, "not-an-address", "Ada", "42.00")
		if code != 2 || !strings.Contains(stderr, "bad input") {
			t.Errorf("exit %d, %q: want 2, bad input", code, stderr)
		}
		if o := w.order(t, bad); o != nil || len(w.Items(bad)) != 0 {
			t.Errorf("bad input wrote %v", o)
		}
	})
}
