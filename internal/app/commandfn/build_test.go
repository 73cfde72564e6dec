package commandfn_test

import (
	"context"
	"net/http"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-lambda-go/events"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb"

	"github.com/dispatcher-dev/dispatcher/internal/app/commandfn"
	"github.com/dispatcher-dev/dispatcher/internal/dynamo"
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

// CALLERS gives callers of their own next to the default caller of
// WEBHOOK_SECRETS: each signs with its own secret and names itself; the
// default caller keeps signing as before. A faulty document stops the cold
// start, naming the caller and the field.
func TestTheCommandHandlerBuiltWithCALLERSAcceptsEachCaller(t *testing.T) {
	env := testenv.Get(t)
	vars, err := env.Stack.FunctionEnv("CommandFunction")
	if err != nil {
		t.Fatal(err)
	}
	const teamSecret = "whsec_C2FVsBQIhrscChlQIMV+b5sSYspob7oD"
	vars["WEBHOOK_SECRETS"] = secret
	vars["CALLERS"] = `[{"id":"team-a","secrets":["` + teamSecret + `"],"aggregates":["Account/ta-*"],"templates":["account-welcome"],"events":["AccountOpened"]}]`
	h, err := commandfn.Build(context.Background(), env.AWS, func(k string) string { return vars[k] })
	if err != nil {
		t.Fatal(err)
	}
	open := func(secret, caller, agg string) events.APIGatewayV2HTTPResponse {
		return signedOpenAs(t, h, caller, secret, agg)
	}
	run := strconv.FormatInt(time.Now().UnixNano(), 10)
	for _, tt := range []struct {
		name, secret, caller, agg string
		want                      int
	}{
		{"team-a opens its account", teamSecret, "team-a", "ta-" + run, http.StatusAccepted},
		{"team-a may not open another's", teamSecret, "team-a", "tb-" + run, http.StatusForbidden},
		{"the default caller keeps working", secret, "", "def-" + run, http.StatusAccepted},
		{"team-a's secret is not the default caller's", teamSecret, "", "def2-" + run, http.StatusUnauthorized},
	} {
		t.Run(tt.name, func(t *testing.T) {
			if resp := open(tt.secret, tt.caller, tt.agg); resp.StatusCode != tt.want {
				t.Fatalf("%d %s, want %d", resp.StatusCode, resp.Body, tt.want)
			}
		})
	}
	t.Run("a faulty document stops the cold start", func(t *testing.T) {
		vars["CALLERS"] = `[{"id":"team-a","secrets":["` + teamSecret + `"],"aggregate":["Account/ta-*"]}]`
		_, err := commandfn.Build(context.Background(), env.AWS, func(k string) string { return vars[k] })
		if err == nil || !strings.Contains(err.Error(), `caller team-a: unknown field "aggregate"`) {
			t.Fatalf("err = %v, want it to name the caller and the field", err)
		}
	})
}

// The rate limit as the template configures it (RateLimitTable,
// CallerRatePerSecond, CallerBurst), on the local stack: a caller's burst
// passes, the next request is a 429 with Retry-After and writes nothing.
func TestTheTemplatesRateLimitAnswers429WithRetryAfter(t *testing.T) {
	env := testenv.Get(t)
	vars, err := env.Stack.FunctionEnv("CommandFunction")
	if err != nil {
		t.Fatal(err)
	}
	if vars["RATE_LIMIT_TABLE"] == "" || vars["CALLER_BURST"] == "" {
		t.Fatalf("the template gives no rate limit: %v", vars)
	}
	// One request a minute after a burst of 2, so that no token comes back
	// during the test.
	// A caller of its own: the bucket is the caller's, and the default
	// caller's stays whole for the other tests on this stack.
	who := "rate-" + strconv.FormatInt(time.Now().UnixNano(), 36)
	vars["CALLERS"] = `[{"id":"` + who + `","secrets":["` + secret + `"],"aggregates":["Account/rate-*"],"templates":["account-welcome"],"events":["AccountOpened"]}]`
	vars["WEBHOOK_SECRETS"], vars["CALLER_RATE_PER_SECOND"], vars["CALLER_BURST"] = secret, "0.0167", "2"
	h, err := commandfn.Build(context.Background(), env.AWS, func(k string) string { return vars[k] })
	if err != nil {
		t.Fatal(err)
	}
	store := dynamo.New(dynamodb.NewFromConfig(env.AWS), vars["TABLE_NAME"], 8)
	for i := range 3 {
		agg := "rate-" + strconv.FormatInt(time.Now().UnixNano(), 10)
		resp := signedOpenAs(t, h, who, secret, agg)
		a, err := store.Load(context.Background(), agg)
		if err != nil {
			t.Fatal(err)
		}
		if i < 2 {
			if resp.StatusCode != http.StatusAccepted || !a.Exists() {
				t.Fatalf("request %d of the burst: %d %s", i+1, resp.StatusCode, resp.Body)
			}
			continue
		}
		retry, _ := strconv.Atoi(resp.Headers["Retry-After"])
		if resp.StatusCode != http.StatusTooManyRequests || retry < 1 || retry > 60 {
			t.Fatalf("past the burst: %d Retry-After %q %s, want 429 with 1 to 60 seconds", resp.StatusCode, resp.Headers["Retry-After"], resp.Body)
		}
		if a.Exists() {
			t.Error("the refused command was applied")
		}
	}
}
