package awscfg_test

import (
	"context"
	"io"
	"net/http"
	"net/http/httptest"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	"github.com/aws/aws-sdk-go-v2/service/dynamodb"

	"github.com/dispatcher-dev/dispatcher/internal/app/awscfg"
)

func envOf(m map[string]string) func(string) string { return func(k string) string { return m[k] } }

var lambdaEnv = map[string]string{"AWS_REGION": "eu-west-1", "AWS_ACCESS_KEY_ID": "AKIDEXAMPLE", "AWS_SECRET_ACCESS_KEY": "secret", "AWS_SESSION_TOKEN": "token"}

func with(extra map[string]string) map[string]string {
	m := map[string]string{}
	for k, v := range lambdaEnv {
		m[k] = v
	}
	for k, v := range extra {
		m[k] = v
	}
	return m
}

func TestMissingSettingsAreNamed(t *testing.T) {
	for _, tt := range []struct {
		env  map[string]string
		want []string
	}{
		{map[string]string{}, []string{"AWS_REGION", "AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY"}},
		{map[string]string{"AWS_DEFAULT_REGION": "us-east-1", "AWS_ACCESS_KEY_ID": "a"}, []string{"AWS_SECRET_ACCESS_KEY"}},
	} {
		_, err := awscfg.Load(envOf(tt.env))
		if err == nil {
			t.Fatalf("%v: no error", tt.env)
		}
		for _, w := range tt.want {
			if !strings.Contains(err.Error(), w) {
				t.Errorf("%v: error %q does not name %s", tt.env, err, w)
			}
		}
	}
}

// recorder answers ListTables and remembers where requests went and how
// they were signed.
type recorder struct {
	mu    sync.Mutex
	hits  int
	auth  string
	token string
}

func (r *recorder) server(t *testing.T) *httptest.Server {
	s := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
		io.Copy(io.Discard, req.Body)
		r.mu.Lock()
		r.hits++
		r.auth, r.token = req.Header.Get("Authorization"), req.Header.Get("X-Amz-Security-Token")
		r.mu.Unlock()
		w.Header().Set("Content-Type", "application/x-amz-json-1.0")
		io.WriteString(w, `{"TableNames":[]}`)
	}))
	t.Cleanup(s.Close)
	return s
}

// The SDK's own DynamoDB client, built from the configuration, goes where
// the standard endpoint variables say, signed with the environment's
// credentials for the environment's region.
func TestTheServiceClientsFollowTheEndpointVariables(t *testing.T) {
	specific, global := &recorder{}, &recorder{}
	s1, s2 := specific.server(t), global.server(t)
	for _, tt := range []struct {
		name string
		env  map[string]string
		want *recorder
	}{
		{"the service's own variable wins", with(map[string]string{"AWS_ENDPOINT_URL_DYNAMODB": s1.URL, "AWS_ENDPOINT_URL": s2.URL}), specific},
		{"else AWS_ENDPOINT_URL", with(map[string]string{"AWS_ENDPOINT_URL_SQS": s1.URL, "AWS_ENDPOINT_URL": s2.URL}), global},
	} {
		t.Run(tt.name, func(t *testing.T) {
			cfg, err := awscfg.Load(envOf(tt.env))
			if err != nil {
				t.Fatal(err)
			}
			before := tt.want.hits
			if _, err := dynamodb.NewFromConfig(cfg).ListTables(context.Background(), &dynamodb.ListTablesInput{}); err != nil {
				t.Fatal(err)
			}
			if tt.want.hits != before+1 {
				t.Fatalf("the request did not reach the expected endpoint")
			}
			if !strings.Contains(tt.want.auth, "Credential=AKIDEXAMPLE/") || !strings.Contains(tt.want.auth, "/eu-west-1/dynamodb/aws4_request") || tt.want.token != "token" {
				t.Errorf("signed %q with token %q, want the environment's key, region and session token", tt.want.auth, tt.want.token)
			}
		})
	}
	t.Run("AWS_IGNORE_CONFIGURED_ENDPOINT_URLS turns them off", func(t *testing.T) {
		cfg, err := awscfg.Load(envOf(with(map[string]string{"AWS_ENDPOINT_URL_DYNAMODB": s1.URL, "AWS_ENDPOINT_URL": s2.URL, "AWS_IGNORE_CONFIGURED_ENDPOINT_URLS": "true"})))
		if err != nil {
			t.Fatal(err)
		}
		if cfg.BaseEndpoint != nil || len(cfg.ConfigSources) != 0 {
			t.Errorf("endpoints configured: base %v, sources %v", cfg.BaseEndpoint, cfg.ConfigSources)
		}
	})
}

// The functions link no credential chain and no Secrets Manager or SSM
// client, and the command function no SQS client (it sends its one message
// with one signed request): what they would cost at every cold start is why
// this package exists (docs/cost.md).
func TestTheFunctionsLinkNoCredentialChainOrSecretClients(t *testing.T) {
	if testing.Short() {
		t.Skip("runs go list")
	}
	everywhere := []string{"aws-sdk-go-v2/config", "aws-sdk-go-v2/service/sts", "aws-sdk-go-v2/service/sso", "aws-sdk-go-v2/service/ssm", "aws-sdk-go-v2/service/secretsmanager", "aws-sdk-go-v2/credentials"}
	for fn, banned := range map[string][]string{
		"./functions/command":      append(everywhere, "aws-sdk-go-v2/service/sqs", "aws-sdk-go-v2/service/dynamodbstreams"),
		"./functions/stream-relay": everywhere,
		"./functions/dlq-replay":   everywhere,
	} {
		cmd := exec.Command("go", "list", "-deps", "-tags", "lambda.norpc", fn)
		cmd.Dir = filepath.Join("..", "..", "..")
		out, err := cmd.Output()
		if err != nil {
			t.Fatal(err)
		}
		for _, b := range banned {
			for _, dep := range strings.Fields(string(out)) {
				if strings.HasSuffix(dep, b) || strings.Contains(dep, b+"/") {
					t.Errorf("%s links %s", fn, dep)
				}
			}
		}
	}
}
