package commandfn_test

import (
	"context"
	"net/http"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-lambda-go/events"

	"github.com/dispatcher-dev/dispatcher/internal/app/commandfn"
	"github.com/dispatcher-dev/dispatcher/internal/testkit/testenv"
	"github.com/dispatcher-dev/dispatcher/internal/webhook"
)

func TestMain(m *testing.M) { testenv.Main(m) }

const secret = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"

func TestTheCommandHandlerBuiltFromTheTemplateEnvironmentAcceptsASignedCommand(t *testing.T) {
	env := testenv.Get(t)
	vars, err := env.Stack.FunctionEnv("CommandFunction")
	if err != nil {
		t.Fatal(err)
	}
	vars["WEBHOOK_SECRETS"] = secret
	h, err := commandfn.Build(context.Background(), env.AWS, func(k string) string { return vars[k] })
	if err != nil {
		t.Fatal(err)
	}
	body := `{"type":"OpenAccount","aggregateId":"app-` + strconv.FormatInt(time.Now().UnixNano(), 10) + `","data":{"owner":"Grace","email":"grace@example.com","currency":"USD"}}`
	id := "msg_app_" + strconv.FormatInt(time.Now().UnixNano(), 10)
	now := time.Now()
	sig, err := webhook.Sign(secret, id, now, []byte(body))
	if err != nil {
		t.Fatal(err)
	}
	req := events.APIGatewayV2HTTPRequest{
		RouteKey: "POST /v1/commands", RawPath: "/v1/commands", Body: body,
		Headers: map[string]string{"content-type": "application/json", "webhook-id": id, "webhook-timestamp": strconv.FormatInt(now.Unix(), 10), "webhook-signature": sig},
	}
	resp, err := h.Handle(context.Background(), req)
	if err != nil || resp.StatusCode != http.StatusAccepted {
		t.Fatalf("%d %s %v", resp.StatusCode, resp.Body, err)
	}
}

// The template's AccountMode reaches the function as AGGREGATE_MODES, and an
// event-sourced account built from it answers with its folded state and its
// history.
func TestTheTemplatesAccountModeMakesAccountsEventSourced(t *testing.T) {
	env := testenv.Get(t)
	vars, err := env.Stack.FunctionEnv("CommandFunction")
	if err != nil {
		t.Fatal(err)
	}
	if vars["AGGREGATE_MODES"] != "Account=outbox" {
		t.Fatalf("AGGREGATE_MODES = %q, want the template's default Account=outbox", vars["AGGREGATE_MODES"])
	}
	vars["AGGREGATE_MODES"] = "Account=event-sourced"
	vars["WEBHOOK_SECRETS"] = secret
	h, err := commandfn.Build(context.Background(), env.AWS, func(k string) string { return vars[k] })
	if err != nil {
		t.Fatal(err)
	}
	agg := "es-app-" + strconv.FormatInt(time.Now().UnixNano(), 10)
	do := func(method, path, body string) events.APIGatewayV2HTTPResponse {
		t.Helper()
		id := "msg_es_" + strconv.FormatInt(time.Now().UnixNano(), 10)
		now := time.Now()
		content := webhook.SignedContent(method, path, "", []byte(body))
		sig, err := webhook.Sign(secret, id, now, content)
		if err != nil {
			t.Fatal(err)
		}
		req := events.APIGatewayV2HTTPRequest{
			RawPath: path, Body: body, PathParameters: map[string]string{"id": agg},
			Headers: map[string]string{"content-type": "application/json", "webhook-id": id, "webhook-timestamp": strconv.FormatInt(now.Unix(), 10), "webhook-signature": sig},
		}
		req.RequestContext.HTTP.Method = method
		resp, err := h.Handle(context.Background(), req)
		if err != nil {
			t.Fatal(err)
		}
		return resp
	}
	if resp := do(http.MethodPost, "/v1/commands", `{"type":"OpenAccount","aggregateId":"`+agg+`","data":{"owner":"Grace","email":"grace@example.com","currency":"USD"}}`); resp.StatusCode != http.StatusAccepted {
		t.Fatalf("open: %d %s", resp.StatusCode, resp.Body)
	}
	if resp := do(http.MethodGet, "/v1/aggregates/"+agg, ""); resp.StatusCode != http.StatusOK || !strings.Contains(resp.Body, `"version":1`) {
		t.Errorf("GET aggregate: %d %s, want version 1", resp.StatusCode, resp.Body)
	}
	if resp := do(http.MethodGet, "/v1/aggregates/"+agg+"/events", ""); resp.StatusCode != http.StatusOK || !strings.Contains(resp.Body, `"eventType":"AccountOpened"`) {
		t.Errorf("GET events: %d %s, want the AccountOpened event", resp.StatusCode, resp.Body)
	}
}

func TestTheCommandHandlerRefusesToStartWithoutSecrets(t *testing.T) {
	env := testenv.Get(t)
	_, err := commandfn.Build(context.Background(), env.AWS, func(k string) string { return map[string]string{"TABLE_NAME": "t"}[k] })
	if err == nil || !strings.Contains(err.Error(), "WEBHOOK_SECRETS") {
		t.Fatalf("err = %v, want it to name WEBHOOK_SECRETS", err)
	}
}
