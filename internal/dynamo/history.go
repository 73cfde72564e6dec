package dynamo

import (
	"context"
	"fmt"
	"math"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb/types"

	"github.com/dispatcher-dev/dispatcher/internal/dispatch"
)

// LoadHistory reads an event-sourced aggregate: its latest snapshot, then
// the events after it, with consistent reads. Folding them
// (dispatch.Fold) gives the current state.
func (s *Store) LoadHistory(ctx context.Context, id string) (dispatch.History, error) {
	const op = "dynamo.LoadHistory"
	var h dispatch.History
	pk := aggregatePK(id)
	out, err := s.db.Query(ctx, &dynamodb.QueryInput{
		TableName:              aws.String(s.table),
		KeyConditionExpression: aws.String("pk = :pk AND begins_with(sk, :snap)"),
		ExpressionAttributeValues: map[string]types.AttributeValue{
			":pk": str(pk), ":snap": str(prefixSnapshot),
		},
		ScanIndexForward: aws.Bool(false),
		Limit:            aws.Int32(1),
		ConsistentRead:   aws.Bool(true),
	})
	if err != nil {
		return h, Classify(op, err)
	}
	from := int64(1)
	if len(out.Items) > 0 {
		it := out.Items[0]
		a := dispatch.Aggregate{ID: id, Type: getS(it, attrAggregateType), Version: getN(it, attrVersion),
			CreatedAt: getTime(it, attrCreatedAt), UpdatedAt: getTime(it, attrUpdatedAt), Data: map[string]any{}}
		if m, ok := it[attrData].(*types.AttributeValueMemberM); ok {
			if a.Data, err = fromAVMap(m.Value); err != nil {
				return h, dispatch.E(op, dispatch.Internal, "", err)
			}
		}
		h.Snapshot = &a
		from = a.Version + 1
	}
	in := &dynamodb.QueryInput{
		TableName:              aws.String(s.table),
		KeyConditionExpression: aws.String("pk = :pk AND sk BETWEEN :from AND :to"),
		ExpressionAttributeValues: map[string]types.AttributeValue{
			":pk": str(pk), ":from": str(EventSK(from)), ":to": str(EventSK(math.MaxInt64)),
		},
		ConsistentRead: aws.Bool(true),
	}
	for {
		res, err := s.db.Query(ctx, in)
		if err != nil {
			return h, Classify(op, err)
		}
		for _, it := range res.Items {
			e, err := decodeEvent(it)
			if err != nil {
				return h, dispatch.E(op, dispatch.Internal, "", err)
			}
			h.Events = append(h.Events, e)
		}
		if res.LastEvaluatedKey == nil {
			return h, nil
		}
		in.ExclusiveStartKey = res.LastEvaluatedKey
	}
}

// decodeEvent reads an EVENT item as a recorded event.
func decodeEvent(it map[string]types.AttributeValue) (dispatch.RecordedEvent, error) {
	o := decodeOutbox(it)
	// Numbers stay json.Number: amounts never pass through a float.
	data, err := dispatch.DecodeJSONObject(o.Payload)
	if err != nil {
		return dispatch.RecordedEvent{}, fmt.Errorf("event %s of %s: %w", getS(it, attrSK), o.AggregateID, err)
	}
	d, _ := data["data"].(map[string]any)
	if d == nil {
		d = map[string]any{}
	}
	var private map[string]any
	if len(o.Private) > 0 {
		if private, err = dispatch.DecodeJSONObject(o.Private); err != nil {
			return dispatch.RecordedEvent{}, fmt.Errorf("event %s of %s, private data: %w", getS(it, attrSK), o.AggregateID, err)
		}
	}
	return dispatch.RecordedEvent{
		AggregateID: o.AggregateID, AggregateType: o.AggregateType, Version: o.Version,
		EventID: o.EventID, Type: o.EventType, Data: d, Private: private, CreatedAt: o.CreatedAt,
	}, nil
}

// ListEvents returns an event-sourced aggregate's events with their
// delivery state, in version order, a page at a time; cursor is opaque (""
// for the first page). An aggregate in outbox mode has none.
func (s *Store) ListEvents(ctx context.Context, aggregateID string, limit int, cursor string) ([]dispatch.OutboxItem, string, error) {
	raw, next, err := s.page(ctx, "dynamo.ListEvents", aggregateID, prefixEvent, limit, cursor)
	if err != nil {
		return nil, "", err
	}
	items := make([]dispatch.OutboxItem, 0, len(raw))
	for _, it := range raw {
		o := decodeOutbox(it)
		o.History = true
		items = append(items, o)
	}
	return items, next, nil
}
