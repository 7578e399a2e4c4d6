package webhook

import (
	"bytes"
	"context"
	"go/ast"
	"go/parser"
	"go/token"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
	"github.com/prometheus/common/expfmt"
	"golang.org/x/time/rate"
)

// readSpy records whether the handler read the body at all.
type readSpy struct {
	r    io.Reader
	read bool
}

func (s *readSpy) Read(p []byte) (int, error) {
	s.read = true
	return s.r.Read(p)
}

// padded is a Flow event for pipeline 123 of exactly n bytes.
func padded(n int) string {
	head := `{"task":{"pipelineId":123},"pad":"`
	return head + strings.Repeat(" ", n-len(head)-2) + `"}`
}

func bigGlobalParams() string {
	return `{"event":"task","action":"status","task":{"pipelineId":77,"statusCode":"SUCCESS"},` +
		`"globalParams":[{"key":"BLOB","value":"` + strings.Repeat("v", 900<<10) + `"}]}`
}

type request struct {
	method string
	query  string // raw query; "" means none
	body   string
	length int64 // Content-Length; 0 means len(body), -1 unknown (chunked)
}

func (rq request) build() (*http.Request, *readSpy) {
	method := rq.method
	if method == "" {
		method = http.MethodPost
	}
	target := "/webhook/flow"
	if rq.query != "" {
		target += "?" + rq.query
	}
	spy := &readSpy{r: strings.NewReader(rq.body)}
	r := httptest.NewRequest(method, target, spy)
	r.ContentLength = int64(len(rq.body))
	if rq.length != 0 {
		r.ContentLength = rq.length
	}
	return r, spy
}

var tokenQuery = "token=" + url.QueryEscape(testToken)

func TestHandlerAnswers(t *testing.T) {
	type counts map[string]float64
	for _, tc := range []struct {
		name     string
		opts     Options
		setup    func(*fixture)
		req      request
		code     int
		answer   string // a substring of the answer's body
		header   [2]string
		counts   counts // results expected non-zero
		refresh  int64  // the pipeline refreshed; 0 for none
		readBody bool   // whether the body may be read
	}{
		{name: "accepted", req: request{query: tokenQuery, body: flowEvent},
			code: 202, answer: "accepted", counts: counts{resultAccepted: 1}, refresh: 123, readBody: true},
		{name: "accepted, ids as strings", req: request{query: tokenQuery, body: `{"task":{"pipelineId":"456","statusCode":"UNKOWN"}}`},
			code: 202, counts: counts{resultAccepted: 1}, refresh: 456, readBody: true},
		{name: "accepted, unknown length", req: request{query: tokenQuery, body: flowEvent, length: -1},
			code: 202, counts: counts{resultAccepted: 1}, refresh: 123, readBody: true},
		{name: "accepted, token among other parameters", req: request{query: "a=1&" + tokenQuery + "&b=2", body: flowEvent},
			code: 202, counts: counts{resultAccepted: 1}, refresh: 123, readBody: true},
		{name: "accepted, 900 KiB globalParams", req: request{query: tokenQuery, body: bigGlobalParams()},
			code: 202, counts: counts{resultAccepted: 1}, refresh: 77, readBody: true},
		{name: "accepted, exactly 1 MiB", req: request{query: tokenQuery, body: padded(MaxBodyBytes)},
			code: 202, counts: counts{resultAccepted: 1}, refresh: 123, readBody: true},

		{name: "disabled", opts: Options{Token: func() string { return "" }}, req: request{query: "token=", body: flowEvent},
			code: 404, counts: counts{}},
		{name: "GET", req: request{method: http.MethodGet, query: tokenQuery},
			code: 405, answer: "method not allowed", header: [2]string{"Allow", "POST"}, counts: counts{resultBadRequest: 1}},
		{name: "PUT", req: request{method: http.MethodPut, query: tokenQuery, body: flowEvent},
			code: 405, header: [2]string{"Allow", "POST"}, counts: counts{resultBadRequest: 1}},

		{name: "no token", req: request{body: flowEvent},
			code: 401, answer: "missing token", counts: counts{resultUnauthorized: 1}},
		{name: "empty token", req: request{query: "token=", body: flowEvent},
			code: 401, answer: "missing token", counts: counts{resultUnauthorized: 1}},
		{name: "token in another parameter", req: request{query: "tok=" + testToken, body: flowEvent},
			code: 401, counts: counts{resultUnauthorized: 1}},
		{name: "wrong token", req: request{query: "token=guess", body: flowEvent},
			code: 401, answer: "wrong token", counts: counts{resultUnauthorized: 1}},
		{name: "real token plus a suffix", req: request{query: tokenQuery + "x", body: flowEvent},
			code: 401, answer: "wrong token", counts: counts{resultUnauthorized: 1}},
		{name: "real token's prefix", req: request{query: "token=" + testToken[:len(testToken)-1], body: flowEvent},
			code: 401, answer: "wrong token", counts: counts{resultUnauthorized: 1}},
		{name: "real token in another case", req: request{query: "token=" + strings.ToUpper(testToken), body: flowEvent},
			code: 401, counts: counts{resultUnauthorized: 1}},
		{name: "wrong token, rate limit exhausted", setup: exhaust, req: request{query: "token=guess", body: flowEvent},
			code: 401, counts: counts{resultUnauthorized: 1}},

		{name: "not JSON", req: request{query: tokenQuery, body: "hello"},
			code: 400, answer: "invalid JSON", counts: counts{resultBadRequest: 1}, readBody: true},
		{name: "empty body", req: request{query: tokenQuery},
			code: 400, answer: "empty body", counts: counts{resultBadRequest: 1}, readBody: true},
		{name: "missing pipelineId", req: request{query: tokenQuery, body: `{"event":"task","task":{"pipelineName":"x"}}`},
			code: 400, answer: "task.pipelineId: missing", counts: counts{resultBadRequest: 1}, readBody: true},
		{name: "negative pipelineId", req: request{query: tokenQuery, body: `{"task":{"pipelineId":-1}}`},
			code: 400, answer: "task.pipelineId: not a positive integer", counts: counts{resultBadRequest: 1}, readBody: true},
		{name: "body shorter than its Content-Length", req: request{query: tokenQuery, body: `{"task":{"pipelineId":1}`, length: 100},
			code: 400, counts: counts{resultBadRequest: 1}, readBody: true},

		{name: "too large by Content-Length", req: request{query: tokenQuery, body: padded(MaxBodyBytes + 1)},
			code: 413, answer: "body above 1 MiB", counts: counts{resultTooLarge: 1}},
		{name: "too large, unknown length", req: request{query: tokenQuery, body: padded(MaxBodyBytes + 1), length: -1},
			code: 413, answer: "body above 1 MiB", counts: counts{resultTooLarge: 1}, readBody: true},
		{name: "too large, trailing white space", req: request{query: tokenQuery, body: `{"task":{"pipelineId":1}}` + strings.Repeat(" ", MaxBodyBytes), length: -1},
			code: 413, counts: counts{resultTooLarge: 1}, readBody: true},

		{name: "rate limited", setup: exhaust, req: request{query: tokenQuery, body: flowEvent},
			code: 429, answer: "rate limit exceeded", header: [2]string{"Retry-After", "1"}, counts: counts{resultRateLimited: 1}},
		{name: "too many pipelines pending", setup: func(f *fixture) { f.rc.co.maxPending = 0 }, req: request{query: tokenQuery, body: flowEvent},
			code: 429, header: [2]string{"Retry-After", "1"}, counts: counts{resultRateLimited: 1}, readBody: true},
		{name: "closed", setup: func(f *fixture) { f.rc.Close() }, req: request{query: tokenQuery, body: flowEvent},
			code: 503, counts: counts{}, readBody: true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			f := newFixture(t, tc.opts)
			if tc.setup != nil {
				tc.setup(f)
			}
			r, spy := tc.req.build()
			w := httptest.NewRecorder()
			f.rc.ServeHTTP(w, r)
			if w.Code != tc.code {
				t.Fatalf("code = %d, want %d (answer %q)", w.Code, tc.code, w.Body)
			}
			if !strings.Contains(w.Body.String(), tc.answer) {
				t.Errorf("answer = %q, want it to contain %q", w.Body, tc.answer)
			}
			if h := tc.header; h[0] != "" && w.Header().Get(h[0]) != h[1] {
				t.Errorf("%s = %q, want %q", h[0], w.Header().Get(h[0]), h[1])
			}
			if spy.read && !tc.readBody {
				t.Error("the body was read")
			}
			for _, res := range results {
				if got := testutil.ToFloat64(f.rc.metrics.events.WithLabelValues(res)); got != tc.counts[res] {
					t.Errorf("events_total{result=%q} = %v, want %v", res, got, tc.counts[res])
				}
			}
			if tc.refresh != 0 {
				if c := recv(t, f.ref.calls); c.id != tc.refresh {
					t.Errorf("refreshed pipeline %d, want %d", c.id, tc.refresh)
				}
			}
			f.rc.Close()
			none(t, f.ref.calls, "refresh")
		})
	}
}

// exhaust spends the whole rate-limit burst.
func exhaust(f *fixture) { f.rc.limiter.AllowN(f.clk.Now(), DefaultRateBurst) }

func serve(f *fixture, rq request) *httptest.ResponseRecorder {
	r, _ := rq.build()
	w := httptest.NewRecorder()
	f.rc.ServeHTTP(w, r)
	return w
}

// The limit applies to authenticated requests only, and refills with time.
func TestHandlerRateLimit(t *testing.T) {
	f := newFixture(t, Options{RateLimit: 1, RateBurst: 2})
	for range 10 {
		if w := serve(f, request{query: "token=guess", body: flowEvent}); w.Code != 401 {
			t.Fatalf("wrong token: %d", w.Code)
		}
	}
	ok := request{query: tokenQuery, body: flowEvent}
	for i, want := range []int{202, 202, 429, 429} {
		if w := serve(f, ok); w.Code != want {
			t.Fatalf("request %d: %d, want %d", i, w.Code, want)
		}
	}
	f.clk.Advance(time.Second) // one more request's worth
	if w := serve(f, ok); w.Code != 202 {
		t.Fatalf("after a second: %d, want 202", w.Code)
	}
	if got := testutil.ToFloat64(f.rc.metrics.events.WithLabelValues(resultRateLimited)); got != 2 {
		t.Errorf("rate_limited = %v, want 2", got)
	}
}

// The answer comes before the refresh has finished (or even started
// fetching): the refresh is asynchronous.
func TestHandlerAnswersBeforeRefresh(t *testing.T) {
	f := newFixture(t, Options{})
	f.ref.gate = make(chan struct{})
	if w := serve(f, request{query: tokenQuery, body: flowEvent}); w.Code != 202 {
		t.Fatalf("code = %d", w.Code)
	}
	recv(t, f.ref.calls) // the refresh runs, blocked, after the answer
	f.ref.gate <- struct{}{}
	recv(t, f.done)
}

// The token is re-read on every request.
func TestHandlerTokenReloaded(t *testing.T) {
	f := newFixture(t, Options{})
	body := request{body: flowEvent}
	with := func(tok string) request { b := body; b.query = "token=" + tok; return b }
	if w := serve(f, with(testToken)); w.Code != 202 {
		t.Fatalf("old token: %d", w.Code)
	}
	f.token = "" // the requests are served in this goroutine, one at a time
	if w := serve(f, with(testToken)); w.Code != 404 {
		t.Fatalf("disabled: %d, want 404", w.Code)
	}
	f.token = "rotated-token"
	if w := serve(f, with(testToken)); w.Code != 401 {
		t.Fatalf("old token after rotation: %d, want 401", w.Code)
	}
	if w := serve(f, with("rotated-token")); w.Code != 202 {
		t.Fatalf("new token: %d, want 202", w.Code)
	}
}

// The token never appears in an answer, a header, a log line (at any
// level) or the metrics, whatever is sent, including wrong tokens that
// contain it and bodies that quote it.
func TestTokenNeverLeaks(t *testing.T) {
	f := newFixture(t, Options{RateLimit: rate.Inf})
	f.ref.watched = func(id int64) bool { return id != 555 }
	withToken := `{"event":"` + testToken + `","action":"` + testToken + `","task":{"pipelineId":555,"statusCode":"` + testToken +
		`","message":"` + testToken + `"},"sources":[{"branch":"` + testToken + `"}],"globalParams":[{"value":"` + testToken + `"}]}`
	var answers strings.Builder
	for _, q := range []string{"", "token=", tokenQuery, tokenQuery + "x", "token=x" + testToken, "token=" + testToken[:5], "token=" + testToken + testToken} {
		for _, body := range []string{flowEvent, withToken, "not json " + testToken, `{"task":{"pipelineId":"` + testToken + `"}}`, padded(MaxBodyBytes + 1)} {
			for _, m := range []string{http.MethodPost, http.MethodGet} {
				for _, length := range []int64{0, -1} {
					w := serve(f, request{method: m, query: q, body: body, length: length})
					answers.WriteString(w.Body.String())
					for k, v := range w.Header() {
						answers.WriteString(k + ": " + strings.Join(v, ",") + "\n")
					}
				}
			}
		}
	}
	f.rc.Close()
	metrics, err := testutil.CollectAndFormat(f.rc, expfmt.TypeTextPlain)
	if err != nil {
		t.Fatal(err)
	}
	logs := f.logs.String()
	if !strings.Contains(logs, "level=debug") || !strings.Contains(logs, "level=warn") {
		t.Fatalf("expected logs at debug and warn, got:\n%s", logs)
	}
	for where, text := range map[string]string{"answers": answers.String(), "logs": logs, "metrics": string(metrics)} {
		if strings.Contains(text, testToken[:8]) {
			t.Errorf("the token appears in the %s:\n%s", where, text)
		}
	}
}

func TestHandlerLogsEachCauseOnce(t *testing.T) {
	f := newFixture(t, Options{})
	for _, q := range []string{"token=a", "token=b", "", "token=c", ""} {
		serve(f, request{query: q, body: flowEvent})
	}
	var levels []string
	for _, line := range strings.Split(strings.TrimSpace(f.logs.String()), "\n") {
		lvl, _, _ := strings.Cut(line[strings.Index(line, "level=")+6:], " ")
		_, cause, _ := strings.Cut(line, "cause=")
		levels = append(levels, lvl+" "+cause)
	}
	want := []string{`warn "wrong token"`, `debug "wrong token"`, `warn "missing token"`, `debug "wrong token"`, `debug "missing token"`}
	if strings.Join(levels, "|") != strings.Join(want, "|") {
		t.Errorf("log levels and causes:\n%s\nwant\n%s", strings.Join(levels, "\n"), strings.Join(want, "\n"))
	}
}

func TestMetrics(t *testing.T) {
	f := newFixture(t, Options{})
	const help = `# HELP yunxiao_webhook_events_total Requests to the Flow webhook endpoint since the exporter started, by result, as the receiver answered them: accepted (right token, a Flow event with a pipeline id: answered 202 and a refresh of that pipeline scheduled), unauthorized (token missing or wrong: 401), bad_request (not POST: 405, or a body that is not a Flow event: 400), too_large (body above 1 MiB: 413), rate_limited (the receiver's own rate limit, or too many pipelines waiting for a refresh: 429). unwatched counts accepted events, already counted as accepted, whose pipeline the refresh found not watched (decided after the answer). Requests while the webhook is disabled (404) are not counted.
# TYPE yunxiao_webhook_events_total counter
`
	start := help + `yunxiao_webhook_events_total{result="accepted"} 0
yunxiao_webhook_events_total{result="bad_request"} 0
yunxiao_webhook_events_total{result="rate_limited"} 0
yunxiao_webhook_events_total{result="too_large"} 0
yunxiao_webhook_events_total{result="unauthorized"} 0
yunxiao_webhook_events_total{result="unwatched"} 0
`
	if err := testutil.CollectAndCompare(f.rc, strings.NewReader(start), "yunxiao_webhook_events_total", "yunxiao_webhook_last_accepted_timestamp_seconds"); err != nil {
		t.Errorf("at start: %v", err)
	}
	enabled := `# HELP yunxiao_webhook_enabled 1 when the config gives the Flow webhook a token (webhook.token or webhook.token_file), so /webhook/flow accepts events; 0 when it is off. Lets an alert tell a silent webhook from one that is not configured.
# TYPE yunxiao_webhook_enabled gauge
yunxiao_webhook_enabled 1
`
	if err := testutil.CollectAndCompare(f.rc, strings.NewReader(enabled), "yunxiao_webhook_enabled"); err != nil {
		t.Errorf("enabled: %v", err)
	}
	f.ref.watched = func(int64) bool { return false }
	serve(f, request{query: tokenQuery, body: flowEvent})
	recv(t, f.done)
	serve(f, request{query: "token=x", body: flowEvent})
	after := help + `yunxiao_webhook_events_total{result="accepted"} 1
yunxiao_webhook_events_total{result="bad_request"} 0
yunxiao_webhook_events_total{result="rate_limited"} 0
yunxiao_webhook_events_total{result="too_large"} 0
yunxiao_webhook_events_total{result="unauthorized"} 1
yunxiao_webhook_events_total{result="unwatched"} 1
# HELP yunxiao_webhook_last_accepted_timestamp_seconds Unix time, from the exporter's clock, when the Flow webhook endpoint last accepted an event (answered 202). Absent until the first accepted event since the exporter started.
# TYPE yunxiao_webhook_last_accepted_timestamp_seconds gauge
yunxiao_webhook_last_accepted_timestamp_seconds 1.7e+09
`
	if err := testutil.CollectAndCompare(f.rc, strings.NewReader(after), "yunxiao_webhook_events_total", "yunxiao_webhook_last_accepted_timestamp_seconds"); err != nil {
		t.Errorf("after one accepted event: %v", err)
	}
	if err := prometheus.NewPedanticRegistry().Register(f.rc); err != nil {
		t.Errorf("register: %v", err)
	}
}

// Through a real server: the 1 MiB limit holds on the wire, and a too
// large body never reaches the Refresher.
func TestHandlerOverHTTP(t *testing.T) {
	f := newFixture(t, Options{})
	srv := httptest.NewServer(f.rc)
	defer srv.Close()
	post := func(body string, chunked bool) int {
		var r io.Reader = strings.NewReader(body)
		if chunked {
			r = io.MultiReader(r) // hides the length: sent chunked
		}
		resp, err := http.Post(srv.URL+"/webhook/flow?"+tokenQuery, "application/json", r)
		if err != nil {
			t.Fatal(err)
		}
		_, _ = io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		return resp.StatusCode
	}
	for _, chunked := range []bool{false, true} {
		if code := post(padded(MaxBodyBytes+1), chunked); code != 413 {
			t.Errorf("1 MiB + 1 byte (chunked %v): %d, want 413", chunked, code)
		}
	}
	f.rc.Close()
	none(t, f.ref.calls, "refresh for a too large body")
	srv.CloseClientConnections()
}

// The token is compared by tokenMatches only, and tokenMatches compares
// SHA-256 digests with subtle.ConstantTimeCompare. The source is checked,
// since timing cannot be tested reliably.
func TestTokenComparisonIsConstantTime(t *testing.T) {
	for _, tc := range []struct {
		got, want string
		match     bool
	}{
		{testToken, testToken, true},
		{testToken + "x", testToken, false},
		{testToken[:len(testToken)-1], testToken, false},
		{"", testToken, false},
		{strings.ToUpper(testToken), testToken, false},
	} {
		if tokenMatches(tc.got, tc.want) != tc.match {
			t.Errorf("tokenMatches(%q, %q) = %v", tc.got, tc.want, !tc.match)
		}
	}

	fset := token.NewFileSet()
	file, err := parser.ParseFile(fset, "receiver.go", nil, 0)
	if err != nil {
		t.Fatal(err)
	}
	calls := map[string][]string{} // function → the calls it makes
	var compares []string          // == and != on the token values
	for _, d := range file.Decls {
		fn, ok := d.(*ast.FuncDecl)
		if !ok {
			continue
		}
		ast.Inspect(fn, func(n ast.Node) bool {
			switch n := n.(type) {
			case *ast.CallExpr:
				var b bytes.Buffer
				switch f := n.Fun.(type) {
				case *ast.SelectorExpr:
					if x, ok := f.X.(*ast.Ident); ok {
						b.WriteString(x.Name + ".")
					}
					b.WriteString(f.Sel.Name)
				case *ast.Ident:
					b.WriteString(f.Name)
				}
				calls[fn.Name.Name] = append(calls[fn.Name.Name], b.String())
			case *ast.BinaryExpr:
				if n.Op != token.EQL && n.Op != token.NEQ {
					break
				}
				for _, side := range [][2]ast.Expr{{n.X, n.Y}, {n.Y, n.X}} {
					id, ok := side[0].(*ast.Ident)
					lit, empty := side[1].(*ast.BasicLit)
					if ok && (id.Name == "got" || id.Name == "want") && !(empty && lit.Value == `""`) {
						compares = append(compares, fset.Position(n.Pos()).String())
					}
				}
			}
			return true
		})
	}
	has := func(fn, call string) bool {
		for _, c := range calls[fn] {
			if c == call {
				return true
			}
		}
		return false
	}
	for _, c := range []string{"sha256.Sum256", "subtle.ConstantTimeCompare"} {
		if !has("tokenMatches", c) {
			t.Errorf("tokenMatches does not call %s", c)
		}
	}
	if !has("ServeHTTP", "tokenMatches") {
		t.Error("ServeHTTP does not call tokenMatches")
	}
	if len(compares) > 0 {
		t.Errorf("the token is compared with == or != at %v", compares)
	}
}

var _ http.Handler = (*Receiver)(nil)
var _ prometheus.Collector = (*Receiver)(nil)

func TestNewNeedsARefresher(t *testing.T) {
	defer func() {
		if recover() == nil {
			t.Error("New without a Refresher did not panic")
		}
	}()
	New(context.Background(), Options{})
}
