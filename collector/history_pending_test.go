package collector

import (
	"context"
	"fmt"
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

// restoreLines returns the time-to-restore histogram's count and sum.
func restoreLines(t *testing.T, c *Collector) string {
	t.Helper()
	return lines(t, c, "yunxiao_pipeline_restore_duration_seconds_count", "yunxiao_pipeline_restore_duration_seconds_sum")
}

func restoreWant(count int, sum float64) string {
	return fmt.Sprintf(`yunxiao_pipeline_restore_duration_seconds_sum{pipeline_id="5",pipeline_name="p"} %g
yunxiao_pipeline_restore_duration_seconds_count{pipeline_id="5",pipeline_name="p"} %d`, sum, count)
}

// finish adds a finished run to api as the latest, 10 minutes after the
// previous one, each taking 2 minutes; it returns the run's end.
func finish(api *scriptAPI, clock *fakeClock, id yunxiao.ID, status string) time.Time {
	clock.Add(10 * time.Minute)
	start := clock.Now().Add(-2 * time.Minute)
	api.set(scriptRun(id, status, start, clock.Now()), true)
	return clock.Now()
}

// TestTimeToRestoreExactlyOnce (issue 11): red from the end of the first
// FAIL after a SUCCESS until the end of the next SUCCESS, observed once,
// however many failures, scrapes, reloads or exporter restarts lie between.
func TestTimeToRestoreExactlyOnce(t *testing.T) {
	t.Run("several failures in a row, a reload among them", func(t *testing.T) {
		api := &scriptAPI{}
		api.set(scriptRun(1, "SUCCESS", testNow.Add(-time.Hour), testNow.Add(-50*time.Minute)), true)
		c, clock, _ := newScriptEnv(t, api, "run_history: true\n")
		refreshNow(c)
		redAt := finish(api, clock, 2, "FAIL")
		refreshNow(c)
		finish(api, clock, 3, "FAIL")
		refreshNow(c)
		// A reload keeps the history and its red spell.
		cfg, err := config.Load([]byte("yunxiao:\n  endpoint: http://127.0.0.1:1\n  organization_id: o\n  token: pt-x\ncache_ttl: 30s\nrun_history: true\npipelines:\n  - id: 5\n    name: p\n"), "test.yml", config.LoadOptions{Getenv: func(string) string { return "" }})
		if err != nil {
			t.Fatal(err)
		}
		if err := c.SetAPI(api, cfg); err != nil {
			t.Fatal(err)
		}
		finish(api, clock, 4, "CANCELED") // neither red nor green
		refreshNow(c)
		greenAt := finish(api, clock, 5, "SUCCESS")
		for range 3 {
			refreshNow(c)
			clock.Add(31 * time.Second)
		}
		if got, want := restoreLines(t, c), restoreWant(1, greenAt.Sub(redAt).Seconds()); got != want {
			t.Errorf("got\n%s\nwant\n%s", got, want)
		}
		// Green stays green: another SUCCESS observes nothing more.
		finish(api, clock, 6, "SUCCESS")
		refreshNow(c)
		if got, want := restoreLines(t, c), restoreWant(1, greenAt.Sub(redAt).Seconds()); got != want {
			t.Errorf("after another success:\n%s\nwant\n%s", got, want)
		}
	})
	t.Run("recovery across an exporter restart", func(t *testing.T) {
		api := &scriptAPI{}
		api.set(scriptRun(1, "SUCCESS", testNow.Add(-3*time.Hour), testNow.Add(-170*time.Minute)), true)
		api.set(scriptRun(2, "FAIL", testNow.Add(-2*time.Hour), testNow.Add(-110*time.Minute)), true)
		api.set(scriptRun(3, "SUCCESS", testNow.Add(-90*time.Minute), testNow.Add(-80*time.Minute)), true) // recovered before the restart
		redAt := testNow.Add(-20 * time.Minute)
		api.set(scriptRun(4, "FAIL", testNow.Add(-30*time.Minute), redAt), true)
		api.set(scriptRun(5, "FAIL", testNow.Add(-15*time.Minute), testNow.Add(-10*time.Minute)), true)
		// The restarted exporter's first sight: it learns it is red since run 4.
		c, clock, _ := newScriptEnv(t, api, "run_history: true\n")
		refreshNow(c)
		if got, want := restoreLines(t, c), restoreWant(0, 0); got != want {
			t.Errorf("at first sight (the recovery before the restart is not observed again):\n%s\nwant\n%s", got, want)
		}
		greenAt := finish(api, clock, 6, "SUCCESS")
		refreshNow(c)
		if got, want := restoreLines(t, c), restoreWant(1, greenAt.Sub(redAt).Seconds()); got != want {
			t.Errorf("after the recovery:\n%s\nwant\n%s", got, want)
		}
	})
	t.Run("never green: no restore to measure", func(t *testing.T) {
		api := &scriptAPI{}
		api.set(scriptRun(1, "FAIL", testNow.Add(-time.Hour), testNow.Add(-50*time.Minute)), true)
		c, clock, _ := newScriptEnv(t, api, "run_history: true\n")
		refreshNow(c)
		finish(api, clock, 2, "SUCCESS")
		refreshNow(c)
		if got, want := restoreLines(t, c), restoreWant(0, 0); got != want {
			t.Errorf("a first success after failures with no earlier success:\n%s\nwant\n%s", got, want)
		}
	})
}

// TestPhaseHistograms (issue 11): with run history, each counted run's
// queued and executing time is observed once, from its details.
func TestPhaseHistograms(t *testing.T) {
	api := &scriptAPI{}
	api.set(scriptRun(1, "SUCCESS", testNow.Add(-time.Hour), testNow.Add(-50*time.Minute)), true)
	c, clock, _ := newScriptEnv(t, api, "run_history: true\n")
	refreshNow(c)
	clock.Add(10 * time.Minute)
	start := clock.Now().Add(-5 * time.Minute)
	run := scriptRun(2, "SUCCESS", start, clock.Now())
	run.Stages = []yunxiao.Stage{{Index: "0", Name: "s", StageInfo: &yunxiao.StageInfo{Status: "SUCCESS", StartTime: ms(start.Add(time.Minute)), EndTime: ms(clock.Now()),
		Jobs: []yunxiao.Job{{ID: 1, Status: "SUCCESS", StartTime: ms(start.Add(time.Minute)), EndTime: ms(clock.Now())}}}}}
	api.set(run, true)
	for range 3 {
		refreshNow(c)
		clock.Add(31 * time.Second)
	}
	want := `yunxiao_pipeline_run_executing_duration_seconds_sum{pipeline_id="5",pipeline_name="p"} 240
yunxiao_pipeline_run_executing_duration_seconds_count{pipeline_id="5",pipeline_name="p"} 1
yunxiao_pipeline_run_queued_duration_seconds_sum{pipeline_id="5",pipeline_name="p"} 60
yunxiao_pipeline_run_queued_duration_seconds_count{pipeline_id="5",pipeline_name="p"} 1`
	if got := lines(t, c, "yunxiao_pipeline_run_executing_duration_seconds_sum", "yunxiao_pipeline_run_executing_duration_seconds_count",
		"yunxiao_pipeline_run_queued_duration_seconds_sum", "yunxiao_pipeline_run_queued_duration_seconds_count"); got != want {
		t.Errorf("got\n%s\nwant\n%s", got, want)
	}
}
