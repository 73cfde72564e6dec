package ses_test

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/mail"
	"strings"
	"sync"
	"testing"
	"time"

	sesapi "github.com/aws/aws-sdk-go-v2/service/sesv2"
	"github.com/aws/smithy-go"

	"github.com/dispatcher-dev/dispatcher/internal/dispatch"
	"github.com/dispatcher-dev/dispatcher/internal/emails"
	"github.com/dispatcher-dev/dispatcher/internal/ses"
	"github.com/dispatcher-dev/dispatcher/internal/testkit/faults"
	"github.com/dispatcher-dev/dispatcher/internal/testkit/testenv"
)

func TestMain(m *testing.M) { testenv.Main(m) }

const sendEmail = "/v2/email/outbound-emails"

// rig is one test's client: the adapter over a faults.Transport in front of
// the SES emulator, with SDK retries off.
type rig struct {
	env    *testenv.Env
	client *ses.Client
	faults *faults.Transport
	from   string
}

func newRig(t *testing.T) *rig {
	t.Helper()
	env := testenv.Get(t)
	tr := faults.New(nil)
	cfg := env.AWS.Copy()
	cfg.HTTPClient = tr
	cfg.RetryMaxAttempts = 1
	from, err := env.Stack.Eval.Param("SenderAddress")
	if err != nil {
		t.Fatal(err)
	}
	return &rig{env: env, client: ses.New(sesapi.NewFromConfig(cfg)), faults: tr, from: from}
}

func (r *rig) email(subject string) ses.Email {
	return ses.Email{
		From:             r.from,
		ConfigurationSet: r.env.Stack.Physical("EmailConfigurationSet"),
		To:               []string{"customer@example.com"},
		Subject:          subject,
		Text:             "Your order has shipped.",
		HTML:             "<p>Your order has <b>shipped</b>.</p>",
		Headers:          map[string]string{"X-Dispatcher-Event-Id": "evt-" + subject, "X-Dispatcher-Aggregate-Version": "7"},
		Tags:             map[string]string{"dispatcher-event-id": "evt-1", "dispatcher-template": "order_shipped"},
	}
}

// stored returns the emails in the SES store with the given subject.
func (r *rig) stored(t *testing.T, subject string) []testenv.SentEmail {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	all, err := r.env.SentEmails(ctx)
	if err != nil {
		t.Fatal(err)
	}
	var got []testenv.SentEmail
	for _, e := range all {
		if e.Subject == subject {
			got = append(got, e)
		}
	}
	return got
}

func unique(t *testing.T) string {
	return fmt.Sprintf("%s %d", t.Name(), time.Now().UnixNano())
}

func TestSendDelivers(t *testing.T) {
	tests := []struct {
		name  string
		edit  func(*ses.Email)
		check func(t *testing.T, e ses.Email, got testenv.SentEmail)
	}{
		{
			// SENDER_ADDRESS "Shop <no-reply@...>", as the relay's configuration gives it to SES.
			name: "a From with a display name is sent as given",
			edit: func(e *ses.Email) { e.From = `"Shop" <` + e.From + `>` },
			check: func(t *testing.T, e ses.Email, got testenv.SentEmail) {
				if got.From != e.From {
					t.Errorf("from %q, want %q", got.From, e.From)
				}
			},
		},
		{
			name: "an email reaches the store with its headers and both bodies",
			check: func(t *testing.T, e ses.Email, got testenv.SentEmail) {
				if got.From != e.From || fmt.Sprint(got.Destination.To) != fmt.Sprint(e.To) {
					t.Errorf("from %q to %v, want from %q to %v", got.From, got.Destination.To, e.From, e.To)
				}
				if testenv.Skip(t, testenv.MotoKeepsNoEmailHeaders) {
					return
				}
				for k, v := range e.Headers {
					if got.Header(k) != v {
						t.Errorf("header %s = %q, want %q", k, got.Header(k), v)
					}
				}
				if got.Body.Text != e.Text || got.Body.HTML != e.HTML {
					t.Errorf("body = %q / %q, want %q / %q", got.Body.Text, got.Body.HTML, e.Text, e.HTML)
				}
			},
		},
		{
			name: "a text-only email without configuration set, headers or tags is sent",
			edit: func(e *ses.Email) { e.HTML, e.ConfigurationSet, e.Headers, e.Tags = "", "", nil, nil },
			check: func(t *testing.T, e ses.Email, got testenv.SentEmail) {
				if testenv.Skip(t, testenv.MotoKeepsNoEmailHeaders) {
					return
				}
				if got.Body.Text != e.Text || got.Body.HTML != "" {
					t.Errorf("body = %q / %q, want %q and no HTML", got.Body.Text, got.Body.HTML, e.Text)
				}
			},
		},
		{
			name: "UTF-8 subject and body survive",
			edit: func(e *ses.Email) { e.Text = "Grüße, 注文 — ✓" },
			check: func(t *testing.T, e ses.Email, got testenv.SentEmail) {
				if testenv.Skip(t, testenv.MotoKeepsNoEmailHeaders) {
					return
				}
				if got.Body.Text != e.Text {
					t.Errorf("text = %q, want %q", got.Body.Text, e.Text)
				}
			},
		},
		{
			name: "a sender's display name and Reply-To reach the store",
			edit: func(e *ses.Email) {
				w := emails.Sender{Name: "Dispatcher Tests", Address: e.From, ReplyTo: []string{"help@example.com", "Desk <desk@example.com>"}}.Wire()
				e.From, e.ReplyTo = w.From, w.ReplyTo
			},
			check: func(t *testing.T, e ses.Email, got testenv.SentEmail) {
				a, err := mail.ParseAddress(got.From)
				if err != nil || a.Name != "Dispatcher Tests" || got.From != e.From {
					t.Errorf("from %q (%+v, %v), want %q", got.From, a, err, e.From)
				}
				if testenv.Skip(t, testenv.MotoKeepsNoReplyTo) {
					return
				}
				if fmt.Sprint(got.ReplyTo) != fmt.Sprint(e.ReplyTo) {
					t.Errorf("reply-to %q, want %q", got.ReplyTo, e.ReplyTo)
				}
			},
		},
		{
			name: "a display name that is not ASCII goes as an encoded word and reads back",
			edit: func(e *ses.Email) {
				e.From = emails.Sender{Name: "Bäckerei Müller ✓", Address: e.From}.Wire().From
			},
			check: func(t *testing.T, e ses.Email, got testenv.SentEmail) {
				a, err := mail.ParseAddress(got.From)
				if err != nil || a.Name != "Bäckerei Müller ✓" || !strings.HasPrefix(got.From, "=?utf-8?") {
					t.Errorf("from %q (%+v, %v), want the encoded name", got.From, a, err)
				}
			},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := newRig(t)
			e := r.email(unique(t))
			if tt.edit != nil {
				tt.edit(&e)
			}
			id, err := r.client.Send(context.Background(), e)
			if err != nil {
				t.Fatalf("Send: %v", err)
			}
			if id == "" {
				t.Error("empty message id")
			}
			got := r.stored(t, e.Subject)
			if len(got) != 1 {
				t.Fatalf("%d emails with subject %q in the store, want 1", len(got), e.Subject)
			}
			if got[0].MessageID != id {
				t.Errorf("stored message id %q, Send returned %q", got[0].MessageID, id)
			}
			tt.check(t, e, got[0])
		})
	}
}

func TestSendClassifies(t *testing.T) {
	tests := []struct {
		name       string
		fault      faults.Fault
		timeout    time.Duration
		wantKind   dispatch.Kind
		wantMsg    string
		wantStored bool // the email reached the store anyway
	}{
		{name: "MessageRejected is Permanent", fault: faults.Fault{Status: 400, Code: "MessageRejected", Message: "Email address is not verified."}, wantKind: dispatch.Permanent, wantMsg: "MessageRejected"},
		{name: "an unverified MAIL FROM domain is Permanent", fault: faults.Fault{Status: 400, Code: "MailFromDomainNotVerifiedException"}, wantKind: dispatch.Permanent, wantMsg: "MailFromDomainNotVerifiedException"},
		{name: "a missing configuration set is Permanent", fault: faults.Fault{Status: 404, Code: "NotFoundException", Message: "Configuration set does not exist."}, wantKind: dispatch.Permanent, wantMsg: "NotFoundException"},
		{name: "an invalid address is Permanent", fault: faults.Fault{Status: 400, Code: "BadRequestException", Message: "Missing final '@domain'"}, wantKind: dispatch.Permanent, wantMsg: "BadRequestException"},
		{name: "an unknown 4xx is Permanent", fault: faults.Fault{Status: 400, Code: "SomethingNew"}, wantKind: dispatch.Permanent, wantMsg: "SomethingNew"},
		{name: "the sending rate is Transient", fault: faults.Fault{Status: 429, Code: "TooManyRequestsException", Message: "Maximum sending rate exceeded."}, wantKind: dispatch.Transient, wantMsg: "TooManyRequestsException"},
		{name: "a limit is Transient", fault: faults.Fault{Status: 400, Code: "LimitExceededException"}, wantKind: dispatch.Transient, wantMsg: "LimitExceededException"},
		{name: "the daily quota is Transient and says so", fault: faults.Fault{Status: 400, Code: "LimitExceededException", Message: "Daily message quota exceeded."}, wantKind: dispatch.Transient, wantMsg: "LimitExceededException (daily quota)"},
		{name: "v1-style throttling is Transient", fault: faults.Fault{Status: 400, Code: "ThrottlingException", Message: "Maximum sending rate exceeded."}, wantKind: dispatch.Transient, wantMsg: "ThrottlingException"},
		{name: "a 500 is Transient", fault: faults.Fault{Status: 500, Code: "InternalServiceErrorException"}, wantKind: dispatch.Transient, wantMsg: "InternalServiceErrorException"},
		{name: "an unknown 503 is Transient", fault: faults.Fault{Status: 503}, wantKind: dispatch.Transient, wantMsg: "InternalFailure"},
		{name: "paused sending is account-wide", fault: faults.Fault{Status: 400, Code: "SendingPausedException"}, wantKind: dispatch.AccountWide, wantMsg: "SendingPausedException"},
		{name: "a suspended account is account-wide", fault: faults.Fault{Status: 400, Code: "AccountSuspendedException"}, wantKind: dispatch.AccountWide, wantMsg: "AccountSuspendedException"},
		{name: "a timeout is Transient", fault: faults.Fault{Delay: time.Minute}, timeout: 50 * time.Millisecond, wantKind: dispatch.Transient, wantMsg: "Timeout"},
		{name: "a lost response is Transient though the email went out", fault: faults.Fault{AfterApply: true}, wantKind: dispatch.Transient, wantMsg: "Network", wantStored: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := newRig(t)
			fault := tt.fault
			fault.Match = faults.Path(sendEmail)
			r.faults.Add(fault)
			ctx := context.Background()
			if tt.timeout > 0 {
				var cancel context.CancelFunc
				ctx, cancel = context.WithTimeout(ctx, tt.timeout)
				defer cancel()
			}
			e := r.email(unique(t))
			id, err := r.client.Send(ctx, e)
			var de *dispatch.Error
			if !errors.As(err, &de) {
				t.Fatalf("err = %v (id %q), want a *dispatch.Error", err, id)
			}
			if de.Kind != tt.wantKind || de.Msg != tt.wantMsg || de.Op != "ses.Send" {
				t.Errorf("got %s / %v / %q, want ses.Send / %v / %q (%v)", de.Op, de.Kind, de.Msg, tt.wantKind, tt.wantMsg, err)
			}
			var ae smithy.APIError
			if tt.fault.Code != "" && (!errors.As(err, &ae) || ae.ErrorCode() != tt.fault.Code) {
				t.Errorf("the cause does not carry the SDK's API error %s: %v", tt.fault.Code, err)
			}
			if r.faults.Injected() != 1 {
				t.Errorf("Injected() = %d, want 1", r.faults.Injected())
			}
			if stored := len(r.stored(t, e.Subject)); stored > 0 != tt.wantStored {
				t.Errorf("%d emails in the store, want stored = %v", stored, tt.wantStored)
			}
		})
	}
}

// SES messages may quote addresses; the error's text ends up in logs and
// DLQ messages, which must hold none.
func TestErrorsNeverShowAddresses(t *testing.T) {
	r := newRig(t)
	r.faults.Add(faults.Fault{Match: faults.Path(sendEmail), Status: 400, Code: "MessageRejected",
		Message: "Email address is not verified. The following identities failed the check in region EU-WEST-1: customer@example.com, <no-reply@dispatcher.example.com>"})
	_, err := r.client.Send(context.Background(), r.email(unique(t)))
	if err == nil {
		t.Fatal("Send succeeded through an injected rejection")
	}
	if text := err.Error(); strings.Contains(text, "@") || !strings.Contains(text, "MessageRejected") {
		t.Errorf("error text %q shows an address or lost its code", text)
	}
	var ae smithy.APIError
	if !errors.As(err, &ae) || !strings.Contains(ae.ErrorMessage(), "customer@example.com") {
		t.Errorf("the SDK error itself should stay intact for errors.As")
	}
}

// requests keeps the bodies of the SendEmail requests that reach the
// emulator, which stores neither tags nor configuration sets.
type requests struct {
	next   http.RoundTripper
	mu     sync.Mutex
	bodies [][]byte
}

func (q *requests) RoundTrip(r *http.Request) (*http.Response, error) {
	if faults.Path(sendEmail)(r) && r.Body != nil {
		b, err := io.ReadAll(r.Body)
		r.Body.Close()
		if err != nil {
			return nil, err
		}
		r.Body = io.NopCloser(bytes.NewReader(b))
		q.mu.Lock()
		q.bodies = append(q.bodies, b)
		q.mu.Unlock()
	}
	return q.next.RoundTrip(r)
}

func TestSendPassesTagsAndConfigurationSet(t *testing.T) {
	type tag struct{ Name, Value string }
	tests := []struct {
		name   string
		tags   map[string]string
		want   []tag
		config string
	}{
		{name: "tags go sorted by name", tags: map[string]string{"b": "2", "a": "1"}, want: []tag{{"a", "1"}, {"b", "2"}}, config: "dispatcher-test-emails"},
		{name: "characters SES refuses in tags become underscores", tags: map[string]string{"event id": "evt:1/é"}, want: []tag{{"event_id", "evt_1___"}}},
		{name: "an overlong tag value is cut to 256", tags: map[string]string{"t": strings.Repeat("v", 300)}, want: []tag{{"t", strings.Repeat("v", 256)}}},
		{name: "no tags send none", tags: nil, want: nil},
		{
			// The longest values Dispatcher produces reach SES unchanged: the
			// feedback finds its outbox item through them.
			name: "the dispatcher tags at their longest pass unchanged",
			tags: map[string]string{
				dispatch.TagEventID: "0192d5a0-7b3c-7def-8abc-0123456789ab", dispatch.TagAggregateID: strings.Repeat("A-z_9", 13)[:dispatch.MaxAggregateIDLen],
				dispatch.TagVersion: "9223372036854775807", dispatch.TagTemplate: strings.Repeat("a-9", 22)[:64],
			},
			want: []tag{
				{dispatch.TagAggregateID, strings.Repeat("A-z_9", 13)[:dispatch.MaxAggregateIDLen]}, {dispatch.TagEventID, "0192d5a0-7b3c-7def-8abc-0123456789ab"},
				{dispatch.TagTemplate, strings.Repeat("a-9", 22)[:64]}, {dispatch.TagVersion, "9223372036854775807"},
			},
		},
		{name: "a tag value of 256 characters is kept whole", tags: map[string]string{"t": strings.Repeat("v", 256)}, want: []tag{{"t", strings.Repeat("v", 256)}}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			env := testenv.Get(t)
			rec := &requests{next: http.DefaultTransport}
			cfg := env.AWS.Copy()
			cfg.HTTPClient = faults.New(rec)
			cfg.RetryMaxAttempts = 1
			r := newRig(t)
			client := ses.New(sesapi.NewFromConfig(cfg))
			e := r.email(unique(t))
			e.Tags, e.ConfigurationSet = tt.tags, tt.config
			if _, err := client.Send(context.Background(), e); err != nil {
				t.Fatalf("Send: %v", err)
			}
			if len(rec.bodies) != 1 {
				t.Fatalf("%d SendEmail requests, want 1", len(rec.bodies))
			}
			var got struct {
				ConfigurationSetName string
				EmailTags            []tag
			}
			if err := json.Unmarshal(rec.bodies[0], &got); err != nil {
				t.Fatal(err)
			}
			if fmt.Sprint(got.EmailTags) != fmt.Sprint(tt.want) {
				t.Errorf("EmailTags = %v, want %v", got.EmailTags, tt.want)
			}
			if got.ConfigurationSetName != tt.config {
				t.Errorf("ConfigurationSetName = %q, want %q", got.ConfigurationSetName, tt.config)
			}
		})
	}
}
