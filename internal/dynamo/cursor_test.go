package dynamo_test

import (
	"context"
	"encoding/base64"
	"fmt"
	"math"
	"net/http"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb"

	"github.com/dispatcher-dev/dispatcher/internal/dispatch"
	"github.com/dispatcher-dev/dispatcher/internal/dynamo"
	"github.com/dispatcher-dev/dispatcher/internal/testkit/testenv"
)

// countingClient counts the requests that reach DynamoDB.
type countingClient struct {
	next  aws.HTTPClient
	calls *atomic.Int64
}

func (c countingClient) Do(r *http.Request) (*http.Response, error) {
	c.calls.Add(1)
	return c.next.Do(r)
}

// A page cursor is a sort key this store wrote, base64url-encoded. Anything
// else, and in particular a key longer than DynamoDB's 1,024 bytes for a sort
// key, is refused as invalid before DynamoDB is called; the longest cursor a
// page can return is accepted.
func TestPageCursors(t *testing.T) {
	env := testenv.Get(t)
	cfg := env.AWS.Copy()
	var calls atomic.Int64
	next := cfg.HTTPClient
	if next == nil {
		next = http.DefaultClient
	}
	cfg.HTTPClient = countingClient{next: next, calls: &calls}
	store := dynamo.New(dynamodb.NewFromConfig(cfg), env.Stack.Physical("OutboxTable"), 8)
	id := fmt.Sprintf("cursor-%d", time.Now().UnixNano())
	enc := base64.RawURLEncoding.EncodeToString
	longest := enc([]byte(dynamo.OutboxSK(math.MaxInt64, 999)))

	type list func(ctx context.Context, id string, limit int, cursor string) ([]dispatch.OutboxItem, string, error)
	tests := []struct {
		name   string
		list   list
		cursor string
		ok     bool
	}{
		{"accepts the longest outbox cursor", store.ListOutbox, longest, true},
		{"accepts the longest events cursor", store.ListEvents, enc([]byte(dynamo.EventSK(math.MaxInt64))), true},
		{"accepts a first page's cursor", store.ListOutbox, enc([]byte(dynamo.OutboxSK(1, 0))), true},
		{"refuses a cursor one character longer than the longest", store.ListOutbox, longest + "A", false},
		{"refuses a cursor of a sort key over DynamoDB's 1,024 bytes", store.ListOutbox, enc([]byte(dynamo.OutboxSK(1, 0) + strings.Repeat("0", 1024))), false},
		{"refuses a cursor of a partition key's size", store.ListEvents, enc([]byte("EVENT#" + strings.Repeat("9", 2048))), false},
		{"refuses a cursor of another list", store.ListOutbox, enc([]byte(dynamo.EventSK(1))), false},
		{"refuses a key of the right prefix that the store never writes", store.ListOutbox, enc([]byte("OUTBOX#zzz")), false},
		{"refuses a version with a sign", store.ListEvents, enc([]byte("EVENT#+0000000000000000001")), false},
		{"refuses a key that is not UTF-8", store.ListOutbox, enc([]byte("OUTBOX#\xff")), false},
		{"refuses what is not base64url", store.ListOutbox, "a+b/", false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			before := calls.Load()
			_, _, err := tt.list(context.Background(), id, 10, tt.cursor)
			n := calls.Load() - before
			switch {
			case tt.ok && (err != nil || n != 1):
				t.Errorf("err %v after %d calls, want a page from one call", err, n)
			case !tt.ok && (dispatch.KindOf(err) != dispatch.Invalid || !strings.Contains(err.Error(), "cursor")):
				t.Errorf("err %v, want an invalid cursor", err)
			case !tt.ok && n != 0:
				t.Errorf("%d calls to DynamoDB for a cursor refused", n)
			}
		})
	}
}
