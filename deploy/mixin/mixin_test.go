package mixin_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"reflect"
	"regexp"
	"strings"
	"testing"
	"time"

	"go.yaml.in/yaml/v3"

	"github.com/yunxiao-exporter/yunxiao_exporter/deploy/mixin"
)

const root = "../.."

// ---- tools ----

func goBin() string {
	if gobin := os.Getenv("GOBIN"); gobin != "" {
		return gobin
	}
	gopath := os.Getenv("GOPATH")
	if gopath == "" {
		home, _ := os.UserHomeDir()
		gopath = filepath.Join(home, "go")
	}
	return filepath.Join(filepath.SplitList(gopath)[0], "bin")
}

// tool finds a tool on PATH or in the Go bin directory; without it the test
// is skipped, except in CI (CI=true), where it fails.
func tool(t *testing.T, name string) string {
	t.Helper()
	if p, err := exec.LookPath(name); err == nil {
		return p
	}
	if p := filepath.Join(goBin(), name); fileExists(p) {
		return p
	}
	if os.Getenv("CI") == "true" {
		t.Fatalf("%s not found on PATH nor in %s; CI must install it", name, goBin())
	}
	t.Skipf("%s not found on PATH nor in %s", name, goBin())
	return ""
}

func fileExists(p string) bool {
	fi, err := os.Stat(p)
	return err == nil && !fi.IsDir()
}

func runTool(t *testing.T, name string, args ...string) ([]byte, error) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, name, args...)
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Run(); err != nil {
		return nil, fmt.Errorf("%s %s: %v\n%s%s", filepath.Base(name), strings.Join(args, " "), err, stderr.String(), stdout.String())
	}
	return stdout.Bytes(), nil
}

// checkRules runs `promtool check rules` on a rule file's content.
func checkRules(t *testing.T, what string, rules []byte) {
	t.Helper()
	promtool := tool(t, "promtool")
	f := filepath.Join(t.TempDir(), "rules.yml")
	if err := os.WriteFile(f, rules, 0o644); err != nil {
		t.Fatal(err)
	}
	if _, err := runTool(t, promtool, "check", "rules", f); err != nil {
		t.Errorf("%s: %v", what, err)
	}
}

// ---- generated files ----

// TestGeneratedFilesUpToDate fails when a committed file drifts from what
// `make generate` writes from Default().
func TestGeneratedFilesUpToDate(t *testing.T) {
	files, err := mixin.Generate(root)
	if err != nil {
		t.Fatal(err)
	}
	for _, f := range files {
		if !f.UpToDate() {
			t.Errorf("%s is out of date with deploy/mixin: run `make generate`", f.Path)
		}
	}
}

// TestPromtoolCheck: promtool accepts every generated rule file: alerts.yml,
// the kustomize PrometheusRule's groups, and the rules of odd but valid
// configs (scaled down, extra labels, group labels, other severities).
func TestPromtoolCheck(t *testing.T) {
	alerts, err := os.ReadFile(filepath.Join(root, mixin.AlertsFile))
	if err != nil {
		t.Fatal(err)
	}
	checkRules(t, mixin.AlertsFile, alerts)

	kube, err := os.ReadFile(filepath.Join(root, mixin.KustomizeRuleFile))
	if err != nil {
		t.Fatal(err)
	}
	checkRules(t, mixin.KustomizeRuleFile, specGroups(t, kube))

	for name, c := range testConfigs() {
		rules, err := mixin.Rules(c)
		if err != nil {
			t.Errorf("%s: %v", name, err)
			continue
		}
		checkRules(t, name, rules)
	}
}

func testConfigs() map[string]mixin.Config {
	custom := mixin.Default()
	custom.Selector = `job=~"ci-exporter|yunxiao-exporter", namespace!="staging"`
	custom.GroupLabels = []string{"cluster", "namespace"}
	custom.ExtraLabels = map[string]string{"team": "ci", "page": "no"}
	custom.PipelineRunStuck.Severity = "critical"
	custom.PipelineRunFailed.KeepFiringFor = mixin.Duration(10 * time.Minute)
	custom.PipelineNoRecentSuccess.Threshold = mixin.Duration(3 * 24 * time.Hour)
	return map[string]mixin.Config{
		"default":       mixin.Default(),
		"scaled 1/120":  mixin.Default().Scale(1.0 / 120),
		"scaled 1/3600": mixin.Default().Scale(1.0 / 3600),
		"custom":        custom,
	}
}

// specGroups turns a PrometheusRule manifest into a rule file.
func specGroups(t *testing.T, manifest []byte) []byte {
	t.Helper()
	var pr struct {
		Spec struct {
			Groups any `yaml:"groups"`
		} `yaml:"spec"`
	}
	if err := yaml.Unmarshal(manifest, &pr); err != nil {
		t.Fatal(err)
	}
	out, err := yaml.Marshal(map[string]any{"groups": pr.Spec.Groups})
	if err != nil {
		t.Fatal(err)
	}
	return out
}

// ---- the Config ----

func TestDefaultValidates(t *testing.T) {
	if err := mixin.Default().Validate(); err != nil {
		t.Fatal(err)
	}
	if mixin.Default().Selector == `job=~".*yunxiao.*"` {
		t.Error("the default selector is the regex that catches a blackbox probe of the API")
	}
}

func TestValidateRejects(t *testing.T) {
	for want, mutate := range map[string]func(*mixin.Config){
		"selector: empty":                          func(c *mixin.Config) { c.Selector = "" },
		"selector: \"job\" is not a label matcher": func(c *mixin.Config) { c.Selector = "job" },
		"matches the empty label set":              func(c *mixin.Config) { c.Selector = `job=~".*"` },
		"groupLabels: \"pipeline_id\" is already":  func(c *mixin.Config) { c.GroupLabels = []string{"pipeline_id"} },
		"groupLabels: \"a-b\" is not a label name": func(c *mixin.Config) { c.GroupLabels = []string{"a-b"} },
		"extraLabels: \"severity\" is set per alert": func(c *mixin.Config) {
			c.ExtraLabels = map[string]string{"severity": "page"}
		},
		"pipelineRunStuck.severity: \"page\"":          func(c *mixin.Config) { c.PipelineRunStuck.Severity = "page" },
		"pipelineRunStuck.threshold: must be positive": func(c *mixin.Config) { c.PipelineRunStuck.Threshold = 0 },
		"pipelineNoRecentSuccess.threshold: 14d is longer": func(c *mixin.Config) {
			c.PipelineNoRecentSuccess.Threshold = mixin.Duration(14 * 24 * time.Hour)
		},
		"pipelineFailureRatioHigh.ratio: 1.5": func(c *mixin.Config) { c.PipelineFailureRatioHigh.Ratio = 1.5 },
		"gapWindow: must be positive":         func(c *mixin.Config) { c.GapWindow = 0 },
		"apiDown.for: must not be negative":   func(c *mixin.Config) { c.APIDown.For = -1 },
	} {
		c := mixin.Default()
		mutate(&c)
		err := c.Validate()
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("got %v, want an error saying %q", err, want)
		}
		if _, rerr := mixin.Rules(c); rerr == nil {
			t.Errorf("Rules accepted a config that fails validation (%s)", want)
		}
	}
}

func TestDuration(t *testing.T) {
	for in, want := range map[string][2]string{
		"0":       {"0s", "0"},
		"500ms":   {"500ms", "0.5"},
		"90s":     {"1m30s", "90"},
		"2h":      {"2h", "7200"},
		"1w":      {"7d", "604800"},
		"1d12h":   {"1d12h", "129600"},
		"1h1s1ms": {"1h1s1ms", "3601.001"},
	} {
		d, err := mixin.ParseDuration(in)
		if err != nil {
			t.Fatal(err)
		}
		if d.String() != want[0] || d.Seconds() != want[1] {
			t.Errorf("%s: String %s Seconds %s, want %s %s", in, d.String(), d.Seconds(), want[0], want[1])
		}
	}
}

// TestScale: every duration of the Config shrinks, nothing else changes,
// and the rules carry the scaled values.
func TestScale(t *testing.T) {
	d, s := mixin.Default(), mixin.Default().Scale(1.0/60)
	var walk func(a, b reflect.Value, path string)
	durations := 0
	walk = func(a, b reflect.Value, path string) {
		switch {
		case a.Type() == reflect.TypeFor[mixin.Duration]():
			durations++
			if a.Int() != 0 && b.Int()*60 != a.Int() {
				t.Errorf("%s: %v scaled to %v", path, mixin.Duration(a.Int()), mixin.Duration(b.Int()))
			}
		case a.Kind() == reflect.Struct:
			for i := range a.NumField() {
				walk(a.Field(i), b.Field(i), path+"."+a.Type().Field(i).Name)
			}
		default:
			if !reflect.DeepEqual(a.Interface(), b.Interface()) {
				t.Errorf("%s changed: %v -> %v", path, a.Interface(), b.Interface())
			}
		}
	}
	walk(reflect.ValueOf(d), reflect.ValueOf(s), "Config")
	if durations < 20 {
		t.Errorf("only %d durations found", durations)
	}
	rules, err := mixin.Rules(s)
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"> 120\n", "[3s]", "for: 1m\n", "for: 5s\n", "[24m]", "offset 30s"} {
		if !bytes.Contains(rules, []byte(want)) {
			t.Errorf("scaled rules lack %q", want)
		}
	}
	if d.Scale(1e-9).PipelineRunStuck.Threshold != mixin.Duration(time.Millisecond) {
		t.Error("a tiny factor must leave 1ms, not 0")
	}
}

// TestRulesShape: the structural promises of the rules, for any config:
// every per-pipeline alert is keyed by pipeline only, every alert carries
// the extra labels and its severity, every gauge is read through the gap
// window, no le= selector.
func TestRulesShape(t *testing.T) {
	for name, c := range testConfigs() {
		rules, err := mixin.Rules(c)
		if err != nil {
			t.Fatal(err)
		}
		var f struct {
			Groups []struct {
				Rules []struct {
					Alert  string            `yaml:"alert"`
					Expr   string            `yaml:"expr"`
					Labels map[string]string `yaml:"labels"`
				} `yaml:"rules"`
			} `yaml:"groups"`
		}
		if err := yaml.Unmarshal(rules, &f); err != nil {
			t.Fatal(err)
		}
		var names []string
		for _, g := range f.Groups {
			for _, r := range g.Rules {
				names = append(names, r.Alert)
				for k, v := range c.ExtraLabels {
					if r.Labels[k] != v {
						t.Errorf("%s: %s lacks extra label %s=%q", name, r.Alert, k, v)
					}
				}
				if r.Labels["severity"] == "" {
					t.Errorf("%s: %s has no severity", name, r.Alert)
				}
				if strings.Contains(r.Expr, "instance") && strings.Contains(r.Alert, "Pipeline") {
					t.Errorf("%s: per-pipeline alert %s mentions instance: %s", name, r.Alert, r.Expr)
				}
				for _, sel := range regexp.MustCompile(`\b(yunxiao_\w+|up)\{([^}]*)\}`).FindAllStringSubmatch(r.Expr, -1) {
					if !strings.HasPrefix(sel[2], c.Selector) {
						t.Errorf("%s: %s: %s does not use the selector %s", name, r.Alert, sel[0], c.Selector)
					}
				}
			}
		}
		if !reflect.DeepEqual(names, mixin.AlertNames()) {
			t.Errorf("%s: alerts %v, want %v", name, names, mixin.AlertNames())
		}
	}
}

// ---- Helm ----

// helmRules renders the chart's PrometheusRule with the arguments and
// returns its groups as a rule file.
func helmRules(t *testing.T, helm string, args ...string) ([]byte, error) {
	t.Helper()
	base := []string{"template", "yunxiao", filepath.Join(root, "deploy/helm/yunxiao-exporter"), "--namespace", "monitoring",
		"--set", "prometheusRule.enabled=true", "--set", "config.pipelines[0].id=1",
		"--show-only", "templates/prometheusrule.yaml"}
	out, err := runTool(t, helm, append(base, args...)...)
	if err != nil {
		return nil, err
	}
	return specGroups(t, out), nil
}

func parseGroups(t *testing.T, rules []byte) any {
	t.Helper()
	var f struct {
		Groups any `yaml:"groups"`
	}
	if err := yaml.Unmarshal(rules, &f); err != nil {
		t.Fatal(err)
	}
	return f.Groups
}

// TestHelmRulesMatchConfig: the chart's rules, rendered by helm with values,
// equal Rules of the Config those values describe; so a user overrides the
// selector, thresholds, for, severities and extra labels from values.yaml
// and gets exactly the mixin's rules for them. promtool accepts each.
func TestHelmRulesMatchConfig(t *testing.T) {
	helm := tool(t, "helm")
	withSelector := func(c mixin.Config, sel string) mixin.Config {
		c.Selector = sel
		return c
	}
	custom := mixin.Default()
	custom.Selector = `job="ci-exporter", cluster="prod"`
	custom.GroupLabels = []string{"cluster"}
	custom.ExtraLabels = map[string]string{"team": "ci", "yes": "true"}
	custom.PipelineRunStuck.Threshold = mixin.Duration(3 * time.Hour)
	custom.PipelineRunStuck.Severity = "critical"
	custom.PipelineRunFailed.KeepFiringFor = mixin.Duration(10 * time.Minute)
	custom.PipelineWaitingTooLong.For = mixin.Duration(90 * time.Minute)
	custom.PipelineDataStale.Threshold = mixin.Duration(1500 * time.Millisecond)
	custom.PipelineFailureRatioHigh.Ratio = 0.25
	custom.PipelineFailureRatioHigh.MinRuns = 10
	custom.GapWindow = mixin.Duration(5 * time.Minute)
	for _, tc := range []struct {
		name string
		args []string
		want mixin.Config
	}{
		// The job the chart's ServiceMonitor gives: the Service's name.
		{"defaults", nil, withSelector(mixin.Default(), `job="yunxiao-yunxiao-exporter"`)},
		// ... or the value of its jobLabel label.
		{"jobLabel", []string{"--set", "serviceMonitor.jobLabel=app.kubernetes.io/name"}, mixin.Default()},
		{"jobLabel from service.labels", []string{"--set", "serviceMonitor.jobLabel=scrape-job", "--set", "service.labels.scrape-job=ci"},
			withSelector(mixin.Default(), `job="ci"`)},
		{"overrides", []string{
			"--set-string", "prometheusRule.alerts.selector=" + strings.ReplaceAll(custom.Selector, ",", `\,`), // --set splits at commas
			"--set", "prometheusRule.alerts.groupLabels={cluster}",
			"--set", "prometheusRule.alerts.extraLabels.team=ci",
			"--set-string", "prometheusRule.alerts.extraLabels.yes=true",
			"--set", "prometheusRule.alerts.pipelineRunStuck.threshold=3h",
			"--set", "prometheusRule.alerts.pipelineRunStuck.severity=critical",
			"--set", "prometheusRule.alerts.pipelineRunFailed.keepFiringFor=10m",
			"--set", "prometheusRule.alerts.pipelineWaitingTooLong.for=1h30m",
			"--set", "prometheusRule.alerts.pipelineDataStale.threshold=1s500ms",
			"--set", "prometheusRule.alerts.pipelineFailureRatioHigh.ratio=0.25",
			"--set", "prometheusRule.alerts.pipelineFailureRatioHigh.minRuns=10",
			"--set", "prometheusRule.alerts.gapWindow=5m",
		}, custom},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, err := helmRules(t, helm, tc.args...)
			if err != nil {
				t.Fatal(err)
			}
			want, err := mixin.Rules(tc.want)
			if err != nil {
				t.Fatal(err)
			}
			if g, w := parseGroups(t, got), parseGroups(t, want); !reflect.DeepEqual(g, w) {
				t.Errorf("helm's rules differ from mixin.Rules\n--- helm\n%s\n--- mixin\n%s", got, want)
			}
			checkRules(t, "helm "+tc.name, got)
		})
	}
}

// TestHelmRejects: the chart refuses what would render broken rules.
func TestHelmRejects(t *testing.T) {
	helm := tool(t, "helm")
	for want, args := range map[string][]string{
		`"2 hours" is not a Prometheus duration`: {"--set", "prometheusRule.alerts.pipelineRunStuck.threshold=2 hours"},
		"severity is set per alert":              {"--set", "prometheusRule.alerts.extraLabels.severity=page"},
	} {
		_, err := helmRules(t, helm, args...)
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("%v: got %v, want an error saying %q", args, err, want)
		}
	}
}

// TestHelmValuesBlock: the values block decodes, key by key, into the
// Config it was generated from (an unknown or missing key is an error).
func TestHelmValuesBlock(t *testing.T) {
	data, err := os.ReadFile(filepath.Join(root, mixin.HelmValuesFile))
	if err != nil {
		t.Fatal(err)
	}
	var values struct {
		PrometheusRule struct {
			Alerts yaml.Node `yaml:"alerts"`
		} `yaml:"prometheusRule"`
	}
	if err := yaml.Unmarshal(data, &values); err != nil {
		t.Fatal(err)
	}
	var buf bytes.Buffer
	if err := yaml.NewEncoder(&buf).Encode(&values.PrometheusRule.Alerts); err != nil {
		t.Fatal(err)
	}
	dec := yaml.NewDecoder(&buf)
	dec.KnownFields(true)
	var got mixin.Config
	if err := dec.Decode(&got); err != nil && !errors.Is(err, io.EOF) {
		t.Fatal(err)
	}
	want := mixin.Default()
	want.Selector = ""
	if !reflect.DeepEqual(got, want) {
		t.Errorf("values.yaml prometheusRule.alerts = %+v, want %+v", got, want)
	}
}

// ---- every scrape config agrees with the selector ----

// TestScrapeConfigsMatchSelector: every Prometheus config and ServiceMonitor
// of this repository gives the exporter a job the default selector matches,
// and no other job does.
func TestScrapeConfigsMatchSelector(t *testing.T) {
	sel, err := mixin.ParseSelector(mixin.Default().Selector)
	if err != nil {
		t.Fatal(err)
	}
	for _, file := range []string{"deploy/prometheus/prometheus.yml", "deploy/docker-compose/prometheus.yml"} {
		var cfg struct {
			ScrapeConfigs []struct {
				JobName       string `yaml:"job_name"`
				StaticConfigs []struct {
					Targets []string `yaml:"targets"`
				} `yaml:"static_configs"`
			} `yaml:"scrape_configs"`
		}
		data, err := os.ReadFile(filepath.Join(root, file))
		if err != nil {
			t.Fatal(err)
		}
		if err := yaml.Unmarshal(data, &cfg); err != nil {
			t.Fatal(err)
		}
		exporterJobs := 0
		for _, sc := range cfg.ScrapeConfigs {
			exporter := false
			for _, st := range sc.StaticConfigs {
				for _, target := range st.Targets {
					exporter = exporter || strings.HasSuffix(target, ":10036")
				}
			}
			matched := mixin.MatchesLabels(sel, map[string]string{"job": sc.JobName})
			if exporter {
				exporterJobs++
			}
			if matched != exporter {
				t.Errorf("%s: job %q scrapes the exporter: %v, matched by the alerts' selector %s: %v", file, sc.JobName, exporter, mixin.Default().Selector, matched)
			}
		}
		if exporterJobs == 0 {
			t.Errorf("%s: no job scrapes the exporter", file)
		}
	}

	// Kustomize: the ServiceMonitor's jobLabel names a label of the
	// Service, whose value becomes the job.
	var sm struct {
		Spec struct {
			JobLabel string `yaml:"jobLabel"`
		} `yaml:"spec"`
	}
	var svc struct {
		Metadata struct {
			Name   string            `yaml:"name"`
			Labels map[string]string `yaml:"labels"`
		} `yaml:"metadata"`
	}
	for file, v := range map[string]any{"deploy/kubernetes/base/servicemonitor.yaml": &sm, "deploy/kubernetes/base/service.yaml": &svc} {
		data, err := os.ReadFile(filepath.Join(root, file))
		if err != nil {
			t.Fatal(err)
		}
		if err := yaml.Unmarshal(data, v); err != nil {
			t.Fatal(err)
		}
	}
	job := svc.Metadata.Name
	if v := svc.Metadata.Labels[sm.Spec.JobLabel]; sm.Spec.JobLabel != "" && v != "" {
		job = v
	}
	if !mixin.MatchesLabels(sel, map[string]string{"job": job}) {
		t.Errorf("the kustomize ServiceMonitor gives job %q, which the alerts' selector %s does not match", job, mixin.Default().Selector)
	}
	// Helm derives its selector from its ServiceMonitor: TestHelmRulesMatchConfig.
}

func TestParseSelector(t *testing.T) {
	sel, err := mixin.ParseSelector(`job="yunxiao-exporter", namespace=~"ci|prod" ,env!="dev"`)
	if err != nil {
		t.Fatal(err)
	}
	for labels, want := range map[string]bool{
		"yunxiao-exporter/ci/prod": true,
		"yunxiao-exporter/qa/prod": false,
		"yunxiao-exporter/ci/dev":  false,
		"blackbox/ci/prod":         false,
	} {
		p := strings.Split(labels, "/")
		if got := mixin.MatchesLabels(sel, map[string]string{"job": p[0], "namespace": p[1], "env": p[2]}); got != want {
			t.Errorf("%s: %v, want %v", labels, got, want)
		}
	}
	// The old default matched a blackbox probe named after the API.
	old, _ := mixin.ParseSelector(`job=~".*yunxiao.*"`)
	if !mixin.MatchesLabels(old, map[string]string{"job": "blackbox-yunxiao-api"}) {
		t.Error("regexp matchers are not anchored as in PromQL")
	}
	if mixin.MatchesLabels(sel, map[string]string{"job": "blackbox-yunxiao-api", "namespace": "ci"}) {
		t.Error("the default selector matches a blackbox job")
	}
}
