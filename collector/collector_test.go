package collector

import (
	"bytes"
	"context"
	"flag"
	"fmt"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/go-kit/log"
	"github.com/go-kit/log/level"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"

	"github.com/yunxiao-exporter/yunxiao_exporter/config"
	"github.com/yunxiao-exporter/yunxiao_exporter/flowsim"
	"github.com/yunxiao-exporter/yunxiao_exporter/yunxiao"
)

var update = flag.Bool("update", false, "rewrite the golden .prom files from the current output")

const (
	testToken  = "pt-collector-test-token-7f3a9c"
	testSecret = "fixture-secret-never-exported" // a globalParams value in every fixture
)

// testNow is 2026-11-26T12:00:00Z, the "now" the fixtures are written for.
var testNow = time.UnixMilli(1795694400000).UTC()

// fakeClock is the collector's injected clock.
type fakeClock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *fakeClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.t
}

func (c *fakeClock) Add(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.t = c.t.Add(d)
}

// testEnv is a collector wired to a simulated Flow API.
type testEnv struct {
	t       testing.TB
	sim     *flowsim.Server
	url     string
	clock   *fakeClock
	coll    *Collector
	metrics *yunxiao.Metrics
	logs    *syncBuffer
	extra   string // top-level YAML added to the config
}

type syncBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *syncBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *syncBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

// newTestEnv starts the fake API and a collector watching pipelines (YAML
// list items, e.g. "  - id: 1\n").
func newTestEnv(t testing.TB, pipelines string, simPipelines ...flowsim.Pipeline) *testEnv {
	t.Helper()
	clock := &fakeClock{t: testNow}
	sim := flowsim.New(flowsim.Options{Token: testToken, OrganizationID: "org-1", Now: clock.Now}, simPipelines...)
	srv := httptest.NewServer(sim)
	t.Cleanup(srv.Close)
	logs := &syncBuffer{}
	logger := level.NewFilter(log.NewLogfmtLogger(logs), level.AllowDebug())
	e := &testEnv{t: t, sim: sim, url: srv.URL, clock: clock, logs: logs, metrics: yunxiao.NewMetrics()}
	e.coll = New(Options{Now: clock.Now, Logger: logger})
	t.Cleanup(e.coll.Close)
	e.apply(pipelines, "org-1")
	return e
}

func (e *testEnv) config(pipelines, org string) *config.Config {
	e.t.Helper()
	yml := fmt.Sprintf("yunxiao:\n  endpoint: %s\n  organization_id: %s\n  token: %s\n  rate_limit: 0\n  timeout: 5s\ncache_ttl: 30s\n%spipelines:\n%s",
		e.url, org, testToken, e.extra, pipelines)
	if pipelines == "" {
		yml += "  []\n"
	}
	cfg, err := config.Load([]byte(yml), "test.yml", config.LoadOptions{Getenv: func(string) string { return "" }})
	if err != nil {
		e.t.Fatalf("test config: %v", err)
	}
	return cfg
}

// apply installs a config, with a client that retries fast.
func (e *testEnv) apply(pipelines, org string) {
	e.t.Helper()
	cfg := e.config(pipelines, org)
	opts := cfg.ClientOptions()
	opts.RetryBackoff = time.Millisecond
	client, err := yunxiao.New(opts, e.metrics)
	if err != nil {
		e.t.Fatal(err)
	}
	if err := e.coll.SetAPI(client, cfg); err != nil {
		e.t.Fatal(err)
	}
}

func (e *testEnv) refresh() {
	e.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	e.coll.Refresh(ctx)
}

func (e *testEnv) pinFixture(id int64, name string) {
	e.t.Helper()
	body, err := os.ReadFile(filepath.Join("testdata", name))
	if err != nil {
		e.t.Fatal(err)
	}
	e.sim.PinJSON(flowsim.EndpointLatestRun, id, body)
}

// exposition gathers the collector through a pedantic registry and encodes
// it as text, without the scrape duration (which is wall-clock time).
func exposition(t *testing.T, c prometheus.Collector) string {
	t.Helper()
	reg := prometheus.NewPedanticRegistry()
	reg.MustRegister(c)
	families, err := reg.Gather()
	if err != nil {
		t.Fatalf("gather: %v", err)
	}
	return encode(t, families)
}

func encode(t *testing.T, families []*dto.MetricFamily) string {
	t.Helper()
	var buf bytes.Buffer
	enc := expfmt.NewEncoder(&buf, expfmt.NewFormat(expfmt.TypeTextPlain))
	for _, mf := range families {
		if mf.GetName() == scrapeDurationDef.Name {
			continue
		}
		if err := enc.Encode(mf); err != nil {
			t.Fatal(err)
		}
	}
	return buf.String()
}

func pipelineMetricNames() []string {
	names := make([]string, 0, numFamilies)
	for _, d := range metricDefs {
		names = append(names, d.Name)
	}
	return names
}

func answer(status int, contentType, body string) http.HandlerFunc {
	return func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Content-Type", contentType)
		w.WriteHeader(status)
		fmt.Fprint(w, body)
	}
}

// TestGolden checks the exact exposition for each kind of pipeline state
// against testdata/<case>.prom (regenerate with -update, then review).
func TestGolden(t *testing.T) {
	cases := []struct {
		name      string
		pipelines string
		fixture   string
		sim       []flowsim.Pipeline
		setup     func(e *testEnv)
	}{
		{name: "success", fixture: "success.json", pipelines: "  - id: 42\n    name: backend-build\n"},
		{name: "failed", fixture: "failed.json", pipelines: "  - id: 42\n    name: backend-build\n"},
		{name: "running", fixture: "running.json", pipelines: "  - id: 42\n    name: backend-build\n"},
		{name: "waiting", fixture: "waiting.json", pipelines: "  - id: 42\n    name: deploy-production\n"},
		{name: "canceled", fixture: "canceled.json", pipelines: "  - id: 42\n    name: backend-build\n"},
		{name: "unknown-status", fixture: "unknown-status.json", pipelines: "  - id: 42\n    name: backend-build\n"},
		{name: "zero-times", fixture: "zero-times.json", pipelines: "  - id: 42\n    name: backend-build\n"},
		{name: "strings-for-numbers", fixture: "strings-for-numbers.json", pipelines: "  - id: 42\n    name: backend-build\n"},
		{name: "labels", fixture: "labels.json", pipelines: "  - id: 42\n    name: \"移动端 \\\"app\\\" \\\\ build\\nx\"\n"},
		{
			// 404 for the latest run, but the pipeline exists: it never ran.
			name: "never-run", pipelines: "  - id: 7\n",
			sim: []flowsim.Pipeline{{ID: 7, Name: "release-notes"}},
		},
		{
			// 404 for both: the configured id is wrong.
			name: "missing-pipeline", pipelines: "  - id: 8\n    name: typo\n",
		},
		{
			// It worked, then the API broke: last good data stays, up is 0.
			name: "erroring", fixture: "success.json", pipelines: "  - id: 42\n    name: backend-build\n",
			setup: func(e *testEnv) {
				e.refresh()
				e.clock.Add(30 * time.Second)
				e.sim.Fault(42, answer(http.StatusBadGateway, "text/html", "<html><title>502 Bad Gateway</title></html>"))
			},
		},
		{
			name: "unreachable-from-start", pipelines: "  - id: 42\n    name: backend-build\n",
			setup: func(e *testEnv) {
				e.sim.Fault(42, answer(http.StatusServiceUnavailable, "application/json", `{"errorCode":"ServiceUnavailable","errorMessage":"try later"}`))
			},
		},
		{
			// Issue 10 #5: the status decides; active work with an end
			// time (as in the API's own sample) still counts now − start.
			name: "running-with-end-time", fixture: "running-with-end-time.json", pipelines: "  - id: 42\n    name: backend-build\n",
		},
		{
			// Issue 10 #11: a run waiting at an approval gate; its last
			// progress is when the gate was reached.
			name: "approval-waiting", fixture: "approval-waiting.json", pipelines: "  - id: 42\n    name: deploy-production\n",
		},
		{
			// Issue 10 #4: a 200 whose body is an error is a failed fetch:
			// the last good run stays, up is 0, api_error is counted.
			name: "error-body-200", fixture: "success.json", pipelines: "  - id: 42\n    name: backend-build\n",
			setup: func(e *testEnv) {
				e.refresh()
				e.clock.Add(30 * time.Second)
				e.pinFixture(42, "error-body-200.json")
			},
		},
		{
			// Issue 10 #6: stale data does not keep running; its durations
			// stop at the last successful fetch (testNow), an hour ago.
			name: "stale-running-frozen", fixture: "running.json", pipelines: "  - id: 42\n    name: backend-build\n",
			setup: func(e *testEnv) {
				e.refresh()
				e.clock.Add(time.Hour)
				e.sim.Fault(42, answer(http.StatusBadGateway, "text/html", "<html><title>502 Bad Gateway</title></html>"))
			},
		},
		{
			// Issue 10 #13: red until green. The failed run stays the
			// last finished one while its rerun runs.
			name: "failed-then-rerun", fixture: "failed.json", pipelines: "  - id: 42\n    name: backend-build\n",
			setup: func(e *testEnv) {
				e.refresh()
				e.clock.Add(30 * time.Second)
				e.pinFixture(42, "running.json")
			},
		},
		{
			// Issue 11: two sources (one without branch), credentials in
			// the repository address and beside it, a hostile CJK branch,
			// and groups: only safe values are exported.
			name: "sources", fixture: "sources.json", pipelines: "  - id: 42\n    name: backend-build\n",
		},
		{
			// Issue 11: nothing started yet: only queued time moves.
			name: "queued", fixture: "queued.json", pipelines: "  - id: 42\n    name: backend-build\n",
		},
		{
			name: "name-from-api", fixture: "success.json", pipelines: "  - id: 1001\n",
			sim: []flowsim.Pipeline{{ID: 1001, Name: "named-by-GetPipeline"}},
		},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			e := newTestEnv(t, tc.pipelines, tc.sim...)
			if tc.fixture != "" {
				for _, id := range []int64{42, 1001} {
					e.pinFixture(id, tc.fixture)
				}
			}
			if tc.setup != nil {
				tc.setup(e)
			}
			got := exposition(t, e.coll)
			golden := filepath.Join("testdata", tc.name+".prom")
			if *update {
				if err := os.WriteFile(golden, []byte(got), 0o644); err != nil {
					t.Fatal(err)
				}
			}
			want, err := os.ReadFile(golden)
			if err != nil {
				t.Fatalf("%v (run with -update to create it)", err)
			}
			if got != string(want) {
				t.Errorf("exposition differs from %s:\n--- got\n%s\n--- want\n%s", golden, got, want)
			}
			// The same through client_golang's own comparison.
			if err := testutil.CollectAndCompare(e.coll, bytes.NewReader(want), pipelineMetricNames()...); err != nil {
				t.Error(err)
			}
			if strings.Contains(got, testSecret) || strings.Contains(got, testToken) {
				t.Error("a run parameter or the token reached the exposition")
			}
			if problems, err := testutil.CollectAndLint(e.coll); err != nil || len(problems) > 0 {
				t.Errorf("promlint: %v %v", err, problems)
			}
		})
	}
}

// TestInfoLabelsFollowReload (issue 11): a pipeline's extra labels come
// from the config; after a reload that changes them, the old info series
// is gone, not left beside the new one.
func TestInfoLabelsFollowReload(t *testing.T) {
	e := newTestEnv(t, "  - id: 42\n    name: backend-build\n    labels: {team: payments, env: prod}\n    deploy: true\n")
	e.pinFixture(42, "sources.json")
	before := exposition(t, e.coll)
	want := `yunxiao_pipeline_info{deploy="true",env="prod",group="backend,payments",pipeline_id="42",pipeline_name="backend-build",tags="",team="payments"} 1`
	if !strings.Contains(before, want) {
		t.Errorf("info before the reload:\n%s\nwant %s", grepLines(before, "yunxiao_pipeline_info"), want)
	}
	e.apply("  - id: 42\n    name: backend-build\n    labels: {team: checkout}\n", "org-1")
	after := grepLines(exposition(t, e.coll), "yunxiao_pipeline_info{")
	want = `yunxiao_pipeline_info{deploy="false",group="backend,payments",pipeline_id="42",pipeline_name="backend-build",tags="",team="checkout"} 1`
	if after != want {
		t.Errorf("info after the reload:\n%s\nwant\n%s", after, want)
	}
}

// TestPhasesMoveOnlyWhileActive (issue 11): of queued, waiting and
// executing, only the phase the run is in moves with the clock.
func TestPhasesMoveOnlyWhileActive(t *testing.T) {
	cases := []struct {
		fixture string
		moving  string // the one that grows by the 60 s the clock moves
	}{
		{"queued.json", "yunxiao_pipeline_run_queued_seconds"},
		{"approval-waiting.json", "yunxiao_pipeline_run_waiting_seconds"},
		{"running.json", "yunxiao_pipeline_run_executing_seconds"},
		{"success.json", ""},
	}
	names := []string{"yunxiao_pipeline_run_queued_seconds", "yunxiao_pipeline_run_waiting_seconds", "yunxiao_pipeline_run_executing_seconds"}
	for _, tc := range cases {
		e := newTestEnv(t, "  - id: 42\n    name: p\n")
		e.pinFixture(42, tc.fixture)
		e.refresh()
		value := func(name string) float64 {
			for _, mf := range e.coll.Families() {
				if mf.GetName() == name {
					return mf.Metric[0].GetGauge().GetValue()
				}
			}
			t.Fatalf("%s: %s not exported", tc.fixture, name)
			return 0
		}
		var first []float64
		for _, n := range names {
			first = append(first, value(n))
		}
		e.clock.Add(20 * time.Second) // within cache_ttl: the same snapshot, a later clock
		for i, n := range names {
			grew := value(n) - first[i]
			want := 0.0
			if n == tc.moving {
				want = 20
			}
			if grew != want {
				t.Errorf("%s: %s moved by %g s in 20 s, want %g", tc.fixture, n, grew, want)
			}
		}
	}
}
