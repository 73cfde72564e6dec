package replay_test

import (
	"testing"

	"github.com/dispatcher-dev/dispatcher/internal/delivery"
	"github.com/dispatcher-dev/dispatcher/internal/dispatch"
	"github.com/dispatcher-dev/dispatcher/internal/replay"
)

// FuzzDLQMessage: no DLQ body makes parsing panic; an accepted parked
// message names a valid outbox key, an accepted on-failure record a range.
func FuzzDLQMessage(f *testing.F) {
	f.Add(`{"kind":"dispatcher.parked.v1","aggregateId":"a","version":1,"seq":0,"reason":"MessageRejected"}`)
	f.Add(`{"DDBStreamBatchInfo":{"shardId":"s","startSequenceNumber":"1","endSequenceNumber":"2","streamArn":"arn"}}`)
	f.Add(`{"kind":"dispatcher.parked.v1","aggregateId":"../x","version":-1}`)
	f.Add(`null`)
	f.Fuzz(func(t *testing.T, body string) {
		if p, err := delivery.ParseParked(body); err == nil {
			k := p.Key()
			if !dispatch.ValidAggregateID(k.AggregateID) || k.Version < 1 || k.Seq < 0 {
				t.Fatalf("accepted an invalid key %+v", k)
			}
		}
		if r, ok, err := replay.ParseOnFailure(body); ok && err == nil {
			b := r.DDBStreamBatchInfo
			if b.ShardID == "" || b.StartSequenceNumber == "" || b.EndSequenceNumber == "" || b.StreamArn == "" {
				t.Fatalf("accepted an incomplete range %+v", b)
			}
		}
	})
}
