package faults_test

import (
	"context"
	"errors"
	"net/http"
	"net/http/httptest"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb"
	dtypes "github.com/aws/aws-sdk-go-v2/service/dynamodb/types"
	"github.com/aws/aws-sdk-go-v2/service/sesv2"
	sestypes "github.com/aws/aws-sdk-go-v2/service/sesv2/types"
	"github.com/aws/aws-sdk-go-v2/service/sqs"
	"github.com/aws/smithy-go"

	"github.com/dispatcher-dev/dispatcher/internal/testkit/faults"
	"github.com/dispatcher-dev/dispatcher/internal/testkit/testenv"
)

func TestMain(m *testing.M) { testenv.Main(m) }

// fakeAWS answers every request with an empty JSON success, so that a
// request the Transport lets through succeeds and one it faults fails.
func fakeAWS(t *testing.T) (*httptest.Server, *atomic.Int64) {
	t.Helper()
	var hits atomic.Int64
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		hits.Add(1)
		w.Header().Set("Content-Type", "application/json")
		w.Write([]byte(`{}`))
	}))
	t.Cleanup(srv.Close)
	return srv, &hits
}

func config(endpoint string, tr *faults.Transport) aws.Config {
	return aws.Config{
		Region: "us-east-1",
		Credentials: aws.CredentialsProviderFunc(func(context.Context) (aws.Credentials, error) {
			return aws.Credentials{AccessKeyID: "test", SecretAccessKey: "test"}, nil
		}),
		BaseEndpoint:     aws.String(endpoint),
		HTTPClient:       tr,
		RetryMaxAttempts: 1,
	}
}

// The injected responses must decode, in the real SDK clients, to an API
// error with the fault's code: that is what the adapters classify.
func TestInjectedErrorsDecodeToTheirCode(t *testing.T) {
	srv, _ := fakeAWS(t)
	ctx := context.Background()
	sendSQS := func(cfg aws.Config) error {
		_, err := sqs.NewFromConfig(cfg).SendMessage(ctx, &sqs.SendMessageInput{QueueUrl: aws.String(srv.URL + "/000000000000/q"), MessageBody: aws.String("x")})
		return err
	}
	sendSES := func(cfg aws.Config) error {
		_, err := sesv2.NewFromConfig(cfg).SendEmail(ctx, &sesv2.SendEmailInput{
			FromEmailAddress: aws.String("a@example.com"),
			Destination:      &sestypes.Destination{ToAddresses: []string{"b@example.com"}},
			Content:          &sestypes.EmailContent{Simple: &sestypes.Message{Subject: &sestypes.Content{Data: aws.String("s")}, Body: &sestypes.Body{Text: &sestypes.Content{Data: aws.String("t")}}}},
		})
		return err
	}
	updateDynamo := func(cfg aws.Config) error {
		_, err := dynamodb.NewFromConfig(cfg).UpdateItem(ctx, &dynamodb.UpdateItemInput{
			TableName: aws.String("t"),
			Key:       map[string]dtypes.AttributeValue{"pk": &dtypes.AttributeValueMemberS{Value: "k"}},
		})
		return err
	}
	tests := []struct {
		name       string
		call       func(aws.Config) error
		fault      faults.Fault
		wantCode   string
		wantStatus int
		wantFault  smithy.ErrorFault
	}{
		{name: "SQS throttling decodes to RequestThrottled", call: sendSQS,
			fault:    faults.Fault{Match: faults.Target("SendMessage"), Status: 403, Code: "RequestThrottled", Message: "slow down"},
			wantCode: "RequestThrottled", wantStatus: 403, wantFault: smithy.FaultClient},
		{name: "SQS 500 decodes to InternalError as a server fault", call: sendSQS,
			fault:    faults.Fault{Status: 500, Code: "InternalError"},
			wantCode: "InternalError", wantStatus: 500, wantFault: smithy.FaultServer},
		{name: "SQS modeled error reports its legacy query code", call: sendSQS,
			fault:    faults.Fault{Status: 400, Code: "QueueDoesNotExist", QueryCode: "AWS.SimpleQueueService.NonExistentQueue"},
			wantCode: "AWS.SimpleQueueService.NonExistentQueue", wantStatus: 400, wantFault: smithy.FaultClient},
		{name: "SQS code alone implies 400", call: sendSQS,
			fault:    faults.Fault{Code: "InvalidParameterValue"},
			wantCode: "InvalidParameterValue", wantStatus: 400, wantFault: smithy.FaultClient},
		{name: "SES v2 decodes MessageRejected", call: sendSES,
			fault:    faults.Fault{Match: faults.Path("/v2/email/outbound-emails"), Status: 400, Code: "MessageRejected", Message: "Email address is not verified."},
			wantCode: "MessageRejected", wantStatus: 400},
		{name: "SES v2 decodes TooManyRequestsException", call: sendSES,
			fault:    faults.Fault{Status: 429, Code: "TooManyRequestsException"},
			wantCode: "TooManyRequestsException", wantStatus: 429},
		{name: "SES v2 status alone implies InternalFailure", call: sendSES,
			fault:    faults.Fault{Status: 503},
			wantCode: "InternalFailure", wantStatus: 503},
		{name: "DynamoDB decodes ProvisionedThroughputExceededException", call: updateDynamo,
			fault:    faults.Fault{Match: faults.Target("UpdateItem"), Status: 400, Code: "ProvisionedThroughputExceededException"},
			wantCode: "ProvisionedThroughputExceededException", wantStatus: 400},
		{name: "DynamoDB decodes ThrottlingException", call: updateDynamo,
			fault:    faults.Fault{Status: 400, Code: "ThrottlingException"},
			wantCode: "ThrottlingException", wantStatus: 400},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			tr := faults.New(nil)
			tr.Add(tt.fault)
			err := tt.call(config(srv.URL, tr))
			var ae smithy.APIError
			if !errors.As(err, &ae) {
				t.Fatalf("err = %v, want an API error", err)
			}
			if ae.ErrorCode() != tt.wantCode {
				t.Errorf("ErrorCode() = %q, want %q (err: %v)", ae.ErrorCode(), tt.wantCode, err)
			}
			if tt.wantFault != smithy.FaultUnknown && ae.ErrorFault() != tt.wantFault {
				t.Errorf("ErrorFault() = %v, want %v", ae.ErrorFault(), tt.wantFault)
			}
			var resp interface{ HTTPStatusCode() int }
			if !errors.As(err, &resp) || resp.HTTPStatusCode() != tt.wantStatus {
				t.Errorf("HTTP status = %v, want %d", resp, tt.wantStatus)
			}
			if tr.Injected() != 1 {
				t.Errorf("Injected() = %d, want 1", tr.Injected())
			}
		})
	}
}

func TestFaultsApplyOnlyWhereTheyMatch(t *testing.T) {
	srv, hits := fakeAWS(t)
	ctx := context.Background()
	send := func(api *sqs.Client, op string) error {
		var err error
		switch op {
		case "SendMessage":
			_, err = api.SendMessage(ctx, &sqs.SendMessageInput{QueueUrl: aws.String(srv.URL + "/q"), MessageBody: aws.String("x")})
		case "GetQueueUrl":
			_, err = api.GetQueueUrl(ctx, &sqs.GetQueueUrlInput{QueueName: aws.String("q")})
		}
		return err
	}
	tests := []struct {
		name         string
		faults       []faults.Fault
		calls        []string
		wantFailed   []bool
		wantInjected int
	}{
		{name: "Times limits a fault to its first matching requests",
			faults:     []faults.Fault{{Times: 2, Status: 500}},
			calls:      []string{"SendMessage", "SendMessage", "SendMessage"},
			wantFailed: []bool{true, true, false}, wantInjected: 2},
		{name: "Times zero never runs out",
			faults:     []faults.Fault{{Status: 500}},
			calls:      []string{"SendMessage", "SendMessage", "SendMessage"},
			wantFailed: []bool{true, true, true}, wantInjected: 3},
		{name: "Target leaves other operations alone",
			faults:     []faults.Fault{{Match: faults.Target("SendMessage"), Status: 500}},
			calls:      []string{"GetQueueUrl", "SendMessage", "GetQueueUrl"},
			wantFailed: []bool{false, true, false}, wantInjected: 1},
		{name: "faults are consulted in order",
			faults:     []faults.Fault{{Times: 1, Status: 503}, {Match: faults.Target("GetQueueUrl"), Times: 1, Status: 500}},
			calls:      []string{"GetQueueUrl", "GetQueueUrl", "GetQueueUrl"},
			wantFailed: []bool{true, true, false}, wantInjected: 2},
		{name: "no fault lets everything through",
			calls:      []string{"SendMessage", "GetQueueUrl"},
			wantFailed: []bool{false, false}, wantInjected: 0},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			tr := faults.New(nil)
			for _, f := range tt.faults {
				tr.Add(f)
			}
			api := sqs.NewFromConfig(config(srv.URL, tr))
			before := hits.Load()
			for i, op := range tt.calls {
				err := send(api, op)
				if (err != nil) != tt.wantFailed[i] {
					t.Errorf("call %d (%s): err = %v, want failed %v", i, op, err, tt.wantFailed[i])
				}
			}
			if tr.Injected() != tt.wantInjected {
				t.Errorf("Injected() = %d, want %d", tr.Injected(), tt.wantInjected)
			}
			if got, want := hits.Load()-before, int64(len(tt.calls)-tt.wantInjected); got != want {
				t.Errorf("server saw %d requests, want %d", got, want)
			}
			if tr.Count(nil) != len(tt.calls) {
				t.Errorf("Count(nil) = %d, want %d", tr.Count(nil), len(tt.calls))
			}
			tr.Reset()
			if tr.Injected() != 0 || tr.Count(nil) != 0 {
				t.Errorf("after Reset: Injected() = %d, Count(nil) = %d, want 0, 0", tr.Injected(), tr.Count(nil))
			}
			if err := send(api, tt.calls[0]); err != nil {
				t.Errorf("after Reset the fault still applies: %v", err)
			}
		})
	}
}

func TestDelayEndsWithTheRequestContext(t *testing.T) {
	srv, hits := fakeAWS(t)
	tr := faults.New(nil)
	tr.Add(faults.Fault{Delay: time.Minute})
	api := sqs.NewFromConfig(config(srv.URL, tr))
	ctx, cancel := context.WithTimeout(context.Background(), 50*time.Millisecond)
	defer cancel()
	start := time.Now()
	_, err := api.SendMessage(ctx, &sqs.SendMessageInput{QueueUrl: aws.String(srv.URL + "/q"), MessageBody: aws.String("x")})
	if !errors.Is(err, context.DeadlineExceeded) {
		t.Errorf("err = %v, want context.DeadlineExceeded", err)
	}
	if d := time.Since(start); d > 5*time.Second {
		t.Errorf("took %s: the delay ignored the context", d)
	}
	if hits.Load() != 0 {
		t.Errorf("server saw %d requests, want 0", hits.Load())
	}
}

func TestAfterApplyForwardsThenResets(t *testing.T) {
	srv, hits := fakeAWS(t)
	tr := faults.New(nil)
	tr.Add(faults.Fault{AfterApply: true, Times: 1})
	api := sqs.NewFromConfig(config(srv.URL, tr))
	_, err := api.SendMessage(context.Background(), &sqs.SendMessageInput{QueueUrl: aws.String(srv.URL + "/q"), MessageBody: aws.String("x")})
	if !errors.Is(err, syscall.ECONNRESET) {
		t.Errorf("err = %v, want a connection reset", err)
	}
	if hits.Load() != 1 {
		t.Errorf("server saw %d requests, want 1: the write must reach it", hits.Load())
	}
}

func TestConcurrentRequestsUseUpTimesExactly(t *testing.T) {
	srv, hits := fakeAWS(t)
	tr := faults.New(nil)
	tr.Add(faults.Fault{Match: faults.Target("SendMessage"), Times: 25, Status: 500})
	api := sqs.NewFromConfig(config(srv.URL, tr))
	var failed atomic.Int64
	var wg sync.WaitGroup
	for range 100 {
		wg.Go(func() {
			_, err := api.SendMessage(context.Background(), &sqs.SendMessageInput{QueueUrl: aws.String(srv.URL + "/q"), MessageBody: aws.String("x")})
			if err != nil {
				failed.Add(1)
			}
		})
	}
	wg.Wait()
	if failed.Load() != 25 || tr.Injected() != 25 || hits.Load() != 75 || tr.Count(nil) != 100 {
		t.Errorf("failed %d, injected %d, server saw %d, counted %d; want 25, 25, 75, 100", failed.Load(), tr.Injected(), hits.Load(), tr.Count(nil))
	}
}
