package apigw_test

import (
	"context"
	"errors"
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
	"github.com/dispatcher-dev/dispatcher/internal/caller"
	"github.com/dispatcher-dev/dispatcher/internal/command"
	"github.com/dispatcher-dev/dispatcher/internal/dispatch"
)

// Two teams share a deployment (issue 27). Each has its own secret, its
// own id prefix for accounts and orders, and its own grant; the default
// caller of WEBHOOK_SECRETS stays, with every grant.
const (
	secretA       = secretOld
	secretB       = secretNew
	secretDefault = secretRetired
	roleB         = "arn:aws:iam::123456789012:role/teams/team-b-api"
)

// teamB is team-b's document with its secrets (JSON strings, comma
// separated): no notification template, and its role.
func teamB(secrets string) string {
	return `{"secrets":[` + secrets + `],"principals":["` + roleB + `"],"aggregates":["Account/tb-*","Order/tb-*"],` +
		`"templates":["account-welcome","deposit-receipt"],"events":["AccountOpened","FundsDeposited","order.*"],"rate":{"perSecond":5,"burst":10}}`
}

func callerDocs() map[string]string {
	return map[string]string{
		"team-a": `{"secrets":["` + secretA + `"],"aggregates":["Account/ta-*","Order/ta-*"],` +
			`"templates":["account-welcome","deposit-receipt","notification"],"events":["AccountOpened","FundsDeposited","order.*"]}`,
		"team-b": teamB(`"` + secretB + `"`),
	}
}

// newCallersFixture is the fixture with team-a, team-b and the default
// caller.
func newCallersFixture(t *testing.T) *fixture {
	t.Helper()
	f := newFixture(t)
	reg, err := caller.New(caller.Config{Documents: callerDocs(), DefaultSecrets: []string{secretDefault}})
	if err != nil {
		t.Fatal(err)
	}
	f.auth = reg
	f.h = f.handler(command.New(f.store, f.tmpl), f.store)
	return f
}

// as signs a request again as a caller: its Dispatcher-Caller header ("":
// none) and its secret.
func as(t *testing.T, secret, id string) func(*events.APIGatewayV2HTTPRequest) {
	return func(r *events.APIGatewayV2HTTPRequest) {
		t.Helper()
		delete(r.Headers, "dispatcher-caller")
		if id != "" {
			r.Headers["dispatcher-caller"] = id
		}
		msgSeq++
		sign(t, r, secret, fmt.Sprintf("msg_%s_%d_%d", id, time.Now().UnixNano(), msgSeq), time.Now())
	}
}

func (f *fixture) postAs(t *testing.T, secret, id, body, key string) events.APIGatewayV2HTTPRequest {
	r := f.post(body, as(t, secret, id))
	if key != "" {
		r = withKey(r, key)
	}
	return r
}

func (f *fixture) getAs(t *testing.T, secret, id, path, aggregate string) events.APIGatewayV2HTTPRequest {
	r := f.get(path, aggregate, nil)
	if strings.HasSuffix(path, "/events") {
		r.RouteKey = "GET /v1/aggregates/{id}/events"
	}
	as(t, secret, id)(&r)
	return r
}

// idempotencyRecord reports whether the record of key in scope exists.
func (f *fixture) idempotencyRecord(scope, key string) bool {
	f.t.Helper()
	out, err := f.db.GetItem(context.Background(), &dynamodb.GetItemInput{TableName: aws.String(f.table), ConsistentRead: aws.Bool(true),
		Key: map[string]types.AttributeValue{"pk": &types.AttributeValueMemberS{Value: "IDEMP#" + scope + "#" + key}, "sk": &types.AttributeValueMemberS{Value: "IDEMP"}}})
	if err != nil {
		f.t.Fatal(err)
	}
	return out.Item != nil
}

// The first finding: both teams sent Idempotency-Key k-1 and one
// got the other's answer. Each caller's keys are its own.
func TestTwoCallersSendingTheSameKeyAreTwoCommands(t *testing.T) {
	f := newCallersFixture(t)
	a, b := newID("ta"), newID("tb")
	key := newID("k-1")
	for _, c := range []struct{ secret, id, agg string }{{secretA, "team-a", a}, {secretB, "team-b", b}} {
		resp, body := f.do(f.postAs(t, c.secret, c.id, openAccount(c.agg), key))
		if resp.StatusCode != http.StatusAccepted || body["replayed"] != false || body["aggregateId"] != c.agg {
			t.Fatalf("%s: %d %s, want its own command applied", c.id, resp.StatusCode, resp.Body)
		}
	}
	if f.count(a) == 0 || f.count(b) == 0 {
		t.Errorf("aggregates written: %s %d items, %s %d items; want both", a, f.count(a), b, f.count(b))
	}
	if !f.idempotencyRecord("caller:team-a", key) || !f.idempotencyRecord("caller:team-b", key) {
		t.Error("want one idempotency record per caller under the same key")
	}
	t.Run("the default caller keeps the scope of its existing records", func(t *testing.T) {
		d := newID("def")
		if resp, _ := f.do(f.postAs(t, secretDefault, "", openAccount(d), key)); resp.StatusCode != http.StatusAccepted {
			t.Fatalf("%d %s", resp.StatusCode, resp.Body)
		}
		if !f.idempotencyRecord("webhook", key) {
			t.Error("the default caller's record is not in the scope webhook")
		}
	})
}

// The second finding: team B's GET of team A's aggregate answered
// 200 with the buyer's email. Outside the grant, every read answers exactly
// what an unknown aggregate does.
func TestAnotherCallersAggregateReadsAsUnknown(t *testing.T) {
	f := newCallersFixture(t)
	a := newID("ta")
	if resp, _ := f.do(f.postAs(t, secretA, "team-a", openAccount(a), "")); resp.StatusCode != http.StatusAccepted {
		t.Fatalf("open: %d %s", resp.StatusCode, resp.Body)
	}
	// An aggregate under team-a's prefix but of a type team-a is not
	// granted: only the read tells its type.
	inv := newID("ta-inv")
	if resp, _ := f.do(f.postAs(t, secretDefault, "", `{"type":"Dispatch","aggregateId":"`+inv+`","data":{"aggregateType":"Invoice","state":{"total":1},"events":[{"type":"invoice.issued","data":{}}]}}`, "")); resp.StatusCode != http.StatusAccepted {
		t.Fatalf("invoice: %d %s", resp.StatusCode, resp.Body)
	}
	unknown := newID("tb-none")
	for _, suffix := range []string{"", "/outbox", "/events"} {
		// The answer for an id nobody has, with the id replaced.
		want, _ := f.do(f.getAs(t, secretB, "team-b", "/v1/aggregates/"+unknown+suffix, unknown))
		if want.StatusCode != http.StatusNotFound {
			t.Fatalf("unknown %s: %d %s", suffix, want.StatusCode, want.Body)
		}
		for _, tt := range []struct{ name, secret, caller, id string }{
			{"team-b reads team-a's account", secretB, "team-b", a},
			{"team-a reads its prefix's aggregate of a type not granted", secretA, "team-a", inv},
		} {
			t.Run(tt.name+suffix, func(t *testing.T) {
				got, _ := f.do(f.getAs(t, tt.secret, tt.caller, "/v1/aggregates/"+tt.id+suffix, tt.id))
				if got.StatusCode != want.StatusCode || got.Body != strings.ReplaceAll(want.Body, unknown, tt.id) || fmt.Sprint(got.Headers) != fmt.Sprint(want.Headers) {
					t.Errorf("got %d %v %s\nwant the unknown aggregate's %d %v %s", got.StatusCode, got.Headers, got.Body, want.StatusCode, want.Headers, want.Body)
				}
			})
		}
		t.Run("team-a reads its own"+suffix, func(t *testing.T) {
			if got, _ := f.do(f.getAs(t, secretA, "team-a", "/v1/aggregates/"+a+suffix, a)); got.StatusCode != http.StatusOK {
				t.Errorf("%d %s", got.StatusCode, got.Body)
			}
		})
	}
}

// A write outside the caller's grant is refused before anything is read or
// written, and so is a template or an event type it is not granted (the
// issue: any caller could email any text through notification).
func TestAnotherCallersAggregateAndTemplateAreForbidden(t *testing.T) {
	f := newCallersFixture(t)
	a := newID("ta")
	if resp, _ := f.do(f.postAs(t, secretA, "team-a", openAccount(a), "")); resp.StatusCode != http.StatusAccepted {
		t.Fatalf("open: %d %s", resp.StatusCode, resp.Body)
	}
	order := newID("tb-order")
	tests := []struct {
		name, body, aggregate, detail string
	}{
		{"team-b's deposit to team-a's account", deposit(a, 100, "steal"), a, "caller team-b may not write Account aggregate " + a},
		{"team-b's Dispatch on team-a's id", `{"type":"Dispatch","aggregateId":"` + a + `","data":{"aggregateType":"Order","state":{"x":1}}}`, a, "caller team-b may not write Order aggregate " + a},
		{"team-b's email from a template it is not granted", `{"type":"Dispatch","aggregateId":"` + order + `","data":{"aggregateType":"Order","emails":[{"to":["victim@example.com"],"template":"notification","data":{"title":"Reset your password","message":"click here"}}]}}`, order, `caller team-b may not send template "notification"`},
		{"team-b's event type it is not granted", `{"type":"Dispatch","aggregateId":"` + order + `","data":{"aggregateType":"Order","events":[{"type":"invoice.paid","data":{}}]}}`, order, `caller team-b may not publish event type "invoice.paid"`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			items, idemps := f.count(tt.aggregate), f.idempotencyRecords()
			resp, body := f.do(f.postAs(t, secretB, "team-b", tt.body, ""))
			if resp.StatusCode != http.StatusForbidden || body["type"] != "https://github.com/dispatcher-dev/dispatcher/blob/main/docs/problems.md#forbidden" || body["detail"] != tt.detail {
				t.Fatalf("got %d %s, want 403 forbidden saying %q", resp.StatusCode, resp.Body, tt.detail)
			}
			if f.count(tt.aggregate) != items || f.idempotencyRecords() != idemps {
				t.Errorf("the refused command wrote: %d -> %d items, %d -> %d idempotency records", items, f.count(tt.aggregate), idemps, f.idempotencyRecords())
			}
		})
	}
	t.Run("team-a may send notification", func(t *testing.T) {
		o := newID("ta-order")
		body := `{"type":"Dispatch","aggregateId":"` + o + `","data":{"aggregateType":"Order","emails":[{"to":["ada@example.com"],"template":"notification","data":{"title":"Shipped","message":"Your order shipped"}}]}}`
		if resp, _ := f.do(f.postAs(t, secretA, "team-a", body, "")); resp.StatusCode != http.StatusAccepted {
			t.Fatalf("%d %s", resp.StatusCode, resp.Body)
		}
	})
	if got := f.logs.String(); !strings.Contains(got, `"callerId":"team-b"`) || !strings.Contains(got, `"callerId":"team-a"`) {
		t.Errorf("request lines without callerId: %s", got)
	}
	m := f.metrics.String()
	if !strings.Contains(m, `["CallerId","Service"]`) || !strings.Contains(m, `["CommandType","Service"]`) || !strings.Contains(m, `["Reason","Service"]`) || !strings.Contains(m, `"CallerId":"team-b"`) {
		t.Errorf("metrics lack the CallerId dimension set or the existing ones: %s", m)
	}
}

// API Gateway's IAM authorizer names the caller's principal: an assumed
// role maps to the caller that lists the role; a principal no caller lists
// is refused (403) and writes nothing; an unknown Dispatcher-Caller is 401.
func TestIAMPrincipalsAndUnknownCallers(t *testing.T) {
	f := newCallersFixture(t)
	withPrincipal := func(arn string) func(*events.APIGatewayV2HTTPRequest) {
		return func(r *events.APIGatewayV2HTTPRequest) {
			for _, h := range []string{"webhook-id", "webhook-timestamp", "webhook-signature"} {
				delete(r.Headers, h)
			}
			r.RequestContext.Authorizer = iamAuthorizer()
			r.RequestContext.Authorizer.IAM.UserARN = arn
		}
	}
	b := newID("tb-iam")
	key := newID("iam")
	resp, _ := f.do(withKey(f.post(openAccount(b), withPrincipal("arn:aws:sts::123456789012:assumed-role/team-b-api/lambda-session")), key))
	if resp.StatusCode != http.StatusAccepted || !f.idempotencyRecord("caller:team-b", key) {
		t.Fatalf("team-b's assumed role: %d %s, want it applied as team-b", resp.StatusCode, resp.Body)
	}
	t.Run("the role may not touch team-a's aggregates", func(t *testing.T) {
		a := newID("ta-iam")
		resp, _ := f.do(withKey(f.post(openAccount(a), withPrincipal("arn:aws:sts::123456789012:assumed-role/team-b-api/s")), newID("k")))
		if resp.StatusCode != http.StatusForbidden || f.count(a) != 0 {
			t.Fatalf("%d %s, want 403 and nothing written", resp.StatusCode, resp.Body)
		}
	})
	t.Run("an unmapped principal is 403 and writes nothing", func(t *testing.T) {
		x := newID("tb-x")
		idemps := f.idempotencyRecords()
		resp, body := f.do(withKey(f.post(openAccount(x), withPrincipal("arn:aws:sts::123456789012:assumed-role/intruder/s")), newID("k")))
		if resp.StatusCode != http.StatusForbidden || body["type"] != "https://github.com/dispatcher-dev/dispatcher/blob/main/docs/problems.md#forbidden" {
			t.Fatalf("%d %s, want 403", resp.StatusCode, resp.Body)
		}
		if f.count(x) != 0 || f.idempotencyRecords() != idemps {
			t.Error("the unmapped principal's command wrote something")
		}
	})
	t.Run("an unknown Dispatcher-Caller is 401", func(t *testing.T) {
		resp, body := f.do(f.postAs(t, secretA, "team-z", openAccount(newID("tz")), ""))
		if resp.StatusCode != http.StatusUnauthorized || !strings.Contains(fmt.Sprint(body["detail"]), "Dispatcher-Caller names no caller") {
			t.Fatalf("%d %s, want 401", resp.StatusCode, resp.Body)
		}
	})
	t.Run("another caller's secret is 401", func(t *testing.T) {
		if resp, _ := f.do(f.postAs(t, secretA, "team-b", openAccount(newID("tb")), "")); resp.StatusCode != http.StatusUnauthorized {
			t.Fatalf("%d %s, want 401", resp.StatusCode, resp.Body)
		}
	})
}

// docSource is the callers' configuration, changed by the test while the
// handler reads it again.
type docSource struct {
	mu   sync.Mutex
	docs map[string]string
}

func (s *docSource) set(id, doc string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	next := map[string]string{}
	for k, v := range s.docs {
		next[k] = v
	}
	next[id] = doc
	s.docs = next
}

func (s *docSource) load(context.Context) (caller.Config, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return caller.Config{Documents: s.docs}, nil
}

// team-a rotates its secret (both, then the new one only; and a broken edit
// on the way) while team-b keeps sending signed requests: none of team-b's
// is refused, team-b can rotate meanwhile, and team-a's rotation takes.
func TestOneCallersRotationRefusesNoneOfAnothersRequests(t *testing.T) {
	f := newFixture(t)
	src := &docSource{docs: callerDocs()}
	cfg, _ := src.load(context.Background())
	initial, err := caller.New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	// Read again at every request: the test needs no clock.
	refreshing, err := caller.NewRefreshing(initial, src.load, caller.RefreshOptions{Every: time.Nanosecond})
	if err != nil {
		t.Fatal(err)
	}
	f.auth = refreshing
	f.h = f.handler(command.New(f.store, f.tmpl), f.store)
	a, b := newID("ta"), newID("tb")
	f.do(f.postAs(t, secretA, "team-a", openAccount(a), ""))
	if resp, _ := f.do(f.postAs(t, secretB, "team-b", openAccount(b), "")); resp.StatusCode != http.StatusAccepted {
		t.Fatalf("open: %d %s", resp.StatusCode, resp.Body)
	}
	const newA = "whsec_bmV3IHNlY3JldCBvZiB0ZWFtIGEsIHJvdGF0ZWQ="
	const newB = "whsec_YW5kIG9uZSBvZiB0ZWFtIGIsIHJvdGF0ZWQgdG9v"
	docA := func(secrets string) string {
		return `{"secrets":[` + secrets + `],"aggregates":["Account/ta-*"],"templates":["account-welcome","deposit-receipt"],"events":["AccountOpened","FundsDeposited"]}`
	}
	steps := []struct {
		name      string
		change    func()
		aAccepts  []string // team-a's secrets that must verify after the step
		bSecret   string   // the secret team-b signs with after the step
		bRefusals []string // team-b's secrets that must no longer verify
	}{
		{"team-a adds its new secret", func() { src.set("team-a", docA(`"`+secretA+`","`+newA+`"`)) }, []string{secretA, newA}, secretB, nil},
		{"team-a breaks its document", func() { src.set("team-a", `{"secrets":"`+newA+`"}`) }, []string{secretA, newA}, secretB, nil},
		{"team-b adds its new secret while team-a's document is broken", func() { src.set("team-b", teamB(`"`+secretB+`","`+newB+`"`)) }, []string{secretA, newA}, newB, nil},
		{"team-b keeps its new secret only", func() { src.set("team-b", teamB(`"`+newB+`"`)) }, []string{secretA, newA}, newB, []string{secretB}},
		{"team-a keeps its new secret only", func() { src.set("team-a", docA(`"`+newA+`"`)) }, []string{newA}, newB, nil},
	}
	var refused []string
	var wg sync.WaitGroup
	stop := make(chan struct{})
	var bSecret sync.Mutex
	current := secretB
	wg.Add(1)
	go func() {
		defer wg.Done()
		for i := 0; ; i++ {
			select {
			case <-stop:
				return
			default:
			}
			bSecret.Lock()
			s := current
			bSecret.Unlock()
			req := f.getAs(t, s, "team-b", "/v1/aggregates/"+b, b)
			if i%3 == 0 {
				req = f.postAs(t, s, "team-b", deposit(b, 1, fmt.Sprint("r-", i)), "")
			}
			resp, err := f.h.Handle(context.Background(), req)
			if err != nil || resp.StatusCode >= 300 {
				bSecret.Lock()
				refused = append(refused, fmt.Sprintf("%d %s", resp.StatusCode, resp.Body))
				bSecret.Unlock()
			}
		}
	}()
	for _, st := range steps {
		// team-b signs with its new secret once the registry has both, as
		// a rotating sender does.
		st.change()
		time.Sleep(20 * time.Millisecond)
		bSecret.Lock()
		current = st.bSecret
		bSecret.Unlock()
		time.Sleep(50 * time.Millisecond)
		for _, s := range st.aAccepts {
			if resp, _ := f.do(f.getAs(t, s, "team-a", "/v1/aggregates/"+a, a)); resp.StatusCode != http.StatusOK {
				t.Errorf("%s: team-a's secret %s…: %d %s", st.name, s[:10], resp.StatusCode, resp.Body)
			}
		}
		for _, s := range st.bRefusals {
			if resp, _ := f.do(f.getAs(t, s, "team-b", "/v1/aggregates/"+b, b)); resp.StatusCode != http.StatusUnauthorized {
				t.Errorf("%s: team-b's retired secret: %d, want 401", st.name, resp.StatusCode)
			}
		}
	}
	close(stop)
	wg.Wait()
	if len(refused) > 0 {
		t.Errorf("%d of team-b's requests refused during team-a's rotation, first: %s", len(refused), refused[0])
	}
	if resp, _ := f.do(f.getAs(t, secretA, "team-a", "/v1/aggregates/"+a, a)); resp.StatusCode != http.StatusUnauthorized {
		t.Errorf("team-a's retired secret: %d, want 401", resp.StatusCode)
	}
}

// limiter answers every Take as told and remembers what it was asked.
type limiter struct {
	mu    sync.Mutex
	ok    bool
	after time.Duration
	err   error
	takes []string
}

func (l *limiter) Take(_ context.Context, key string, rate dispatch.Rate) (bool, time.Duration, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.takes = append(l.takes, fmt.Sprintf("%s %g/%d", key, rate.PerSecond, rate.Burst))
	return l.ok, l.after, l.err
}

// Each authenticated request spends one of its caller's rate (its own, or
// the deployment's default); over it, 429 rate-limited with Retry-After in
// whole seconds, at least 1, and nothing written. A limiter that fails lets
// the request through, logged at WARN and counted.
func TestTheRateLimit(t *testing.T) {
	f := newCallersFixture(t)
	l := &limiter{}
	f.h = f.handler(command.New(f.store, f.tmpl), f.store).WithLimiter(l, dispatch.Rate{PerSecond: 50, Burst: 100})
	tests := []struct {
		name       string
		ok         bool
		after      time.Duration
		err        error
		secret, id string
		agg        string
		status     int
		retry      string
		take       string
	}{
		{"refuses team-a over the default rate, rounding the wait up", false, 1200 * time.Millisecond, nil, secretA, "team-a", newID("ta"), 429, "2", "team-a 50/100"},
		{"answers a wait under a second with 1", false, 10 * time.Millisecond, nil, secretB, "team-b", newID("tb"), 429, "1", "team-b 5/10"},
		{"lets a caller under its rate through", true, 0, nil, secretB, "team-b", newID("tb"), 202, "", "team-b 5/10"},
		{"lets the request through when the limiter fails", false, 0, errors.New("ProvisionedThroughputExceededException"), secretA, "team-a", newID("ta"), 202, "", "team-a 50/100"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			l.mu.Lock()
			l.ok, l.after, l.err, l.takes = tt.ok, tt.after, tt.err, nil
			l.mu.Unlock()
			idemps := f.idempotencyRecords()
			resp, body := f.do(f.postAs(t, tt.secret, tt.id, openAccount(tt.agg), ""))
			if resp.StatusCode != tt.status || resp.Headers["Retry-After"] != tt.retry {
				t.Fatalf("got %d Retry-After %q %s, want %d %q", resp.StatusCode, resp.Headers["Retry-After"], resp.Body, tt.status, tt.retry)
			}
			if len(l.takes) != 1 || l.takes[0] != tt.take {
				t.Errorf("takes %v, want one: %s", l.takes, tt.take)
			}
			if tt.status == 429 {
				if body["type"] != "https://github.com/dispatcher-dev/dispatcher/blob/main/docs/problems.md#rate-limited" {
					t.Errorf("problem %v", body)
				}
				if f.count(tt.agg) != 0 || f.idempotencyRecords() != idemps {
					t.Error("a refused request wrote something")
				}
			}
		})
	}
	if !strings.Contains(f.logs.String(), `"msg":"rate limit not checked; the request goes on"`) || !strings.Contains(f.metrics.String(), `"RateLimitUnavailable":1`) {
		t.Errorf("a failed limiter is not logged and counted:\n%s\n%s", f.logs.String(), f.metrics.String())
	}
	t.Run("an unauthenticated request spends nothing", func(t *testing.T) {
		l.takes = nil
		if resp, _ := f.do(f.postAs(t, secretA, "team-b", openAccount(newID("tb")), "")); resp.StatusCode != 401 || len(l.takes) != 0 {
			t.Fatalf("%d, takes %v", resp.StatusCode, l.takes)
		}
	})
}

// countingReader counts the reads that reach the table.
type countingReader struct {
	apigw.Reader
	mu    sync.Mutex
	reads int
}

func (r *countingReader) count() {
	r.mu.Lock()
	r.reads++
	r.mu.Unlock()
}

func (r *countingReader) Load(ctx context.Context, id string) (dispatch.Aggregate, error) {
	r.count()
	return r.Reader.Load(ctx, id)
}

func (r *countingReader) ListOutbox(ctx context.Context, id string, limit int, cursor string) ([]dispatch.OutboxItem, string, error) {
	r.count()
	return r.Reader.ListOutbox(ctx, id, limit, cursor)
}

func (r *countingReader) ListEvents(ctx context.Context, id string, limit int, cursor string) ([]dispatch.OutboxItem, string, error) {
	r.count()
	return r.Reader.ListEvents(ctx, id, limit, cursor)
}

// An id outside every pattern of the caller's grant is answered before
// anything is read: its 404 costs no read, and no timing tells it apart.
func TestAReadOutsideTheGrantReadsNothing(t *testing.T) {
	f := newCallersFixture(t)
	a := newID("ta")
	if resp, _ := f.do(f.postAs(t, secretA, "team-a", openAccount(a), "")); resp.StatusCode != http.StatusAccepted {
		t.Fatalf("open: %d %s", resp.StatusCode, resp.Body)
	}
	reader := &countingReader{Reader: f.store}
	// The executor without its Read, so that GET /v1/aggregates/{id} reads
	// through the reader.
	f.h = f.handler(struct{ apigw.Executor }{command.New(f.store, f.tmpl)}, reader)
	for _, suffix := range []string{"", "/outbox", "/events"} {
		resp, _ := f.do(f.getAs(t, secretB, "team-b", "/v1/aggregates/"+a+suffix, a))
		if resp.StatusCode != http.StatusNotFound || reader.reads != 0 {
			t.Errorf("%s: %d after %d reads, want 404 after none", suffix, resp.StatusCode, reader.reads)
		}
	}
	if resp, _ := f.do(f.getAs(t, secretA, "team-a", "/v1/aggregates/"+a, a)); resp.StatusCode != http.StatusOK || reader.reads == 0 {
		t.Errorf("team-a's own: %d after %d reads", resp.StatusCode, reader.reads)
	}
}
