package e2e

// Scenarios of issue 10 under a real Prometheus 3: the exporter binary, the
// simulated Flow API scripted step by step, and the shipped alert rules
// with every duration scaled down, asserting which alerts are pending or
// firing, and which are not, at every evaluation.
//
// Run: CI=true go test -race -run Scenario -v ./e2e/
// Prometheus 3 is $YUNXIAO_PROMETHEUS3 or /root/go/prometheus-v3/prometheus
// (GOBIN=/root/go/prometheus-v3 go install
// github.com/prometheus/prometheus/cmd/prometheus@v0.316.0).

import (
	"fmt"
	"hash/fnv"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"
)

// scenarioTimeout bounds one scenario.
const scenarioTimeout = 3 * time.Minute

func TestScenario(t *testing.T) {
	promBin := lookPrometheus3(t)
	root, err := filepath.Abs("..")
	if err != nil {
		t.Fatal(err)
	}
	tools := &scenarioTools{prometheus: promBin, rules: scenarioRules(t)}
	tools.exporter = buildExporter(t, root)
	t.Logf("rules: %s; job %q; %+v", tools.rules.source, tools.rules.job, tools.rules.timing)
	begin := time.Now()
	t.Cleanup(func() { t.Logf("all scenarios took %s", time.Since(begin).Round(time.Second)) })

	// Every scenario at once, whatever -parallel says: they mostly wait
	// for Prometheus' clock, and each has its own Prometheus. (t.Run may be
	// called from several goroutines.)
	var wg sync.WaitGroup
	for _, sc := range []struct {
		name string
		run  func(*testing.T, *scenarioTools)
	}{
		{"01_partial_outage", scenarioPartialOutage},
		{"01b_partial_outage_404_and_timeout", scenarioPartialOutageOthers},
		{"02_full_outage_and_recovery", scenarioFullOutage},
		{"03_exporter_restart", scenarioRestart},
		{"04_missed_scrape", scenarioMissedScrape},
		{"05_reshard_2_to_3", scenarioReshard},
		{"06_ha_pair", scenarioHAPair},
		{"07_approval_wait_then_run", scenarioApproval},
		{"08_failed_pipeline_rerun", scenarioRerun},
		{"09_first_failure_after_startup", scenarioFirstFailure},
		{"10_empty_shard", scenarioEmptyShard},
	} {
		wg.Add(1)
		go func() {
			defer wg.Done()
			t.Run(sc.name, func(t *testing.T) {
				start := time.Now()
				defer func() { t.Logf("%s took %s", sc.name, time.Since(start).Round(time.Second)) }()
				sc.run(t, tools)
			})
		}()
	}
	wg.Wait()
}

// buildExporter builds the binary once ($YUNXIAO_E2E_EXPORTER names a
// prebuilt one instead).
func buildExporter(t *testing.T, root string) string {
	t.Helper()
	if bin := os.Getenv("YUNXIAO_E2E_EXPORTER"); bin != "" {
		return bin
	}
	goBin := lookTool(t, "go")
	bin := filepath.Join(t.TempDir(), "yunxiao_exporter")
	build := exec.Command(goBin, "build", "-o", bin, ".")
	build.Dir = root
	if out, err := build.CombinedOutput(); err != nil {
		t.Fatalf("go build: %v\n%s", err, out)
	}
	return bin
}

func confs(runHistory bool, ids ...int64) []pipelineConf {
	out := make([]pipelineConf, 0, len(ids))
	for _, id := range ids {
		out = append(out, pipelineConf{id: id, name: fmt.Sprintf("pipeline-%d", id), runHistory: runHistory})
	}
	return out
}

func pids(ids ...int64) []string {
	out := make([]string, 0, len(ids))
	for _, id := range ids {
		out = append(out, pid(id))
	}
	return out
}

func maxDur(ds ...time.Duration) time.Duration {
	m := time.Duration(0)
	for _, d := range ds {
		m = max(m, d)
	}
	return m
}

// upAlways asserts that the exporter at instance reported yunxiao_up, and
// only 1, over the last d.
func (e *env) upAlways(instance string, d time.Duration) {
	e.t.Helper()
	window := fmt.Sprintf("%dms", d.Milliseconds())
	sel := fmt.Sprintf(`yunxiao_up{instance=%q}`, instance)
	n := e.mustQuery(fmt.Sprintf(`count_over_time(%s[%s])`, sel, window))
	if len(n) == 0 {
		e.t.Errorf("%s: no sample in the last %s; want it present and 1", sel, d)
		return
	}
	if low := e.mustQuery(fmt.Sprintf(`min_over_time(%s[%s])`, sel, window)); len(low) == 0 || low[0].float() != 1 {
		e.t.Errorf("%s fell to %s in the last %s (%s samples); want 1 throughout", sel, fmtValues(low), d, fmtValues(n))
	}
}

// 1. Partial outage: one pipeline answers 500, four are healthy. The API as
// a whole is fine: yunxiao_up stays 1, YunxiaoApiDown stays quiet, and
// YunxiaoPipelineFetchFailing fires for that pipeline alone.
func scenarioPartialOutage(t *testing.T, tools *scenarioTools) {
	tm := tools.rules.timing
	e := newEnv(t, tools, scenarioTimeout)
	now := time.Now()
	healthy := []int64{1101, 1102, 1103, 1104}
	const broken = 1105
	for i, id := range healthy {
		e.pinRuns(id, finishedRun(int64(10+i), "SUCCESS", now.Add(-10*time.Minute)))
	}
	e.failWith(broken, 500)
	x := e.startExporter("exporter", e.writeConfig("exporter", confs(false, append(healthy, broken)...), ""))
	e.setTargets(x)
	scraped := time.Now()

	e.waitAlert(alertFetchFailing, pid(broken), "firing")
	// Give YunxiaoApiDown its `for` and more, from the first scrape on.
	e.observe(time.Until(scraped.Add(tm.apiDownFor + 3*time.Second)))

	e.upAlways(x.instance(), time.Since(scraped))
	e.checkNever(e.start, alertAPIDown, pendingOrFiring)
	e.checkNever(e.start, alertFetchFailing, pendingOrFiring, pids(healthy...)...)
	e.checkNever(e.start, alertDataStale, pendingOrFiring)
	e.checkOnly(alertFetchFailing, pid(broken))
	e.checkAllowed(e.scraped, alertFetchFailing+"{"+pid(broken)+"}")
}

// 1b. Partial outage by the other answers issue 10 names: one pipeline
// the API does not know (404) and one whose requests time out. Neither is
// the API being down.
func scenarioPartialOutageOthers(t *testing.T, tools *scenarioTools) {
	tm := tools.rules.timing
	e := newEnv(t, tools, scenarioTimeout)
	now := time.Now()
	healthy := []int64{1151, 1152, 1153}
	const gone, slow = 1154, 1155
	for i, id := range healthy {
		e.pinRuns(id, finishedRun(int64(10+i), "SUCCESS", now.Add(-10*time.Minute)))
	}
	e.missing(gone)
	e.hang(slow)
	x := e.startExporter("exporter", e.writeConfig("exporter", confs(false, append(healthy, gone, slow)...), ""))
	e.setTargets(x)
	scraped := time.Now()

	e.waitAlert(alertFetchFailing, pid(gone), "firing")
	e.waitAlert(alertFetchFailing, pid(slow), "firing")
	e.observe(time.Until(scraped.Add(tm.apiDownFor + 3*time.Second)))

	e.upAlways(x.instance(), time.Since(scraped))
	e.checkNever(e.start, alertAPIDown, pendingOrFiring)
	e.checkNever(e.start, alertFetchFailing, pendingOrFiring, pids(healthy...)...)
	e.checkOnly(alertFetchFailing, pid(gone), pid(slow))
	e.checkAllowed(e.scraped, fmt.Sprintf("%s{%d,%d}", alertFetchFailing, gone, slow))
}

// 2. Full outage and recovery: every request answers 502, then the API
// refuses connections. YunxiaoApiDown fires; the per-pipeline FetchFailing
// and DataStale are held back however long it lasts. On recovery, with
// the pipelines re-fetched slowly, no DataStale storm.
func scenarioFullOutage(t *testing.T, tools *scenarioTools) {
	tm := tools.rules.timing
	e := newEnv(t, tools, scenarioTimeout)
	now := time.Now()
	ids := []int64{1201, 1202, 1203, 1204, 1205}
	for i, id := range ids {
		e.pinRuns(id, finishedRun(int64(10+i), "SUCCESS", now.Add(-10*time.Minute)))
	}
	x := e.startExporter("exporter", e.writeConfig("exporter", confs(false, ids...), ""))
	e.setTargets(x)
	e.waitQuery("every pipeline fetched and the API up", `count(yunxiao_pipeline_up == 1) == 5 and on() (yunxiao_up == 1)`,
		func(v []promValue) bool { return len(v) == 1 })
	e.observe(2 * time.Second) // the rules see the healthy state

	outage := time.Now()
	e.api.fail(502)
	down := e.waitAlert(alertAPIDown, "", "firing")
	firingAt := time.Now()
	t.Logf("YunxiaoApiDown fired %s after the outage began", firingAt.Sub(outage).Round(100*time.Millisecond))
	e.api.refuse()
	e.api.fail(0) // nothing gets through anyway: connection refused
	// Keep the API down until FetchFailing's `for` and DataStale's
	// threshold have both passed: held back, neither may fire.
	e.observe(time.Until(outage.Add(maxDur(tm.fetchFailingFor, tm.staleAfter) + 3*time.Second)))
	e.checkNever(outage, alertFetchFailing, []string{"firing"})
	e.checkNever(firingAt, alertFetchFailing, pendingOrFiring)
	e.checkNever(outage, alertDataStale, pendingOrFiring)
	e.checkSteady(firingAt, alertAPIDown, "", down)

	staleSel := fmt.Sprintf(`time() - yunxiao_pipeline_last_fetch_success_timestamp_seconds > %g`, tm.staleAfter.Seconds())
	if stale := e.mustQuery(staleSel); len(stale) != len(ids) {
		t.Errorf("before recovery, %d pipelines have data older than DataStale's threshold, want all %d (else recovery proves nothing): %s\n  %s",
			len(stale), len(ids), fmtValues(stale), staleSel)
	}

	// Recovery: the probe answers at once, each pipeline only after 3 s,
	// as when a rate limit spreads the re-fetch of many pipelines.
	e.api.slow(3 * time.Second)
	recovered := time.Now()
	e.api.accept()
	e.waitQuery("every pipeline re-fetched", `count(yunxiao_pipeline_up == 1) == 5`, func(v []promValue) bool { return len(v) == 1 })
	refetched := time.Now()
	t.Logf("every pipeline re-fetched %s after recovery", refetched.Sub(recovered).Round(100*time.Millisecond))
	e.waitNoAlert(alertAPIDown, "")
	e.observe(3 * time.Second)
	e.checkNever(recovered, alertDataStale, pendingOrFiring)
	e.checkNever(recovered, alertFetchFailing, []string{"firing"})
	e.checkAllowed(e.scraped, alertAPIDown)
}

// 3. Exporter restart as rollouts do it, each time on another address, so
// another instance: first recreated (the old process stops, then the new
// one starts), then rolled with a surge (the new one is scraped beside the
// old one before the old one goes). A firing YunxiaoPipelineRunFailed stays
// one alert, still firing, never re-fired; each new process's counters are
// born at 0.
func scenarioRestart(t *testing.T, tools *scenarioTools) {
	tm := tools.rules.timing
	e := newEnv(t, tools, scenarioTimeout)
	now := time.Now()
	const failed, green = 1301, 1302
	e.pinRuns(failed, finishedRun(21, "FAIL", now.Add(-10*time.Minute)), finishedRun(20, "SUCCESS", now.Add(-time.Hour)))
	e.pinRuns(green, finishedRun(31, "SUCCESS", now.Add(-10*time.Minute)))
	cfg := e.writeConfig("exporter", confs(true, failed, green), "")
	e.evidence(fmt.Sprintf(`yunxiao_pipeline_last_finished_run_status{pipeline_id="%d"}`, failed), "up")
	a := e.startExporter("first", cfg)
	e.setTargets(a)
	fired := e.waitAlert(alertRunFailed, pid(failed), "firing")
	failedSel := fmt.Sprintf(`yunxiao_pipeline_last_finished_run_status{pipeline_id="%d",status="FAIL"}`, failed)
	exportsFailed := func(x *exporter) {
		e.waitQuery("the new instance to export the failed pipeline as last finished FAIL",
			fmt.Sprintf(`yunxiao_pipeline_last_finished_run_status{instance=%q,pipeline_id="%d",status="FAIL"} == 1`, x.instance(), failed),
			func(v []promValue) bool { return len(v) == 1 })
	}

	// Recreate.
	from := time.Now()
	a.stop()
	b := e.startExporter("recreated", cfg)
	e.setTargets(b)
	exportsFailed(b)
	e.observe(maxDur(tm.gap, tm.keepFiring) + 3*time.Second)
	t.Logf("recreate: no sample of the failed pipeline for %s (the rules carry values across %s)",
		e.largestGap(failedSel, time.Since(from)+2*time.Second), tm.gap)
	e.checkSteady(from, alertRunFailed, pid(failed), fired)

	// Surge: c is scraped beside b, then b goes.
	surge := time.Now()
	c := e.startExporter("surged", cfg)
	e.setTargets(b, c)
	exportsFailed(c)
	e.setTargets(c)
	b.stop()
	e.observe(maxDur(tm.gap, tm.keepFiring) + 3*time.Second)
	e.checkSteady(surge, alertRunFailed, pid(failed), fired)
	e.checkNever(e.start, alertRunFailed, pendingOrFiring, pid(green))

	// Born at 0: the first sample of each counter of a new process is 0,
	// and every fetch error reason and the run history's status x trigger
	// mode grid exist from its first scrape.
	for _, x := range []*exporter{b, c} {
		for _, m := range []struct {
			metric string
			per    int
		}{{"yunxiao_pipeline_fetch_errors_total", 13}, {"yunxiao_pipeline_runs_total", 15}} {
			series := e.rangeSelect(fmt.Sprintf(`%s{instance=%q}[5m]`, m.metric, x.instance()))
			perPipeline := map[string]int{}
			for _, s := range series {
				perPipeline[s.Metric["pipeline_id"]]++
				if len(s.Values) == 0 {
					continue
				}
				if first := fmt.Sprint(s.Values[0][1]); first != "0" {
					t.Errorf("%s%v: first sample %s in process %s, want 0 (born at 0)", m.metric, s.Metric, first, x.name)
				}
			}
			for _, id := range []int64{failed, green} {
				if n := perPipeline[pid(id)]; n < m.per {
					t.Errorf("%s{pipeline_id=%q}: %d series in process %s, want at least %d born at 0", m.metric, pid(id), n, x.name, m.per)
				}
			}
		}
	}
	// A stopped exporter stays a target until service discovery catches
	// up (up to 5 s, which the scaled `for` of YunxiaoExporterDown does not
	// outlast): it may be down, the others never.
	e.checkAllowed(e.scraped, alertRunFailed+"{"+pid(failed)+"}", alertExporterDown+"@"+a.instance()+","+b.instance())
}

// 4. Missed scrapes: the exporter is unreachable for two scrape intervals
// and comes back on the same address. No alert resolves and fires again.
func scenarioMissedScrape(t *testing.T, tools *scenarioTools) {
	tm := tools.rules.timing
	e := newEnv(t, tools, scenarioTimeout)
	now := time.Now()
	const failed, broken, stuck, waiting, green = 1401, 1402, 1403, 1404, 1405
	long := maxDur(3*time.Hour, 3*tm.stuckAfter)
	e.pinRuns(failed, finishedRun(41, "FAIL", now.Add(-10*time.Minute)))
	e.failWith(broken, 500)
	e.pinRuns(stuck, runningRun(43, now.Add(-long), now.Add(-long+time.Minute)))
	e.pinRuns(waiting, waitingRun(44, "WAITING", now.Add(-2*time.Hour)))
	e.pinRuns(green, finishedRun(45, "SUCCESS", now.Add(-10*time.Minute)))
	x := e.startExporter("exporter", e.writeConfig("exporter", confs(false, failed, broken, stuck, waiting, green), ""))
	e.setTargets(x)

	watched := map[string]string{alertRunFailed: pid(failed), alertFetchFailing: pid(broken), alertRunStuck: pid(stuck)}
	if tm.waitingFor <= time.Minute {
		watched[alertWaitingTooLong] = pid(waiting)
	} else {
		t.Logf("not watching %s: its `for` (%s) is too long for this test", alertWaitingTooLong, tm.waitingFor)
	}
	fired := map[string]alert{}
	for name, id := range watched {
		fired[name] = e.waitAlert(name, id, "firing")
	}

	from := time.Now()
	x.stop()
	missed := fmt.Sprintf(`count_over_time(up{instance=%q}[1m]) - sum_over_time(up{instance=%q}[1m]) >= 2`, x.instance(), x.instance())
	e.waitQuery("two missed scrapes", missed, func(v []promValue) bool { return len(v) == 1 })
	x.restart()
	back := time.Now()
	e.waitQuery("the restarted exporter to be scraped",
		fmt.Sprintf(`timestamp(yunxiao_pipeline_run_status{instance=%q,pipeline_id="%d",status="FAIL"}) > %d`, x.instance(), failed, back.Unix()),
		func(v []promValue) bool { return len(v) == 1 })
	e.observe(maxDur(tm.gap, 2*time.Second) + 3*time.Second)
	for _, id := range []int64{failed, broken} {
		t.Logf("missed scrapes: no yunxiao_pipeline_up of pipeline %d for %s (the rules carry values across %s)",
			id, e.largestGap(fmt.Sprintf(`yunxiao_pipeline_up{pipeline_id="%d"}`, id), time.Since(from)+2*time.Second), tm.gap)
	}
	for name, id := range watched {
		e.checkSteady(from, name, id, fired[name])
	}
	e.checkNever(e.start, alertExporterDown, []string{"firing"})
	e.checkAllowed(e.scraped, alertRunFailed+"{"+pid(failed)+"}", alertFetchFailing+"{"+pid(broken)+"}", alertRunStuck+"{"+pid(stuck)+"}",
		alertWaitingTooLong+"{"+pid(waiting)+"}")
}

// waitingRun is a run whose approval job has been WAITING since waitSince;
// the run's own status is status (WAITING, or RUNNING as some runs report).
func waitingRun(id int64, status string, waitSince time.Time) fRun {
	start := waitSince.Add(-5 * time.Minute)
	return fRun{id: id, status: status, create: start, stages: []fStage{
		{name: "Build", status: "SUCCESS", start: start, end: waitSince, jobs: []fJob{{sign: "build", status: "SUCCESS", start: start, end: waitSince}}},
		{name: "Approval", status: "WAITING", start: waitSince, jobs: []fJob{{sign: "approve", status: "WAITING", start: waitSince}}},
		{name: "Deploy", status: "INIT"},
	}}
}

// approvedRun is waitingRun approved at approvedAt, deploying since.
func approvedRun(id int64, waitSince, approvedAt time.Time) fRun {
	start := waitSince.Add(-5 * time.Minute)
	return fRun{id: id, status: "RUNNING", create: start, stages: []fStage{
		{name: "Build", status: "SUCCESS", start: start, end: waitSince, jobs: []fJob{{sign: "build", status: "SUCCESS", start: start, end: waitSince}}},
		{name: "Approval", status: "SUCCESS", start: waitSince, end: approvedAt, jobs: []fJob{{sign: "approve", status: "SUCCESS", start: waitSince, end: approvedAt}}},
		{name: "Deploy", status: "RUNNING", start: approvedAt, jobs: []fJob{{sign: "deploy", status: "RUNNING", start: approvedAt}}},
	}}
}

// shardOf mirrors collector.ShardOf (FNV-1a of the decimal id, modulo
// total), which the exporter promises never to change; the scenarios check
// the exporters agree.
func shardOf(id int64, total int) int {
	if total <= 1 {
		return 0
	}
	h := fnv.New32a()
	_, _ = h.Write([]byte(strconv.FormatInt(id, 10)))
	return int(h.Sum32() % uint32(total))
}

// 5. Reshard 2 -> 3: two exporters with --shard.total=2 replaced by three
// with --shard.total=3 (the new ones scraped first, then the old ones
// stop). Every pipeline alert stays one, firing, never re-fired.
func scenarioReshard(t *testing.T, tools *scenarioTools) {
	tm := tools.rules.timing
	e := newEnv(t, tools, scenarioTimeout)
	now := time.Now()
	// Pipelines spread over every shard of 2 and of 3.
	var ids []int64
	covered := func() bool {
		seen := map[string]bool{}
		for _, id := range ids {
			seen[fmt.Sprintf("2/%d", shardOf(id, 2))] = true
			seen[fmt.Sprintf("3/%d", shardOf(id, 3))] = true
		}
		return len(seen) == 5
	}
	for id := int64(1501); len(ids) < 6 || !covered(); id++ {
		ids = append(ids, id)
	}
	broken := ids[len(ids)-1]
	failed := ids[:len(ids)-1]
	for i, id := range failed {
		e.pinRuns(id, finishedRun(int64(50+i), "FAIL", now.Add(-10*time.Minute)))
	}
	e.failWith(broken, 500)
	cfg := e.writeConfig("exporter", confs(false, ids...), "")
	shard := func(name string, index, total int) *exporter {
		return e.startExporter(name, cfg, fmt.Sprintf("--shard.index=%d", index), fmt.Sprintf("--shard.total=%d", total))
	}
	a0, a1 := shard("a0-of-2", 0, 2), shard("a1-of-2", 1, 2)
	e.setTargets(a0, a1)
	fired := map[string]alert{}
	for _, id := range failed {
		fired[pid(id)] = e.waitAlert(alertRunFailed, pid(id), "firing")
	}
	brokenFired := e.waitAlert(alertFetchFailing, pid(broken), "firing")

	from := time.Now()
	b0, b1, b2 := shard("b0-of-3", 0, 3), shard("b1-of-3", 1, 3), shard("b2-of-3", 2, 3)
	e.setTargets(a0, a1, b0, b1, b2)
	a0.stop()
	a1.stop()
	e.waitQuery("a failed scrape of each old exporter",
		fmt.Sprintf(`up{instance=%q} == 0 or up{instance=%q} == 0`, a0.instance(), a1.instance()),
		func(v []promValue) bool { return len(v) == 2 })
	e.setTargets(b0, b1, b2)
	e.observe(maxDur(tm.gap, tm.keepFiring) + 3*time.Second)
	for _, id := range failed {
		e.checkSteady(from, alertRunFailed, pid(id), fired[pid(id)])
	}
	e.checkSteady(from, alertFetchFailing, pid(broken), brokenFired)
	// Each pipeline is exported by exactly one new shard.
	owners := e.mustQuery(`count by (pipeline_id) (yunxiao_pipeline_up)`)
	if len(owners) != len(ids) {
		t.Errorf("%d pipelines exported after the reshard, want %d: %s", len(owners), len(ids), fmtValues(owners))
	}
	for _, o := range owners {
		if o.float() != 1 {
			t.Errorf("pipeline %s exported by %v shards, want 1", o.Metric["pipeline_id"], o.float())
		}
	}
	// A stopped exporter stays a target until service discovery catches
	// up: it may be down, the others never.
	e.checkAllowed(e.scraped, alertRunFailed+"{"+strings.Join(pids(failed...), ",")+"}", alertFetchFailing+"{"+pid(broken)+"}",
		alertExporterDown+"@"+a0.instance()+","+a1.instance())
}

// 6. HA pair: two exporters watch the same pipelines, both scraped: one
// alert per pipeline.
func scenarioHAPair(t *testing.T, tools *scenarioTools) {
	tm := tools.rules.timing
	e := newEnv(t, tools, scenarioTimeout)
	now := time.Now()
	const failed, broken, stuck, green = 1601, 1602, 1603, 1604
	long := maxDur(3*time.Hour, 3*tm.stuckAfter)
	e.pinRuns(failed, finishedRun(61, "FAIL", now.Add(-10*time.Minute)))
	e.failWith(broken, 500)
	e.pinRuns(stuck, runningRun(63, now.Add(-long), now.Add(-long+time.Minute)))
	e.pinRuns(green, finishedRun(64, "SUCCESS", now.Add(-10*time.Minute)))
	cfg := e.writeConfig("exporter", confs(false, failed, broken, stuck, green), "")
	a, b := e.startExporter("a", cfg), e.startExporter("b", cfg)
	e.setTargets(a, b)
	e.waitAlert(alertRunFailed, pid(failed), "firing")
	e.waitAlert(alertFetchFailing, pid(broken), "firing")
	e.waitAlert(alertRunStuck, pid(stuck), "firing")
	e.observe(3 * time.Second)
	e.checkOnly(alertRunFailed, pid(failed))
	e.checkOnly(alertFetchFailing, pid(broken))
	e.checkOnly(alertRunStuck, pid(stuck))
	for _, name := range []string{alertRunFailed, alertFetchFailing, alertRunStuck, alertDataStale, alertWaitingTooLong} {
		e.checkNever(e.start, name, pendingOrFiring, pid(green))
	}
	e.checkAllowed(e.scraped, alertRunFailed+"{"+pid(failed)+"}", alertFetchFailing+"{"+pid(broken)+"}", alertRunStuck+"{"+pid(stuck)+"}")
}

// 7. Approval wait then run: a run waits at an approval gate for longer
// than the stuck threshold, then is approved and runs. YunxiaoPipelineRunStuck
// never goes pending or firing; a genuinely stuck run beside it does fire.
func scenarioApproval(t *testing.T, tools *scenarioTools) {
	tm := tools.rules.timing
	e := newEnv(t, tools, scenarioTimeout)
	now := time.Now()
	const waitingStatus, runningStatus, stuck = 1701, 1702, 1703
	long := maxDur(3*time.Hour, 3*tm.stuckAfter)
	waitSince := now.Add(-long)
	e.pinRuns(waitingStatus, waitingRun(71, "WAITING", waitSince))
	e.pinRuns(runningStatus, waitingRun(72, "RUNNING", waitSince))
	e.pinRuns(stuck, runningRun(73, now.Add(-long), now.Add(-long+time.Minute)))
	x := e.startExporter("exporter", e.writeConfig("exporter", confs(false, waitingStatus, runningStatus, stuck), ""))
	e.setTargets(x)
	e.waitAlert(alertRunStuck, pid(stuck), "firing") // the rule does fire for a stuck run
	e.observe(tm.stuckFor + 2*time.Second)           // and would have for the waiting ones

	approved := time.Now()
	e.pinRuns(waitingStatus, approvedRun(71, waitSince, approved))
	e.pinRuns(runningStatus, approvedRun(72, waitSince, approved))
	e.waitQuery("both approved runs to be RUNNING",
		fmt.Sprintf(`count(yunxiao_pipeline_run_status{status="RUNNING",pipeline_id=~"%d|%d"} == 1) == 2`, waitingStatus, runningStatus),
		func(v []promValue) bool { return len(v) == 1 })
	// Watch long enough for a `for` to pass, not so long that the approved
	// runs become stuck for real.
	watch := tm.stuckFor + 3*time.Second
	if limit := tm.stuckAfter / 2; watch > limit {
		watch = limit
	}
	e.observe(time.Until(approved.Add(watch)))
	e.checkNever(e.start, alertRunStuck, pendingOrFiring, pid(waitingStatus), pid(runningStatus))
	e.checkOnly(alertRunStuck, pid(stuck))
	e.checkAllowed(e.scraped, alertRunStuck+"{"+pid(stuck)+"}", alertWaitingTooLong+"{"+pid(waitingStatus)+"}")
}

// 8. A failed pipeline rerun: FAIL, then a rerun RUNNING (still red: the
// alert keeps firing, longer than any keep_firing_for explains), then
// SUCCESS (resolved). With and without run history.
func scenarioRerun(t *testing.T, tools *scenarioTools) {
	tm := tools.rules.timing
	e := newEnv(t, tools, scenarioTimeout)
	now := time.Now()
	const plain, history = 1801, 1802
	e.pinRuns(plain, finishedRun(81, "FAIL", now.Add(-5*time.Minute)))
	e.pinRuns(history, finishedRun(91, "FAIL", now.Add(-5*time.Minute)), finishedRun(90, "SUCCESS", now.Add(-2*time.Hour)))
	x := e.startExporter("exporter", e.writeConfig("exporter",
		[]pipelineConf{{id: plain, name: "rerun-plain"}, {id: history, name: "rerun-history", runHistory: true}}, ""))
	e.setTargets(x)
	fired := map[int64]alert{plain: e.waitAlert(alertRunFailed, pid(plain), "firing"), history: e.waitAlert(alertRunFailed, pid(history), "firing")}

	rerun := time.Now()
	e.pinRuns(plain, runningRun(82, rerun, rerun), finishedRun(81, "FAIL", now.Add(-5*time.Minute)))
	e.pinRuns(history, runningRun(92, rerun, rerun), finishedRun(91, "FAIL", now.Add(-5*time.Minute)), finishedRun(90, "SUCCESS", now.Add(-2*time.Hour)))
	e.waitQuery("both reruns RUNNING", `count(yunxiao_pipeline_run_status{status="RUNNING"} == 1) == 2`,
		func(v []promValue) bool { return len(v) == 1 })
	e.observe(maxDur(tm.keepFiring, tm.gap) + 4*time.Second)
	for id, a := range fired {
		e.checkSteady(rerun, alertRunFailed, pid(id), a)
	}

	green := time.Now()
	pass := func(id int64) fRun {
		r := finishedRun(id, "SUCCESS", green)
		r.create, r.stages[0].start, r.stages[0].jobs[0].start = rerun, rerun, rerun
		return r
	}
	e.pinRuns(plain, pass(82), finishedRun(81, "FAIL", now.Add(-5*time.Minute)))
	e.pinRuns(history, pass(92), finishedRun(91, "FAIL", now.Add(-5*time.Minute)), finishedRun(90, "SUCCESS", now.Add(-2*time.Hour)))
	bound := maxDur(tm.keepFiring, tm.gap) + tm.runFailedFor + 10*time.Second
	for _, id := range []int64{plain, history} {
		id := id
		if !e.waitAtMost(time.Until(green.Add(bound)), func() bool {
			e.watch.sync()
			return len(e.watch.latest().find(alertRunFailed, pid(id))) == 0
		}) {
			t.Errorf("%s{pipeline_id=%q} still there %s after the rerun passed, want resolved: %s", alertRunFailed, pid(id), bound, e.watch.latest())
		}
	}
	e.checkAllowed(e.scraped, fmt.Sprintf("%s{%d,%d}", alertRunFailed, plain, history))
}

// 9. The first failure after start-up, with run history: the run counters
// exist at 0 before the first run, so increase() sees the first FAIL, and
// four FAIL and one SUCCESS make YunxiaoPipelineFailureRatioHigh fire.
func scenarioFirstFailure(t *testing.T, tools *scenarioTools) {
	tm := tools.rules.timing
	e := newEnv(t, tools, scenarioTimeout)
	const id = 1901
	e.pinRuns(id) // never ran
	x := e.startExporter("exporter", e.writeConfig("exporter", []pipelineConf{{id: id, name: "first-failure", runHistory: true}}, ""))
	e.setTargets(x)
	failSel := fmt.Sprintf(`yunxiao_pipeline_runs_total{pipeline_id="%d",status="FAIL",trigger_mode="manual"}`, id)
	if !e.waitAtMost(20*time.Second, func() bool {
		v, err := e.query(fmt.Sprintf(`count_over_time(%s[1m]) >= 2`, failSel))
		return err == nil && len(v) == 1
	}) {
		t.Errorf("%s: not exported before the first run (want it born at 0): %s", failSel, fmtValues(e.mustQuery(`yunxiao_pipeline_runs_total`)))
	}

	first := time.Now()
	run := func(n int64, status string, at time.Time) fRun {
		r := finishedRun(n, status, at)
		start := at.Add(-300 * time.Millisecond)
		r.create, r.stages[0].start, r.stages[0].jobs[0].start = start, start, start
		return r
	}
	r1 := run(1, "FAIL", first)
	e.pinRuns(id, r1)
	e.waitQuery("the first FAIL counted", fmt.Sprintf(`sum(yunxiao_pipeline_runs_total{pipeline_id="%d",status="FAIL"}) == 1`, id),
		func(v []promValue) bool { return len(v) == 1 })
	window := fmt.Sprintf("%dms", tm.ratioWindow.Milliseconds())
	incSel := fmt.Sprintf(`sum(increase(yunxiao_pipeline_runs_total{pipeline_id="%d",status="FAIL"}[%s]))`, id, window)
	var inc []promValue
	if !e.waitAtMost(5*time.Second, func() bool {
		var err error
		inc, err = e.query(incSel)
		return err == nil && len(inc) == 1 && inc[0].float() >= 0.9
	}) {
		t.Errorf("%s = %s, want about 1: increase() misses the first FAIL", incSel, fmtValues(inc))
	}

	runs := []fRun{r1}
	for n, status := range []string{"FAIL", "FAIL", "FAIL", "SUCCESS"} {
		runs = append([]fRun{run(int64(n+2), status, first.Add(time.Duration(n+1)*time.Second))}, runs...)
	}
	e.pinRuns(id, runs...)
	e.waitQuery("five runs counted", fmt.Sprintf(`sum(yunxiao_pipeline_runs_total{pipeline_id="%d"}) == 5`, id),
		func(v []promValue) bool { return len(v) == 1 })
	counted := time.Now()
	if !e.waitAtMost(tm.ratioFor+10*time.Second, func() bool {
		e.watch.sync()
		return len(e.watch.latest().find(alertFailureRatio, pid(id))) > 0 && e.watch.latest().find(alertFailureRatio, pid(id))[0].State == "firing"
	}) {
		all := e.mustQuery(fmt.Sprintf(`increase(yunxiao_pipeline_runs_total{pipeline_id="%d"}[%s]) > 0`, id, window))
		t.Errorf("%s not firing %s after 4 FAIL and 1 SUCCESS were counted; increase() per series: %s",
			alertFailureRatio, time.Since(counted).Round(time.Second), fmtValues(all))
	}
	e.checkOnly(alertFailureRatio, pid(id))
	// The first FAIL is the last finished run until run 5 passes; and a
	// pipeline whose history knows no success in the week it looked back
	// at, and that ran, has had no recent success until then.
	e.checkAllowed(e.scraped, alertFailureRatio+"{"+pid(id)+"}", alertRunFailed+"{"+pid(id)+"}", alertNoRecentSuccess+"{"+pid(id)+"}")
}

// 10. Empty shard: an exporter whose shard owns none of the configured
// pipelines, and one whose discovery found nothing, still say the API is
// up; YunxiaoApiDown stays quiet.
func scenarioEmptyShard(t *testing.T, tools *scenarioTools) {
	tm := tools.rules.timing
	e := newEnv(t, tools, scenarioTimeout)
	now := time.Now()
	var ids []int64
	for id := int64(2001); len(ids) < 3; id++ {
		if shardOf(id, 2) == 0 {
			ids = append(ids, id)
		}
	}
	for i, id := range ids {
		e.pinRuns(id, finishedRun(int64(100+i), "SUCCESS", now.Add(-10*time.Minute)))
	}
	empty := e.startExporter("shard-1-of-2", e.writeConfig("sharded", confs(false, ids...), ""), "--shard.index=1", "--shard.total=2")
	nothing := e.startExporter("discovery-found-nothing", e.writeConfig("discovery", nil,
		"discovery:\n  enabled: true\n  refresh_interval: 5s\n  include: [\"no-pipeline-is-named-so\"]\n"))
	e.setTargets(empty, nothing)
	scraped := time.Now()
	e.observe(time.Until(scraped.Add(tm.apiDownFor + 3*time.Second)))
	for _, x := range []*exporter{empty, nothing} {
		e.upAlways(x.instance(), time.Since(scraped)-time.Second)
		if got := e.mustQuery(fmt.Sprintf(`yunxiao_pipeline_up{instance=%q}`, x.instance())); len(got) != 0 {
			t.Errorf("%s exports pipelines, want none: %s", x.name, fmtValues(got))
		}
	}
	e.checkNever(e.start, alertAPIDown, pendingOrFiring)
	e.checkAllowed(e.scraped)
}
