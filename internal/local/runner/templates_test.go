package runner_test

import (
	"context"
	"fmt"
	"net/http"
	"net/mail"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/sesv2"

	"github.com/dispatcher-dev/dispatcher/internal/local/emulator"
	"github.com/dispatcher-dev/dispatcher/internal/local/provision"
	"github.com/dispatcher-dev/dispatcher/internal/local/runner"
	"github.com/dispatcher-dev/dispatcher/internal/testkit/templatedir"
	"github.com/dispatcher-dev/dispatcher/internal/testkit/testenv"
)

// stackWithTemplates provisions the template as freshStack does, with a
// template folder standing in for the template layer.
func stackWithTemplates(t *testing.T, dir string) *provision.Stack {
	t.Helper()
	env := testenv.Get(t)
	s := stackOf(t, "rt", provision.Options{EmailTemplates: dir})
	// moto, like SES, sends only from a verified identity: the user's
	// domain (the emulator sends from any address).
	if env.Backend() == emulator.MotoServer {
		_, err := sesv2.NewFromConfig(env.AWS).CreateEmailIdentity(context.Background(), &sesv2.CreateEmailIdentityInput{EmailIdentity: aws.String("shop.example")})
		if err != nil && !strings.Contains(err.Error(), "AlreadyExists") {
			t.Fatal(err)
		}
	}
	return s
}

func sentTo(t *testing.T, addr string) []testenv.SentEmail {
	t.Helper()
	all, err := testenv.Get(t).SentEmails(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	var out []testenv.SentEmail
	for _, m := range all {
		if slices.Contains(m.Destination.To, addr) {
			out = append(out, m)
		}
	}
	return out
}

// A second template folder deployed locally (the layer's stand-in): a
// Dispatch command sends the user's order-confirmation template, granted by
// the folder's dispatcher.yaml, and the email arrives rendered from it, from
// the user's sender with its display name and Reply-To.
func TestAUsersTemplateFolderSendsTheUsersTemplateFromTheUsersSender(t *testing.T) {
	s := stackWithTemplates(t, templatedir.Write(t, templatedir.User(t)))
	r := start(t, s, realFunctions(t, s), nil)

	id := fmt.Sprintf("ord-%d", time.Now().UnixNano())
	to := id + "@example.com"
	body := fmt.Sprintf(`{"type":"Dispatch","aggregateId":%q,"data":{"aggregateType":"Order","state":{"status":"confirmed"},`+
		`"events":[{"type":"order.confirmed","data":{"orderId":%q}}],`+
		`"emails":[{"to":[%q],"template":"order-confirmation","data":{"orderId":%q,"name":"Ada <3"}}]}}`, id, id, to, id)
	if resp, b := do(t, signed(t, http.MethodPost, r.URL()+"/v1/commands", body)); resp.StatusCode != http.StatusAccepted {
		t.Fatalf("POST Dispatch: %d %s", resp.StatusCode, b)
	}
	eventually(t, 20*time.Second, "the order confirmation in the SES store", func() bool { return len(sentTo(t, to)) == 1 })
	got := sentTo(t, to)[0]
	if want := "Order " + id + " is confirmed"; got.Subject != want {
		t.Errorf("subject %q, want %q (the user's subject.txt)", got.Subject, want)
	}
	if !strings.Contains(got.Body.HTML, "<b>"+id+"</b>") || !strings.Contains(got.Body.HTML, "Ada &lt;3") {
		t.Errorf("HTML %q, want the user's body.html, escaped", got.Body.HTML)
	}
	from, err := mail.ParseAddress(got.From)
	if err != nil || from.Name != templatedir.UserName || from.Address != templatedir.UserAddress {
		t.Errorf("from %q (%+v, %v), want %s", got.From, from, err, templatedir.UserFrom)
	}
	if !testenv.Skip(t, testenv.MotoKeepsNoReplyTo) && !slices.Equal(got.ReplyTo, []string{templatedir.UserReplyTo}) {
		t.Errorf("reply-to %q, want [%s]", got.ReplyTo, templatedir.UserReplyTo)
	}

	// What the folder does not grant is refused, before anything is written.
	for _, tc := range []struct{ what, data, field string }{
		{"a template", `"emails":[{"to":["x@example.com"],"template":"deposit-receipt","data":{}}]`, "data.emails[0].template"},
		{"an event type", `"events":[{"type":"AccountOpened","data":{}}]`, "data.events[0].type"},
	} {
		other := fmt.Sprintf(`{"type":"Dispatch","aggregateId":"%s-x","data":{"aggregateType":"Order",%s}}`, id, tc.data)
		resp, b := do(t, signed(t, http.MethodPost, r.URL()+"/v1/commands", other))
		if resp.StatusCode != http.StatusUnprocessableEntity || !strings.Contains(string(b), tc.field) {
			t.Errorf("Dispatch of %s not granted: %d %s, want 422 naming %s", tc.what, resp.StatusCode, b, tc.field)
		}
	}

	// make dev's previews: one email per template of the folder.
	before := len(sentTo(t, runner.PreviewAddress))
	p, err := runner.SendPreviews(context.Background(), testenv.Get(t).AWS, s)
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Contains(p.Templates, templatedir.UserTemplate) || len(p.Templates) != 5 {
		t.Errorf("previews of %v, want the 5 templates of the folder", p.Templates)
	}
	previews := sentTo(t, runner.PreviewAddress)[before:]
	var subjects []string
	for _, m := range previews {
		subjects = append(subjects, m.Subject)
	}
	if !slices.Contains(subjects, runner.PreviewPrefix+"Order o-1001 is confirmed") || len(previews) != 5 {
		t.Errorf("preview subjects %q, want 5 with the user's sample rendered", subjects)
	}
}

// A broken folder stops the functions' cold start, naming the file and
// line: the local stack refuses to start, as a deployed function's init.
func TestABrokenTemplateFolderStopsTheColdStart(t *testing.T) {
	dir := templatedir.Write(t, templatedir.Broken(t))
	s := stackWithTemplates(t, dir)
	_, err := coldStart(t, s, nil)
	want := fmt.Sprintf("%s:%d: ", filepath.Join(dir, templatedir.BrokenFile), templatedir.BrokenLine)
	if err == nil || !strings.Contains(err.Error(), "cold start") || !strings.Contains(err.Error(), want) {
		t.Fatalf("InProcessFunctions = %v, want a cold start error naming %s", err, want)
	}
	if _, err := runner.SendPreviews(context.Background(), testenv.Get(t).AWS, s); err == nil || !strings.Contains(err.Error(), want) {
		t.Errorf("SendPreviews = %v, want the same error", err)
	}
}
