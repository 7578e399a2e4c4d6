package e2e

// The scenario harness: a scripted Flow API (flowsim behind a switch that
// can fail every request or refuse connections), exporters run as real
// subprocesses of the binary, and a real Prometheus whose targets come from
// an HTTP service discovery the test rewrites, so that a restart, an HA pair
// or a reshard is what Prometheus sees in production: instances appearing
// and disappearing. An alert watcher polls /api/v1/alerts and keeps every
// snapshot, so a scenario asserts what held at every evaluation, not only at
// the end.

import (
	"context"
	"encoding/json"
	"fmt"
	"math"
	"net"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/yunxiao-exporter/yunxiao_exporter/flowsim"
)

const scenarioOrg = "org-scenario"

// pollEvery is how often the harness polls Prometheus and the exporters.
const pollEvery = 250 * time.Millisecond

// waitLimit bounds one wait: longer than the longest scaled `for` plus a
// fetch and an evaluation, so that a broken scenario fails in time.
const waitLimit = 90 * time.Second

// scenarioTools are found once for every scenario.
type scenarioTools struct {
	exporter   string // the binary, built once
	prometheus string // Prometheus 3
	rules      ruleSet
}

// env is one scenario's world: its own Flow API, exporters and Prometheus.
type env struct {
	t     *testing.T
	ctx   context.Context
	tools *scenarioTools
	dir   string
	sim   *flowsim.Server
	api   *apiSwitch
	sd    *targetsSD
	prom  *promAPI
	watch *alertWatch
	start time.Time
	// scraped is when Prometheus first scraped an exporter of the scenario
	// (before it, YunxiaoExporterAbsent may be pending).
	scraped time.Time
}

func newEnv(t *testing.T, tools *scenarioTools, timeout time.Duration) *env {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	t.Cleanup(cancel)
	e := &env{t: t, ctx: ctx, tools: tools, dir: t.TempDir(), start: time.Now()}
	e.sim = flowsim.New(flowsim.Options{Token: token, OrganizationID: scenarioOrg})
	e.api = newAPISwitch(t, e.sim)
	writeFile(t, filepath.Join(e.dir, "token"), token+"\n")
	e.sd = newTargetsSD(t)
	e.startPrometheus()
	return e
}

// ---------------------------------------------------------------------------
// The Flow API: flowsim behind a switch.

// apiSwitch serves flowsim on a fixed 127.0.0.1 port and can make the whole
// API fail (an HTTP status for every request), refuse connections (the
// listener and every open connection closed), or answer per-pipeline
// requests slowly (a re-fetch after an outage that takes time).
type apiSwitch struct {
	t    *testing.T
	sim  *flowsim.Server
	addr string
	url  string

	mu     sync.Mutex
	status int           // non-zero: every request answers it
	delay  time.Duration // added to every per-pipeline request
	srv    *http.Server
}

func newAPISwitch(t *testing.T, sim *flowsim.Server) *apiSwitch {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	a := &apiSwitch{t: t, sim: sim, addr: ln.Addr().String()}
	a.url = "http://" + a.addr
	a.serve(ln)
	t.Cleanup(func() {
		a.mu.Lock()
		srv := a.srv
		a.mu.Unlock()
		if srv != nil {
			_ = srv.Close()
		}
	})
	return a
}

func (a *apiSwitch) serve(ln net.Listener) {
	srv := &http.Server{Handler: a, ReadHeaderTimeout: 10 * time.Second}
	a.mu.Lock()
	a.srv = srv
	a.mu.Unlock()
	go func() { _ = srv.Serve(ln) }()
}

func (a *apiSwitch) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	a.mu.Lock()
	status, delay := a.status, a.delay
	a.mu.Unlock()
	if status != 0 {
		w.Header().Set("Content-Type", "text/html")
		w.WriteHeader(status)
		fmt.Fprintf(w, "<html><body>%d %s (scenario outage)</body></html>", status, http.StatusText(status))
		return
	}
	// The probe (ListPipelines) answers at once; per-pipeline requests wait.
	if delay > 0 && strings.Contains(r.URL.Path, "/pipelines/") {
		timer := time.NewTimer(delay)
		select {
		case <-timer.C:
		case <-r.Context().Done():
			timer.Stop()
			return
		}
	}
	a.sim.ServeHTTP(w, r)
}

// fail makes every request answer status (0: back to normal).
func (a *apiSwitch) fail(status int) {
	a.mu.Lock()
	defer a.mu.Unlock()
	a.status = status
}

// slow delays every per-pipeline request by d.
func (a *apiSwitch) slow(d time.Duration) {
	a.mu.Lock()
	defer a.mu.Unlock()
	a.delay = d
}

// refuse closes the listener and every connection: connection refused.
func (a *apiSwitch) refuse() {
	a.mu.Lock()
	srv := a.srv
	a.srv = nil
	a.mu.Unlock()
	if srv != nil {
		_ = srv.Close()
	}
}

// accept listens again on the same address.
func (a *apiSwitch) accept() {
	a.t.Helper()
	var ln net.Listener
	var err error
	for i := 0; i < 50; i++ {
		if ln, err = net.Listen("tcp", a.addr); err == nil {
			break
		}
		time.Sleep(100 * time.Millisecond) // the port is being released
	}
	if err != nil {
		a.t.Fatalf("listen again on %s: %v", a.addr, err)
	}
	a.serve(ln)
}

// ---------------------------------------------------------------------------
// Scripted answers: run bodies as GetLatestPipelineRun and ListPipelineRuns
// give them.

type fJob struct {
	sign, status string
	start, end   time.Time
}

type fStage struct {
	name, status string
	start, end   time.Time
	jobs         []fJob
}

type fRun struct {
	id          int64
	status      string
	trigger     int // 1 manual, 2 scheduled, 3 push, 5 pipeline, 6 webhook
	create, end time.Time
	stages      []fStage
}

func msOf(t time.Time) int64 {
	if t.IsZero() {
		return 0
	}
	return t.UnixMilli()
}

func (r fRun) body(pipelineID int64) []byte {
	stages := make([]map[string]any, 0, len(r.stages))
	for i, s := range r.stages {
		jobs := make([]map[string]any, 0, len(s.jobs))
		for j, jb := range s.jobs {
			jobs = append(jobs, map[string]any{"id": r.id*100 + int64(i*10+j), "jobSign": jb.sign, "name": jb.sign,
				"status": jb.status, "startTime": msOf(jb.start), "endTime": msOf(jb.end)})
		}
		stages = append(stages, map[string]any{"index": fmt.Sprintf("Group0-Stage%d", i), "name": s.name,
			"stageInfo": map[string]any{"name": s.name, "status": s.status, "startTime": msOf(s.start), "endTime": msOf(s.end), "jobs": jobs}})
	}
	update := r.end
	if update.IsZero() {
		update = r.create
	}
	trigger := r.trigger
	if trigger == 0 {
		trigger = 1
	}
	b, _ := json.Marshal(map[string]any{"pipelineId": pipelineID, "pipelineRunId": r.id, "status": r.status, "triggerMode": trigger,
		"createTime": msOf(r.create), "updateTime": msOf(update), "stages": stages})
	return b
}

func (r fRun) summary() map[string]any {
	trigger := r.trigger
	if trigger == 0 {
		trigger = 1
	}
	return map[string]any{"pipelineRunId": r.id, "status": r.status, "triggerMode": trigger,
		"startTime": msOf(r.create), "endTime": msOf(r.end), "creatorAccountId": "1"}
}

// finishedRun is a one-stage run that ended status at end.
func finishedRun(id int64, status string, end time.Time) fRun {
	start := end.Add(-5 * time.Minute)
	return fRun{id: id, status: status, create: start, end: end, stages: []fStage{{name: "Build", status: status, start: start, end: end,
		jobs: []fJob{{sign: "build", status: status, start: start, end: end}}}}}
}

// runningRun is a run RUNNING since start whose last job started at progress.
func runningRun(id int64, start, progress time.Time) fRun {
	r := fRun{id: id, status: "RUNNING", create: start}
	if progress.After(start) {
		r.stages = append(r.stages, fStage{name: "Build", status: "SUCCESS", start: start, end: progress,
			jobs: []fJob{{sign: "build", status: "SUCCESS", start: start, end: progress}}})
	}
	r.stages = append(r.stages, fStage{name: "Test", status: "RUNNING", start: progress,
		jobs: []fJob{{sign: "test", status: "RUNNING", start: progress}}})
	return r
}

// pinRuns makes the API answer runs for pipeline id: the first is the
// latest (GetLatestPipelineRun), all of them newest first are the listing
// (ListPipelineRuns). flowsim's pinned answers ignore the listing's query,
// so the listing is the same whatever startTime the exporter asks for.
func (e *env) pinRuns(id int64, runs ...fRun) {
	if len(runs) == 0 {
		e.sim.PinJSON(flowsim.EndpointLatestRun, id, []byte("null"))
		e.sim.PinJSON(flowsim.EndpointListRuns, id, []byte("[]"))
		return
	}
	e.sim.PinJSON(flowsim.EndpointLatestRun, id, runs[0].body(id))
	list := make([]map[string]any, 0, len(runs))
	for _, r := range runs {
		list = append(list, r.summary())
	}
	b, _ := json.Marshal(list)
	e.sim.Pin(flowsim.EndpointListRuns, id, flowsim.Response{Status: http.StatusOK, Body: b, Header: http.Header{
		"Content-Type": {"application/json"}, "X-Total": {strconv.Itoa(len(runs))}, "X-Total-Pages": {"1"}, "X-Page": {"1"}}})
}

// failWith makes every request about pipeline id answer status.
func (e *env) failWith(id int64, status int) {
	e.sim.Fault(id, func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(status)
		fmt.Fprintf(w, `{"errorCode":"SystemError","errorMessage":"scenario: pipeline %d answers %d","requestId":"scenario"}`, id, status)
	})
}

// hang makes every request about pipeline id go unanswered until the
// client gives up (its timeout).
func (e *env) hang(id int64) {
	e.sim.Fault(id, func(_ http.ResponseWriter, r *http.Request) { <-r.Context().Done() })
}

// missing makes pipeline id unknown to the API: 404 for every request.
func (e *env) missing(id int64) {
	e.sim.Fault(id, func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(http.StatusNotFound)
		fmt.Fprint(w, `{"errorCode":"NotFound","errorMessage":"pipeline not found","requestId":"scenario"}`)
	})
}

// ---------------------------------------------------------------------------
// Exporters.

type pipelineConf struct {
	id         int64
	name       string
	runHistory bool
}

// writeConfig writes an exporter config watching pipelines; extra is
// appended as is (e.g. a discovery section).
func (e *env) writeConfig(name string, pipelines []pipelineConf, extra string) string {
	var b strings.Builder
	fmt.Fprintf(&b, "yunxiao:\n  endpoint: %s\n  organization_id: %s\n  token_file: %s\n  rate_limit: 0\n  timeout: 5s\ncache_ttl: 1s\n",
		e.api.url, scenarioOrg, filepath.Join(e.dir, "token"))
	b.WriteString(extra)
	if len(pipelines) > 0 {
		b.WriteString("pipelines:\n")
	}
	for _, p := range pipelines {
		fmt.Fprintf(&b, "  - id: %d\n", p.id)
		if p.name != "" {
			fmt.Fprintf(&b, "    name: %s\n", p.name)
		}
		if p.runHistory {
			b.WriteString("    run_history: true\n")
		}
	}
	path := filepath.Join(e.dir, name+".yml")
	writeFile(e.t, path, b.String())
	return path
}

// exporter is one exporter process.
type exporter struct {
	e    *env
	name string
	addr string
	args []string

	mu   sync.Mutex
	cmd  *exec.Cmd
	out  *syncWriter
	done chan struct{}
	logs []string // output of earlier processes on this address
}

// startExporter runs the binary on a new 127.0.0.1 port and waits until it
// is ready; the process is stopped when the test ends. A port another
// process took between being picked and being bound is given up for
// another.
func (e *env) startExporter(name, configPath string, flags ...string) *exporter {
	e.t.Helper()
	x := &exporter{e: e, name: name}
	e.t.Cleanup(func() {
		x.stop()
		if e.t.Failed() {
			x.mu.Lock()
			logs := strings.Join(x.logs, "--- restarted on the same address ---\n")
			x.mu.Unlock()
			e.t.Logf("exporter %s (%s) output:\n%s", x.name, x.addr, tail(logs, 60))
		}
	})
	for attempt := 1; ; attempt++ {
		x.addr = uniqueAddr(e.t)
		x.args = append([]string{"--config.file=" + configPath, "--web.listen-address=" + x.addr, "--log.level=debug"}, flags...)
		if x.run() {
			return x
		}
		if attempt == 3 {
			e.t.Fatalf("exporter %s could not listen on a free port three times", name)
		}
	}
}

// run starts the process on x.addr and waits until it is ready. It reports
// false when the address was taken (the process exited saying so).
func (x *exporter) run() bool {
	t := x.e.t
	t.Helper()
	cmd := exec.Command(x.e.tools.exporter, x.args...)
	out := &syncWriter{}
	cmd.Stdout, cmd.Stderr = out, out
	if err := cmd.Start(); err != nil {
		t.Fatalf("start exporter %s: %v", x.name, err)
	}
	done := make(chan struct{})
	go func() { _ = cmd.Wait(); close(done) }()
	x.mu.Lock()
	x.cmd, x.out, x.done = cmd, out, done
	x.mu.Unlock()
	taken := false
	x.e.waitUntil(fmt.Sprintf("exporter %s to be ready on %s", x.name, x.addr), func() bool {
		select {
		case <-done:
			if strings.Contains(out.String(), "address already in use") {
				taken = true
				return true
			}
			t.Fatalf("exporter %s exited:\n%s", x.name, out.String())
		default:
		}
		// Ready, and it is this process that listens there.
		if !strings.Contains(out.String(), "Listening on") {
			return false
		}
		resp, err := http.Get("http://" + x.addr + "/-/ready")
		if err != nil {
			return false
		}
		resp.Body.Close()
		return resp.StatusCode == http.StatusOK
	})
	if taken {
		x.mu.Lock()
		x.cmd = nil
		x.mu.Unlock()
		t.Logf("exporter %s: %s was taken; trying another port", x.name, x.addr)
	}
	return !taken
}

// stop ends the process (SIGINT, then SIGKILL after 10 s).
func (x *exporter) stop() {
	x.mu.Lock()
	cmd, done := x.cmd, x.done
	x.cmd = nil
	if x.out != nil && cmd != nil {
		x.logs = append(x.logs, x.out.String())
	}
	x.mu.Unlock()
	if cmd == nil {
		return
	}
	begin := time.Now()
	_ = cmd.Process.Signal(os.Interrupt)
	select {
	case <-done:
	case <-time.After(10 * time.Second):
		_ = cmd.Process.Kill()
		<-done
	}
	if took := time.Since(begin); took > time.Second {
		x.e.t.Logf("exporter %s took %s to stop", x.name, took.Round(10*time.Millisecond))
	}
}

// restart stops the process and starts it again on the same address.
func (x *exporter) restart() {
	x.stop()
	if !x.run() {
		x.e.t.Fatalf("exporter %s: its own address %s was taken while it was down", x.name, x.addr)
	}
}

// instance is the instance label Prometheus gives this exporter.
func (x *exporter) instance() string { return x.addr }

// ---------------------------------------------------------------------------
// Prometheus, with targets from an HTTP service discovery.

type targetsSD struct {
	mu      sync.Mutex
	targets []string
	url     string
}

func newTargetsSD(t *testing.T) *targetsSD {
	sd := &targetsSD{}
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		sd.mu.Lock()
		targets := append([]string{}, sd.targets...)
		sd.mu.Unlock()
		groups := []map[string]any{}
		if len(targets) > 0 {
			groups = append(groups, map[string]any{"targets": targets, "labels": map[string]string{}})
		}
		w.Header().Set("Content-Type", "application/json")
		_ = json.NewEncoder(w).Encode(groups)
	}))
	t.Cleanup(srv.Close)
	sd.url = srv.URL
	return sd
}

// setTargets replaces the scrape targets and waits until Prometheus has
// scraped every new one and dropped every old one.
func (e *env) setTargets(xs ...*exporter) {
	e.t.Helper()
	want := map[string]bool{}
	var addrs []string
	for _, x := range xs {
		addrs = append(addrs, x.addr)
		want[x.addr] = true
	}
	e.sd.mu.Lock()
	e.sd.targets = addrs
	e.sd.mu.Unlock()
	e.waitUntil(fmt.Sprintf("Prometheus to scrape exactly %v", addrs), func() bool {
		active, err := e.activeTargets()
		if err != nil {
			return false
		}
		if len(active) != len(want) {
			return false
		}
		for addr, scraped := range active {
			if !want[addr] || !scraped {
				return false
			}
		}
		return true
	})
	if e.scraped.IsZero() {
		// YunxiaoExporterAbsent was pending while there was no target;
		// from its next evaluation on, nothing is absent.
		e.waitUntil("YunxiaoExporterAbsent to clear", func() bool {
			e.watch.sync()
			return len(e.watch.latest().find("YunxiaoExporterAbsent", "")) == 0
		})
		e.scraped = time.Now()
	}
}

// activeTargets returns Prometheus' active targets: address -> scraped at
// least once.
func (e *env) activeTargets() (map[string]bool, error) {
	var data struct {
		ActiveTargets []struct {
			Labels     map[string]string `json:"labels"`
			LastScrape time.Time         `json:"lastScrape"`
		} `json:"activeTargets"`
	}
	if err := e.prom.get("/api/v1/targets", url.Values{"state": {"active"}}, &data); err != nil {
		return nil, err
	}
	out := map[string]bool{}
	for _, t := range data.ActiveTargets {
		out[t.Labels["instance"]] = t.LastScrape.After(time.Unix(1, 0))
	}
	return out, nil
}

func (e *env) startPrometheus() {
	t := e.t
	t.Helper()
	rulesFile := filepath.Join(e.dir, "rules.yml")
	if err := os.WriteFile(rulesFile, e.tools.rules.file, 0o600); err != nil {
		t.Fatal(err)
	}
	writeFile(t, filepath.Join(e.dir, "prometheus.yml"), fmt.Sprintf(`global:
  scrape_interval: 1s
  evaluation_interval: 1s
rule_files: [%q]
scrape_configs:
  - job_name: %q
    scrape_timeout: 1s
    http_sd_configs:
      - url: %q
        refresh_interval: 1s
`, rulesFile, e.tools.rules.job, e.sd.url))
	for attempt := 1; !e.runPrometheus(); attempt++ {
		if attempt == 3 {
			t.Fatal("Prometheus could not listen on a free port three times")
		}
	}
	e.waitUntil("the rules to be loaded", func() bool {
		var data struct {
			Groups []json.RawMessage `json:"groups"`
		}
		return e.prom.get("/api/v1/rules", nil, &data) == nil && len(data.Groups) > 0
	})
	e.watch = newAlertWatch(e)
}

// runPrometheus starts Prometheus on a new port and waits until it is
// ready; it reports false when the port was taken.
func (e *env) runPrometheus() bool {
	t := e.t
	t.Helper()
	addr := uniqueAddr(t)
	dataDir := filepath.Join(e.dir, "data-"+strings.ReplaceAll(addr, ":", "-"))
	out := &syncWriter{}
	cmd := exec.Command(e.tools.prometheus, "--config.file="+filepath.Join(e.dir, "prometheus.yml"),
		"--storage.tsdb.path="+dataDir, "--web.listen-address="+addr, "--log.level=warn")
	cmd.Stdout, cmd.Stderr = out, out
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	done := make(chan struct{})
	go func() { _ = cmd.Wait(); close(done) }()
	stop := func() {
		_ = cmd.Process.Signal(os.Interrupt)
		select {
		case <-done:
		case <-time.After(10 * time.Second):
			_ = cmd.Process.Kill()
			<-done
		}
	}
	prom := &promAPI{t: t, base: "http://" + addr}
	taken := false
	e.waitUntil("Prometheus to be ready", func() bool {
		select {
		case <-done:
			if strings.Contains(out.String(), "address already in use") {
				taken = true
				return true
			}
			t.Fatalf("prometheus exited:\n%s", out.String())
		default:
		}
		if strings.Contains(out.String(), "address already in use") {
			taken = true // it logs, and may take a while to exit
			return true
		}
		// Ready, and it is this Prometheus that listens there.
		var flags map[string]string
		return prom.get("/api/v1/status/flags", nil, &flags) == nil && flags["storage.tsdb.path"] == dataDir
	})
	if taken {
		stop()
		t.Logf("prometheus: %s was taken; trying another port", addr)
		return false
	}
	t.Cleanup(func() {
		stop()
		if t.Failed() {
			t.Logf("prometheus output:\n%s", tail(out.String(), 30))
		}
	})
	e.prom = prom
	return true
}

// usedAddrs are the addresses handed out, so no two processes of the test
// are given the same one.
var usedAddrs sync.Map

// uniqueAddr is a free 127.0.0.1 address no other process of this test run
// was given.
func uniqueAddr(t *testing.T) string {
	for {
		addr := freeAddr(t)
		if _, taken := usedAddrs.LoadOrStore(addr, true); !taken {
			return addr
		}
	}
}

// ---------------------------------------------------------------------------
// Queries.

type promValue struct {
	Metric map[string]string `json:"metric"`
	Value  [2]any            `json:"value"`
}

func (v promValue) float() float64 {
	s, _ := v.Value[1].(string)
	f, err := strconv.ParseFloat(s, 64)
	if err != nil {
		return math.NaN()
	}
	return f
}

// query runs an instant query returning a vector.
func (e *env) query(expr string) ([]promValue, error) {
	var data struct {
		ResultType string          `json:"resultType"`
		Result     json.RawMessage `json:"result"`
	}
	if err := e.prom.get("/api/v1/query", url.Values{"query": {expr}}, &data); err != nil {
		return nil, err
	}
	if data.ResultType != "vector" {
		return nil, fmt.Errorf("%s: a %s, not a vector", expr, data.ResultType)
	}
	var out []promValue
	return out, json.Unmarshal(data.Result, &out)
}

// mustQuery is query that fails the test on an error.
func (e *env) mustQuery(expr string) []promValue {
	e.t.Helper()
	res, err := e.query(expr)
	if err != nil {
		e.t.Fatalf("query %s: %v", expr, err)
	}
	return res
}

type promSeries struct {
	Metric map[string]string `json:"metric"`
	Values [][2]any          `json:"values"`
}

// rangeSelect runs an instant query of a range selector: every raw sample.
func (e *env) rangeSelect(expr string) []promSeries {
	e.t.Helper()
	var data struct {
		ResultType string       `json:"resultType"`
		Result     []promSeries `json:"result"`
	}
	if err := e.prom.get("/api/v1/query", url.Values{"query": {expr}}, &data); err != nil {
		e.t.Fatalf("query %s: %v", expr, err)
	}
	return data.Result
}

// evidence logs, when the scenario has failed, every sample of the
// series sel selects over the scenario (runs of equal values collapsed),
// to tell an exporter that said something else from rules that read it
// wrongly.
func (e *env) evidence(sels ...string) {
	e.t.Cleanup(func() {
		if !e.t.Failed() {
			return
		}
		for _, sel := range sels {
			var data struct {
				Result []promSeries `json:"result"`
			}
			expr := fmt.Sprintf("%s[%dms]", sel, time.Since(e.start).Milliseconds()+1000)
			if err := e.prom.get("/api/v1/query", url.Values{"query": {expr}}, &data); err != nil {
				e.t.Logf("evidence %s: %v", sel, err)
				continue
			}
			for _, s := range data.Result {
				var b strings.Builder
				last, since := "", 0.0
				prev := 0.0
				flush := func() {
					if last != "" {
						fmt.Fprintf(&b, " [%s..%s]=%s", time.Unix(0, int64(since*1e9)).Format("15:04:05.0"), time.Unix(0, int64(prev*1e9)).Format("15:04:05.0"), last)
					}
				}
				for _, v := range s.Values {
					ts, _ := v[0].(float64)
					val := fmt.Sprint(v[1])
					if val != last || ts-prev > 1.5 {
						flush()
						last, since = val, ts
					}
					prev = ts
				}
				flush()
				e.t.Logf("evidence %v:%s", s.Metric, b.String())
			}
		}
	})
}

// largestGap returns the longest time between two consecutive samples of
// the series sel selects (all series together) over the last d: how long
// Prometheus had nothing for it across a restart or missed scrapes.
func (e *env) largestGap(sel string, d time.Duration) time.Duration {
	e.t.Helper()
	var times []float64
	for _, s := range e.rangeSelect(fmt.Sprintf("%s[%dms]", sel, d.Milliseconds())) {
		for _, v := range s.Values {
			if ts, ok := v[0].(float64); ok {
				times = append(times, ts)
			}
		}
	}
	sort.Float64s(times)
	var gap float64
	for i := 1; i < len(times); i++ {
		gap = math.Max(gap, times[i]-times[i-1])
	}
	return time.Duration(gap * float64(time.Second)).Round(10 * time.Millisecond)
}

// waitQuery polls expr until ok accepts its result.
func (e *env) waitQuery(what, expr string, ok func([]promValue) bool) []promValue {
	e.t.Helper()
	var last []promValue
	var lastErr error
	e.waitUntilOr(what, func() bool {
		last, lastErr = e.query(expr)
		return lastErr == nil && ok(last)
	}, func() string { return fmt.Sprintf("last result of %s: %s (err %v)", expr, fmtValues(last), lastErr) })
	return last
}

// waitUntil polls cond until it holds; the deadline is the scenario's.
func (e *env) waitUntil(what string, cond func() bool) {
	e.t.Helper()
	e.waitUntilOr(what, cond, nil)
}

func (e *env) waitUntilOr(what string, cond func() bool, state func() string) {
	e.t.Helper()
	tick := time.NewTicker(pollEvery)
	defer tick.Stop()
	limit := time.NewTimer(waitLimit)
	defer limit.Stop()
	for !cond() {
		select {
		case <-e.ctx.Done():
		case <-limit.C:
		case <-tick.C:
			continue
		}
		msg := fmt.Sprintf("timed out (%s into the scenario) waiting for %s", time.Since(e.start).Round(time.Second), what)
		if state != nil {
			msg += "\n  " + state()
		}
		if e.watch != nil {
			msg += "\n  alerts now: " + e.watch.latest().String()
		}
		e.t.Fatal(msg)
	}
}

// waitAtMost polls cond until it holds or d has passed; it reports whether
// it held.
func (e *env) waitAtMost(d time.Duration, cond func() bool) bool {
	deadline := time.Now().Add(d)
	for !cond() {
		if time.Now().After(deadline) || e.ctx.Err() != nil {
			return false
		}
		time.Sleep(pollEvery)
	}
	return true
}

// observe lets d pass while the watcher records: a scenario that asserts
// something does not happen must give it the time to happen.
func (e *env) observe(d time.Duration) {
	deadline := time.Now().Add(d)
	for time.Now().Before(deadline) {
		if e.ctx.Err() != nil {
			e.t.Fatalf("scenario deadline while observing")
		}
		time.Sleep(pollEvery)
	}
	e.watch.sync()
}

func fmtValues(vs []promValue) string {
	var parts []string
	for _, v := range vs {
		var labels []string
		for k, val := range v.Metric {
			labels = append(labels, k+"="+strconv.Quote(val))
		}
		sort.Strings(labels)
		parts = append(parts, "{"+strings.Join(labels, ",")+"} "+fmt.Sprint(v.Value[1]))
	}
	if len(parts) == 0 {
		return "(empty)"
	}
	return strings.Join(parts, "; ")
}

// ---------------------------------------------------------------------------
// Alerts, watched.

type alert struct {
	Labels          map[string]string `json:"labels"`
	State           string            `json:"state"`
	ActiveAt        time.Time         `json:"activeAt"`
	KeepFiringSince *time.Time        `json:"keepFiringSince,omitempty"`
}

func (a alert) name() string     { return a.Labels["alertname"] }
func (a alert) pipeline() string { return a.Labels["pipeline_id"] }

type alertSnapshot struct {
	at     time.Time
	alerts []alert
}

// find returns the alerts named name about pipeline (any pipeline if "").
func (s alertSnapshot) find(name, pipeline string) []alert {
	var out []alert
	for _, a := range s.alerts {
		if a.name() == name && (pipeline == "" || a.pipeline() == pipeline) {
			out = append(out, a)
		}
	}
	return out
}

// pipelines returns, sorted, the pipelines that have an alert named name
// in one of states (any state when none given).
func (s alertSnapshot) pipelines(name string, states ...string) []string {
	var out []string
	for _, a := range s.alerts {
		if a.name() == name && (len(states) == 0 || contains(states, a.State)) {
			out = append(out, a.pipeline())
		}
	}
	sort.Strings(out)
	return out
}

func (s alertSnapshot) String() string {
	var parts []string
	for _, a := range s.alerts {
		p := a.name()
		if id := a.pipeline(); id != "" {
			p += "{pipeline_id=" + id + "}"
		}
		if inst := a.Labels["instance"]; inst != "" {
			p += "{instance=" + inst + "}"
		}
		parts = append(parts, p+" "+a.State)
	}
	sort.Strings(parts)
	if len(parts) == 0 {
		return "(none)"
	}
	return strings.Join(parts, ", ")
}

// alertWatch polls /api/v1/alerts and keeps every snapshot. On every
// snapshot it checks what must always hold: a per-pipeline alert carries no
// instance label, and there is at most one alert of a name per pipeline.
type alertWatch struct {
	e *env

	mu        sync.Mutex
	snapshots []alertSnapshot
	reported  map[string]bool
	stop      chan struct{}
	stopped   chan struct{}
}

func newAlertWatch(e *env) *alertWatch {
	w := &alertWatch{e: e, reported: map[string]bool{}, stop: make(chan struct{}), stopped: make(chan struct{})}
	go w.loop()
	e.t.Cleanup(func() {
		close(w.stop)
		<-w.stopped
	})
	return w
}

func (w *alertWatch) loop() {
	defer close(w.stopped)
	tick := time.NewTicker(pollEvery)
	defer tick.Stop()
	for {
		select {
		case <-w.stop:
			return
		case <-tick.C:
		}
		w.poll()
	}
}

func (w *alertWatch) poll() {
	var data struct {
		Alerts []alert `json:"alerts"`
	}
	if err := w.e.prom.get("/api/v1/alerts", nil, &data); err != nil {
		return
	}
	s := alertSnapshot{at: time.Now(), alerts: data.Alerts}
	w.mu.Lock()
	defer w.mu.Unlock()
	w.snapshots = append(w.snapshots, s)
	seen := map[string]int{}
	for _, a := range s.alerts {
		if a.pipeline() == "" {
			continue
		}
		if inst, ok := a.Labels["instance"]; ok {
			w.reportOnce("instance/"+a.name(), "%s{pipeline_id=%s} carries instance=%q: a per-pipeline alert must be keyed by pipeline only",
				a.name(), a.pipeline(), inst)
		}
		seen[a.name()+"/"+a.pipeline()]++
	}
	for key, n := range seen {
		if n > 1 {
			w.reportOnce("dup/"+key, "%d alerts %s at %s, want one per pipeline: %s", n, key,
				s.at.Format("15:04:05.0"), s.String())
		}
	}
}

func (w *alertWatch) reportOnce(key, format string, args ...any) {
	if w.reported[key] {
		return
	}
	w.reported[key] = true
	w.e.t.Errorf(format, args...)
}

// sync takes a snapshot now, so that what follows sees the present.
func (w *alertWatch) sync() { w.poll() }

func (w *alertWatch) latest() alertSnapshot {
	w.mu.Lock()
	defer w.mu.Unlock()
	if len(w.snapshots) == 0 {
		return alertSnapshot{}
	}
	return w.snapshots[len(w.snapshots)-1]
}

// since returns the snapshots taken at or after from.
func (w *alertWatch) since(from time.Time) []alertSnapshot {
	w.mu.Lock()
	defer w.mu.Unlock()
	i := sort.Search(len(w.snapshots), func(i int) bool { return !w.snapshots[i].at.Before(from) })
	return append([]alertSnapshot(nil), w.snapshots[i:]...)
}

// waitAlert waits until alert name is in state for pipeline (any pipeline
// if "") and returns it.
func (e *env) waitAlert(name, pipeline, state string) alert {
	e.t.Helper()
	var got alert
	e.waitUntil(fmt.Sprintf("%s{pipeline_id=%q} to be %s", name, pipeline, state), func() bool {
		e.watch.sync()
		for _, a := range e.watch.latest().find(name, pipeline) {
			if a.State == state {
				got = a
				return true
			}
		}
		return false
	})
	return got
}

// waitNoAlert waits until there is no alert name about pipeline.
func (e *env) waitNoAlert(name, pipeline string) {
	e.t.Helper()
	e.waitUntil(fmt.Sprintf("%s{pipeline_id=%q} to resolve", name, pipeline), func() bool {
		e.watch.sync()
		return len(e.watch.latest().find(name, pipeline)) == 0
	})
}

// checkNever fails for every snapshot since from that has alert name (about
// one of pipelines; any when none given) in one of states.
func (e *env) checkNever(from time.Time, name string, states []string, pipelines ...string) {
	e.t.Helper()
	for _, s := range e.watch.since(from) {
		for _, a := range s.find(name, "") {
			if !contains(states, a.State) || (len(pipelines) > 0 && !contains(pipelines, a.pipeline())) {
				continue
			}
			e.t.Errorf("%s{pipeline_id=%q} was %s at %s (%s into the scenario), want never %v; alerts then: %s",
				name, a.pipeline(), a.State, s.at.Format("15:04:05.0"), s.at.Sub(e.start).Round(100*time.Millisecond), states, s)
			return
		}
	}
}

// checkSteady fails unless, in every snapshot since from, alert name about
// pipeline is firing, alone, with the activeAt of want: it neither
// resolved nor fired again.
func (e *env) checkSteady(from time.Time, name, pipeline string, want alert) {
	e.t.Helper()
	snaps := e.watch.since(from)
	if len(snaps) == 0 {
		e.t.Errorf("%s{pipeline_id=%q}: no alert snapshot since %s", name, pipeline, from.Format("15:04:05.0"))
		return
	}
	for _, s := range snaps {
		got := s.find(name, pipeline)
		switch {
		case len(got) == 0:
			e.t.Errorf("%s{pipeline_id=%q} is gone at %s (%s into the scenario), want it firing throughout; alerts then: %s",
				name, pipeline, s.at.Format("15:04:05.0"), s.at.Sub(e.start).Round(100*time.Millisecond), s)
			return
		case len(got) > 1:
			e.t.Errorf("%d alerts %s{pipeline_id=%q} at %s, want one: %s", len(got), name, pipeline, s.at.Format("15:04:05.0"), s)
			return
		case got[0].State != "firing":
			e.t.Errorf("%s{pipeline_id=%q} is %s at %s, want firing throughout", name, pipeline, got[0].State, s.at.Format("15:04:05.0"))
			return
		case !got[0].ActiveAt.Equal(want.ActiveAt):
			e.t.Errorf("%s{pipeline_id=%q} became active again at %s (was %s): it resolved and fired anew",
				name, pipeline, got[0].ActiveAt.Format("15:04:05.000"), want.ActiveAt.Format("15:04:05.000"))
			return
		}
	}
}

// checkAllowed fails for the first alert, in any snapshot since from, that
// no entry of allowed admits. An entry is an alert name, optionally with
// the pipelines it may be about in braces, or the instances after "@", and
// " pending" when it may only be pending: "YunxiaoPipelineRunFailed{1301,1302}",
// "YunxiaoExporterDown@127.0.0.1:9100", "YunxiaoExporterDown pending".
// It is how a scenario says which alerts must not be pending or firing:
// every one it does not name.
func (e *env) checkAllowed(from time.Time, allowed ...string) {
	e.t.Helper()
	type rule struct {
		name        string
		pipelines   []string
		instances   []string
		pendingOnly bool
	}
	var rules []rule
	// One scrape that times out on a loaded machine is one sample of up 0:
	// YunxiaoExporterDown may go pending, never fire (its `for`).
	for _, a := range append([]string{"YunxiaoExporterDown pending"}, allowed...) {
		var r rule
		a, r.pendingOnly = strings.CutSuffix(a, " pending")
		if name, rest, ok := strings.Cut(a, "@"); ok {
			a, r.instances = name, strings.Split(rest, ",")
		}
		if name, rest, ok := strings.Cut(a, "{"); ok {
			a, r.pipelines = name, strings.Split(strings.TrimSuffix(rest, "}"), ",")
		}
		r.name = a
		rules = append(rules, r)
	}
	admitted := func(a alert) bool {
		for _, r := range rules {
			if r.name == a.name() && (r.pipelines == nil || contains(r.pipelines, a.pipeline())) &&
				(r.instances == nil || contains(r.instances, a.Labels["instance"])) && (!r.pendingOnly || a.State == "pending") {
				return true
			}
		}
		return false
	}
	for _, s := range e.watch.since(from) {
		for _, a := range s.alerts {
			if !admitted(a) {
				e.t.Errorf("unexpected alert %s{pipeline_id=%q} %s at %s (%s into the scenario); allowed only %q; alerts then: %s",
					a.name(), a.pipeline(), a.State, s.at.Format("15:04:05.0"), s.at.Sub(e.start).Round(100*time.Millisecond), allowed, s)
				return
			}
		}
	}
}

// checkOnly fails unless the pipelines with alert name firing now are
// exactly want.
func (e *env) checkOnly(name string, want ...string) {
	e.t.Helper()
	e.watch.sync()
	got := e.watch.latest().pipelines(name, "firing")
	sort.Strings(want)
	if strings.Join(got, ",") != strings.Join(want, ",") {
		e.t.Errorf("%s fires for pipelines %v, want exactly %v; alerts: %s", name, got, want, e.watch.latest())
	}
}

func contains(list []string, s string) bool {
	for _, v := range list {
		if v == s {
			return true
		}
	}
	return false
}

func tail(s string, lines int) string {
	parts := strings.Split(strings.TrimRight(s, "\n"), "\n")
	if len(parts) > lines {
		parts = append([]string{fmt.Sprintf("... (%d lines before)", len(parts)-lines)}, parts[len(parts)-lines:]...)
	}
	return strings.Join(parts, "\n")
}

func pid(id int64) string { return strconv.FormatInt(id, 10) }

var pendingOrFiring = []string{"pending", "firing"}

// lookPrometheus3 finds Prometheus 3: $YUNXIAO_PROMETHEUS3, else the path
// `go install github.com/prometheus/prometheus/cmd/prometheus@v0.316.0`
// leaves it at under /root/go/prometheus-v3 (GOBIN) or in GOPATH/bin.
func lookPrometheus3(t *testing.T) string {
	t.Helper()
	candidates := []string{os.Getenv("YUNXIAO_PROMETHEUS3"), "/root/go/prometheus-v3/prometheus"}
	if gopath, err := exec.Command("go", "env", "GOPATH").Output(); err == nil {
		candidates = append(candidates, filepath.Join(strings.TrimSpace(string(gopath)), "bin", "prometheus"))
	}
	for _, c := range candidates {
		if c == "" {
			continue
		}
		if info, err := os.Stat(c); err == nil && !info.IsDir() && info.Mode()&0o111 != 0 {
			if isPrometheus3(c) {
				return c
			}
		}
	}
	if os.Getenv("CI") == "true" {
		t.Fatal("Prometheus 3 not found: set YUNXIAO_PROMETHEUS3 or `GOBIN=/root/go/prometheus-v3 go install github.com/prometheus/prometheus/cmd/prometheus@v0.316.0`")
	}
	t.Skip("Prometheus 3 not found (YUNXIAO_PROMETHEUS3, /root/go/prometheus-v3/prometheus); skipping the scenarios")
	return ""
}

// isPrometheus3 tells a Prometheus 3 from a 2.x by a flag only 3 has
// (a `go install`ed binary prints no version number).
func isPrometheus3(bin string) bool {
	out, err := exec.Command(bin, "--help").CombinedOutput()
	if err != nil && len(out) == 0 {
		return false
	}
	// A flag that arrived with 3.0 (remote write 2.0).
	return strings.Contains(string(out), "--web.remote-write-receiver.accepted-protobuf-messages")
}
