package webhook_test

import (
	"errors"
	"fmt"
	"strconv"
	"time"

	"github.com/dispatcher-dev/dispatcher/internal/webhook"
)

// A sender signs with the new secret while the receiver still accepts the
// old one too; once every sender has switched, the old one is dropped.
func ExampleVerifier_Verify() {
	const (
		oldSecret = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"
		newSecret = "whsec_c2VjcmV0LWtleS1vZi1hdC1sZWFzdC0yNC1ieXRlcw=="
	)
	v, err := webhook.NewVerifier([]string{newSecret, oldSecret})
	if err != nil {
		fmt.Println(err)
		return
	}

	body := []byte(`{"type":"order.place"}`)
	now := time.Now()
	sig, err := webhook.Sign(oldSecret, "msg_1", now, body)
	if err != nil {
		fmt.Println(err)
		return
	}
	headers := map[string]string{ // as API Gateway v2 passes them
		"webhook-id":        "msg_1",
		"webhook-timestamp": strconv.FormatInt(now.Unix(), 10),
		"webhook-signature": sig,
	}

	id, err := v.Verify(headers, body)
	fmt.Println(id, err)

	_, err = v.Verify(headers, []byte(`{"type":"order.cancel"}`))
	fmt.Println(errors.Is(err, webhook.ErrUnauthorized))
	// Output:
	// msg_1 <nil>
	// true
}
