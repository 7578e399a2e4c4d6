package deploy_test

// Shared by the kustomize, Helm and compose tests: locating the repository
// and the external tools, parsing rendered manifests, and the checks every
// Kubernetes rendering of the exporter must pass.

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path"
	"path/filepath"
	"reflect"
	"runtime"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/common/model"
	"go.yaml.in/yaml/v3"

	"github.com/yunxiao-exporter/yunxiao_exporter/deploy/mixin"
)

// The paths and names every deployment shares (SPEC.md, HELPERS-CONTRACT.md).
const (
	exporterPort   = 10036
	portName       = "http-metrics"
	configFilePath = "/etc/yunxiao_exporter/config.yml"
	tokenFilePath  = "/etc/yunxiao_exporter/token"
	nonRootUID     = 65532
)

// repoRoot is the module root: the parent of this test's directory.
func repoRoot(t *testing.T) string {
	t.Helper()
	_, file, _, ok := runtime.Caller(0)
	if !ok {
		t.Fatal("cannot locate the test source")
	}
	return filepath.Dir(filepath.Dir(file))
}

// repoPath joins elements onto the repository root.
func repoPath(t *testing.T, elem ...string) string {
	t.Helper()
	return filepath.Join(append([]string{repoRoot(t)}, elem...)...)
}

func readFile(t *testing.T, name string) []byte {
	t.Helper()
	b, err := os.ReadFile(name)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// lookTool finds an external tool on PATH or at one of the fallback paths. A
// missing tool skips the test, except on CI (CI=true), where it fails it:
// .ci/run must install what these tests need.
func lookTool(t *testing.T, name string, fallbacks ...string) string {
	t.Helper()
	if p, err := exec.LookPath(name); err == nil {
		return p
	}
	for _, p := range fallbacks {
		if fi, err := os.Stat(p); err == nil && !fi.IsDir() {
			return p
		}
	}
	if os.Getenv("CI") == "true" {
		t.Fatalf("%s not found on PATH (nor at %v); CI must install it", name, fallbacks)
	}
	t.Skipf("%s not found on PATH (nor at %v)", name, fallbacks)
	return ""
}

// goBinDir is where `go install` puts binaries.
func goBinDir() string {
	if gobin := os.Getenv("GOBIN"); gobin != "" {
		return gobin
	}
	gopath := os.Getenv("GOPATH")
	if gopath == "" {
		home, err := os.UserHomeDir()
		if err != nil {
			return ""
		}
		gopath = filepath.Join(home, "go")
	}
	return filepath.Join(filepath.SplitList(gopath)[0], "bin")
}

// run runs a command in dir with a deadline and returns its stdout; a failure
// reports stderr.
func run(t *testing.T, dir string, name string, args ...string) []byte {
	t.Helper()
	out, err := tryRun(t, dir, nil, name, args...)
	if err != nil {
		t.Fatal(err)
	}
	return out
}

func tryRun(t *testing.T, dir string, env []string, name string, args ...string) ([]byte, error) {
	t.Helper()
	ctx, cancel := context.WithTimeout(t.Context(), 5*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, name, args...)
	cmd.Dir = dir
	if env != nil {
		cmd.Env = append(os.Environ(), env...)
	}
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Run(); err != nil {
		return stdout.Bytes(), fmt.Errorf("%s %s: %v\n%s%s", filepath.Base(name), strings.Join(args, " "), err, stderr.String(), stdout.String())
	}
	return stdout.Bytes(), nil
}

// ---- manifests ----

// manifest is one document of a rendered multi-document YAML stream.
type manifest struct {
	APIVersion string `yaml:"apiVersion"`
	Kind       string `yaml:"kind"`
	Metadata   meta   `yaml:"metadata"`
	node       *yaml.Node
}

type meta struct {
	Name        string            `yaml:"name"`
	Namespace   string            `yaml:"namespace"`
	Labels      map[string]string `yaml:"labels"`
	Annotations map[string]string `yaml:"annotations"`
}

func (m manifest) String() string { return m.Kind + "/" + m.Metadata.Name }

// decode decodes the whole document into v.
func (m manifest) decode(t *testing.T, v any) {
	t.Helper()
	if err := m.node.Decode(v); err != nil {
		t.Fatalf("%s: %v", m, err)
	}
}

type manifests []manifest

// parseManifests splits a multi-document YAML stream, skipping empty documents.
func parseManifests(t *testing.T, stream []byte) manifests {
	t.Helper()
	var out manifests
	dec := yaml.NewDecoder(bytes.NewReader(stream))
	for {
		var node yaml.Node
		err := dec.Decode(&node)
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			t.Fatalf("parse rendered manifests: %v\n%s", err, stream)
		}
		if len(node.Content) == 0 || node.Content[0].Kind != yaml.MappingNode {
			continue
		}
		m := manifest{node: &node}
		if err := node.Decode(&m); err != nil {
			t.Fatalf("parse rendered manifest: %v", err)
		}
		if m.Kind == "" || m.APIVersion == "" || m.Metadata.Name == "" {
			t.Fatalf("rendered document without apiVersion, kind or metadata.name at line %d", node.Line)
		}
		out = append(out, m)
	}
	return out
}

func (ms manifests) ofKind(kind string) manifests {
	var out manifests
	for _, m := range ms {
		if m.Kind == kind {
			out = append(out, m)
		}
	}
	return out
}

// one returns the only manifest of a kind.
func (ms manifests) one(t *testing.T, kind string) manifest {
	t.Helper()
	of := ms.ofKind(kind)
	if len(of) != 1 {
		t.Fatalf("want exactly one %s, got %d: %v", kind, len(of), of)
	}
	return of[0]
}

func (ms manifests) named(kind, name string) (manifest, bool) {
	for _, m := range ms {
		if m.Kind == kind && m.Metadata.Name == name {
			return m, true
		}
	}
	return manifest{}, false
}

// Just the parts of the Kubernetes types the checks read.

type deployment struct {
	Metadata meta `yaml:"metadata"`
	Spec     struct {
		Replicas *int `yaml:"replicas"`
		Selector struct {
			MatchLabels map[string]string `yaml:"matchLabels"`
		} `yaml:"selector"`
		Template struct {
			Metadata meta    `yaml:"metadata"`
			Spec     podSpec `yaml:"spec"`
		} `yaml:"template"`
	} `yaml:"spec"`
}

type podSpec struct {
	SecurityContext struct {
		RunAsNonRoot   *bool           `yaml:"runAsNonRoot"`
		RunAsUser      *int64          `yaml:"runAsUser"`
		FSGroup        *int64          `yaml:"fsGroup"`
		SeccompProfile *seccompProfile `yaml:"seccompProfile"`
	} `yaml:"securityContext"`
	Containers []container `yaml:"containers"`
	Volumes    []volume    `yaml:"volumes"`
}

type seccompProfile struct {
	Type string `yaml:"type"`
}

type container struct {
	Name           string          `yaml:"name"`
	Image          string          `yaml:"image"`
	Args           []string        `yaml:"args"`
	Ports          []containerPort `yaml:"ports"`
	LivenessProbe  *probe          `yaml:"livenessProbe"`
	ReadinessProbe *probe          `yaml:"readinessProbe"`
	Resources      struct {
		Requests map[string]any `yaml:"requests"`
		Limits   map[string]any `yaml:"limits"`
	} `yaml:"resources"`
	SecurityContext *struct {
		ReadOnlyRootFilesystem   *bool  `yaml:"readOnlyRootFilesystem"`
		AllowPrivilegeEscalation *bool  `yaml:"allowPrivilegeEscalation"`
		Privileged               *bool  `yaml:"privileged"`
		RunAsNonRoot             *bool  `yaml:"runAsNonRoot"`
		RunAsUser                *int64 `yaml:"runAsUser"`
		Capabilities             *struct {
			Add  []string `yaml:"add"`
			Drop []string `yaml:"drop"`
		} `yaml:"capabilities"`
		SeccompProfile *seccompProfile `yaml:"seccompProfile"`
	} `yaml:"securityContext"`
	VolumeMounts []struct {
		Name      string `yaml:"name"`
		MountPath string `yaml:"mountPath"`
		SubPath   string `yaml:"subPath"`
		ReadOnly  bool   `yaml:"readOnly"`
	} `yaml:"volumeMounts"`
}

type containerPort struct {
	Name          string `yaml:"name"`
	ContainerPort int    `yaml:"containerPort"`
	Protocol      string `yaml:"protocol"`
}

type probe struct {
	HTTPGet *struct {
		Path string `yaml:"path"`
		Port any    `yaml:"port"`
	} `yaml:"httpGet"`
}

type keyToPath struct {
	Key  string `yaml:"key"`
	Path string `yaml:"path"`
}

type volumeSource struct {
	ConfigMap *struct {
		Name  string      `yaml:"name"`
		Items []keyToPath `yaml:"items"`
	} `yaml:"configMap"`
	Secret *struct {
		SecretName string      `yaml:"secretName"` // in a volume
		Name       string      `yaml:"name"`       // in a projection
		Items      []keyToPath `yaml:"items"`
	} `yaml:"secret"`
}

type volume struct {
	Name         string `yaml:"name"`
	volumeSource `yaml:",inline"`
	Projected    *struct {
		Sources []volumeSource `yaml:"sources"`
	} `yaml:"projected"`
}

type service struct {
	Metadata meta `yaml:"metadata"`
	Spec     struct {
		Selector map[string]string `yaml:"selector"`
		Ports    []struct {
			Name       string `yaml:"name"`
			Port       int    `yaml:"port"`
			TargetPort any    `yaml:"targetPort"`
		} `yaml:"ports"`
	} `yaml:"spec"`
}

type serviceMonitor struct {
	Metadata meta `yaml:"metadata"`
	Spec     struct {
		JobLabel string `yaml:"jobLabel"`
		Selector struct {
			MatchLabels map[string]string `yaml:"matchLabels"`
		} `yaml:"selector"`
		NamespaceSelector struct {
			Any        bool     `yaml:"any"`
			MatchNames []string `yaml:"matchNames"`
		} `yaml:"namespaceSelector"`
		Endpoints []struct {
			Port          string `yaml:"port"`
			Path          string `yaml:"path"`
			Interval      string `yaml:"interval"`
			ScrapeTimeout string `yaml:"scrapeTimeout"`
		} `yaml:"endpoints"`
	} `yaml:"spec"`
}

// fileSource is where a file in the container comes from.
type fileSource struct {
	Kind string // ConfigMap or Secret
	Name string
	Key  string
}

func (s fileSource) String() string { return fmt.Sprintf("%s %s key %s", s.Kind, s.Name, s.Key) }

// resolveFile finds which ConfigMap or Secret key the container sees at file,
// following its volume mounts (with or without subPath) into configMap,
// secret and projected volumes.
func resolveFile(spec podSpec, c container, file string) (fileSource, bool, error) {
	best, bestLen := fileSource{}, -1
	var readOnly bool
	for _, vm := range c.VolumeMounts {
		var rel string
		switch {
		case vm.SubPath != "" && vm.MountPath == file:
			rel = vm.SubPath
		case vm.SubPath == "" && strings.HasPrefix(file, strings.TrimSuffix(vm.MountPath, "/")+"/"):
			rel = strings.TrimPrefix(file, strings.TrimSuffix(vm.MountPath, "/")+"/")
		default:
			continue
		}
		if len(vm.MountPath) <= bestLen {
			continue
		}
		i := slices.IndexFunc(spec.Volumes, func(v volume) bool { return v.Name == vm.Name })
		if i < 0 {
			return fileSource{}, false, fmt.Errorf("volume mount %q names no volume", vm.Name)
		}
		v := spec.Volumes[i]
		sources := []volumeSource{v.volumeSource}
		if v.Projected != nil {
			sources = v.Projected.Sources
		}
		src, ok := findInSources(sources, rel)
		if !ok {
			return fileSource{}, false, fmt.Errorf("volume %q mounted at %s holds no %s", v.Name, vm.MountPath, rel)
		}
		best, bestLen, readOnly = src, len(vm.MountPath), vm.ReadOnly
	}
	if bestLen < 0 {
		return fileSource{}, false, fmt.Errorf("no volume mount provides %s", file)
	}
	return best, readOnly, nil
}

func findInSources(sources []volumeSource, rel string) (fileSource, bool) {
	key := func(items []keyToPath) (string, bool) {
		if len(items) == 0 {
			return rel, true // every key becomes a file of its own name
		}
		for _, it := range items {
			if path.Clean(it.Path) == rel {
				return it.Key, true
			}
		}
		return "", false
	}
	for _, s := range sources {
		if s.ConfigMap != nil {
			if k, ok := key(s.ConfigMap.Items); ok && len(s.ConfigMap.Items) > 0 {
				return fileSource{"ConfigMap", s.ConfigMap.Name, k}, true
			}
		}
		if s.Secret != nil {
			name := s.Secret.Name
			if name == "" {
				name = s.Secret.SecretName
			}
			if k, ok := key(s.Secret.Items); ok && len(s.Secret.Items) > 0 {
				return fileSource{"Secret", name, k}, true
			}
		}
	}
	// Sources without items: the first one is a guess, but ours always list items.
	for _, s := range sources {
		if s.ConfigMap != nil && len(s.ConfigMap.Items) == 0 {
			return fileSource{"ConfigMap", s.ConfigMap.Name, rel}, true
		}
		if s.Secret != nil && len(s.Secret.Items) == 0 {
			return fileSource{"Secret", s.Secret.Name + s.Secret.SecretName, rel}, true
		}
	}
	return fileSource{}, false
}

// workloadWant is what a rendering is expected to hold beyond the common checks.
type workloadWant struct {
	// ServiceMonitor and PrometheusRule: whether they must be rendered.
	ServiceMonitor bool
	PrometheusRule bool
	// TokenSecret and TokenKey: the Secret and key that must provide the token.
	TokenSecret string
	TokenKey    string
	// Pipelines: whether the config must list pipelines (an example, not a base).
	Pipelines bool
	// Kind and Replicas of the workload: Deployment and 1 unless sharded.
	Kind     string
	Replicas int
}

// workload is what checkWorkload found, for the renderer-specific checks.
type workload struct {
	Deployment deployment
	Container  container
	ConfigMap  manifest
	Config     map[string]any
	Token      fileSource
}

// checkWorkload runs the checks every Kubernetes rendering of the exporter
// must pass: one Deployment with probes, port, security context and resources;
// the config mounted from a rendered ConfigMap whose token_file names the
// token mounted from a Secret; a Service and, where wanted, a ServiceMonitor
// and a PrometheusRule that match, the rule groups equal to alerts.yml's.
func checkWorkload(t *testing.T, ms manifests, want workloadWant) workload {
	t.Helper()
	var w workload
	kind, replicas := want.Kind, want.Replicas
	if kind == "" {
		kind = "Deployment"
	}
	if replicas == 0 {
		replicas = 1
	}
	ms.one(t, kind).decode(t, &w.Deployment)
	d := w.Deployment

	if d.Spec.Replicas == nil || *d.Spec.Replicas != replicas {
		t.Errorf("%s replicas = %s, want %d (unsharded replicas multiply API calls)", kind, deref(d.Spec.Replicas), replicas)
	}
	podLabels := d.Spec.Template.Metadata.Labels
	if len(d.Spec.Selector.MatchLabels) == 0 || !subset(d.Spec.Selector.MatchLabels, podLabels) {
		t.Errorf("Deployment selector %v does not select its pod labels %v", d.Spec.Selector.MatchLabels, podLabels)
	}
	pod := d.Spec.Template.Spec
	if len(pod.Containers) != 1 {
		t.Fatalf("want 1 container, got %d", len(pod.Containers))
	}
	c := pod.Containers[0]
	w.Container = c

	// Command line and port.
	if !slices.Contains(c.Args, "--config.file="+configFilePath) {
		t.Errorf("container args %q lack --config.file=%s", c.Args, configFilePath)
	}
	if i := slices.IndexFunc(c.Ports, func(p containerPort) bool { return p.Name == portName }); i < 0 || c.Ports[i].ContainerPort != exporterPort {
		t.Errorf("container ports %+v: want %s = %d", c.Ports, portName, exporterPort)
	}

	// Probes.
	for _, p := range []struct {
		name string
		pr   *probe
		path string
	}{{"livenessProbe", c.LivenessProbe, "/-/healthy"}, {"readinessProbe", c.ReadinessProbe, "/-/ready"}} {
		switch {
		case p.pr == nil || p.pr.HTTPGet == nil:
			t.Errorf("%s: want an httpGet probe", p.name)
		case p.pr.HTTPGet.Path != p.path:
			t.Errorf("%s path = %q, want %q", p.name, p.pr.HTTPGet.Path, p.path)
		case !isPort(p.pr.HTTPGet.Port):
			t.Errorf("%s port = %v, want %s or %d", p.name, p.pr.HTTPGet.Port, portName, exporterPort)
		}
	}

	// Security context.
	psc := pod.SecurityContext
	if !isTrue(psc.RunAsNonRoot) {
		t.Error("pod securityContext.runAsNonRoot is not true")
	}
	uid := psc.RunAsUser
	sc := c.SecurityContext
	if sc == nil {
		t.Fatal("container has no securityContext")
	}
	if sc.RunAsUser != nil {
		uid = sc.RunAsUser
	}
	if uid == nil || *uid != nonRootUID {
		t.Errorf("runAsUser = %s, want %d", deref(uid), nonRootUID)
	}
	seccomp := psc.SeccompProfile
	if sc.SeccompProfile != nil {
		seccomp = sc.SeccompProfile
	}
	if seccomp == nil || seccomp.Type != "RuntimeDefault" {
		t.Errorf("seccompProfile = %v, want RuntimeDefault", seccomp)
	}
	if !isTrue(sc.ReadOnlyRootFilesystem) {
		t.Error("container readOnlyRootFilesystem is not true")
	}
	if sc.AllowPrivilegeEscalation == nil || *sc.AllowPrivilegeEscalation {
		t.Error("container allowPrivilegeEscalation is not false")
	}
	if isTrue(sc.Privileged) {
		t.Error("container is privileged")
	}
	if sc.Capabilities == nil || !slices.Contains(sc.Capabilities.Drop, "ALL") || len(sc.Capabilities.Add) > 0 {
		t.Errorf("capabilities = %+v, want drop [ALL] and nothing added", sc.Capabilities)
	}
	for _, res := range []string{"cpu", "memory"} {
		if c.Resources.Requests[res] == nil || c.Resources.Limits[res] == nil {
			t.Errorf("resources: want requests and limits for %s, got %+v", res, c.Resources)
		}
	}

	// Config: mounted from a rendered ConfigMap.
	cfgSrc, ro, err := resolveFile(pod, c, configFilePath)
	if err != nil {
		t.Fatalf("config: %v", err)
	}
	if cfgSrc.Kind != "ConfigMap" || !ro {
		t.Errorf("config comes from %s (readOnly %v), want a read-only ConfigMap mount", cfgSrc, ro)
	}
	cm, ok := ms.named("ConfigMap", cfgSrc.Name)
	if !ok {
		t.Fatalf("config: ConfigMap %s is not rendered", cfgSrc.Name)
	}
	w.ConfigMap = cm
	var cmData struct {
		Data map[string]string `yaml:"data"`
	}
	cm.decode(t, &cmData)
	cfgText, ok := cmData.Data[cfgSrc.Key]
	if !ok {
		t.Fatalf("config: ConfigMap %s has no key %s", cfgSrc.Name, cfgSrc.Key)
	}
	if err := yaml.Unmarshal([]byte(cfgText), &w.Config); err != nil {
		t.Fatalf("config: %s: %v", cfgSrc, err)
	}
	yx, _ := w.Config["yunxiao"].(map[string]any)
	if got := yx["token_file"]; got != tokenFilePath {
		t.Errorf("config yunxiao.token_file = %v, want %s (where the Secret is mounted)", got, tokenFilePath)
	}
	if _, inline := yx["token"]; inline {
		t.Error("config holds an inline yunxiao.token; the token belongs in a Secret")
	}
	if pipelines, _ := w.Config["pipelines"].([]any); want.Pipelines && len(pipelines) == 0 {
		t.Error("config lists no pipelines")
	}

	// Token: a Secret key mounted as the file token_file names.
	tokSrc, ro, err := resolveFile(pod, c, tokenFilePath)
	if err != nil {
		t.Fatalf("token: %v", err)
	}
	w.Token = tokSrc
	if tokSrc.Kind != "Secret" || !ro {
		t.Errorf("token comes from %s (readOnly %v), want a read-only Secret mount", tokSrc, ro)
	}
	if tokSrc.Name != want.TokenSecret || tokSrc.Key != want.TokenKey {
		t.Errorf("token comes from %s, want Secret %s key %s", tokSrc, want.TokenSecret, want.TokenKey)
	}
	if sec, ok := ms.named("Secret", tokSrc.Name); ok {
		var s struct {
			Data       map[string]string `yaml:"data"`
			StringData map[string]string `yaml:"stringData"`
		}
		sec.decode(t, &s)
		if _, ok := s.Data[tokSrc.Key]; !ok {
			if _, ok := s.StringData[tokSrc.Key]; !ok {
				t.Errorf("rendered Secret %s has no key %s", tokSrc.Name, tokSrc.Key)
			}
		}
	}

	// Service.
	var svc service
	ms.one(t, "Service").decode(t, &svc)
	if len(svc.Spec.Selector) == 0 || !subset(svc.Spec.Selector, podLabels) {
		t.Errorf("Service selector %v does not select the pod labels %v", svc.Spec.Selector, podLabels)
	}
	if len(svc.Spec.Ports) != 1 || svc.Spec.Ports[0].Name != portName || !isPort(svc.Spec.Ports[0].TargetPort) {
		t.Errorf("Service ports %+v: want one port %s targeting %s", svc.Spec.Ports, portName, portName)
	}

	// ServiceMonitor.
	sms := ms.ofKind("ServiceMonitor")
	// job is the job label the Prometheus Operator gives the targets: the
	// value of the Service's jobLabel label when set, else its name.
	job := svc.Metadata.Name
	switch {
	case want.ServiceMonitor && len(sms) != 1:
		t.Errorf("want one ServiceMonitor, got %d", len(sms))
	case !want.ServiceMonitor && len(sms) != 0:
		t.Errorf("want no ServiceMonitor, got %v", sms)
	case want.ServiceMonitor:
		sm := checkServiceMonitor(t, sms[0], svc)
		if v := svc.Metadata.Labels[sm.Spec.JobLabel]; sm.Spec.JobLabel != "" && v != "" {
			job = v
		}
	}

	// PrometheusRule.
	prs := ms.ofKind("PrometheusRule")
	switch {
	case want.PrometheusRule && len(prs) != 1:
		t.Errorf("want one PrometheusRule, got %d", len(prs))
	case !want.PrometheusRule && len(prs) != 0:
		t.Errorf("want no PrometheusRule, got %v", prs)
	case want.PrometheusRule:
		var pr struct {
			Spec struct {
				Groups any `yaml:"groups"`
			} `yaml:"spec"`
		}
		prs[0].decode(t, &pr)
		checkRuleGroupsFor(t, prs[0].String(), pr.Spec.Groups, job)
	}

	// Everything namespaced lands in one namespace.
	for _, m := range ms {
		if m.Metadata.Namespace != d.Metadata.Namespace {
			t.Errorf("%s is in namespace %q, the Deployment in %q", m, m.Metadata.Namespace, d.Metadata.Namespace)
		}
	}
	return w
}

func checkServiceMonitor(t *testing.T, m manifest, svc service) serviceMonitor {
	t.Helper()
	var sm serviceMonitor
	m.decode(t, &sm)
	if len(sm.Spec.Selector.MatchLabels) == 0 || !subset(sm.Spec.Selector.MatchLabels, svc.Metadata.Labels) {
		t.Errorf("ServiceMonitor selector %v does not select the Service labels %v", sm.Spec.Selector.MatchLabels, svc.Metadata.Labels)
	}
	ns := sm.Spec.NamespaceSelector
	if len(ns.MatchNames) > 0 && !slices.Contains(ns.MatchNames, svc.Metadata.Namespace) ||
		len(ns.MatchNames) == 0 && !ns.Any && sm.Metadata.Namespace != svc.Metadata.Namespace {
		t.Errorf("ServiceMonitor in %q with namespaceSelector %+v does not see the Service in %q", sm.Metadata.Namespace, ns, svc.Metadata.Namespace)
	}
	if len(sm.Spec.Endpoints) != 1 {
		t.Fatalf("ServiceMonitor: want 1 endpoint, got %d", len(sm.Spec.Endpoints))
	}
	ep := sm.Spec.Endpoints[0]
	if ep.Port != svc.Spec.Ports[0].Name {
		t.Errorf("ServiceMonitor port %q, want the Service's %q", ep.Port, svc.Spec.Ports[0].Name)
	}
	if ep.Path != "" && ep.Path != "/metrics" {
		t.Errorf("ServiceMonitor path %q, want /metrics", ep.Path)
	}
	interval, err1 := model.ParseDuration(ep.Interval)
	timeout, err2 := model.ParseDuration(ep.ScrapeTimeout)
	if err := errors.Join(err1, err2); err != nil {
		t.Errorf("ServiceMonitor interval %q / scrapeTimeout %q: %v", ep.Interval, ep.ScrapeTimeout, err)
	} else if timeout >= interval {
		t.Errorf("ServiceMonitor scrapeTimeout %s is not below interval %s", ep.ScrapeTimeout, ep.Interval)
	}
	return sm
}

// alertGroups parses the groups of deploy/prometheus/alerts.yml.
func alertGroups(t *testing.T) any {
	t.Helper()
	var rules struct {
		Groups any `yaml:"groups"`
	}
	if err := yaml.Unmarshal(readFile(t, repoPath(t, "deploy", "prometheus", "alerts.yml")), &rules); err != nil {
		t.Fatalf("deploy/prometheus/alerts.yml: %v", err)
	}
	if rules.Groups == nil {
		t.Fatal("deploy/prometheus/alerts.yml has no groups")
	}
	return rules.Groups
}

// checkRuleGroups checks that rendered rule groups equal alerts.yml's.
func checkRuleGroups(t *testing.T, what string, groups any) {
	t.Helper()
	want := alertGroups(t)
	if !reflect.DeepEqual(groups, want) {
		got, _ := yaml.Marshal(groups)
		exp, _ := yaml.Marshal(want)
		t.Errorf("%s: spec.groups differ from deploy/prometheus/alerts.yml (run `make generate`)\n--- got\n%s\n--- want\n%s", what, got, exp)
	}
}

// checkRuleGroupsFor checks that rendered rule groups are the mixin's
// default rules for the exporter's scrape job: alerts.yml's when the job is
// the one every scrape config of this repository uses (kustomize), the
// release's job under Helm. So the rules select the job the rendered
// ServiceMonitor gives.
func checkRuleGroupsFor(t *testing.T, what string, groups any, job string) {
	t.Helper()
	c := mixin.Default()
	c.Selector = fmt.Sprintf("job=%q", job)
	if c.Selector == mixin.DefaultSelector {
		checkRuleGroups(t, what, groups)
		return
	}
	rules, err := mixin.Rules(c)
	if err != nil {
		t.Fatal(err)
	}
	var want struct {
		Groups any `yaml:"groups"`
	}
	if err := yaml.Unmarshal(rules, &want); err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(groups, want.Groups) {
		got, _ := yaml.Marshal(groups)
		t.Errorf("%s: spec.groups differ from deploy/mixin's rules for job %q (run `make generate`)\n--- got\n%s\n--- want\n%s", what, job, got, rules)
	}
}

func subset(small, big map[string]string) bool {
	for k, v := range small {
		if bv, ok := big[k]; !ok || bv != v {
			return false
		}
	}
	return true
}

// deref formats an optional field.
func deref[T any](p *T) string {
	if p == nil {
		return "unset"
	}
	return fmt.Sprint(*p)
}

func isTrue(b *bool) bool { return b != nil && *b }

func isPort(p any) bool { return p == portName || p == exporterPort }
