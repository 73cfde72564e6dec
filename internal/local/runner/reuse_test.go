package runner_test

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"

	"github.com/dispatcher-dev/dispatcher/internal/local/provision"
	"github.com/dispatcher-dev/dispatcher/internal/testkit/testenv"
)

// A stack that names an existing events queue (ExistingEventsQueueArn)
// creates none, and its relay publishes to that queue: the URL it gets is
// built from the ARN. The queue here is another stack's.
func TestAnExistingEventsQueueReceivesTheEvents(t *testing.T) {
	owner := freshStack(t)
	arn := owner.Attr("EventsQueue", "Arn")
	if arn == "" {
		t.Fatal("the first stack's events queue has no ARN")
	}
	env := testenv.Get(t)
	s, err := provision.Apply(context.Background(), env.AWS, provision.Options{
		TemplatePath: filepath.Join(env.Root, "infra", "template.yaml"),
		StackName:    fmt.Sprintf("reuse%d-%d", os.Getpid()%100000, stackSeq.Add(1)),
		Parameters:   map[string]string{"ExistingEventsQueueArn": arn},
	})
	if err != nil {
		t.Fatal(err)
	}
	for _, id := range []string{"EventsQueue", "EventsConsumerDeadLetterQueue"} {
		if s.Physical(id) != "" {
			t.Errorf("%s was created (%s) although the stack reuses %s", id, s.Physical(id), arn)
		}
	}
	// The template builds https://sqs.<region>.amazonaws.com/<account>/<name>
	// from the ARN, which SQS takes; the emulator knows the queue only by its
	// own URL, which provision gives the functions instead.
	fenv, err := s.FunctionEnv("StreamRelayFunction")
	if err != nil || fenv["EVENTS_QUEUE_URL"] != owner.Physical("EventsQueue") {
		t.Fatalf("the relay's EVENTS_QUEUE_URL = %q (err %v), want the existing queue %s", fenv["EVENTS_QUEUE_URL"], err, owner.Physical("EventsQueue"))
	}
	r := start(t, s, realFunctions(t, s), nil)
	id := fmt.Sprintf("reuse-%d", time.Now().UnixNano())
	postOK(t, r.URL(), openAccount(id, id+"@example.com"), "")
	var got []string
	eventually(t, 30*time.Second, "the event in the existing queue", func() bool {
		for _, m := range receiveAll(t, owner.Physical("EventsQueue")) {
			ce := jsonOf(t, []byte(aws.ToString(m.Body)))
			if ce["subject"] == id {
				got = append(got, ce["type"].(string))
			}
		}
		return len(got) > 0
	})
	if got[0] != "AccountOpened" {
		t.Errorf("events %v, want AccountOpened", got)
	}
}
