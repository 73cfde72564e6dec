package feedback_test

import (
	"encoding/json"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/dispatcher-dev/dispatcher/internal/dispatch"
	"github.com/dispatcher-dev/dispatcher/internal/feedback"
)

// The dispatcher tags testdata's records carry (testdata/README.md).
const (
	eventID   = "0192d5a0-7b3c-7def-8abc-0123456789ab"
	aggregate = "order-42"
	version   = 3
	template  = "order-confirmation"
)

func sample(t *testing.T, name string) []byte {
	t.Helper()
	b, err := os.ReadFile(filepath.Join("testdata", name))
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func at(s string) time.Time {
	v, err := time.Parse(time.RFC3339Nano, s)
	if err != nil {
		panic(err)
	}
	return v
}

func TestParseSESSamples(t *testing.T) {
	tests := []struct {
		file       string
		outcome    feedback.Outcome
		diagnostic string
		at         time.Time
	}{
		{"delivery.json", feedback.Delivered, "250 2.0.0 OK: queued as 4Bq9mT2xZ", at("2026-11-30T09:14:05.690Z")},
		{"delivery-delay.json", feedback.Delayed, "TransientCommunicationFailure: smtp; 421 4.4.1 Connection timed out to mx.example.org", at("2026-11-30T10:11:15.733Z")},
		{"reject.json", feedback.Rejected, "Bad content", at("2026-11-30T09:12:44.508Z")},
		{"rendering-failure.json", feedback.RenderingFailed, "Attribute 'orderNumber' is not present in the rendering data.", at("2026-11-30T09:25:00.300Z")},
		{"bounce.json", feedback.BouncedPermanent, "Permanent/General: smtp; 550 5.1.1 The email account that you tried to reach does not exist", at("2026-11-30T09:21:37.842Z")},
		{"complaint.json", feedback.Complained, "abuse", at("2026-11-30T09:21:37.842Z")},
		{"eventbridge-complaint.json", feedback.Complained, "abuse", at("2026-11-30T09:21:37.842Z")},
	}
	for _, tt := range tests {
		t.Run(tt.file, func(t *testing.T) {
			b := sample(t, tt.file)
			got, err := feedback.Parse(b)
			if err != nil {
				t.Fatalf("Parse: %v", err)
			}
			want := feedback.Feedback{EventID: eventID, AggregateID: aggregate, Version: version, Template: template, Outcome: tt.outcome, Diagnostic: tt.diagnostic, At: tt.at}
			if got != want {
				t.Errorf("got  %+v\nwant %+v", got, want)
			}
			if strings.Contains(got.Diagnostic, "@") {
				t.Errorf("diagnostic %q holds an address", got.Diagnostic)
			}
		})
	}
}

// edit parses testdata's file, applies fn to it, and returns it as JSON.
func edit(t *testing.T, file string, fn func(m map[string]any)) []byte {
	t.Helper()
	var m map[string]any
	if err := json.Unmarshal(sample(t, file), &m); err != nil {
		t.Fatal(err)
	}
	fn(m)
	b, err := json.Marshal(m)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func obj(m map[string]any, path ...string) map[string]any {
	for _, p := range path {
		m = m[p].(map[string]any)
	}
	return m
}

func TestParseBounceTypesAndDiagnostics(t *testing.T) {
	tests := []struct {
		name, bounceType, code string
		outcome                feedback.Outcome
		diagnostic             string
	}{
		{"a transient bounce", "Transient", "smtp; 452 4.2.2 mailbox full", feedback.BouncedTransient, "Transient/General: smtp; 452 4.2.2 mailbox full"},
		{"an undetermined bounce ranks with the transient ones", "Undetermined", "", feedback.BouncedTransient, "Undetermined/General"},
		{"an address in the diagnostic code is never kept", "Permanent", "smtp; 550 5.1.1 <ada@example.com>: Recipient address rejected", feedback.BouncedPermanent, "Permanent/General: smtp; 550 5.1.1 <address> Recipient address rejected"},
		{"a diagnostic of exactly the limit is kept whole", "Permanent", strings.Repeat("x", feedback.MaxDiagnosticBytes-len("Permanent/General: ")), feedback.BouncedPermanent, "Permanent/General: " + strings.Repeat("x", feedback.MaxDiagnosticBytes-len("Permanent/General: "))},
		{"a diagnostic one over the limit is cut to it", "Permanent", strings.Repeat("x", feedback.MaxDiagnosticBytes-len("Permanent/General: ")+1), feedback.BouncedPermanent, "Permanent/General: " + strings.Repeat("x", feedback.MaxDiagnosticBytes-len("Permanent/General: "))},
		{"a cut never splits a character", "Permanent", strings.Repeat("x", feedback.MaxDiagnosticBytes-len("Permanent/General: ")-1) + "é", feedback.BouncedPermanent, "Permanent/General: " + strings.Repeat("x", feedback.MaxDiagnosticBytes-len("Permanent/General: ")-1)},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			b := edit(t, "bounce.json", func(m map[string]any) {
				bo := obj(m, "bounce")
				bo["bounceType"] = tt.bounceType
				bo["bouncedRecipients"].([]any)[0].(map[string]any)["diagnosticCode"] = tt.code
			})
			got, err := feedback.Parse(b)
			if err != nil {
				t.Fatalf("Parse: %v", err)
			}
			if got.Outcome != tt.outcome || got.Diagnostic != tt.diagnostic {
				t.Errorf("got %v %q, want %v %q", got.Outcome, got.Diagnostic, tt.outcome, tt.diagnostic)
			}
			if len(got.Diagnostic) > feedback.MaxDiagnosticBytes {
				t.Errorf("diagnostic of %d bytes, limit %d", len(got.Diagnostic), feedback.MaxDiagnosticBytes)
			}
		})
	}
}

func TestSeverityOrder(t *testing.T) {
	order := []feedback.Outcome{feedback.Delayed, feedback.Delivered, feedback.BouncedTransient, feedback.Rejected, feedback.RenderingFailed, feedback.BouncedPermanent, feedback.Complained}
	for i := 1; i < len(order); i++ {
		if order[i-1].Severity() >= order[i].Severity() {
			t.Errorf("%v (%d) should be less severe than %v (%d)", order[i-1], order[i-1].Severity(), order[i], order[i].Severity())
		}
	}
}

func TestWorseKeepsTheMostSevere(t *testing.T) {
	parse := func(file string) feedback.Feedback {
		f, err := feedback.Parse(sample(t, file))
		if err != nil {
			t.Fatalf("%s: %v", file, err)
		}
		return f
	}
	delivered, delayed, bounced, complained := parse("delivery.json"), parse("delivery-delay.json"), parse("bounce.json"), parse("complaint.json")
	tests := []struct {
		name    string
		arrived []feedback.Feedback
		want    feedback.Feedback
	}{
		{"a delivery after a bounce keeps the bounce", []feedback.Feedback{bounced, delivered}, bounced},
		{"a bounce after a delivery is the bounce", []feedback.Feedback{delivered, bounced}, bounced},
		{"a delay arriving after the delivery keeps the delivery", []feedback.Feedback{delivered, delayed}, delivered},
		{"a delivery after a delay is the delivery", []feedback.Feedback{delayed, delivered}, delivered},
		{"a bounce after a delay is the bounce", []feedback.Feedback{delayed, bounced}, bounced},
		{"a complaint after a delivery is the complaint", []feedback.Feedback{delivered, complained}, complained},
		{"a bounce after a complaint keeps the complaint", []feedback.Feedback{complained, bounced}, complained},
		{"the same delivery twice is one delivery", []feedback.Feedback{delivered, delivered}, delivered},
		{"the same bounce twice, around a delivery, is the bounce", []feedback.Feedback{bounced, delivered, bounced}, bounced},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var got feedback.Feedback
			for _, f := range tt.arrived {
				got = feedback.Worse(got, f)
			}
			if got != tt.want {
				t.Errorf("got %v, want %v", got.Outcome, tt.want.Outcome)
			}
		})
	}
}

func TestParseUnknownEmail(t *testing.T) {
	tests := []struct {
		name string
		body []byte
	}{
		{"a record without the dispatcher tags", edit(t, "bounce.json", func(m map[string]any) {
			tags := obj(m, "mail", "tags")
			for k := range tags {
				if strings.HasPrefix(k, "dispatcher-") {
					delete(tags, k)
				}
			}
		})},
		{"a record with no tags at all", edit(t, "delivery.json", func(m map[string]any) { delete(obj(m, "mail"), "tags") })},
		{"an EventBridge event without them", edit(t, "eventbridge-complaint.json", func(m map[string]any) { delete(obj(m, "detail", "mail"), "tags") })},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := feedback.Parse(tt.body)
			if !errors.Is(err, feedback.ErrUnknownEmail) {
				t.Fatalf("err = %v, want ErrUnknownEmail", err)
			}
			if k := dispatch.KindOf(err); k == dispatch.Transient || k == dispatch.Internal {
				t.Errorf("kind %v: an unknown email must not be retried", k)
			}
		})
	}
}

func TestParseNotAnOutcome(t *testing.T) {
	b := edit(t, "delivery.json", func(m map[string]any) { m["eventType"] = "Open"; delete(m, "delivery") })
	if _, err := feedback.Parse(b); !errors.Is(err, feedback.ErrNotAnOutcome) {
		t.Fatalf("err = %v, want ErrNotAnOutcome", err)
	}
}

func TestParseMalformed(t *testing.T) {
	tag := func(name string, vals ...any) func(m map[string]any) {
		return func(m map[string]any) { obj(m, "mail", "tags")[name] = vals }
	}
	tests := []struct {
		name  string
		body  []byte
		field string
	}{
		{"not JSON", []byte(`{"eventType":`), ""},
		{"no eventType", edit(t, "bounce.json", func(m map[string]any) { delete(m, "eventType") }), "eventType"},
		{"an unknown eventType", edit(t, "bounce.json", func(m map[string]any) { m["eventType"] = "Bounced" }), "eventType"},
		{"no mail", edit(t, "bounce.json", func(m map[string]any) { delete(m, "mail") }), "mail"},
		{"a Bounce without its bounce object", edit(t, "bounce.json", func(m map[string]any) { delete(m, "bounce") }), "bounce"},
		{"an unknown bounce type", edit(t, "bounce.json", func(m map[string]any) { obj(m, "bounce")["bounceType"] = "Soft" }), "bounce.bounceType"},
		{"a bounce without a time", edit(t, "bounce.json", func(m map[string]any) { delete(obj(m, "bounce"), "timestamp") }), "bounce.timestamp"},
		{"a delivery time that is no time", edit(t, "delivery.json", func(m map[string]any) { obj(m, "delivery")["timestamp"] = "yesterday" }), "delivery.timestamp"},
		{"a reject without mail.timestamp", edit(t, "reject.json", func(m map[string]any) { delete(obj(m, "mail"), "timestamp") }), "mail.timestamp"},
		{"a bounce type of the wrong JSON type", edit(t, "bounce.json", func(m map[string]any) { obj(m, "bounce")["bounceType"] = 5 }), "bounce.bounceType"},
		{"only some of the dispatcher tags", edit(t, "bounce.json", func(m map[string]any) { delete(obj(m, "mail", "tags"), dispatch.TagVersion) }), "mail.tags." + dispatch.TagVersion},
		{"a version that is no number", edit(t, "bounce.json", tag(dispatch.TagVersion, "three")), "mail.tags." + dispatch.TagVersion},
		{"a version of 0", edit(t, "bounce.json", tag(dispatch.TagVersion, "0")), "mail.tags." + dispatch.TagVersion},
		{"a tag with two values", edit(t, "bounce.json", tag(dispatch.TagEventID, "a", "b")), "mail.tags." + dispatch.TagEventID},
		{"an aggregate id Dispatcher never writes", edit(t, "bounce.json", tag(dispatch.TagAggregateID, "-x")), "mail.tags." + dispatch.TagAggregateID},
		{"a template name Dispatcher never writes", edit(t, "bounce.json", tag(dispatch.TagTemplate, "Order")), "mail.tags." + dispatch.TagTemplate},
		{"an EventBridge event from another source", edit(t, "eventbridge-complaint.json", func(m map[string]any) { m["source"] = "aws.sns" }), "source"},
		{"an EventBridge event without detail", edit(t, "eventbridge-complaint.json", func(m map[string]any) { delete(m, "detail") }), "detail"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := feedback.Parse(tt.body)
			if dispatch.KindOf(err) != dispatch.Invalid {
				t.Fatalf("err = %v (kind %v), want Invalid", err, dispatch.KindOf(err))
			}
			var ve *dispatch.ValidationError
			if !errors.As(err, &ve) || len(ve.Fields) != 1 || ve.Fields[0].Field != tt.field {
				t.Errorf("err = %v, want one field problem naming %q", err, tt.field)
			}
			if errors.Is(err, feedback.ErrUnknownEmail) {
				t.Errorf("a malformed record is not an unknown email")
			}
		})
	}
}
