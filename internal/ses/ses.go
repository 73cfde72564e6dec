// Package ses is Dispatcher's SES v2 adapter: it sends one email with
// simple content and classifies every SES failure, once, into a
// *dispatch.Error kind.
package ses

import (
	"context"
	"maps"
	"slices"

	"github.com/aws/aws-sdk-go-v2/aws"
	sesapi "github.com/aws/aws-sdk-go-v2/service/sesv2"
	"github.com/aws/aws-sdk-go-v2/service/sesv2/types"

	"github.com/dispatcher-dev/dispatcher/internal/dispatch"
)

// Email is one email to send.
type Email = dispatch.OutgoingEmail

// Client sends email through SES v2.
type Client struct {
	api *sesapi.Client
}

// New returns a Client that sends through api.
func New(api *sesapi.Client) *Client { return &Client{api: api} }

const charset = "UTF-8"

// Send sends e as simple content and returns SES's message id.
func (c *Client) Send(ctx context.Context, e Email) (messageID string, err error) {
	const op = "ses.Send"
	body := &types.Body{}
	if e.Text != "" {
		body.Text = &types.Content{Data: aws.String(e.Text), Charset: aws.String(charset)}
	}
	if e.HTML != "" {
		body.Html = &types.Content{Data: aws.String(e.HTML), Charset: aws.String(charset)}
	}
	in := &sesapi.SendEmailInput{
		FromEmailAddress: aws.String(e.From),
		Destination:      &types.Destination{ToAddresses: e.To},
		Content: &types.EmailContent{Simple: &types.Message{
			Subject: &types.Content{Data: aws.String(e.Subject), Charset: aws.String(charset)},
			Body:    body,
			Headers: headers(e.Headers),
		}},
		EmailTags:        tags(e.Tags),
		ReplyToAddresses: e.ReplyTo,
	}
	if e.ConfigurationSet != "" {
		in.ConfigurationSetName = aws.String(e.ConfigurationSet)
	}
	out, err := c.api.SendEmail(ctx, in)
	if err != nil {
		return "", classify(op, err)
	}
	return aws.ToString(out.MessageId), nil
}

// headers and tags are sorted by name so that the request is the same for
// the same Email (maps iterate in random order).
func headers(m map[string]string) []types.MessageHeader {
	var hs []types.MessageHeader
	for _, k := range slices.Sorted(maps.Keys(m)) {
		hs = append(hs, types.MessageHeader{Name: aws.String(k), Value: aws.String(m[k])})
	}
	return hs
}

// tags are metadata (event destinations, metrics dimensions): SES accepts
// only [A-Za-z0-9_-], at most 256 characters, in names and values, and
// rejects the whole email otherwise. A tag must never cost an email, so
// other characters become '_' and long ones are cut.
func tags(m map[string]string) []types.MessageTag {
	var ts []types.MessageTag
	for _, k := range slices.Sorted(maps.Keys(m)) {
		ts = append(ts, types.MessageTag{Name: aws.String(tagSafe(k)), Value: aws.String(tagSafe(m[k]))})
	}
	return ts
}

func tagSafe(s string) string {
	b := []byte(s)
	for i, c := range b {
		if !('a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9' || c == '_' || c == '-') {
			b[i] = '_'
		}
	}
	if len(b) > 256 {
		b = b[:256]
	}
	return string(b)
}
