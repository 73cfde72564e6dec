// Package feedback reads what SES says happened to an email after it took
// it: one event record (as SES publishes it to SNS or Firehose, or inside
// the EventBridge envelope) becomes a Feedback that names the email's outbox
// item. It is pure: no AWS calls, no clock.
//
// An event is matched to its item only through the message tags every email
// carries (dispatch.TagEventID and the others, in the record's mail.tags),
// never by address. A Feedback never holds an address.
package feedback

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/dispatcher-dev/dispatcher/internal/dispatch"
)

// Outcome is what became of an email, from SES's events.
type Outcome uint8

// The outcomes, least severe first: Worse keeps the later of two in this
// order. A delay ranks below the delivery: it is provisional (SES is still
// trying), so the delivery or bounce that ends it wins in whichever order
// the two arrive. The zero Outcome is none.
const (
	Delayed          Outcome = iota + 1 // a temporary problem; SES is still trying
	Delivered                           // the recipient's server took it
	BouncedTransient                    // SES gave up after temporary failures, or could not tell why (Undetermined)
	Rejected                            // SES refused to send it (a virus)
	RenderingFailed                     // SES could not render it
	BouncedPermanent                    // the recipient's server refused it for good
	Complained                          // delivered, and the recipient marked it as spam
)

var outcomeNames = [...]string{"", "delayed", "delivered", "bounced-transient", "rejected", "rendering-failed", "bounced-permanent", "complained"}

func (o Outcome) String() string {
	if int(o) < len(outcomeNames) {
		return outcomeNames[o]
	}
	return fmt.Sprintf("outcome(%d)", o)
}

// Severity orders the outcomes: a higher one says more is wrong with the
// email or its address.
func (o Outcome) Severity() int { return int(o) }

// Feedback is one SES event about one email, named by its outbox item.
type Feedback struct {
	EventID     string // the outbox item's event id
	AggregateID string
	Version     int64
	Template    string
	Outcome     Outcome
	// Diagnostic is SES's reason: the bounce type and subtype with the
	// remote server's diagnostic code, the complaint's feedback type, the
	// delay type, the reject reason or the rendering error. Addresses in it
	// are replaced by "<address>"; at most MaxDiagnosticBytes.
	Diagnostic string
	At         time.Time // when the event happened, by SES's timestamp
}

// MaxDiagnosticBytes bounds Feedback.Diagnostic: a remote server's
// diagnostic code is free text of any length.
const MaxDiagnosticBytes = 256

// Worse returns the more severe of a and b, so that feedback that arrives
// twice or out of order keeps the worst outcome (a delivery after a bounce
// keeps the bounce). Of two equally severe, a is kept.
func Worse(a, b Feedback) Feedback {
	if b.Outcome.Severity() > a.Outcome.Severity() {
		return b
	}
	return a
}

// ErrUnknownEmail is a record without Dispatcher's tags: an email this
// deployment did not send (or sent before the tags), or an identity's
// notification, which carries no tags. It is to be counted and dropped,
// never retried.
var ErrUnknownEmail = errors.New("no dispatcher tags: not an email Dispatcher sent")

// ErrNotAnOutcome is a well-formed record of an event that says nothing
// about delivery (Send, Open, Click, Subscription): dropped.
var ErrNotAnOutcome = errors.New("an event that is not a delivery outcome")

const op = "feedback.Parse"

// record is the part of an SES event record Parse reads.
type record struct {
	EventType string `json:"eventType"`
	Mail      *struct {
		Timestamp string              `json:"timestamp"`
		Tags      map[string][]string `json:"tags"`
	} `json:"mail"`
	Bounce *struct {
		BounceType        string `json:"bounceType"`
		BounceSubType     string `json:"bounceSubType"`
		Timestamp         string `json:"timestamp"`
		BouncedRecipients []struct {
			DiagnosticCode string `json:"diagnosticCode"`
		} `json:"bouncedRecipients"`
	} `json:"bounce"`
	Complaint *struct {
		ComplaintFeedbackType string `json:"complaintFeedbackType"`
		ComplaintSubType      string `json:"complaintSubType"`
		Timestamp             string `json:"timestamp"`
	} `json:"complaint"`
	Delivery *struct {
		Timestamp    string `json:"timestamp"`
		SMTPResponse string `json:"smtpResponse"`
	} `json:"delivery"`
	DeliveryDelay *struct {
		Timestamp         string `json:"timestamp"`
		DelayType         string `json:"delayType"`
		DelayedRecipients []struct {
			DiagnosticCode string `json:"diagnosticCode"`
		} `json:"delayedRecipients"`
	} `json:"deliveryDelay"`
	Reject *struct {
		Reason string `json:"reason"`
	} `json:"reject"`
	Failure *struct {
		ErrorMessage string `json:"errorMessage"`
	} `json:"failure"`
}

// envelope is EventBridge's event around an SES record.
type envelope struct {
	DetailType string          `json:"detail-type"`
	Source     string          `json:"source"`
	Detail     json.RawMessage `json:"detail"`
}

// Parse reads one record: a raw SES event record, or the EventBridge event
// (source aws.ses) whose detail is one. A record without Dispatcher's tags
// is ErrUnknownEmail; one of an event that is no outcome, ErrNotAnOutcome;
// a malformed one, an Invalid error whose *dispatch.ValidationError names
// the field.
func Parse(b []byte) (Feedback, error) {
	var probe map[string]json.RawMessage
	if err := json.Unmarshal(b, &probe); err != nil {
		return Feedback{}, invalid("", "is not a JSON object")
	}
	if _, ok := probe["detail-type"]; ok {
		var env envelope
		if err := json.Unmarshal(b, &env); err != nil {
			return Feedback{}, invalid("detail-type", "must be a string")
		}
		if env.Source != "aws.ses" {
			return Feedback{}, invalid("source", fmt.Sprintf("is %q, want aws.ses", env.Source))
		}
		if len(env.Detail) == 0 || bytes.Equal(env.Detail, []byte("null")) {
			return Feedback{}, invalid("detail", "is required")
		}
		b = env.Detail
	}
	var r record
	if err := json.Unmarshal(b, &r); err != nil {
		return Feedback{}, invalid(jsonField(err), "has the wrong type")
	}
	if r.EventType == "" {
		return Feedback{}, invalid("eventType", "is required")
	}
	if r.Mail == nil {
		return Feedback{}, invalid("mail", "is required")
	}
	f, err := named(r.Mail.Tags)
	if err != nil {
		return Feedback{}, err
	}
	var ts, tsField string
	switch r.EventType {
	case "Delivery":
		if r.Delivery == nil {
			return Feedback{}, invalid("delivery", "is required")
		}
		f.Outcome, f.Diagnostic = Delivered, r.Delivery.SMTPResponse
		ts, tsField = r.Delivery.Timestamp, "delivery.timestamp"
	case "DeliveryDelay":
		d := r.DeliveryDelay
		if d == nil {
			return Feedback{}, invalid("deliveryDelay", "is required")
		}
		f.Outcome, f.Diagnostic = Delayed, d.DelayType
		if len(d.DelayedRecipients) > 0 && d.DelayedRecipients[0].DiagnosticCode != "" {
			f.Diagnostic += ": " + d.DelayedRecipients[0].DiagnosticCode
		}
		ts, tsField = d.Timestamp, "deliveryDelay.timestamp"
	case "Bounce":
		bo := r.Bounce
		if bo == nil {
			return Feedback{}, invalid("bounce", "is required")
		}
		switch bo.BounceType {
		case "Permanent":
			f.Outcome = BouncedPermanent
		case "Transient", "Undetermined":
			// Undetermined: SES could not tell why. Nothing says the address
			// is bad (SES's own suppression list takes only Permanent
			// bounces), so it ranks with the transient ones.
			f.Outcome = BouncedTransient
		default:
			return Feedback{}, invalid("bounce.bounceType", fmt.Sprintf("is %q, want Permanent, Transient or Undetermined", bo.BounceType))
		}
		f.Diagnostic = bo.BounceType + "/" + bo.BounceSubType
		if len(bo.BouncedRecipients) > 0 && bo.BouncedRecipients[0].DiagnosticCode != "" {
			f.Diagnostic += ": " + bo.BouncedRecipients[0].DiagnosticCode
		}
		ts, tsField = bo.Timestamp, "bounce.timestamp"
	case "Complaint":
		c := r.Complaint
		if c == nil {
			return Feedback{}, invalid("complaint", "is required")
		}
		f.Outcome, f.Diagnostic = Complained, c.ComplaintFeedbackType
		if c.ComplaintSubType != "" {
			f.Diagnostic = strings.TrimPrefix(f.Diagnostic+"/"+c.ComplaintSubType, "/")
		}
		ts, tsField = c.Timestamp, "complaint.timestamp"
	case "Reject":
		if r.Reject == nil {
			return Feedback{}, invalid("reject", "is required")
		}
		f.Outcome, f.Diagnostic = Rejected, r.Reject.Reason
		ts, tsField = r.Mail.Timestamp, "mail.timestamp" // the reject object has no time of its own
	case "Rendering Failure":
		if r.Failure == nil {
			return Feedback{}, invalid("failure", "is required")
		}
		f.Outcome, f.Diagnostic = RenderingFailed, r.Failure.ErrorMessage
		ts, tsField = r.Mail.Timestamp, "mail.timestamp"
	case "Send", "Open", "Click", "Subscription":
		return Feedback{}, dispatch.E(op, dispatch.Permanent, r.EventType, ErrNotAnOutcome)
	default:
		return Feedback{}, invalid("eventType", fmt.Sprintf("%q is not an SES event type", r.EventType))
	}
	at, err := time.Parse(time.RFC3339Nano, ts)
	if err != nil {
		return Feedback{}, invalid(tsField, "must be an ISO 8601 time")
	}
	f.At = at.UTC()
	f.Diagnostic = clean(f.Diagnostic)
	return f, nil
}

// named reads the outbox item's name from the record's tags.
func named(tags map[string][]string) (Feedback, error) {
	names := []string{dispatch.TagEventID, dispatch.TagAggregateID, dispatch.TagVersion, dispatch.TagTemplate}
	vals := make([]string, len(names))
	found := 0
	for i, n := range names {
		vs, ok := tags[n]
		if !ok {
			continue
		}
		found++
		if len(vs) != 1 {
			return Feedback{}, invalid("mail.tags."+n, fmt.Sprintf("has %d values, want 1", len(vs)))
		}
		vals[i] = vs[0]
	}
	if found == 0 {
		return Feedback{}, dispatch.E(op, dispatch.Permanent, "", ErrUnknownEmail)
	}
	for _, n := range names {
		if _, ok := tags[n]; !ok {
			return Feedback{}, invalid("mail.tags."+n, "is required with the other dispatcher tags")
		}
	}
	f := Feedback{EventID: vals[0], AggregateID: vals[1], Template: vals[3]}
	if f.EventID == "" {
		return Feedback{}, invalid("mail.tags."+dispatch.TagEventID, "is empty")
	}
	if !dispatch.ValidAggregateID(f.AggregateID) {
		return Feedback{}, invalid("mail.tags."+dispatch.TagAggregateID, "is not an aggregate id")
	}
	v, err := strconv.ParseInt(vals[2], 10, 64)
	if err != nil || v < 1 {
		return Feedback{}, invalid("mail.tags."+dispatch.TagVersion, "must be a version of 1 or more")
	}
	f.Version = v
	if !dispatch.ValidTemplateName(f.Template) {
		return Feedback{}, invalid("mail.tags."+dispatch.TagTemplate, "is not a template name")
	}
	return f, nil
}

func invalid(field, msg string) error {
	return dispatch.E(op, dispatch.Invalid, "", &dispatch.ValidationError{Kind: dispatch.Invalid, Fields: []dispatch.FieldError{{Field: field, Message: msg}}})
}

// jsonField names the field a type error is about.
func jsonField(err error) string {
	var te *json.UnmarshalTypeError
	if errors.As(err, &te) {
		return te.Field
	}
	return ""
}

// clean replaces every word with an '@' in it by "<address>" (a remote
// server's diagnostic code often names the recipient), and cuts the result
// to MaxDiagnosticBytes on a character boundary.
func clean(s string) string {
	words := strings.Fields(s)
	for i, w := range words {
		if strings.Contains(w, "@") {
			words[i] = "<address>"
		}
	}
	s = strings.Join(words, " ")
	if len(s) <= MaxDiagnosticBytes {
		return s
	}
	cut := MaxDiagnosticBytes
	for cut > 0 && !utf8.RuneStart(s[cut]) {
		cut--
	}
	return s[:cut]
}
