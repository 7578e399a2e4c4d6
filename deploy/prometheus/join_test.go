package prometheus_test

import (
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"go.yaml.in/yaml/v3"
)

// joinTest is a promtool unit test of the join every per-pipeline alert
// makes to yunxiao_pipeline_info, on series written for the cases the
// recorded scenarios (alerts_test.yml) cannot produce, since the exporter
// there always exports the info: an exporter of an older version, without
// yunxiao_pipeline_info, must not lose its pipelines' alerts.
//
//	1  team and group carried.
//	2  an HA pair: two info series, one alert.
//	3  no info series (an older exporter): the alert fires without them.
//	4  info, not failing: no alert.
//	5  info without team or group (empty labels are no labels): plain alert.
const joinTest = `rule_files:
  - ALERTS_FILE
evaluation_interval: 1m
tests:
  - name: per-pipeline alerts carry the info's labels, and fire without them
    interval: 1m
    input_series:
      - series: 'yunxiao_pipeline_last_finished_run_status{job="yunxiao-exporter", instance="a:10036", pipeline_id="1", pipeline_name="p1", status="FAIL"}'
        values: '1x30'
      - series: 'yunxiao_pipeline_info{job="yunxiao-exporter", instance="a:10036", deploy="false", group="backend", pipeline_id="1", pipeline_name="p1", team="payments"}'
        values: '1x30'
      - series: 'yunxiao_pipeline_last_finished_run_status{job="yunxiao-exporter", instance="a:10036", pipeline_id="2", pipeline_name="p2", status="FAIL"}'
        values: '1x30'
      - series: 'yunxiao_pipeline_last_finished_run_status{job="yunxiao-exporter", instance="b:10036", pipeline_id="2", pipeline_name="p2", status="FAIL"}'
        values: '1x30'
      - series: 'yunxiao_pipeline_info{job="yunxiao-exporter", instance="a:10036", deploy="false", pipeline_id="2", pipeline_name="p2", team="web"}'
        values: '1x30'
      - series: 'yunxiao_pipeline_info{job="yunxiao-exporter", instance="b:10036", deploy="false", pipeline_id="2", pipeline_name="p2", team="web"}'
        values: '1x30'
      - series: 'yunxiao_pipeline_last_finished_run_status{job="yunxiao-exporter", instance="old:10036", pipeline_id="3", pipeline_name="p3", status="FAIL"}'
        values: '1x30'
      - series: 'yunxiao_pipeline_up{job="yunxiao-exporter", instance="old:10036", pipeline_id="3", pipeline_name="p3"}'
        values: '0x30'
      - series: 'yunxiao_up{job="yunxiao-exporter", instance="old:10036"}'
        values: '1x30'
      - series: 'yunxiao_pipeline_last_finished_run_status{job="yunxiao-exporter", instance="a:10036", pipeline_id="4", pipeline_name="p4", status="SUCCESS"}'
        values: '1x30'
      - series: 'yunxiao_pipeline_info{job="yunxiao-exporter", instance="a:10036", deploy="false", pipeline_id="4", pipeline_name="p4", team="payments"}'
        values: '1x30'
      - series: 'yunxiao_pipeline_last_finished_run_status{job="yunxiao-exporter", instance="a:10036", pipeline_id="5", pipeline_name="p5", status="FAIL"}'
        values: '1x30'
      - series: 'yunxiao_pipeline_info{job="yunxiao-exporter", instance="a:10036", deploy="false", pipeline_id="5", pipeline_name="p5"}'
        values: '1x30'
    alert_rule_test:
      - eval_time: 5m
        alertname: YunxiaoPipelineRunFailed
        exp_alerts:
          - ALERT {pipeline_id: "1", pipeline_name: p1, team: payments, group: backend}
          - ALERT {pipeline_id: "2", pipeline_name: p2, team: web}
          - ALERT {pipeline_id: "3", pipeline_name: p3}
          - ALERT {pipeline_id: "5", pipeline_name: p5}
      - eval_time: 15m
        alertname: YunxiaoPipelineFetchFailing
        exp_alerts:
          - ALERT {pipeline_id: "3", pipeline_name: p3}
`

var expectedAlert = regexp.MustCompile(`(?m)^(\s*)- ALERT (\{.*\})$`)

// TestPipelineLabelsJoin runs joinTest with every promtool found; each
// "- ALERT {labels}" of an alertname's case becomes its exp_labels (plus
// severity) and exp_annotations (rendered from alerts.yml's templates).
func TestPipelineLabelsJoin(t *testing.T) {
	abs, err := filepath.Abs(alertsFile)
	if err != nil {
		t.Fatal(err)
	}
	byName := map[string]rule{}
	for _, r := range loadAlerts(t) {
		byName[r.Alert] = r
	}
	var out []string
	alertname := ""
	for _, l := range strings.Split(strings.Replace(joinTest, "ALERTS_FILE", abs, 1), "\n") {
		if f := strings.Fields(l); len(f) == 2 && f[0] == "alertname:" {
			alertname = f[1]
		}
		m := expectedAlert.FindStringSubmatch(l)
		if m == nil {
			out = append(out, l)
			continue
		}
		r, ok := byName[alertname]
		if !ok {
			t.Fatalf("no alert %q", alertname)
		}
		var labels map[string]string
		if err := yaml.Unmarshal([]byte(m[2]), &labels); err != nil {
			t.Fatal(err)
		}
		labels["severity"] = r.Labels["severity"]
		ann := map[string]string{}
		for k, v := range r.Annotations {
			ann[k] = regexp.MustCompile(`\{\{ \$labels\.(\w+) \}\}`).ReplaceAllStringFunc(v, func(ref string) string {
				return labels[strings.TrimSuffix(strings.TrimPrefix(ref, "{{ $labels."), " }}")]
			})
		}
		b, err := yaml.Marshal(map[string]any{"exp_labels": labels, "exp_annotations": ann})
		if err != nil {
			t.Fatal(err)
		}
		for i, bl := range strings.Split(strings.TrimSuffix(string(b), "\n"), "\n") {
			prefix := m[1] + "  "
			if i == 0 {
				prefix = m[1] + "- "
			}
			out = append(out, prefix+bl)
		}
	}
	file := filepath.Join(t.TempDir(), "join_test.yml")
	if err := os.WriteFile(file, []byte(strings.Join(out, "\n")), 0o644); err != nil {
		t.Fatal(err)
	}
	for _, promtool := range promtools(t) {
		if out, err := exec.Command(promtool, "test", "rules", file).CombinedOutput(); err != nil {
			t.Errorf("%s test rules: %v\n%s", promtool, err, out)
		}
	}
}
