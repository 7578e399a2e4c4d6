package yunxiao

import (
	"context"
	"net"
	"net/http"
	"net/http/httptest"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"go.uber.org/goleak"
)

// connCounter counts the client side's open connections. The transport
// closes an idle connection synchronously (CloseIdleConnections calls
// net.Conn.Close before it returns), so the count is exact at any moment
// the client is not mid-request: no waiting needed.
type connCounter struct{ open atomic.Int64 }

func (cc *connCounter) transport() *http.Transport {
	var d net.Dialer
	return &http.Transport{
		MaxIdleConnsPerHost: 16,
		DialContext: func(ctx context.Context, network, addr string) (net.Conn, error) {
			conn, err := d.DialContext(ctx, network, addr)
			if err != nil {
				return nil, err
			}
			cc.open.Add(1)
			return &countedConn{Conn: conn, cc: cc}, nil
		},
	}
}

type countedConn struct {
	net.Conn
	cc   *connCounter
	once sync.Once
}

func (c *countedConn) Close() error {
	c.once.Do(func() { c.cc.open.Add(-1) })
	return c.Conn.Close()
}

// callConcurrently makes n concurrent calls, so that the client's pool
// holds several connections, and fails the test on any error.
func callConcurrently(t *testing.T, c *Client, n int) {
	t.Helper()
	var wg sync.WaitGroup
	for i := range n {
		wg.Go(func() {
			if _, err := c.GetLatestPipelineRun(context.Background(), int64(i)); err != nil {
				t.Errorf("call %d: %v", i, err)
			}
		})
	}
	wg.Wait()
}

// gate holds requests at the server until as many as a test sent have
// arrived, so that n calls use exactly n connections, each dialed for its
// own call. Without it a call may dial, then take a connection another
// call has just freed, and its dial lands in the pool later, when the
// test may have stopped looking.
type gate struct {
	arrived chan struct{}
	held    atomic.Pointer[chan struct{}] // nil: answer at once
}

func newGate() *gate { return &gate{arrived: make(chan struct{}, 64)} }

func (g *gate) handler(w http.ResponseWriter, r *http.Request) {
	if release := g.held.Load(); release != nil {
		g.arrived <- struct{}{}
		<-*release
	}
	writeJSONBody(w, 200, `{"pipelineRunId":1}`)
}

// hold makes the next requests wait at the server until release is called.
func (g *gate) hold() (release func()) {
	ch := make(chan struct{})
	g.held.Store(&ch)
	return func() { g.held.Store(nil); close(ch) }
}

// callAll makes n concurrent calls (n at most the client's concurrency)
// and lets them be answered once all n have arrived.
func (g *gate) callAll(t *testing.T, c *Client, n int) {
	t.Helper()
	release := g.hold()
	var wg sync.WaitGroup
	for i := range n {
		wg.Go(func() {
			if _, err := c.GetLatestPipelineRun(context.Background(), int64(i)); err != nil {
				t.Errorf("call %d: %v", i, err)
			}
		})
	}
	for range n {
		<-g.arrived
	}
	release()
	wg.Wait()
}

// TestReloadClosesConnections: 30 reloads, each a New(previous) with
// requests in between and the previous client closed, leave open only the
// live client's connections: every closed client's are closed, at once.
func TestReloadClosesConnections(t *testing.T) {
	g := newGate()
	srv, _ := counted(t, g.handler)
	opts := testOptions(srv.URL)
	opts.MaxConcurrency = 4
	m := NewMetrics()
	var counters []*connCounter // one per client, in order
	var prev *Client
	for i := range 30 {
		cc := &connCounter{}
		counters = append(counters, cc)
		opts.Transport, opts.Previous = cc.transport(), prev
		c, err := New(opts, m)
		if err != nil {
			t.Fatal(err)
		}
		g.callAll(t, c, opts.MaxConcurrency)
		if prev != nil {
			prev.Close()
		}
		for j, old := range counters[:i] {
			if n := old.open.Load(); n != 0 {
				t.Fatalf("reload %d: client %d, closed, still has %d connections open", i+1, j+1, n)
			}
		}
		if open := cc.open.Load(); open != int64(opts.MaxConcurrency) {
			t.Fatalf("reload %d: the live client has %d connections open, want %d", i+1, open, opts.MaxConcurrency)
		}
		prev = c
	}
	prev.Close()
	if open := counters[len(counters)-1].open.Load(); open != 0 {
		t.Errorf("%d connections open after the last Close, want 0", open)
	}
}

// TestCloseWithRequestInFlight: Close closes the idle connections at once,
// leaves the one serving a request alone and closes it as soon as that
// request is over; a call made after Close works and leaves nothing open.
func TestCloseWithRequestInFlight(t *testing.T) {
	g := newGate()
	srv, _ := counted(t, g.handler)
	var cc connCounter
	opts := testOptions(srv.URL)
	opts.Transport = cc.transport()
	c, _ := newClient(t, opts)
	g.callAll(t, c, 2) // two idle connections

	release := g.hold()
	errc := make(chan error, 1)
	go func() {
		_, err := c.GetLatestPipelineRun(context.Background(), 1)
		errc <- err
	}()
	<-g.arrived
	c.Close()
	if open := cc.open.Load(); open != 1 {
		t.Errorf("%d connections open after Close with one request in flight, want 1", open)
	}
	release()
	if err := <-errc; err != nil {
		t.Fatalf("the call in flight at Close: %v", err)
	}
	if open := cc.open.Load(); open != 0 {
		t.Errorf("%d connections open after the last request finished, want 0", open)
	}

	if _, err := c.GetPipeline(context.Background(), 1); err != nil {
		t.Fatalf("a call after Close: %v", err)
	}
	if open := cc.open.Load(); open != 0 {
		t.Errorf("%d connections open after a call on a closed client, want 0", open)
	}
}

// TestReloadLeaksNoGoroutines: with the default transport, 30 reloads with
// requests in between leave no goroutine and no connection behind once the
// last client is closed. goleak retries until the connections' goroutines
// have ended, which happens after, not at, their closing.
func TestReloadLeaksNoGoroutines(t *testing.T) {
	var open atomic.Int64 // connections the server holds
	srv := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		writeJSONBody(w, 200, `{"pipelineRunId":1}`)
	}))
	srv.Config.ConnState = func(_ net.Conn, s http.ConnState) {
		switch s {
		case http.StateNew:
			open.Add(1)
		case http.StateClosed, http.StateHijacked:
			open.Add(-1)
		}
	}
	srv.Start()
	t.Cleanup(srv.Close)
	ignore := goleak.IgnoreCurrent() // the server's own goroutines, and earlier tests'

	opts := testOptions(srv.URL)
	opts.MaxConcurrency = 8
	m := NewMetrics()
	var prev *Client
	for range 30 {
		opts.Previous = prev
		c, err := New(opts, m)
		if err != nil {
			t.Fatal(err)
		}
		callConcurrently(t, c, 8)
		if prev != nil {
			prev.Close()
		}
		prev = c
	}
	prev.Close()
	goleak.VerifyNone(t, ignore)
	// The server's connection goroutines report StateClosed before they
	// end, so once goleak has seen them end the count is final.
	if n := open.Load(); n != 0 {
		t.Errorf("the server still holds %d connections", n)
	}
}

// TestReloadKeepsPauses: a 429 pause survives New(previous) on the same
// host, and does not follow the client to another host; the successor
// does not keep its predecessor alive.
func TestReloadKeepsPauses(t *testing.T) {
	handler := func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Retry-After", "60")
		writeJSONBody(w, 429, `{"errorCode":"TooManyRequests"}`)
	}
	a, na := counted(t, handler)
	b, nb := counted(t, handler)
	ctx := deadline(t, 30*time.Second)

	opts := testOptions(a.URL)
	c1, _ := newClient(t, opts)
	_, err := c1.GetLatestPipelineRun(ctx, 1)
	mustFail(t, err, ReasonRateLimited)

	opts.Previous = c1
	opts.Timeout = 5 * time.Second // a changed setting does not matter
	c2, _ := newClient(t, opts)
	c1.Close()
	if c2.opts.Previous != nil {
		t.Error("the new client keeps its predecessor (and so every earlier one) alive")
	}
	_, err = c2.GetLatestPipelineRun(ctx, 1)
	if e := mustFail(t, err, ReasonRateLimited); na.Load() != 1 {
		t.Errorf("%v: the server saw %d requests, want 1: the pause was lost on reload", e, na.Load())
	}
	_, err = c2.GetLatestPipelineRun(ctx, 2)
	mustFail(t, err, ReasonRateLimited)
	if na.Load() != 2 {
		t.Errorf("the server saw %d requests, want 2: another pipeline is not paused", na.Load())
	}

	opts.Endpoint, opts.Previous = b.URL, c2
	c3, _ := newClient(t, opts)
	_, err = c3.GetLatestPipelineRun(ctx, 1)
	mustFail(t, err, ReasonRateLimited)
	if nb.Load() != 1 {
		t.Errorf("the other host saw %d requests, want 1: a pause followed the client to another host", nb.Load())
	}
}

// TestReloadKeepsLimits: the rate limiter and the concurrency limit carry
// over while their settings do not change, so a reload does not refill
// the burst; a changed setting gets a fresh one.
func TestReloadKeepsLimits(t *testing.T) {
	srv, n := counted(t, func(w http.ResponseWriter, r *http.Request) { writeJSONBody(w, 200, `{"name":"p"}`) })
	ctx := deadline(t, 30*time.Second)
	opts := testOptions(srv.URL)
	opts.RateLimit, opts.Burst = 0.001, 2
	c1, _ := newClient(t, opts)
	for i := range 2 {
		if _, err := c1.GetPipeline(ctx, int64(i)); err != nil {
			t.Fatal(err)
		}
	}

	opts.Previous = c1
	c2, _ := newClient(t, opts)
	_, err := c2.GetPipeline(ctx, 3)
	mustFail(t, err, ReasonTimeout)
	if n.Load() != 2 || c2.limiter != c1.limiter || c2.sem != c1.sem {
		t.Errorf("server saw %d requests (want 2): the reload refilled the burst", n.Load())
	}

	opts.Previous, opts.Burst = c2, 3
	c3, _ := newClient(t, opts)
	if _, err := c3.GetPipeline(ctx, 4); err != nil {
		t.Errorf("with a new burst: %v", err)
	}
	if c3.sem != c2.sem {
		t.Error("max_concurrency did not change, but the concurrency limit was not carried over")
	}

	opts.Previous, opts.MaxConcurrency = c3, 5
	c4, _ := newClient(t, opts)
	if c4.sem == c3.sem || c4.limiter != c3.limiter {
		t.Error("a new max_concurrency must get a new limit, and an unchanged rate limit keep its limiter")
	}

	opts.Previous, opts.RateLimit = c4, 0
	c5, _ := newClient(t, opts)
	if c5.limiter != nil {
		t.Error("rate_limit 0 must mean no limiter, whatever the previous client had")
	}
}
