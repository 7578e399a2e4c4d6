package collector

import (
	"context"
	"fmt"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/yunxiao-exporter/yunxiao_exporter/flowsim"
)

// historyPipeline starts a run every minute; each takes 20 s and ends, in
// turn, FAIL, CANCELED (after 10 s), SUCCESS, … Ten runs happened before
// the exporter starts; the eleventh starts as it does.
var historyPipeline = flowsim.Pipeline{ID: 77, Name: "history", TriggerMode: 3, Period: time.Minute, Phase: 10 * time.Minute,
	Stages:   []flowsim.Stage{{Name: "Build", Jobs: []flowsim.Job{{Sign: "b", Name: "Build", Duration: 20 * time.Second}}}},
	Outcomes: []flowsim.Outcome{flowsim.Success, flowsim.Fail, flowsim.Canceled}}

func newHistoryEnv(t *testing.T) *testEnv {
	t.Helper()
	e := newTestEnv(t, "  - id: 1\n", historyPipeline)
	e.extra = "run_history: true\n"
	e.apply("  - id: 77\n", "org-1")
	return e
}

// historyOf returns the exposition lines of the run-history metrics.
func historyOf(t *testing.T, e *testEnv) string {
	t.Helper()
	var out []string
	for _, line := range strings.Split(exposition(t, e.coll), "\n") {
		if strings.HasPrefix(line, "yunxiao_pipeline_runs_total{") && strings.HasSuffix(line, "} 0") {
			continue // born at 0 (TestRunHistoryNoneInventedAtStartup checks them)
		}
		if strings.HasPrefix(line, "yunxiao_pipeline_runs_total{") || strings.HasPrefix(line, "yunxiao_pipeline_run_completed_duration_seconds_count") ||
			strings.HasPrefix(line, "yunxiao_pipeline_run_completed_duration_seconds_sum") {
			out = append(out, line)
		}
	}
	return strings.Join(out, "\n")
}

const fiveRuns = `yunxiao_pipeline_run_completed_duration_seconds_sum{pipeline_id="77",pipeline_name="history"} 80
yunxiao_pipeline_run_completed_duration_seconds_count{pipeline_id="77",pipeline_name="history"} 5
yunxiao_pipeline_runs_total{pipeline_id="77",pipeline_name="history",status="CANCELED",trigger_mode="push"} 2
yunxiao_pipeline_runs_total{pipeline_id="77",pipeline_name="history",status="FAIL",trigger_mode="push"} 2
yunxiao_pipeline_runs_total{pipeline_id="77",pipeline_name="history",status="SUCCESS",trigger_mode="push"} 1`

func TestRunHistoryNoneInventedAtStartup(t *testing.T) {
	e := newHistoryEnv(t)
	e.refresh() // first sight: ten runs already finished
	want := `yunxiao_pipeline_run_completed_duration_seconds_sum{pipeline_id="77",pipeline_name="history"} 0
yunxiao_pipeline_run_completed_duration_seconds_count{pipeline_id="77",pipeline_name="history"} 0`
	if got := historyOf(t, e); got != want {
		t.Errorf("at first sight:\n%s\nwant\n%s", got, want)
	}
	// One listing at first sight, over the seed window: it seeds the last
	// finished and successful run and counts nothing.
	if n := e.sim.Requests(flowsim.EndpointListRuns); n != 1 {
		t.Errorf("first sight listed runs %d times; want once, to seed", n)
	}
	out := exposition(t, e.coll)
	if n := strings.Count(out, `yunxiao_pipeline_runs_total{pipeline_id="77",pipeline_name="history",`); n != 15 {
		t.Errorf("%d run counters at first sight, want 15 born at 0:\n%s", n, grepLines(out, "runs_total"))
	}
	for _, want := range []string{
		`yunxiao_pipeline_runs_total{pipeline_id="77",pipeline_name="history",status="FAIL",trigger_mode="push"} 0`,
		`yunxiao_pipeline_runs_total{pipeline_id="77",pipeline_name="history",status="SUCCESS",trigger_mode="manual"} 0`,
		`yunxiao_pipeline_last_successful_run_end_timestamp_seconds{pipeline_id="77",pipeline_name="history"}`,
		`yunxiao_pipeline_last_finished_run_status{pipeline_id="77",pipeline_name="history",status=`,
	} {
		if !strings.Contains(out, want) {
			t.Errorf("first sight lacks %s", want)
		}
	}
}

func TestRunHistorySeveralRunsBetweenScrapes(t *testing.T) {
	e := newHistoryEnv(t)
	e.refresh()
	e.clock.Add(5 * time.Minute) // five runs finish, among them the one running at first sight
	e.refresh()
	if got := historyOf(t, e); got != fiveRuns {
		t.Errorf("after five runs:\n%s\nwant\n%s", got, fiveRuns)
	}
	// The histogram's buckets: two 10 s runs, three 20 s runs.
	out := exposition(t, e.coll)
	for _, want := range []string{
		`yunxiao_pipeline_run_completed_duration_seconds_bucket{pipeline_id="77",pipeline_name="history",le="10"} 2`,
		`yunxiao_pipeline_run_completed_duration_seconds_bucket{pipeline_id="77",pipeline_name="history",le="30"} 5`,
	} {
		if !strings.Contains(out, want) {
			t.Errorf("missing %s", want)
		}
	}
	if problems, err := testutil.CollectAndLint(e.coll); err != nil || len(problems) > 0 {
		t.Errorf("promlint: %v %v", err, problems)
	}
}

func TestRunHistoryNotTwiceWhenScrapesRace(t *testing.T) {
	e := newHistoryEnv(t)
	e.refresh()
	seeded := e.sim.Requests(flowsim.EndpointListRuns)
	e.clock.Add(5 * time.Minute)
	var wg sync.WaitGroup
	for i := 0; i < 16; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			reg := prometheus.NewPedanticRegistry()
			reg.MustRegister(e.coll)
			if _, err := reg.Gather(); err != nil {
				t.Error(err)
			}
		}()
	}
	wg.Wait()
	if got := historyOf(t, e); got != fiveRuns {
		t.Errorf("after 16 racing scrapes:\n%s\nwant\n%s", got, fiveRuns)
	}
	if n := e.sim.Requests(flowsim.EndpointListRuns) - seeded; n != 1 {
		t.Errorf("16 racing scrapes listed runs %d times, want 1", n)
	}
}

func TestRunHistoryNotTwiceAcrossReload(t *testing.T) {
	e := newHistoryEnv(t)
	e.refresh()
	e.clock.Add(5 * time.Minute)
	e.refresh()
	e.apply("  - id: 77\n  - id: 1\n", "org-1") // a reload that keeps the pipeline
	e.sim.Pin(flowsim.EndpointLatestRun, 1, flowsim.Response{Status: http.StatusNotFound})
	e.refresh() // nothing due: the cache and the history carried over
	if got := historyOf(t, e); got != fiveRuns {
		t.Errorf("after a reload:\n%s\nwant\n%s", got, fiveRuns)
	}
	e.clock.Add(time.Minute) // one more run finishes
	e.refresh()
	if out := exposition(t, e.coll); !strings.Contains(out, `yunxiao_pipeline_run_completed_duration_seconds_count{pipeline_id="77",pipeline_name="history"} 6`) {
		t.Errorf("the run after the reload was not counted exactly once:\n%s", historyOf(t, e))
	}
}

func TestRunHistoryListingFailureLosesNothing(t *testing.T) {
	e := newHistoryEnv(t)
	e.refresh()
	e.clock.Add(3 * time.Minute)
	e.sim.Pin(flowsim.EndpointListRuns, 77, flowsim.Response{Status: http.StatusBadGateway})
	e.refresh()
	out := exposition(t, e.coll)
	if !strings.Contains(out, `reason="server_error"} 1`) || !strings.Contains(out, `yunxiao_pipeline_up{pipeline_id="77",pipeline_name="history"} 1`) {
		t.Errorf("a failed listing is counted as an error and leaves the latest run fresh:\n%s", grepLines(out, `pipeline_id="77"`))
	}
	e.sim.Unpin(flowsim.EndpointListRuns, 77)
	e.clock.Add(2 * time.Minute)
	e.refresh() // the runs of the failed refresh are listed now
	if got := historyOf(t, e); got != fiveRuns {
		t.Errorf("after a failed then a good listing:\n%s\nwant\n%s", got, fiveRuns)
	}
}

func TestRunHistoryOptIn(t *testing.T) {
	e := newTestEnv(t, "  - id: 77\n  - id: 78\n    run_history: true\n", historyPipeline,
		flowsim.Pipeline{ID: 78, Name: "other", Period: time.Minute, Stages: historyPipeline.Stages, Outcomes: []flowsim.Outcome{flowsim.Success}})
	e.refresh()
	e.clock.Add(2 * time.Minute)
	e.refresh()
	out := exposition(t, e.coll)
	if strings.Contains(out, `yunxiao_pipeline_runs_total{pipeline_id="77"`) || !strings.Contains(out, `yunxiao_pipeline_runs_total{pipeline_id="78"`) {
		t.Errorf("run history must be on only where asked:\n%s", grepLines(out, "runs_total"))
	}
	if n := e.sim.Requests(flowsim.EndpointListRuns); n != 2 {
		t.Errorf("ListPipelineRuns called %d times, want twice (pipeline 78's seed and second refresh)", n)
	}
}

// fleet of pipelines for discovery: svc-00-build … svc-NN-build, and every
// fifth a sandbox.
func discoveryFleet(n int) []flowsim.Pipeline {
	var fleet []flowsim.Pipeline
	for i := 0; i < n; i++ {
		name := fmt.Sprintf("svc-%02d-build", i)
		if i%5 == 0 {
			name = fmt.Sprintf("svc-%02d-sandbox", i)
		}
		fleet = append(fleet, flowsim.Pipeline{ID: int64(2000 + i), Name: name, Period: time.Hour, Stages: historyPipeline.Stages, Outcomes: []flowsim.Outcome{flowsim.Success}})
	}
	return append(fleet, flowsim.Pipeline{ID: 3000, Name: "nightly"})
}

func newDiscoveryEnv(t *testing.T, explicit string) *testEnv {
	t.Helper()
	e := newTestEnv(t, "  - id: 1\n", discoveryFleet(75)...)
	e.coll.opts.ManualDiscovery = true
	e.extra = "discovery:\n  enabled: true\n  include: [\"svc-.*\"]\n  exclude: [\".*-sandbox\"]\n"
	e.apply(explicit, "org-1")
	return e
}

func exportedIDs(t *testing.T, e *testEnv) map[string]bool {
	t.Helper()
	ids := map[string]bool{}
	for _, p := range e.coll.Pipelines() {
		ids[fmt.Sprint(p.ID)] = true
	}
	return ids
}

func TestDiscoveryPagingAndFilters(t *testing.T) {
	e := newDiscoveryEnv(t, "  - id: 2001\n    name: explicit-name\n  - id: 9\n")
	if err := e.coll.Discover(context.Background()); err != nil {
		t.Fatal(err)
	}
	if n := e.sim.Requests(flowsim.EndpointList); n != 3 {
		t.Errorf("76 pipelines at 30 a page took %d requests, want 3", n)
	}
	ids := exportedIDs(t, e)
	if len(ids) != 60+1 { // 75 − 15 sandboxes, plus explicit pipeline 9; 2001 is both
		t.Errorf("%d pipelines watched, want 61", len(ids))
	}
	for id, want := range map[string]bool{"2001": true, "2002": true, "2000": false, "2005": false, "3000": false, "9": true} {
		if ids[id] != want {
			t.Errorf("pipeline %s watched=%v, want %v", id, ids[id], want)
		}
	}
	e.pinFixture(2001, "success.json")
	e.pinFixture(2002, "success.json")
	e.refresh()
	out := exposition(t, e.coll)
	for _, want := range []string{`pipeline_id="2001",pipeline_name="explicit-name"`, `pipeline_id="2002",pipeline_name="svc-02-build"`} {
		if !strings.Contains(out, want) {
			t.Errorf("missing %s (explicit entries win on names; discovered names need no GetPipeline)", want)
		}
	}
	// Discovered names need no GetPipeline; only pipeline 9 is asked, for
	// its name (tags wait for a pipeline's second fetch).
	if n := e.sim.Requests(flowsim.EndpointPipeline); n != 1 {
		t.Errorf("GetPipeline called %d times, want 1", n)
	}
	reg := prometheus.NewPedanticRegistry()
	reg.MustRegister(e.coll.DiscoveryMetrics())
	if err := testutil.GatherAndCompare(reg, strings.NewReader(`
# HELP yunxiao_discovery_errors_total Discoveries (ListPipelines) that failed; the last good list stays in use.
# TYPE yunxiao_discovery_errors_total counter
yunxiao_discovery_errors_total 0
# HELP yunxiao_discovery_pipelines Pipelines the last successful discovery (ListPipelines) found and kept after the include/exclude filters.
# TYPE yunxiao_discovery_pipelines gauge
yunxiao_discovery_pipelines 60
`), "yunxiao_discovery_errors_total", "yunxiao_discovery_pipelines"); err != nil {
		t.Error(err)
	}
}

func TestDiscoveryFailureKeepsLastList(t *testing.T) {
	e := newDiscoveryEnv(t, "")
	if err := e.coll.Discover(context.Background()); err != nil {
		t.Fatal(err)
	}
	before := len(exportedIDs(t, e))
	e.sim.FaultList(answer(http.StatusInternalServerError, "text/html", "<html><title>oops</title></html>"))
	if err := e.coll.Discover(context.Background()); err == nil {
		t.Fatal("a failed discovery returned no error")
	}
	if after := len(exportedIDs(t, e)); after != before || before != 60 {
		t.Errorf("after a failed discovery %d pipelines watched, before %d (want 60 both)", after, before)
	}
	reg := prometheus.NewPedanticRegistry()
	reg.MustRegister(e.coll.DiscoveryMetrics())
	if n, err := testutil.GatherAndCount(reg, "yunxiao_discovery_errors_total"); err != nil || n != 1 {
		t.Errorf("errors_total: %d series, %v", n, err)
	}
	if got := testutil.ToFloat64(errorsOnly{e.coll}); got != 1 {
		t.Errorf("yunxiao_discovery_errors_total = %v, want 1", got)
	}
}

// errorsOnly exposes the discovery error counter alone, for ToFloat64.
type errorsOnly struct{ c *Collector }

func (e errorsOnly) Describe(ch chan<- *prometheus.Desc) { ch <- e.c.discovery.descErrors }
func (e errorsOnly) Collect(ch chan<- prometheus.Metric) {
	e.c.mu.RLock()
	defer e.c.mu.RUnlock()
	ch <- prometheus.MustNewConstMetric(e.c.discovery.descErrors, prometheus.CounterValue, float64(e.c.discovery.errors))
}

func TestDiscoveryNotOnScrapePath(t *testing.T) {
	e := newDiscoveryEnv(t, "")
	if err := e.coll.Discover(context.Background()); err != nil {
		t.Fatal(err)
	}
	// The API probe is a one-item ListPipelines on the wire; flowsim
	// counts it apart, and only discovery listings matter here.
	discoveries := func() int64 { return e.sim.Requests(flowsim.EndpointList) - e.sim.Requests(flowsim.EndpointCheck) }
	listed := discoveries()
	for i := 0; i < 3; i++ {
		e.refresh()
		e.clock.Add(time.Minute)
	}
	if n := discoveries(); n != listed {
		t.Errorf("scrapes called ListPipelines %d times for discovery", n-listed)
	}
}

func TestDiscoveryAndShards(t *testing.T) {
	seen := map[string]int{}
	for index := 0; index < 2; index++ {
		e := newDiscoveryEnv(t, "")
		e.coll.opts.Shard = Shard{Index: index, Total: 2}
		if err := e.coll.Discover(context.Background()); err != nil {
			t.Fatal(err)
		}
		for id := range exportedIDs(t, e) {
			seen[id]++
		}
	}
	if len(seen) != 60 {
		t.Errorf("two shards together watch %d of 60 discovered pipelines", len(seen))
	}
	for id, n := range seen {
		if n != 1 {
			t.Errorf("pipeline %s watched by %d shards", id, n)
		}
	}
}

// TestDiscoveryLoopRuns: without ManualDiscovery the background loop
// discovers on its own (and stops with the collector).
func TestDiscoveryLoopRuns(t *testing.T) {
	e := newTestEnv(t, "  - id: 1\n", discoveryFleet(10)...)
	listed := make(chan struct{}, 1)
	e.sim.FaultList(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		fmt.Fprint(w, `[{"pipelineId": 2001, "pipelineName": "svc-01-build"}]`)
		select {
		case listed <- struct{}{}:
		default:
		}
	})
	e.extra = "discovery:\n  enabled: true\n  refresh_interval: 1h\n"
	e.apply("", "org-1")
	<-listed                                                      // the loop's first discovery reached the API
	if err := e.coll.Discover(context.Background()); err != nil { // and a second, to be sure the first landed
		t.Fatal(err)
	}
	if ids := exportedIDs(t, e); !ids["2001"] || len(ids) != 1 {
		t.Errorf("watched %v, want only 2001", ids)
	}
}
