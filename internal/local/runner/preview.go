package runner

import (
	"context"
	"fmt"

	"github.com/aws/aws-sdk-go-v2/aws"
	sesapi "github.com/aws/aws-sdk-go-v2/service/sesv2"

	"github.com/dispatcher-dev/dispatcher/internal/emails"
	"github.com/dispatcher-dev/dispatcher/internal/local/provision"
	"github.com/dispatcher-dev/dispatcher/internal/ses"
)

// Template previews: `make dev` sends each template of the stack's folder
// once, rendered with its sample.json, so that the SES emulator's page
// shows what every template looks like.
const (
	PreviewAddress = "preview@example.com"
	PreviewPrefix  = "[preview] "
)

// Previews is what SendPreviews sent.
type Previews struct {
	Folder    string   // the template folder (emails.BuiltinPath for the built-in one)
	Templates []string // one email each
}

// SendPreviews renders every template of the stack's folder with its
// sample data and sends it through SES (cfg's endpoint: the emulator) to
// PreviewAddress, from the template's sender (the stack's SenderAddress
// when the folder gives none), the subject prefixed with PreviewPrefix.
func SendPreviews(ctx context.Context, cfg aws.Config, stack *provision.Stack) (Previews, error) {
	dir, err := emails.FromEnv(func(k string) string {
		if k == emails.EnvDir {
			return stack.EmailTemplates
		}
		return ""
	})
	if err != nil {
		return Previews{}, err
	}
	fallback, err := stack.Eval.Param("SenderAddress")
	if err != nil {
		return Previews{}, err
	}
	senders := dir.WireSenders()
	client := ses.New(sesapi.NewFromConfig(cfg))
	out := Previews{Folder: dir.Path}
	for _, name := range dir.Set.Names() {
		r, err := dir.Preview(name)
		if err != nil {
			return out, err
		}
		from := senders.For(name, fallback)
		_, err = client.Send(ctx, ses.Email{
			From: from.From, ReplyTo: from.ReplyTo, To: []string{PreviewAddress},
			Subject: PreviewPrefix + r.Subject, Text: r.Text, HTML: r.HTML,
			Headers: map[string]string{"X-Dispatcher-Preview": name},
		})
		if err != nil {
			return out, fmt.Errorf("preview of %s: %w", name, err)
		}
		out.Templates = append(out.Templates, name)
	}
	return out, nil
}
