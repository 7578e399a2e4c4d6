package collector

import (
	"context"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/go-kit/log"
	"github.com/go-kit/log/level"

	"github.com/yunxiao-exporter/yunxiao_exporter/config"
	"github.com/yunxiao-exporter/yunxiao_exporter/yunxiao"
)

// scriptAPI is an API whose answers a test sets step by step, and which
// records what it was asked.
type scriptAPI struct {
	mu       sync.Mutex
	latest   *yunxiao.PipelineRun
	runs     map[yunxiao.ID]*yunxiao.PipelineRun // by id, for GetPipelineRun
	listed   []yunxiao.RunSummary
	listErr  error
	sinces   []yunxiao.Millis // the startTime of every ListPipelineRuns
	lookups  []yunxiao.ID     // every GetPipelineRun
	checkErr error
	checks   int
}

func (a *scriptAPI) GetLatestPipelineRun(context.Context, int64) (*yunxiao.PipelineRun, error) {
	a.mu.Lock()
	defer a.mu.Unlock()
	return a.latest, nil
}

func (a *scriptAPI) GetPipelineRun(_ context.Context, _ int64, id yunxiao.ID) (*yunxiao.PipelineRun, error) {
	a.mu.Lock()
	defer a.mu.Unlock()
	a.lookups = append(a.lookups, id)
	if r := a.runs[id]; r != nil {
		return r, nil
	}
	return nil, &yunxiao.Error{Reason: yunxiao.ReasonNotFound, StatusCode: 404}
}

func (a *scriptAPI) GetPipeline(context.Context, int64) (*yunxiao.Pipeline, error) {
	return &yunxiao.Pipeline{Name: "p"}, nil
}

func (a *scriptAPI) ListPipelineRuns(_ context.Context, _ int64, since yunxiao.Millis) ([]yunxiao.RunSummary, error) {
	a.mu.Lock()
	defer a.mu.Unlock()
	a.sinces = append(a.sinces, since)
	var out []yunxiao.RunSummary
	for _, r := range a.listed {
		if r.StartTime >= since {
			out = append(out, r)
		}
	}
	return out, a.listErr
}

func (a *scriptAPI) ListPipelines(context.Context) ([]yunxiao.PipelineSummary, error) {
	return nil, nil
}

func (a *scriptAPI) CheckAPI(context.Context) error {
	a.mu.Lock()
	defer a.mu.Unlock()
	a.checks++
	return a.checkErr
}

// set changes a run everywhere the API shows it.
func (a *scriptAPI) set(run *yunxiao.PipelineRun, latest bool) {
	a.mu.Lock()
	defer a.mu.Unlock()
	if a.runs == nil {
		a.runs = map[yunxiao.ID]*yunxiao.PipelineRun{}
	}
	a.runs[run.PipelineRunID] = run
	if latest {
		a.latest = run
	}
	s := summaryOf(run)
	for i := range a.listed {
		if a.listed[i].PipelineRunID == run.PipelineRunID {
			a.listed[i] = s
			return
		}
	}
	a.listed = append(a.listed, s)
}

func newScriptEnv(t *testing.T, api *scriptAPI, extra string) (*Collector, *fakeClock, *syncBuffer) {
	t.Helper()
	clock := &fakeClock{t: testNow}
	logs := &syncBuffer{}
	c := New(Options{Now: clock.Now, Logger: level.NewFilter(log.NewLogfmtLogger(logs), level.AllowDebug())})
	t.Cleanup(c.Close)
	yml := "yunxiao:\n  endpoint: http://127.0.0.1:1\n  organization_id: o\n  token: pt-x\ncache_ttl: 30s\n" + extra + "pipelines:\n  - id: 5\n    name: p\n"
	cfg, err := config.Load([]byte(yml), "test.yml", config.LoadOptions{Getenv: func(string) string { return "" }})
	if err != nil {
		t.Fatal(err)
	}
	if err := c.SetAPI(api, cfg); err != nil {
		t.Fatal(err)
	}
	return c, clock, logs
}

func ms(t time.Time) yunxiao.Millis { return yunxiao.Millis(t.UnixMilli()) }

func scriptRun(id yunxiao.ID, status string, start, end time.Time) *yunxiao.PipelineRun {
	r := &yunxiao.PipelineRun{PipelineID: 5, PipelineRunID: id, Status: status, TriggerMode: 1, CreateTime: ms(start)}
	if !end.IsZero() {
		r.UpdateTime = ms(end)
	}
	return r
}

func refreshNow(c *Collector) {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	c.Refresh(ctx)
}

// lines returns the exposition lines of c that start with one of prefixes.
func lines(t *testing.T, c *Collector, prefixes ...string) string {
	t.Helper()
	var out []string
	for _, line := range strings.Split(exposition(t, c), "\n") {
		for _, p := range prefixes {
			if strings.HasPrefix(line, p) {
				out = append(out, line)
				break
			}
		}
	}
	return strings.Join(out, "\n")
}

// TestRunHistoryPendingRunCostsNoRelisting (issue 10 #7): a run waiting
// for approval while newer runs start and finish neither pins the listing
// window nor goes uncounted: it is looked up by id, and counted when it
// ends, however long it waited.
func TestRunHistoryPendingRunCostsNoRelisting(t *testing.T) {
	api := &scriptAPI{}
	t0 := testNow
	for i := 1; i <= 9; i++ { // finished before the exporter looked
		start := t0.Add(-time.Duration(20-i) * time.Hour)
		api.set(scriptRun(yunxiao.ID(i), "SUCCESS", start, start.Add(10*time.Minute)), false)
	}
	api.set(scriptRun(9, "FAIL", t0.Add(-11*time.Hour), t0.Add(-11*time.Hour+10*time.Minute)), false)
	waiting := t0.Add(-time.Hour)
	api.set(scriptRun(10, "WAITING", waiting, time.Time{}), true)
	c, clock, logs := newScriptEnv(t, api, "run_history: true\n")

	refreshNow(c) // first sight: seeds last finished (run 9, FAIL), counts nothing
	if got, want := lines(t, c, "yunxiao_pipeline_last_finished_run_status", "yunxiao_pipeline_last_successful_run_end"),
		`yunxiao_pipeline_last_finished_run_status{pipeline_id="5",pipeline_name="p",status="CANCELED"} 0
yunxiao_pipeline_last_finished_run_status{pipeline_id="5",pipeline_name="p",status="FAIL"} 1
yunxiao_pipeline_last_finished_run_status{pipeline_id="5",pipeline_name="p",status="SUCCESS"} 0
yunxiao_pipeline_last_successful_run_end_timestamp_seconds{pipeline_id="5",pipeline_name="p"} 1.7956518e+09`; got != want {
		t.Errorf("seeded:\n%s\nwant\n%s", got, want)
	}

	// Runs 11 and 12 start and finish while 10 still waits.
	for _, id := range []yunxiao.ID{11, 12} {
		clock.Add(30 * time.Second)
		start := clock.Now().Add(-20 * time.Second)
		api.set(scriptRun(id, "RUNNING", start, time.Time{}), true)
		refreshNow(c)
		clock.Add(30 * time.Second)
		api.set(scriptRun(id, "SUCCESS", start, start.Add(25*time.Second)), true)
		refreshNow(c)
	}
	// Ten more refreshes of waiting: each lists from the newest start, not
	// from run 10's, and looks run 10 up by id.
	for range 10 {
		clock.Add(30 * time.Second)
		refreshNow(c)
	}
	api.mu.Lock()
	for i, since := range api.sinces[1:] { // [0] is the seed
		if since <= ms(waiting) {
			t.Errorf("listing %d started at %d, back at the waiting run (%d)", i+1, since, ms(waiting))
		}
	}
	lookups := len(api.lookups)
	api.mu.Unlock()
	if lookups < 10 {
		t.Errorf("run 10 looked up %d times; want once per refresh while it is not the latest", lookups)
	}

	// Approved after 3 h; it finishes last, so it is the last finished run.
	clock.Add(3 * time.Hour)
	api.set(scriptRun(10, "SUCCESS", waiting, clock.Now().Add(-time.Minute)), false)
	refreshNow(c)
	if got, want := lines(t, c, `yunxiao_pipeline_runs_total{pipeline_id="5",pipeline_name="p",status="SUCCESS",trigger_mode="manual"}`,
		`yunxiao_pipeline_last_finished_run_status{pipeline_id="5",pipeline_name="p",status="SUCCESS"}`),
		`yunxiao_pipeline_last_finished_run_status{pipeline_id="5",pipeline_name="p",status="SUCCESS"} 1
yunxiao_pipeline_runs_total{pipeline_id="5",pipeline_name="p",status="SUCCESS",trigger_mode="manual"} 3`; got != want {
		t.Errorf("after approval:\n%s\nwant\n%s", got, want)
	}
	// Counted once: nothing more on later refreshes.
	clock.Add(30 * time.Second)
	refreshNow(c)
	if got := lines(t, c, `yunxiao_pipeline_runs_total{pipeline_id="5",pipeline_name="p",status="SUCCESS",trigger_mode="manual"}`); !strings.HasSuffix(got, " 3") {
		t.Errorf("counted again: %s", got)
	}
	if strings.Contains(logs.String(), "level=warn") {
		t.Errorf("warnings on a healthy history:\n%s", logs.String())
	}
}

// TestRunHistoryGapLoggedOnce (issue 10 #7): a listing cut at its page
// limit is logged once per episode, not on every refresh.
func TestRunHistoryGapLoggedOnce(t *testing.T) {
	api := &scriptAPI{}
	api.set(scriptRun(1, "SUCCESS", testNow.Add(-time.Hour), testNow.Add(-50*time.Minute)), true)
	c, clock, logs := newScriptEnv(t, api, "run_history: true\n")
	refreshNow(c)
	api.mu.Lock()
	api.listErr = yunxiao.ErrTooManyPages
	api.mu.Unlock()
	for range 5 {
		clock.Add(30 * time.Second)
		refreshNow(c)
	}
	if n := strings.Count(logs.String(), "too many runs since the last refresh"); n != 1 {
		t.Errorf("gap logged %d times over 5 refreshes, want 1", n)
	}
	api.mu.Lock()
	api.listErr = nil
	api.mu.Unlock()
	clock.Add(30 * time.Second)
	refreshNow(c)
	if !strings.Contains(logs.String(), "fit their page limit again") {
		t.Error("the end of the gap is not logged")
	}
}
