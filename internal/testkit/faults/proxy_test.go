package faults_test

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"runtime"
	"strings"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb"
	dtypes "github.com/aws/aws-sdk-go-v2/service/dynamodb/types"
	"github.com/aws/aws-sdk-go-v2/service/sesv2"
	sestypes "github.com/aws/aws-sdk-go-v2/service/sesv2/types"
	"github.com/aws/aws-sdk-go-v2/service/sqs"
	"github.com/aws/smithy-go"
	smithyhttp "github.com/aws/smithy-go/transport/http"

	"github.com/dispatcher-dev/dispatcher/internal/local/emulator"
	"github.com/dispatcher-dev/dispatcher/internal/testkit/faults"
	"github.com/dispatcher-dev/dispatcher/internal/testkit/testenv"
)

func newProxy(t *testing.T, upstream string, tr *faults.Transport) *faults.Proxy {
	t.Helper()
	p, err := faults.NewProxy(upstream, tr)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { p.Close() })
	return p
}

// echo is an upstream that reports what it received, in headers, and
// answers 201 with the request body.
func echo(t *testing.T) (*httptest.Server, *atomic.Int64) {
	t.Helper()
	var conns atomic.Int64
	srv := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		w.Header().Set("X-Got-Method", r.Method)
		w.Header().Set("X-Got-Uri", r.RequestURI)
		w.Header().Set("X-Got-Host", r.Host)
		w.Header().Set("X-Got-Signature", r.Header.Get("Authorization"))
		w.Header().Set("X-Got-Length", fmt.Sprint(r.ContentLength))
		w.Header().Add("X-Multi", "a")
		w.Header().Add("X-Multi", "b")
		w.WriteHeader(http.StatusCreated)
		w.Write(body)
	}))
	srv.Config.ConnState = func(_ net.Conn, s http.ConnState) {
		if s == http.StateNew {
			conns.Add(1)
		}
	}
	srv.Start()
	t.Cleanup(srv.Close)
	return srv, &conns
}

// dialCounter is a client transport that counts its connections.
func dialCounter() (*http.Transport, *atomic.Int64) {
	var dials atomic.Int64
	d := &net.Dialer{}
	return &http.Transport{DialContext: func(ctx context.Context, network, addr string) (net.Conn, error) {
		dials.Add(1)
		return d.DialContext(ctx, network, addr)
	}}, &dials
}

func TestProxyPassesRequestsAndResponsesThroughOverOneConnection(t *testing.T) {
	up, upConns := echo(t)
	p := newProxy(t, up.URL, faults.New(nil))
	clientTr, dials := dialCounter()
	defer clientTr.CloseIdleConnections()
	client := &http.Client{Transport: clientTr}
	host := strings.TrimPrefix(p.URL, "http://")

	const n = 50
	for i := range n {
		body := strings.Repeat(fmt.Sprint("payload-", i, ";"), 1+i*100) // up to ~60 KB
		uri := fmt.Sprintf("/v2/email/identities/a%%40b.com?x=%d&y=a+b&z=%%2F", i)
		method := http.MethodPost
		if i%5 == 0 {
			method, body = http.MethodGet, ""
		}
		req, err := http.NewRequest(method, p.URL+uri, strings.NewReader(body))
		if err != nil {
			t.Fatal(err)
		}
		req.Header.Set("Authorization", "AWS4-HMAC-SHA256 Credential=test/x, SignedHeaders=host, Signature=abc")
		resp, err := client.Do(req)
		if err != nil {
			t.Fatalf("request %d: %v", i, err)
		}
		got, err := io.ReadAll(resp.Body)
		resp.Body.Close()
		if err != nil {
			t.Fatalf("request %d: read body: %v", i, err)
		}
		checks := []struct{ what, got, want string }{
			{"status", fmt.Sprint(resp.StatusCode), "201"},
			{"response body", string(got), body},
			{"method", resp.Header.Get("X-Got-Method"), method},
			{"request URI", resp.Header.Get("X-Got-Uri"), uri},
			{"Host", resp.Header.Get("X-Got-Host"), host},
			{"Authorization", resp.Header.Get("X-Got-Signature"), req.Header.Get("Authorization")},
			{"Content-Length", resp.Header.Get("X-Got-Length"), fmt.Sprint(len(body))},
			{"multi-valued header", strings.Join(resp.Header.Values("X-Multi"), ","), "a,b"},
		}
		for _, c := range checks {
			if c.got != c.want {
				t.Fatalf("request %d: %s = %.80q, want %.80q", i, c.what, c.got, c.want)
			}
		}
	}
	if dials.Load() != 1 {
		t.Errorf("the client opened %d connections to the proxy for %d requests, want 1", dials.Load(), n)
	}
	if upConns.Load() != 1 {
		t.Errorf("the proxy opened %d connections to the upstream for %d requests, want 1", upConns.Load(), n)
	}
}

func TestProxyWritesFaultAnswersAsTheTransportMadeThem(t *testing.T) {
	srv, hits := fakeAWS(t)
	tr := faults.New(nil)
	tr.Add(faults.Fault{Match: faults.Target("SendMessage"), Times: 1, Status: 400, Code: "ThrottlingException", Message: "slow down"})
	p := newProxy(t, srv.URL, tr)
	req, _ := http.NewRequest(http.MethodPost, p.URL+"/", strings.NewReader(`{}`))
	req.Header.Set("X-Amz-Target", "AmazonSQS.SendMessage")
	req.Header.Set("X-Amzn-Query-Mode", "true")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != 400 ||
		resp.Header.Get("X-Amzn-Query-Error") != "ThrottlingException;Sender" ||
		resp.Header.Get("Content-Type") != "application/x-amz-json-1.0" ||
		resp.ContentLength != int64(len(body)) ||
		string(body) != `{"__type":"ThrottlingException","message":"slow down"}` {
		t.Errorf("answer = %d %v %s", resp.StatusCode, resp.Header, body)
	}
	if hits.Load() != 0 {
		t.Errorf("upstream saw %d requests, want 0", hits.Load())
	}
}

// A request the Transport fails must end in a reset connection, not in an
// HTTP answer such as a 502.
func TestProxyResetsTheConnectionWhenTheTransportFails(t *testing.T) {
	srv, hits := fakeAWS(t)
	tests := []struct {
		name     string
		upstream string
		fault    *faults.Fault
		wantHits int64
	}{
		{name: "lost response after apply resets", upstream: srv.URL, fault: &faults.Fault{AfterApply: true}, wantHits: 1},
		{name: "unreachable upstream resets", upstream: closedPort(t)},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			tr := faults.New(nil)
			if tt.fault != nil {
				tr.Add(*tt.fault)
			}
			p := newProxy(t, tt.upstream, tr)
			before := hits.Load()
			resp, err := http.Post(p.URL+"/", "application/json", strings.NewReader(`{}`))
			if err == nil {
				resp.Body.Close()
				t.Fatalf("got an HTTP answer %s, want a connection reset", resp.Status)
			}
			if !errors.Is(err, syscall.ECONNRESET) {
				t.Errorf("err = %v, want a connection reset", err)
			}
			if got := hits.Load() - before; got != tt.wantHits {
				t.Errorf("upstream saw %d requests, want %d", got, tt.wantHits)
			}
		})
	}
}

func TestProxyCancelsTheUpstreamRequestWithTheClient(t *testing.T) {
	arrived, cancelled := make(chan struct{}), make(chan struct{})
	up := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		io.ReadAll(r.Body) // or the server does not watch the connection
		close(arrived)
		select {
		case <-r.Context().Done():
			close(cancelled)
		case <-time.After(10 * time.Second):
		}
	}))
	defer up.Close()
	p := newProxy(t, up.URL, faults.New(nil))
	ctx, cancel := context.WithCancel(context.Background())
	errc := make(chan error, 1)
	go func() {
		req, _ := http.NewRequestWithContext(ctx, http.MethodPost, p.URL+"/", strings.NewReader(`{}`))
		_, err := http.DefaultClient.Do(req)
		errc <- err
	}()
	<-arrived
	cancel()
	select {
	case <-cancelled:
	case <-time.After(5 * time.Second):
		t.Fatal("the upstream request was not cancelled with the client's")
	}
	if err := <-errc; !errors.Is(err, context.Canceled) {
		t.Errorf("client err = %v, want context.Canceled", err)
	}
}

// In process, a request cancelled during a Delay is never sent; through
// the proxy it must not be sent either once the delay is over.
func TestProxyDropsARequestCancelledDuringADelay(t *testing.T) {
	srv, hits := fakeAWS(t)
	tr := faults.New(nil)
	tr.Add(faults.Fault{Delay: 300 * time.Millisecond})
	p := newProxy(t, srv.URL, tr)
	ctx, cancel := context.WithTimeout(context.Background(), 50*time.Millisecond)
	defer cancel()
	req, _ := http.NewRequestWithContext(ctx, http.MethodPost, p.URL+"/", strings.NewReader(`{"a":1}`))
	if _, err := http.DefaultClient.Do(req); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("err = %v, want context.DeadlineExceeded", err)
	}
	time.Sleep(600 * time.Millisecond)
	if tr.Count(nil) != 1 || hits.Load() != 0 {
		t.Errorf("transport saw %d requests and upstream %d, want 1 and 0", tr.Count(nil), hits.Load())
	}
}

func TestProxyCloseEndsRequestsInFlightAndLeavesNoGoroutines(t *testing.T) {
	arrived := make(chan struct{}, 1)
	up := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/slow" {
			arrived <- struct{}{}
			<-r.Context().Done()
		}
	}))
	defer up.Close()
	base := &http.Transport{}
	clientTr := &http.Transport{}
	client := &http.Client{Transport: clientTr}
	before := runtime.NumGoroutine()

	p, err := faults.NewProxy(up.URL, faults.New(base))
	if err != nil {
		t.Fatal(err)
	}
	// One idle keep-alive connection and one request in flight.
	resp, err := client.Get(p.URL + "/idle")
	if err != nil {
		t.Fatal(err)
	}
	io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	errc := make(chan error, 1)
	go func() {
		_, err := (&http.Client{Transport: &http.Transport{DisableKeepAlives: true}}).Get(p.URL + "/slow")
		errc <- err
	}()
	<-arrived

	start := time.Now()
	if err := p.Close(); err != nil {
		t.Fatal(err)
	}
	if d := time.Since(start); d > 2*time.Second {
		t.Errorf("Close took %s with a request in flight", d)
	}
	if err := <-errc; err == nil {
		t.Error("the request in flight got an answer after Close")
	}
	if _, err := client.Get(p.URL + "/after"); err == nil {
		t.Error("the proxy still answers after Close")
	}
	base.CloseIdleConnections()
	clientTr.CloseIdleConnections()
	deadline := time.Now().Add(5 * time.Second)
	for runtime.NumGoroutine() > before && time.Now().Before(deadline) {
		time.Sleep(20 * time.Millisecond)
	}
	if n := runtime.NumGoroutine(); n > before {
		buf := make([]byte, 1<<20)
		t.Errorf("%d goroutines after Close, %d before:\n%s", n, before, buf[:runtime.Stack(buf, true)])
	}
}

func TestNewProxyRejectsAnUnusableUpstream(t *testing.T) {
	for _, upstream := range []string{"", "127.0.0.1:4566", "ftp://127.0.0.1:21", "http://"} {
		if p, err := faults.NewProxy(upstream, faults.New(nil)); err == nil {
			p.Close()
			t.Errorf("NewProxy(%q) succeeded, want an error", upstream)
		}
	}
}

// closedPort returns the URL of a loopback port nothing listens on.
func closedPort(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	url := "http://" + ln.Addr().String()
	ln.Close()
	return url
}

// viaProxy returns the emulators' config for clients that reach one
// emulator through p: per-client BaseEndpoint, because the service-specific
// AWS_ENDPOINT_URL_* variables testenv sets win over aws.Config.BaseEndpoint.
func viaProxy(p *faults.Proxy) func(*sqs.Options) {
	return func(o *sqs.Options) { o.BaseEndpoint = aws.String(p.URL); o.RetryMaxAttempts = 1 }
}

// connectionLevel checks that err is a failure below HTTP, as the SDK
// reports one: a RequestSendError (which its retryer treats as a connection
// error) holding the reset, with no status and no API error code. The SDK
// wraps every failure in a ResponseError; a send failure's has status 0.
func connectionLevel(t *testing.T, err error) {
	t.Helper()
	var se *smithyhttp.RequestSendError
	if !errors.As(err, &se) {
		t.Errorf("err = %v, want a RequestSendError", err)
	}
	var re *smithyhttp.ResponseError
	if errors.As(err, &re) && re.HTTPStatusCode() != 0 {
		t.Errorf("err carries an HTTP answer (status %d): %v", re.HTTPStatusCode(), err)
	}
	var ae smithy.APIError
	if errors.As(err, &ae) {
		t.Errorf("err is an API error %q: %v", ae.ErrorCode(), err)
	}
	if !errors.Is(err, syscall.ECONNRESET) {
		t.Errorf("err = %v, want a connection reset", err)
	}
}

func TestProxyReachesTheEmulators(t *testing.T) {
	env := testenv.Get(t)
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	marker := fmt.Sprint("proxy-", time.Now().UnixNano())

	t.Run("SQS sends and receives", func(t *testing.T) {
		p := newProxy(t, env.Emulators.Get(emulator.SQS).URL, faults.New(nil))
		api := sqs.NewFromConfig(env.AWS, viaProxy(p))
		dlq := env.Stack.Physical("DeadLetterQueue")
		if _, err := api.SendMessage(ctx, &sqs.SendMessageInput{QueueUrl: aws.String(dlq), MessageBody: aws.String(marker)}); err != nil {
			t.Fatal(err)
		}
		ok, err := inQueue(ctx, api, dlq, marker)
		if err != nil {
			t.Fatal(err)
		}
		if !ok {
			t.Error("the message sent through the proxy was not received through it")
		}
	})

	t.Run("DynamoDB puts and gets", func(t *testing.T) {
		p := newProxy(t, env.Emulators.Get(emulator.DynamoDB).URL, faults.New(nil))
		db := dynamodb.NewFromConfig(env.AWS, func(o *dynamodb.Options) { o.BaseEndpoint = aws.String(p.URL); o.RetryMaxAttempts = 1 })
		table := aws.String(env.Stack.Physical("OutboxTable"))
		key := map[string]dtypes.AttributeValue{
			"pk": &dtypes.AttributeValueMemberS{Value: marker},
			"sk": &dtypes.AttributeValueMemberS{Value: "proxy"},
		}
		item := map[string]dtypes.AttributeValue{"payload": &dtypes.AttributeValueMemberS{Value: strings.Repeat("x", 20000)}}
		for k, v := range key {
			item[k] = v
		}
		if _, err := db.PutItem(ctx, &dynamodb.PutItemInput{TableName: table, Item: item}); err != nil {
			t.Fatal(err)
		}
		defer db.DeleteItem(ctx, &dynamodb.DeleteItemInput{TableName: table, Key: key})
		out, err := db.GetItem(ctx, &dynamodb.GetItemInput{TableName: table, Key: key, ConsistentRead: aws.Bool(true)})
		if err != nil {
			t.Fatal(err)
		}
		got, _ := out.Item["payload"].(*dtypes.AttributeValueMemberS)
		if got == nil || got.Value != strings.Repeat("x", 20000) {
			t.Errorf("GetItem through the proxy = %v, want the item put through it", out.Item)
		}
	})

	t.Run("SES v2 sends", func(t *testing.T) {
		sender, err := env.Stack.Eval.Param("SenderAddress")
		if err != nil {
			t.Fatal(err)
		}
		p := newProxy(t, env.Emulators.Get(emulator.SES).URL, faults.New(nil))
		ses := sesv2.NewFromConfig(env.AWS, func(o *sesv2.Options) { o.BaseEndpoint = aws.String(p.URL); o.RetryMaxAttempts = 1 })
		out, err := ses.SendEmail(ctx, &sesv2.SendEmailInput{
			FromEmailAddress: aws.String(sender),
			Destination:      &sestypes.Destination{ToAddresses: []string{"someone@example.com"}},
			Content: &sestypes.EmailContent{Simple: &sestypes.Message{
				Subject: &sestypes.Content{Data: aws.String(marker)},
				Body:    &sestypes.Body{Text: &sestypes.Content{Data: aws.String("body")}},
			}},
		})
		if err != nil {
			t.Fatal(err)
		}
		if aws.ToString(out.MessageId) == "" {
			t.Error("SendEmail through the proxy returned no MessageId")
		}
		emails, err := env.SentEmails(ctx)
		if err != nil {
			t.Fatal(err)
		}
		found := false
		for _, e := range emails {
			found = found || e.Subject == marker
		}
		if !found {
			t.Error("the email sent through the proxy is not in the SES store")
		}
	})
}

func TestProxyInjectsFaultsInFrontOfTheEmulators(t *testing.T) {
	env := testenv.Get(t)
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	dlq := env.Stack.Physical("DeadLetterQueue")
	sqsURL := env.Emulators.Get(emulator.SQS).URL
	send := func(api *sqs.Client, body string) error {
		_, err := api.SendMessage(ctx, &sqs.SendMessageInput{QueueUrl: aws.String(dlq), MessageBody: aws.String(body)})
		return err
	}

	t.Run("throttling decodes to its code", func(t *testing.T) {
		tr := faults.New(nil)
		tr.Add(faults.Fault{Match: faults.Target("SendMessage"), Times: 1, Status: 400, Code: "ThrottlingException"})
		api := sqs.NewFromConfig(env.AWS, viaProxy(newProxy(t, sqsURL, tr)))
		err := send(api, "throttled")
		var ae smithy.APIError
		if !errors.As(err, &ae) || ae.ErrorCode() != "ThrottlingException" {
			t.Fatalf("err = %v, want the API error ThrottlingException", err)
		}
		var re *smithyhttp.ResponseError
		if !errors.As(err, &re) || re.HTTPStatusCode() != 400 {
			t.Errorf("err = %v, want HTTP status 400", err)
		}
		if err := send(api, "after-throttle"); err != nil {
			t.Errorf("the send after the used-up fault: %v", err)
		}
	})

	t.Run("lost response resets the connection after the write applied", func(t *testing.T) {
		tr := faults.New(nil)
		tr.Add(faults.Fault{Match: faults.Target("SendMessage"), Times: 1, AfterApply: true})
		api := sqs.NewFromConfig(env.AWS, viaProxy(newProxy(t, sqsURL, tr)))
		marker := fmt.Sprint("proxy-after-apply-", time.Now().UnixNano())
		err := send(api, marker)
		if err == nil {
			t.Fatal("SendMessage succeeded, want a connection reset")
		}
		connectionLevel(t, err)
		ok, err := inQueue(ctx, sqs.NewFromConfig(env.AWS), dlq, marker)
		if err != nil {
			t.Fatal(err)
		}
		if !ok {
			t.Error("the write did not apply on the emulator")
		}
	})

	t.Run("unreachable upstream resets the connection", func(t *testing.T) {
		api := sqs.NewFromConfig(env.AWS, viaProxy(newProxy(t, closedPort(t), faults.New(nil))))
		err := send(api, "nowhere")
		if err == nil {
			t.Fatal("SendMessage succeeded, want a connection reset")
		}
		connectionLevel(t, err)
	})
}

// inQueue receives (and deletes) the queue's messages until one has body
// marker.
func inQueue(ctx context.Context, api *sqs.Client, queue, marker string) (bool, error) {
	for range 5 {
		out, err := api.ReceiveMessage(ctx, &sqs.ReceiveMessageInput{QueueUrl: aws.String(queue), MaxNumberOfMessages: 10, WaitTimeSeconds: 1})
		if err != nil {
			return false, err
		}
		for _, m := range out.Messages {
			if _, err := api.DeleteMessage(ctx, &sqs.DeleteMessageInput{QueueUrl: aws.String(queue), ReceiptHandle: m.ReceiptHandle}); err != nil {
				return false, err
			}
			if aws.ToString(m.Body) == marker {
				return true, nil
			}
		}
	}
	return false, nil
}
