package yunxiao

import (
	"context"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/yunxiao-exporter/yunxiao_exporter/flowsim"
)

// TestMaxConcurrency: 20 concurrent calls through a client limited to 3.
// The fake holds every request until 3 are in flight; at that moment the
// client's semaphore must be full, so no fourth can start; then all go.
func TestMaxConcurrency(t *testing.T) {
	const limit, calls = 3, 20
	sim := flowsim.New(flowsim.Options{Token: testToken, OrganizationID: testOrg})
	srv := httptest.NewServer(sim)
	t.Cleanup(srv.Close)
	var arrivals atomic.Int64
	reached, release := make(chan struct{}), make(chan struct{})
	var releaseOnce sync.Once
	open := func() { releaseOnce.Do(func() { close(release) }) }
	t.Cleanup(open)
	sim.Fault(1, func(w http.ResponseWriter, r *http.Request) {
		if arrivals.Add(1) == limit {
			close(reached)
		}
		select {
		case <-release:
		case <-r.Context().Done():
			return
		}
		w.Header().Set("Content-Type", "application/json")
		_, _ = w.Write([]byte(`{"pipelineRunId":1}`))
	})
	opts := testOptions(srv.URL)
	opts.MaxConcurrency = limit
	c, _ := newClient(t, opts)

	var wg sync.WaitGroup
	errs := make(chan error, calls)
	for range calls {
		wg.Go(func() {
			if _, err := c.GetLatestPipelineRun(context.Background(), 1); err != nil {
				errs <- err
			}
		})
	}
	<-reached
	if c.sem.TryAcquire(1) {
		c.sem.Release(1)
		t.Error("with 3 requests held at the server, the client would still start a fourth")
	}
	if got := sim.MaxInFlight(); got != limit {
		t.Errorf("in flight before release = %d, want %d", got, limit)
	}
	open()
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Errorf("call failed: %v", err)
	}
	if got := sim.MaxInFlight(); got != limit {
		t.Errorf("max in flight = %d, want exactly %d", got, limit)
	}
	if got := sim.PipelineRequests(1); got != calls {
		t.Errorf("server saw %d requests, want %d", got, calls)
	}
}

// TestMaxConcurrencyCallerDeadline: a call that cannot get a slot before its
// deadline fails without reaching the server.
func TestMaxConcurrencyCallerDeadline(t *testing.T) {
	arrived := make(chan struct{}, 1)
	srv, n := stalled(t, func(w http.ResponseWriter, r *http.Request) { arrived <- struct{}{} })
	opts := testOptions(srv.URL)
	opts.MaxConcurrency = 1
	c, _ := newClient(t, opts)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	first := make(chan error, 1)
	go func() {
		_, err := c.GetLatestPipelineRun(ctx, 1)
		first <- err
	}()
	<-arrived
	_, err := c.GetLatestPipelineRun(deadline(t, 20*time.Millisecond), 2)
	mustFail(t, err, ReasonTimeout)
	if want := "GetLatestPipelineRun: deadline reached waiting for a free request slot"; err.Error() != want {
		t.Errorf("Error() = %q, want %q", err.Error(), want)
	}
	if n.Load() != 1 {
		t.Errorf("server saw %d requests, want 1", n.Load())
	}
	cancel()
	mustFail(t, <-first, ReasonCanceled)
}

// TestRateLimitBurst: a limiter of 0.001/s with burst 5 lets 5 requests
// through at once; the 6th cannot get a token before its deadline and
// fails without reaching the server.
func TestRateLimitBurst(t *testing.T) {
	srv, n := counted(t, func(w http.ResponseWriter, r *http.Request) { writeJSONBody(w, 200, `{"name":"p"}`) })
	opts := testOptions(srv.URL)
	opts.RateLimit, opts.Burst = 0.001, 5
	opts.MaxRetries = 2
	c, _ := newClient(t, opts)
	ctx := deadline(t, 30*time.Second)
	for i := range 5 {
		if _, err := c.GetPipeline(ctx, int64(i)); err != nil {
			t.Fatalf("call %d: %v", i+1, err)
		}
	}
	_, err := c.GetPipeline(ctx, 6)
	mustFail(t, err, ReasonTimeout)
	if want := "GetPipeline: the configured rate_limit allows no request before the deadline"; err.Error() != want {
		t.Errorf("Error() = %q, want %q", err.Error(), want)
	}
	if n.Load() != 5 {
		t.Errorf("server saw %d requests, want 5", n.Load())
	}
	if ctx.Err() != nil {
		t.Error("the 6th call waited out the deadline")
	}
	// The limit is shared by every endpoint.
	_, err = c.GetLatestPipelineRun(ctx, 7)
	mustFail(t, err, ReasonTimeout)
	if n.Load() != 5 {
		t.Errorf("server saw %d requests, want 5", n.Load())
	}
}

func TestRedirects(t *testing.T) {
	t.Run("other host refused", func(t *testing.T) {
		var sawToken atomic.Bool
		other, otherN := counted(t, func(w http.ResponseWriter, r *http.Request) {
			if r.Header.Get(TokenHeader) != "" {
				sawToken.Store(true)
			}
			writeJSONBody(w, 200, `{"pipelineRunId":1}`)
		})
		srv, n := counted(t, func(w http.ResponseWriter, r *http.Request) {
			http.Redirect(w, r, other.URL+r.URL.Path, http.StatusFound)
		})
		opts := testOptions(srv.URL)
		opts.MaxRetries = 2
		c, _ := newClient(t, opts)
		_, err := c.GetLatestPipelineRun(context.Background(), 1)
		mustFail(t, err, ReasonRedirect)
		if want := "GetLatestPipelineRun: redirect to another host refused: the token is sent only to the configured endpoint"; err.Error() != want {
			t.Errorf("Error() = %q\n             want %q", err.Error(), want)
		}
		if otherN.Load() != 0 || sawToken.Load() {
			t.Errorf("the other host saw %d requests (token: %v)", otherN.Load(), sawToken.Load())
		}
		if n.Load() != 1 {
			t.Errorf("a refused redirect was retried: %d requests", n.Load())
		}
	})
	t.Run("same host followed", func(t *testing.T) {
		var movedToken atomic.Value
		srv, n := counted(t, func(w http.ResponseWriter, r *http.Request) {
			if strings.HasPrefix(r.URL.Path, "/moved/") {
				movedToken.Store(r.Header.Get(TokenHeader))
				writeJSONBody(w, 200, `{"pipelineRunId":4}`)
				return
			}
			http.Redirect(w, r, "/moved"+r.URL.Path, http.StatusTemporaryRedirect)
		})
		c, _ := newClient(t, testOptions(srv.URL))
		run, err := c.GetLatestPipelineRun(context.Background(), 1)
		if err != nil || run == nil || run.PipelineRunID != 4 {
			t.Fatalf("GetLatestPipelineRun = %+v, %v", run, err)
		}
		if n.Load() != 2 || movedToken.Load() != testToken {
			t.Errorf("requests %d, token at the new location %q", n.Load(), movedToken.Load())
		}
	})
	t.Run("same host loop", func(t *testing.T) {
		srv, n := counted(t, func(w http.ResponseWriter, r *http.Request) {
			http.Redirect(w, r, r.URL.Path, http.StatusFound)
		})
		opts := testOptions(srv.URL)
		opts.MaxRetries = 2
		c, _ := newClient(t, opts)
		_, err := c.GetLatestPipelineRun(context.Background(), 1)
		mustFail(t, err, ReasonRedirect)
		if want := "GetLatestPipelineRun: stopped after 3 redirects"; err.Error() != want {
			t.Errorf("Error() = %q, want %q", err.Error(), want)
		}
		if n.Load() != 3 {
			t.Errorf("server saw %d requests, want 3 (one try, no retries)", n.Load())
		}
	})
}

// TestTokenSecrecy: whatever a server echoes back, the token never reaches
// an error text; not whole, and not cut by a length limit either.
func TestTokenSecrecy(t *testing.T) {
	pad := func(n int) string { return strings.Repeat("a", n) }
	tests := []struct {
		name   string
		status int
		header http.Header
		body   string
		latest bool
		hidden bool // the text says nothing of the body, so no <secret> either
	}{
		{name: "JSON message", status: 401, body: `{"errorCode":"InvalidTokenError","errorMessage":"token ` + testToken + ` is invalid"}`},
		{name: "JSON code", status: 401, body: `{"errorCode":"` + testToken + `","errorMessage":"x"}`},
		{name: "JSON request id", status: 403, body: `{"errorCode":"Forbidden","requestId":"` + testToken + `"}`},
		{name: "header request id", status: 404, header: http.Header{"X-Request-Id": {testToken}}},
		{name: "header request id, long", status: 404, header: http.Header{"X-Request-Id": {pad(50) + testToken}}},
		{name: "plain text", status: 500, body: "bad header x-yunxiao-token: " + testToken},
		{name: "plain text cut inside the token", status: 500, body: pad(30) + " " + testToken},
		{name: "JSON message cut inside the token", status: 400, body: `{"errorMessage":"` + pad(170) + " " + testToken + `"}`},
		{name: "JSON code cut inside the token", status: 400, body: `{"errorCode":"` + pad(50) + testToken + `"}`},
		{name: "HTML title", status: 502, body: "<html><title>" + testToken + "</title></html>"},
		{name: "HTML title cut inside the token", status: 502, body: "<html><title>" + pad(40) + " " + testToken + "</title></html>"},
		{name: "429", status: 429, header: http.Header{"Retry-After": {"0"}}, body: `{"errorMessage":"` + testToken + `"}`},
		{name: "200 with the token as run id", status: 200, body: `{"pipelineRunId":"` + testToken + `"}`, latest: true},
		{name: "200 with the token as time", status: 200, body: `{"pipelineRunId":1,"createTime":"` + testToken + `"}`, latest: true},
		{name: "200 starting with the token", status: 200, body: testToken, latest: true, hidden: true},
		{name: "200 text cut inside the token", status: 200, body: "x" + testToken, latest: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			srv, _ := counted(t, func(w http.ResponseWriter, r *http.Request) {
				for k, v := range tt.header {
					w.Header()[k] = v
				}
				w.WriteHeader(tt.status)
				_, _ = w.Write([]byte(tt.body))
			})
			c, _ := newClient(t, testOptions(srv.URL))
			var err error
			if tt.latest {
				_, err = c.GetLatestPipelineRun(context.Background(), 1)
			} else {
				_, err = c.GetPipeline(context.Background(), 1)
			}
			if err == nil {
				t.Fatal("no error")
			}
			text := err.Error()
			if !tt.hidden && !strings.Contains(text, "<secret>") {
				t.Errorf("Error() does not show the redaction: %q", text)
			}
			for i := 0; i+10 <= len(testToken); i++ {
				if w := testToken[i : i+10]; strings.Contains(text, w) {
					t.Fatalf("Error() holds %q of the token: %q", w, text)
				}
			}
		})
	}
}

// TestTokenNotInDecodedNames: names become label values, so a token in a
// 200 answer is redacted there too.
func TestTokenNotInDecodedNames(t *testing.T) {
	srv, _ := counted(t, func(w http.ResponseWriter, r *http.Request) {
		writeJSONBody(w, 200, `{"pipelineRunId":1,"status":"SUCCESS","stages":[{"name":"deploy `+testToken+`","stageInfo":{"jobs":[{"id":1,"jobSign":"`+testToken+`","name":"j"}]}}]}`)
	})
	c, _ := newClient(t, testOptions(srv.URL))
	run, err := c.GetLatestPipelineRun(context.Background(), 1)
	if err != nil || run == nil {
		t.Fatalf("GetLatestPipelineRun = %v, %v", run, err)
	}
	if got := run.Stages[0].Name; got != "deploy <secret>" {
		t.Errorf("stage name = %q", got)
	}
	if got := run.Stages[0].StageInfo.Jobs[0].JobSign; got != "<secret>" {
		t.Errorf("job sign = %q", got)
	}
}
