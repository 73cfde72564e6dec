package faults_test

import (
	"context"
	"errors"
	"fmt"
	"syscall"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/sesv2"
	sestypes "github.com/aws/aws-sdk-go-v2/service/sesv2/types"
	"github.com/aws/aws-sdk-go-v2/service/sqs"
	"github.com/aws/smithy-go"

	"github.com/dispatcher-dev/dispatcher/internal/testkit/faults"
	"github.com/dispatcher-dev/dispatcher/internal/testkit/testenv"
)

// faulty returns a copy of the emulators' config that sends through tr and
// never retries, so that each injected fault reaches the caller.
func faulty(env *testenv.Env, tr *faults.Transport) aws.Config {
	cfg := env.AWS.Copy()
	cfg.HTTPClient = tr
	cfg.RetryMaxAttempts = 1
	return cfg
}

// The "response lost after the write applied" case must really apply the
// write: the message is in the queue, the email in the store, while the
// client sees a connection reset.
func TestAfterApplyAppliesTheWriteOnTheEmulators(t *testing.T) {
	env := testenv.Get(t)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	sender, err := env.Stack.Eval.Param("SenderAddress")
	if err != nil {
		t.Fatal(err)
	}
	dlq := env.Stack.Physical("DeadLetterQueue")
	tests := []struct {
		name    string
		write   func(cfg aws.Config, marker string) error
		applied func(marker string) (bool, error)
	}{
		{
			name: "SQS message is in the queue though the client saw a reset",
			write: func(cfg aws.Config, marker string) error {
				_, err := sqs.NewFromConfig(cfg).SendMessage(ctx, &sqs.SendMessageInput{QueueUrl: aws.String(dlq), MessageBody: aws.String(marker)})
				return err
			},
			applied: func(marker string) (bool, error) {
				api := sqs.NewFromConfig(env.AWS)
				for range 5 {
					out, err := api.ReceiveMessage(ctx, &sqs.ReceiveMessageInput{QueueUrl: aws.String(dlq), MaxNumberOfMessages: 10, WaitTimeSeconds: 1})
					if err != nil {
						return false, err
					}
					for _, m := range out.Messages {
						api.DeleteMessage(ctx, &sqs.DeleteMessageInput{QueueUrl: aws.String(dlq), ReceiptHandle: m.ReceiptHandle})
						if aws.ToString(m.Body) == marker {
							return true, nil
						}
					}
				}
				return false, nil
			},
		},
		{
			name: "SES email is in the store though the client saw a reset",
			write: func(cfg aws.Config, marker string) error {
				_, err := sesv2.NewFromConfig(cfg).SendEmail(ctx, &sesv2.SendEmailInput{
					FromEmailAddress: aws.String(sender),
					Destination:      &sestypes.Destination{ToAddresses: []string{"someone@example.com"}},
					Content: &sestypes.EmailContent{Simple: &sestypes.Message{
						Subject: &sestypes.Content{Data: aws.String(marker)},
						Body:    &sestypes.Body{Text: &sestypes.Content{Data: aws.String("body")}},
					}},
				})
				return err
			},
			applied: func(marker string) (bool, error) {
				emails, err := env.SentEmails(ctx)
				if err != nil {
					return false, err
				}
				for _, e := range emails {
					if e.Subject == marker {
						return true, nil
					}
				}
				return false, nil
			},
		},
	}
	for i, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			tr := faults.New(nil)
			tr.Add(faults.Fault{AfterApply: true, Times: 1})
			marker := fmt.Sprintf("after-apply-%d-%d", i, time.Now().UnixNano())
			err := tt.write(faulty(env, tr), marker)
			if !errors.Is(err, syscall.ECONNRESET) {
				t.Fatalf("err = %v, want a connection reset", err)
			}
			var ae smithy.APIError
			if errors.As(err, &ae) {
				t.Errorf("err is an API error %q; a lost response has no code", ae.ErrorCode())
			}
			ok, err := tt.applied(marker)
			if err != nil {
				t.Fatal(err)
			}
			if !ok {
				t.Errorf("the write did not apply on the emulator")
			}
			if tr.Injected() != 1 {
				t.Errorf("Injected() = %d, want 1", tr.Injected())
			}
			// Used up: the next write goes through untouched.
			if err := tt.write(faulty(env, tr), marker+"-again"); err != nil {
				t.Errorf("second write: %v", err)
			}
		})
	}
}

// Injected errors reach the caller from the emulator-bound config exactly
// as from AWS, and the requests that are not faulted reach the emulators.
func TestTimesLimitsFaultsOnTheEmulators(t *testing.T) {
	env := testenv.Get(t)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	dlq := env.Stack.Physical("DeadLetterQueue")
	tr := faults.New(nil)
	tr.Add(faults.Fault{Match: faults.Target("SendMessage"), Times: 2, Status: 403, Code: "RequestThrottled"})
	api := sqs.NewFromConfig(faulty(env, tr))
	var codes []string
	for i := range 4 {
		_, err := api.SendMessage(ctx, &sqs.SendMessageInput{QueueUrl: aws.String(dlq), MessageBody: aws.String(fmt.Sprint("times-", i))})
		var ae smithy.APIError
		switch {
		case err == nil:
			codes = append(codes, "ok")
		case errors.As(err, &ae):
			codes = append(codes, ae.ErrorCode())
		default:
			t.Fatalf("send %d: %v", i, err)
		}
	}
	want := []string{"RequestThrottled", "RequestThrottled", "ok", "ok"}
	if fmt.Sprint(codes) != fmt.Sprint(want) {
		t.Errorf("outcomes = %v, want %v", codes, want)
	}
	if tr.Injected() != 2 {
		t.Errorf("Injected() = %d, want 2", tr.Injected())
	}
	if n := tr.Count(faults.Target("SendMessage")); n != 4 {
		t.Errorf("Count(SendMessage) = %d, want 4", n)
	}
}
