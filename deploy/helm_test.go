package deploy_test

import (
	"bytes"
	"encoding/base64"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"go.yaml.in/yaml/v3"

	"github.com/yunxiao-exporter/yunxiao_exporter/deploy/mixin"
)

const chartDir = "deploy/helm/yunxiao-exporter"

func helmBin(t *testing.T) string {
	t.Helper()
	return lookTool(t, "helm", filepath.Join(goBinDir(), "helm"))
}

// onePipeline is the least the chart needs beyond its defaults: a pipeline to
// watch (or config.discovery.enabled=true). Defaults alone are refused, since
// the exporter would refuse the config and crash-loop.
var onePipeline = []string{"--set", "config.pipelines[0].id=2813489"}

// emptyPipelinesError is what the chart says when it refuses defaults.
const emptyPipelinesError = "config.pipelines is empty and config.discovery.enabled is false"

// helmTemplate renders the chart as release `yunxiao` in namespace
// `monitoring` with the extra arguments (-f, --set).
func helmTemplate(t *testing.T, args ...string) manifests {
	t.Helper()
	out, err := tryHelmTemplate(t, args...)
	if err != nil {
		t.Fatal(err)
	}
	return parseManifests(t, out)
}

func tryHelmTemplate(t *testing.T, args ...string) ([]byte, error) {
	t.Helper()
	return tryHelmTemplateAs(t, "yunxiao", args...)
}

// tryHelmTemplateAs renders the chart as the named release.
func tryHelmTemplateAs(t *testing.T, release string, args ...string) ([]byte, error) {
	t.Helper()
	base := []string{"template", release, chartDir, "--namespace", "monitoring"}
	return tryRun(t, repoRoot(t), nil, helmBin(t), append(base, args...)...)
}

// notesTemplate renders the chart's NOTES.txt as a ConfigMap value. NOTES.txt
// is parsed with the chart's other templates, so `include` reaches it by its
// name, <chart>/templates/NOTES.txt.
const notesTemplate = `apiVersion: v1
kind: ConfigMap
metadata:
  name: rendered-notes
data:
  NOTES.txt: {{ include (printf "%s/templates/NOTES.txt" .Chart.Name) . | quote }}
`

// helmNotes renders NOTES.txt with the extra arguments. `helm template` leaves
// NOTES out, and `helm install --dry-run=client` (Helm 3) still needs a
// reachable cluster, so this renders a copy of the chart with one template
// added that includes NOTES.txt.
func helmNotes(t *testing.T, args ...string) (string, error) {
	t.Helper()
	chart := filepath.Join(t.TempDir(), "yunxiao-exporter")
	if err := os.CopyFS(chart, os.DirFS(repoPath(t, chartDir))); err != nil {
		t.Fatal(err)
	}
	const name = "templates/zz-rendered-notes.yaml"
	if err := os.WriteFile(filepath.Join(chart, name), []byte(notesTemplate), 0o644); err != nil {
		t.Fatal(err)
	}
	base := []string{"template", "yunxiao", chart, "--namespace", "monitoring", "--show-only", name}
	out, err := tryRun(t, repoRoot(t), nil, helmBin(t), append(base, args...)...)
	if err != nil {
		return "", err
	}
	var cm struct {
		Data map[string]string `yaml:"data"`
	}
	if err := yaml.Unmarshal(out, &cm); err != nil {
		return "", fmt.Errorf("rendered NOTES: %v\n%s", err, out)
	}
	notes, ok := cm.Data["NOTES.txt"]
	if !ok || !strings.Contains(notes, "yunxiao_exporter is deployed as") {
		return "", fmt.Errorf("NOTES.txt did not render:\n%s", out)
	}
	return notes, nil
}

// TestHelmRuleTemplateUpToDate: the chart renders its PrometheusRule from
// templates/prometheusrule.yaml, which deploy/mixin generates with every
// setting read from prometheusRule.alerts (no copy of alerts.yml to drift).
// deploy/mixin's tests render it with helm and compare it to the mixin's
// rules for the same settings.
func TestHelmRuleTemplateUpToDate(t *testing.T) {
	want, err := mixin.HelmTemplate()
	if err != nil {
		t.Fatal(err)
	}
	if got := readFile(t, repoPath(t, chartDir, "templates", "prometheusrule.yaml")); !bytes.Equal(got, want) {
		t.Errorf("%s/templates/prometheusrule.yaml is out of date with deploy/mixin: run `make generate`", chartDir)
	}
	if _, err := os.Stat(repoPath(t, chartDir, "files", "alerts.yml")); err == nil {
		t.Errorf("%s/files/alerts.yml is a stale copy of the rules: the chart renders them from values", chartDir)
	}
}

func TestHelmLint(t *testing.T) {
	helm := helmBin(t)
	for _, tc := range []struct {
		name string
		args []string
	}{
		// Lint mode logs `fail` instead of failing, so defaults still lint.
		{"defaults", nil},
		{"one pipeline", onePipeline},
		{"example values", []string{"--values", filepath.Join(chartDir, "ci", "example-values.yaml")}},
		{"discovery only", []string{"--set", "config.discovery.enabled=true"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			run(t, repoRoot(t), helm, append([]string{"lint", "--strict", chartDir}, tc.args...)...)
		})
	}
}

// TestHelmTemplateDefault: defaults plus one pipeline render a working
// Deployment that mounts the user-created Secret <fullname>-token, without
// operator resources.
func TestHelmTemplateDefault(t *testing.T) {
	ms := helmTemplate(t, onePipeline...)
	w := checkWorkload(t, ms, workloadWant{
		TokenSecret: "yunxiao-yunxiao-exporter-token",
		TokenKey:    "token",
		Pipelines:   true,
	})
	if secrets := ms.ofKind("Secret"); len(secrets) != 0 {
		t.Errorf("default values render Secrets %v; without token.value the chart must not create one", secrets)
	}
	if w.Deployment.Spec.Template.Metadata.Annotations["checksum/config"] == "" {
		t.Error("pod template has no checksum/config annotation")
	}
}

// TestHelmTemplateExample: the CI example, with an existing Secret, a
// ServiceMonitor and the PrometheusRule.
func TestHelmTemplateExample(t *testing.T) {
	ms := helmTemplate(t, "--values", filepath.Join(chartDir, "ci", "example-values.yaml"))
	w := checkWorkload(t, ms, workloadWant{
		ServiceMonitor: true,
		PrometheusRule: true,
		TokenSecret:    "yunxiao-token",
		TokenKey:       "token",
		Pipelines:      true,
	})
	if secrets := ms.ofKind("Secret"); len(secrets) != 0 {
		t.Errorf("with token.existingSecret the chart renders Secrets %v", secrets)
	}
	// Numbers and strings of values.yaml survive the rendering unchanged.
	pipelines := w.Config["pipelines"].([]any)
	if first := pipelines[0].(map[string]any); first["id"] != 2813489 || first["name"] != "backend-build" {
		t.Errorf("first pipeline rendered as %v", first)
	}
	yx := w.Config["yunxiao"].(map[string]any)
	if yx["organization_id"] != "60d54f3daccf2bbd6659f3ad" || yx["max_concurrency"] != 8 || yx["timeout"] != "10s" {
		t.Errorf("yunxiao config rendered as %v", yx)
	}
	for _, kind := range []string{"ServiceMonitor", "PrometheusRule"} {
		if ms.one(t, kind).Metadata.Labels["release"] != "kube-prometheus-stack" {
			t.Errorf("%s lacks additionalLabels release=kube-prometheus-stack", kind)
		}
	}
}

// TestHelmTemplateTokenValue: token.value makes the chart create the Secret.
func TestHelmTemplateTokenValue(t *testing.T) {
	const token = "pt-0123456789abcdef"
	ms := helmTemplate(t, append([]string{"--set", "token.value=" + token}, onePipeline...)...)
	checkWorkload(t, ms, workloadWant{TokenSecret: "yunxiao-yunxiao-exporter-token", TokenKey: "token"})
	var s struct {
		Data map[string]string `yaml:"data"`
	}
	ms.one(t, "Secret").decode(t, &s)
	if got, _ := base64.StdEncoding.DecodeString(s.Data["token"]); string(got) != token {
		t.Errorf("Secret token = %q, want %q", got, token)
	}
	// The token never lands in the ConfigMap.
	cm := ms.one(t, "ConfigMap")
	var data struct {
		Data map[string]string `yaml:"data"`
	}
	cm.decode(t, &data)
	if strings.Contains(data.Data["config.yml"], token) {
		t.Error("the token appears in the ConfigMap")
	}
}

// TestHelmConfigChecksum: a config change changes checksum/config (and so
// rolls the pod); the same config gives the same checksum.
func TestHelmConfigChecksum(t *testing.T) {
	checksum := func(args ...string) string {
		var d deployment
		helmTemplate(t, append(args, onePipeline...)...).one(t, "Deployment").decode(t, &d)
		return d.Spec.Template.Metadata.Annotations["checksum/config"]
	}
	a, again := checksum(), checksum()
	b := checksum("--set", "config.cache_ttl=45s")
	if a == "" || a != again {
		t.Errorf("checksum/config %q then %q for the same values", a, again)
	}
	if a == b {
		t.Error("checksum/config did not change with the config")
	}
}

// TestHelmRejects: the chart refuses ambiguous or leaky token settings, each
// with its own message.
func TestHelmRejects(t *testing.T) {
	for _, tc := range []struct {
		name, want string
		args       []string
	}{
		{"both token sources", "set either existingSecret or value, not both", []string{"--set", "token.value=x", "--set", "token.existingSecret=y"}},
		{"token in config", "config.yunxiao.token: put the token in", []string{"--set", "config.yunxiao.token=x"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := tryHelmTemplate(t, append(tc.args, onePipeline...)...)
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Errorf("helm template: got error %v, want one saying %q", err, tc.want)
			}
		})
	}
}

// TestHelmReleaseNames: release names a YAML parser would read as a number, a
// boolean or null still give string label values (and names), so the API
// server accepts the manifests; user-supplied labels that --set parses as a
// number or a boolean too.
func TestHelmReleaseNames(t *testing.T) {
	userLabels := []string{
		"--set", "serviceMonitor.additionalLabels.release=123",
		"--set", "prometheusRule.additionalLabels.release=0x1f",
		"--set", "podLabels.canary=true",
		"--set", "service.labels.yes=no",
	}
	for _, tc := range []struct {
		release string
		// fullname is the rendered workload name; empty when helm refuses
		// the release name itself.
		fullname string
	}{
		{"123", "123-yunxiao-exporter"},
		{"yes", "yes-yunxiao-exporter"},
		{"true", "true-yunxiao-exporter"},
		// 0x1F is no valid release name (upper case: helm refuses it before
		// rendering); 0x1f is, and a hexadecimal integer to YAML.
		{"0x1F", ""},
		{"0x1f", "0x1f-yunxiao-exporter"},
		{"1e3", "1e3-yunxiao-exporter"},
		{"null", "null-yunxiao-exporter"},
		{"on", "on-yunxiao-exporter"},
		{"0755", "0755-yunxiao-exporter"},
	} {
		t.Run(tc.release, func(t *testing.T) {
			args := append([]string{"--values", filepath.Join(chartDir, "ci", "example-values.yaml")}, userLabels...)
			out, err := tryHelmTemplateAs(t, tc.release, args...)
			if tc.fullname == "" {
				if err == nil || !strings.Contains(err.Error(), "invalid release name") {
					t.Errorf("got error %v, want helm's invalid release name", err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			ms := parseManifests(t, out)
			w := checkWorkload(t, ms, workloadWant{
				ServiceMonitor: true,
				PrometheusRule: true,
				TokenSecret:    "yunxiao-token",
				TokenKey:       "token",
				Pipelines:      true,
			})
			for _, m := range ms {
				checkStringMaps(t, m)
			}
			if got := w.Deployment.Metadata.Name; got != tc.fullname {
				t.Errorf("Deployment name %q, want %q", got, tc.fullname)
			}
			for _, m := range ms {
				if got := m.Metadata.Labels["app.kubernetes.io/instance"]; got != tc.release {
					t.Errorf("%s: app.kubernetes.io/instance = %q, want %q", m, got, tc.release)
				}
			}
			for kind, want := range map[string]string{"ServiceMonitor": "123", "PrometheusRule": "0x1f"} {
				if got := ms.one(t, kind).Metadata.Labels["release"]; got != want {
					t.Errorf("%s release label %q, want %q", kind, got, want)
				}
			}
		})
	}
}

// checkStringMaps checks that every label, selector and annotation map of a
// manifest (metadata, pod template, matchLabels, a Service's selector) holds
// string keys and values, as the API server requires. yaml.v3 reads `yes`
// as a string, but YAML 1.1 parsers such as the one kubectl and the API
// server's clients use read it as a boolean; so a plain scalar passes only
// when it is a string to both.
func checkStringMaps(t *testing.T, m manifest) {
	t.Helper()
	var walk func(path string, n *yaml.Node)
	walk = func(path string, n *yaml.Node) {
		switch n.Kind {
		case yaml.DocumentNode:
			for _, c := range n.Content {
				walk(path, c)
			}
		case yaml.SequenceNode:
			for i, c := range n.Content {
				walk(fmt.Sprintf("%s[%d]", path, i), c)
			}
		case yaml.MappingNode:
			for i := 0; i+1 < len(n.Content); i += 2 {
				k, v := n.Content[i], n.Content[i+1]
				p := path + "." + k.Value
				stringMap := k.Value == "labels" || k.Value == "matchLabels" || k.Value == "annotations" ||
					m.Kind == "Service" && p == ".spec.selector"
				if stringMap && v.Kind == yaml.MappingNode {
					for j := 0; j+1 < len(v.Content); j += 2 {
						for _, s := range v.Content[j : j+2] {
							if !isYAMLString(s) {
								t.Errorf("%s %s: %s: %s is not a YAML string (line %d)", m, p, v.Content[j].Value, s.Value, s.Line)
							}
						}
					}
					continue
				}
				walk(p, v)
			}
		}
	}
	walk("", m.node)
}

// yaml11NonString matches the plain scalars YAML 1.1 resolves to something
// other than a string: booleans, null, integers (binary, octal, decimal,
// hexadecimal, sexagesimal), floats and timestamps.
var yaml11NonString = regexp.MustCompile(`^(?:` +
	`y|Y|yes|Yes|YES|n|N|no|No|NO|true|True|TRUE|false|False|FALSE|on|On|ON|off|Off|OFF` +
	`|~|null|Null|NULL|` +
	`|[-+]?0b[0-1_]+|[-+]?0[0-7_]+|[-+]?(?:0|[1-9][0-9_]*)|[-+]?0x[0-9a-fA-F_]+|[-+]?[1-9][0-9_]*(?::[0-5]?[0-9])+` +
	`|[-+]?(?:[0-9][0-9_]*)?\.[0-9.]*(?:[eE][-+][0-9]+)?|[-+]?[0-9][0-9_]*(?::[0-5]?[0-9])+\.[0-9_]*|[-+]?\.(?:inf|Inf|INF)|\.(?:nan|NaN|NAN)` +
	`|[0-9]{4}-[0-9]{1,2}-[0-9]{1,2}(?:[Tt ].*)?` +
	`)$`)

func isYAMLString(n *yaml.Node) bool {
	if n.Kind != yaml.ScalarNode {
		return false
	}
	if n.Style&(yaml.DoubleQuotedStyle|yaml.SingleQuotedStyle|yaml.LiteralStyle|yaml.FoldedStyle) != 0 {
		return n.ShortTag() == "!!str"
	}
	return n.ShortTag() == "!!str" && !yaml11NonString.MatchString(n.Value)
}

// TestHelmPipelines: an empty pipeline list is valid with discovery and then
// NOTES say where the pipelines come from; without discovery the exporter
// would refuse the config and crash-loop, so the chart refuses it first.
func TestHelmPipelines(t *testing.T) {
	for _, tc := range []struct {
		name string
		args []string
		// wantErr: the chart must refuse the values with this message.
		wantErr string
		// discovery: whether the rendered config enables discovery.
		discovery bool
		// pipelines: how many the rendered config lists.
		pipelines int
		// notes: what NOTES.txt must say about the pipelines.
		notes []string
	}{
		{name: "defaults", wantErr: emptyPipelinesError},
		{name: "pipelines null", args: []string{"--set", "config.pipelines=null"}, wantErr: emptyPipelinesError},
		{name: "discovery off explicitly", args: []string{"--set", "config.discovery.enabled=false", "--set", "config.pipelines=null"}, wantErr: emptyPipelinesError},
		{
			name:      "discovery, no pipelines",
			args:      []string{"--set", "config.discovery.enabled=true", "--set", "config.discovery.include[0]=backend-.*"},
			discovery: true,
			notes:     []string{"config.pipelines is empty, so the pipelines come from discovery", "refreshed every 10m", "names matching backend-.*"},
		},
		{
			name:      "discovery and pipelines",
			args:      append([]string{"--set", "config.discovery.enabled=true", "--set", "config.discovery.refresh_interval=5m"}, onePipeline...),
			discovery: true,
			pipelines: 1,
			notes:     []string{"the 1 listed in config.pipelines, plus those discovery finds", "refreshed every 5m"},
		},
		{
			name:      "pipelines, no discovery",
			args:      onePipeline,
			pipelines: 1,
			notes:     []string{"the 1 listed in config.pipelines (discovery is off)"},
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			out, err := tryHelmTemplate(t, tc.args...)
			notes, notesErr := helmNotes(t, tc.args...)
			if tc.wantErr != "" {
				for cmd, err := range map[string]error{"helm template": err, "NOTES.txt": notesErr} {
					if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
						t.Errorf("%s: got error %v, want one saying %q", cmd, err, tc.wantErr)
					}
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if notesErr != nil {
				t.Fatal(notesErr)
			}
			w := checkWorkload(t, parseManifests(t, out), workloadWant{
				TokenSecret: "yunxiao-yunxiao-exporter-token",
				TokenKey:    "token",
			})
			if got, _ := w.Config["pipelines"].([]any); len(got) != tc.pipelines {
				t.Errorf("rendered config lists %d pipelines, want %d", len(got), tc.pipelines)
			}
			d, _ := w.Config["discovery"].(map[string]any)
			if got, _ := d["enabled"].(bool); got != tc.discovery {
				t.Errorf("rendered config discovery.enabled = %v, want %v", d["enabled"], tc.discovery)
			}
			for _, want := range tc.notes {
				if !strings.Contains(notes, want) {
					t.Errorf("NOTES lack %q:\n%s", want, notes)
				}
			}
			if strings.Contains(notes, "no pipeline will be exported") {
				t.Errorf("NOTES claim no pipeline will be exported:\n%s", notes)
			}
		})
	}
}
