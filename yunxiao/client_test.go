package yunxiao

import (
	"context"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
	"github.com/yunxiao-exporter/yunxiao_exporter/flowsim"
)

func TestNewRejects(t *testing.T) {
	tests := []struct {
		name    string
		mod     func(*Options)
		wantErr string // "" means New succeeds
	}{
		{name: "valid central", mod: func(*Options) {}},
		{name: "valid region without organization", mod: func(o *Options) { o.Edition, o.OrganizationID = EditionRegion, "" }},
		{name: "valid https with path prefix", mod: func(o *Options) { o.Endpoint = "https://devops.example.com/api/" }},
		{name: "negative retries become none", mod: func(o *Options) { o.MaxRetries = -3 }},
		{name: "empty endpoint", mod: func(o *Options) { o.Endpoint = "" }, wantErr: `endpoint "" is not an absolute http(s) URL`},
		{name: "no scheme", mod: func(o *Options) { o.Endpoint = "openapi-rdc.aliyuncs.com" }, wantErr: `endpoint "openapi-rdc.aliyuncs.com" is not an absolute http(s) URL`},
		{name: "other scheme", mod: func(o *Options) { o.Endpoint = "ftp://openapi-rdc.aliyuncs.com" }, wantErr: `endpoint "ftp://openapi-rdc.aliyuncs.com" is not an absolute http(s) URL`},
		{name: "no host", mod: func(o *Options) { o.Endpoint = "https://" }, wantErr: `endpoint "https://" is not an absolute http(s) URL`},
		{name: "unparsable", mod: func(o *Options) { o.Endpoint = "http://[::1" }, wantErr: `endpoint "http://[::1" is not an absolute http(s) URL`},
		{name: "query", mod: func(o *Options) { o.Endpoint = "https://openapi-rdc.aliyuncs.com/?a=b" }, wantErr: `endpoint "https://openapi-rdc.aliyuncs.com/?a=b" must not have a query or fragment`},
		{name: "fragment", mod: func(o *Options) { o.Endpoint = "https://openapi-rdc.aliyuncs.com#x" }, wantErr: `endpoint "https://openapi-rdc.aliyuncs.com#x" must not have a query or fragment`},
		{name: "no edition", mod: func(o *Options) { o.Edition = "" }, wantErr: `unknown edition ""`},
		{name: "bad edition", mod: func(o *Options) { o.Edition = "Central" }, wantErr: `unknown edition "Central"`},
		{name: "central without organization", mod: func(o *Options) { o.OrganizationID = "" }, wantErr: "the central edition needs an organization id"},
		{name: "zero timeout", mod: func(o *Options) { o.Timeout = 0 }, wantErr: "timeout must be positive"},
		{name: "negative timeout", mod: func(o *Options) { o.Timeout = -time.Second }, wantErr: "timeout must be positive"},
		{name: "zero concurrency", mod: func(o *Options) { o.MaxConcurrency = 0 }, wantErr: "max concurrency must be positive"},
		{name: "negative concurrency", mod: func(o *Options) { o.MaxConcurrency = -1 }, wantErr: "max concurrency must be positive"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			opts := testOptions("https://openapi-rdc.aliyuncs.com")
			tt.mod(&opts)
			c, err := New(opts, nil)
			if tt.wantErr == "" {
				if err != nil || c == nil {
					t.Fatalf("New = %v, %v; want a client", c, err)
				}
				if c.metrics == nil {
					t.Error("New(…, nil) left the client without metrics")
				}
				return
			}
			if err == nil || err.Error() != tt.wantErr {
				t.Fatalf("New error = %v, want %q", err, tt.wantErr)
			}
			if c != nil {
				t.Error("New returned a client with its error")
			}
		})
	}
}

func TestNewDefaults(t *testing.T) {
	opts := testOptions("https://openapi-rdc.aliyuncs.com")
	opts.MaxBodyBytes, opts.RetryBackoff, opts.MaxRetries = 0, 0, -1
	c, _ := newClient(t, opts)
	if c.opts.MaxBodyBytes != DefaultMaxBodyBytes || c.opts.RetryBackoff != DefaultRetryBackoff || c.opts.MaxRetries != 0 {
		t.Errorf("defaults: body %d backoff %v retries %d", c.opts.MaxBodyBytes, c.opts.RetryBackoff, c.opts.MaxRetries)
	}
	if c.limiter != nil {
		t.Error("RateLimit 0 must mean no limiter")
	}
	opts.RateLimit, opts.Burst = 2, 0
	c, _ = newClient(t, opts)
	if c.limiter == nil || c.limiter.Burst() != 1 {
		t.Errorf("RateLimit 2 with Burst 0: limiter %v", c.limiter)
	}
}

// TestRequestPaths checks the exact path each edition sends, whatever the
// endpoint's trailing slash or path prefix, and the headers of every request.
func TestRequestPaths(t *testing.T) {
	type call int
	const (
		latest call = iota
		pipeline
		run   // run 1
		check // CheckAPI, with its query
	)
	tests := []struct {
		name    string
		edition Edition
		org     string
		suffix  string // appended to the server URL to form the endpoint
		call    call
		id      int64
		want    string // escaped path the server must see
	}{
		{"central latest run", EditionCentral, testOrg, "", latest, 123,
			"/oapi/v1/flow/organizations/" + testOrg + "/pipelines/123/runs/latestPipelineRun"},
		{"central pipeline", EditionCentral, testOrg, "", pipeline, 123,
			"/oapi/v1/flow/organizations/" + testOrg + "/pipelines/123"},
		{"region latest run", EditionRegion, "", "", latest, 4567890123,
			"/oapi/v1/flow/pipelines/4567890123/runs/latestPipelineRun"},
		{"region pipeline", EditionRegion, "", "", pipeline, 7, "/oapi/v1/flow/pipelines/7"},
		{"region ignores an organization", EditionRegion, testOrg, "", latest, 7, "/oapi/v1/flow/pipelines/7/runs/latestPipelineRun"},
		{"trailing slash", EditionCentral, testOrg, "/", latest, 1,
			"/oapi/v1/flow/organizations/" + testOrg + "/pipelines/1/runs/latestPipelineRun"},
		{"trailing slashes", EditionRegion, "", "//", pipeline, 1, "/oapi/v1/flow/pipelines/1"},
		{"path prefix", EditionCentral, testOrg, "/yunxiao", latest, 1,
			"/yunxiao/oapi/v1/flow/organizations/" + testOrg + "/pipelines/1/runs/latestPipelineRun"},
		{"path prefix with trailing slash", EditionRegion, "", "/a/b/", latest, 1, "/a/b/oapi/v1/flow/pipelines/1/runs/latestPipelineRun"},
		{"organization is escaped", EditionCentral, "my org/2", "", pipeline, 1, "/oapi/v1/flow/organizations/my%20org%2F2/pipelines/1"},
		{"central run", EditionCentral, testOrg, "", run, 123, "/oapi/v1/flow/organizations/" + testOrg + "/pipelines/123/runs/1"},
		{"region run", EditionRegion, "", "", run, 4567890123, "/oapi/v1/flow/pipelines/4567890123/runs/1"},
		{"central check", EditionCentral, testOrg, "", check, 0, "/oapi/v1/flow/organizations/" + testOrg + "/pipelines"},
		{"region check", EditionRegion, "", "", check, 0, "/oapi/v1/flow/pipelines"},
		{"path prefix check", EditionRegion, "", "/a/b/", check, 0, "/a/b/oapi/v1/flow/pipelines"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var (
				mu  sync.Mutex
				got []*http.Request
			)
			srv, _ := counted(t, func(w http.ResponseWriter, r *http.Request) {
				mu.Lock()
				got = append(got, r)
				mu.Unlock()
				writeJSONBody(w, http.StatusOK, `{"pipelineRunId":1,"name":"p"}`)
			})
			opts := testOptions(srv.URL + tt.suffix)
			opts.Edition, opts.OrganizationID = tt.edition, tt.org
			c, _ := newClient(t, opts)
			var err error
			wantQuery := ""
			switch tt.call {
			case latest:
				_, err = c.GetLatestPipelineRun(context.Background(), tt.id)
			case pipeline:
				_, err = c.GetPipeline(context.Background(), tt.id)
			case run:
				_, err = c.GetPipelineRun(context.Background(), tt.id, 1)
			case check:
				err = c.CheckAPI(context.Background())
				wantQuery = "page=1&perPage=1"
			}
			if err != nil {
				t.Fatalf("call: %v", err)
			}
			if len(got) != 1 {
				t.Fatalf("server saw %d requests, want 1", len(got))
			}
			r := got[0]
			if p := r.URL.EscapedPath(); p != tt.want {
				t.Errorf("path = %s, want %s", p, tt.want)
			}
			if r.URL.RawQuery != wantQuery {
				t.Errorf("query = %q, want %q", r.URL.RawQuery, wantQuery)
			}
			if r.Method != http.MethodGet {
				t.Errorf("method = %s", r.Method)
			}
			if v := r.Header.Get(TokenHeader); v != testToken {
				t.Errorf("%s = %q", TokenHeader, v)
			}
			if v := r.Header.Get("Accept"); v != "application/json" {
				t.Errorf("Accept = %q", v)
			}
			if v := r.Header.Get("User-Agent"); !strings.HasPrefix(v, "yunxiao_exporter/") {
				t.Errorf("User-Agent = %q", v)
			}
			if r.ContentLength != 0 {
				t.Errorf("request has a body of %d bytes", r.ContentLength)
			}
		})
	}
}

// TestAgainstSimulator runs both editions against flowsim, which routes
// and authorizes like the real API.
func TestAgainstSimulator(t *testing.T) {
	for _, edition := range []Edition{EditionCentral, EditionRegion} {
		t.Run(string(edition), func(t *testing.T) {
			sim := flowsim.New(flowsim.Options{Token: testToken, OrganizationID: testOrg, Edition: string(edition)}, flowsim.DemoPipelines()...)
			srv := httptest.NewServer(sim)
			t.Cleanup(srv.Close)
			opts := testOptions(srv.URL)
			opts.Edition = edition
			if edition == EditionRegion {
				opts.OrganizationID = ""
			}
			c, m := newClient(t, opts)
			ctx := context.Background()

			if upSeries(m) != 0 {
				t.Error("yunxiao_up is exposed before the first CheckAPI")
			}
			if err := c.CheckAPI(ctx); err != nil || upValue(m) != 1 {
				t.Fatalf("CheckAPI = %v, up %v; want nil, 1", err, upValue(m))
			}

			run, err := c.GetLatestPipelineRun(ctx, 1001)
			if err != nil || run == nil {
				t.Fatalf("GetLatestPipelineRun(1001) = %v, %v", run, err)
			}
			if run.PipelineID != 1001 || run.PipelineRunID < 1000 || run.Status == "" || !run.CreateTime.IsSet() || len(run.Stages) != 3 {
				t.Errorf("run = %+v", run)
			}
			if mode, _ := TriggerModeName(run.TriggerMode); mode != "push" {
				t.Errorf("trigger mode = %q", mode)
			}
			p, err := c.GetPipeline(ctx, 1007)
			if err != nil || p.Name != "移动端构建" || !p.CreateTime.IsSet() {
				t.Fatalf("GetPipeline(1007) = %+v, %v", p, err)
			}
			// 1006 has never run: the simulator answers 404.
			_, err = c.GetLatestPipelineRun(ctx, 1006)
			mustFail(t, err, ReasonNotFound)
			_, err = c.GetPipeline(ctx, 999)
			mustFail(t, err, ReasonNotFound)
			if got := sim.Requests(flowsim.EndpointLatestRun); got != 2 {
				t.Errorf("simulator saw %d latest-run requests, want 2", got)
			}

			if list, check := sim.Requests(flowsim.EndpointList), sim.Requests(flowsim.EndpointCheck); list != 1 || check != 1 {
				t.Errorf("simulator saw %d ListPipelines requests, %d of them probes; want CheckAPI's 1", list, check)
			}

			opts.Token = "pt-wrong"
			bad, m := newClient(t, opts)
			_, err = bad.GetLatestPipelineRun(ctx, 1001)
			e := mustFail(t, err, ReasonUnauthorized)
			if e.Code != "InvalidTokenError" || !IsTokenRefused(err) {
				t.Errorf("wrong token: %v, refused %v", err, IsTokenRefused(err))
			}
			assertNoUp(t, m)
			err = bad.CheckAPI(ctx)
			if e := mustFail(t, err, ReasonUnauthorized); e.Endpoint != EndpointCheckAPI || upValue(m) != 0 {
				t.Errorf("CheckAPI with a wrong token: %v, up %v", err, upValue(m))
			}
		})
	}
}

// TestNeverRun covers every way the API may say a pipeline has no run;
// GetPipelineRun, which asks for a given run, takes each as a bad answer.
func TestNeverRun(t *testing.T) {
	tests := []struct {
		name   string
		status int
		body   string
	}{
		{"empty", http.StatusOK, ""},
		{"null", http.StatusOK, "null"},
		{"empty object", http.StatusOK, "{}"},
		{"empty object with spaces", http.StatusOK, "{ }"},
		{"empty object with line breaks", http.StatusOK, "\n{\r\n\t}\n"},
		{"whitespace", http.StatusOK, " \n\t\r\n"},
		{"no content", http.StatusNoContent, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			srv, n := counted(t, func(w http.ResponseWriter, r *http.Request) { writeJSONBody(w, tt.status, tt.body) })
			c, m := newClient(t, testOptions(srv.URL))
			run, err := c.GetLatestPipelineRun(context.Background(), 5)
			if run != nil || err != nil {
				t.Fatalf("GetLatestPipelineRun = %+v, %v; want nil, nil", run, err)
			}
			if n.Load() != 1 {
				t.Errorf("requests %d, want 1", n.Load())
			}
			assertNoUp(t, m)

			run, err = c.GetPipelineRun(context.Background(), 5, 77)
			mustFail(t, err, ReasonBadResponse)
			if want := "GetPipelineRun: HTTP 200: run: no run in the answer, though run 77 was asked for"; run != nil || err.Error() != want {
				t.Errorf("GetPipelineRun = %+v, %q; want nil, %q", run, err, want)
			}
		})
	}
}

// callEndpoint calls endpoint about pipeline 5 (run 9 for GetPipelineRun)
// and returns its error.
func callEndpoint(c *Client, endpoint string) error {
	ctx := context.Background()
	var err error
	switch endpoint {
	case EndpointGetLatestPipelineRun:
		_, err = c.GetLatestPipelineRun(ctx, 5)
	case EndpointGetPipelineRun:
		_, err = c.GetPipelineRun(ctx, 5, 9)
	case EndpointGetPipeline:
		_, err = c.GetPipeline(ctx, 5)
	case EndpointListPipelines:
		_, err = c.ListPipelines(ctx)
	case EndpointListPipelineRuns:
		_, err = c.ListPipelineRuns(ctx, 5, 0)
	case EndpointCheckAPI:
		err = c.CheckAPI(ctx)
	default:
		panic("no such endpoint " + endpoint)
	}
	return err
}

func TestBadResponse(t *testing.T) {
	const (
		latest   = EndpointGetLatestPipelineRun
		run      = EndpointGetPipelineRun
		pipeline = EndpointGetPipeline
		list     = EndpointListPipelines
		runs     = EndpointListPipelineRuns
	)
	tests := []struct {
		name     string
		endpoint string
		body     string
		want     string // exact Error()
	}{
		{"array", latest, `[{"pipelineRunId":1}]`, "GetLatestPipelineRun: HTTP 200: run: expected a JSON object, got a JSON array"},
		{"HTML", latest, "<!DOCTYPE html><html><title>Sign in</title></html>", "GetLatestPipelineRun: HTTP 200: run: expected a JSON object, got HTML or XML"},
		{"text", latest, "OK", `GetLatestPipelineRun: HTTP 200: run: expected a JSON object, got "OK"`},
		{"truncated", latest, `{"pipelineRunId":1,`, "GetLatestPipelineRun: HTTP 200: run: unexpected end of JSON input"},
		{"wrong type", latest, `{"pipelineRunId":1,"stages":"none"}`, "GetLatestPipelineRun: HTTP 200: run: json: cannot unmarshal string into Go struct field PipelineRun.stages of type []yunxiao.Stage"},
		{"object without run id", latest, `{"pipelineId":5,"status":"SUCCESS","stages":[]}`, "GetLatestPipelineRun: HTTP 200: run: answer has no pipelineRunId"},
		{"run id null", latest, `{"pipelineId":5,"pipelineRunId":null,"stages":[]}`, "GetLatestPipelineRun: HTTP 200: run: answer has no pipelineRunId"},
		{"run id 0", latest, `{"pipelineId":5,"pipelineRunId":0,"status":"SUCCESS"}`, "GetLatestPipelineRun: HTTP 200: run: answer has no pipelineRunId"},
		{"run id negative", latest, `{"pipelineRunId":-1}`, "GetLatestPipelineRun: HTTP 200: run: answer has no pipelineRunId"},
		{"code and message without success false", latest, `{"code":"X","message":"m"}`, "GetLatestPipelineRun: HTTP 200: run: answer has no pipelineRunId"},
		{"another run", run, `{"pipelineRunId":8}`, "GetPipelineRun: HTTP 200: run: the answer is run 8, not run 9"},
		{"run without id", run, `{"status":"RUNNING"}`, "GetPipelineRun: HTTP 200: run: answer has no pipelineRunId"},
		{"run as a list", run, `[]`, "GetPipelineRun: HTTP 200: run: expected a JSON object, got a JSON array"},
		{"pipeline array", pipeline, `[]`, "GetPipeline: HTTP 200: pipeline: expected a JSON object, got a JSON array"},
		{"pipeline empty", pipeline, ``, "GetPipeline: HTTP 200: pipeline: expected a JSON object, got an empty body"},
		{"pipeline HTML", pipeline, `<html></html>`, "GetPipeline: HTTP 200: pipeline: expected a JSON object, got HTML or XML"},
		{"pipelines as an object", list, `{"items":[]}`, `ListPipelines: HTTP 200: list: expected a JSON array, got "{\"items\":[]}"`},
		{"runs as an object", runs, `{"code":"X","message":"m"}`, `ListPipelineRuns: HTTP 200: list: expected a JSON array, got "{\"code\":\"X\",\"mes"`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			srv, n := counted(t, func(w http.ResponseWriter, r *http.Request) { writeJSONBody(w, http.StatusOK, tt.body) })
			opts := testOptions(srv.URL)
			opts.MaxRetries = 2
			c, _ := newClient(t, opts)
			err := callEndpoint(c, tt.endpoint)
			e := mustFail(t, err, ReasonBadResponse)
			if e.StatusCode != http.StatusOK || e.Err == nil || e.Endpoint != tt.endpoint {
				t.Errorf("error fields: %+v", e)
			}
			if got := err.Error(); got != tt.want {
				t.Errorf("Error() = %q\n             want %q", got, tt.want)
			}
			if n.Load() != 1 {
				t.Errorf("server saw %d requests: a bad 2xx body must not be retried", n.Load())
			}
		})
	}
}

// TestAPIErrorObject: a 2xx whose body is an error object is api_error on
// every endpoint that decodes its answer, with the body's code, message
// and request id; it is neither a run nor "never ran", and not retried.
func TestAPIErrorObject(t *testing.T) {
	bodies := []struct {
		name      string
		header    http.Header
		body      string
		code, msg string
		requestID string
		want      string // exact Error() for GetLatestPipelineRun, when set
	}{
		{name: "errorCode and errorMessage", body: `{"errorCode":"SystemBusy","errorMessage":"the system is busy, try later"}`,
			code: "SystemBusy", msg: "the system is busy, try later",
			want: "GetLatestPipelineRun: HTTP 200 SystemBusy: the system is busy, try later"},
		{name: "with status 200 and request id", body: `{"errorCode":"SystemBusy","errorMessage":"busy","httpStatus":200,"requestId":"B-1"}`,
			code: "SystemBusy", msg: "busy", requestID: "B-1",
			want: "GetLatestPipelineRun: HTTP 200 SystemBusy: busy (request id B-1)"},
		{name: "header request id wins", header: http.Header{"X-Request-Id": {"H-2"}}, body: `{"errorCode":"SystemBusy","requestId":"B-2"}`,
			code: "SystemBusy", requestID: "H-2"},
		{name: "errorMessage only", body: `{"errorMessage":"organization is being migrated"}`, msg: "organization is being migrated"},
		{name: "success false with code", body: `{"success":false,"code":"Throttling.User","message":"slow down","data":null}`,
			code: "Throttling.User", msg: "slow down"},
		{name: "successful false", body: `{"successful":"false","code":500}`, code: "500", msg: ""},
		{name: "success false alone", body: `{"success":false}`, msg: "the answer says success: false"},
		{name: "numeric errorCode", body: `{"errorCode":40001,"errorMessage":"x"}`, code: "40001", msg: "x"},
		{name: "alongside run fields", body: `{"pipelineRunId":3,"errorCode":"Partial"}`, code: "Partial"},
	}
	endpoints := []string{EndpointGetLatestPipelineRun, EndpointGetPipelineRun, EndpointGetPipeline, EndpointListPipelines, EndpointListPipelineRuns}
	for _, b := range bodies {
		for _, endpoint := range endpoints {
			t.Run(b.name+"/"+endpoint, func(t *testing.T) {
				srv, n := counted(t, func(w http.ResponseWriter, r *http.Request) {
					for k, v := range b.header {
						w.Header()[k] = v
					}
					writeJSONBody(w, http.StatusOK, b.body)
				})
				opts := testOptions(srv.URL)
				opts.MaxRetries = 2
				c, _ := newClient(t, opts)
				err := callEndpoint(c, endpoint)
				e := mustFail(t, err, ReasonAPIError)
				if e.Endpoint != endpoint || e.StatusCode != http.StatusOK || e.Code != b.code || e.Message != b.msg || e.RequestID != b.requestID {
					t.Errorf("error = %+v, want code %q message %q request id %q", e, b.code, b.msg, b.requestID)
				}
				if b.want != "" && endpoint == EndpointGetLatestPipelineRun && err.Error() != b.want {
					t.Errorf("Error() = %q\n             want %q", err.Error(), b.want)
				}
				if n.Load() != 1 {
					t.Errorf("server saw %d requests, want 1", n.Load())
				}
			})
		}
	}
}

// TestAPIErrorObjectRedacted: the code and message of an error object
// pass the redaction gate like any other error text.
func TestAPIErrorObjectRedacted(t *testing.T) {
	srv, _ := counted(t, func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("X-Request-Id", "r "+testToken)
		writeJSONBody(w, http.StatusOK, `{"errorCode":"`+testToken+`","errorMessage":"bad token `+testToken+`"}`)
	})
	c, _ := newClient(t, testOptions(srv.URL))
	_, err := c.GetLatestPipelineRun(context.Background(), 1)
	e := mustFail(t, err, ReasonAPIError)
	for _, s := range []string{err.Error(), e.Code, e.Message, e.RequestID} {
		if strings.Contains(s, testToken[:10]) || !strings.Contains(s, "<secret>") {
			t.Errorf("%q: want the token shown as <secret>", s)
		}
	}
}

const gatewayHTML = "<html>\r\n<head><title>502 Bad Gateway</title></head>\r\n<body>\r\n<center><h1>502 Bad Gateway</h1></center>\r\n<hr><center>nginx</center>\r\n</body>\r\n</html>\r\n"

// TestStatusErrors covers every documented error answer: its reason, code,
// whether it refuses the token, how often it is tried, that a pipeline's
// call leaves yunxiao_up alone, and the yunxiao_up CheckAPI sets for it.
func TestStatusErrors(t *testing.T) {
	jsonErr := func(code, msg, requestID string) string {
		return fmt.Sprintf(`{"errorCode":%q,"errorMessage":%q,"requestId":%q}`, code, msg, requestID)
	}
	tests := []struct {
		name        string
		status      int
		header      http.Header
		body        string
		reason      Reason
		code        string
		refused     bool
		up          float64 // what CheckAPI sets on this answer
		requests    int64   // with MaxRetries 2
		want        string  // exact Error(), when set
		wantMessage string  // exact Message, when set
		requestID   string
	}{
		{name: "401 Unauthorized", status: 401, body: jsonErr("Unauthorized", "token required", "req-401"),
			reason: ReasonUnauthorized, code: "Unauthorized", refused: true, up: 0, requests: 1, requestID: "req-401",
			want: "GetLatestPipelineRun: HTTP 401 Unauthorized: token required (request id req-401)"},
		{name: "401 ExpiredTokenError", status: 401, body: jsonErr("ExpiredTokenError", "the token has expired", ""),
			reason: ReasonUnauthorized, code: "ExpiredTokenError", refused: true, up: 0, requests: 1,
			want: "GetLatestPipelineRun: HTTP 401 ExpiredTokenError: the token has expired"},
		{name: "401 InvalidTokenError, header request id wins", status: 401,
			header: http.Header{"X-Request-Id": {"hdr-9"}}, body: jsonErr("InvalidTokenError", "the token is invalid", "body-9"),
			reason: ReasonUnauthorized, code: "InvalidTokenError", refused: true, up: 0, requests: 1, requestID: "hdr-9",
			want: "GetLatestPipelineRun: HTTP 401 InvalidTokenError: the token is invalid (request id hdr-9)"},
		{name: "401 empty body", status: 401, reason: ReasonUnauthorized, refused: true, up: 0, requests: 1,
			want: "GetLatestPipelineRun: HTTP 401: empty body"},
		{name: "403 Forbidden", status: 403, body: jsonErr("Forbidden", "no permission on this pipeline", "r3"),
			reason: ReasonForbidden, code: "Forbidden", refused: false, up: 1, requests: 1, requestID: "r3",
			want: "GetLatestPipelineRun: HTTP 403 Forbidden: no permission on this pipeline (request id r3)"},
		{name: "403 not in organization", status: 403,
			body:   jsonErr("Forbidden.InvalidUser.UserNotInCurrentOrganization", "user not in current organization", "r4"),
			reason: ReasonForbidden, code: "Forbidden.InvalidUser.UserNotInCurrentOrganization", refused: true, up: 0, requests: 1, requestID: "r4"},
		{name: "403 invalid organization member", status: 403, body: jsonErr("Forbidden.InvalidOrganizationMember", "", ""),
			reason: ReasonForbidden, code: "Forbidden.InvalidOrganizationMember", refused: true, up: 0, requests: 1},
		{name: "403 HTML", status: 403, header: http.Header{"Content-Type": {"text/html"}}, body: "<html><title>403 Forbidden</title></html>",
			reason: ReasonForbidden, refused: false, up: 1, requests: 1, wantMessage: `HTML page "403 Forbidden" (41 bytes)`},
		{name: "404 JSON", status: 404, body: jsonErr("NotFound", "pipeline not found", ""),
			reason: ReasonNotFound, code: "NotFound", up: 1, requests: 1, want: "GetLatestPipelineRun: HTTP 404 NotFound: pipeline not found"},
		{name: "404 empty", status: 404, reason: ReasonNotFound, up: 1, requests: 1, want: "GetLatestPipelineRun: HTTP 404: empty body"},
		{name: "400 BadRequest", status: 400, body: jsonErr("BadRequest", "pipelineId is invalid", ""),
			reason: ReasonClientError, code: "BadRequest", up: 1, requests: 1, want: "GetLatestPipelineRun: HTTP 400 BadRequest: pipelineId is invalid"},
		{name: "400 UnsupportedCurrentTokenType", status: 400, body: jsonErr("UnsupportedCurrentTokenType", "", ""),
			reason: ReasonClientError, code: "UnsupportedCurrentTokenType", up: 1, requests: 1},
		{name: "418 text", status: 418, body: "I'm a teapot", reason: ReasonClientError, up: 1, requests: 1,
			want: `GetLatestPipelineRun: HTTP 418: non-JSON body "I'm a teapot"`},
		{name: "302 without Location", status: 302, reason: ReasonClientError, up: 1, requests: 1},
		{name: "500 InternalServerError", status: 500, body: jsonErr("InternalServerError", "internal error", "r5"),
			reason: ReasonServerError, code: "InternalServerError", up: 0, requests: 3, requestID: "r5",
			want: "GetLatestPipelineRun: HTTP 500 InternalServerError: internal error (request id r5)"},
		{name: "502 HTML", status: 502, header: http.Header{"Content-Type": {"text/html"}}, body: gatewayHTML,
			reason: ReasonServerError, up: 0, requests: 3,
			want: fmt.Sprintf(`GetLatestPipelineRun: HTTP 502: HTML page "502 Bad Gateway" (%d bytes)`, len(gatewayHTML))},
		{name: "503 empty", status: 503, reason: ReasonServerError, up: 0, requests: 3, want: "GetLatestPipelineRun: HTTP 503: empty body"},
		{name: "504 text", status: 504, body: "upstream request timeout", reason: ReasonServerError, up: 0, requests: 3,
			want: `GetLatestPipelineRun: HTTP 504: non-JSON body "upstream request timeout"`},
		{name: "501 not retried", status: 501, reason: ReasonServerError, up: 0, requests: 1},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			srv, n := counted(t, func(w http.ResponseWriter, r *http.Request) {
				for k, v := range tt.header {
					w.Header()[k] = v
				}
				if w.Header().Get("Content-Type") == "" && strings.HasPrefix(tt.body, "{") {
					w.Header().Set("Content-Type", "application/json")
				}
				w.WriteHeader(tt.status)
				_, _ = w.Write([]byte(tt.body))
			})
			opts := testOptions(srv.URL)
			opts.MaxRetries = 2
			c, m := newClient(t, opts)
			run, err := c.GetLatestPipelineRun(context.Background(), 5)
			if run != nil {
				t.Errorf("got a run with an error answer: %+v", run)
			}
			e := mustFail(t, err, tt.reason)
			if e.StatusCode != tt.status || e.Code != tt.code || e.RequestID != tt.requestID || e.Endpoint != EndpointGetLatestPipelineRun {
				t.Errorf("error = %+v, want status %d code %q request id %q", e, tt.status, tt.code, tt.requestID)
			}
			if got := IsTokenRefused(err); got != tt.refused {
				t.Errorf("IsTokenRefused = %v, want %v", got, tt.refused)
			}
			assertNoUp(t, m)
			if got := n.Load(); got != tt.requests {
				t.Errorf("server saw %d requests, want %d", got, tt.requests)
			}
			if tt.want != "" && err.Error() != tt.want {
				t.Errorf("Error() = %q\n             want %q", err.Error(), tt.want)
			}
			if tt.wantMessage != "" && e.Message != tt.wantMessage {
				t.Errorf("Message = %q, want %q", e.Message, tt.wantMessage)
			}
			if strings.ContainsAny(err.Error(), "<>\r\n") {
				t.Errorf("Error() holds raw markup or line breaks: %q", err.Error())
			}

			checkErr := c.CheckAPI(context.Background())
			if got := upValue(m); got != tt.up || upSeries(m) != 1 {
				t.Errorf("after CheckAPI: yunxiao_up = %v, want %v", got, tt.up)
			}
			if (checkErr == nil) != (tt.up == 1) {
				t.Errorf("CheckAPI = %v with yunxiao_up %v: want nil exactly when up", checkErr, tt.up)
			}
			if got := n.Load(); got != 2*tt.requests {
				t.Errorf("server saw %d requests after CheckAPI, want %d: the probe retries like any call", got, 2*tt.requests)
			}
		})
	}
}

// TestUpAndRequestMetrics checks the self-metrics through a registry, as
// Prometheus would scrape them: yunxiao_up is absent until CheckAPI has
// finished, and then only CheckAPI moves it.
func TestUpAndRequestMetrics(t *testing.T) {
	srv, _ := counted(t, func(w http.ResponseWriter, r *http.Request) {
		switch {
		case strings.HasSuffix(r.URL.Path, "/pipelines"):
			writeJSONBody(w, 200, `[{"pipelineId":1,"pipelineName":"a"}]`)
		case strings.Contains(r.URL.Path, "/pipelines/1/"):
			writeJSONBody(w, 200, `{"pipelineRunId":3}`)
		case strings.Contains(r.URL.Path, "/pipelines/2"):
			writeJSONBody(w, 404, `{"errorCode":"NotFound"}`)
		default:
			writeJSONBody(w, 500, `{"errorCode":"InternalServerError"}`)
		}
	})
	opts := testOptions(srv.URL)
	opts.MaxRetries = 2
	c, m := newClient(t, opts)
	reg := prometheus.NewPedanticRegistry()
	reg.MustRegister(m)
	const help = "# HELP yunxiao_up The Yunxiao Flow API and the token as a whole, from a probe (ListPipelines, one item) every cache_ttl: " +
		"1 when the API answered and did not refuse the token (2xx, 404, 429 or another 4xx); " +
		"0 when it refused the token (401, or 403 with a token or organization error code) or could not be reached " +
		"(network error, timeout after retries, 5xx, refused redirect). One pipeline's failure never changes it. " +
		"Absent until the first probe has finished.\n# TYPE yunxiao_up gauge\n"

	ctx := context.Background()
	if _, err := c.GetLatestPipelineRun(ctx, 1); err != nil {
		t.Fatal(err)
	}
	_, _ = c.GetLatestPipelineRun(ctx, 3)
	if n, err := testutil.GatherAndCount(reg, "yunxiao_up"); err != nil || n != 0 {
		t.Errorf("before any CheckAPI: %d yunxiao_up series (%v), want none", n, err)
	}
	if err := c.CheckAPI(ctx); err != nil {
		t.Fatal(err)
	}
	if err := testutil.GatherAndCompare(reg, strings.NewReader(help+"yunxiao_up 1\n"), "yunxiao_up"); err != nil {
		t.Errorf("after CheckAPI: %v", err)
	}
	_, _ = c.GetPipeline(ctx, 2)
	_, _ = c.GetLatestPipelineRun(ctx, 3)
	if upValue(m) != 1 {
		t.Errorf("up after a pipeline's 404 and 500 = %v, want 1", upValue(m))
	}
	srv.Close()
	_, err := c.GetLatestPipelineRun(ctx, 1)
	mustFail(t, err, ReasonNetwork)
	if upValue(m) != 1 {
		t.Errorf("up after a pipeline's network error = %v, want 1: only CheckAPI sets it", upValue(m))
	}
	err = c.CheckAPI(ctx)
	if e := mustFail(t, err, ReasonNetwork); e.Endpoint != EndpointCheckAPI {
		t.Errorf("CheckAPI error endpoint %q", e.Endpoint)
	}

	if err := testutil.GatherAndCompare(reg, strings.NewReader(`
# HELP yunxiao_api_requests_total Requests sent to the Yunxiao Flow API, by endpoint and HTTP status code ("error" when no answer arrived). Retries count as requests. 200, 429 and error exist from 0 for every endpoint.
# TYPE yunxiao_api_requests_total counter
yunxiao_api_requests_total{code="200",endpoint="CheckAPI"} 1
yunxiao_api_requests_total{code="200",endpoint="GetLatestPipelineRun"} 1
yunxiao_api_requests_total{code="200",endpoint="GetPipeline"} 0
yunxiao_api_requests_total{code="200",endpoint="GetPipelineRun"} 0
yunxiao_api_requests_total{code="200",endpoint="ListPipelineRuns"} 0
yunxiao_api_requests_total{code="200",endpoint="ListPipelines"} 0
yunxiao_api_requests_total{code="404",endpoint="GetPipeline"} 1
yunxiao_api_requests_total{code="429",endpoint="CheckAPI"} 0
yunxiao_api_requests_total{code="429",endpoint="GetLatestPipelineRun"} 0
yunxiao_api_requests_total{code="429",endpoint="GetPipeline"} 0
yunxiao_api_requests_total{code="429",endpoint="GetPipelineRun"} 0
yunxiao_api_requests_total{code="429",endpoint="ListPipelineRuns"} 0
yunxiao_api_requests_total{code="429",endpoint="ListPipelines"} 0
yunxiao_api_requests_total{code="500",endpoint="GetLatestPipelineRun"} 6
yunxiao_api_requests_total{code="error",endpoint="CheckAPI"} 3
yunxiao_api_requests_total{code="error",endpoint="GetLatestPipelineRun"} 3
yunxiao_api_requests_total{code="error",endpoint="GetPipeline"} 0
yunxiao_api_requests_total{code="error",endpoint="GetPipelineRun"} 0
yunxiao_api_requests_total{code="error",endpoint="ListPipelineRuns"} 0
yunxiao_api_requests_total{code="error",endpoint="ListPipelines"} 0
`+help+`yunxiao_up 0
`), "yunxiao_api_requests_total", "yunxiao_up"); err != nil {
		t.Error(err)
	}
	if got := testutil.CollectAndCount(m, "yunxiao_api_request_duration_seconds"); got != 3 {
		t.Errorf("duration histograms = %d, want one per endpoint (3)", got)
	}
}
