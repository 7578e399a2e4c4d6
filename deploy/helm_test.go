package deploy_test

import (
	"bytes"
	"encoding/base64"
	"path/filepath"
	"strings"
	"testing"
)

const chartDir = "deploy/helm/yunxiao-exporter"

func helmBin(t *testing.T) string {
	t.Helper()
	return lookTool(t, "helm", filepath.Join(goBinDir(), "helm"))
}

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
	base := []string{"template", "yunxiao", chartDir, "--namespace", "monitoring"}
	return tryRun(t, repoRoot(t), nil, helmBin(t), append(base, args...)...)
}

// TestHelmAlertsCopyUpToDate keeps the chart's copy of the alert rules equal
// to deploy/prometheus/alerts.yml (`make generate` copies it).
func TestHelmAlertsCopyUpToDate(t *testing.T) {
	want := readFile(t, repoPath(t, "deploy", "prometheus", "alerts.yml"))
	got := readFile(t, repoPath(t, chartDir, "files", "alerts.yml"))
	if !bytes.Equal(got, want) {
		t.Errorf("%s/files/alerts.yml differs from deploy/prometheus/alerts.yml: run `make generate`", chartDir)
	}
}

func TestHelmLint(t *testing.T) {
	helm := helmBin(t)
	for _, values := range []string{"", "ci/example-values.yaml"} {
		args := []string{"lint", "--strict", chartDir}
		if values != "" {
			args = append(args, "--values", filepath.Join(chartDir, values))
		}
		run(t, repoRoot(t), helm, args...)
	}
}

// TestHelmTemplateDefault: defaults render a working Deployment that mounts the
// user-created Secret <fullname>-token, without operator resources.
func TestHelmTemplateDefault(t *testing.T) {
	ms := helmTemplate(t)
	w := checkWorkload(t, ms, workloadWant{
		TokenSecret: "yunxiao-yunxiao-exporter-token",
		TokenKey:    "token",
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
	ms := helmTemplate(t, "--set", "token.value="+token)
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
		helmTemplate(t, args...).one(t, "Deployment").decode(t, &d)
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

// TestHelmRejects: the chart refuses ambiguous or leaky token settings.
func TestHelmRejects(t *testing.T) {
	for name, args := range map[string][]string{
		"both token sources": {"--set", "token.value=x", "--set", "token.existingSecret=y"},
		"token in config":    {"--set", "config.yunxiao.token=x"},
	} {
		if _, err := tryHelmTemplate(t, args...); err == nil {
			t.Errorf("%s: helm template succeeded", name)
		}
	}
}
