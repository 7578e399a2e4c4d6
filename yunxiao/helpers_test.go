package yunxiao

import (
	"context"
	"net/http"
	"net/http/httptest"
	"sync/atomic"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus/testutil"
)

// testToken looks like a real personal access token and is long enough
// that any 10-byte window of it in an error text would be a leak.
const testToken = "pt-T0kEnSecr3tQz9xW_8c2f41d7-5b3e-4a6f-9e1d-7c0b2a9f6e34"

const testOrg = "60d54f3daccf2bbd6659f3ad"

// testOptions are Options for a client of url: central edition, short
// backoff, no retries, and a timeout long enough never to fire by accident.
func testOptions(url string) Options {
	return Options{
		Endpoint:       url,
		Edition:        EditionCentral,
		OrganizationID: testOrg,
		Token:          testToken,
		Timeout:        10 * time.Second,
		MaxConcurrency: 4,
		RetryBackoff:   time.Millisecond,
	}
}

// newClient builds a client from opts and fails the test on error.
func newClient(t *testing.T, opts Options) (*Client, *Metrics) {
	t.Helper()
	m := NewMetrics()
	c, err := New(opts, m)
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	return c, m
}

// counted serves h and counts the requests that reached it.
func counted(t *testing.T, h http.HandlerFunc) (*httptest.Server, *atomic.Int64) {
	t.Helper()
	var n atomic.Int64
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		n.Add(1)
		h(w, r)
	}))
	t.Cleanup(srv.Close)
	return srv, &n
}

// stalled serves requests that never get an answer: each calls before (if
// any) and then blocks until the client gives up or the test ends. The
// blocked handlers are released before the server is closed, so Close
// never waits on them.
func stalled(t *testing.T, before http.HandlerFunc) (*httptest.Server, *atomic.Int64) {
	t.Helper()
	done := make(chan struct{})
	srv, n := counted(t, func(w http.ResponseWriter, r *http.Request) {
		if before != nil {
			before(w, r)
		}
		select {
		case <-r.Context().Done():
		case <-done:
		}
	})
	t.Cleanup(func() { close(done) }) // runs before srv.Close, registered earlier
	return srv, n
}

func upValue(m *Metrics) float64 { return testutil.ToFloat64(m.up) }

// upSeries is how many yunxiao_up series m exposes: none until CheckAPI
// has finished once.
func upSeries(m *Metrics) int { return testutil.CollectAndCount(m, "yunxiao_up") }

// assertNoUp fails the test when yunxiao_up is exposed: only CheckAPI
// sets it, never a pipeline's call, whatever its answer.
func assertNoUp(t *testing.T, m *Metrics) {
	t.Helper()
	if n := upSeries(m); n != 0 {
		t.Errorf("yunxiao_up is exposed (%v) after calls other than CheckAPI", upValue(m))
	}
}

// deadline returns a context that ends after d; generous values are used
// where the test only needs to show that the call returned before it.
func deadline(t *testing.T, d time.Duration) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), d)
	t.Cleanup(cancel)
	return ctx
}

func writeJSONBody(w http.ResponseWriter, status int, body string) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	_, _ = w.Write([]byte(body))
}

// mustFail asserts err is an *Error with the given reason and returns it.
func mustFail(t *testing.T, err error, reason Reason) *Error {
	t.Helper()
	if err == nil {
		t.Fatalf("got no error, want reason %s", reason)
	}
	apiErr, ok := err.(*Error)
	if !ok {
		t.Fatalf("error %T %v is not an *Error", err, err)
	}
	if apiErr.Reason != reason {
		t.Fatalf("reason = %s, want %s (error: %v)", apiErr.Reason, reason, err)
	}
	if ReasonOf(err) != reason {
		t.Fatalf("ReasonOf = %s, want %s", ReasonOf(err), reason)
	}
	return apiErr
}
