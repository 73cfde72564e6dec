package dynamo

import (
	"encoding/json"
	"testing"

	"github.com/aws/aws-lambda-go/events"
)

// FuzzStreamRecord: no stream record makes decoding panic, and a record
// decoded without error is a valid outbox item.
func FuzzStreamRecord(f *testing.F) {
	f.Add(`{"eventName":"INSERT","dynamodb":{"Keys":{"pk":{"S":"AGG#a"},"sk":{"S":"OUTBOX#00000000000000000001#000"}},"NewImage":{"eventId":{"S":"e"},"eventType":{"S":"T"},"target":{"S":"events"},"payload":{"S":"{\"data\":{}}"}},"SequenceNumber":"1"}}`)
	f.Add(`{"eventName":"INSERT","dynamodb":{"Keys":{"pk":{"S":"AGG#a"},"sk":{"S":"OUTBOX#x"}}}}`)
	f.Add(`{"eventName":"INSERT","dynamodb":{"Keys":{"pk":{"S":"AGG#a"},"sk":{"S":"EVENT#00000000000000000002"}},"NewImage":{"eventId":{"S":"e"},"eventType":{"S":"T"},"target":{"S":"events"},"payload":{"S":"{\"data\":{}}"}},"SequenceNumber":"1"}}`)
	f.Add(`{"eventName":"MODIFY"}`)
	f.Add(`{"eventName":"INSERT","dynamodb":{"NewImage":{"m":{"M":{"l":{"L":[{"N":"1"},{"NULL":true},{"BS":["AA=="]}]}}}}}}`)
	f.Fuzz(func(t *testing.T, raw string) {
		var r events.DynamoDBEventRecord
		if json.Unmarshal([]byte(raw), &r) != nil {
			return
		}
		item, ok, err := StreamRecord(r)
		if ok && err == nil {
			if verr := item.Validate(); verr != nil {
				t.Fatalf("decoded an invalid item: %v", verr)
			}
		}
	})
}
