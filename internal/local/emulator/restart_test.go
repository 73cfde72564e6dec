package emulator_test

import (
	"context"
	"errors"
	"net"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	awshttp "github.com/aws/aws-sdk-go-v2/aws/transport/http"
	"github.com/aws/aws-sdk-go-v2/service/sqs"
	"github.com/aws/aws-sdk-go-v2/service/sqs/types"

	"github.com/dispatcher-dev/dispatcher/internal/local/emulator"
)

// startStack starts a real stack in logDir and stops it when the test ends.
func startStack(t *testing.T, logDir string) *emulator.Stack {
	t.Helper()
	if testing.Short() {
		t.Skip("starts the emulators")
	}
	dir, err := emulator.FindDir()
	if err != nil {
		t.Fatal(err)
	}
	s, err := emulator.Start(t.Context(), emulator.Options{Dir: dir, LogDir: logDir})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(s.Stop)
	return s
}

func sqsClient(s *emulator.Stack) *sqs.Client {
	return sqs.NewFromConfig(aws.Config{
		Region: "us-east-1",
		Credentials: aws.CredentialsProviderFunc(func(context.Context) (aws.Credentials, error) {
			return aws.Credentials{AccessKeyID: "local", SecretAccessKey: "local"}, nil
		}),
		BaseEndpoint:     aws.String(s.Get(emulator.SQS).URL),
		RetryMaxAttempts: 1, // a refused connection must show, not be retried away
	})
}

func createQueue(t *testing.T, api *sqs.Client, name string, attrs map[string]string) string {
	t.Helper()
	out, err := api.CreateQueue(t.Context(), &sqs.CreateQueueInput{QueueName: aws.String(name), Attributes: attrs})
	if err != nil {
		t.Fatalf("create %s: %v", name, err)
	}
	return aws.ToString(out.QueueUrl)
}

func queueAttrs(t *testing.T, api *sqs.Client, url string) map[string]string {
	t.Helper()
	out, err := api.GetQueueAttributes(t.Context(), &sqs.GetQueueAttributesInput{QueueUrl: aws.String(url), AttributeNames: []types.QueueAttributeName{types.QueueAttributeNameAll}})
	if err != nil {
		t.Fatalf("attributes of %s: %v", url, err)
	}
	return out.Attributes
}

type received struct {
	body, group, receiveCount string
}

// drain receives and deletes every visible message, in the order the queue
// hands them out.
func drain(t *testing.T, api *sqs.Client, url string) []received {
	t.Helper()
	var got []received
	for range 100 {
		out, err := api.ReceiveMessage(t.Context(), &sqs.ReceiveMessageInput{
			QueueUrl: aws.String(url), MaxNumberOfMessages: 10,
			MessageSystemAttributeNames: []types.MessageSystemAttributeName{types.MessageSystemAttributeNameAll},
		})
		if err != nil {
			t.Fatalf("receive from %s: %v", url, err)
		}
		if len(out.Messages) == 0 {
			return got
		}
		for _, m := range out.Messages {
			got = append(got, received{
				body:         aws.ToString(m.Body),
				group:        m.Attributes[string(types.MessageSystemAttributeNameMessageGroupId)],
				receiveCount: m.Attributes[string(types.MessageSystemAttributeNameApproximateReceiveCount)],
			})
			if _, err := api.DeleteMessage(t.Context(), &sqs.DeleteMessageInput{QueueUrl: aws.String(url), ReceiptHandle: m.ReceiptHandle}); err != nil {
				t.Fatalf("delete from %s: %v", url, err)
			}
		}
	}
	t.Fatalf("%s did not drain", url)
	return nil
}

func TestSQSRestartKeepsQueuesMessagesAndDeduplication(t *testing.T) {
	s := startStack(t, t.TempDir())
	ctx := t.Context()
	api := sqsClient(s)

	std := createQueue(t, api, "restart-std", map[string]string{"VisibilityTimeout": "45"})
	fifo := createQueue(t, api, "restart-events.fifo", map[string]string{
		"FifoQueue": "true", "ContentBasedDeduplication": "false", "VisibilityTimeout": "60",
	})
	for _, b := range []string{"s1", "s2", "s3"} {
		if _, err := api.SendMessage(ctx, &sqs.SendMessageInput{QueueUrl: aws.String(std), MessageBody: aws.String(b)}); err != nil {
			t.Fatal(err)
		}
		time.Sleep(2 * time.Millisecond) // distinct send times, so the order to keep is unambiguous
	}
	ids := map[string]string{} // body -> MessageId
	var lastSeq string
	for _, b := range []string{"a1", "b1", "a2", "b2", "a3", "b3"} {
		out, err := api.SendMessage(ctx, &sqs.SendMessageInput{
			QueueUrl: aws.String(fifo), MessageBody: aws.String(b),
			MessageGroupId: aws.String(b[:1]), MessageDeduplicationId: aws.String("dedup-" + b),
		})
		if err != nil {
			t.Fatal(err)
		}
		ids[b] = aws.ToString(out.MessageId)
		lastSeq = aws.ToString(out.SequenceNumber)
	}
	// One message of each queue in flight when SQS goes down.
	for _, url := range []string{std, fifo} {
		out, err := api.ReceiveMessage(ctx, &sqs.ReceiveMessageInput{QueueUrl: aws.String(url), MaxNumberOfMessages: 1})
		if err != nil || len(out.Messages) != 1 {
			t.Fatalf("receive one from %s: %d messages, err %v", url, len(out.Messages), err)
		}
	}
	if got := queueAttrs(t, api, fifo)["ApproximateNumberOfMessagesNotVisible"]; got != "1" {
		t.Fatalf("FIFO in flight before the stop = %s, want 1", got)
	}

	before := s.Get(emulator.SQS)
	if err := s.StopOne(emulator.SQS); err != nil {
		t.Fatal(err)
	}
	if emulator.Alive(before.PID) {
		t.Errorf("fauxqs (pid %d) still running after StopOne", before.PID)
	}
	_, err := api.ListQueues(ctx, &sqs.ListQueuesInput{})
	// The SDK wraps a failed send in a ResponseError too, with status 0.
	var httpErr *awshttp.ResponseError
	if !errors.Is(err, syscall.ECONNREFUSED) || errors.As(err, &httpErr) && httpErr.HTTPStatusCode() != 0 {
		t.Fatalf("ListQueues while stopped: err = %v, want a refused connection, not an HTTP answer", err)
	}
	if err := s.StopOne(emulator.SQS); err != nil {
		t.Errorf("second StopOne: %v, want nothing to do", err)
	}

	if err := s.StartOne(ctx, emulator.SQS); err != nil {
		t.Fatal(err)
	}
	after := s.Get(emulator.SQS)
	if after.PID == before.PID || after.Port != before.Port || after.URL != before.URL {
		t.Errorf("after StartOne: pid %d port %d, before: pid %d port %d; want a new pid on the same port", after.PID, after.Port, before.PID, before.Port)
	}
	if err := s.StartOne(ctx, emulator.SQS); err == nil || !strings.Contains(err.Error(), "running already") {
		t.Errorf("StartOne of a running emulator: err = %v, want it to say it is running already", err)
	}

	for name, url := range map[string]string{"restart-std": std, "restart-events.fifo": fifo} {
		out, err := api.GetQueueUrl(ctx, &sqs.GetQueueUrlInput{QueueName: aws.String(name)})
		if err != nil || aws.ToString(out.QueueUrl) != url {
			t.Errorf("GetQueueUrl(%s) after restart = %v, %v; want %s", name, out, err, url)
		}
	}
	stdAttrs, fifoAttrs := queueAttrs(t, api, std), queueAttrs(t, api, fifo)
	for _, c := range []struct {
		attrs      map[string]string
		name, want string
	}{
		{stdAttrs, "VisibilityTimeout", "45"},
		{stdAttrs, "ApproximateNumberOfMessages", "3"},
		{stdAttrs, "ApproximateNumberOfMessagesNotVisible", "0"},
		{fifoAttrs, "VisibilityTimeout", "60"},
		{fifoAttrs, "FifoQueue", "true"},
		{fifoAttrs, "ContentBasedDeduplication", "false"},
		{fifoAttrs, "ApproximateNumberOfMessages", "6"},
		{fifoAttrs, "ApproximateNumberOfMessagesNotVisible", "0"},
	} {
		if got := c.attrs[c.name]; got != c.want {
			t.Errorf("after restart %s = %q, want %q", c.name, got, c.want)
		}
	}

	// A retry of an earlier send is still recognised as a duplicate.
	dup, err := api.SendMessage(ctx, &sqs.SendMessageInput{
		QueueUrl: aws.String(fifo), MessageBody: aws.String("b2 again"),
		MessageGroupId: aws.String("b"), MessageDeduplicationId: aws.String("dedup-b2"),
	})
	if err != nil {
		t.Fatal(err)
	}
	if aws.ToString(dup.MessageId) != ids["b2"] {
		t.Errorf("re-sent dedup-b2 got MessageId %s, want the original %s", aws.ToString(dup.MessageId), ids["b2"])
	}
	// New sends continue the sequence instead of restarting it.
	next, err := api.SendMessage(ctx, &sqs.SendMessageInput{
		QueueUrl: aws.String(fifo), MessageBody: aws.String("a4"),
		MessageGroupId: aws.String("a"), MessageDeduplicationId: aws.String("dedup-a4"),
	})
	if err != nil {
		t.Fatal(err)
	}
	if seq := aws.ToString(next.SequenceNumber); seq <= lastSeq {
		t.Errorf("sequence number after restart %s, want after %s", seq, lastSeq)
	}

	perGroup := map[string][]string{}
	counts := map[string]string{}
	for _, m := range drain(t, api, fifo) {
		perGroup[m.group] = append(perGroup[m.group], m.body)
		counts[m.body] = m.receiveCount
	}
	if got, want := strings.Join(perGroup["a"], ","), "a1,a2,a3,a4"; got != want {
		t.Errorf("group a delivered %s, want %s", got, want)
	}
	if got, want := strings.Join(perGroup["b"], ","), "b1,b2,b3"; got != want {
		t.Errorf("group b delivered %s (the duplicate must not be there), want %s", got, want)
	}
	if counts["a1"] != "2" || counts["a2"] != "1" {
		t.Errorf("receive counts a1=%s a2=%s, want 2 (received before the stop) and 1", counts["a1"], counts["a2"])
	}

	var stdBodies []string
	for _, m := range drain(t, api, std) {
		stdBodies = append(stdBodies, m.body+"#"+m.receiveCount)
	}
	if got, want := strings.Join(stdBodies, ","), "s1#2,s2#1,s3#1"; got != want {
		t.Errorf("standard queue delivered %s, want %s (in send order, s1 received twice)", got, want)
	}

	s.Stop()
	if emulator.Alive(after.PID) {
		t.Errorf("restarted fauxqs (pid %d) still running after Stop", after.PID)
	}
	if err := s.StartOne(ctx, emulator.SQS); err == nil {
		t.Error("StartOne after Stop succeeded, want an error")
	}
}

func TestStartIgnoresAnOldSQSStateFile(t *testing.T) {
	logDir := t.TempDir()
	old := startStack(t, logDir)
	api := sqsClient(old)
	createQueue(t, api, "left-over", nil)
	if err := old.StopOne(emulator.SQS); err != nil {
		t.Fatal(err)
	}
	old.Stop()
	state := filepath.Join(logDir, emulator.SQSStateFile)
	if b, err := os.ReadFile(state); err != nil || !strings.Contains(string(b), "left-over") {
		t.Fatalf("stopping fauxqs left no state naming the queue in %s (err %v)", state, err)
	}

	fresh := startStack(t, logDir)
	out, err := sqsClient(fresh).ListQueues(t.Context(), &sqs.ListQueuesInput{})
	if err != nil {
		t.Fatal(err)
	}
	if len(out.QueueUrls) != 0 {
		t.Errorf("a fresh stack has queues %v, want none", out.QueueUrls)
	}
}

func TestACorruptSQSStateFileFailsStartOneNamingTheFile(t *testing.T) {
	logDir := t.TempDir()
	s := startStack(t, logDir)
	if err := s.StopOne(emulator.SQS); err != nil {
		t.Fatal(err)
	}
	state := filepath.Join(logDir, emulator.SQSStateFile)
	if err := os.WriteFile(state, []byte(`{"version": 1, "queues": [{"name":`), 0o644); err != nil {
		t.Fatal(err)
	}
	err := s.StartOne(t.Context(), emulator.SQS)
	if err == nil {
		t.Fatal("StartOne succeeded on a corrupt state file; fauxqs must refuse to start empty")
	}
	t.Logf("StartOne: %v", err)
	for _, want := range []string{"fauxqs", state, "corrupt"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error does not contain %q:\n%v", want, err)
		}
	}
	if _, err := net.DialTimeout("tcp", strings.TrimPrefix(s.Get(emulator.SQS).URL, "http://"), time.Second); err == nil {
		t.Error("something answers on the SQS port after the failed start")
	}
}
