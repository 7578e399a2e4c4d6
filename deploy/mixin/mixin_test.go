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
	"slices"
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
	custom.ExtraLabels = map[string]string{"owner": "ci", "page": "no"}
	custom.PipelineRunStuck.Severity = "critical"
	custom.PipelineRunFailed.KeepFiringFor = mixin.Duration(10 * time.Minute)
	custom.PipelineNoRecentSuccess.Threshold = mixin.Duration(3 * 24 * time.Hour)
	// Delivery by Flow group only, evaluated at Prometheus' interval,
	// other windows and one quantile.
	delivery := mixin.Default()
	delivery.GroupLabels = []string{"cluster"}
	delivery.PipelineLabels = []string{"group", "env"}
	delivery.Delivery.TeamLabels = []string{"group", "env"}
	delivery.Delivery.Interval = 0
	delivery.Delivery.DeploymentFrequencyWindows = []mixin.Duration{mixin.Duration(14 * 24 * time.Hour)}
	delivery.Delivery.ChangeFailureRateWindows = []mixin.Duration{mixin.Duration(14 * 24 * time.Hour), mixin.Duration(90 * time.Minute)}
	delivery.Delivery.TimeToRestoreWindow = mixin.Duration(7 * 24 * time.Hour)
	delivery.Delivery.TimeToRestoreQuantiles = []float64{0.75}
	// No pipeline labels: no join in the alerts, one team-level series
	// over every deploy pipeline.
	noTeam := mixin.Default()
	noTeam.PipelineLabels = []string{}
	noTeam.Delivery.TeamLabels = []string{}
	return map[string]mixin.Config{
		"default":       mixin.Default(),
		"scaled 1/120":  mixin.Default().Scale(1.0 / 120),
		"scaled 1/3600": mixin.Default().Scale(1.0 / 3600),
		"custom":        custom,
		"delivery":      delivery,
		"no team":       noTeam,
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
		case a.Kind() == reflect.Slice && a.Type().Elem() == reflect.TypeFor[mixin.Duration]():
			if a.Len() != b.Len() {
				t.Errorf("%s: %d durations scaled to %d", path, a.Len(), b.Len())
				return
			}
			for i := range a.Len() {
				walk(a.Index(i), b.Index(i), fmt.Sprintf("%s[%d]", path, i))
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
	for _, want := range []string{"> 120\n", "[3s]", "for: 1m\n", "for: 5s\n", "[24m]", "offset 30s",
		"interval: 2s\n", "yunxiao:pipeline:deployments:increase24m", "[12h])", "yunxiao:team:restore_duration_seconds:quantile12h"} {
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
				Name  string `yaml:"name"`
				Rules []struct {
					Alert  string            `yaml:"alert"`
					Record string            `yaml:"record"`
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
				if r.Record != "" {
					// Recording rules: TestRecordingRulesShape.
					continue
				}
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
				// Per-pipeline alerts carry pipelineLabels of the
				// deduplicated info, and fire without it; the others
				// never read it.
				pid := strings.Join(append(append([]string{}, c.GroupLabels...), "pipeline_id"), ", ")
				if g.Name == "yunxiao_pipelines" && len(c.PipelineLabels) > 0 {
					for _, want := range []string{
						"* on (" + pid + ") group_left (" + strings.Join(c.PipelineLabels, ", ") + ")\ntopk by (" + pid + ") (1,\n",
						"max by (" + pid + ", " + strings.Join(c.PipelineLabels, ", ") + ") (last_over_time(yunxiao_pipeline_info{" + c.Selector + "}[" + c.GapWindow.String() + "]))",
						"\nor on (" + pid + ")\n(\n",
					} {
						if !strings.Contains(r.Expr, want) {
							t.Errorf("%s: %s does not join the info with %q:\n%s", name, r.Alert, want, r.Expr)
						}
					}
					if !strings.HasPrefix(r.Expr, "(\n") {
						t.Errorf("%s: %s: the joined expression is not parenthesised:\n%s", name, r.Alert, r.Expr)
					}
				} else if strings.Contains(r.Expr, "yunxiao_pipeline_info") {
					t.Errorf("%s: %s reads yunxiao_pipeline_info: %s", name, r.Alert, r.Expr)
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
	custom.ExtraLabels = map[string]string{"owner": "ci", "yes": "true"}
	custom.PipelineRunStuck.Threshold = mixin.Duration(3 * time.Hour)
	custom.PipelineRunStuck.Severity = "critical"
	custom.PipelineRunFailed.KeepFiringFor = mixin.Duration(10 * time.Minute)
	custom.PipelineWaitingTooLong.For = mixin.Duration(90 * time.Minute)
	custom.PipelineDataStale.Threshold = mixin.Duration(1500 * time.Millisecond)
	custom.PipelineFailureRatioHigh.Ratio = 0.25
	custom.PipelineFailureRatioHigh.MinRuns = 10
	custom.GapWindow = mixin.Duration(5 * time.Minute)
	custom.PipelineLabels = []string{"team", "env"}
	custom.WebhookSilent.Threshold = mixin.Duration(12 * time.Hour)
	custom.Delivery.TeamLabels = []string{"team", "env"}
	custom.Delivery.Interval = 0
	custom.Delivery.DeploymentFrequencyWindows = []mixin.Duration{mixin.Duration(7 * 24 * time.Hour), mixin.Duration(14 * 24 * time.Hour)}
	custom.Delivery.ChangeFailureRateWindows = []mixin.Duration{mixin.Duration(14 * 24 * time.Hour)}
	custom.Delivery.TimeToRestoreWindow = mixin.Duration(90 * time.Minute)
	custom.Delivery.TimeToRestoreQuantiles = []float64{0.25, 0.95}
	noTeam := mixin.Default()
	noTeam.PipelineLabels = []string{}
	noTeam.Delivery.TeamLabels = []string{}
	noTeam.Delivery.DeploymentFrequencyWindows = []mixin.Duration{}
	noTeam.Delivery.TimeToRestoreQuantiles = []float64{}
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
			"--set", "prometheusRule.alerts.extraLabels.owner=ci",
			"--set-string", "prometheusRule.alerts.extraLabels.yes=true",
			"--set", "prometheusRule.alerts.pipelineRunStuck.threshold=3h",
			"--set", "prometheusRule.alerts.pipelineRunStuck.severity=critical",
			"--set", "prometheusRule.alerts.pipelineRunFailed.keepFiringFor=10m",
			"--set", "prometheusRule.alerts.pipelineWaitingTooLong.for=1h30m",
			"--set", "prometheusRule.alerts.pipelineDataStale.threshold=1s500ms",
			"--set", "prometheusRule.alerts.pipelineFailureRatioHigh.ratio=0.25",
			"--set", "prometheusRule.alerts.pipelineFailureRatioHigh.minRuns=10",
			"--set", "prometheusRule.alerts.gapWindow=5m",
			"--set", "prometheusRule.alerts.pipelineLabels={team,env}",
			"--set", "prometheusRule.alerts.webhookSilent.threshold=12h",
			"--set", "prometheusRule.alerts.delivery.teamLabels={team,env}",
			"--set", "prometheusRule.alerts.delivery.interval=0s",
			"--set", "prometheusRule.alerts.delivery.deploymentFrequencyWindows={7d,14d}",
			"--set", "prometheusRule.alerts.delivery.changeFailureRateWindows={14d}",
			"--set", "prometheusRule.alerts.delivery.timeToRestoreWindow=1h30m",
			"--set", "prometheusRule.alerts.delivery.timeToRestoreQuantiles={0.25,0.95}",
		}, custom},
		// Empty lists render no rule for them; no team labels, one
		// team-level series.
		{"delivery without team", []string{
			"--set", "prometheusRule.alerts.pipelineLabels=null",
			"--set", "prometheusRule.alerts.delivery.teamLabels=null",
			"--set", "prometheusRule.alerts.delivery.deploymentFrequencyWindows=null",
			"--set", "prometheusRule.alerts.delivery.timeToRestoreQuantiles=null",
		}, withSelector(noTeam, `job="yunxiao-yunxiao-exporter"`)},
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
		`"2 hours" is not a Prometheus duration`:      {"--set", "prometheusRule.alerts.pipelineRunStuck.threshold=2 hours"},
		"severity is set per alert":                   {"--set", "prometheusRule.alerts.extraLabels.severity=page"},
		`"1 week" is not a Prometheus duration`:       {"--set", "prometheusRule.alerts.delivery.changeFailureRateWindows={1 week}"},
		"extraLabels: team is also in pipelineLabels": {"--set", "prometheusRule.alerts.extraLabels.team=ci"},
		`"6 hours" is not a Prometheus duration`:      {"--set", "prometheusRule.alerts.webhookSilent.threshold=6 hours"},
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

// ---- recording rules ----

// TestRecordingRulesShape: the delivery recording rules, for any config:
// named in the yunxiao: namespace as level:metric:operations, every raw
// series read through the selector, never keyed by instance, every join to
// yunxiao_pipeline_info guarded against many-to-many, no bucket selected by
// an integer-looking le, and one rule per window and quantile.
func TestRecordingRulesShape(t *testing.T) {
	name := regexp.MustCompile(`^yunxiao:(pipeline|team):[a-z_]+:(increase|ratio|quantile)[0-9a-z]+$`)
	for cname, c := range testConfigs() {
		rules, err := mixin.Rules(c)
		if err != nil {
			t.Fatal(err)
		}
		var f struct {
			Groups []struct {
				Name     string `yaml:"name"`
				Interval string `yaml:"interval"`
				Rules    []struct {
					Alert  string            `yaml:"alert"`
					Record string            `yaml:"record"`
					Expr   string            `yaml:"expr"`
					Labels map[string]string `yaml:"labels"`
				} `yaml:"rules"`
			} `yaml:"groups"`
		}
		if err := yaml.Unmarshal(rules, &f); err != nil {
			t.Fatal(err)
		}
		var records []string
		quantiles := map[string][]string{}
		for _, g := range f.Groups {
			for _, r := range g.Rules {
				if r.Record == "" {
					continue
				}
				if g.Name != "yunxiao_delivery" {
					t.Errorf("%s: record %s in group %s", cname, r.Record, g.Name)
				}
				if want := c.Delivery.Interval.String(); g.Interval != want && !(want == "0s" && g.Interval == "") {
					t.Errorf("%s: group interval %q, want %s", cname, g.Interval, c.Delivery.Interval)
				}
				where := cname + ": " + r.Record
				if !name.MatchString(r.Record) {
					t.Errorf("%s: not yunxiao:<level>:<metric>:<operations>", where)
				}
				if q := r.Labels["quantile"]; q != "" {
					quantiles[r.Record] = append(quantiles[r.Record], q)
				} else if len(r.Labels) > 0 {
					t.Errorf("%s: labels %v", where, r.Labels)
				}
				if !slices.Contains(records, r.Record) {
					records = append(records, r.Record)
				}
				for _, m := range regexp.MustCompile(`\b(by|on|without|group_left)\s*\(([^)]*)\)`).FindAllStringSubmatch(r.Expr, -1) {
					if regexp.MustCompile(`\b(instance|job)\b`).MatchString(m[2]) {
						t.Errorf("%s: keyed by job or instance: %s", where, m[0])
					}
				}
				for _, sel := range regexp.MustCompile(`\b(yunxiao_[a-z_]+)\{([^}]*)\}`).FindAllStringSubmatch(r.Expr, -1) {
					if !strings.HasPrefix(sel[2], c.Selector) {
						t.Errorf("%s: %s does not use the selector %s", where, sel[0], c.Selector)
					}
				}
				if strings.Contains(r.Expr, "yunxiao_pipeline_info") &&
					(!strings.Contains(r.Expr, "topk by (") || !strings.Contains(r.Expr, "group_left") || !strings.Contains(r.Expr, "last_over_time(yunxiao_pipeline_info")) {
					t.Errorf("%s: joins yunxiao_pipeline_info without last_over_time, topk by pipeline and group_left: %s", where, r.Expr)
				}
				// The same labels as the alerts carry (pipelineLabels).
				if carry := "group_left (" + strings.Join(append([]string{"pipeline_name"}, c.PipelineLabels...), ", ") + ")"; strings.Contains(r.Expr, "group_left") && !strings.Contains(r.Expr, carry) {
					t.Errorf("%s: does not carry %s: %s", where, carry, r.Expr)
				}
				for _, m := range regexp.MustCompile(`\ble\s*=~?\s*"([^"]*)"`).FindAllStringSubmatch(r.Expr, -1) {
					if m[1] != "+Inf" {
						t.Errorf("%s: selects le=%q", where, m[1])
					}
				}
				if strings.HasPrefix(r.Record, "yunxiao:team:") {
					for _, l := range c.Delivery.TeamLabels {
						if !strings.Contains(r.Expr, l) {
							t.Errorf("%s: does not aggregate by team label %s", where, l)
						}
					}
				}
			}
		}
		if want := mixin.RecordNames(c); !reflect.DeepEqual(records, want) {
			t.Errorf("%s: records %v, want RecordNames %v", cname, records, want)
		}
		var qs []string
		for _, q := range c.Delivery.TimeToRestoreQuantiles {
			qs = append(qs, fmt.Sprint(q))
		}
		for rec, got := range quantiles {
			if !reflect.DeepEqual(got, qs) {
				t.Errorf("%s: %s for quantiles %v, want %v", cname, rec, got, qs)
			}
		}
		for _, w := range c.Delivery.DeploymentFrequencyWindows {
			for _, level := range []string{"pipeline", "team"} {
				if rec := "yunxiao:" + level + ":deployments:increase" + w.String(); !slices.Contains(records, rec) {
					t.Errorf("%s: no %s", cname, rec)
				}
			}
		}
		for _, w := range c.Delivery.ChangeFailureRateWindows {
			for _, level := range []string{"pipeline", "team"} {
				if rec := "yunxiao:" + level + ":change_failure_rate:ratio" + w.String(); !slices.Contains(records, rec) {
					t.Errorf("%s: no %s", cname, rec)
				}
			}
		}
		if !bytes.Contains(rules, []byte("Lead time for changes is NOT recorded")) {
			t.Errorf("%s: the rule file does not say that lead time is not recorded", cname)
		}
	}
}

// TestValidateRejectsDelivery: the delivery settings that would render
// broken or clashing rules.
func TestValidateRejectsDelivery(t *testing.T) {
	for want, mutate := range map[string]func(*mixin.Config){
		`pipelineLabels: "le" is a label of the series`:    func(c *mixin.Config) { c.PipelineLabels = []string{"team", "le"} },
		`pipelineLabels: "severity" is a label of the`:     func(c *mixin.Config) { c.PipelineLabels = []string{"severity"} },
		`pipelineLabels: "a-b" is not a label name`:        func(c *mixin.Config) { c.PipelineLabels = []string{"a-b"} },
		`pipelineLabels: "team" is listed twice`:           func(c *mixin.Config) { c.PipelineLabels = []string{"team", "team"} },
		`pipelineLabels: "cluster" is in groupLabels`:      func(c *mixin.Config) { c.GroupLabels = []string{"cluster"}; c.PipelineLabels = []string{"cluster"} },
		`extraLabels: "team" is also in pipelineLabels`:    func(c *mixin.Config) { c.ExtraLabels = map[string]string{"team": "ci"} },
		`delivery.teamLabels: "env" is not one of`:         func(c *mixin.Config) { c.Delivery.TeamLabels = []string{"env"} },
		`delivery.interval: must not be negative`:          func(c *mixin.Config) { c.Delivery.Interval = -1 },
		`delivery.deploymentFrequencyWindows: 0s: must be`: func(c *mixin.Config) { c.Delivery.DeploymentFrequencyWindows = []mixin.Duration{0} },
		`delivery.changeFailureRateWindows: 7d is listed tw`: func(c *mixin.Config) {
			c.Delivery.ChangeFailureRateWindows = append(c.Delivery.ChangeFailureRateWindows, c.Delivery.ChangeFailureRateWindows[0])
		},
		`delivery.timeToRestoreWindow: must be positive`: func(c *mixin.Config) { c.Delivery.TimeToRestoreWindow = 0 },
		`delivery.timeToRestoreQuantiles: 1, want`:       func(c *mixin.Config) { c.Delivery.TimeToRestoreQuantiles = []float64{1} },
	} {
		c := mixin.Default()
		mutate(&c)
		err := c.Validate()
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("got %v, want an error saying %q", err, want)
		}
	}
}

// TestDefaultDelivery: what the dashboards and docs promise of the default
// delivery rules.
func TestDefaultDelivery(t *testing.T) {
	got := mixin.RecordNames(mixin.Default())
	for _, want := range []string{
		"yunxiao:pipeline:deployments:increase1d", "yunxiao:pipeline:deployments:increase7d",
		"yunxiao:team:deployments:increase1d", "yunxiao:team:deployments:increase7d",
		"yunxiao:pipeline:change_failure_rate:ratio7d", "yunxiao:pipeline:change_failure_rate:ratio30d",
		"yunxiao:team:change_failure_rate:ratio7d", "yunxiao:team:change_failure_rate:ratio30d",
		"yunxiao:pipeline:restore_duration_seconds:quantile30d", "yunxiao:team:restore_duration_seconds:quantile30d",
		"yunxiao:pipeline:restores:increase30d", "yunxiao:team:restores:increase30d",
	} {
		if !slices.Contains(got, want) {
			t.Errorf("Default() records no %s; records %v", want, got)
		}
	}
	if d := mixin.Default().Delivery.Interval; d <= 0 || d >= mixin.Duration(5*time.Minute) {
		t.Errorf("default delivery interval %s: want a few minutes, under the 5m lookback", d)
	}
}
