package sqs

import (
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"syscall"
	"testing"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/sqs/types"
	"github.com/aws/smithy-go"

	"github.com/dispatcher-dev/dispatcher/internal/dispatch"
)

// The emulator reports per-entry failures only with SenderFault set
// (sqs_test.go covers that case end to end); the rest is pure logic.
func TestClassifyEntry(t *testing.T) {
	tests := []struct {
		name     string
		entry    types.BatchResultErrorEntry
		wantKind dispatch.Kind
		wantMsg  string
	}{
		{name: "a sender fault is Permanent", entry: types.BatchResultErrorEntry{Code: aws.String("InvalidMessageContents"), SenderFault: true}, wantKind: dispatch.Permanent, wantMsg: "InvalidMessageContents"},
		{name: "an unknown sender fault is Permanent", entry: types.BatchResultErrorEntry{Code: aws.String("SomethingNew"), SenderFault: true}, wantKind: dispatch.Permanent, wantMsg: "SomethingNew"},
		{name: "a server fault is Transient", entry: types.BatchResultErrorEntry{Code: aws.String("InternalError")}, wantKind: dispatch.Transient, wantMsg: "InternalError"},
		{name: "an unknown server fault is Transient", entry: types.BatchResultErrorEntry{Code: aws.String("SomethingNew")}, wantKind: dispatch.Transient, wantMsg: "SomethingNew"},
		{name: "throttling is Transient even as a sender fault", entry: types.BatchResultErrorEntry{Code: aws.String("RequestThrottled"), SenderFault: true}, wantKind: dispatch.Transient, wantMsg: "RequestThrottled"},
		{name: "a disabled KMS key is account-wide", entry: types.BatchResultErrorEntry{Code: aws.String("KMS.DisabledException"), SenderFault: true}, wantKind: dispatch.AccountWide, wantMsg: "KMS.DisabledException"},
		{name: "a missing code is still classified", entry: types.BatchResultErrorEntry{SenderFault: true}, wantKind: dispatch.Permanent, wantMsg: "UnknownError"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			tt.entry.Id = aws.String("0")
			tt.entry.Message = aws.String("details")
			err := classifyEntry("sqs.SendBatch", tt.entry)
			if err.Kind != tt.wantKind || err.Msg != tt.wantMsg {
				t.Errorf("got %v / %q, want %v / %q", err.Kind, err.Msg, tt.wantKind, tt.wantMsg)
			}
			var ae smithy.APIError
			if !errors.As(err, &ae) || ae.ErrorMessage() != "details" {
				t.Errorf("cause %v does not carry the entry's API error", err.Err)
			}
		})
	}
}

type timeoutErr struct{}

func (timeoutErr) Error() string   { return "i/o timeout" }
func (timeoutErr) Timeout() bool   { return true }
func (timeoutErr) Temporary() bool { return true }

// Errors that never got an answer, as the SDK wraps them.
func TestClassifyTransportErrors(t *testing.T) {
	wrap := func(err error) error {
		return &smithy.OperationError{ServiceID: "SQS", OperationName: "SendMessageBatch", Err: fmt.Errorf("send: %w", err)}
	}
	tests := []struct {
		name     string
		err      error
		wantKind dispatch.Kind
		wantMsg  string
	}{
		{name: "a deadline is a Transient timeout", err: wrap(context.DeadlineExceeded), wantKind: dispatch.Transient, wantMsg: "Timeout"},
		{name: "a network timeout is a Transient timeout", err: wrap(&net.OpError{Op: "read", Net: "tcp", Err: timeoutErr{}}), wantKind: dispatch.Transient, wantMsg: "Timeout"},
		{name: "a cancelled context is Transient", err: wrap(context.Canceled), wantKind: dispatch.Transient, wantMsg: "Canceled"},
		{name: "a reset is Transient", err: wrap(&net.OpError{Op: "read", Net: "tcp", Err: os.NewSyscallError("read", syscall.ECONNRESET)}), wantKind: dispatch.Transient, wantMsg: "Network"},
		{name: "a refused connection is Transient", err: wrap(&net.OpError{Op: "dial", Net: "tcp", Err: os.NewSyscallError("connect", syscall.ECONNREFUSED)}), wantKind: dispatch.Transient, wantMsg: "Network"},
		{name: "an unreadable answer is Transient", err: wrap(&smithy.DeserializationError{Err: errors.New("bad json")}), wantKind: dispatch.Transient, wantMsg: "ResponseUnreadable"},
		{name: "the SDK's own validation is Internal", err: wrap(smithy.InvalidParamsError{Context: "SendMessageBatchInput"}), wantKind: dispatch.Internal, wantMsg: "InvalidParams"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := classify("sqs.SendBatch", tt.err)
			if err.Kind != tt.wantKind || err.Msg != tt.wantMsg {
				t.Errorf("got %v / %q, want %v / %q", err.Kind, err.Msg, tt.wantKind, tt.wantMsg)
			}
			if !errors.Is(err, tt.err) {
				t.Errorf("the cause is lost")
			}
		})
	}
}
