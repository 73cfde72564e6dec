package replay

import (
	"encoding/json"
	"fmt"
)

// OnFailure is the record a Lambda event source mapping sends to its
// on-failure destination when a DynamoDB Streams batch is discarded, field
// for field as AWS documents it. It carries no records, only where they were
// in the stream. The DLQ replay reads it (and the local runner, emulating
// the mapping, writes it).
type OnFailure struct {
	RequestContext struct {
		RequestID              string `json:"requestId"`
		FunctionArn            string `json:"functionArn"`
		Condition              string `json:"condition"` // RetryAttemptsExhausted, RecordAgeExceeded
		ApproximateInvokeCount int    `json:"approximateInvokeCount"`
	} `json:"requestContext"`
	ResponseContext    ResponseContext `json:"responseContext"`
	Version            string          `json:"version"`
	Timestamp          string          `json:"timestamp"`
	DDBStreamBatchInfo *BatchInfo      `json:"DDBStreamBatchInfo"`
}

// ResponseContext is the last invocation's outcome.
type ResponseContext struct {
	StatusCode      int    `json:"statusCode"`
	ExecutedVersion string `json:"executedVersion"`
	FunctionError   string `json:"functionError,omitempty"`
}

// BatchInfo locates the discarded batch in the stream.
type BatchInfo struct {
	ShardID                         string `json:"shardId"`
	StartSequenceNumber             string `json:"startSequenceNumber"`
	EndSequenceNumber               string `json:"endSequenceNumber"`
	ApproximateArrivalOfFirstRecord string `json:"approximateArrivalOfFirstRecord"`
	ApproximateArrivalOfLastRecord  string `json:"approximateArrivalOfLastRecord"`
	BatchSize                       int    `json:"batchSize"`
	StreamArn                       string `json:"streamArn"`
}

// ParseOnFailure decodes an on-failure record; ok is false when the body is
// not one.
func ParseOnFailure(body string) (OnFailure, bool, error) {
	var r OnFailure
	if err := json.Unmarshal([]byte(body), &r); err != nil {
		return r, false, nil
	}
	if r.DDBStreamBatchInfo == nil {
		return r, false, nil
	}
	b := r.DDBStreamBatchInfo
	if b.ShardID == "" || b.StartSequenceNumber == "" || b.EndSequenceNumber == "" || b.StreamArn == "" {
		return r, true, fmt.Errorf("on-failure record: incomplete DDBStreamBatchInfo")
	}
	return r, true, nil
}
