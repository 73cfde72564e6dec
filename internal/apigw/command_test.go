package apigw_test

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/aws/aws-lambda-go/events"
	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb/types"

	"github.com/dispatcher-dev/dispatcher/internal/apigw"
	"github.com/dispatcher-dev/dispatcher/internal/command"
	"github.com/dispatcher-dev/dispatcher/internal/dispatch"
	"github.com/dispatcher-dev/dispatcher/internal/dynamo"
)

func TestOpenAccountWritesStateOutboxAndIdempotencyInOneTransaction(t *testing.T) {
	f := newFixture(t)
	id := newID("acct")
	resp, body := f.do(f.post(openAccount(id)))
	if resp.StatusCode != http.StatusAccepted {
		t.Fatalf("status %d: %s", resp.StatusCode, resp.Body)
	}
	if body["version"] != float64(1) || len(body["eventIds"].([]any)) != 2 || body["replayed"] != false {
		t.Errorf("body = %v, want version 1, two event ids, not replayed", body)
	}
	if resp.Headers["Location"] != "/v1/aggregates/"+id {
		t.Errorf("Location = %q", resp.Headers["Location"])
	}
	out, err := f.db.Query(context.Background(), &dynamodb.QueryInput{
		TableName: aws.String(f.table), ConsistentRead: aws.Bool(true),
		KeyConditionExpression:    aws.String("pk = :pk"),
		ExpressionAttributeValues: map[string]types.AttributeValue{":pk": &types.AttributeValueMemberS{Value: "AGG#" + id}},
	})
	if err != nil {
		t.Fatal(err)
	}
	if len(out.Items) != 3 {
		t.Fatalf("%d items under the aggregate, want state + 2 outbox", len(out.Items))
	}
	var targets []string
	for _, it := range out.Items {
		sk := it["sk"].(*types.AttributeValueMemberS).Value
		if sk == "STATE" {
			if v := it["version"].(*types.AttributeValueMemberN).Value; v != "1" {
				t.Errorf("state version = %s", v)
			}
			continue
		}
		if !strings.HasPrefix(sk, "OUTBOX#00000000000000000001#") {
			t.Errorf("outbox sort key %q", sk)
		}
		if s := it["status"].(*types.AttributeValueMemberS).Value; s != "PENDING" {
			t.Errorf("status = %s", s)
		}
		if _, ok := it["undeliveredShard"]; !ok {
			t.Errorf("%s lacks the sparse index key", sk)
		}
		if tp := it["traceparent"].(*types.AttributeValueMemberS).Value; len(tp) != 55 {
			t.Errorf("traceparent %q", tp)
		}
		targets = append(targets, it["target"].(*types.AttributeValueMemberS).Value+":"+it["eventType"].(*types.AttributeValueMemberS).Value)
	}
	if got := strings.Join(targets, ","); got != "events:AccountOpened,email:email.account-welcome" {
		t.Errorf("effects = %s", got)
	}
}

func TestRepeatedIdempotencyKey(t *testing.T) {
	f := newFixture(t)
	id := newID("acct")
	first := f.post(openAccount(id), func(r *events.APIGatewayV2HTTPRequest) { r.Headers["idempotency-key"] = "key-" + id })
	resp1, body1 := f.do(first)
	if resp1.StatusCode != http.StatusAccepted {
		t.Fatalf("first: %d %s", resp1.StatusCode, resp1.Body)
	}
	before, idemps := f.count(id), f.idempotencyRecords()

	t.Run("with the same body returns the first response and writes nothing", func(t *testing.T) {
		again := f.post(openAccount(id), func(r *events.APIGatewayV2HTTPRequest) { r.Headers["idempotency-key"] = "key-" + id })
		resp, body := f.do(again)
		if resp.StatusCode != http.StatusAccepted || resp.Headers["Idempotent-Replayed"] != "true" || body["replayed"] != true {
			t.Fatalf("replay: %d %v %s", resp.StatusCode, resp.Headers, resp.Body)
		}
		if fmt.Sprint(body["eventIds"]) != fmt.Sprint(body1["eventIds"]) || body["version"] != body1["version"] {
			t.Errorf("replay answered %v, first answer was %v", body, body1)
		}
		if f.count(id) != before || f.idempotencyRecords() != idemps {
			t.Errorf("the replay wrote something")
		}
	})
	t.Run("with another body is rejected with 422 and writes nothing", func(t *testing.T) {
		other := f.post(deposit(id, 100, "other"), func(r *events.APIGatewayV2HTTPRequest) { r.Headers["idempotency-key"] = "key-" + id })
		resp, body := f.do(other)
		if resp.StatusCode != http.StatusUnprocessableEntity || !strings.Contains(resp.Body, "Idempotency-Key") {
			t.Fatalf("got %d %v", resp.StatusCode, body)
		}
		if f.count(id) != before || f.idempotencyRecords() != idemps {
			t.Errorf("the rejected request wrote something")
		}
	})
	t.Run("falls back to the webhook-id when there is no Idempotency-Key", func(t *testing.T) {
		req := f.post(deposit(id, 5, "by-webhook-id"))
		resp, _ := f.do(req)
		if resp.StatusCode != http.StatusAccepted {
			t.Fatalf("first: %d %s", resp.StatusCode, resp.Body)
		}
		resp, body := f.do(req) // the webhook sender retries the same delivery
		if resp.StatusCode != http.StatusAccepted || body["replayed"] != true {
			t.Fatalf("redelivery: %d %s", resp.StatusCode, resp.Body)
		}
	})
}

func TestTwoConcurrentRequestsWithOneKeyCommitOnceAndGetTheSameAnswer(t *testing.T) {
	f := newFixture(t)
	id := newID("acct")
	f.mustAccept(openAccount(id))
	before := f.count(id)
	key := "same-key-" + id
	var wg sync.WaitGroup
	answers := make([]string, 2)
	for i := range answers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			req := f.post(deposit(id, 250, "once"), func(r *events.APIGatewayV2HTTPRequest) { r.Headers["idempotency-key"] = key })
			resp, err := f.h.Handle(context.Background(), req)
			if err != nil || resp.StatusCode != http.StatusAccepted {
				t.Errorf("request %d: %d %s %v", i, resp.StatusCode, resp.Body, err)
				return
			}
			answers[i] = strings.Replace(resp.Body, `"replayed":true`, `"replayed":false`, 1)
		}()
	}
	wg.Wait()
	if answers[0] != answers[1] || answers[0] == "" {
		t.Errorf("answers differ:\n%s\n%s", answers[0], answers[1])
	}
	if got := f.count(id) - before; got != 2 {
		t.Errorf("%d items written, want one commit (2 outbox items, state overwritten)", got)
	}
}

func TestFiftyConcurrentDepositsEndWithTheExactSum(t *testing.T) {
	f := newFixture(t)
	id := newID("acct")
	f.mustAccept(openAccount(id))
	const n = 50
	var wg sync.WaitGroup
	var mu sync.Mutex
	ids := map[string]bool{}
	sum := 0
	for i := 1; i <= n; i++ {
		sum += i
		wg.Add(1)
		go func() {
			defer wg.Done()
			resp, err := f.h.Handle(context.Background(), f.post(deposit(id, i, fmt.Sprintf("dep-%d", i))))
			if err != nil || resp.StatusCode != http.StatusAccepted {
				t.Errorf("deposit %d: %d %s", i, resp.StatusCode, resp.Body)
			}
		}()
	}
	wg.Wait()
	maxAttempts := 0
	for _, line := range strings.Split(f.logs.String(), "\n") {
		var l struct{ Attempts int }
		if json.Unmarshal([]byte(line), &l) == nil && l.Attempts > maxAttempts {
			maxAttempts = l.Attempts
		}
	}
	t.Logf("the busiest deposit took %d attempts (bound %d)", maxAttempts, command.MaxAttempts)
	resp, body := f.do(f.get("/v1/aggregates/"+id, id, nil))
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("get: %d %s", resp.StatusCode, resp.Body)
	}
	if body["version"] != float64(n+1) {
		t.Errorf("version = %v, want %d (open + %d deposits)", body["version"], n+1, n)
	}
	if bal := body["data"].(map[string]any)["balance"]; bal != float64(sum) {
		t.Errorf("balance = %v, want %d", bal, sum)
	}
	deposits := 0
	cursor := ""
	for {
		q := map[string]string{"limit": "100"}
		if cursor != "" {
			q["cursor"] = cursor
		}
		resp, page := f.do(f.get("/v1/aggregates/"+id+"/outbox", id, q))
		if resp.StatusCode != http.StatusOK {
			t.Fatalf("outbox: %d %s", resp.StatusCode, resp.Body)
		}
		for _, it := range page["items"].([]any) {
			m := it.(map[string]any)
			mu.Lock()
			if ids[m["eventId"].(string)] {
				t.Errorf("duplicate event id %s", m["eventId"])
			}
			ids[m["eventId"].(string)] = true
			mu.Unlock()
			if m["eventType"] == "FundsDeposited" {
				deposits++
			}
		}
		next, _ := page["nextCursor"].(string)
		if next == "" {
			break
		}
		cursor = next
	}
	if deposits != n {
		t.Errorf("%d FundsDeposited outbox items, want %d", deposits, n)
	}
	if len(ids) != 2+2*n {
		t.Errorf("%d outbox items, want %d (2 for the opening, 2 per deposit)", len(ids), 2+2*n)
	}
}

// TestRejectedCommandsWriteNothing is the catalogue of bad requests: each
// gets its status and problem type, and none writes anything (commands send
// nothing themselves: no outbox item, nothing delivered).
func TestRejectedCommandsWriteNothing(t *testing.T) {
	f := newFixture(t)
	id := newID("acct")
	f.mustAccept(openAccount(id))
	f.mustAccept(deposit(id, 1000, "seed"))
	big := strings.Repeat("x", dispatch.MaxBodyBytes)
	tooManyEvents := `{"type":"Dispatch","aggregateId":"` + id + `","data":{"aggregateType":"Account","events":[` + strings.TrimSuffix(strings.Repeat(`{"type":"E","data":{}},`, dispatch.MaxEventsPerCommand+1), ",") + `]}}`
	tooManyRecipients := `{"type":"Dispatch","aggregateId":"d-` + id + `","data":{"aggregateType":"Order","emails":[{"to":[` + strings.TrimSuffix(strings.Repeat(`"a@example.com",`, dispatch.MaxRecipientsPerEmail+1), ",") + `],"template":"notification","data":{"title":"t","message":"m"}}]}}`
	tests := []struct {
		name   string
		req    events.APIGatewayV2HTTPRequest
		status int
		slug   string
		field  string
	}{
		{"rejects a withdrawal that would overdraw with 422", f.post(`{"type":"WithdrawFunds","aggregateId":"` + id + `","data":{"amount":1001,"currency":"EUR","reference":"too much"}}`), 422, "refused", "data.amount"},
		{"rejects a currency the account does not hold with 422", f.post(`{"type":"DepositFunds","aggregateId":"` + id + `","data":{"amount":1,"currency":"USD","reference":"r"}}`), 422, "refused", "data.currency"},
		{"rejects a stale expectedVersion with 409 and the current version", f.post(`{"type":"DepositFunds","aggregateId":"` + id + `","expectedVersion":1,"data":{"amount":1,"currency":"EUR","reference":"r"}}`), 409, "version-conflict", ""},
		{"rejects opening an open account with 409", f.post(openAccount(id)), 409, "conflict", ""},
		{"rejects a deposit to no account with 404", f.post(deposit("nobody-"+id, 1, "r")), 404, "not-found", ""},
		{"rejects an unknown field with 400", f.post(`{"type":"DepositFunds","aggregateId":"` + id + `","data":{"amount":1,"currency":"EUR","reference":"r","memo":"x"}}`), 400, "validation-error", "data"},
		{"rejects a string amount with 400", f.post(`{"type":"DepositFunds","aggregateId":"` + id + `","data":{"amount":"1","currency":"EUR","reference":"r"}}`), 400, "validation-error", "data.amount"},
		{"rejects a fractional amount with 400", f.post(`{"type":"DepositFunds","aggregateId":"` + id + `","data":{"amount":1.5,"currency":"EUR","reference":"r"}}`), 400, "validation-error", "data.amount"},
		{"rejects trailing data with 400", f.post(deposit(id, 1, "r") + `{}`), 400, "validation-error", ""},
		{"rejects malformed JSON with 400", f.post(`{"type":"DepositFunds",`), 400, "validation-error", ""},
		{"rejects non-UTF-8 with 400", f.post("{\"type\":\"DepositFunds\",\"aggregateId\":\"" + id + "\",\"data\":{\"amount\":1,\"currency\":\"EUR\",\"reference\":\"\xff\"}}"), 400, "validation-error", ""},
		{"rejects an unknown command type with 400", f.post(`{"type":"CloseAccount","aggregateId":"` + id + `","data":{}}`), 400, "validation-error", "type"},
		{"rejects a path-climbing aggregate id with 400", f.post(`{"type":"DepositFunds","aggregateId":"../etc","data":{"amount":1,"currency":"EUR","reference":"r"}}`), 400, "validation-error", "aggregateId"},
		{"rejects a body over the limit with 413", f.post(`{"type":"DepositFunds","aggregateId":"` + id + `","data":{"reference":"` + big + `"}}`), 413, "too-large", ""},
		{"rejects a base64 body over the limit with 413", f.post("", func(r *events.APIGatewayV2HTTPRequest) {
			r.IsBase64Encoded = true
			r.Body = base64.StdEncoding.EncodeToString([]byte(big + big))
		}), 413, "too-large", ""},
		{"rejects too many events with 400", f.post(tooManyEvents), 400, "validation-error", "data.events"},
		{"rejects too many recipients with 400", f.post(tooManyRecipients), 400, "validation-error", "data.emails[0].to"},
		{"rejects an invalid address with 400", f.post(`{"type":"OpenAccount","aggregateId":"x-` + id + `","data":{"owner":"Bob","email":"bob@@example","currency":"EUR"}}`), 400, "validation-error", "data.email"},
		{"rejects CR/LF in the owner with 400", f.post(`{"type":"OpenAccount","aggregateId":"x-` + id + `","data":{"owner":"Bob\r\nBcc: x@evil.example","email":"bob@example.com","currency":"EUR"}}`), 400, "validation-error", "data.owner"},
		{"rejects CR/LF that would reach a subject with 422", f.post(`{"type":"Dispatch","aggregateId":"d-` + id + `","data":{"aggregateType":"Order","emails":[{"to":["a@example.com"],"template":"notification","data":{"title":"Hi\r\nBcc: x@evil.example","message":"m"}}]}}`), 422, "refused", "data.emails[0].data"},
		{"rejects an unknown template at command time with 422", f.post(`{"type":"Dispatch","aggregateId":"d-` + id + `","data":{"aggregateType":"Order","emails":[{"to":["a@example.com"],"template":"no-such-template","data":{}}]}}`), 422, "refused", "data.emails[0].template"},
		{"rejects missing template data with 422", f.post(`{"type":"Dispatch","aggregateId":"d-` + id + `","data":{"aggregateType":"Order","emails":[{"to":["a@example.com"],"template":"notification","data":{"title":"t"}}]}}`), 422, "refused", "data.emails[0].data"},
		{"rejects a bad signature with 401", f.post(deposit(id, 1, "r"), func(r *events.APIGatewayV2HTTPRequest) { r.Headers["webhook-signature"] = "v1,AAAA" }), 401, "unauthorized", ""},
		{"rejects a body changed after signing with 401", f.post(deposit(id, 1, "r"), func(r *events.APIGatewayV2HTTPRequest) { r.Body = deposit(id, 999, "r") }), 401, "unauthorized", ""},
		{"rejects a stale signature with 401", f.post(deposit(id, 1, "r"), func(r *events.APIGatewayV2HTTPRequest) {
			sign(t, r, secretNew, "stale-"+id, time.Now().Add(-6*time.Minute))
		}), 401, "unauthorized", ""},
		{"rejects a rotated-out secret with 401", f.post(deposit(id, 1, "r"), func(r *events.APIGatewayV2HTTPRequest) {
			sign(t, r, secretRetired, "retired-"+id, time.Now())
		}), 401, "unauthorized", ""},
		{"rejects a missing signature with 401", f.post(deposit(id, 1, "r"), func(r *events.APIGatewayV2HTTPRequest) { delete(r.Headers, "webhook-signature") }), 401, "unauthorized", ""},
		{"rejects a missing type with 400", f.post(`{"aggregateId":"` + id + `","data":{}}`), 400, "validation-error", "type"},
		{"rejects a missing aggregate id with 400", f.post(`{"type":"DepositFunds","data":{"amount":1,"currency":"EUR","reference":"r"}}`), 400, "validation-error", "aggregateId"},
		{"rejects null data with 400", f.post(`{"type":"DepositFunds","aggregateId":"` + id + `","data":null}`), 400, "validation-error", "data"},
		{"rejects a negative expectedVersion with 400", f.post(`{"type":"DepositFunds","aggregateId":"` + id + `","expectedVersion":-1,"data":{"amount":1,"currency":"EUR","reference":"r"}}`), 400, "validation-error", "expectedVersion"},
		{"rejects a string expectedVersion with 400", f.post(`{"type":"DepositFunds","aggregateId":"` + id + `","expectedVersion":"2","data":{"amount":1,"currency":"EUR","reference":"r"}}`), 400, "validation-error", "expectedVersion"},
		{"rejects an aggregate id over 64 characters with 400", f.post(`{"type":"DepositFunds","aggregateId":"` + strings.Repeat("a", 65) + `","data":{"amount":1,"currency":"EUR","reference":"r"}}`), 400, "validation-error", "aggregateId"},
		{"rejects a non-ASCII aggregate id with 400", f.post(`{"type":"DepositFunds","aggregateId":"konto-ä","data":{"amount":1,"currency":"EUR","reference":"r"}}`), 400, "validation-error", "aggregateId"},
		{"rejects an empty body with 400", f.post(``), 400, "validation-error", ""},
		{"rejects a JSON array body with 400", f.post(`[]`), 400, "validation-error", ""},
		{"rejects a duplicated key with 400", f.post(`{"type":"DepositFunds","aggregateId":"` + id + `","data":{"amount":1,"amount":100000,"currency":"EUR","reference":"r"}}`), 400, "validation-error", "data.amount"},
		{"rejects a key differing only by case with 400", f.post(`{"type":"DepositFunds","aggregateId":"` + id + `","data":{"Amount":1,"currency":"EUR","reference":"r"}}`), 400, "validation-error", "data.Amount"},
		{"rejects a zero amount with 400", f.post(deposit(id, 0, "r")), 400, "validation-error", "data.amount"},
		{"rejects a negative amount with 400", f.post(deposit(id, -5, "r")), 400, "validation-error", "data.amount"},
		{"rejects an amount over the limit with 400", f.post(`{"type":"DepositFunds","aggregateId":"` + id + `","data":{"amount":1000000000000001,"currency":"EUR","reference":"r"}}`), 400, "validation-error", "data.amount"},
		{"rejects a currency ISO 4217 never assigned with 400", f.post(`{"type":"OpenAccount","aggregateId":"x-` + id + `","data":{"owner":"Bob","email":"bob@example.com","currency":"QQQ"}}`), 400, "validation-error", "data.currency"},
		{"rejects ZZZ with 400", f.post(`{"type":"OpenAccount","aggregateId":"x-` + id + `","data":{"owner":"Bob","email":"bob@example.com","currency":"ZZZ"}}`), 400, "validation-error", "data.currency"},
		{"rejects XXX, no currency, with 400", f.post(`{"type":"OpenAccount","aggregateId":"x-` + id + `","data":{"owner":"Bob","email":"bob@example.com","currency":"XXX"}}`), 400, "validation-error", "data.currency"},
		{"rejects a lower-case currency with 400", f.post(`{"type":"DepositFunds","aggregateId":"` + id + `","data":{"amount":1,"currency":"eur","reference":"r"}}`), 400, "validation-error", "data.currency"},
		{"rejects an empty reference with 400", f.post(`{"type":"DepositFunds","aggregateId":"` + id + `","data":{"amount":1,"currency":"EUR","reference":""}}`), 400, "validation-error", "data.reference"},
		{"rejects an owner over 100 characters with 400", f.post(`{"type":"OpenAccount","aggregateId":"x-` + id + `","data":{"owner":"` + strings.Repeat("o", 101) + `","email":"o@example.com","currency":"EUR"}}`), 400, "validation-error", "data.owner"},
		{"rejects a quoted local part that would change the address with 400", f.post(`{"type":"OpenAccount","aggregateId":"x-` + id + `","data":{"owner":"Q","email":"\"a b\"@example.com","currency":"EUR"}}`), 400, "validation-error", "data.email"},
		{"rejects Dispatch writing an account with 400", f.post(`{"type":"Dispatch","aggregateId":"` + id + `","data":{"aggregateType":"Account","state":{"balance":-500}}}`), 400, "validation-error", "data.aggregateType"},
		{"rejects an empty Dispatch with 400", f.post(`{"type":"Dispatch","aggregateId":"d-` + id + `","data":{"aggregateType":"Order"}}`), 400, "validation-error", "data"},
		{"rejects too many emails with 400", f.post(`{"type":"Dispatch","aggregateId":"d-` + id + `","data":{"aggregateType":"Order","emails":[` + strings.TrimSuffix(strings.Repeat(`{"to":["a@example.com"],"template":"notification","data":{"title":"t","message":"m"}},`, dispatch.MaxEmailsPerCommand+1), ",") + `]}}`), 400, "validation-error", "data.emails"},
		{"rejects a malformed event type with 400", f.post(`{"type":"Dispatch","aggregateId":"d-` + id + `","data":{"aggregateType":"Order","events":[{"type":"bad type!","data":{}}]}}`), 400, "validation-error", "data.events[0].type"},
		{"rejects a template name with a path in it with 400", f.post(`{"type":"Dispatch","aggregateId":"d-` + id + `","data":{"aggregateType":"Order","emails":[{"to":["a@example.com"],"template":"../notification","data":{}}]}}`), 400, "validation-error", "data.emails[0].template"},
		{"rejects a signature from the future with 401", f.post(deposit(id, 1, "r"), func(r *events.APIGatewayV2HTTPRequest) {
			sign(t, r, secretNew, "future-"+id, time.Now().Add(6*time.Minute))
		}), 401, "unauthorized", ""},
		{"rejects a signature of an unknown version with 401", f.post(deposit(id, 1, "r"), func(r *events.APIGatewayV2HTTPRequest) {
			r.Headers["webhook-signature"] = strings.Replace(r.Headers["webhook-signature"], "v1,", "v2,", 1)
		}), 401, "unauthorized", ""},
		{"rejects a non-numeric timestamp with 401", f.post(deposit(id, 1, "r"), func(r *events.APIGatewayV2HTTPRequest) { r.Headers["webhook-timestamp"] = "yesterday" }), 401, "unauthorized", ""},
		{"rejects an idempotency key over the limit with 400", f.post(deposit(id, 1, "r"), func(r *events.APIGatewayV2HTTPRequest) {
			r.Headers["idempotency-key"] = strings.Repeat("k", dispatch.MaxIdempotencyKeyLen+1)
		}), 400, "validation-error", "Idempotency-Key"},
		{"rejects an unknown route with 404", f.post(deposit(id, 1, "r"), func(r *events.APIGatewayV2HTTPRequest) { r.RouteKey = "POST /v1/other"; r.RawPath = "/v1/other" }), 404, "not-found", ""},
		{"rejects an idempotency key with spaces with 400", f.post(deposit(id, 1, "r"), func(r *events.APIGatewayV2HTTPRequest) { r.Headers["idempotency-key"] = "a b" }), 400, "validation-error", "Idempotency-Key"},
		// What DynamoDB cannot store answered 500 before the checks (issue 14).
		{"rejects JSON nested 40,000 deep with 400 before building paths", f.post(dispatchState("d-"+id, strings.Repeat(`{"a":`, 40000)+`1`+strings.Repeat(`}`, 40000))), 400, "validation-error", ""},
		{"rejects a state nested 33 deep with 400", f.post(dispatchState("d-"+id, strings.Repeat(`{"a":`, 33)+`1`+strings.Repeat(`}`, 33))), 400, "validation-error", "data.state.a.a"},
		{"rejects a 40-digit number in the state with 400", f.post(dispatchState("d-"+id, `{"n":1234567890123456789012345678901234567891}`)), 400, "validation-error", "data.state.n"},
		{"rejects 1e200 in the state with 400", f.post(dispatchState("d-"+id, `{"total":{"n":1e200}}`)), 400, "validation-error", "data.state.total.n"},
		{"rejects an empty key in the state with 400", f.post(dispatchState("d-"+id, `{"":"x"}`)), 400, "validation-error", "data.state"},
		{"rejects a 70,000-character key in the state with 400", f.post(dispatchState("d-"+id, `{"`+strings.Repeat("k", 70000)+`":"x"}`)), 400, "validation-error", "data.state"},
		// Addresses SES refuses (no SMTPUTF8; host names only).
		{"rejects an internationalized domain not in punycode with 400", f.post(`{"type":"OpenAccount","aggregateId":"x-` + id + `","data":{"owner":"Bob","email":"bob@bücher.example","currency":"EUR"}}`), 400, "validation-error", "data.email"},
		{"rejects a non-ASCII local part with 400", f.post(`{"type":"OpenAccount","aggregateId":"x-` + id + `","data":{"owner":"Jörg","email":"jörg@example.com","currency":"EUR"}}`), 400, "validation-error", "data.email"},
		{"rejects a local part of 65 characters with 400", f.post(`{"type":"OpenAccount","aggregateId":"x-` + id + `","data":{"owner":"Bob","email":"` + strings.Repeat("b", 65) + `@example.com","currency":"EUR"}}`), 400, "validation-error", "data.email"},
		{"rejects a domain literal with 400", f.post(`{"type":"Dispatch","aggregateId":"d-` + id + `","data":{"aggregateType":"Order","emails":[{"to":["user@[192.0.2.1]"],"template":"notification","data":{"title":"t","message":"m"}}]}}`), 400, "validation-error", "data.emails[0].to[0]"},
		// Templates per command type.
		{"rejects Dispatch sending the bank's deposit receipt with 422", f.post(`{"type":"Dispatch","aggregateId":"d-` + id + `","data":{"aggregateType":"Order","emails":[{"to":["victim@example.com"],"template":"deposit-receipt","data":{"owner":"Ada","accountId":"acc-1","amount":"1000000.00","currency":"EUR","reference":"r","balance":"1000000.00"}}]}}`), 422, "refused", "data.emails[0].template"},
		// Bidirectional overrides that make a subject or a name read as something else.
		{"rejects a bidi override that would reach a subject with 422", f.post(`{"type":"Dispatch","aggregateId":"d-` + id + `","data":{"aggregateType":"Order","emails":[{"to":["a@example.com"],"template":"notification","data":{"title":"Invoice \u202egnp.exe","message":"m"}}]}}`), 422, "refused", "data.emails[0].data"},
		{"rejects a bidi override in the owner with 400", f.post(`{"type":"OpenAccount","aggregateId":"x-` + id + `","data":{"owner":"Ada \u202eecalevoL","email":"ada@example.com","currency":"EUR"}}`), 400, "validation-error", "data.owner"},
		// CONTENT-TYPE ROWS: they test the Content-Type check in handler.go, a
		// separate change of issue 14. Without it they fail, and their
		// commands, valid otherwise, write under ct-<id> (checked below).
		{"rejects a missing Content-Type with 415", f.post(dispatchState("ct-"+id, `{"a":1}`), func(r *events.APIGatewayV2HTTPRequest) { delete(r.Headers, "content-type") }), 415, "unsupported-media-type", ""},
		{"rejects Content-Type text/plain with 415", f.post(dispatchState("ct-"+id, `{"a":1}`), func(r *events.APIGatewayV2HTTPRequest) { r.Headers["content-type"] = "text/plain" }), 415, "unsupported-media-type", ""},
	}
	if len(tests) < 40 {
		t.Fatalf("the catalogue has %d bad requests, want at least 40", len(tests))
	}
	before := f.count(id)
	idemps := f.idempotencyRecords()
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			resp, body := f.do(tt.req)
			if resp.StatusCode != tt.status {
				t.Fatalf("status %d, want %d: %s", resp.StatusCode, tt.status, resp.Body)
			}
			if resp.Headers["Content-Type"] != "application/problem+json" {
				t.Errorf("Content-Type = %q", resp.Headers["Content-Type"])
			}
			if body["type"] != apigw.ProblemBase+tt.slug || body["status"] != float64(tt.status) || body["title"] == "" {
				t.Errorf("problem = %v, want type %s", body, tt.slug)
			}
			if tt.field != "" && !strings.Contains(resp.Body, `"field":"`+tt.field) {
				t.Errorf("no field error for %s: %s", tt.field, resp.Body)
			}
			if tt.status == 409 && tt.slug == "version-conflict" && body["currentVersion"] != float64(2) {
				t.Errorf("currentVersion = %v, want 2", body["currentVersion"])
			}
		})
	}
	if after := f.count(id); after != before {
		t.Errorf("rejected requests wrote %d items", after-before)
	}
	if n := f.idempotencyRecords(); n != idemps {
		t.Errorf("rejected requests wrote %d idempotency records", n-idemps)
	}
	for _, other := range []string{"d-" + id, "x-" + id, "nobody-" + id, "ct-" + id} {
		if n := f.count(other); n != 0 {
			t.Errorf("rejected requests wrote %d items under %s", n, other)
		}
	}
}

// An overdraw breaks a business rule; the request itself is well formed. Its
// problem reads as a refusal, not as a malformed request (issue 31).
func TestAnOverdrawReadsAsARefusal(t *testing.T) {
	f := newFixture(t)
	id := newID("acct")
	f.mustAccept(openAccount(id))
	f.mustAccept(deposit(id, 1000, "seed"))
	resp, _ := f.do(f.post(`{"type":"WithdrawFunds","aggregateId":"` + id + `","data":{"amount":1001,"currency":"EUR","reference":"too much"}}`))
	want := `{"type":"` + apigw.ProblemBase + `refused","title":"Command refused","status":422,"detail":"refused: data.amount: the withdrawal would overdraw the account (balance 10.00 EUR)","errors":[{"field":"data.amount","message":"the withdrawal would overdraw the account (balance 10.00 EUR)"}]}`
	if resp.StatusCode != 422 || resp.Body != want {
		t.Errorf("overdraw answered %d %s\nwant 422 %s", resp.StatusCode, resp.Body, want)
	}
}

// dispatchState is a Dispatch of an Order whose only effect is a state patch.
func dispatchState(aggregateID, state string) string {
	return `{"type":"Dispatch","aggregateId":"` + aggregateID + `","data":{"aggregateType":"Order","state":` + state + `}}`
}

func TestAcceptsTheSecondSecretDuringRotation(t *testing.T) {
	f := newFixture(t)
	id := newID("acct")
	for _, secret := range []string{secretOld, secretNew} {
		req := f.post(openAccount(id+secret[6:9]), func(r *events.APIGatewayV2HTTPRequest) {
			sign(t, r, secret, "rot-"+secret[6:9]+id, time.Now())
		})
		if resp, _ := f.do(req); resp.StatusCode != http.StatusAccepted {
			t.Errorf("secret %s…: %d %s", secret[:9], resp.StatusCode, resp.Body)
		}
	}
}

func TestDispatchPatchesStateAndQueuesEffects(t *testing.T) {
	f := newFixture(t)
	id := newID("order")
	f.mustAccept(`{"type":"Dispatch","aggregateId":"` + id + `","data":{"aggregateType":"Order","state":{"status":"new","total":{"amount":1250,"currency":"EUR"}},"events":[{"type":"OrderPlaced","data":{"total":1250}}]}}`)
	body := f.mustAccept(`{"type":"Dispatch","aggregateId":"` + id + `","expectedVersion":1,"data":{"aggregateType":"Order","state":{"status":"paid","total":{"currency":null}},"events":[{"type":"OrderPaid","data":{}}],"emails":[{"to":["Buyer <buyer@example.com>"],"template":"notification","data":{"title":"Paid <b>now</b>","message":"Thanks"}}]}}`)
	if body["version"] != float64(2) || len(body["eventIds"].([]any)) != 2 {
		t.Fatalf("body = %v", body)
	}
	_, agg := f.do(f.get("/v1/aggregates/"+id, id, nil))
	data := agg["data"].(map[string]any)
	total := data["total"].(map[string]any)
	if data["status"] != "paid" || total["amount"] != float64(1250) || total["currency"] != nil || agg["type"] != "Order" {
		t.Errorf("state after merge patch = %v", agg)
	}
	_, page := f.do(f.get("/v1/aggregates/"+id+"/outbox", id, nil))
	items := page["items"].([]any)
	if len(items) != 3 {
		t.Fatalf("%d outbox items, want 3", len(items))
	}
	if strings.Contains(fmt.Sprint(page), "buyer@example.com") {
		t.Error("the outbox view shows an email address")
	}
}

func TestReadRoutes(t *testing.T) {
	f := newFixture(t)
	tests := []struct {
		name   string
		req    events.APIGatewayV2HTTPRequest
		status int
	}{
		{"answers 404 for an unknown aggregate", f.get("/v1/aggregates/none", "none-"+newID("x"), nil), 404},
		{"answers 400 for an id that climbs a path", f.get("/v1/aggregates/..%2Fetc", "../etc", nil), 400},
		{"answers 400 for an outbox limit out of range", f.get("/v1/aggregates/a/outbox", "a", map[string]string{"limit": "1000"}), 400},
		{"answers 400 for a forged cursor", f.get("/v1/aggregates/a/outbox", "a", map[string]string{"cursor": "bm9wZQ"}), 400},
		{"answers 400 for a cursor of a key longer than DynamoDB's 1,024 bytes", f.get("/v1/aggregates/a/outbox", "a", map[string]string{
			"cursor": base64.RawURLEncoding.EncodeToString([]byte(dynamo.OutboxSK(1, 0) + strings.Repeat("0", 1024))),
		}), 400},
		{"answers 401 without a signature", func() events.APIGatewayV2HTTPRequest {
			r := f.get("/v1/aggregates/a", "a", nil)
			delete(r.Headers, "webhook-signature")
			return r
		}(), 401},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if resp, _ := f.do(tt.req); resp.StatusCode != tt.status {
				t.Errorf("status %d, want %d: %s", resp.StatusCode, tt.status, resp.Body)
			}
		})
	}
}

func TestIAMAuthorizedCallersNeedNoSignature(t *testing.T) {
	f := newFixture(t)
	id := newID("acct")
	req := f.post(openAccount(id), func(r *events.APIGatewayV2HTTPRequest) {
		delete(r.Headers, "webhook-signature")
		r.Headers["idempotency-key"] = "iam-" + id
		r.RequestContext.Authorizer = &events.APIGatewayV2HTTPRequestContextAuthorizerDescription{
			IAM: &events.APIGatewayV2HTTPRequestContextAuthorizerIAMDescription{UserARN: "arn:aws:iam::123456789012:role/orders"},
		}
	})
	if resp, _ := f.do(req); resp.StatusCode != http.StatusAccepted {
		t.Fatalf("IAM caller: %d %s", resp.StatusCode, resp.Body)
	}
}

func TestLogsAndMetricsCarryIdsButNoAddresses(t *testing.T) {
	f := newFixture(t)
	id := newID("acct")
	f.mustAccept(openAccount(id))
	f.do(f.post(`{"type":"WithdrawFunds","aggregateId":"` + id + `","data":{"amount":1,"currency":"EUR","reference":"r"}}`))
	logs := f.logs.String()
	if strings.Contains(logs, "ada@example.com") || strings.Contains(logs, "Lovelace") {
		t.Errorf("logs hold personal data:\n%s", logs)
	}
	for _, want := range []string{`"commandType":"OpenAccount"`, `"aggregateId":"` + id + `"`, `"outcome":"accepted"`, `"outcome":"rejected"`, `"reason":"refused"`, `"latencyMs"`, `"requestId":"UvWxYz1AoAMEVdQ="`} {
		if !strings.Contains(logs, want) {
			t.Errorf("logs lack %s:\n%s", want, logs)
		}
	}
	m := f.metrics.String()
	for _, want := range []string{`"CommandAccepted":1`, `"CommandRejected":1`, `"Reason":"refused"`, `"Namespace":"Dispatcher"`} {
		if !strings.Contains(m, want) {
			t.Errorf("metrics lack %s:\n%s", want, m)
		}
	}
}

func TestInternalErrorsLeakNothing(t *testing.T) {
	env := newFixture(t)
	// A store on a table that does not exist fails inside the SDK.
	store := dynamo.New(env.db, "no-such-table", 8)
	env.h = env.handler(command.New(store, env.tmpl), store)
	resp, body := env.do(env.post(openAccount(newID("acct"))))
	if resp.StatusCode != http.StatusInternalServerError {
		t.Fatalf("status %d: %s", resp.StatusCode, resp.Body)
	}
	if body["requestId"] != "UvWxYz1AoAMEVdQ=" || body["detail"] != nil {
		t.Errorf("500 body = %v, want the request id and nothing else", body)
	}
	for _, leak := range []string{"ResourceNotFound", "no-such-table", "dynamo", "operation error"} {
		if strings.Contains(resp.Body, leak) {
			t.Errorf("500 body leaks %q: %s", leak, resp.Body)
		}
	}
	if !strings.Contains(env.logs.String(), "ResourceNotFoundException") {
		t.Errorf("the cause is not in the log:\n%s", env.logs.String())
	}
}
