package sqs_test

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	sqsapi "github.com/aws/aws-sdk-go-v2/service/sqs"
	"github.com/aws/aws-sdk-go-v2/service/sqs/types"

	"github.com/dispatcher-dev/dispatcher/internal/dispatch"
	"github.com/dispatcher-dev/dispatcher/internal/sqs"
	"github.com/dispatcher-dev/dispatcher/internal/sqs/signed"
	"github.com/dispatcher-dev/dispatcher/internal/sqs/sqsspec"
	"github.com/dispatcher-dev/dispatcher/internal/testkit/faults"
	"github.com/dispatcher-dev/dispatcher/internal/testkit/testenv"
)

func TestMain(m *testing.M) { testenv.Main(m) }

// batches records, for every SendMessageBatch that reaches the emulator,
// its entries' bodies.
type batches struct {
	next http.RoundTripper
	mu   sync.Mutex
	sent [][]string
}

func (b *batches) RoundTrip(r *http.Request) (*http.Response, error) {
	if faults.Target("SendMessageBatch")(r) && r.Body != nil {
		body, err := io.ReadAll(r.Body)
		r.Body.Close()
		if err != nil {
			return nil, err
		}
		r.Body = io.NopCloser(bytes.NewReader(body))
		var in struct {
			Entries []struct{ MessageBody string }
		}
		if err := json.Unmarshal(body, &in); err != nil {
			return nil, fmt.Errorf("recorder: %w", err)
		}
		var bodies []string
		for _, e := range in.Entries {
			bodies = append(bodies, e.MessageBody)
		}
		b.mu.Lock()
		b.sent = append(b.sent, bodies)
		b.mu.Unlock()
	}
	return b.next.RoundTrip(r)
}

func (b *batches) sizes() []int {
	b.mu.Lock()
	defer b.mu.Unlock()
	var n []int
	for _, s := range b.sent {
		n = append(n, len(s))
	}
	return n
}

// rig is one test's client: the adapter over a faults.Transport over a
// recorder over the emulators, with SDK retries off.
type rig struct {
	env    *testenv.Env
	client *sqs.Client
	faults *faults.Transport
	sent   *batches
	plain  *sqsapi.Client // straight to the emulator, for checking
	// signed is the command function's one-request SendMessage, over the
	// same transport: it must send and fail exactly as client.Send does.
	signed *signed.Sender
}

func newRig(t *testing.T) *rig {
	env := testenv.Get(t)
	rec := &batches{next: http.DefaultTransport}
	tr := faults.New(rec)
	cfg := env.AWS.Copy()
	cfg.HTTPClient = tr
	cfg.RetryMaxAttempts = 1
	return &rig{env: env, client: sqs.New(sqsapi.NewFromConfig(cfg)), faults: tr, sent: rec, plain: sqsapi.NewFromConfig(env.AWS), signed: signed.New(cfg)}
}

// run makes names unique to one test run: FIFO dedup ids and groups must
// not collide with another test's on the shared queue.
func run(t *testing.T) string {
	return fmt.Sprintf("%s-%d", strings.NewReplacer("/", "-", " ", "_").Replace(t.Name()), time.Now().UnixNano())
}

// receive reads (and deletes) messages from queueURL until it has seen n
// whose body starts with prefix, or gives up after a few seconds. It returns
// them in the order received.
func (r *rig) receive(t *testing.T, queueURL, prefix string, n int) []types.Message {
	t.Helper()
	// The deadline is checked between calls, never by cancelling one: fauxqs
	// hands a message that arrives during a long poll to that poll even if
	// its client has gone, and the message then stays invisible.
	deadline := time.Now().Add(10 * time.Second)
	ctx := context.Background()
	var got []types.Message
	for len(got) < n && time.Now().Before(deadline) {
		out, err := r.plain.ReceiveMessage(ctx, &sqsapi.ReceiveMessageInput{
			QueueUrl: aws.String(queueURL), MaxNumberOfMessages: 10, WaitTimeSeconds: 1,
			MessageAttributeNames: []string{"All"},
		})
		if err != nil {
			t.Fatalf("receive: %v", err)
		}
		for _, m := range out.Messages {
			if _, err := r.plain.DeleteMessage(ctx, &sqsapi.DeleteMessageInput{QueueUrl: aws.String(queueURL), ReceiptHandle: m.ReceiptHandle}); err != nil {
				t.Fatalf("delete: %v", err)
			}
			if strings.HasPrefix(aws.ToString(m.Body), prefix) {
				got = append(got, m)
			}
		}
	}
	return got
}

func bodies(ms []types.Message) []string {
	var b []string
	for _, m := range ms {
		b = append(b, aws.ToString(m.Body))
	}
	return b
}

func kinds(errs []error) []string {
	var k []string
	for _, err := range errs {
		if err == nil {
			k = append(k, "sent")
			continue
		}
		k = append(k, dispatch.KindOf(err).String())
	}
	return k
}

func TestSendBatchDelivers(t *testing.T) {
	big := strings.Repeat("x", 100_000)
	tests := []struct {
		name      string
		queue     string // logical id
		msgs      func(id string) []sqs.Message
		wantKinds func(n int) []string
		wantCalls []int // entries per SendMessageBatch call
		wantBody  func(id string) []string
		differs   *testenv.Difference // a backend that cannot show this case
	}{
		{
			name:  "25 messages to the FIFO queue arrive in order in calls of at most 10",
			queue: "EventsQueue",
			msgs: func(id string) []sqs.Message {
				var ms []sqs.Message
				for i := range 25 {
					ms = append(ms, sqs.Message{Body: fmt.Sprintf("%s-%02d", id, i), GroupID: id, DedupID: fmt.Sprintf("%s-%02d", id, i)})
				}
				return ms
			},
			wantCalls: []int{10, 10, 5},
			wantBody: func(id string) []string {
				var b []string
				for i := range 25 {
					b = append(b, fmt.Sprintf("%s-%02d", id, i))
				}
				return b
			},
		},
		{
			name:  "batches stay within MaxMessageBytes in total",
			queue: "DeadLetterQueue",
			msgs: func(id string) []sqs.Message {
				var ms []sqs.Message
				for i := range 5 {
					ms = append(ms, sqs.Message{Body: fmt.Sprintf("%s-%d-%s", id, i, big)})
				}
				return ms
			},
			wantCalls: []int{2, 2, 1},
		},
		{
			name:  "a message over the limit is Permanent and the others are sent",
			queue: "DeadLetterQueue",
			msgs: func(id string) []sqs.Message {
				return []sqs.Message{
					{Body: id + "-0"},
					{Body: id + "-1-" + strings.Repeat("x", sqs.MaxMessageBytes)},
					{Body: id + "-2"},
				}
			},
			wantKinds: func(int) []string { return []string{"sent", "permanent", "sent"} },
			wantCalls: []int{2},
			wantBody:  func(id string) []string { return []string{id + "-0", id + "-2"} },
		},
		{
			name:  "attributes count toward the limit",
			queue: "DeadLetterQueue",
			msgs: func(id string) []sqs.Message {
				return []sqs.Message{
					{Body: id + "-0", Attributes: map[string]string{"pad": strings.Repeat("x", sqs.MaxMessageBytes)}},
					{Body: id + "-1"},
				}
			},
			wantKinds: func(int) []string { return []string{"permanent", "sent"} },
			wantCalls: []int{1},
			wantBody:  func(id string) []string { return []string{id + "-1"} },
		},
		{
			name:  "on a FIFO queue a failed message holds back the rest of its group only",
			queue: "EventsQueue",
			msgs: func(id string) []sqs.Message {
				return []sqs.Message{
					{Body: id + "-a0", GroupID: id + "-a", DedupID: id + "-a0"},
					{Body: id + "-a1-" + strings.Repeat("x", sqs.MaxMessageBytes), GroupID: id + "-a", DedupID: id + "-a1"},
					{Body: id + "-a2", GroupID: id + "-a", DedupID: id + "-a2"},
					{Body: id + "-b0", GroupID: id + "-b", DedupID: id + "-b0"},
				}
			},
			wantKinds: func(int) []string { return []string{"sent", "permanent", "transient", "sent"} },
			wantCalls: []int{2},
			wantBody:  func(id string) []string { return []string{id + "-a0", id + "-b0"} },
		},
		{
			name:  "a message SQS refuses is Permanent on its own",
			queue: "DeadLetterQueue",
			msgs: func(id string) []sqs.Message {
				return []sqs.Message{{Body: id + "-0"}, {Body: id + "-1-\x01"}, {Body: id + "-2"}}
			},
			wantKinds: func(int) []string { return []string{"sent", "permanent", "sent"} },
			wantCalls: []int{3},
			wantBody:  func(id string) []string { return []string{id + "-0", id + "-2"} },
			differs:   &testenv.MotoAcceptsAnyMessageCharacter,
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if tt.differs != nil && testenv.Skip(t, *tt.differs) {
				t.SkipNow()
			}
			r := newRig(t)
			id := run(t)
			url := r.env.Stack.Physical(tt.queue)
			msgs := tt.msgs(id)
			errs := r.client.SendBatch(context.Background(), url, msgs)
			if len(errs) != len(msgs) {
				t.Fatalf("got %d errors for %d messages", len(errs), len(msgs))
			}
			want := make([]string, len(msgs))
			for i := range want {
				want[i] = "sent"
			}
			if tt.wantKinds != nil {
				want = tt.wantKinds(len(msgs))
			}
			if got := kinds(errs); fmt.Sprint(got) != fmt.Sprint(want) {
				t.Errorf("outcomes = %v, want %v (errors: %v)", got, want, errs)
			}
			if got := r.sent.sizes(); fmt.Sprint(got) != fmt.Sprint(tt.wantCalls) {
				t.Errorf("entries per SendMessageBatch = %v, want %v", got, tt.wantCalls)
			}
			wantBodies := tt.wantBody
			if wantBodies == nil {
				wantBodies = func(string) []string {
					var b []string
					for _, m := range msgs {
						b = append(b, m.Body)
					}
					return b
				}
			}
			wb := wantBodies(id)
			got := bodies(r.receive(t, url, id, len(wb)))
			if !sqs.IsFIFO(url) { // a standard queue promises no order
				slices.Sort(got)
				slices.Sort(wb)
			}
			if strings.Join(got, "\n") != strings.Join(wb, "\n") {
				t.Errorf("received %d messages %.200q, want %d %.200q", len(got), got, len(wb), wb)
			}
		})
	}
}

// Whole-call failures of SendMessageBatch, injected in front of the
// emulator in the shape SQS sends them, fail every entry with the kind of
// the code.
func TestSendBatchClassifiesWholeCallFailures(t *testing.T) {
	tests := []struct {
		name     string
		fault    faults.Fault
		wantKind dispatch.Kind
		wantMsg  string
	}{
		{name: "500 InternalError is Transient", fault: faults.Fault{Status: 500, Code: "InternalError"}, wantKind: dispatch.Transient, wantMsg: "InternalError"},
		{name: "503 ServiceUnavailable is Transient", fault: faults.Fault{Status: 503, Code: "ServiceUnavailable"}, wantKind: dispatch.Transient, wantMsg: "ServiceUnavailable"},
		{name: "RequestThrottled is Transient", fault: faults.Fault{Status: 403, Code: "RequestThrottled"}, wantKind: dispatch.Transient, wantMsg: "RequestThrottled"},
		{name: "ThrottlingException is Transient", fault: faults.Fault{Status: 400, Code: "ThrottlingException"}, wantKind: dispatch.Transient, wantMsg: "ThrottlingException"},
		{name: "KMS throttling is Transient", fault: faults.Fault{Status: 400, Code: "KmsThrottled", QueryCode: "KMS.ThrottlingException"}, wantKind: dispatch.Transient, wantMsg: "KMS.ThrottlingException"},
		{name: "an unknown 5xx is Transient", fault: faults.Fault{Status: 502, Code: "BadGateway"}, wantKind: dispatch.Transient, wantMsg: "BadGateway"},
		{name: "InvalidParameterValue is Permanent", fault: faults.Fault{Status: 400, Code: "InvalidParameterValue"}, wantKind: dispatch.Permanent, wantMsg: "InvalidParameterValue"},
		{name: "InvalidMessageContents is Permanent", fault: faults.Fault{Status: 400, Code: "InvalidMessageContents"}, wantKind: dispatch.Permanent, wantMsg: "InvalidMessageContents"},
		{name: "an unknown 4xx is Permanent", fault: faults.Fault{Status: 400, Code: "SomethingNew"}, wantKind: dispatch.Permanent, wantMsg: "SomethingNew"},
		{name: "a missing queue stops everything", fault: faults.Fault{Status: 400, Code: "QueueDoesNotExist", QueryCode: "AWS.SimpleQueueService.NonExistentQueue"}, wantKind: dispatch.AccountWide, wantMsg: "AWS.SimpleQueueService.NonExistentQueue"},
		{name: "a disabled KMS key stops everything", fault: faults.Fault{Status: 400, Code: "KmsDisabled", QueryCode: "KMS.DisabledException"}, wantKind: dispatch.AccountWide, wantMsg: "KMS.DisabledException"},
		{name: "denied KMS access stops everything", fault: faults.Fault{Status: 400, Code: "KmsAccessDenied", QueryCode: "KMS.AccessDeniedException"}, wantKind: dispatch.AccountWide, wantMsg: "KMS.AccessDeniedException"},
		{name: "a batch over the limit is this adapter's bug", fault: faults.Fault{Status: 400, Code: "BatchRequestTooLong", QueryCode: "AWS.SimpleQueueService.BatchRequestTooLong"}, wantKind: dispatch.Internal, wantMsg: "AWS.SimpleQueueService.BatchRequestTooLong"},
		{name: "a response lost after the write is Transient", fault: faults.Fault{AfterApply: true}, wantKind: dispatch.Transient, wantMsg: "Network"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := newRig(t)
			id := run(t)
			fault := tt.fault
			fault.Match = faults.Target("SendMessageBatch")
			r.faults.Add(fault)
			var msgs []sqs.Message
			for i := range 12 {
				msgs = append(msgs, sqs.Message{Body: fmt.Sprintf("%s-%02d", id, i)})
			}
			url := r.env.Stack.Physical("DeadLetterQueue")
			errs := r.client.SendBatch(context.Background(), url, msgs)
			for i, err := range errs {
				var de *dispatch.Error
				if !errors.As(err, &de) {
					t.Fatalf("message %d: err = %v, want a *dispatch.Error", i, err)
				}
				if de.Kind != tt.wantKind {
					t.Errorf("message %d: kind = %v, want %v (%v)", i, de.Kind, tt.wantKind, err)
				}
				if de.Msg != tt.wantMsg {
					t.Errorf("message %d: Msg = %q, want %q", i, de.Msg, tt.wantMsg)
				}
				if de.Op != "sqs.SendBatch" {
					t.Errorf("message %d: Op = %q", i, de.Op)
				}
			}
			if n := r.faults.Count(faults.Target("SendMessageBatch")); n != 2 {
				t.Errorf("%d SendMessageBatch calls, want 2", n)
			}
			if tt.fault.AfterApply {
				if got := r.sent.sizes(); fmt.Sprint(got) != "[10 2]" {
					t.Errorf("entries per call = %v, want [10 2]", got)
				}
				if got := r.receive(t, url, id, len(msgs)); len(got) != len(msgs) {
					t.Errorf("received %d messages, want all %d: the writes applied", len(got), len(msgs))
				}
			}
		})
	}
}

func TestStandardQueueTakesAttributesAndIgnoresFIFOFields(t *testing.T) {
	r := newRig(t)
	id := run(t)
	url := r.env.Stack.Physical("DeadLetterQueue")
	tests := []struct {
		name string
		send func(m sqs.Message) error
	}{
		{name: "SendBatch", send: func(m sqs.Message) error { return r.client.SendBatch(context.Background(), url, []sqs.Message{m})[0] }},
		{name: "Send", send: func(m sqs.Message) error { return r.client.Send(context.Background(), url, m) }},
		{name: "signed Send", send: func(m sqs.Message) error { return r.signed.Send(context.Background(), url, m) }},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			body := id + "-" + tt.name
			m := sqs.Message{Body: body, GroupID: "ignored", DedupID: "ignored",
				Attributes: map[string]string{"dispatcher-event-id": body, "type": "order.placed"}}
			if err := tt.send(m); err != nil {
				t.Fatalf("send: %v", err)
			}
			got := r.receive(t, url, body, 1)
			if len(got) != 1 {
				t.Fatalf("received %d messages, want 1", len(got))
			}
			attrs := map[string]string{}
			for k, v := range got[0].MessageAttributes {
				if aws.ToString(v.DataType) != "String" {
					t.Errorf("attribute %s has type %q, want String", k, aws.ToString(v.DataType))
				}
				attrs[k] = aws.ToString(v.StringValue)
			}
			if fmt.Sprint(attrs) != fmt.Sprint(m.Attributes) {
				t.Errorf("attributes = %v, want %v", attrs, m.Attributes)
			}
		})
	}
}

// overLimit stands for a body one byte over the sender's limit.
const overLimit = "<over the limit>"

// TestSend runs every case through the adapter's Send (the SDK's client) and
// through the command function's signed request (internal/sqs/signed): the
// SDK is the reference the signed request must match, kind and code.
func TestSend(t *testing.T) {
	tests := []struct {
		name     string
		queue    string
		body     string
		fault    *faults.Fault
		timeout  time.Duration
		wantKind string // "sent" or a kind
		wantMsg  string
		wantCall bool // whether SendMessage reached the transport
		differs  *testenv.Difference
		missing  bool // send to a queue that does not exist
	}{
		{name: "a FIFO message is sent", queue: "EventsQueue", body: "small", wantKind: "sent", wantCall: true},
		// The body is one byte over the sender's limit: the adapter's
		// MaxMessageBytes, or for the signed request the most SQS takes.
		{name: "a message over the limit is Permanent and never sent", queue: "EventsQueue", body: overLimit, wantKind: "permanent", wantMsg: "MessageTooLong"},
		{name: "a character beyond U+FFFF is sent, as SQS takes it", queue: "EventsQueue", body: "json \"\U0001F600\"", wantKind: "sent", wantCall: true},
		{name: "a message SQS refuses is Permanent even if valid JSON", queue: "DeadLetterQueue", body: "json \"\uFFFE\"", wantKind: "permanent", wantMsg: "AWS.SimpleQueueService.InvalidMessageContents", wantCall: true, differs: &testenv.MotoAcceptsAnyMessageCharacter},
		{name: "a message SQS refuses is Permanent", queue: "DeadLetterQueue", body: "bad\x01", wantKind: "permanent", wantMsg: "AWS.SimpleQueueService.InvalidMessageContents", wantCall: true, differs: &testenv.MotoAcceptsAnyMessageCharacter},
		{name: "throttling is Transient", queue: "EventsQueue", body: "small", fault: &faults.Fault{Status: 403, Code: "RequestThrottled"}, wantKind: "transient", wantMsg: "RequestThrottled", wantCall: true},
		{name: "a 500 is Transient", queue: "EventsQueue", body: "small", fault: &faults.Fault{Status: 500, Code: "InternalError"}, wantKind: "transient", wantMsg: "InternalError", wantCall: true},
		{name: "a timeout is Transient", queue: "EventsQueue", body: "small", fault: &faults.Fault{Delay: time.Minute}, timeout: 50 * time.Millisecond, wantKind: "transient", wantMsg: "Timeout", wantCall: true},
		{name: "a lost response is Transient", queue: "EventsQueue", body: "small", fault: &faults.Fault{AfterApply: true}, wantKind: "transient", wantMsg: "Network", wantCall: true},
		{name: "a missing queue stops everything", queue: "EventsQueue", missing: true, body: "small", wantKind: "account-wide", wantMsg: "AWS.SimpleQueueService.NonExistentQueue", wantCall: true},
	}
	senders := map[string]func(r *rig) func(context.Context, string, sqs.Message) error{
		"sdk":    func(r *rig) func(context.Context, string, sqs.Message) error { return r.client.Send },
		"signed": func(r *rig) func(context.Context, string, sqs.Message) error { return r.signed.Send },
	}
	limits := map[string]int{"sdk": sqs.MaxMessageBytes, "signed": sqsspec.MaxQueueMessageBytes}
	for _, sender := range []string{"sdk", "signed"} {
		for _, tt := range tests {
			t.Run(sender+"/"+tt.name, func(t *testing.T) {
				if tt.differs != nil && testenv.Skip(t, *tt.differs) {
					t.SkipNow()
				}
				r := newRig(t)
				id := run(t)
				if tt.fault != nil {
					f := *tt.fault
					f.Match = faults.Target("SendMessage")
					r.faults.Add(f)
				}
				ctx := context.Background()
				if tt.timeout > 0 {
					var cancel context.CancelFunc
					ctx, cancel = context.WithTimeout(ctx, tt.timeout)
					defer cancel()
				}
				url := r.env.Stack.Physical(tt.queue)
				if tt.missing {
					url = strings.TrimSuffix(url, ".fifo") + "-missing.fifo"
				}
				body := id + "-" + tt.body
				if tt.body == overLimit {
					body = strings.Repeat("x", limits[sender]+1)
				}
				err := senders[sender](r)(ctx, url, sqs.Message{Body: body, GroupID: id, DedupID: id})
				if got := kinds([]error{err})[0]; got != tt.wantKind {
					t.Fatalf("outcome = %s, want %s (%v)", got, tt.wantKind, err)
				}
				var de *dispatch.Error
				if err != nil && (!errors.As(err, &de) || de.Msg != tt.wantMsg || de.Op != "sqs.Send") {
					t.Errorf("err = %#v, want Op sqs.Send, Msg %q", err, tt.wantMsg)
				}
				if called := r.faults.Count(faults.Target("SendMessage")) > 0; called != tt.wantCall {
					t.Errorf("SendMessage called = %v, want %v", called, tt.wantCall)
				}
				if tt.wantKind == "sent" || tt.fault != nil && tt.fault.AfterApply {
					if got := r.receive(t, url, id, 1); len(got) != 1 {
						t.Errorf("received %d messages, want 1", len(got))
					}
				}
			})
		}
	}
}

func TestIsFIFO(t *testing.T) {
	tests := []struct {
		name string
		url  string
		want bool
	}{
		{name: "a .fifo queue is FIFO", url: "https://sqs.eu-west-1.amazonaws.com/123456789012/events.fifo", want: true},
		{name: "a standard queue is not", url: "https://sqs.eu-west-1.amazonaws.com/123456789012/events", want: false},
		{name: "fifo inside the name does not count", url: "http://localhost:9324/000000000000/fifo-events", want: false},
		{name: "an empty URL is not", url: "", want: false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := sqs.IsFIFO(tt.url); got != tt.want {
				t.Errorf("IsFIFO(%q) = %v, want %v", tt.url, got, tt.want)
			}
		})
	}
}
