// Package e2e runs the exporter binary against the fake Flow API with a
// real Prometheus scraping it and evaluating the shipped alert rules, then
// runs every dashboard query and every alert expression through
// Prometheus' HTTP API.
package e2e

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"

	"go.yaml.in/yaml/v3"

	"github.com/yunxiao-exporter/yunxiao_exporter/dashboards"
	"github.com/yunxiao-exporter/yunxiao_exporter/deploy/mixin"
	"github.com/yunxiao-exporter/yunxiao_exporter/flowsim"
)

const token = "pt-e2e-token-31b7"

// The fleet: one pipeline per situation the alerts must tell apart.
const (
	pSuccess  = 101
	pFailed   = 102
	pRunning  = 103 // running 10 minutes: not stuck
	pStuck    = 104 // running 3 hours
	pWaiting  = 105 // waiting for approval
	pErroring = 106 // the API refuses this pipeline (403)
	pNeverRan = 107
	pCanceled = 108
	pFast     = 109 // simulated: a run every 2 s, with run history on
)

// expectedAlerts: which pipelines each alert's expression must select now.
// WaitingTooLong applies its hour through `for:`, so its expression already
// selects every waiting pipeline; DataStale needs 15 minutes of failure.
var expectedAlerts = map[string][]string{
	"YunxiaoPipelineRunFailed":          {"102"},
	"YunxiaoPipelineRunStuck":           {"104"},
	"YunxiaoPipelineWaitingTooLong":     {"105"},
	"YunxiaoPipelineFetchFailing":       {"106"},
	"YunxiaoPipelineDataStale":          nil,
	"YunxiaoApiDown":                    nil,
	"YunxiaoExporterDown":               nil,
	"YunxiaoExporterAbsent":             nil,
	"YunxiaoExporterConfigReloadFailed": nil,
	"YunxiaoPipelineFailureRatioHigh":   nil, // needs 5 runs in a day, 50 % failed: fast-ci only passes
	"YunxiaoDiscoveryFailing":           nil,
	"YunxiaoApiRateLimited":             nil,
	// Only fast-ci has run history, and it passes; without run history the
	// last success is known only from runs this process saw.
	"YunxiaoPipelineNoRecentSuccess": nil,
	"YunxiaoWebhookSilent":           nil, // the webhook is not enabled here
}

// TestEndToEnd runs on the Prometheus users run today (3.x) and on
// Debian's 2.42, the oldest the rules support.
func TestEndToEnd(t *testing.T) {
	root, err := filepath.Abs("..")
	if err != nil {
		t.Fatal(err)
	}
	exporterBin := buildExporter(t, root)
	t.Run("prometheus-2.42", func(t *testing.T) { endToEnd(t, lookTool(t, "prometheus"), root, exporterBin) })
	t.Run("prometheus-3", func(t *testing.T) { endToEnd(t, lookPrometheus3(t), root, exporterBin) })
}

func endToEnd(t *testing.T, promBin, root, exporterBin string) {
	job := mixinJob(t)
	dir := t.TempDir()
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()

	// The fake Flow API.
	sim := flowsim.New(flowsim.Options{Token: token, OrganizationID: "org-e2e"}, flowsim.Pipeline{ID: pNeverRan, Name: "release-notes"},
		flowsim.Pipeline{ID: pFast, Name: "fast-ci", TriggerMode: 3, Period: 2 * time.Second,
			Stages:   []flowsim.Stage{{Name: "Build", Jobs: []flowsim.Job{{Sign: "b", Name: "Build", Duration: time.Second}}}},
			Outcomes: []flowsim.Outcome{flowsim.Success}})
	now := time.Now()
	for id, body := range fixtures(now) {
		sim.PinJSON(flowsim.EndpointLatestRun, id, body)
	}
	sim.Fault(pErroring, func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(http.StatusForbidden)
		fmt.Fprint(w, `{"errorCode":"Forbidden","errorMessage":"no permission on this pipeline"}`)
	})
	api := httptest.NewServer(sim)
	t.Cleanup(api.Close)

	// The exporter, built (by TestEndToEnd) and run as users run it.
	writeFile(t, filepath.Join(dir, "token"), token+"\n")
	var pipelines strings.Builder
	names := map[int]string{pSuccess: "backend-build", pFailed: "nightly-e2e", pRunning: "frontend-build", pStuck: "data-sync",
		pWaiting: "deploy-production", pErroring: "secret-project", pCanceled: "hotfix"}
	for _, id := range []int{pSuccess, pFailed, pRunning, pStuck, pWaiting, pErroring, pNeverRan, pCanceled} {
		fmt.Fprintf(&pipelines, "  - id: %d\n", id)
		if n := names[id]; n != "" {
			fmt.Fprintf(&pipelines, "    name: %s\n", n)
		}
	}
	// fast-ci comes from discovery, with run history on for it alone.
	fmt.Fprintf(&pipelines, "  - id: %d\n    run_history: true\n", pFast)
	writeFile(t, filepath.Join(dir, "config.yml"), fmt.Sprintf(
		"yunxiao:\n  endpoint: %s\n  organization_id: org-e2e\n  token_file: token\n  rate_limit: 0\ncache_ttl: 1s\n"+
			"discovery:\n  enabled: true\n  refresh_interval: 5s\n  include: [\"fast-.*\"]\n"+
			// fast-ci deploys, for team e2e; backend-build deploys too but
			// has no run history, so no delivery series may name it.
			"  labels:\n    - match: \"fast-.*\"\n      deploy: true\n      labels: {team: e2e}\n"+
			"    - match: \"backend-build\"\n      deploy: true\n      labels: {team: web}\n"+
			"pipelines:\n%s",
		api.URL, pipelines.String()))
	exporterAddr := freeAddr(t)
	exporterLog := start(t, ctx, exporterBin, "--config.file="+filepath.Join(dir, "config.yml"), "--web.listen-address="+exporterAddr)
	waitFor(t, ctx, "the exporter to be ready", func() bool {
		resp, err := http.Get("http://" + exporterAddr + "/-/ready")
		if err != nil {
			return false
		}
		resp.Body.Close()
		return resp.StatusCode == http.StatusOK
	})

	// A real Prometheus, scraping every second, with the shipped rules:
	// the generator's, with the delivery group evaluated at the global
	// interval rather than every 2m (a drift test keeps alerts.yml equal to
	// the generator's output).
	rulesCfg := mixin.Default()
	rulesCfg.Delivery.Interval = 0
	rulesYAML, err := mixin.Rules(rulesCfg)
	if err != nil {
		t.Fatal(err)
	}
	alertsFile := filepath.Join(dir, "alerts.yml")
	writeFile(t, alertsFile, string(rulesYAML))
	writeFile(t, filepath.Join(dir, "prometheus.yml"), fmt.Sprintf(`global:
  scrape_interval: 1s
  evaluation_interval: 1s
rule_files: [%q]
scrape_configs:
  - job_name: %q
    scrape_timeout: 1s
    static_configs:
      - targets: [%q]
`, alertsFile, job, exporterAddr))
	promAddr := freeAddr(t)
	start(t, ctx, promBin, "--config.file="+filepath.Join(dir, "prometheus.yml"),
		"--storage.tsdb.path="+filepath.Join(dir, "data"), "--web.listen-address="+promAddr, "--log.level=warn",
		"--enable-feature=extra-scrape-metrics") // scrape_timeout_seconds, for the health dashboard
	prom := &promAPI{t: t, base: "http://" + promAddr}
	waitFor(t, ctx, "Prometheus to have 5 scrapes of the exporter", func() bool {
		res, err := prom.query(fmt.Sprintf(`count_over_time(up{job=%q}[1m]) >= 5`, job))
		return err == nil && len(res) == 1
	})
	waitFor(t, ctx, "run history to have counted a few runs", func() bool {
		res, err := prom.query(fmt.Sprintf(`sum(yunxiao_pipeline_runs_total{job=%q}) >= 3`, job))
		return err == nil && len(res) == 1
	})
	waitFor(t, ctx, "the rules to have been evaluated", func() bool {
		return prom.rulesEvaluated()
	})

	t.Run("every dashboard query runs", func(t *testing.T) {
		queries, err := dashboards.Queries(map[string]string{
			"job": job, "instance": regexpQuote(exporterAddr), "pipeline": fmt.Sprintf("%d|%d", pFailed, pFast),
		})
		if err != nil {
			t.Fatal(err)
		}
		var empty []string
		for _, q := range queries {
			res, err := prom.query(q.Expr)
			where := fmt.Sprintf("%s / %s%s %s", q.Dashboard, q.Panel, q.Variable, q.RefID)
			if err != nil {
				t.Errorf("%s: %v\n  %s", where, err, q.Expr)
				continue
			}
			if len(res) == 0 {
				empty = append(empty, where+": "+q.Expr)
			}
		}
		t.Logf("%d queries, %d without data", len(queries), len(empty))
		for _, e := range empty {
			t.Logf("no data: %s", e)
		}
		// Time to restore needs a failure then a recovery of a deploy
		// pipeline after the exporter started, which this short run does not
		// stage (fast-ci always passes, so its alerts stay still); those
		// queries are allowed to be empty, the others barely.
		var others int
		for _, e := range empty {
			if !strings.Contains(e, "restore") && !strings.Contains(e, "Time to restore") {
				others++
			}
		}
		if allowed := len(queries) / 10; others > allowed {
			t.Errorf("%d of %d dashboard queries (not counting time to restore) return no data (allowed %d)", others, len(queries), allowed)
		}
	})

	t.Run("delivery recording rules", func(t *testing.T) {
		// Every recording rule evaluates cleanly.
		for _, name := range mixin.RecordNames(rulesCfg) {
			if _, err := prom.query(name); err != nil {
				t.Errorf("%s: %v", name, err)
			}
		}
		fast := fmt.Sprint(pFast)
		waitFor(t, ctx, "the delivery rules to record fast-ci", func() bool {
			res, err := prom.query(`yunxiao:pipeline:deployments:increase1d`)
			return err == nil && len(res) > 0
		})
		res, err := prom.query(`yunxiao:pipeline:deployments:increase1d`)
		if err != nil {
			t.Fatal(err)
		}
		if len(res) != 1 || res[0].Metric["pipeline_id"] != fast || res[0].Metric["team"] != "e2e" {
			t.Errorf("deployments recorded for %v; want fast-ci alone, with team e2e (backend-build deploys but has no run history)", res)
		}
		team, err := prom.query(`yunxiao:team:deployments:increase1d{team="e2e"}`)
		if err != nil || len(team) != 1 {
			t.Errorf("team e2e's deployments: %v %v", team, err)
		}
		if nan, err := prom.query(`yunxiao:pipeline:change_failure_rate:ratio7d != yunxiao:pipeline:change_failure_rate:ratio7d`); err != nil || len(nan) != 0 {
			t.Errorf("change failure rate is NaN somewhere: %v %v", nan, err)
		}
	})

	t.Run("alert expressions pick out exactly the right pipelines", func(t *testing.T) {
		rules := loadAlertRules(t, alertsFile)
		for name := range expectedAlerts {
			if _, ok := rules[name]; !ok {
				t.Errorf("alerts.yml has no %s", name)
			}
		}
		for name, expr := range rules {
			want, ok := expectedAlerts[name]
			if !ok {
				t.Errorf("%s: no expectation in this test; add one", name)
				continue
			}
			res, err := prom.query(expr)
			if err != nil {
				t.Errorf("%s: %v", name, err)
				continue
			}
			got := []string{}
			for _, s := range res {
				got = append(got, s.Metric["pipeline_id"])
			}
			sort.Strings(got)
			if strings.Join(got, ",") != strings.Join(want, ",") {
				t.Errorf("%s selects pipelines %v, want %v\n  %s", name, got, want, expr)
			}
		}
		// Alerts without `for:` whose expression selects something are
		// firing by now.
		firing := prom.firing()
		immediate := alertsWithoutFor(t, alertsFile)
		for name, want := range expectedAlerts {
			if len(want) > 0 && immediate[name] && !firing[name] {
				t.Errorf("%s is not firing in Prometheus; firing: %v", name, firing)
			}
		}
	})

	if logs := exporterLog.String(); strings.Contains(logs, token) {
		t.Error("the token reached the exporter's log")
	}
}

// fixtures are the pinned latest runs, with times relative to now.
func fixtures(now time.Time) map[int64][]byte {
	ms := func(d time.Duration) int64 { return now.Add(-d).UnixMilli() }
	job := func(sign, status string, start, end int64) map[string]any {
		return map[string]any{"id": 1, "jobSign": sign, "name": strings.ToUpper(sign[:1]) + sign[1:], "status": status, "startTime": start, "endTime": end}
	}
	stage := func(i int, name, status string, start, end int64, jobs ...map[string]any) map[string]any {
		return map[string]any{"index": fmt.Sprintf("Group0-Stage%d", i), "name": name,
			"stageInfo": map[string]any{"name": name, "status": status, "startTime": start, "endTime": end, "jobs": jobs}}
	}
	run := func(id int64, status string, trigger int, start, update int64, stages ...map[string]any) []byte {
		b, _ := json.Marshal(map[string]any{"pipelineId": 0, "pipelineRunId": id, "status": status, "triggerMode": trigger,
			"createTime": start, "updateTime": update, "stages": stages,
			"globalParams": []map[string]any{{"key": "PASSWORD", "value": "e2e-param-secret", "encrypted": true}}})
		return b
	}
	h, m := time.Hour, time.Minute
	return map[int64][]byte{
		pSuccess: run(11, "SUCCESS", 3, ms(h), ms(50*m),
			stage(0, "Build", "SUCCESS", ms(h), ms(55*m), job("compile", "SUCCESS", ms(h), ms(55*m))),
			stage(1, "Deploy", "SUCCESS", ms(55*m), ms(50*m), job("deploy", "SUCCESS", ms(55*m), ms(50*m)))),
		pFailed: run(12, "FAIL", 2, ms(2*h), ms(h+50*m),
			stage(0, "Build", "SUCCESS", ms(2*h), ms(h+55*m), job("compile", "SUCCESS", ms(2*h), ms(h+55*m))),
			stage(1, "Test", "FAIL", ms(h+55*m), ms(h+50*m), job("e2e", "FAIL", ms(h+55*m), ms(h+50*m)))),
		pRunning: run(13, "RUNNING", 3, ms(10*m), ms(5*m),
			stage(0, "Build", "SUCCESS", ms(10*m), ms(5*m), job("compile", "SUCCESS", ms(10*m), ms(5*m))),
			stage(1, "Test", "RUNNING", ms(5*m), 0, job("unit", "RUNNING", ms(5*m), 0))),
		pStuck: run(14, "RUNNING", 5, ms(3*h), ms(3*h),
			stage(0, "Sync", "RUNNING", ms(3*h), 0, job("sync", "RUNNING", ms(3*h), 0))),
		pWaiting: run(15, "WAITING", 1, ms(2*h), ms(90*m),
			stage(0, "Package", "SUCCESS", ms(2*h), ms(90*m), job("image", "SUCCESS", ms(2*h), ms(90*m))),
			stage(1, "Approval", "WAITING", ms(90*m), 0, job("approve", "WAITING", ms(90*m), 0))),
		pCanceled: run(18, "CANCELED", 1, ms(30*m), ms(25*m),
			stage(0, "Build", "CANCELED", ms(30*m), ms(25*m), job("compile", "CANCELED", ms(30*m), ms(25*m)))),
	}
}

type sample struct {
	Metric map[string]string `json:"metric"`
}

type promAPI struct {
	t    *testing.T
	base string
}

func (p *promAPI) get(path string, params url.Values, into any) error {
	resp, err := http.Get(p.base + path + "?" + params.Encode())
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	var envelope struct {
		Status string          `json:"status"`
		Error  string          `json:"error"`
		Data   json.RawMessage `json:"data"`
	}
	if err := json.Unmarshal(body, &envelope); err != nil {
		return fmt.Errorf("HTTP %d: %.200s", resp.StatusCode, body)
	}
	if envelope.Status != "success" {
		return fmt.Errorf("prometheus: %s", envelope.Error)
	}
	return json.Unmarshal(envelope.Data, into)
}

// query runs an instant query and returns its series (a scalar counts as one).
func (p *promAPI) query(expr string) ([]sample, error) {
	var data struct {
		ResultType string          `json:"resultType"`
		Result     json.RawMessage `json:"result"`
	}
	if err := p.get("/api/v1/query", url.Values{"query": {expr}}, &data); err != nil {
		return nil, err
	}
	if data.ResultType == "scalar" || data.ResultType == "string" {
		return []sample{{}}, nil
	}
	var res []sample
	return res, json.Unmarshal(data.Result, &res)
}

// rulesEvaluated reports whether every alerting rule has been evaluated
// without error. Recording rule groups may have a long interval of their
// own (minutes) and are not waited for, but an error of one that ran fails
// the test.
func (p *promAPI) rulesEvaluated() bool {
	var data struct {
		Groups []struct {
			Rules []struct {
				Name           string `json:"name"`
				Type           string `json:"type"`
				Health         string `json:"health"`
				LastError      string `json:"lastError"`
				LastEvaluation string `json:"lastEvaluation"`
			} `json:"rules"`
		} `json:"groups"`
	}
	if err := p.get("/api/v1/rules", nil, &data); err != nil || len(data.Groups) == 0 {
		return false
	}
	for _, g := range data.Groups {
		for _, r := range g.Rules {
			if r.LastError != "" {
				p.t.Errorf("rule %s fails to evaluate: %s", r.Name, r.LastError)
			}
			if r.Type == "alerting" && r.Health != "ok" {
				return false
			}
		}
	}
	return true
}

func (p *promAPI) firing() map[string]bool {
	var data struct {
		Alerts []struct {
			Labels map[string]string `json:"labels"`
			State  string            `json:"state"`
		} `json:"alerts"`
	}
	if err := p.get("/api/v1/alerts", nil, &data); err != nil {
		p.t.Fatal(err)
	}
	out := map[string]bool{}
	for _, a := range data.Alerts {
		if a.State == "firing" {
			out[a.Labels["alertname"]] = true
		}
	}
	return out
}

func loadAlertRules(t *testing.T, path string) map[string]string {
	t.Helper()
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	var file struct {
		Groups []struct {
			Rules []struct {
				Alert string `yaml:"alert"`
				Expr  string `yaml:"expr"`
			} `yaml:"rules"`
		} `yaml:"groups"`
	}
	if err := yaml.Unmarshal(data, &file); err != nil {
		t.Fatal(err)
	}
	rules := map[string]string{}
	for _, g := range file.Groups {
		for _, r := range g.Rules {
			if r.Alert != "" {
				rules[r.Alert] = r.Expr
			}
		}
	}
	return rules
}

// alertsWithoutFor returns the alerts of a rule file that fire as soon as
// their expression selects something (no `for`, or `for: 0s`).
func alertsWithoutFor(t *testing.T, path string) map[string]bool {
	t.Helper()
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	var file struct {
		Groups []struct {
			Rules []struct {
				Alert string `yaml:"alert"`
				For   string `yaml:"for"`
			} `yaml:"rules"`
		} `yaml:"groups"`
	}
	if err := yaml.Unmarshal(data, &file); err != nil {
		t.Fatal(err)
	}
	out := map[string]bool{}
	for _, g := range file.Groups {
		for _, r := range g.Rules {
			if r.Alert != "" && (r.For == "" || r.For == "0s") {
				out[r.Alert] = true
			}
		}
	}
	return out
}

// start runs a process until the test ends; its output is kept for the log.
func start(t *testing.T, ctx context.Context, bin string, args ...string) *syncWriter {
	t.Helper()
	out := &syncWriter{}
	cmd := exec.CommandContext(ctx, bin, args...)
	cmd.Stdout, cmd.Stderr = out, out
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		_ = cmd.Process.Signal(os.Interrupt)
		done := make(chan struct{})
		go func() { _ = cmd.Wait(); close(done) }()
		select {
		case <-done:
		case <-time.After(10 * time.Second):
			_ = cmd.Process.Kill()
			<-done
		}
		if t.Failed() {
			t.Logf("%s output:\n%s", filepath.Base(bin), out.String())
		}
	})
	return out
}

// waitFor polls an outside process's state until cond holds; the deadline
// is ctx's.
func waitFor(t *testing.T, ctx context.Context, what string, cond func() bool) {
	t.Helper()
	tick := time.NewTicker(200 * time.Millisecond)
	defer tick.Stop()
	begin := time.Now()
	defer func() {
		if d := time.Since(begin); d > 10*time.Second {
			t.Logf("waited %s for %s", d.Round(100*time.Millisecond), what)
		}
	}()
	for !cond() {
		select {
		case <-ctx.Done():
			t.Fatalf("timed out waiting for %s", what)
		case <-tick.C:
		}
	}
}

func freeAddr(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().String()
}

func writeFile(t *testing.T, path, content string) {
	t.Helper()
	if err := os.WriteFile(path, []byte(content), 0o600); err != nil {
		t.Fatal(err)
	}
}

func lookTool(t *testing.T, name string) string {
	t.Helper()
	p, err := exec.LookPath(name)
	if err == nil {
		return p
	}
	if os.Getenv("CI") == "true" {
		t.Fatalf("%s is not on PATH; .ci/run must install it", name)
	}
	t.Skipf("%s is not on PATH (apt-get install prometheus); skipping the end-to-end test", name)
	return ""
}

func regexpQuote(s string) string { return strings.NewReplacer(".", `\\.`).Replace(s) }

type syncWriter struct {
	mu  sync.Mutex
	buf strings.Builder
}

func (w *syncWriter) Write(p []byte) (int, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.buf.Write(p)
}

func (w *syncWriter) String() string {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.buf.String()
}
