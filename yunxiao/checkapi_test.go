package yunxiao

import (
	"context"
	"net/http"
	"strings"
	"testing"
	"time"
)

// TestCheckAPI: the yunxiao_up each answer to the probe gives, whether it
// was absent before or held the other value, and CheckAPI's error (nil
// exactly when up).
func TestCheckAPI(t *testing.T) {
	answer := func(status int, header http.Header, body string) http.HandlerFunc {
		return func(w http.ResponseWriter, r *http.Request) {
			for k, v := range header {
				w.Header()[k] = v
			}
			w.WriteHeader(status)
			_, _ = w.Write([]byte(body))
		}
	}
	jsonType := http.Header{"Content-Type": {"application/json"}}
	tests := []struct {
		name    string
		handler http.HandlerFunc // nil: the server is gone (connection refused)
		stalled bool             // the server never answers
		up      float64
		reason  Reason // of the error, when up is 0
	}{
		{name: "200", handler: answer(200, jsonType, `[{"pipelineId":1,"pipelineName":"a"}]`), up: 1},
		{name: "200 empty list", handler: answer(200, jsonType, `[]`), up: 1},
		{name: "200 error object", handler: answer(200, jsonType, `{"errorCode":"SystemBusy","errorMessage":"busy"}`), up: 1},
		{name: "404", handler: answer(404, jsonType, `{"errorCode":"NotFound"}`), up: 1},
		{name: "429", handler: answer(429, http.Header{"Retry-After": {"60"}}, `{"errorCode":"TooManyRequests"}`), up: 1},
		{name: "400", handler: answer(400, jsonType, `{"errorCode":"UnsupportedCurrentTokenType"}`), up: 1},
		{name: "401", handler: answer(401, jsonType, `{"errorCode":"ExpiredTokenError","errorMessage":"expired"}`), up: 0, reason: ReasonUnauthorized},
		{name: "403 token code", handler: answer(403, jsonType, `{"errorCode":"Forbidden.InvalidUser.UserNotInCurrentOrganization"}`), up: 0, reason: ReasonForbidden},
		{name: "403 plain", handler: answer(403, jsonType, `{"errorCode":"Forbidden","errorMessage":"no permission"}`), up: 1},
		{name: "500", handler: answer(500, jsonType, `{"errorCode":"InternalServerError"}`), up: 0, reason: ReasonServerError},
		{name: "502 HTML", handler: answer(502, http.Header{"Content-Type": {"text/html"}}, gatewayHTML), up: 0, reason: ReasonServerError},
		{name: "redirect to another host", handler: func(w http.ResponseWriter, r *http.Request) {
			http.Redirect(w, r, "http://login.example.com/", http.StatusFound)
		}, up: 0, reason: ReasonRedirect},
		{name: "timeout", stalled: true, up: 0, reason: ReasonTimeout},
		{name: "connection refused", up: 0, reason: ReasonNetwork},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var url string
			switch {
			case tt.stalled:
				srv, _ := stalled(t, nil)
				url = srv.URL
			case tt.handler != nil:
				srv, _ := counted(t, tt.handler)
				url = srv.URL
			default:
				srv, _ := counted(t, func(http.ResponseWriter, *http.Request) {})
				srv.Close()
				url = srv.URL
			}
			opts := testOptions(url)
			opts.MaxRetries = 1
			opts.Timeout = 50 * time.Millisecond
			if !tt.stalled {
				opts.Timeout = 10 * time.Second
			}
			c, m := newClient(t, opts)
			for _, before := range []string{"absent", "the other value"} {
				if before == "the other value" {
					m.setUp(tt.up == 0)
				}
				err := c.CheckAPI(context.Background())
				if upSeries(m) != 1 || upValue(m) != tt.up {
					t.Errorf("from %s: yunxiao_up = %v (%d series), want %v", before, upValue(m), upSeries(m), tt.up)
				}
				if tt.up == 1 {
					if err != nil {
						t.Errorf("from %s: CheckAPI = %v, want nil when up", before, err)
					}
					continue
				}
				if e := mustFail(t, err, tt.reason); e.Endpoint != EndpointCheckAPI {
					t.Errorf("error endpoint %q, want %q", e.Endpoint, EndpointCheckAPI)
				}
				if strings.Contains(err.Error(), testToken[:10]) {
					t.Errorf("error shows the token: %v", err)
				}
			}
		})
	}
}

// TestCheckAPICallerGivesUp: when the caller cancels, or its deadline
// passes or leaves no room to send, the probe has learnt nothing about the
// API: yunxiao_up keeps its value, absent included.
func TestCheckAPICallerGivesUp(t *testing.T) {
	t.Run("cancel", func(t *testing.T) {
		arrived := make(chan struct{}, 2)
		srv, _ := stalled(t, func(w http.ResponseWriter, r *http.Request) { arrived <- struct{}{} })
		c, m := newClient(t, testOptions(srv.URL))
		for _, before := range []float64{-1, 0, 1} { // -1: absent
			if before >= 0 {
				m.setUp(before == 1)
			}
			ctx, cancel := context.WithCancel(context.Background())
			errc := make(chan error, 1)
			go func() { errc <- c.CheckAPI(ctx) }()
			<-arrived
			cancel()
			mustFail(t, <-errc, ReasonCanceled)
			checkUnchanged(t, m, before)
		}
	})
	t.Run("deadline", func(t *testing.T) {
		srv, _ := stalled(t, nil)
		opts := testOptions(srv.URL)
		opts.MaxRetries = 3
		c, m := newClient(t, opts)
		for _, before := range []float64{-1, 0, 1} {
			if before >= 0 {
				m.setUp(before == 1)
			}
			err := c.CheckAPI(deadline(t, 50*time.Millisecond))
			mustFail(t, err, ReasonTimeout)
			checkUnchanged(t, m, before)
		}
	})
	t.Run("no room under the rate limit", func(t *testing.T) {
		srv, n := counted(t, func(w http.ResponseWriter, r *http.Request) { writeJSONBody(w, 200, `[]`) })
		opts := testOptions(srv.URL)
		opts.RateLimit, opts.Burst = 0.001, 1
		c, m := newClient(t, opts)
		if err := c.CheckAPI(context.Background()); err != nil {
			t.Fatal(err)
		}
		m.setUp(false)
		err := c.CheckAPI(deadline(t, 30*time.Second))
		mustFail(t, err, ReasonTimeout)
		if want := "CheckAPI: the configured rate_limit allows no request before the deadline"; err.Error() != want {
			t.Errorf("Error() = %q, want %q", err.Error(), want)
		}
		checkUnchanged(t, m, 0)
		if n.Load() != 1 {
			t.Errorf("server saw %d requests, want 1", n.Load())
		}
	})
}

// checkUnchanged asserts yunxiao_up is still before (-1: absent).
func checkUnchanged(t *testing.T, m *Metrics, before float64) {
	t.Helper()
	if before < 0 {
		assertNoUp(t, m)
		return
	}
	if upSeries(m) != 1 || upValue(m) != before {
		t.Errorf("yunxiao_up = %v, want it unchanged at %v", upValue(m), before)
	}
}

// TestPipelineFailureLeavesUp: after a good probe, no failure of a
// pipeline's call moves yunxiao_up, whatever the endpoint.
func TestPipelineFailureLeavesUp(t *testing.T) {
	for _, status := range []int{500, 502, 404, 429, 401} {
		t.Run(http.StatusText(status), func(t *testing.T) {
			srv, _ := counted(t, func(w http.ResponseWriter, r *http.Request) {
				if strings.HasSuffix(r.URL.Path, "/pipelines") && r.URL.Query().Get("perPage") == "1" {
					writeJSONBody(w, 200, `[]`)
					return
				}
				w.Header().Set("Retry-After", "60")
				writeJSONBody(w, status, `{"errorCode":"X"}`)
			})
			opts := testOptions(srv.URL)
			opts.MaxRetries = 2
			c, m := newClient(t, opts)
			if err := c.CheckAPI(context.Background()); err != nil || upValue(m) != 1 {
				t.Fatalf("CheckAPI = %v, up %v", err, upValue(m))
			}
			for _, endpoint := range []string{EndpointGetLatestPipelineRun, EndpointGetPipelineRun, EndpointGetPipeline, EndpointListPipelineRuns, EndpointListPipelines} {
				if err := callEndpoint(c, endpoint); err == nil {
					t.Fatalf("%s: no error", endpoint)
				}
				if upValue(m) != 1 {
					t.Errorf("after %s's %d: yunxiao_up = %v, want 1", endpoint, status, upValue(m))
				}
			}
		})
	}
}
