package apigw

// queuedView is the 202 body of a command queued in the listen-to-yourself
// mode: accepted for processing, not applied, so there is no version and
// there are no event ids yet (docs/modes.md, "Listen to yourself").
type queuedView struct {
	AggregateID string `json:"aggregateId"`
	Status      string `json:"status"` // "queued"
	Detail      string `json:"detail"`
}

const queuedDetail = "accepted for processing; the change is applied shortly after this response and may not be visible yet"
