package deploy_test

import (
	"bytes"
	"encoding/base64"
	"fmt"
	"os"
	"path"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"

	"go.yaml.in/yaml/v3"

	"github.com/yunxiao-exporter/yunxiao_exporter/config"
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
		{"webhook values", []string{"--values", webhookValues}},
		{"webhook token, no ingress", append([]string{"--set", "webhook.enabled=true", "--set", "webhook.token=" + webhookToken}, onePipeline...)},
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

// ---- Flow's webhook (issue 12) ----

// The webhook's fixed names: its listener's port name in the pod and the
// Service, where its token is mounted, the one path exposed.
const (
	webhookPortName  = "webhook"
	webhookTokenPath = "/etc/yunxiao_exporter/webhook-token"
	webhookPath      = "/webhook/flow"
)

// webhookValues: the chart's CI values with the webhook on, behind an Ingress.
var webhookValues = filepath.Join(chartDir, "ci", "webhook-values.yaml")

// webhookToken is a token the exporter accepts (16+ of [A-Za-z0-9-._~]).
const webhookToken = "flow-hook-0123456789abcdef"

// TestHelmWebhookOff: by default nothing of the webhook is rendered: no
// Ingress, no second port, no flag, no config key, no mounted secret, and
// NOTES say nothing of it.
func TestHelmWebhookOff(t *testing.T) {
	ms := helmTemplate(t, onePipeline...)
	w := checkWorkload(t, ms, workloadWant{TokenSecret: "yunxiao-yunxiao-exporter-token", TokenKey: "token", Pipelines: true})
	if in := ms.ofKind("Ingress"); len(in) != 0 {
		t.Errorf("default values render %v", in)
	}
	if len(w.Container.Ports) != 1 {
		t.Errorf("container ports %+v: want %s alone", w.Container.Ports, portName)
	}
	for _, a := range w.Container.Args {
		if strings.HasPrefix(a, "--webhook.") {
			t.Errorf("default args hold %s", a)
		}
	}
	if _, ok := w.Config["webhook"]; ok {
		t.Errorf("default config has a webhook key: %v", w.Config["webhook"])
	}
	if _, _, err := resolveFile(w.Deployment.Spec.Template.Spec, w.Container, webhookTokenPath); err == nil {
		t.Errorf("default pod mounts %s", webhookTokenPath)
	}
	notes, err := helmNotes(t, onePipeline...)
	if err != nil {
		t.Fatal(err)
	}
	if strings.Contains(strings.ToLower(notes), "webhook") {
		t.Errorf("default NOTES talk of the webhook:\n%s", notes)
	}
}

// TestHelmWebhook: the CI webhook values render the webhook listener on a
// port of its own (flag, container port, Service port `webhook`), the
// token from the existing Secret mounted where the config's
// webhook.token_file says, and an Ingress for /webhook/flow alone; the
// metrics stay on their port, scraped by the ServiceMonitor; NOTES give the
// URL for Flow and never the token.
func TestHelmWebhook(t *testing.T) {
	ms := helmTemplate(t, "--values", webhookValues)
	w := checkWorkload(t, withoutServicePort(t, ms, webhookPortName), workloadWant{
		ServiceMonitor: true,
		TokenSecret:    "yunxiao-token",
		TokenKey:       "token",
		Pipelines:      true,
	})
	checkWebhook(t, ms, w, webhookWant{
		Port:        10037,
		TokenSecret: "yunxiao-webhook-token",
		TokenKey:    "token",
		Ingress:     true,
		Host:        "flow-hook.example.com",
		PathType:    "Exact",
		TLS:         true,
	})
	for _, m := range ms {
		checkStringMaps(t, m)
	}
	in := ms.one(t, "Ingress")
	if got := in.Metadata.Annotations["nginx.ingress.kubernetes.io/enable-access-log"]; got != "false" {
		t.Errorf("Ingress annotations %v: the example keeps the token out of ingress-nginx's access log", in.Metadata.Annotations)
	}
	if secrets := ms.ofKind("Secret"); len(secrets) != 0 {
		t.Errorf("with existing Secrets the chart renders %v", secrets)
	}

	notes, err := helmNotes(t, "--values", webhookValues)
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{
		"https://flow-hook.example.com/webhook/flow?token=<webhook token>",
		"kubectl -n monitoring get secret yunxiao-webhook-token -o jsonpath='{.data.token}' | base64 -d",
		"port 10037 (Service port `webhook`)",
	} {
		if !strings.Contains(notes, want) {
			t.Errorf("NOTES lack %q:\n%s", want, notes)
		}
	}
	for _, unwanted := range []string{"WARNING: webhook.ingress.tls", "WEBHOOK TOKEN NEEDED", "basic_auth_users"} {
		if strings.Contains(notes, unwanted) {
			t.Errorf("NOTES say %q:\n%s", unwanted, notes)
		}
	}
}

// TestHelmWebhookVariants: the token from webhook.token (the chart creates
// the Secret, and a new token rolls the pod) or from a Secret the user
// creates; no Ingress unless asked; Prefix paths, any host, no TLS; NOTES
// for each.
func TestHelmWebhookVariants(t *testing.T) {
	base := append([]string{"--set", "webhook.enabled=true", "--set", "config.yunxiao.organization_id=60d54f3daccf2bbd6659f3ad"}, onePipeline...)
	for _, tc := range []struct {
		name  string
		args  []string
		want  webhookWant
		notes []string
		// secret: whether the chart must create the webhook's Secret.
		secret bool
	}{
		{
			name:   "token value, no ingress",
			args:   []string{"--set", "webhook.token=" + webhookToken + "\n"},
			want:   webhookWant{Port: 10037, TokenSecret: "yunxiao-yunxiao-exporter-webhook-token", TokenKey: "token", Token: webhookToken},
			secret: true,
			notes: []string{
				"https://<your-host>/webhook/flow?token=<webhook token>",
				"No Ingress (webhook.ingress.enabled=false): route https://<your-host>/webhook/flow, and only that path, to\nsvc/yunxiao-yunxiao-exporter port `webhook` yourself.",
				"kubectl -n monitoring get secret yunxiao-yunxiao-exporter-webhook-token -o jsonpath='{.data.token}' | base64 -d",
			},
		},
		{
			name: "secret created by the user, Prefix, any host, no TLS, other port",
			args: []string{"--set", "webhook.port=9443", "--set", "webhook.ingress.enabled=true", "--set", "webhook.ingress.pathType=Prefix",
				"--set", "extraArgs[0]=--web.config.file=/etc/web/web.yml"},
			want: webhookWant{Port: 9443, TokenSecret: "yunxiao-yunxiao-exporter-webhook-token", TokenKey: "token", Ingress: true, PathType: "Prefix"},
			notes: []string{
				"http://<your-host>/webhook/flow?token=<webhook token>",
				"WARNING: webhook.ingress.tls is empty",
				"WEBHOOK TOKEN NEEDED: the pod waits until the Secret yunxiao-yunxiao-exporter-webhook-token exists",
				"kubectl -n monitoring create secret generic yunxiao-yunxiao-exporter-webhook-token --from-file=token=./webhook-token",
				"If that has basic_auth_users, Flow's calls are refused",
			},
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			args := append(slices.Clone(base), tc.args...)
			ms := helmTemplate(t, args...)
			w := checkWorkload(t, withoutServicePort(t, ms, webhookPortName), workloadWant{TokenSecret: "yunxiao-yunxiao-exporter-token", TokenKey: "token", Pipelines: true})
			checkWebhook(t, ms, w, tc.want)
			annotation := w.Deployment.Spec.Template.Metadata.Annotations["checksum/webhook-token"]
			_, created := ms.named("Secret", tc.want.TokenSecret)
			if created != tc.secret || (annotation != "") != tc.secret {
				t.Errorf("webhook Secret rendered %v, checksum/webhook-token %q; want both only when the chart creates the Secret (%v)", created, annotation, tc.secret)
			}
			if tc.secret {
				// A new token rolls the pod: the exporter reads it at start.
				var d deployment
				helmTemplate(t, append(slices.Clone(args), "--set", "webhook.token="+webhookToken+"-2")...).one(t, "Deployment").decode(t, &d)
				if d.Spec.Template.Metadata.Annotations["checksum/webhook-token"] == annotation {
					t.Error("checksum/webhook-token did not change with the token")
				}
			}
			var cm struct {
				Data map[string]string `yaml:"data"`
			}
			w.ConfigMap.decode(t, &cm)
			if strings.Contains(cm.Data["config.yml"], webhookToken) {
				t.Error("the webhook token appears in the ConfigMap")
			}
			notes, err := helmNotes(t, args...)
			if err != nil {
				t.Fatal(err)
			}
			for _, want := range tc.notes {
				if !strings.Contains(notes, want) {
					t.Errorf("NOTES lack %q:\n%s", want, notes)
				}
			}
			if strings.Contains(notes, webhookToken) {
				t.Errorf("NOTES print the webhook token:\n%s", notes)
			}
		})
	}
}

// TestHelmWebhookRejects: values the exporter would refuse (so the pod
// would crash-loop), or that would leak the token or expose nothing, are
// refused by the chart, each with its own message.
func TestHelmWebhookRejects(t *testing.T) {
	on := []string{"--set", "webhook.enabled=true"}
	for _, tc := range []struct {
		name, want string
		args       []string
	}{
		{"both token sources", "webhook: set either existingSecret or token, not both", append(slices.Clone(on), "--set", "webhook.token="+webhookToken, "--set", "webhook.existingSecret=y")},
		{"short token", "webhook.token: the webhook token must be at least 16 characters", append(slices.Clone(on), "--set", "webhook.token=abc")},
		{"token with a character URLs escape", "only letters, digits and - . _ ~", append(slices.Clone(on), "--set", "webhook.token=flow-hook-0123456789/ab")},
		{"token in config", "config.webhook.token: put the webhook secret in", []string{"--set", "config.webhook.token=" + webhookToken}},
		{"token file in config without the chart's webhook", "config.webhook: set webhook.enabled=true", []string{"--set", "config.webhook.token_file=/x"}},
		{"ingress without the webhook", "webhook.ingress.enabled needs webhook.enabled=true", []string{"--set", "webhook.ingress.enabled=true"}},
		{"port of the metrics listener", "webhook.port 10036: the metrics listener", append(slices.Clone(on), "--set", "webhook.port=10036")},
		{"port of the metrics Service port", "webhook.port 10037: the metrics listener (10036) or service.port", append(slices.Clone(on), "--set", "service.port=10037")},
		{"no port", "webhook.port 0: want a port number", append(slices.Clone(on), "--set", "webhook.port=0")},
		{"other path type", `webhook.ingress.pathType "ImplementationSpecific": want Exact or Prefix`, append(slices.Clone(on), "--set", "webhook.ingress.enabled=true", "--set", "webhook.ingress.pathType=ImplementationSpecific")},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := tryHelmTemplate(t, append(tc.args, onePipeline...)...)
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Errorf("helm template: got error %v, want one saying %q", err, tc.want)
			}
		})
	}
}

// webhookWant is what a rendering with Flow's webhook on must hold.
type webhookWant struct {
	// Port is the webhook listener's port, in the pod and the Service.
	Port int
	// TokenSecret and TokenKey: the Secret and key that must provide the
	// webhook token.
	TokenSecret, TokenKey string
	// Token: the token the exporter must load, when the rendering holds its
	// Secret (else checkWebhook writes one, as the user would).
	Token string
	// Ingress: whether an Ingress must be rendered, and its host (empty:
	// any), path type and whether it has TLS for the host.
	Ingress  bool
	Host     string
	PathType string
	TLS      bool
}

// ingress is the part of an Ingress the checks read.
type ingress struct {
	Metadata meta `yaml:"metadata"`
	Spec     struct {
		DefaultBackend any `yaml:"defaultBackend"`
		TLS            []struct {
			Hosts      []string `yaml:"hosts"`
			SecretName string   `yaml:"secretName"`
		} `yaml:"tls"`
		Rules []struct {
			Host string `yaml:"host"`
			HTTP struct {
				Paths []struct {
					Path     string `yaml:"path"`
					PathType string `yaml:"pathType"`
					Backend  struct {
						Service struct {
							Name string `yaml:"name"`
							Port struct {
								Name   string `yaml:"name"`
								Number int    `yaml:"number"`
							} `yaml:"port"`
						} `yaml:"service"`
					} `yaml:"backend"`
				} `yaml:"paths"`
			} `yaml:"http"`
		} `yaml:"rules"`
	} `yaml:"spec"`
}

// withoutServicePort returns the manifests with the named port taken out of
// every Service, for checkWorkload, which wants the metrics port alone.
func withoutServicePort(t *testing.T, ms manifests, name string) manifests {
	t.Helper()
	out := slices.Clone(ms)
	for i, m := range out {
		if m.Kind != "Service" {
			continue
		}
		var doc map[string]any
		m.decode(t, &doc)
		spec, _ := doc["spec"].(map[string]any)
		ports, _ := spec["ports"].([]any)
		spec["ports"] = slices.DeleteFunc(slices.Clone(ports), func(p any) bool {
			pm, _ := p.(map[string]any)
			return pm["name"] == name
		})
		b, err := yaml.Marshal(doc)
		if err != nil {
			t.Fatal(err)
		}
		out[i] = parseManifests(t, b)[0]
	}
	return out
}

// checkWebhook checks a rendering with Flow's webhook on, beyond
// checkWorkload's checks (w): the exporter runs it on a listener of its own
// (--webhook.listen-address) on a container port and a Service port named
// webhook, while the metrics stay on theirs; the config's
// webhook.token_file names the file a Secret is mounted at, and the
// exporter, loading the rendered config with the mounted files, has the
// webhook on with that token; an Ingress, when wanted, routes /webhook/flow
// and nothing else to the Service's webhook port.
func checkWebhook(t *testing.T, ms manifests, w workload, want webhookWant) {
	t.Helper()
	c, pod := w.Container, w.Deployment.Spec.Template.Spec

	// The listener, its port and the Service's.
	flag := fmt.Sprintf("--webhook.listen-address=:%d", want.Port)
	if n := len(slices.DeleteFunc(slices.Clone(c.Args), func(a string) bool { return !strings.HasPrefix(a, "--webhook.listen-address") })); n != 1 || !slices.Contains(c.Args, flag) {
		t.Errorf("args %q: want %s once", c.Args, flag)
	}
	if !slices.Contains(c.Args, fmt.Sprintf("--web.listen-address=:%d", exporterPort)) {
		t.Errorf("args %q: the metrics must stay on :%d", c.Args, exporterPort)
	}
	if i := slices.IndexFunc(c.Ports, func(p containerPort) bool { return p.Name == webhookPortName }); i < 0 || c.Ports[i].ContainerPort != want.Port {
		t.Errorf("container ports %+v: want %s = %d", c.Ports, webhookPortName, want.Port)
	}
	var svc service
	ms.one(t, "Service").decode(t, &svc)
	if len(svc.Spec.Ports) != 2 || svc.Spec.Ports[0].Name != portName {
		t.Errorf("Service ports %+v: want %s, then %s", svc.Spec.Ports, portName, webhookPortName)
	}
	i := slices.IndexFunc(svc.Spec.Ports, func(p struct {
		Name       string `yaml:"name"`
		Port       int    `yaml:"port"`
		TargetPort any    `yaml:"targetPort"`
	}) bool {
		return p.Name == webhookPortName
	})
	if i < 0 || (svc.Spec.Ports[i].TargetPort != webhookPortName && svc.Spec.Ports[i].TargetPort != want.Port) {
		t.Fatalf("Service ports %+v: want %s targeting the container's %s", svc.Spec.Ports, webhookPortName, webhookPortName)
	}
	servicePort := svc.Spec.Ports[i].Port

	// The config names the mounted token.
	hook, _ := w.Config["webhook"].(map[string]any)
	if hook["token_file"] != webhookTokenPath {
		t.Errorf("config webhook = %v, want token_file: %s", w.Config["webhook"], webhookTokenPath)
	}
	if _, inline := hook["token"]; inline {
		t.Error("config holds an inline webhook.token; it belongs in a Secret")
	}
	src, ro, err := resolveFile(pod, c, webhookTokenPath)
	if err != nil {
		t.Fatalf("webhook token: %v", err)
	}
	if src.Kind != "Secret" || !ro || src.Name != want.TokenSecret || src.Key != want.TokenKey {
		t.Errorf("webhook token comes from %s (readOnly %v), want Secret %s key %s, read-only", src, ro, want.TokenSecret, want.TokenKey)
	}

	// The exporter loads the rendered config with the files the pod sees,
	// and has the webhook on with the mounted token.
	dir := t.TempDir()
	files := map[string]string{tokenFilePath: "pt-test-token", webhookTokenPath: "flow-hook-written-by-the-user-01"}
	if want.Token != "" {
		files[webhookTokenPath] = secretValue(t, ms, src)
	}
	for file, content := range files {
		if err := os.WriteFile(filepath.Join(dir, filepath.Base(file)), []byte(content+"\n"), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	var cm struct {
		Data map[string]string `yaml:"data"`
	}
	w.ConfigMap.decode(t, &cm)
	text := strings.ReplaceAll(cm.Data["config.yml"], path.Dir(configFilePath)+"/", dir+"/")
	cfg, err := config.Load([]byte(text), filepath.Join(dir, "config.yml"), config.LoadOptions{Getenv: func(string) string { return "" }})
	if err != nil {
		t.Fatalf("the exporter refuses the rendered config: %v\n%s", err, text)
	}
	if got := cfg.WebhookToken(); got == "" || got != strings.TrimSpace(files[webhookTokenPath]) {
		t.Errorf("the exporter's webhook token is %q, want the mounted %q", got, files[webhookTokenPath])
	}
	if want.Token != "" && cfg.WebhookToken() != want.Token {
		t.Errorf("the rendered Secret holds %q, want %q", cfg.WebhookToken(), want.Token)
	}

	// The Ingress: /webhook/flow alone, to the Service's webhook port.
	ins := ms.ofKind("Ingress")
	if !want.Ingress {
		if len(ins) != 0 {
			t.Errorf("want no Ingress, got %v", ins)
		}
		return
	}
	if len(ins) != 1 {
		t.Fatalf("want one Ingress, got %v", ins)
	}
	var in ingress
	ins[0].decode(t, &in)
	if in.Spec.DefaultBackend != nil {
		t.Errorf("Ingress has a defaultBackend %v: it would route every path", in.Spec.DefaultBackend)
	}
	if len(in.Spec.Rules) != 1 || len(in.Spec.Rules[0].HTTP.Paths) != 1 {
		t.Fatalf("Ingress rules %+v: want one rule with one path", in.Spec.Rules)
	}
	rule := in.Spec.Rules[0]
	p := rule.HTTP.Paths[0]
	if rule.Host != want.Host || p.Path != webhookPath || p.PathType != want.PathType {
		t.Errorf("Ingress routes host %q path %s (%s), want host %q path %s (%s)", rule.Host, p.Path, p.PathType, want.Host, webhookPath, want.PathType)
	}
	if b := p.Backend.Service; b.Name != svc.Metadata.Name || (b.Port.Name != webhookPortName && b.Port.Number != servicePort) {
		t.Errorf("Ingress backend %+v, want Service %s port %s", b, svc.Metadata.Name, webhookPortName)
	}
	hasTLS := slices.ContainsFunc(in.Spec.TLS, func(tls struct {
		Hosts      []string `yaml:"hosts"`
		SecretName string   `yaml:"secretName"`
	}) bool {
		return tls.SecretName != "" && slices.Contains(tls.Hosts, want.Host)
	})
	if hasTLS != want.TLS {
		t.Errorf("Ingress tls %+v: TLS for %q is %v, want %v", in.Spec.TLS, want.Host, hasTLS, want.TLS)
	}
}

// secretValue is the value of a rendered Secret's key.
func secretValue(t *testing.T, ms manifests, src fileSource) string {
	t.Helper()
	m, ok := ms.named("Secret", src.Name)
	if !ok {
		t.Fatalf("Secret %s is not rendered", src.Name)
	}
	var s struct {
		Data       map[string]string `yaml:"data"`
		StringData map[string]string `yaml:"stringData"`
	}
	m.decode(t, &s)
	if v, ok := s.StringData[src.Key]; ok {
		return v
	}
	v, err := base64.StdEncoding.DecodeString(s.Data[src.Key])
	if err != nil || len(v) == 0 {
		t.Fatalf("Secret %s key %s: %q (%v)", src.Name, src.Key, s.Data[src.Key], err)
	}
	return string(v)
}
