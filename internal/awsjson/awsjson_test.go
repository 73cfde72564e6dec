package awsjson

import (
	"context"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/smithy-go"
)

// The requests' and answers' shapes against real services are tested where
// they are used: internal/sqs (SendMessage, against the SQS emulator, moto
// and the SDK's own client) and internal/app/commandfn (Secrets Manager and
// SSM, against moto). These are the rules of this package alone.

var sqsLike = Service{SigningName: "sqs", SDKID: "SQS", TargetPrefix: "AmazonSQS.", JSONVersion: "1.0", MaxResponse: 1 << 10, QueryCompatible: true}

func client(env map[string]string, cfg aws.Config) *Client {
	c := New(cfg)
	c.getenv = func(k string) string { return env[k] }
	return c
}

func TestEndpointIsChosenAsTheSDKChoosesIt(t *testing.T) {
	base := "http://base.example"
	tests := []struct {
		name string
		env  map[string]string
		cfg  aws.Config
		want string
	}{
		{"the service's variable first", map[string]string{"AWS_ENDPOINT_URL_SQS": "http://sqs.local", "AWS_ENDPOINT_URL": "http://all.local"}, aws.Config{Region: "eu-west-1"}, "http://sqs.local"},
		{"a service id with a space", map[string]string{"AWS_ENDPOINT_URL_SECRETS_MANAGER": "http://sm.local"}, aws.Config{Region: "eu-west-1"}, "http://sm.local"},
		{"then the global variable", map[string]string{"AWS_ENDPOINT_URL": "http://all.local"}, aws.Config{Region: "eu-west-1"}, "http://all.local"},
		{"the variables can be ignored", map[string]string{"AWS_ENDPOINT_URL_SQS": "http://sqs.local", "AWS_IGNORE_CONFIGURED_ENDPOINT_URLS": "TRUE"}, aws.Config{Region: "eu-west-1"}, "https://sqs.eu-west-1.amazonaws.com"},
		{"then the configuration's base endpoint", nil, aws.Config{Region: "eu-west-1", BaseEndpoint: &base}, base},
		{"then the regional endpoint", nil, aws.Config{Region: "eu-west-1"}, "https://sqs.eu-west-1.amazonaws.com"},
		{"China's partition", nil, aws.Config{Region: "cn-north-1"}, "https://sqs.cn-north-1.amazonaws.com.cn"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			svc := sqsLike
			if strings.Contains(tt.name, "space") {
				svc.SDKID = "Secrets Manager"
			}
			got, err := client(tt.env, tt.cfg).endpoint(svc)
			if err != nil || got != tt.want {
				t.Errorf("endpoint = %q, %v; want %q", got, err, tt.want)
			}
		})
	}
	if _, err := client(nil, aws.Config{}).endpoint(sqsLike); err == nil || !strings.Contains(err.Error(), "AWS_REGION") {
		t.Errorf("no region: err = %v, want one naming AWS_REGION", err)
	}
}

// server answers every request with status, headers and body, and counts them.
func server(t *testing.T, status int, header map[string]string, body string) (*httptest.Server, *atomic.Int64, *http.Request) {
	var n atomic.Int64
	seen := &http.Request{}
	s := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		n.Add(1)
		*seen = *r.Clone(context.Background())
		_, _ = io.ReadAll(r.Body)
		for k, v := range header {
			w.Header().Set(k, v)
		}
		w.WriteHeader(status)
		_, _ = io.WriteString(w, body)
	}))
	t.Cleanup(s.Close)
	return s, &n, seen
}

func cfgFor(url string) aws.Config {
	return aws.Config{Region: "eu-west-1", BaseEndpoint: &url, Credentials: aws.CredentialsProviderFunc(func(context.Context) (aws.Credentials, error) {
		return aws.Credentials{AccessKeyID: "AKID", SecretAccessKey: "SECRET"}, nil
	})}
}

func TestARequestIsSignedAndNamedAsTheSDKSendsIt(t *testing.T) {
	s, _, seen := server(t, 200, nil, `{"MessageId":"m"}`)
	var out struct{ MessageId string }
	if err := client(nil, cfgFor(s.URL)).Call(context.Background(), sqsLike, "SendMessage", map[string]string{"QueueUrl": "q"}, &out); err != nil {
		t.Fatal(err)
	}
	if out.MessageId != "m" {
		t.Errorf("decoded %+v", out)
	}
	for k, want := range map[string]string{"X-Amz-Target": "AmazonSQS.SendMessage", "Content-Type": "application/x-amz-json-1.0", "X-Amzn-Query-Mode": "true"} {
		if got := seen.Header.Get(k); got != want {
			t.Errorf("%s = %q, want %q", k, got, want)
		}
	}
	if auth := seen.Header.Get("Authorization"); !strings.HasPrefix(auth, "AWS4-HMAC-SHA256 Credential=AKID/") || !strings.Contains(auth, "/eu-west-1/sqs/aws4_request") {
		t.Errorf("Authorization = %q, want SigV4 for sqs in eu-west-1", auth)
	}
}

func TestErrorsAreDecodedAndRetriedAsTheSDKDoes(t *testing.T) {
	tests := []struct {
		name     string
		status   int
		header   map[string]string
		body     string
		svc      Service
		wantCode string
		calls    int64
	}{
		{"the code in __type, after its namespace", 400, nil, `{"__type":"com.amazonaws.sqs#QueueDoesNotExist","message":"gone"}`, Service{JSONVersion: "1.1", MaxResponse: 1 << 10}, "QueueDoesNotExist", 1},
		{"the code in X-Amzn-ErrorType, before ':'", 400, map[string]string{"X-Amzn-ErrorType": "ResourceNotFoundException:http://internal"}, `{}`, Service{JSONVersion: "1.1", MaxResponse: 1 << 10}, "ResourceNotFoundException", 1},
		{"the legacy code of a query-compatible service", 400, map[string]string{"X-Amzn-Query-Error": "AWS.SimpleQueueService.NonExistentQueue;Sender"}, `{"__type":"com.amazonaws.sqs#QueueDoesNotExist"}`, sqsLike, "AWS.SimpleQueueService.NonExistentQueue", 1},
		{"no code: the status text", 403, nil, `<html>`, sqsLike, "Forbidden", 1},
		{"throttling is retried", 400, nil, `{"__type":"ThrottlingException"}`, sqsLike, "ThrottlingException", Attempts},
		{"a 5xx is retried", 502, nil, ``, sqsLike, "Bad Gateway", Attempts},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s, n, _ := server(t, tt.status, tt.header, tt.body)
			err := client(nil, cfgFor(s.URL)).Call(context.Background(), tt.svc, "Op", struct{}{}, nil)
			var ae smithy.APIError
			var status interface{ HTTPStatusCode() int }
			if !errors.As(err, &ae) || ae.ErrorCode() != tt.wantCode || !errors.As(err, &status) || status.HTTPStatusCode() != tt.status {
				t.Fatalf("err = %v, want a smithy.APIError %s with status %d", err, tt.wantCode, tt.status)
			}
			if n.Load() != tt.calls {
				t.Errorf("%d calls, want %d", n.Load(), tt.calls)
			}
		})
	}
}

// An answer of 200 that cannot be read is not tried again: the call applied,
// and sending it again would apply it twice.
func TestAnUnreadableAnswerIsRefusedAndNotRetried(t *testing.T) {
	for name, tc := range map[string]struct{ body, want string }{
		"over the limit": {`{"x":"` + strings.Repeat("a", 2<<10) + `"}`, "over 1024 bytes"},
		"not JSON":       {`<html>`, "decode the answer"},
	} {
		t.Run(name, func(t *testing.T) {
			s, n, _ := server(t, 200, nil, tc.body)
			err := client(nil, cfgFor(s.URL)).Call(context.Background(), sqsLike, "Op", struct{}{}, &struct{}{})
			if err == nil || !strings.Contains(err.Error(), tc.want) || n.Load() != 1 {
				t.Errorf("err = %v after %d calls, want %q after 1", err, n.Load(), tc.want)
			}
		})
	}
}
