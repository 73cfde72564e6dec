package commandfn_test

import (
	"context"
	"net/http"
	"os"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-lambda-go/events"
	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/secretsmanager"
	"github.com/aws/aws-sdk-go-v2/service/ssm"
	ssmtypes "github.com/aws/aws-sdk-go-v2/service/ssm/types"

	"github.com/dispatcher-dev/dispatcher/internal/apigw"
	"github.com/dispatcher-dev/dispatcher/internal/app/awscfg"
	"github.com/dispatcher-dev/dispatcher/internal/app/commandfn"
	"github.com/dispatcher-dev/dispatcher/internal/local/emulator"
	"github.com/dispatcher-dev/dispatcher/internal/testkit/testenv"
	"github.com/dispatcher-dev/dispatcher/internal/webhook"
)

// The command function reads its webhook secrets with one signed request
// per read (no Secrets Manager or SSM client linked). moto serves both
// services, so against it the requests are checked by an implementation
// nobody here wrote; the SDK's own clients (test-only here) create the
// secret and the parameters. The configuration is the function's own
// (awscfg from the environment), so the endpoint variables are used as on
// Lambda.
func TestWebhookSecretsAreReadFromSecretsManagerAndSSM(t *testing.T) {
	env := testenv.Get(t)
	if env.Backend() != emulator.MotoServer {
		t.Skip("the emulators serve no Secrets Manager or SSM; `make test-moto` runs this against moto")
	}
	ctx := context.Background()
	cfg, err := awscfg.Load(os.Getenv)
	if err != nil {
		t.Fatal(err)
	}
	run := strconv.FormatInt(time.Now().UnixNano(), 10)
	sm := secretsmanager.NewFromConfig(env.AWS)
	created, err := sm.CreateSecret(ctx, &secretsmanager.CreateSecretInput{Name: aws.String("hooks-" + run), SecretString: aws.String(secret)})
	if err != nil {
		t.Fatal(err)
	}
	params := ssm.NewFromConfig(env.AWS)
	for name, typ := range map[string]ssmtypes.ParameterType{"/hooks/secure-" + run: ssmtypes.ParameterTypeSecureString, "/hooks/plain-" + run: ssmtypes.ParameterTypeString} {
		if _, err := params.PutParameter(ctx, &ssm.PutParameterInput{Name: aws.String(name), Value: aws.String(secret), Type: typ}); err != nil {
			t.Fatal(err)
		}
	}
	vars, err := env.Stack.FunctionEnv("CommandFunction")
	if err != nil {
		t.Fatal(err)
	}
	build := func(k, v string) (*apigw.Handler, error) {
		vs := map[string]string{}
		for a, b := range vars {
			vs[a] = b
		}
		vs["WEBHOOK_SECRETS"], vs["WEBHOOK_SECRETS_ARN"], vs["WEBHOOK_SECRETS_PARAMETER"] = "", "", ""
		vs[k] = v
		return commandfn.Build(ctx, cfg, func(k string) string { return vs[k] })
	}
	for _, tt := range []struct{ name, key, value string }{
		{"a Secrets Manager secret", "WEBHOOK_SECRETS_ARN", aws.ToString(created.ARN)},
		{"an SSM SecureString parameter", "WEBHOOK_SECRETS_PARAMETER", "/hooks/secure-" + run},
	} {
		t.Run(tt.name+" verifies a signed command", func(t *testing.T) {
			h, err := build(tt.key, tt.value)
			if err != nil {
				t.Fatal(err)
			}
			if resp := signedOpen(t, h); resp.StatusCode != http.StatusAccepted {
				t.Fatalf("%d %s", resp.StatusCode, resp.Body)
			}
		})
	}
	for _, tt := range []struct{ name, key, value, want string }{
		{"a plain String parameter is refused", "WEBHOOK_SECRETS_PARAMETER", "/hooks/plain-" + run, "not a SecureString"},
		{"a missing parameter is named", "WEBHOOK_SECRETS_PARAMETER", "/hooks/none-" + run, "ParameterNotFound"},
		{"a missing secret is named", "WEBHOOK_SECRETS_ARN", "arn:aws:secretsmanager:us-east-1:123456789012:secret:none-" + run, "ResourceNotFoundException"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			_, err := build(tt.key, tt.value)
			if err == nil || !strings.Contains(err.Error(), tt.want) || !strings.Contains(err.Error(), tt.key) {
				t.Fatalf("err = %v, want it to name %s and %s", err, tt.key, tt.want)
			}
		})
	}
}

// signedOpen sends an OpenAccount command signed with the known-answer
// secret, as the default caller.
func signedOpen(t *testing.T, h *apigw.Handler) events.APIGatewayV2HTTPResponse {
	t.Helper()
	return signedOpenAs(t, h, "", secret, "")
}

// The caller registry deployed as the template keeps it: an SSM tree of
// SecureString documents (CALLERS_PARAMETER_PATH), read by the function's
// own build with its signed call, on moto. A caller added to the tree is
// accepted; one whose secret was rotated out is refused with the new one
// accepted, at the next refresh (WEBHOOK_SECRETS_REFRESH), while the other
// caller is never refused.
func TestTheCallerTreeInSSMIsReadAndReadAgain(t *testing.T) {
	env := testenv.Get(t)
	if env.Backend() != emulator.MotoServer {
		t.Skip("the emulators serve no SSM; `make test-moto` runs this against moto")
	}
	ctx := context.Background()
	cfg, err := awscfg.Load(os.Getenv)
	if err != nil {
		t.Fatal(err)
	}
	const rotated = "whsec_c2Vjb25kLWtleS1vZi10ZWFtLWEtcm90YXRlZA=="
	tree := "/dispatcher/test-" + strconv.FormatInt(time.Now().UnixNano(), 10) + "/callers"
	params := ssm.NewFromConfig(env.AWS)
	put := func(id, secret string) {
		t.Helper()
		doc := `{"secrets":["` + secret + `"],"aggregates":["Account/sec-*"],"templates":["account-welcome"],"events":["AccountOpened"]}`
		if _, err := params.PutParameter(ctx, &ssm.PutParameterInput{Name: aws.String(tree + "/" + id), Value: aws.String(doc),
			Type: ssmtypes.ParameterTypeSecureString, Overwrite: aws.Bool(true)}); err != nil {
			t.Fatal(err)
		}
	}
	put("team-a", secret)
	put("team-b", secret)
	vars, err := env.Stack.FunctionEnv("CommandFunction")
	if err != nil {
		t.Fatal(err)
	}
	vars["WEBHOOK_SECRETS"], vars["CALLERS"] = "", ""
	vars["CALLERS_PARAMETER_PATH"], vars["WEBHOOK_SECRETS_REFRESH"] = tree, "1s"
	h, err := commandfn.Build(ctx, cfg, func(k string) string { return vars[k] })
	if err != nil {
		t.Fatal(err)
	}
	as := func(caller, secret string) int {
		return signedOpenAs(t, h, caller, secret, "").StatusCode
	}
	if a, b := as("team-a", secret), as("team-b", secret); a != http.StatusAccepted || b != http.StatusAccepted {
		t.Fatalf("team-a %d, team-b %d: want both accepted", a, b)
	}
	if got := as("", secret); got != http.StatusUnauthorized {
		t.Errorf("without Dispatcher-Caller (no default caller): %d, want 401", got)
	}
	put("team-a", rotated)
	deadline := time.Now().Add(30 * time.Second)
	for as("team-a", rotated) != http.StatusAccepted {
		if got := as("team-b", secret); got != http.StatusAccepted {
			t.Fatalf("team-b refused (%d) while team-a rotated", got)
		}
		if time.Now().After(deadline) {
			t.Fatal("team-a's rotated secret never accepted")
		}
		time.Sleep(200 * time.Millisecond)
	}
	if got := as("team-a", secret); got != http.StatusUnauthorized {
		t.Errorf("team-a's rotated-out secret: %d, want 401", got)
	}
	if got := as("team-b", secret); got != http.StatusAccepted {
		t.Errorf("team-b after team-a's rotation: %d, want 202", got)
	}
}

// signedOpenAs sends an OpenAccount command of the account agg ("": a new
// sec-… id) as a caller ("": no Dispatcher-Caller header), signed with
// secret.
func signedOpenAs(t *testing.T, h *apigw.Handler, caller, secret, agg string) events.APIGatewayV2HTTPResponse {
	t.Helper()
	if agg == "" {
		agg = "sec-" + strconv.FormatInt(time.Now().UnixNano(), 10)
	}
	body := `{"type":"OpenAccount","aggregateId":"` + agg + `","data":{"owner":"Ada","email":"ada@example.com","currency":"EUR"}}`
	id := "msg_sec_" + strconv.FormatInt(time.Now().UnixNano(), 10)
	now := time.Now()
	sig, err := webhook.Sign(secret, id, now, []byte(body))
	if err != nil {
		t.Fatal(err)
	}
	hdr := map[string]string{"content-type": "application/json", "webhook-id": id, "webhook-timestamp": strconv.FormatInt(now.Unix(), 10), "webhook-signature": sig}
	if caller != "" {
		hdr["dispatcher-caller"] = caller
	}
	resp, err := h.Handle(context.Background(), events.APIGatewayV2HTTPRequest{RouteKey: "POST /v1/commands", RawPath: "/v1/commands", Body: body, Headers: hdr})
	if err != nil {
		t.Fatal(err)
	}
	return resp
}
