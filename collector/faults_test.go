package collector

import (
	"fmt"
	"net"
	"net/http"
	"net/http/httptest"
	"regexp"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/go-kit/log"
	"github.com/go-kit/log/level"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/yunxiao-exporter/yunxiao_exporter/yunxiao"
)

// faultyPipeline is the pipeline every fault case breaks; healthyPipeline
// must not notice.
const (
	healthyPipeline = 1
	faultyPipeline  = 2
)

// routeTransport sends the faulty pipeline's requests to another address
// (a closed port, an unresolvable host, a TLS server, a black hole), and
// everything else to the fake API.
type routeTransport struct {
	base      http.RoundTripper
	faultHost string // host:port, or "" to leave the request alone
	scheme    string
}

// nonzeroErrors matches an error counter above 0 (they are born at 0).
var nonzeroErrors = regexp.MustCompile(`reason="[a-z_]+"} [1-9]`)

func (rt *routeTransport) RoundTrip(r *http.Request) (*http.Response, error) {
	if rt.faultHost != "" && strings.Contains(r.URL.Path, fmt.Sprintf("/pipelines/%d", faultyPipeline)) {
		r = r.Clone(r.Context())
		r.URL.Host, r.URL.Scheme, r.Host = rt.faultHost, rt.scheme, rt.faultHost
	}
	return rt.base.RoundTrip(r)
}

// blackHole accepts connections and never answers.
func blackHole(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	var conns []net.Conn
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			conns = append(conns, c) // held open, never read or written
		}
	}()
	t.Cleanup(func() { ln.Close() })
	return ln.Addr().String()
}

func closedPort(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close()
	return addr
}

// trickle answers 200 and then sends one byte at a time, slower than any
// deadline, until the client gives up.
func trickle(w http.ResponseWriter, r *http.Request) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(http.StatusOK)
	flusher := w.(http.Flusher)
	tick := time.NewTicker(50 * time.Millisecond)
	defer tick.Stop()
	_, _ = w.Write([]byte(`{"pipelineRunId": 1, "status": "`))
	for {
		select {
		case <-r.Context().Done():
			return
		case <-tick.C:
			if _, err := w.Write([]byte("R")); err != nil {
				return
			}
			flusher.Flush()
		}
	}
}

// hang answers nothing until the client gives up.
func hang(w http.ResponseWriter, r *http.Request) { <-r.Context().Done() }

func headersAnd(status int, headers map[string]string, body string) http.HandlerFunc {
	return func(w http.ResponseWriter, _ *http.Request) {
		for k, v := range headers {
			w.Header().Set(k, v)
		}
		w.WriteHeader(status)
		_, _ = w.Write([]byte(body))
	}
}

// burst answers status for the first n requests, then the success fixture.
func burst(n int32, status int, ok []byte) http.HandlerFunc {
	var seen atomic.Int32
	return func(w http.ResponseWriter, _ *http.Request) {
		if seen.Add(1) <= n {
			w.WriteHeader(status)
			return
		}
		w.Header().Set("Content-Type", "application/json")
		_, _ = w.Write(ok)
	}
}

type faultCase struct {
	name string
	// handler takes over the faulty pipeline's requests at the fake API;
	// route sends them elsewhere instead (scheme, host).
	handler func(t *testing.T) http.HandlerFunc
	route   func(t *testing.T) (scheme, host string)
	// reason is the expected fetch_errors_total reason; "" means the fetch
	// must succeed (the fault is tolerated or retried away).
	reason yunxiao.Reason
	// wantRun is a series the faulty pipeline must export when reason is "".
	wantRun string
}

func TestFaults(t *testing.T) {
	okRun := []byte(`{"pipelineRunId": 77, "status": "SUCCESS", "triggerMode": 1, "createTime": 1795690800000, "updateTime": 1795691100000}`)
	jsonHdr := map[string]string{"Content-Type": "application/json"}
	htmlHdr := map[string]string{"Content-Type": "text/html"}
	fixed := func(status int, hdr map[string]string, body string) func(*testing.T) http.HandlerFunc {
		return func(*testing.T) http.HandlerFunc { return headersAnd(status, hdr, body) }
	}
	errBody := func(code string) string {
		return `{"errorCode":"` + code + `","errorMessage":"refused for ` + testToken + `","requestId":"r-1"}`
	}
	cases := []faultCase{
		{name: "connection refused", route: func(t *testing.T) (string, string) { return "http", closedPort(t) }, reason: yunxiao.ReasonNetwork},
		{name: "DNS failure", route: func(*testing.T) (string, string) { return "http", "flow-api.invalid:80" }, reason: yunxiao.ReasonNetwork},
		{name: "TLS failure (untrusted certificate)", route: func(t *testing.T) (string, string) {
			srv := httptest.NewTLSServer(http.NotFoundHandler())
			t.Cleanup(srv.Close)
			return "https", strings.TrimPrefix(srv.URL, "https://")
		}, reason: yunxiao.ReasonNetwork},
		{name: "accepts and never answers", route: func(t *testing.T) (string, string) { return "http", blackHole(t) }, reason: yunxiao.ReasonTimeout},
		{name: "request timeout", handler: func(*testing.T) http.HandlerFunc { return hang }, reason: yunxiao.ReasonTimeout},
		{name: "body trickles past the deadline", handler: func(*testing.T) http.HandlerFunc { return trickle }, reason: yunxiao.ReasonTimeout},
		{name: "huge body", handler: fixed(200, jsonHdr, `{"pipelineRunId": 1, "pad": "`+strings.Repeat("x", yunxiao.DefaultMaxBodyBytes)+`"}`), reason: yunxiao.ReasonTooLarge},
		{name: "truncated JSON", handler: fixed(200, jsonHdr, `{"pipelineRunId": 1, "status": "SUCC`), reason: yunxiao.ReasonBadResponse},
		{name: "HTML page with 200", handler: fixed(200, htmlHdr, "<html><title>Login</title></html>"), reason: yunxiao.ReasonBadResponse},
		{name: "HTML page with 502", handler: fixed(502, htmlHdr, "<html><title>502 Bad Gateway</title></html>"), reason: yunxiao.ReasonServerError},
		{name: "status as a number", handler: fixed(200, jsonHdr, `{"pipelineRunId": 1, "status": 5}`), reason: yunxiao.ReasonBadResponse},
		{name: "stages as an object", handler: fixed(200, jsonHdr, `{"pipelineRunId": 1, "status": "RUNNING", "stages": {"a": 1}}`), reason: yunxiao.ReasonBadResponse},
		{name: "JSON array", handler: fixed(200, jsonHdr, `[]`), reason: yunxiao.ReasonBadResponse},
		{name: "strings for numbers and nulls (tolerated)", handler: fixed(200, jsonHdr,
			`{"pipelineRunId": "77", "status": "SUCCESS", "triggerMode": null, "createTime": "1795690800000", "updateTime": null, "stages": null}`),
			wantRun: `yunxiao_pipeline_run_id{pipeline_id="2",pipeline_name="faulty"} 77`},
		{name: "stage without stageInfo (tolerated)", handler: fixed(200, jsonHdr,
			`{"pipelineRunId": 77, "status": "RUNNING", "createTime": 1795690800000, "stages": [{"index": "Group0-Stage0", "name": "Build"}]}`),
			wantRun: `yunxiao_pipeline_run_status{pipeline_id="2",pipeline_name="faulty",status="RUNNING"} 1`},
		{name: "401 Unauthorized", handler: fixed(401, jsonHdr, errBody("Unauthorized")), reason: yunxiao.ReasonUnauthorized},
		{name: "401 ExpiredTokenError", handler: fixed(401, jsonHdr, errBody("ExpiredTokenError")), reason: yunxiao.ReasonUnauthorized},
		{name: "401 InvalidTokenError", handler: fixed(401, jsonHdr, errBody("InvalidTokenError")), reason: yunxiao.ReasonUnauthorized},
		{name: "403 Forbidden", handler: fixed(403, jsonHdr, errBody("Forbidden")), reason: yunxiao.ReasonForbidden},
		{name: "403 not in organization", handler: fixed(403, jsonHdr, errBody("Forbidden.InvalidUser.UserNotInCurrentOrganization")), reason: yunxiao.ReasonForbidden},
		{name: "403 invalid organization member", handler: fixed(403, jsonHdr, errBody("Forbidden.InvalidOrganizationMember")), reason: yunxiao.ReasonForbidden},
		{name: "404 everywhere (no such pipeline)", handler: fixed(404, jsonHdr, errBody("NotFound")), reason: yunxiao.ReasonNotFound},
		{name: "429 with Retry-After", handler: fixed(429, map[string]string{"Retry-After": "3600"}, errBody("TooManyRequests")), reason: yunxiao.ReasonRateLimited},
		{name: "429 without Retry-After", handler: fixed(429, jsonHdr, errBody("TooManyRequests")), reason: yunxiao.ReasonRateLimited},
		{name: "500 persistent", handler: fixed(500, jsonHdr, errBody("InternalServerError")), reason: yunxiao.ReasonServerError},
		{name: "503 burst retried away", handler: func(*testing.T) http.HandlerFunc { return burst(2, 503, okRun) },
			wantRun: `yunxiao_pipeline_run_id{pipeline_id="2",pipeline_name="faulty"} 77`},
		{name: "redirect to another host", handler: func(t *testing.T) http.HandlerFunc {
			var leaked atomic.Bool
			other := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				if r.Header.Get(yunxiao.TokenHeader) != "" {
					leaked.Store(true)
				}
				w.Header().Set("Content-Type", "application/json")
				_, _ = w.Write(okRun)
			}))
			t.Cleanup(func() {
				other.Close()
				if leaked.Load() {
					t.Error("the token was sent to the redirect's host")
				}
			})
			return func(w http.ResponseWriter, r *http.Request) {
				http.Redirect(w, r, other.URL+r.URL.Path, http.StatusFound)
			}
		}, reason: yunxiao.ReasonRedirect},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) { runFaultCase(t, tc) })
	}
}

const faultScrapes = 3

func runFaultCase(t *testing.T, tc faultCase) {
	e := newTestEnv(t, "  - id: 1\n    name: healthy\n  - id: 2\n    name: faulty\n")
	e.pinFixture(healthyPipeline, "success.json")
	transport := &routeTransport{base: http.DefaultTransport.(*http.Transport).Clone()}
	if tc.route != nil {
		transport.scheme, transport.faultHost = tc.route(t)
	}
	if tc.handler != nil {
		e.sim.Fault(faultyPipeline, tc.handler(t))
	}
	// A short request timeout, so that timeouts happen within the scrape.
	cfg := e.config("  - id: 1\n    name: healthy\n  - id: 2\n    name: faulty\n", "org-1")
	opts := cfg.ClientOptions()
	opts.Timeout, opts.RetryBackoff, opts.Transport = 300*time.Millisecond, time.Millisecond, transport
	client, err := yunxiao.New(opts, e.metrics)
	if err != nil {
		t.Fatal(err)
	}
	if err := e.coll.SetAPI(client, cfg); err != nil {
		t.Fatal(err)
	}
	warnings := &syncBuffer{}
	e.coll.logger = level.NewFilter(log.NewLogfmtLogger(warnings), level.AllowWarn())

	reg := prometheus.NewRegistry()
	reg.MustRegister(e.metrics)
	handler := e.coll.Handler(HandlerOpts{Gatherer: reg})
	var body string
	for i := 0; i < faultScrapes; i++ {
		req := httptest.NewRequest(http.MethodGet, "/metrics", nil)
		req.Header.Set(ScrapeTimeoutHeader, "5")
		rec := httptest.NewRecorder()
		handler.ServeHTTP(rec, req) // returns: a hung upstream cannot hold the scrape
		if rec.Code != http.StatusOK {
			t.Fatalf("scrape %d: HTTP %d", i, rec.Code)
		}
		body = rec.Body.String()
		e.clock.Add(30 * time.Second) // the next scrape fetches again
	}

	// The healthy pipeline is unaffected.
	for _, want := range []string{
		`yunxiao_pipeline_up{pipeline_id="1",pipeline_name="healthy"} 1`,
		`yunxiao_pipeline_run_status{pipeline_id="1",pipeline_name="healthy",status="SUCCESS"} 1`,
	} {
		if !strings.Contains(body, want) {
			t.Errorf("the healthy pipeline lost %s", want)
		}
	}
	if nonzeroErrors.MatchString(grepLines(body, `pipeline_id="1",pipeline_name="healthy",reason=`)) {
		t.Error("the healthy pipeline counted errors")
	}
	if strings.Contains(body, testToken) || strings.Contains(warnings.String(), testToken) {
		t.Error("the token reached the metrics or the log")
	}

	if tc.reason == "" {
		for _, want := range []string{`yunxiao_pipeline_up{pipeline_id="2",pipeline_name="faulty"} 1`, tc.wantRun} {
			if !strings.Contains(body, want) {
				t.Errorf("a tolerated fault must still export the run: missing %s\n%s", want, grepLines(body, `pipeline_id="2"`))
			}
		}
		if nonzeroErrors.MatchString(grepLines(body, `pipeline_id="2",pipeline_name="faulty",reason=`)) {
			t.Errorf("a tolerated fault counted an error:\n%s", grepLines(body, `reason=`))
		}
		return
	}
	// The faulty pipeline: down, the cause counted once per scrape and
	// logged once, nothing made up.
	for _, want := range []string{
		`yunxiao_pipeline_up{pipeline_id="2",pipeline_name="faulty"} 0`,
		fmt.Sprintf(`yunxiao_pipeline_fetch_errors_total{pipeline_id="2",pipeline_name="faulty",reason=%q} %d`, tc.reason, faultScrapes),
	} {
		if !strings.Contains(body, want) {
			t.Errorf("missing %s in\n%s", want, grepLines(body, `pipeline_id="2"`))
		}
	}
	for _, made := range []string{"yunxiao_pipeline_run_status{", "yunxiao_pipeline_run_id{", "yunxiao_pipeline_last_success_timestamp_seconds{"} {
		if strings.Contains(grepLines(body, `pipeline_id="2"`), made) {
			t.Errorf("the faulty pipeline exports %s… without ever having good data", made)
		}
	}
	if n := strings.Count(warnings.String(), "pipeline fetch failed"); n != 1 {
		t.Errorf("%d warnings over %d failing scrapes, want 1:\n%s", n, faultScrapes, warnings.String())
	}
}

func grepLines(s, substr string) string {
	var out []string
	for _, l := range strings.Split(s, "\n") {
		if strings.Contains(l, substr) {
			out = append(out, l)
		}
	}
	return strings.Join(out, "\n")
}
