package deploy_test

import (
	"bytes"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"

	"go.yaml.in/yaml/v3"

	"github.com/yunxiao-exporter/yunxiao_exporter/deploy/internal/rulegen"
)

// kustomize renders a kustomization with `kubectl kustomize`, or with a
// standalone `kustomize build`.
func kustomize(t *testing.T, dir string) manifests {
	t.Helper()
	if kubectl, err := exec.LookPath("kubectl"); err == nil {
		return parseManifests(t, run(t, repoRoot(t), kubectl, "kustomize", dir))
	}
	kz := lookTool(t, "kustomize", filepath.Join(goBinDir(), "kustomize"))
	return parseManifests(t, run(t, repoRoot(t), kz, "build", dir))
}

// TestPrometheusRuleUpToDate keeps the kustomize base's PrometheusRule equal to
// what `make generate` makes of deploy/prometheus/alerts.yml, byte for byte,
// and its groups equal to the rule file's.
func TestPrometheusRuleUpToDate(t *testing.T) {
	alerts := readFile(t, repoPath(t, "deploy", "prometheus", "alerts.yml"))
	want, err := rulegen.PrometheusRule(alerts, "yunxiao-exporter")
	if err != nil {
		t.Fatal(err)
	}
	file := repoPath(t, "deploy", "kubernetes", "base", "prometheusrule.yaml")
	got := readFile(t, file)
	if !bytes.Equal(got, want) {
		t.Errorf("%s is out of date with deploy/prometheus/alerts.yml: run `make generate`", file)
	}
	var pr struct {
		Kind string `yaml:"kind"`
		Spec struct {
			Groups any `yaml:"groups"`
		} `yaml:"spec"`
	}
	if err := yaml.Unmarshal(got, &pr); err != nil {
		t.Fatal(err)
	}
	if pr.Kind != "PrometheusRule" {
		t.Errorf("kind = %q", pr.Kind)
	}
	checkRuleGroups(t, file, pr.Spec.Groups)
}

// TestRulegenRejects covers the generator's input checks.
func TestRulegenRejects(t *testing.T) {
	for name, in := range map[string]string{
		"not a mapping": "- a\n- b\n",
		"other key":     "groups: [{name: a, rules: []}]\nextra: 1\n",
		"no groups":     "groups: []\n",
		"invalid":       "groups: [\n",
	} {
		if _, err := rulegen.PrometheusRule([]byte(in), "x"); err == nil {
			t.Errorf("%s: no error", name)
		}
	}
}

var hashSuffix = regexp.MustCompile(`^yunxiao-exporter-config-[a-z0-9]{10}$`)

func TestKustomizeExample(t *testing.T) {
	ms := kustomize(t, "deploy/kubernetes/overlays/example")
	w := checkWorkload(t, ms, workloadWant{
		ServiceMonitor: true,
		PrometheusRule: true,
		TokenSecret:    "yunxiao-exporter-token",
		TokenKey:       "token",
		Pipelines:      true,
	})

	// The config is generated with a content hash in its name, so a config
	// change rolls the pod (the kustomize form of a checksum annotation).
	if !hashSuffix.MatchString(w.ConfigMap.Metadata.Name) {
		t.Errorf("config ConfigMap %q has no content-hash suffix: a config change would not roll the pod", w.ConfigMap.Metadata.Name)
	}
	// The overlay's config replaces the base's.
	yx, _ := w.Config["yunxiao"].(map[string]any)
	if id, _ := yx["organization_id"].(string); id == "" || id == "REPLACE-WITH-ORGANIZATION-ID" {
		t.Errorf("example config organization_id = %q, want the overlay's", id)
	}
	// No token in the rendered output: the Secret is created out of band.
	if secrets := ms.ofKind("Secret"); len(secrets) != 0 {
		t.Errorf("example overlay renders Secrets %v; the token must stay out of git", secrets)
	}
	for _, m := range ms {
		if m.Metadata.Namespace != "monitoring" {
			t.Errorf("%s namespace = %q, want monitoring", m, m.Metadata.Namespace)
		}
	}
	for _, kind := range []string{"ServiceMonitor", "PrometheusRule"} {
		if got := ms.one(t, kind).Metadata.Labels["release"]; got == "" {
			t.Errorf("%s has no release label for the operator's selector", kind)
		}
	}
}

func TestKustomizeBase(t *testing.T) {
	ms := kustomize(t, "deploy/kubernetes/base")
	checkWorkload(t, ms, workloadWant{
		ServiceMonitor: true,
		PrometheusRule: true,
		TokenSecret:    "yunxiao-exporter-token",
		TokenKey:       "token",
	})
}

// TestKustomizeSharded: the sharded overlay runs a StatefulSet whose pods
// take their --shard.index from their ordinal, with --shard.total equal to
// the replica count, and passes every check the single replica passes.
func TestKustomizeSharded(t *testing.T) {
	ms := kustomize(t, "deploy/kubernetes/overlays/sharded")
	if len(ms.ofKind("Deployment")) != 0 {
		t.Error("the sharded overlay still renders the base's Deployment")
	}
	checkWorkload(t, ms, workloadWant{
		ServiceMonitor: true,
		PrometheusRule: true,
		TokenSecret:    "yunxiao-exporter-token",
		TokenKey:       "token",
		Pipelines:      true,
		Kind:           "StatefulSet",
		Replicas:       3,
	})
	var sts struct {
		Spec struct {
			Replicas    int    `yaml:"replicas"`
			ServiceName string `yaml:"serviceName"`
			Template    struct {
				Spec struct {
					Containers []struct {
						Args []string `yaml:"args"`
						Env  []envVar `yaml:"env"`
					} `yaml:"containers"`
				} `yaml:"spec"`
			} `yaml:"template"`
		} `yaml:"spec"`
	}
	ms.one(t, "StatefulSet").decode(t, &sts)
	c := sts.Spec.Template.Spec.Containers[0]
	if !slices.Contains(c.Args, "--shard.index=$(SHARD_INDEX)") || !slices.Contains(c.Args, fmt.Sprintf("--shard.total=%d", sts.Spec.Replicas)) {
		t.Errorf("args %q: want --shard.index=$(SHARD_INDEX) and --shard.total=%d (the replica count)", c.Args, sts.Spec.Replicas)
	}
	i := slices.IndexFunc(c.Env, func(e envVar) bool { return e.Name == "SHARD_INDEX" })
	if i < 0 || c.Env[i].ValueFrom.FieldRef.FieldPath != "metadata.labels['apps.kubernetes.io/pod-index']" {
		t.Errorf("SHARD_INDEX must come from the pod-index label: %+v", c.Env)
	}
	if _, ok := ms.named("Service", sts.Spec.ServiceName); !ok {
		t.Errorf("serviceName %q names no rendered Service", sts.Spec.ServiceName)
	}
}

type envVar struct {
	Name      string `yaml:"name"`
	ValueFrom struct {
		FieldRef struct {
			FieldPath string `yaml:"fieldPath"`
		} `yaml:"fieldRef"`
	} `yaml:"valueFrom"`
}

// The label kube-prometheus-stack's default serviceMonitorSelector and
// ruleSelector match (`release: <its helm release name>`); every overlay meant
// for it puts it on the ServiceMonitor and the PrometheusRule.
const (
	operatorLabelKey   = "release"
	operatorLabelValue = "kube-prometheus-stack"
)

// TestKustomizeOperatorLabels: in every overlay the ServiceMonitor and the
// PrometheusRule carry the label the operator selects them by; without it
// kube-prometheus-stack never scrapes the exporter nor loads its alerts.
func TestKustomizeOperatorLabels(t *testing.T) {
	for _, overlay := range []string{"example", "sharded", "webhook"} {
		t.Run(overlay, func(t *testing.T) {
			var ms manifests
			if overlay == "webhook" {
				ms = kustomizeWebhook(t, webhookToken)
			} else {
				ms = kustomize(t, "deploy/kubernetes/overlays/"+overlay)
			}
			for _, kind := range []string{"ServiceMonitor", "PrometheusRule"} {
				of := ms.ofKind(kind)
				if len(of) != 1 {
					t.Errorf("want one %s, got %v", kind, of)
					continue
				}
				if got, ok := of[0].Metadata.Labels[operatorLabelKey]; !ok || got != operatorLabelValue {
					t.Errorf("%s labels %v: want %s: %s for the operator's selector", of[0], of[0].Metadata.Labels, operatorLabelKey, operatorLabelValue)
				}
			}
		})
	}
}

// webhookOverlay is the overlay with Flow's webhook on.
const webhookOverlay = "deploy/kubernetes/overlays/webhook"

// kustomizeWebhook renders the webhook overlay as a user would: with the
// git-ignored file webhook-token beside its kustomization, holding token.
// It renders a copy of deploy/kubernetes, so the test writes no token into
// the repository.
func kustomizeWebhook(t *testing.T, token string) manifests {
	t.Helper()
	root := t.TempDir()
	if err := os.CopyFS(filepath.Join(root, "kubernetes"), os.DirFS(repoPath(t, "deploy", "kubernetes"))); err != nil {
		t.Fatal(err)
	}
	overlay := filepath.Join(root, "kubernetes", "overlays", "webhook")
	if err := os.WriteFile(filepath.Join(overlay, "webhook-token"), []byte(token+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	return kustomize(t, overlay)
}

var webhookSecretName = regexp.MustCompile(`^yunxiao-exporter-webhook-token-[a-z0-9]{10}$`)

// TestKustomizeWebhook: the webhook overlay passes every check the example
// passes, plus the webhook's: its own listener (flag, container port,
// Service port `webhook`), the token from the secretGenerator's Secret
// mounted where the config's webhook.token_file says (the exporter loads the
// rendered config with it), and an Ingress for /webhook/flow alone with TLS.
// The ServiceMonitor still scrapes http-metrics only; a new token renames the
// Secret, and so rolls the pod; the token file is git-ignored.
func TestKustomizeWebhook(t *testing.T) {
	ms := kustomizeWebhook(t, webhookToken)
	w := checkWorkload(t, withoutServicePort(t, ms, webhookPortName), workloadWant{
		ServiceMonitor: true,
		PrometheusRule: true,
		TokenSecret:    "yunxiao-exporter-token",
		TokenKey:       "token",
		Pipelines:      true,
	})
	secrets := ms.ofKind("Secret")
	if len(secrets) != 1 || !webhookSecretName.MatchString(secrets[0].Metadata.Name) {
		t.Fatalf("want one Secret yunxiao-exporter-webhook-token-<hash> (the API token's is created out of band), got %v", secrets)
	}
	checkWebhook(t, ms, w, webhookWant{
		Port:        10037,
		TokenSecret: secrets[0].Metadata.Name,
		TokenKey:    "token",
		Token:       webhookToken,
		Ingress:     true,
		Host:        "flow-hook.example.com",
		PathType:    "Exact",
		TLS:         true,
	})
	for _, m := range ms {
		checkStringMaps(t, m)
		if m.Metadata.Namespace != "monitoring" {
			t.Errorf("%s namespace = %q, want monitoring", m, m.Metadata.Namespace)
		}
	}
	if !hashSuffix.MatchString(w.ConfigMap.Metadata.Name) {
		t.Errorf("config ConfigMap %q has no content-hash suffix", w.ConfigMap.Metadata.Name)
	}
	if w.Config["cache_ttl"] != "10m" {
		t.Errorf("cache_ttl = %v, want 10m: with the webhook, polling is the safety net", w.Config["cache_ttl"])
	}
	if got := ms.one(t, "Ingress").Metadata.Annotations["nginx.ingress.kubernetes.io/enable-access-log"]; got != "false" {
		t.Errorf("Ingress enable-access-log = %q: keep the token out of ingress-nginx's access log", got)
	}

	// A new token renames the Secret in the pod template: the pod rolls
	// and the exporter reads the new token.
	again := kustomizeWebhook(t, webhookToken+"-2").ofKind("Secret")
	if len(again) != 1 || again[0].Metadata.Name == secrets[0].Metadata.Name {
		t.Errorf("a new token gives Secrets %v, want one renamed from %s", again, secrets[0].Metadata.Name)
	}

	// The token file stays out of git.
	ignore := string(readFile(t, repoPath(t, webhookOverlay, ".gitignore")))
	if !slices.Contains(strings.Split(ignore, "\n"), "webhook-token") {
		t.Errorf("%s/.gitignore does not ignore webhook-token:\n%s", webhookOverlay, ignore)
	}
}
