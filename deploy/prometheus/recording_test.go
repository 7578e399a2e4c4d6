package prometheus_test

import (
	"fmt"
	"os"
	"os/exec"
	"regexp"
	"slices"
	"strings"
	"testing"

	"go.yaml.in/yaml/v3"

	"github.com/yunxiao-exporter/yunxiao_exporter/deploy/mixin"
)

const recordingTestFile = "recording_test.yml"

// TestRecordingRulesPromtool runs the recording rules' unit tests
// (recording_test.yml: deployment frequency, change failure rate and time
// to restore from series shaped as the exporter emits them) with every
// promtool found.
func TestRecordingRulesPromtool(t *testing.T) {
	for i, promtool := range promtools(t) {
		version, _ := exec.Command(promtool, "--version").Output()
		name := fmt.Sprintf("promtool%d", i)
		if f := strings.Fields(string(version)); len(f) > 2 && f[1] == "version" && !strings.HasPrefix(f[2], "(") {
			name = f[2]
		}
		t.Run(name, func(t *testing.T) {
			out, err := exec.Command(promtool, "test", "rules", recordingTestFile).CombinedOutput()
			if err != nil {
				t.Fatalf("%s test rules %s: %v\n%s", promtool, recordingTestFile, err, out)
			}
		})
	}
}

func loadRecords(t *testing.T) []rule {
	t.Helper()
	var f ruleFile
	decodeStrict(t, alertsFile, &f)
	var records []rule
	for _, g := range f.Groups {
		for _, r := range g.Rules {
			if r.Record != "" {
				records = append(records, r)
			}
		}
	}
	if len(records) == 0 {
		t.Fatalf("%s holds no recording rules", alertsFile)
	}
	return records
}

// TestRecordingRulesCoverage: recording_test.yml loads alerts.yml, and some
// test of it reads every series the recording rules write (promtool passes
// a test of a series no rule writes when it expects nothing), with an
// expected value, and a case where a rule's result is absent rather than
// NaN is covered by listing the full result of each expression.
func TestRecordingRulesCoverage(t *testing.T) {
	records := loadRecords(t)
	var f struct {
		RuleFiles          []string `yaml:"rule_files"`
		EvaluationInterval string   `yaml:"evaluation_interval"`
		Tests              []struct {
			Name           string      `yaml:"name"`
			Interval       string      `yaml:"interval"`
			InputSeries    []yaml.Node `yaml:"input_series"`
			PromqlExprTest []struct {
				Expr       string      `yaml:"expr"`
				EvalTime   string      `yaml:"eval_time"`
				ExpSamples []yaml.Node `yaml:"exp_samples"`
			} `yaml:"promql_expr_test"`
		} `yaml:"tests"`
	}
	decodeStrict(t, recordingTestFile, &f)
	if !slices.Contains(f.RuleFiles, alertsFile) {
		t.Errorf("%s: rule_files %q does not load %s", recordingTestFile, f.RuleFiles, alertsFile)
	}
	tested := map[string]int{}
	names := map[string]bool{}
	recordName := regexp.MustCompile(`\byunxiao:[a-z_]+:[a-z_]+:[a-z0-9]+\b`)
	for i, tg := range f.Tests {
		if tg.Name == "" || names[tg.Name] {
			t.Errorf("%s: test %d: want a unique name, got %q", recordingTestFile, i, tg.Name)
		}
		names[tg.Name] = true
		for _, c := range tg.PromqlExprTest {
			for _, n := range recordName.FindAllString(c.Expr, -1) {
				if len(c.ExpSamples) > 0 {
					tested[n]++
				}
			}
		}
	}
	known := map[string]bool{}
	for _, r := range records {
		known[r.Record] = true
		if tested[r.Record] == 0 && !strings.Contains(r.Record, "_bucket:") {
			t.Errorf("%s: no test expects a value of %s", recordingTestFile, r.Record)
		}
	}
	for n := range tested {
		if !known[n] {
			t.Errorf("%s: %s is recorded by no rule of %s", recordingTestFile, n, alertsFile)
		}
	}
}

// TestRecordingRulesDocumented: the rule file says that lead time for
// changes is not recorded and why, and its records are the mixin's.
func TestRecordingRulesDocumented(t *testing.T) {
	records := loadRecords(t)
	var got []string
	for _, r := range records {
		if !slices.Contains(got, r.Record) {
			got = append(got, r.Record)
		}
	}
	if want := mixin.RecordNames(mixin.Default()); !slices.Equal(got, want) {
		t.Errorf("%s records %v, deploy/mixin's Default() %v: run `make generate`", alertsFile, got, want)
	}
	data := readText(t, alertsFile)
	for _, want := range []string{"Lead time for changes is NOT recorded", "no commit times"} {
		if !strings.Contains(data, want) {
			t.Errorf("%s does not say %q", alertsFile, want)
		}
	}
}

func readText(t *testing.T, path string) string {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}
