package config

import (
	"maps"
	"path/filepath"
	"reflect"
	"strings"
	"sync"
	"testing"

	"github.com/prometheus/client_golang/prometheus"
)

// TestLabelErrors covers what is easier to show inline: several problems
// at once, flow style, and values at the edges of the rules.
func TestLabelErrors(t *testing.T) {
	const head = "yunxiao: {token: t, organization_id: o}\n"
	cases := []struct {
		name string
		yml  string
		want string
	}{
		{
			name: "every problem is reported, in line order",
			yml: head + "discovery:\n  labels:\n    - match: \"a.*\"\n      labels: {instance: x, ok: y}\n    - match: \"\"\n      labels: {team: t}\n" +
				"pipelines:\n  - id: 1\n    labels:\n      Team-Name: x\n      env: \"\"\n      le: \"0.5\"\n",
			want: "x.yml:5: discovery.labels[0].labels.instance: \"instance\" is reserved\n" +
				"x.yml:6: discovery.labels[1].match: is required: an anchored regular expression on the pipeline name\n" +
				"x.yml:11: pipelines[0].labels.Team-Name: \"Team-Name\" is not a valid label name (letters, digits and _, not starting with a digit)\n" +
				"x.yml:12: pipelines[0].labels.env: empty value: give one, or remove the label\n" +
				"x.yml:13: pipelines[0].labels.le: \"le\" is reserved",
		},
		{
			name: "every reserved name",
			yml: head + "pipelines:\n  - id: 1\n    labels: {pipeline_id: x, pipeline_name: x, group: x, tags: x, deploy: x, job: x, instance: x, status: x, stage_index: x, stage_name: x}\n" +
				"  - id: 2\n    labels: {job_sign: x, job_name: x, trigger_mode: x, reason: x, le: x, quantile: x, source_name: x, source_type: x, repo: x, branch: x}\n" +
				"  - id: 3\n    labels: {commit: x, endpoint: x, code: x, shard_index: x, shard_total: x, phase: x, alertname: x, severity: x}\n",
			want: strings.Join([]string{
				`x.yml:4: pipelines[0].labels.deploy: "deploy" is reserved`,
				`x.yml:4: pipelines[0].labels.group: "group" is reserved`,
				`x.yml:4: pipelines[0].labels.instance: "instance" is reserved`,
				`x.yml:4: pipelines[0].labels.job: "job" is reserved`,
				`x.yml:4: pipelines[0].labels.pipeline_id: "pipeline_id" is reserved`,
				`x.yml:4: pipelines[0].labels.pipeline_name: "pipeline_name" is reserved`,
				`x.yml:4: pipelines[0].labels.stage_index: "stage_index" is reserved`,
				`x.yml:4: pipelines[0].labels.stage_name: "stage_name" is reserved`,
				`x.yml:4: pipelines[0].labels.status: "status" is reserved`,
				`x.yml:4: pipelines[0].labels.tags: "tags" is reserved`,
				`x.yml:6: pipelines[1].labels.branch: "branch" is reserved`,
				`x.yml:6: pipelines[1].labels.job_name: "job_name" is reserved`,
				`x.yml:6: pipelines[1].labels.job_sign: "job_sign" is reserved`,
				`x.yml:6: pipelines[1].labels.le: "le" is reserved`,
				`x.yml:6: pipelines[1].labels.quantile: "quantile" is reserved`,
				`x.yml:6: pipelines[1].labels.reason: "reason" is reserved`,
				`x.yml:6: pipelines[1].labels.repo: "repo" is reserved`,
				`x.yml:6: pipelines[1].labels.source_name: "source_name" is reserved`,
				`x.yml:6: pipelines[1].labels.source_type: "source_type" is reserved`,
				`x.yml:6: pipelines[1].labels.trigger_mode: "trigger_mode" is reserved`,
				`x.yml:8: pipelines[2].labels.alertname: "alertname" is reserved`,
				`x.yml:8: pipelines[2].labels.code: "code" is reserved`,
				`x.yml:8: pipelines[2].labels.commit: "commit" is reserved`,
				`x.yml:8: pipelines[2].labels.endpoint: "endpoint" is reserved`,
				`x.yml:8: pipelines[2].labels.phase: "phase" is reserved`,
				`x.yml:8: pipelines[2].labels.severity: "severity" is reserved`,
				`x.yml:8: pipelines[2].labels.shard_index: "shard_index" is reserved`,
				`x.yml:8: pipelines[2].labels.shard_total: "shard_total" is reserved`,
			}, "\n"),
		},
		{
			name: "__ in a pipeline's labels, even when otherwise valid",
			yml:  head + "pipelines:\n  - id: 1\n    labels:\n      __name__: x\n",
			want: `x.yml:5: pipelines[0].labels.__name__: "__name__" is reserved: names starting with __ are for Prometheus' own use`,
		},
		{
			name: "a number as a label name",
			yml:  head + "pipelines: [{id: 1, labels: {1: x}}]\n",
			want: `x.yml:2: pipelines[0].labels.1: "1" is not a valid label name (letters, digits and _, not starting with a digit)`,
		},
		{
			name: "a UTF-8 label name",
			yml:  head + "pipelines: [{id: 1, labels: {团队: x}}]\n",
			want: `x.yml:2: pipelines[0].labels.团队: "团队" is not a valid label name (letters, digits and _, not starting with a digit)`,
		},
		{
			name: "a null value is an empty one",
			yml:  head + "pipelines:\n  - id: 1\n    labels:\n      team: ~\n",
			want: "x.yml:5: pipelines[0].labels.team: empty value: give one, or remove the label",
		},
		{
			name: "128 bytes is the limit, counted in bytes not characters",
			// 43 CJK characters of 3 bytes each: 129 bytes.
			yml:  head + "pipelines:\n  - id: 1\n    labels:\n      ok: " + strings.Repeat("x", 128) + "\n      team: " + strings.Repeat("张", 43) + "\n",
			want: "x.yml:6: pipelines[0].labels.team: value is 129 bytes, at most 128",
		},
		{
			name: "labels of a pipeline with a bad id are still checked",
			yml:  head + "pipelines:\n  - id: 0\n    labels: {job: x}\n",
			want: "x.yml:3: pipelines[0].id: must be a positive pipeline id, not 0\n" +
				"x.yml:4: pipelines[0].labels.job: \"job\" is reserved",
		},
		{
			name: "deploy alone makes a rule",
			yml:  head + "discovery:\n  labels:\n    - {match: \"x\", deploy: false}\n    - {match: \"y\", labels: {}}\npipelines: [{id: 1}]\n",
			want: "x.yml:5: discovery.labels[1]: sets neither labels nor deploy",
		},
		{
			name: "a null match",
			yml:  head + "discovery:\n  labels:\n    - match: ~\n      deploy: true\npipelines: [{id: 1}]\n",
			want: "x.yml:4: discovery.labels[0].match: is required: an anchored regular expression on the pipeline name",
		},
		{
			name: "a match that is a list",
			yml:  head + "discovery:\n  labels:\n    - match: [a, b]\n      deploy: true\npipelines: [{id: 1}]\n",
			want: "x.yml:4: discovery.labels[0].match: cannot unmarshal !!seq as a regular expression",
		},
		{
			name: "an include that is a list",
			yml:  head + "discovery:\n  enabled: true\n  include: [[a]]\n",
			want: "x.yml:4: discovery.include[0]: cannot unmarshal !!seq as a regular expression",
		},
		{
			name: "rules not a list",
			yml:  head + "discovery:\n  labels: {team: payments}\npipelines: [{id: 1}]\n",
			want: "x.yml:3: discovery.labels: cannot unmarshal !!map as a list",
		},
		{
			name: "a label value that is a mapping",
			yml:  head + "pipelines: [{id: 1, labels: {team: {name: x}}}]\n",
			want: "x.yml:2: pipelines[0].labels.team: cannot unmarshal !!map as a string",
		},
		{
			name: "duplicate label name",
			yml:  head + "pipelines:\n  - id: 1\n    labels:\n      team: a\n      team: b\n",
			want: `x.yml:6: pipelines[0].labels.team: mapping key "team" already defined at line 5`,
		},
		{
			name: "eleven distinct names, the eleventh in a rule after the pipelines",
			yml: head + "pipelines:\n  - id: 1\n    labels: {a: x, b: x, c: x, d: x, e: x}\n  - id: 2\n    labels: {f: x, g: x, h: x, i: x, j: x}\n" +
				"discovery:\n  labels:\n    - match: \".*\"\n      labels: {a: y, k: y}\n",
			want: "x.yml:10: discovery.labels[0].labels.k: one label name too many: pipelines[].labels and discovery.labels together may name at most 10, each a label of yunxiao_pipeline_info (already a, b, c, d, e, f, g, h, i, j)",
		},
		{
			name: "twelve distinct names: each past the tenth is named",
			yml: head + "pipelines:\n  - id: 1\n    labels: {a: x, b: x, c: x, d: x, e: x, f: x, g: x, h: x, i: x, j: x}\n" +
				"  - id: 2\n    labels: {a: x, k: x}\n  - id: 3\n    labels: {l: x}\n",
			want: "x.yml:6: pipelines[1].labels.k: one label name too many: pipelines[].labels and discovery.labels together may name at most 10, each a label of yunxiao_pipeline_info (already a, b, c, d, e, f, g, h, i, j)\n" +
				"x.yml:8: pipelines[2].labels.l: one label name too many: pipelines[].labels and discovery.labels together may name at most 10, each a label of yunxiao_pipeline_info (already a, b, c, d, e, f, g, h, i, j)",
		},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			cfg, err := Load([]byte(c.yml), "x.yml", LoadOptions{Getenv: noEnv})
			if cfg != nil {
				t.Errorf("got a config with the error")
			}
			checkErr(t, err, c.want)
		})
	}
}

// TestLabelLimitsAccepted: exactly at every limit loads.
func TestLabelLimitsAccepted(t *testing.T) {
	yml := "yunxiao: {token: t, organization_id: o}\n" +
		"discovery:\n  labels:\n    - match: \".*\"\n      labels: {a: x, b: x, c: x, d: x, e: x, f: x, g: x, h: x, i: x, j: x}\n" +
		"pipelines:\n  - id: 1\n    labels: {j: " + strings.Repeat("张", 42) + "xx, _x: y}\n"
	_, err := Load([]byte(yml), "x.yml", LoadOptions{Getenv: noEnv})
	checkErr(t, err, "x.yml:8: pipelines[0].labels._x: one label name too many: pipelines[].labels and discovery.labels together may name at most 10, each a label of yunxiao_pipeline_info (already a, b, c, d, e, f, g, h, i, j)")

	yml = strings.Replace(yml, ", _x: y", "", 1)
	cfg, err := Load([]byte(yml), "x.yml", LoadOptions{Getenv: noEnv})
	if err != nil {
		t.Fatal(err)
	}
	labels, _ := cfg.PipelineMeta(1, "p")
	if len(labels) != MaxExtraLabels || len(labels["j"]) != MaxLabelValueBytes {
		t.Errorf("labels %q: want 10, j of 128 bytes", labels)
	}
}

func TestPipelineMeta(t *testing.T) {
	cfg, err := LoadFile("testdata/valid-labels.yml", LoadOptions{Getenv: noEnv})
	if err != nil {
		t.Fatal(err)
	}
	type L = map[string]string
	cases := []struct {
		what   string
		id     int64
		name   string
		labels L
		deploy bool
	}{
		{"one rule", 1, "payments-build", L{"team": "payments", "tier": "backend"}, true},
		{"the configured name is matched, not the one passed", 1, "search-build", L{"team": "payments", "tier": "backend"}, true},
		{"the configured name serves before the name is known", 1, "", L{"team": "payments", "tier": "backend"}, true},
		{"two rules add up; own labels win for the same key", 2, "payments-deploy", L{"team": "checkout", "owner": "张三", "tier": "backend", "env": "prod"}, true},
		{"a later rule wins for a label and for deploy", 3, "payments-sandbox-deploy", L{"team": "payments", "tier": "backend", "env": "sandbox"}, false},
		{"own deploy false wins over a rule's true", 4, "payments-prod-deploy", L{"team": "payments", "tier": "backend", "env": "prod"}, false},
		{"own labels and deploy, name from the API", 5, "payments-api", L{"team": "search", "tier": "backend"}, true},
		{"own labels and deploy, name not yet known", 5, "", L{"team": "search"}, true},
		{"own deploy true wins over a rule's false", 5, "payments-sandbox-deploy", L{"team": "search", "tier": "backend", "env": "sandbox"}, true},
		{"configured, no labels, name not yet known", 6, "", L{}, false},
		{"configured, no labels: rules by the API's name", 6, "search-deploy", L{"env": "prod"}, false},
		{"discovered: rules only", 99, "payments-web-deploy", L{"team": "payments", "tier": "backend", "env": "prod"}, true},
		{"discovered, name not yet known", 99, "", L{}, false},
		{"discovered, no rule matches", 99, "nightly", L{}, false},
		{"anchored: a match inside the name is not enough", 99, "x-payments-build", L{}, false},
		{"anchored at the end too", 99, "search-deploy-old", L{}, false},
	}
	for _, c := range cases {
		t.Run(c.what, func(t *testing.T) {
			labels, deploy := cfg.PipelineMeta(c.id, c.name)
			if !reflect.DeepEqual(labels, c.labels) || deploy != c.deploy {
				t.Errorf("PipelineMeta(%d, %q) = %q, %v; want %q, %v", c.id, c.name, labels, deploy, c.labels, c.deploy)
			}
		})
	}

	// A fresh map each time: changing one changes neither the config nor
	// what the next call returns.
	a, _ := cfg.PipelineMeta(2, "payments-deploy")
	a["team"], a["new"] = "changed", "x"
	b, _ := cfg.PipelineMeta(2, "payments-deploy")
	if b["team"] != "checkout" || b["new"] != "" || cfg.Pipelines[1].Labels["team"] != "checkout" || cfg.Discovery.Labels[0].Labels["new"] != "" {
		t.Errorf("a returned map is shared: next call %q, config %q", b, cfg.Pipelines[1].Labels)
	}
	if got, want := cfg.LabelNames(), []string{"env", "owner", "team", "tier"}; !reflect.DeepEqual(got, want) {
		t.Errorf("LabelNames() = %q, want %q", got, want)
	}

	// Every label PipelineMeta gives is one LabelNames names.
	names := map[string]bool{}
	for _, n := range cfg.LabelNames() {
		names[n] = true
	}
	for _, c := range cases {
		labels, _ := cfg.PipelineMeta(c.id, c.name)
		for n := range labels {
			if !names[n] {
				t.Errorf("PipelineMeta(%d, %q) gives %q, which LabelNames lacks", c.id, c.name, n)
			}
		}
	}
}

// TestPipelineMetaWithoutLabels: a config without labels gives none, and
// no label names.
func TestPipelineMetaWithoutLabels(t *testing.T) {
	cfg, err := LoadFile("testdata/valid-full.yml", LoadOptions{Getenv: noEnv})
	if err != nil {
		t.Fatal(err)
	}
	if l, d := cfg.PipelineMeta(9007199254740993, "any"); l == nil || len(l) != 0 || d {
		t.Errorf("PipelineMeta of a pipeline without labels = %v, %v; want an empty map, false", l, d)
	}
	if l, d := cfg.PipelineMeta(456, ""); len(l) != 0 || d {
		t.Errorf("PipelineMeta(456) = %v, %v; want none, false", l, d)
	}
	min, err := LoadFile("testdata/valid-minimal.yml", LoadOptions{Getenv: noEnv})
	if err != nil {
		t.Fatal(err)
	}
	if n := min.LabelNames(); len(n) != 0 {
		t.Errorf("LabelNames() = %q, want none", n)
	}
	d := Default()
	if l, dep := d.PipelineMeta(1, "x"); l == nil || len(l) != 0 || dep {
		t.Errorf("Default().PipelineMeta = %v, %v", l, dep)
	}
}

// TestPipelineMetaBuiltInCode: a Config not made by Load (as tests and
// --demo build them) works too, its rules compiled with NewRegexp.
func TestPipelineMetaBuiltInCode(t *testing.T) {
	re, err := NewRegexp("pay.*")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := NewRegexp("pay("); err == nil || err.Error() != "invalid regular expression \"pay(\": missing closing ): `^(?:pay()$`" {
		t.Errorf("NewRegexp(\"pay(\") error %v", err)
	}
	yes := true
	cfg := Config{
		Pipelines: []Pipeline{{ID: 1, Labels: map[string]string{"env": "prod"}}},
		Discovery: Discovery{Labels: []LabelRule{{Match: re, Labels: map[string]string{"team": "payments"}, Deploy: &yes}, {Labels: map[string]string{"team": "never"}}}},
	}
	l, d := cfg.PipelineMeta(1, "payments")
	if !reflect.DeepEqual(l, map[string]string{"env": "prod", "team": "payments"}) || !d {
		t.Errorf("PipelineMeta = %q, %v", l, d)
	}
	if got := cfg.LabelNames(); !reflect.DeepEqual(got, []string{"env", "team"}) {
		t.Errorf("LabelNames() = %q", got)
	}
}

// TestLabelsReload: a reload that changes labels gives the new labels and
// label names; the old config, still held by whoever read it, keeps its own.
func TestLabelsReload(t *testing.T) {
	const (
		first = "yunxiao:\n  organization_id: o\n  token: " + inlineToken + "\n" +
			"discovery:\n  labels:\n    - {match: \"pay.*\", labels: {team: payments}}\n" +
			"pipelines:\n  - id: 1\n    name: payments\n    labels: {env: prod}\n"
		second = "yunxiao:\n  organization_id: o\n  token: " + inlineToken + "\n" +
			"discovery:\n  labels:\n    - {match: \"pay.*\", labels: {squad: checkout}, deploy: true}\n" +
			"pipelines:\n  - id: 1\n    name: payments\n"
		bad = "yunxiao:\n  organization_id: o\n  token: " + inlineToken + "\n" +
			"pipelines:\n  - id: 1\n    labels: {job: x}\n"
	)
	dir := t.TempDir()
	path := filepath.Join(dir, "config.yml")
	sc := NewSafeConfig(prometheus.NewRegistry(), LoadOptions{Getenv: noEnv})

	writeFile(t, dir, "config.yml", first, 0o600)
	old, err := sc.ReloadConfig(path, nil)
	if err != nil {
		t.Fatal(err)
	}
	check := func(cfg *Config, names []string, labels map[string]string, deploy bool) {
		t.Helper()
		if got := cfg.LabelNames(); !reflect.DeepEqual(got, names) {
			t.Errorf("LabelNames() = %q, want %q", got, names)
		}
		if l, d := cfg.PipelineMeta(1, ""); !reflect.DeepEqual(l, labels) || d != deploy {
			t.Errorf("PipelineMeta(1) = %q, %v; want %q, %v", l, d, labels, deploy)
		}
	}
	check(sc.Get(), []string{"env", "team"}, map[string]string{"env": "prod", "team": "payments"}, false)

	// An invalid label refuses the reload: the first labels stay.
	writeFile(t, dir, "config.yml", bad, 0o600)
	_, err = sc.ReloadConfig(path, nil)
	checkErr(t, err, path+`:6: pipelines[0].labels.job: "job" is reserved`)
	check(sc.Get(), []string{"env", "team"}, map[string]string{"env": "prod", "team": "payments"}, false)

	writeFile(t, dir, "config.yml", second, 0o600)
	if _, err := sc.ReloadConfig(path, nil); err != nil {
		t.Fatal(err)
	}
	check(sc.Get(), []string{"squad"}, map[string]string{"squad": "checkout"}, true)
	check(old, []string{"env", "team"}, map[string]string{"env": "prod", "team": "payments"}, false)
}

// TestPipelineMetaConcurrent calls PipelineMeta and LabelNames from many
// goroutines on one config, for -race.
func TestPipelineMetaConcurrent(t *testing.T) {
	cfg, err := LoadFile("testdata/valid-labels.yml", LoadOptions{Getenv: noEnv})
	if err != nil {
		t.Fatal(err)
	}
	want, _ := cfg.PipelineMeta(2, "payments-deploy")
	var wg sync.WaitGroup
	for range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for range 200 {
				l, _ := cfg.PipelineMeta(2, "payments-deploy")
				if !maps.Equal(l, want) {
					t.Errorf("PipelineMeta = %q, want %q", l, want)
					return
				}
				l["team"] = "mine" // a fresh map: writing it races with nothing
				_ = cfg.LabelNames()
			}
		}()
	}
	wg.Wait()
}
