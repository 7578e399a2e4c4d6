package collector

import (
	"context"
	"net"
	"net/http"
	"net/http/httptest"
	"runtime"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
	dto "github.com/prometheus/client_model/go"

	"github.com/yunxiao-exporter/yunxiao_exporter/flowsim"
	"github.com/yunxiao-exporter/yunxiao_exporter/yunxiao"
)

func TestCacheHitsAndExpiry(t *testing.T) {
	e := newTestEnv(t, "  - id: 42\n    name: backend-build\n")
	e.pinFixture(42, "success.json")
	steps := []struct {
		advance time.Duration
		want    int64 // GetLatestPipelineRun requests so far
	}{
		{0, 1},                          // cold: fetched
		{0, 1},                          // warm: cached
		{29 * time.Second, 1},           // still within cache_ttl
		{time.Second, 2},                // exactly cache_ttl old: fetched again
		{10 * time.Second, 2},           // cached again
		{20*time.Second + time.Hour, 3}, // long idle: one fetch, not one per missed period
	}
	for i, s := range steps {
		e.clock.Add(s.advance)
		e.refresh()
		if got := e.sim.Requests(flowsim.EndpointLatestRun); got != s.want {
			t.Fatalf("step %d: %d requests, want %d", i, got, s.want)
		}
	}
	// A configured name is used at once; GetPipeline is asked only for the
	// tags, once per NameTTL (1 h), not once per cache_ttl.
	if got := e.sim.Requests(flowsim.EndpointPipeline); got != 2 {
		t.Errorf("GetPipeline called %d times over 1 h 1 min, want 2 (once per NameTTL)", got)
	}
}

func TestNameLookupCachedForNameTTL(t *testing.T) {
	e := newTestEnv(t, "  - id: 1001\n", flowsim.Pipeline{ID: 1001, Name: "from-api"})
	e.pinFixture(1001, "success.json")
	for i := 0; i < 10; i++ { // 10 × 30s: well within the hour
		e.refresh()
		e.clock.Add(30 * time.Second)
	}
	if got := e.sim.Requests(flowsim.EndpointPipeline); got != 1 {
		t.Fatalf("GetPipeline called %d times within NameTTL, want 1", got)
	}
	e.clock.Add(DefaultNameTTL)
	e.refresh()
	if got := e.sim.Requests(flowsim.EndpointPipeline); got != 2 {
		t.Fatalf("GetPipeline called %d times after NameTTL, want 2", got)
	}
}

func TestNameKeptWhenLookupFails(t *testing.T) {
	e := newTestEnv(t, "  - id: 1001\n", flowsim.Pipeline{ID: 1001, Name: "from-api"})
	e.pinFixture(1001, "success.json")
	e.refresh()
	e.clock.Add(DefaultNameTTL)
	e.sim.Pin(flowsim.EndpointPipeline, 1001, flowsim.Response{Status: http.StatusInternalServerError})
	e.refresh()
	out := exposition(t, e.coll)
	if !strings.Contains(out, `yunxiao_pipeline_up{pipeline_id="1001",pipeline_name="from-api"} 1`) {
		t.Errorf("a failed name refresh must keep the old name and the data fresh:\n%s", out)
	}
}

// TestSingleflight: scrapes that arrive while a pipeline is being fetched
// join that fetch; the API sees one request, and every scrape gets the data.
func TestSingleflight(t *testing.T) {
	e := newTestEnv(t, "  - id: 42\n    name: backend-build\n")
	body := []byte(`{"pipelineRunId": 9, "status": "SUCCESS", "createTime": 1795690800000}`)
	arrived, release := make(chan struct{}), make(chan struct{})
	var once sync.Once
	e.sim.Fault(42, func(w http.ResponseWriter, r *http.Request) {
		once.Do(func() { close(arrived) })
		select {
		case <-release:
		case <-r.Context().Done():
			return
		}
		w.Header().Set("Content-Type", "application/json")
		_, _ = w.Write(body)
	})

	const scrapers = 16
	results := make(chan float64, scrapers)
	var wg sync.WaitGroup
	scrape := func() {
		defer wg.Done()
		reg := prometheus.NewPedanticRegistry()
		reg.MustRegister(e.coll)
		families, err := reg.Gather()
		if err != nil {
			t.Error(err)
		}
		results <- valueOf(families, "yunxiao_pipeline_run_id")
	}
	wg.Add(1)
	go scrape()
	<-arrived // the first scrape's fetch is at the API now
	wg.Add(scrapers - 1)
	for i := 1; i < scrapers; i++ {
		go scrape()
	}
	close(release)
	wg.Wait()
	close(results)
	for v := range results {
		if v != 9 {
			t.Errorf("a scrape got run id %v, want 9", v)
		}
	}
	if got := e.sim.Requests(flowsim.EndpointLatestRun); got != 1 {
		t.Errorf("%d concurrent scrapes sent %d requests for the latest run, want 1", scrapers, got)
	}
}

func valueOf(families []*dto.MetricFamily, name string) float64 {
	for _, mf := range families {
		if mf.GetName() == name && len(mf.Metric) > 0 {
			return mf.Metric[0].GetGauge().GetValue()
		}
	}
	return -1
}

func TestReload(t *testing.T) {
	two := "  - id: 1\n    name: one\n  - id: 2\n    name: two\n"
	t.Run("removed pipeline disappears, kept one keeps its cache", func(t *testing.T) {
		e := newTestEnv(t, two)
		e.pinFixture(1, "success.json")
		e.pinFixture(2, "failed.json")
		e.refresh()
		e.apply("  - id: 1\n    name: one\n", "org-1")
		e.refresh()
		if got := e.sim.Requests(flowsim.EndpointLatestRun); got != 2 {
			t.Errorf("reload refetched a cached pipeline: %d requests, want 2", got)
		}
		out := exposition(t, e.coll)
		if strings.Contains(out, `pipeline_id="2"`) || !strings.Contains(out, `pipeline_id="1"`) {
			t.Errorf("after removing pipeline 2:\n%s", out)
		}
	})
	t.Run("renamed pipeline relabels at once", func(t *testing.T) {
		e := newTestEnv(t, two)
		e.pinFixture(1, "success.json")
		e.pinFixture(2, "failed.json")
		e.refresh()
		e.apply("  - id: 1\n    name: uno\n  - id: 2\n    name: two\n", "org-1")
		out := exposition(t, e.coll)
		if strings.Contains(out, `pipeline_name="one"`) || !strings.Contains(out, `pipeline_name="uno"`) {
			t.Errorf("after renaming pipeline 1:\n%s", out)
		}
	})
	t.Run("another organization empties the cache", func(t *testing.T) {
		e := newTestEnv(t, two)
		e.pinFixture(1, "success.json")
		e.pinFixture(2, "failed.json")
		e.refresh()
		e.apply(two, "org-2") // the fake answers 404 for another organization
		e.refresh()
		out := exposition(t, e.coll)
		if strings.Contains(out, "yunxiao_pipeline_run_status") {
			t.Errorf("data of the old organization survived:\n%s", out)
		}
	})
}

// TestHandlerAnswersBeforeDeadline: one pipeline's API never answers; the
// scrape still answers, within Prometheus' timeout, with the others.
func TestHandlerAnswersBeforeDeadline(t *testing.T) {
	e := newTestEnv(t, "  - id: 1\n    name: fast\n  - id: 2\n    name: hung\n")
	e.pinFixture(1, "success.json")
	release := make(chan struct{})
	t.Cleanup(func() { close(release) })
	e.sim.Fault(2, func(w http.ResponseWriter, r *http.Request) {
		select {
		case <-release:
		case <-r.Context().Done():
		}
	})
	reg := prometheus.NewRegistry()
	reg.MustRegister(e.metrics)
	h := e.coll.Handler(HandlerOpts{Gatherer: reg})
	req := httptest.NewRequest(http.MethodGet, "/metrics", nil)
	req.Header.Set(ScrapeTimeoutHeader, "1")
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, req)

	body := rec.Body.String()
	if rec.Code != http.StatusOK {
		t.Fatalf("status %d: %s", rec.Code, body)
	}
	for _, want := range []string{
		`yunxiao_pipeline_run_status{pipeline_id="1",pipeline_name="fast",status="SUCCESS"} 1`,
		"yunxiao_scrape_duration_seconds ",
		`yunxiao_api_requests_total{code="200",endpoint="GetLatestPipelineRun"} 1`,
	} {
		if !strings.Contains(body, want) {
			t.Errorf("scrape lacks %q:\n%s", want, body)
		}
	}
	// Only its error counters (born at 0) and its info (from the config)
	// exist for it: no made-up data.
	for _, line := range strings.Split(body, "\n") {
		if strings.Contains(line, `pipeline_id="2"`) && !strings.HasPrefix(line, "yunxiao_pipeline_fetch_errors_total{") && !strings.HasPrefix(line, "yunxiao_pipeline_info{") {
			t.Errorf("the hung pipeline has no data yet and must not appear: %s", line)
		}
	}
}

func TestScrapeTimeout(t *testing.T) {
	c := New(Options{})
	cases := []struct {
		header string
		want   time.Duration
	}{
		{"", DefaultScrapeTimeout - 500*time.Millisecond},
		{"10", 9500 * time.Millisecond},
		{"2.5", 2 * time.Second},
		{"0.5", 250 * time.Millisecond}, // shorter than twice the offset: half of it
		{"garbage", DefaultScrapeTimeout - 500*time.Millisecond},
		{"-3", DefaultScrapeTimeout - 500*time.Millisecond},
	}
	for _, tc := range cases {
		r := httptest.NewRequest(http.MethodGet, "/metrics", nil)
		if tc.header != "" {
			r.Header.Set(ScrapeTimeoutHeader, tc.header)
		}
		if got := c.scrapeTimeout(r, 500*time.Millisecond); got != tc.want {
			t.Errorf("header %q: %s, want %s", tc.header, got, tc.want)
		}
	}
}

func TestHandlerLimitsConcurrentScrapes(t *testing.T) {
	e := newTestEnv(t, "  - id: 42\n    name: slow\n")
	arrived, release := make(chan struct{}), make(chan struct{})
	e.sim.Fault(42, func(w http.ResponseWriter, r *http.Request) {
		close(arrived)
		select {
		case <-release:
		case <-r.Context().Done():
		}
	})
	h := e.coll.Handler(HandlerOpts{MaxRequestsInFlight: 1})
	done := make(chan struct{})
	go func() {
		defer close(done)
		h.ServeHTTP(httptest.NewRecorder(), httptest.NewRequest(http.MethodGet, "/metrics", nil))
	}()
	<-arrived
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, httptest.NewRequest(http.MethodGet, "/metrics", nil))
	close(release)
	<-done
	if rec.Code != http.StatusServiceUnavailable {
		t.Errorf("second concurrent scrape got %d, want 503", rec.Code)
	}
}

// TestErrorsLoggedOncePerCause: a pipeline failing the same way on every
// scrape logs one warning; a new cause logs again; recovery logs once.
func TestErrorsLoggedOncePerCause(t *testing.T) {
	e := newTestEnv(t, "  - id: 42\n    name: flaky\n")
	e.pinFixture(42, "success.json")
	fail := func(status int, code string) {
		e.sim.Fault(42, answer(status, "application/json", `{"errorCode":"`+code+`","errorMessage":"token `+testToken+` rejected"}`))
	}
	step := func() { e.refresh(); e.clock.Add(30 * time.Second) }

	fail(http.StatusInternalServerError, "InternalServerError")
	for i := 0; i < 5; i++ {
		step()
	}
	fail(http.StatusUnauthorized, "ExpiredTokenError")
	for i := 0; i < 5; i++ {
		step()
	}
	e.sim.Fault(42, nil)
	step()
	step()

	logs := e.logs.String()
	if n := strings.Count(logs, "level=warn"); n != 2 {
		t.Errorf("%d warnings for two causes, want 2:\n%s", n, logs)
	}
	if n := strings.Count(logs, "recovered"); n != 1 {
		t.Errorf("%d recovery messages, want 1:\n%s", n, logs)
	}
	if strings.Contains(logs, testToken) {
		t.Errorf("the token reached the log:\n%s", logs)
	}
	out := exposition(t, e.coll)
	for _, want := range []string{
		`yunxiao_pipeline_fetch_errors_total{pipeline_id="42",pipeline_name="flaky",reason="server_error"} 5`,
		`yunxiao_pipeline_fetch_errors_total{pipeline_id="42",pipeline_name="flaky",reason="unauthorized"} 5`,
		`yunxiao_pipeline_up{pipeline_id="42",pipeline_name="flaky"} 1`,
	} {
		if !strings.Contains(out, want) {
			t.Errorf("missing %s in\n%s", want, out)
		}
	}
}

func TestTokenRefusedSetsYunxiaoUp(t *testing.T) {
	e := newTestEnv(t, "  - id: 42\n    name: x\n")
	e.pinFixture(42, "success.json")
	reg := prometheus.NewPedanticRegistry()
	reg.MustRegister(e.metrics)
	upIs := func(want string) {
		t.Helper()
		err := testutil.GatherAndCompare(reg, strings.NewReader(
			"# HELP yunxiao_up "+yunxiaoUpHelp(t, reg)+"\n# TYPE yunxiao_up gauge\nyunxiao_up "+want+"\n"), "yunxiao_up")
		if err != nil {
			t.Error(err)
		}
	}
	if n, err := testutil.GatherAndCount(reg, "yunxiao_up"); err != nil || n != 0 {
		t.Errorf("yunxiao_up before the first probe: %d series (%v), want none", n, err)
	}
	e.refresh()
	upIs("1")
	// One pipeline refused or failing says nothing about the API as a whole.
	e.sim.Fault(42, answer(http.StatusInternalServerError, "application/json", `{"errorCode":"InternalServerError"}`))
	e.clock.Add(time.Minute)
	e.refresh()
	upIs("1")
	// The probe refused: the token is.
	e.sim.FaultList(answer(http.StatusUnauthorized, "application/json", `{"errorCode":"InvalidTokenError"}`))
	e.clock.Add(time.Minute)
	e.refresh()
	upIs("0")
}

// TestYunxiaoUpWithoutPipelines (issue 10 #2): an exporter that owns no
// pipeline (an empty shard, discovery that found nothing yet) still probes
// the API, so yunxiao_up is known rather than stuck at a zero value.
func TestYunxiaoUpWithoutPipelines(t *testing.T) {
	e := newTestEnv(t, "  - id: 1\n")
	// Replace the collector by one whose shard does not own pipeline 1.
	shard := Shard{Index: 0, Total: 2}
	if shard.Owns(1) {
		shard.Index = 1
	}
	e.coll.Close()
	e.coll = New(Options{Now: e.clock.Now, Shard: shard})
	t.Cleanup(e.coll.Close)
	e.apply("  - id: 1\n", "org-1")
	if len(e.coll.Pipelines()) != 0 {
		t.Fatal("the shard owns the pipeline")
	}
	reg := prometheus.NewPedanticRegistry()
	reg.MustRegister(e.metrics)
	e.refresh()
	if got := testutil.ToFloat64(upGauge(t, reg)); got != 1 {
		t.Errorf("yunxiao_up with no pipelines: %v, want 1", got)
	}
	if n := e.sim.Requests(flowsim.EndpointList); n != 1 {
		t.Errorf("probes: %d, want 1 per cache_ttl", n)
	}
	e.refresh() // within cache_ttl: no second probe
	if n := e.sim.Requests(flowsim.EndpointList); n != 1 {
		t.Errorf("probes within cache_ttl: %d, want 1", n)
	}
}

// upGauge returns yunxiao_up as gathered from reg.
func upGauge(t *testing.T, reg prometheus.Gatherer) prometheus.Collector {
	t.Helper()
	families, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, mf := range families {
		if mf.GetName() == "yunxiao_up" && len(mf.Metric) == 1 {
			g := prometheus.NewGauge(prometheus.GaugeOpts{Name: "yunxiao_up", Help: "copy"})
			g.Set(mf.Metric[0].GetGauge().GetValue())
			return g
		}
	}
	t.Fatal("yunxiao_up not exported")
	return nil
}

func yunxiaoUpHelp(t *testing.T, g prometheus.Gatherer) string {
	t.Helper()
	families, err := g.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, mf := range families {
		if mf.GetName() == "yunxiao_up" {
			return mf.GetHelp()
		}
	}
	t.Fatal("yunxiao_up not exported")
	return ""
}

// TestFastPathMatchesCollect: the prebuilt families the handler serves are
// the very series the pedantic registry accepts from Collect.
func TestFastPathMatchesCollect(t *testing.T) {
	var pipelines string
	fixtures := []string{"success.json", "failed.json", "running.json", "waiting.json", "canceled.json", "unknown-status.json", "labels.json", "zero-times.json"}
	for i := range fixtures {
		pipelines += "  - id: " + string(rune('1'+i)) + "\n    name: p" + string(rune('1'+i)) + "\n"
	}
	e := newTestEnv(t, pipelines)
	for i, f := range fixtures {
		e.pinFixture(int64(i+1), f)
	}
	e.refresh()
	e.clock.Add(5 * time.Second) // running durations move with the clock; both paths must agree
	viaCollect := exposition(t, e.coll)
	normalised, err := prometheus.Gatherers{prometheus.GathererFunc(func() ([]*dto.MetricFamily, error) {
		return e.coll.Families(), nil
	})}.Gather()
	if err != nil {
		t.Fatalf("the fast path's families are inconsistent: %v", err)
	}
	if viaFast := encode(t, normalised); viaFast != viaCollect {
		t.Errorf("fast path differs from Collect:\n--- fast\n%s\n--- collect\n%s", viaFast, viaCollect)
	}
	if !strings.Contains(viaCollect, `yunxiao_pipeline_run_duration_seconds{pipeline_id="3",pipeline_name="p3"} 605`) {
		t.Errorf("running duration did not follow the clock:\n%s", viaCollect)
	}
}

// The collector is unchecked (yunxiao_pipeline_info's labels come from the
// config), so the definitions table is what documents and tests rely on:
// its labels must be sorted, since the prebuilt series depend on it.
func TestDefinitionsAreDescribed(t *testing.T) {
	c := New(Options{})
	ch := make(chan *prometheus.Desc, 100)
	c.Describe(ch)
	close(ch)
	if n := len(ch); n != 0 {
		t.Errorf("Describe sent %d descriptors; the collector is meant to be unchecked", n)
	}
	for _, def := range metricDefs {
		for i := 1; i < len(def.Labels); i++ {
			if def.Labels[i-1] >= def.Labels[i] {
				t.Errorf("%s: labels %v are not sorted; the prebuilt series depend on it", def.Name, def.Labels)
			}
		}
		for _, l := range def.Labels {
			if l == "job" || l == "instance" {
				t.Errorf("%s has a %q label, which Prometheus owns", def.Name, l)
			}
		}
	}
}

func TestCollectWithoutConfig(t *testing.T) {
	c := New(Options{})
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	c.Refresh(ctx) // no API yet: nothing to do, no panic
	if n := testutil.CollectAndCount(c); n != 1 {
		t.Errorf("an unconfigured collector exported %d metrics, want only the scrape duration", n)
	}
}

// TestReloadsDoNotLeakConnections (issue 10 #9): each reload replaces the
// API client; the old one's connections must close rather than pile up
// (30 reloads once left 246 sockets and 238 goroutines behind).
func TestReloadsDoNotLeakConnections(t *testing.T) {
	clock := &fakeClock{t: testNow}
	sim := flowsim.New(flowsim.Options{Token: testToken, OrganizationID: "org-1", Now: clock.Now}, flowsim.DemoPipelines()...)
	var open atomic.Int64
	srv := httptest.NewUnstartedServer(sim)
	srv.Config.ConnState = func(_ net.Conn, state http.ConnState) {
		switch state {
		case http.StateNew:
			open.Add(1)
		case http.StateClosed, http.StateHijacked:
			open.Add(-1)
		}
	}
	srv.Start()
	t.Cleanup(srv.Close)
	e := &testEnv{t: t, sim: sim, url: srv.URL, clock: clock, logs: &syncBuffer{}, metrics: yunxiao.NewMetrics()}
	e.coll = New(Options{Now: clock.Now})
	t.Cleanup(e.coll.Close)
	pipelines := "  - id: 1001\n  - id: 1002\n  - id: 1003\n"
	cfg := e.config(pipelines, "org-1")
	if err := e.coll.ApplyConfig(cfg, e.metrics); err != nil {
		t.Fatal(err)
	}
	e.refresh()
	baseline := runtime.NumGoroutine()
	for range 30 {
		if err := e.coll.ApplyConfig(e.config(pipelines, "org-1"), e.metrics); err != nil {
			t.Fatal(err)
		}
		clock.Add(31 * time.Second)
		e.refresh()
	}
	// Closing is asynchronous (each connection's reader goroutine ends on
	// its own): wait, bounded, for things to settle. The bounds leave room
	// for the live client's own pool (a few connections, three goroutines
	// each between client and server) but not for a leak, which left 246
	// sockets and 238 goroutines after 30 reloads.
	deadline := time.Now().Add(10 * time.Second)
	for open.Load() > 8 || runtime.NumGoroutine() > baseline+24 {
		if time.Now().After(deadline) {
			t.Fatalf("after 30 reloads: %d connections open (want ≤ 8), %d goroutines (baseline %d, want ≤ +24)", open.Load(), runtime.NumGoroutine(), baseline)
		}
		time.Sleep(20 * time.Millisecond)
	}
}
