package faults

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"sync"
	"time"
)

// Proxy is a loopback HTTP server that forwards every request to one upstream
// (an emulator) through a Transport, so processes that only take an endpoint
// URL (Lambda bootstrap binaries reading AWS_ENDPOINT_URL_SQS and the like)
// meet the same faults as in-process clients.
//
// A fault answer (Status, Code) reaches the client as the HTTP response the
// in-process client would have received. A Transport error (AfterApply's
// lost response, or the upstream being down) reaches it as a reset
// connection, never as an HTTP answer: a 502 would be a failure AWS does not
// produce.
type Proxy struct {
	URL string // http://127.0.0.1:<port>

	upstream *url.URL
	tr       *Transport
	srv      *http.Server
	served   chan struct{} // closed when Serve returns
	cancel   context.CancelFunc

	mu       sync.Mutex
	closed   bool
	handlers sync.WaitGroup
}

// NewProxy starts a Proxy on a free loopback port that sends every request
// to upstream (such as "http://127.0.0.1:4566") through tr.
func NewProxy(upstream string, tr *Transport) (*Proxy, error) {
	u, err := url.Parse(upstream)
	if err != nil {
		return nil, fmt.Errorf("faults: proxy upstream: %w", err)
	}
	if (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return nil, fmt.Errorf("faults: proxy upstream %q: want http://host:port", upstream)
	}
	if tr == nil {
		return nil, errors.New("faults: proxy needs a Transport")
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, fmt.Errorf("faults: proxy listen: %w", err)
	}
	// Cancelled by Close, so that requests still waiting on the upstream
	// (or on a Delay) end with the proxy.
	ctx, cancel := context.WithCancel(context.Background())
	p := &Proxy{
		URL:      "http://" + ln.Addr().String(),
		upstream: u,
		tr:       tr,
		served:   make(chan struct{}),
		cancel:   cancel,
	}
	p.srv = &http.Server{
		Handler:           p,
		ReadHeaderTimeout: time.Minute,
		BaseContext:       func(net.Listener) context.Context { return ctx },
	}
	go func() {
		defer close(p.served)
		p.srv.Serve(ln) // returns http.ErrServerClosed after Close
	}()
	return p, nil
}

// Close stops accepting, closes every connection, ends the requests in
// flight and waits for their handlers to return.
func (p *Proxy) Close() error {
	p.mu.Lock()
	if p.closed {
		p.mu.Unlock()
		return nil
	}
	p.closed = true
	p.mu.Unlock()
	p.cancel()
	err := p.srv.Close()
	<-p.served
	p.handlers.Wait()
	return err
}

// ServeHTTP forwards r to the upstream through the Transport.
func (p *Proxy) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	p.mu.Lock()
	if p.closed {
		p.mu.Unlock()
		reset(w)
		return
	}
	p.handlers.Add(1)
	p.mu.Unlock()
	defer p.handlers.Done()

	// r.Context() ends when the client goes away or the proxy closes; the
	// upstream request ends with it.
	out := r.Clone(r.Context())
	out.RequestURI = ""
	out.URL.Scheme = p.upstream.Scheme
	out.URL.Host = p.upstream.Host
	// out.Host keeps the client's Host header: SigV4 signed it.
	removeHopHeaders(out.Header)
	if _, ok := out.Header["User-Agent"]; !ok {
		out.Header.Set("User-Agent", "") // or net/http adds its own
	}
	// Read the whole body first: the server notices a client that goes
	// away only once the body is consumed, and a request cancelled during
	// a Delay must not be forwarded afterwards. AWS request bodies are
	// small, and a buffered body lets matchers such as BodyContains reread
	// it through GetBody.
	body, err := io.ReadAll(r.Body)
	if err != nil {
		reset(w)
		return
	}
	out.ContentLength = int64(len(body))
	out.TransferEncoding = nil
	out.Header.Del("Expect") // the body is already here; SigV4 does not sign Expect
	out.Body, out.GetBody = nil, nil
	if len(body) > 0 {
		out.GetBody = func() (io.ReadCloser, error) { return io.NopCloser(bytes.NewReader(body)), nil }
		out.Body, _ = out.GetBody()
	}

	resp, err := p.tr.RoundTrip(out)
	if err != nil {
		reset(w)
		return
	}
	defer resp.Body.Close()

	h := w.Header()
	for k, vs := range resp.Header {
		h[k] = append([]string(nil), vs...)
	}
	removeHopHeaders(h)
	if resp.ContentLength >= 0 && h.Get("Content-Length") == "" {
		h.Set("Content-Length", strconv.FormatInt(resp.ContentLength, 10))
	}
	w.WriteHeader(resp.StatusCode)

	rc := http.NewResponseController(w)
	buf := make([]byte, 32<<10)
	for {
		n, rerr := resp.Body.Read(buf)
		if n > 0 {
			if _, err := w.Write(buf[:n]); err != nil {
				return // the client is gone
			}
			rc.Flush()
		}
		if rerr != nil {
			if !errors.Is(rerr, io.EOF) {
				// The upstream broke off mid-body: so does the proxy,
				// rather than hand over a truncated answer as complete.
				reset(w)
			}
			return
		}
	}
}

// reset drops the client's connection with a TCP reset (SO_LINGER 0), the
// way a connection lost in transit looks to an AWS client.
func reset(w http.ResponseWriter) {
	conn, _, err := http.NewResponseController(w).Hijack()
	if err != nil {
		// Not expected on this HTTP/1.1 server. ErrAbortHandler is
		// net/http's own way to drop a connection without an answer; the
		// server recovers it and does not log it.
		panic(http.ErrAbortHandler)
	}
	if tc, ok := conn.(*net.TCPConn); ok {
		tc.SetLinger(0)
	}
	conn.Close()
}

// hopHeaders apply to one connection, not to the request (RFC 9110 7.6.1).
var hopHeaders = []string{
	"Connection", "Proxy-Connection", "Keep-Alive", "Proxy-Authenticate",
	"Proxy-Authorization", "Te", "Trailer", "Transfer-Encoding", "Upgrade",
}

func removeHopHeaders(h http.Header) {
	for _, v := range h.Values("Connection") {
		for _, name := range strings.Split(v, ",") {
			if name = strings.TrimSpace(name); name != "" {
				h.Del(name)
			}
		}
	}
	for _, name := range hopHeaders {
		h.Del(name)
	}
}
