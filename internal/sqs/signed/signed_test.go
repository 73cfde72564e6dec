package signed_test

import (
	"context"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/aws/aws-sdk-go-v2/aws"

	"github.com/dispatcher-dev/dispatcher/internal/dispatch"
	"github.com/dispatcher-dev/dispatcher/internal/sqs/signed"
)

// Sending, its FIFO fields, attributes and error kinds are tested against
// the SQS emulator, moto and the SDK's own client in internal/sqs (TestSend).
// This is the check no emulator can make fail.

// An answer whose MD5OfMessageBody is not the body's: SQS did not get what
// was sent. The SDK fails such a send; so does this.
func TestAnAnswerWithAnotherBodysMD5IsTransient(t *testing.T) {
	s := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		_, _ = io.ReadAll(r.Body)
		_, _ = io.WriteString(w, `{"MD5OfMessageBody":"00000000000000000000000000000000","MessageId":"m-1"}`)
	}))
	defer s.Close()
	cfg := aws.Config{Region: "eu-west-1", BaseEndpoint: aws.String(s.URL), Credentials: aws.CredentialsProviderFunc(func(context.Context) (aws.Credentials, error) {
		return aws.Credentials{AccessKeyID: "AKID", SecretAccessKey: "SECRET"}, nil
	})}
	err := signed.New(cfg).Send(context.Background(), s.URL+"/000000000000/q.fifo", dispatch.QueueMessage{Body: "hello", GroupID: "g", DedupID: "d"})
	if dispatch.KindOf(err) != dispatch.Transient || !strings.Contains(err.Error(), "ChecksumMismatch") {
		t.Errorf("err = %v, want Transient ChecksumMismatch", err)
	}
}
