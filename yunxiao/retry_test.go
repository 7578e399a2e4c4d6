package yunxiao

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"strings"
	"sync/atomic"
	"testing"
	"time"
)

func TestRetriesExhausted(t *testing.T) {
	for _, status := range []int{500, 502, 503, 504} {
		for _, maxRetries := range []int{0, 1, 3} {
			t.Run(fmt.Sprintf("%d/retries=%d", status, maxRetries), func(t *testing.T) {
				srv, n := counted(t, func(w http.ResponseWriter, r *http.Request) { w.WriteHeader(status) })
				opts := testOptions(srv.URL)
				opts.MaxRetries = maxRetries
				c, _ := newClient(t, opts)
				_, err := c.GetPipeline(context.Background(), 1)
				e := mustFail(t, err, ReasonServerError)
				if e.StatusCode != status {
					t.Errorf("status = %d, want %d", e.StatusCode, status)
				}
				if got, want := n.Load(), int64(maxRetries+1); got != want {
					t.Errorf("server saw %d requests, want %d", got, want)
				}
			})
		}
	}
}

func TestRetrySucceedsOnSecondTry(t *testing.T) {
	for _, status := range []int{500, 502, 503, 504} {
		t.Run(http.StatusText(status), func(t *testing.T) {
			var tries atomic.Int64
			srv, _ := counted(t, func(w http.ResponseWriter, r *http.Request) {
				if tries.Add(1) == 1 {
					w.WriteHeader(status)
					return
				}
				writeJSONBody(w, 200, `{"pipelineRunId":"8","status":"SUCCESS"}`)
			})
			opts := testOptions(srv.URL)
			opts.MaxRetries = 2
			c, _ := newClient(t, opts)
			run, err := c.GetLatestPipelineRun(context.Background(), 1)
			if err != nil || run == nil || run.PipelineRunID != 8 {
				t.Fatalf("GetLatestPipelineRun = %+v, %v", run, err)
			}
			if tries.Load() != 2 {
				t.Errorf("tries %d, want 2", tries.Load())
			}
		})
	}
}

func TestNotRetried(t *testing.T) {
	for _, status := range []int{400, 401, 403, 404, 409, 501} {
		t.Run(http.StatusText(status), func(t *testing.T) {
			srv, n := counted(t, func(w http.ResponseWriter, r *http.Request) { w.WriteHeader(status) })
			opts := testOptions(srv.URL)
			opts.MaxRetries = 5
			c, _ := newClient(t, opts)
			_, err := c.GetLatestPipelineRun(context.Background(), 1)
			if err == nil {
				t.Fatal("no error")
			}
			if n.Load() != 1 {
				t.Errorf("server saw %d requests, want 1", n.Load())
			}
		})
	}
}

// TestRetryWithinDeadline: a retry whose backoff does not fit in the
// caller's deadline is not attempted, and the call returns at once.
func TestRetryWithinDeadline(t *testing.T) {
	srv, n := counted(t, func(w http.ResponseWriter, r *http.Request) { w.WriteHeader(503) })
	opts := testOptions(srv.URL)
	opts.MaxRetries = 5
	opts.RetryBackoff = time.Hour
	c, _ := newClient(t, opts)
	ctx := deadline(t, 30*time.Second)
	_, err := c.GetLatestPipelineRun(ctx, 1)
	e := mustFail(t, err, ReasonServerError)
	if e.StatusCode != 503 {
		t.Errorf("status %d: the last answer's error must be returned", e.StatusCode)
	}
	if n.Load() != 1 {
		t.Errorf("server saw %d requests, want 1", n.Load())
	}
	if ctx.Err() != nil {
		t.Error("the call waited out the caller's deadline instead of returning at once")
	}

	// A caller whose deadline has already passed sends nothing.
	past, cancel := context.WithDeadline(context.Background(), time.Now().Add(-time.Second))
	defer cancel()
	_, err = c.GetLatestPipelineRun(past, 1)
	mustFail(t, err, ReasonTimeout)
	if n.Load() != 1 {
		t.Errorf("server saw %d requests after an expired context, want 1", n.Load())
	}
}

// TestNetworkErrorRetried: a connection closed without an answer is a
// network error, retried; a pipeline's call leaves yunxiao_up alone.
func TestNetworkErrorRetried(t *testing.T) {
	srv, n := counted(t, func(w http.ResponseWriter, r *http.Request) {
		conn, _, err := http.NewResponseController(w).Hijack()
		if err != nil {
			t.Errorf("hijack: %v", err)
			return
		}
		_ = conn.Close()
	})
	opts := testOptions(srv.URL)
	opts.MaxRetries = 2
	c, m := newClient(t, opts)
	_, err := c.GetLatestPipelineRun(context.Background(), 1)
	e := mustFail(t, err, ReasonNetwork)
	if e.StatusCode != 0 || e.Err == nil {
		t.Errorf("error = %+v", e)
	}
	if n.Load() != 3 {
		t.Errorf("server saw %d requests, want 3", n.Load())
	}
	assertNoUp(t, m)
}

func TestServerGone(t *testing.T) {
	srv, _ := counted(t, func(w http.ResponseWriter, r *http.Request) {})
	srv.Close()
	opts := testOptions(srv.URL)
	opts.MaxRetries = 2
	c, m := newClient(t, opts)
	_, err := c.GetPipeline(context.Background(), 1)
	e := mustFail(t, err, ReasonNetwork)
	var opErr *net.OpError
	if !errors.As(err, &opErr) {
		t.Errorf("the cause is not kept: %v", e.Err)
	}
	if strings.Contains(err.Error(), "/oapi/") {
		t.Errorf("Error() repeats the URL: %q", err.Error())
	}
	assertNoUp(t, m)
}

func TestRetryAfterZero(t *testing.T) {
	var tries atomic.Int64
	srv, _ := counted(t, func(w http.ResponseWriter, r *http.Request) {
		if tries.Add(1) == 1 {
			w.Header().Set("Retry-After", "0")
			writeJSONBody(w, 429, `{"errorCode":"TooManyRequests","errorMessage":"slow down"}`)
			return
		}
		writeJSONBody(w, 200, `{"pipelineRunId":2}`)
	})
	opts := testOptions(srv.URL)
	opts.MaxRetries = 1
	c, _ := newClient(t, opts)
	run, err := c.GetLatestPipelineRun(deadline(t, 30*time.Second), 1)
	if err != nil || run == nil || run.PipelineRunID != 2 {
		t.Fatalf("GetLatestPipelineRun = %+v, %v", run, err)
	}
	if tries.Load() != 2 {
		t.Errorf("tries %d, want 2", tries.Load())
	}
	if n := c.pauses.size(); n != 0 {
		t.Errorf("%d pauses after a success, want none", n)
	}
}

// TestRetryAfterBeyondDeadline: the API asks for more time than the caller
// has; the call returns rate_limited at once, and so do later calls about
// the same pipeline, without reaching the server.
func TestRetryAfterBeyondDeadline(t *testing.T) {
	srv, n := counted(t, func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Retry-After", "60")
		w.Header().Set("X-Request-Id", "rl-1")
		writeJSONBody(w, 429, `{"errorCode":"TooManyRequests","errorMessage":"slow down"}`)
	})
	opts := testOptions(srv.URL)
	opts.MaxRetries = 3
	c, m := newClient(t, opts)
	ctx := deadline(t, 30*time.Second)
	_, err := c.GetLatestPipelineRun(ctx, 1)
	e := mustFail(t, err, ReasonRateLimited)
	if want := "GetLatestPipelineRun: HTTP 429 TooManyRequests: slow down; retry after 1m0s (request id rl-1)"; err.Error() != want {
		t.Errorf("Error() = %q\n             want %q", err.Error(), want)
	}
	if e.StatusCode != 429 || n.Load() != 1 || ctx.Err() != nil {
		t.Errorf("status %d, requests %d, ctx %v", e.StatusCode, n.Load(), ctx.Err())
	}
	assertNoUp(t, m)

	_, err = c.GetLatestPipelineRun(ctx, 1)
	e = mustFail(t, err, ReasonRateLimited)
	if want := "not sent: the API asked for no requests for another 1m0s"; e.Message != want {
		t.Errorf("Message = %q, want %q", e.Message, want)
	}
	if n.Load() != 1 || ctx.Err() != nil {
		t.Errorf("requests %d (want 1), ctx %v", n.Load(), ctx.Err())
	}

	// The pause is per pipeline: another pipeline is still asked.
	_, err = c.GetLatestPipelineRun(ctx, 2)
	mustFail(t, err, ReasonRateLimited)
	if n.Load() != 2 {
		t.Errorf("requests %d, want 2: a 429 on one pipeline held back another", n.Load())
	}

	// Without a deadline, a canceled caller gets canceled, not rate_limited.
	cctx, cancel := context.WithCancel(context.Background())
	cancel()
	_, err = c.GetLatestPipelineRun(cctx, 1)
	mustFail(t, err, ReasonCanceled)
	if n.Load() != 2 {
		t.Errorf("requests %d, want 2", n.Load())
	}
}

// TestRateLimitedWithoutRetryAfter: no Retry-After means a backoff of our
// own (1 s for the first 429), which a short deadline cannot wait out.
func TestRateLimitedWithoutRetryAfter(t *testing.T) {
	srv, n := counted(t, func(w http.ResponseWriter, r *http.Request) {
		writeJSONBody(w, 429, `{"errorCode":"TooManyRequests"}`)
	})
	opts := testOptions(srv.URL)
	opts.MaxRetries = 2
	c, _ := newClient(t, opts)
	// The deadline is set before the 429 arrives and is shorter than the 1 s
	// pause, so neither call can wait the pause out, however slow the run.
	ctx := deadline(t, 900*time.Millisecond)
	_, err := c.GetLatestPipelineRun(ctx, 1)
	mustFail(t, err, ReasonRateLimited)
	if want := "GetLatestPipelineRun: HTTP 429 TooManyRequests: retry after 1s"; err.Error() != want {
		t.Errorf("Error() = %q, want %q", err.Error(), want)
	}
	_, err = c.GetLatestPipelineRun(ctx, 1)
	mustFail(t, err, ReasonRateLimited)
	if n.Load() != 1 {
		t.Errorf("server saw %d requests, want 1", n.Load())
	}
	if ctx.Err() != nil {
		t.Error("the calls waited out the deadline")
	}
}

// TestRateLimitBackoffGrows: consecutive 429s without Retry-After double
// the hold-off up to 60 s, and any other answer resets it.
func TestRateLimitBackoffGrows(t *testing.T) {
	c, _ := newClient(t, testOptions("http://127.0.0.1:1"))
	p := c.pauses
	const subject = "GetLatestPipelineRun/1"
	want := []time.Duration{1, 2, 4, 8, 16, 32, 60, 60, 60}
	for i, w := range want {
		if got := p.note(subject, ""); got != w*time.Second {
			t.Errorf("429 #%d: hold off %v, want %v", i+1, got, w*time.Second)
		}
	}
	if got := p.note(subject, "5"); got != 5*time.Second {
		t.Errorf("Retry-After 5: %v", got)
	}
	if left := p.left(subject); left < 50*time.Second {
		t.Errorf("cooldown left %v: a shorter Retry-After shortened an earlier, longer hold-off", left)
	}
	if got := p.note("GetLatestPipelineRun/2", ""); got != time.Second {
		t.Errorf("another pipeline's first 429: hold off %v, want 1s", got)
	}
	p.clear(subject)
	if got := p.note(subject, ""); got != time.Second {
		t.Errorf("first 429 after another answer: hold off %v, want 1s", got)
	}
}

func TestRetryAfterHTTPDate(t *testing.T) {
	t.Run("past", func(t *testing.T) {
		var tries atomic.Int64
		srv, _ := counted(t, func(w http.ResponseWriter, r *http.Request) {
			if tries.Add(1) == 1 {
				w.Header().Set("Retry-After", time.Now().Add(-time.Hour).UTC().Format(http.TimeFormat))
				w.WriteHeader(429)
				return
			}
			writeJSONBody(w, 200, `{"name":"p"}`)
		})
		opts := testOptions(srv.URL)
		opts.MaxRetries = 1
		c, _ := newClient(t, opts)
		p, err := c.GetPipeline(deadline(t, 30*time.Second), 1)
		if err != nil || p.Name != "p" || tries.Load() != 2 {
			t.Fatalf("GetPipeline = %+v, %v after %d tries", p, err, tries.Load())
		}
	})
	t.Run("future, capped", func(t *testing.T) {
		srv, n := counted(t, func(w http.ResponseWriter, r *http.Request) {
			w.Header().Set("Retry-After", time.Now().Add(3*time.Hour).UTC().Format(http.TimeFormat))
			w.WriteHeader(429)
		})
		opts := testOptions(srv.URL)
		opts.MaxRetries = 1
		c, _ := newClient(t, opts)
		ctx := deadline(t, 30*time.Second)
		_, err := c.GetPipeline(ctx, 1)
		mustFail(t, err, ReasonRateLimited)
		if want := "GetPipeline: HTTP 429: empty body; retry after 10m0s"; err.Error() != want {
			t.Errorf("Error() = %q, want %q", err.Error(), want)
		}
		if n.Load() != 1 || ctx.Err() != nil {
			t.Errorf("requests %d, ctx %v", n.Load(), ctx.Err())
		}
	})
}

// TestRequestTimeout: a server that never answers costs Options.Timeout per
// try; the timeout is retried and then reported.
func TestRequestTimeout(t *testing.T) {
	srv, n := stalled(t, nil)
	opts := testOptions(srv.URL)
	opts.Timeout = 50 * time.Millisecond
	opts.MaxRetries = 1
	c, m := newClient(t, opts)
	_, err := c.GetLatestPipelineRun(context.Background(), 1)
	mustFail(t, err, ReasonTimeout)
	if want := "GetLatestPipelineRun: no answer within 50ms"; err.Error() != want {
		t.Errorf("Error() = %q, want %q", err.Error(), want)
	}
	if n.Load() != 2 {
		t.Errorf("server saw %d requests, want 2", n.Load())
	}
	assertNoUp(t, m)
}

// TestCallerDeadline: the caller's own deadline is a timeout too, and is
// not retried.
func TestCallerDeadline(t *testing.T) {
	srv, n := stalled(t, nil)
	opts := testOptions(srv.URL)
	opts.MaxRetries = 3
	c, _ := newClient(t, opts)
	_, err := c.GetPipeline(deadline(t, 50*time.Millisecond), 1)
	mustFail(t, err, ReasonTimeout)
	if want := "GetPipeline: deadline reached waiting for the answer"; err.Error() != want {
		t.Errorf("Error() = %q, want %q", err.Error(), want)
	}
	if n.Load() != 1 {
		t.Errorf("requests %d, want 1", n.Load())
	}
}

func TestCallerCancel(t *testing.T) {
	arrived := make(chan struct{}, 1)
	srv, n := stalled(t, func(w http.ResponseWriter, r *http.Request) { arrived <- struct{}{} })
	opts := testOptions(srv.URL)
	opts.MaxRetries = 3
	c, _ := newClient(t, opts)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	errc := make(chan error, 1)
	go func() {
		_, err := c.GetLatestPipelineRun(ctx, 1)
		errc <- err
	}()
	<-arrived
	cancel()
	err := <-errc
	mustFail(t, err, ReasonCanceled)
	if want := "GetLatestPipelineRun: canceled waiting for the answer"; err.Error() != want {
		t.Errorf("Error() = %q, want %q", err.Error(), want)
	}
	if n.Load() != 1 {
		t.Errorf("requests %d, want 1", n.Load())
	}
}

// TestBodyStalls: headers and part of the body arrive, then nothing.
func TestBodyStalls(t *testing.T) {
	t.Run("timeout", func(t *testing.T) {
		srv, n := stalled(t, func(w http.ResponseWriter, r *http.Request) {
			w.Header().Set("Content-Length", "1000")
			w.WriteHeader(200)
			_, _ = w.Write([]byte(`{"pipelineRunId":1,"stages":[`))
			_ = http.NewResponseController(w).Flush()
		})
		headers := make(chan struct{}, 1)
		opts := testOptions(srv.URL)
		opts.Timeout = 200 * time.Millisecond
		opts.Transport = roundTripFunc(func(r *http.Request) (*http.Response, error) {
			resp, err := http.DefaultTransport.RoundTrip(r)
			if err == nil {
				headers <- struct{}{}
			}
			return resp, err
		})
		c, _ := newClient(t, opts)
		_, err := c.GetLatestPipelineRun(context.Background(), 1)
		e := mustFail(t, err, ReasonTimeout)
		if n.Load() != 1 {
			t.Errorf("server saw %d requests, want 1", n.Load())
		}
		select {
		case <-headers: // the usual case: the timeout struck in the body
			if e.StatusCode != 200 || e.Err == nil {
				t.Errorf("error %+v: want the status and the read error", e)
			}
		default: // a machine so slow that the headers took the whole timeout
			t.Logf("headers did not arrive within %v; the body stall was not reached", opts.Timeout)
		}
	})
	t.Run("cancel", func(t *testing.T) {
		srv, _ := stalled(t, func(w http.ResponseWriter, r *http.Request) {
			w.WriteHeader(200)
			_, _ = w.Write([]byte(`{"pipelineRunId":1,`))
			_ = http.NewResponseController(w).Flush()
		})
		// Cancel once the client holds the answer's headers, so that the
		// cancel lands in the body read.
		headers := make(chan struct{}, 1)
		opts := testOptions(srv.URL)
		opts.Transport = roundTripFunc(func(r *http.Request) (*http.Response, error) {
			resp, err := http.DefaultTransport.RoundTrip(r)
			if err == nil {
				headers <- struct{}{}
			}
			return resp, err
		})
		c, _ := newClient(t, opts)
		ctx, cancel := context.WithCancel(context.Background())
		defer cancel()
		errc := make(chan error, 1)
		go func() {
			_, err := c.GetLatestPipelineRun(ctx, 1)
			errc <- err
		}()
		<-headers
		cancel()
		err := <-errc
		mustFail(t, err, ReasonCanceled)
		if want := "GetLatestPipelineRun: canceled reading the answer"; err.Error() != want {
			t.Errorf("Error() = %q, want %q", err.Error(), want)
		}
	})
}

type roundTripFunc func(*http.Request) (*http.Response, error)

func (f roundTripFunc) RoundTrip(r *http.Request) (*http.Response, error) { return f(r) }

func TestBodyCap(t *testing.T) {
	body := `{"pipelineRunId":1,"status":"` + strings.Repeat("x", 100) + `"}`
	limit := int64(len(body))
	tests := []struct {
		name    string
		body    string
		chunked bool
		status  int
		reason  Reason // "" means success
	}{
		{"exactly at the cap", body, false, 200, ""},
		{"exactly at the cap, chunked", body, true, 200, ""},
		{"one byte over", body + " ", false, 200, ReasonTooLarge},
		{"one byte over, chunked", body + " ", true, 200, ReasonTooLarge},
		{"far over", body + strings.Repeat(" ", 1<<20), true, 200, ReasonTooLarge},
		{"error body over", strings.Repeat("<p>", 1000), false, 500, ReasonTooLarge},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			srv, n := counted(t, func(w http.ResponseWriter, r *http.Request) {
				w.WriteHeader(tt.status)
				if tt.chunked {
					_ = http.NewResponseController(w).Flush()
				}
				_, _ = w.Write([]byte(tt.body))
			})
			opts := testOptions(srv.URL)
			opts.MaxBodyBytes = limit
			opts.MaxRetries = 2
			c, _ := newClient(t, opts)
			run, err := c.GetLatestPipelineRun(context.Background(), 1)
			if tt.reason == "" {
				if err != nil || run == nil || len(run.Status) != 100 {
					t.Fatalf("GetLatestPipelineRun = %+v, %v", run, err)
				}
				return
			}
			e := mustFail(t, err, tt.reason)
			if e.StatusCode != tt.status || !strings.Contains(err.Error(), "answer larger than the size limit (131 bytes)") {
				t.Errorf("error = %q (status %d)", err.Error(), e.StatusCode)
			}
			if n.Load() != 1 {
				t.Errorf("server saw %d requests: an oversized answer must not be retried", n.Load())
			}
		})
	}
}
