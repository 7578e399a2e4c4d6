package prometheus_test

import (
	"bufio"
	"bytes"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"
	"unicode"

	"go.yaml.in/yaml/v3"
)

const (
	alertsFile     = "alerts.yml"
	alertsTestFile = "alerts_test.yml"
	configFile     = "prometheus.yml"
	runbookFile    = "../../docs/runbook.md"
	runbookURL     = "https://github.com/yunxiao-exporter/yunxiao_exporter/blob/main/docs/runbook.md#"
)

// promtools returns every distinct promtool found: the one on PATH (Debian's
// 2.42 in CI), the one `go install` puts in the Go bin directory (e.g.
// Prometheus 3.16: go install github.com/prometheus/prometheus/cmd/promtool@v0.316.0),
// and those listed in $PROMTOOLS (colon-separated), so the rules are tested
// on the Prometheus versions users run (3 changed range selection to
// left-open and normalises le/quantile values). Without any, the test is skipped,
// except in CI.
func promtools(t *testing.T) []string {
	t.Helper()
	var candidates []string
	if p, err := exec.LookPath("promtool"); err == nil {
		candidates = append(candidates, p)
	}
	candidates = append(candidates, filepath.Join(goBin(), "promtool"))
	candidates = append(candidates, filepath.SplitList(os.Getenv("PROMTOOLS"))...)
	var out []string
	seen := map[string]bool{}
	for _, c := range candidates {
		if fi, err := os.Stat(c); c == "" || err != nil || fi.IsDir() {
			continue
		}
		real, err := filepath.EvalSymlinks(c)
		if err != nil || seen[real] {
			continue
		}
		seen[real] = true
		out = append(out, c)
	}
	if len(out) == 0 {
		msg := "promtool not on PATH, so alerts.yml is neither checked nor unit-tested; " +
			"install it (Debian: apt-get install prometheus) to run this test"
		if os.Getenv("CI") == "true" {
			t.Fatal(msg)
		}
		t.Skip(msg)
	}
	return out
}

// TestPromtool checks the rules and runs their unit tests with every
// promtool found.
func TestPromtool(t *testing.T) {
	for i, promtool := range promtools(t) {
		// "promtool, version 2.42.0+ds (branch: ...)"; a `go install`ed
		// one has an empty version.
		version, _ := exec.Command(promtool, "--version").Output()
		name := fmt.Sprintf("promtool%d", i)
		if f := strings.Fields(string(version)); len(f) > 2 && f[1] == "version" && !strings.HasPrefix(f[2], "(") {
			name = f[2]
		}
		for _, args := range [][]string{
			{"check", "rules", alertsFile},
			{"test", "rules", alertsTestFile},
			{"check", "config", configFile},
		} {
			t.Run(name+"/"+strings.Join(args, "_"), func(t *testing.T) {
				cmd := exec.Command(promtool, args...)
				out, err := cmd.CombinedOutput()
				if err != nil {
					t.Fatalf("%s %s: %v\n%s", promtool, strings.Join(args, " "), err, out)
				}
			})
		}
	}
}

// integerBound matches a selector of an `le` or `quantile` label by a value
// that Prometheus 3 no longer stores: it normalises le="1" to le="1.0" (and
// quantile likewise), so `le="1"` selects nothing there. The value may be
// a regexp whose alternatives are checked one by one.
var integerBound = regexp.MustCompile(`\b(le|quantile)\s*(=~|!~|!=|=)\s*\\?"([^"\\]*)\\?"`)

var integerLooking = regexp.MustCompile(`^[+-]?[0-9]+$`)

// TestNoIntegerLe fails on a rule or dashboard query that selects a
// histogram bucket or a summary quantile by an integer-looking value.
func TestNoIntegerLe(t *testing.T) {
	files := []string{alertsFile, "../kubernetes/base/prometheusrule.yaml", "../helm/yunxiao-exporter/templates/prometheusrule.yaml"}
	dashboards, _ := filepath.Glob("../../dashboards/*.json")
	if len(dashboards) == 0 {
		t.Error("no dashboards found in ../../dashboards")
	}
	for _, f := range append(files, dashboards...) {
		data, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		for _, m := range integerBound.FindAllStringSubmatch(string(data), -1) {
			for _, alt := range strings.Split(m[3], "|") {
				if integerLooking.MatchString(alt) {
					t.Errorf("%s: %s selects %s=%q: Prometheus 3 stores it as %s.0; use %q", f, m[0], m[1], alt, alt, alt+".0")
				}
			}
		}
	}
	// The check itself.
	for in, bad := range map[string]bool{
		`x_bucket{le="1"}`: true, `x_bucket{le = "+Inf"}`: false, `x_bucket{le=~"0.5|10"}`: true,
		`x{quantile="0.99"}`: false, `"expr": "x_bucket{le=\"60\"}"`: true, `x{le="1.0"}`: false,
	} {
		got := false
		for _, m := range integerBound.FindAllStringSubmatch(in, -1) {
			for _, alt := range strings.Split(m[3], "|") {
				got = got || integerLooking.MatchString(alt)
			}
		}
		if got != bad {
			t.Errorf("integer le check on %s: %v, want %v", in, got, bad)
		}
	}
}

type ruleFile struct {
	Groups []struct {
		Name     string `yaml:"name"`
		Interval string `yaml:"interval"`
		Rules    []rule `yaml:"rules"`
	} `yaml:"groups"`
}

type rule struct {
	Alert         string            `yaml:"alert"`
	Record        string            `yaml:"record"`
	Expr          string            `yaml:"expr"`
	For           string            `yaml:"for"`
	KeepFiringFor string            `yaml:"keep_firing_for"`
	Labels        map[string]string `yaml:"labels"`
	Annotations   map[string]string `yaml:"annotations"`
}

type ruleTestFile struct {
	RuleFiles          []string `yaml:"rule_files"`
	EvaluationInterval string   `yaml:"evaluation_interval"`
	GroupEvalOrder     []string `yaml:"group_eval_order"`
	Tests              []struct {
		Interval       string      `yaml:"interval"`
		InputSeries    []yaml.Node `yaml:"input_series"`
		PromqlExprTest []yaml.Node `yaml:"promql_expr_test"`
		ExternalLabels yaml.Node   `yaml:"external_labels"`
		ExternalURL    string      `yaml:"external_url"`
		AlertRuleTest  []alertCase `yaml:"alert_rule_test"`
		Name           string      `yaml:"name"`
	} `yaml:"tests"`
}

type alertCase struct {
	EvalTime  string      `yaml:"eval_time"`
	Alertname string      `yaml:"alertname"`
	ExpAlerts []yaml.Node `yaml:"exp_alerts"`
}

func decodeStrict(t *testing.T, path string, v any) {
	t.Helper()
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	dec := yaml.NewDecoder(bytes.NewReader(data))
	dec.KnownFields(true)
	if err := dec.Decode(v); err != nil {
		t.Fatalf("%s: %v", path, err)
	}
}

func loadAlerts(t *testing.T) []rule {
	t.Helper()
	var f ruleFile
	decodeStrict(t, alertsFile, &f)
	var alerts []rule
	for _, g := range f.Groups {
		for _, r := range g.Rules {
			if r.Alert != "" {
				alerts = append(alerts, r)
			}
		}
	}
	if len(alerts) == 0 {
		t.Fatalf("%s holds no alerting rules", alertsFile)
	}
	return alerts
}

// githubAnchors returns the anchors GitHub gives the headings of a Markdown
// file: lowercased, punctuation other than '-' and '_' dropped, spaces
// turned into '-'.
func githubAnchors(t *testing.T, path string) map[string]bool {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	anchors := map[string]bool{}
	inFence := false
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		line := sc.Text()
		if strings.HasPrefix(line, "```") {
			inFence = !inFence
			continue
		}
		if inFence || !strings.HasPrefix(line, "#") {
			continue
		}
		heading := strings.TrimSpace(strings.TrimLeft(line, "#"))
		var b strings.Builder
		for _, r := range strings.ToLower(heading) {
			switch {
			case r == ' ':
				b.WriteRune('-')
			case r == '-' || r == '_' || unicode.IsLetter(r) || unicode.IsDigit(r):
				b.WriteRune(r)
			}
		}
		anchors[b.String()] = true
	}
	if err := sc.Err(); err != nil {
		t.Fatal(err)
	}
	return anchors
}

var alertName = regexp.MustCompile(`^Yunxiao[A-Z][A-Za-z]*$`)

// TestAlertMetadata checks what promtool does not: every alert's name,
// severity and annotations, and that its runbook section exists.
func TestAlertMetadata(t *testing.T) {
	alerts := loadAlerts(t)
	anchors := githubAnchors(t, runbookFile)
	seen := map[string]bool{}
	for _, r := range alerts {
		t.Run(r.Alert, func(t *testing.T) {
			if !alertName.MatchString(r.Alert) {
				t.Errorf("alert name %q is not CamelCase with the Yunxiao prefix", r.Alert)
			}
			if seen[r.Alert] {
				t.Errorf("alert %s is defined twice", r.Alert)
			}
			seen[r.Alert] = true
			if strings.TrimSpace(r.Expr) == "" {
				t.Error("empty expr")
			}
			if sev := r.Labels["severity"]; !slices.Contains([]string{"critical", "warning", "info"}, sev) {
				t.Errorf("severity %q, want critical, warning or info", sev)
			}
			for _, key := range []string{"summary", "description", "runbook_url"} {
				if strings.TrimSpace(r.Annotations[key]) == "" {
					t.Errorf("annotation %s missing", key)
				}
			}
			if strings.HasPrefix(r.Alert, "YunxiaoPipeline") {
				for _, label := range []string{"{{ $labels.pipeline_name }}", "{{ $labels.pipeline_id }}"} {
					if !strings.Contains(r.Annotations["description"], label) {
						t.Errorf("per-pipeline alert's description does not name the pipeline with %s", label)
					}
				}
			} else if strings.Contains(r.Annotations["description"], "$labels.pipeline_") {
				t.Errorf("exporter alert's description names a pipeline label, which it does not have")
			}
			anchor := strings.ToLower(r.Alert)
			if got, want := r.Annotations["runbook_url"], runbookURL+anchor; got != want {
				t.Errorf("runbook_url %q, want %q", got, want)
			}
			if !anchors[anchor] {
				t.Errorf("%s has no heading for #%s (want a heading \"## %s\")", runbookFile, anchor, r.Alert)
			}
		})
	}
}

// TestAlertTables: the alert tables of the runbook and README list every
// alert once, with its severity.
func TestAlertTables(t *testing.T) {
	alerts := loadAlerts(t)
	for _, file := range []string{runbookFile, "../../README.md"} {
		data, err := os.ReadFile(file)
		if err != nil {
			t.Fatal(err)
		}
		for _, r := range alerts {
			// | `Name` | severity | or | [Name](#anchor) | severity |
			row := regexp.MustCompile("(?m)^\\| (?:`" + r.Alert + "`|\\[" + r.Alert + "\\]\\(#[a-z]+\\)) \\| ([a-z]+) \\|")
			m := row.FindAllStringSubmatch(string(data), -1)
			switch {
			case len(m) != 1:
				t.Errorf("%s: %d table rows for %s, want 1", file, len(m), r.Alert)
			case m[0][1] != r.Labels["severity"]:
				t.Errorf("%s: %s has severity %s in the table, %s in alerts.yml", file, r.Alert, m[0][1], r.Labels["severity"])
			}
		}
	}
}

// TestAlertUnitTestCoverage checks that alerts_test.yml tests every alert
// both firing and staying quiet, and names no alert that does not exist
// (promtool would pass an empty expectation for an unknown name).
func TestAlertUnitTestCoverage(t *testing.T) {
	alerts := loadAlerts(t)
	var f ruleTestFile
	decodeStrict(t, alertsTestFile, &f)
	if !slices.Contains(f.RuleFiles, alertsFile) {
		t.Errorf("%s: rule_files %q does not load %s", alertsTestFile, f.RuleFiles, alertsFile)
	}
	known := map[string]bool{}
	for _, r := range alerts {
		known[r.Alert] = true
	}
	firing, quiet := map[string]int{}, map[string]int{}
	names := map[string]bool{}
	for i, tg := range f.Tests {
		// One group per scenario, named for it: a generator fills them.
		if tg.Name == "" || names[tg.Name] {
			t.Errorf("%s: test %d: want a unique scenario name, got %q", alertsTestFile, i, tg.Name)
		}
		names[tg.Name] = true
		for _, c := range tg.AlertRuleTest {
			if !known[c.Alertname] {
				t.Errorf("%s: test %d at %s: alertname %q is not an alert of %s", alertsTestFile, i, c.EvalTime, c.Alertname, alertsFile)
			}
			if len(c.ExpAlerts) > 0 {
				firing[c.Alertname]++
			} else {
				quiet[c.Alertname]++
			}
		}
	}
	for _, r := range alerts {
		if firing[r.Alert] == 0 {
			t.Errorf("%s has no exp_alerts case where %s fires", alertsTestFile, r.Alert)
		}
		if quiet[r.Alert] == 0 {
			t.Errorf("%s has no case where %s stays quiet (exp_alerts: [])", alertsTestFile, r.Alert)
		}
	}
}
