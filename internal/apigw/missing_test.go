package apigw_test

import (
	"net/http"
	"testing"

	"github.com/aws/aws-lambda-go/events"

	"github.com/dispatcher-dev/dispatcher/internal/apigw"
)

// The outbox and the events of an aggregate that does not exist answer as
// the aggregate does: 404. An aggregate that exists but has nothing to list
// (a Dispatch without effects, an outbox-mode aggregate's events, an outbox
// whose delivered items expired) gets an empty 200 page. Both modes.
func TestListsOfAMissingAggregateAnswer404(t *testing.T) {
	inBothModes(t, func(t *testing.T, f *fixture) {
		acct := newID("acct")
		f.mustAccept(openAccount(acct))
		quiet := newID("quiet")
		f.mustAccept(`{"type":"Dispatch","aggregateId":"` + quiet + `","data":{"aggregateType":"Order","state":{"status":"new"}}}`)
		missing := newID("missing")
		outbox := func(id string) events.APIGatewayV2HTTPRequest { return f.get("/v1/aggregates/"+id+"/outbox", id, nil) }
		tests := []struct {
			name   string
			req    events.APIGatewayV2HTTPRequest
			status int
		}{
			{"the aggregate of a missing id is 404", f.get("/v1/aggregates/"+missing, missing, nil), http.StatusNotFound},
			{"its outbox is 404 too", outbox(missing), http.StatusNotFound},
			{"its events are 404 too", f.events(missing, nil), http.StatusNotFound},
			{"its outbox with a cursor is 404 too", f.get("/v1/aggregates/"+missing+"/outbox", missing, map[string]string{"cursor": "T1VUQk9YIzAwMDAwMDAwMDAwMDAwMDAwMDAxIzAwMA"}), http.StatusNotFound},
			{"an account's outbox is 200", outbox(acct), http.StatusOK},
			{"an account's events are 200", f.events(acct, nil), http.StatusOK},
			{"the empty outbox of an aggregate without effects is 200", outbox(quiet), http.StatusOK},
			{"the events of an aggregate without events are 200", f.events(quiet, nil), http.StatusOK},
		}
		for _, tt := range tests {
			t.Run(tt.name, func(t *testing.T) {
				resp, body := f.do(tt.req)
				if resp.StatusCode != tt.status {
					t.Fatalf("status %d, want %d: %s", resp.StatusCode, tt.status, resp.Body)
				}
				if tt.status == http.StatusNotFound && (body["type"] != apigw.ProblemBase+"not-found" || body["detail"] != "no aggregate "+missing) {
					t.Errorf("body %s, want the aggregate's own not-found problem", resp.Body)
				}
			})
		}
	})
}
