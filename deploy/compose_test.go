package deploy_test

import (
	"encoding/json"
	"fmt"
	"io/fs"
	"net"
	"net/url"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"go.yaml.in/yaml/v3"
)

// composeFile is the part of docker-compose.yml the tests read.
type composeFile struct {
	Services map[string]composeService `yaml:"services"`
	Volumes  map[string]any            `yaml:"volumes"`
}

type composeService struct {
	Image   string          `yaml:"image"`
	Build   composeBuild    `yaml:"build"`
	Command stringOrList    `yaml:"command"`
	Volumes []composeVolume `yaml:"volumes"`
}

type composeBuild struct {
	Context    string `yaml:"context"`
	Dockerfile string `yaml:"dockerfile"`
}

// UnmarshalYAML takes `build: dir` as well as the long form.
func (b *composeBuild) UnmarshalYAML(n *yaml.Node) error {
	if n.Kind == yaml.ScalarNode {
		b.Context = n.Value
		return nil
	}
	type plain composeBuild
	return n.Decode((*plain)(b))
}

type stringOrList []string

func (s *stringOrList) UnmarshalYAML(n *yaml.Node) error {
	if n.Kind == yaml.ScalarNode {
		*s = strings.Fields(n.Value)
		return nil
	}
	return n.Decode((*[]string)(s))
}

// composeVolume is a volume in short (src:dst[:mode]) or long syntax.
type composeVolume struct {
	Type     string `yaml:"type"`
	Source   string `yaml:"source"`
	Target   string `yaml:"target"`
	ReadOnly bool   `yaml:"read_only"`
}

func (v *composeVolume) UnmarshalYAML(n *yaml.Node) error {
	if n.Kind != yaml.ScalarNode {
		type plain composeVolume
		return n.Decode((*plain)(v))
	}
	parts := strings.Split(n.Value, ":")
	if len(parts) < 2 || len(parts) > 3 {
		return fmt.Errorf("line %d: volume %q: want source:target[:mode]", n.Line, n.Value)
	}
	v.Source, v.Target = parts[0], parts[1]
	v.ReadOnly = len(parts) == 3 && slices.Contains(strings.Split(parts[2], ","), "ro")
	v.Type = "volume"
	if strings.HasPrefix(v.Source, ".") || strings.HasPrefix(v.Source, "/") || strings.HasPrefix(v.Source, "~") {
		v.Type = "bind"
	}
	return nil
}

func composeDir(t *testing.T) string { return repoPath(t, "deploy", "docker-compose") }

func loadCompose(t *testing.T) composeFile {
	t.Helper()
	var c composeFile
	if err := yaml.Unmarshal(readFile(t, filepath.Join(composeDir(t), "docker-compose.yml")), &c); err != nil {
		t.Fatalf("docker-compose.yml: %v", err)
	}
	return c
}

// hostPath is a bind mount's source as an absolute path.
func hostPath(t *testing.T, src string) string {
	t.Helper()
	p := src
	if !filepath.IsAbs(p) {
		p = filepath.Join(composeDir(t), p)
	}
	return filepath.Clean(p)
}

// mountFor returns the bind mount of svc whose target is, or contains, the
// container path p, and p's host path.
func mountFor(t *testing.T, svc composeService, p string) (composeVolume, string, bool) {
	t.Helper()
	for _, v := range svc.Volumes {
		if v.Type != "bind" {
			continue
		}
		if p == v.Target {
			return v, hostPath(t, v.Source), true
		}
		if rel, ok := strings.CutPrefix(p, strings.TrimSuffix(v.Target, "/")+"/"); ok {
			return v, filepath.Join(hostPath(t, v.Source), filepath.FromSlash(rel)), true
		}
	}
	return composeVolume{}, "", false
}

// composePrometheusConfig is the part of the compose prometheus.yml the tests read.
type composePrometheusConfig struct {
	RuleFiles []string `yaml:"rule_files"`
	Alerting  struct {
		Alertmanagers []struct {
			StaticConfigs []struct {
				Targets []string `yaml:"targets"`
			} `yaml:"static_configs"`
		} `yaml:"alertmanagers"`
	} `yaml:"alerting"`
	ScrapeConfigs []struct {
		JobName       string `yaml:"job_name"`
		StaticConfigs []struct {
			Targets []string `yaml:"targets"`
		} `yaml:"static_configs"`
	} `yaml:"scrape_configs"`
}

// TestComposeExporter: the exporter is built from the repository's Dockerfile
// and runs in demo mode.
func TestComposeExporter(t *testing.T) {
	c := loadCompose(t)
	exp, ok := c.Services["yunxiao-exporter"]
	if !ok {
		t.Fatal("no yunxiao-exporter service")
	}
	if got := hostPath(t, exp.Build.Context); got != repoRoot(t) {
		t.Errorf("exporter build context %s, want the repository root %s", got, repoRoot(t))
	}
	dockerfile := exp.Build.Dockerfile
	if dockerfile == "" {
		dockerfile = "Dockerfile"
	}
	if _, err := os.Stat(filepath.Join(hostPath(t, exp.Build.Context), dockerfile)); err != nil {
		t.Errorf("exporter Dockerfile: %v", err)
	}
	if !slices.Contains(exp.Command, "--demo") {
		t.Errorf("exporter command %q lacks --demo", exp.Command)
	}
}

// TestComposeMounts: every bind mount's host path exists, and every named
// volume is declared.
func TestComposeMounts(t *testing.T) {
	c := loadCompose(t)
	for name, svc := range c.Services {
		for _, v := range svc.Volumes {
			switch v.Type {
			case "bind":
				if _, err := os.Stat(hostPath(t, v.Source)); err != nil {
					t.Errorf("service %s: bind mount %s -> %s: %v", name, v.Source, v.Target, err)
				}
				if !v.ReadOnly {
					t.Errorf("service %s: bind mount %s is not read-only", name, v.Source)
				}
			case "volume":
				if _, ok := c.Volumes[v.Source]; !ok {
					t.Errorf("service %s: volume %s is not declared under volumes:", name, v.Source)
				}
			}
		}
	}
}

// TestComposePrometheus: Prometheus mounts its config and the repository's
// alerts.yml where the config loads it, scrapes the exporter, and sends alerts
// to the Alertmanager service.
func TestComposePrometheus(t *testing.T) {
	c := loadCompose(t)
	prom, ok := c.Services["prometheus"]
	if !ok {
		t.Fatal("no prometheus service")
	}
	_, cfgHost, ok := mountFor(t, prom, "/etc/prometheus/prometheus.yml")
	if !ok || cfgHost != filepath.Join(composeDir(t), "prometheus.yml") {
		t.Fatalf("prometheus: /etc/prometheus/prometheus.yml is %q, want ./prometheus.yml", cfgHost)
	}
	var cfg composePrometheusConfig
	if err := yaml.Unmarshal(readFile(t, cfgHost), &cfg); err != nil {
		t.Fatal(err)
	}

	alerts := repoPath(t, "deploy", "prometheus", "alerts.yml")
	var loadsAlerts bool
	for _, rf := range cfg.RuleFiles {
		_, host, ok := mountFor(t, prom, rf)
		if !ok {
			t.Errorf("rule file %s is not mounted into the prometheus container", rf)
			continue
		}
		if _, err := os.Stat(host); err != nil {
			t.Errorf("rule file %s: %v", rf, err)
		}
		loadsAlerts = loadsAlerts || host == alerts
	}
	if !loadsAlerts {
		t.Errorf("prometheus does not load deploy/prometheus/alerts.yml (rule_files %q)", cfg.RuleFiles)
	}

	var scrapesExporter bool
	for _, sc := range cfg.ScrapeConfigs {
		for _, st := range sc.StaticConfigs {
			for _, target := range st.Targets {
				checkComposeTarget(t, c, "scrape job "+sc.JobName, target)
				scrapesExporter = scrapesExporter || target == fmt.Sprintf("yunxiao-exporter:%d", exporterPort)
			}
		}
	}
	if !scrapesExporter {
		t.Errorf("no scrape job targets yunxiao-exporter:%d", exporterPort)
	}
	for _, am := range cfg.Alerting.Alertmanagers {
		for _, st := range am.StaticConfigs {
			for _, target := range st.Targets {
				checkComposeTarget(t, c, "alertmanager", target)
			}
		}
	}
}

// checkComposeTarget checks that host:port names a compose service (or localhost).
func checkComposeTarget(t *testing.T, c composeFile, what, target string) {
	t.Helper()
	host, _, err := net.SplitHostPort(target)
	if err != nil {
		t.Errorf("%s: target %q: %v", what, target, err)
		return
	}
	if _, ok := c.Services[host]; !ok && host != "localhost" {
		t.Errorf("%s: target %q is not a compose service", what, target)
	}
}

// TestComposeGrafana: the provisioning files point at what is mounted: the
// datasource at the Prometheus service, the dashboard provider at the mount
// of the repository's dashboards/ directory.
func TestComposeGrafana(t *testing.T) {
	c := loadCompose(t)
	graf, ok := c.Services["grafana"]
	if !ok {
		t.Fatal("no grafana service")
	}
	_, provHost, ok := mountFor(t, graf, "/etc/grafana/provisioning")
	if !ok {
		t.Fatal("grafana: /etc/grafana/provisioning is not mounted")
	}

	// The dashboards mount must be the repository's dashboards/ directory.
	dashboards := repoPath(t, "dashboards")
	var dashTarget string
	for _, v := range graf.Volumes {
		if v.Type == "bind" && hostPath(t, v.Source) == dashboards {
			dashTarget = v.Target
		}
	}
	if dashTarget == "" {
		t.Fatalf("grafana does not mount the repository's dashboards/ (%s)", dashboards)
	}
	jsons, _ := filepath.Glob(filepath.Join(dashboards, "*.json"))
	if len(jsons) == 0 {
		t.Errorf("%s holds no dashboard JSON", dashboards)
	}

	// Datasources.
	var dsUIDs []string
	for _, f := range yamlFiles(t, filepath.Join(provHost, "datasources")) {
		var ds struct {
			Datasources []struct {
				Name string `yaml:"name"`
				UID  string `yaml:"uid"`
				Type string `yaml:"type"`
				URL  string `yaml:"url"`
			} `yaml:"datasources"`
		}
		if err := yaml.Unmarshal(readFile(t, f), &ds); err != nil {
			t.Fatalf("%s: %v", f, err)
		}
		for _, d := range ds.Datasources {
			if d.UID == "" {
				t.Errorf("%s: datasource %q has no fixed uid", f, d.Name)
			}
			dsUIDs = append(dsUIDs, d.UID)
			u, err := url.Parse(d.URL)
			if err != nil {
				t.Errorf("%s: datasource %q url: %v", f, d.Name, err)
				continue
			}
			if d.Type == "prometheus" {
				if _, ok := c.Services[u.Hostname()]; !ok || u.Port() != "9090" {
					t.Errorf("%s: datasource %q url %s is not a compose service's Prometheus port", f, d.Name, d.URL)
				}
			}
		}
	}
	if len(dsUIDs) == 0 {
		t.Error("no datasource provisioned")
	}

	// Dashboard providers.
	var providers int
	for _, f := range yamlFiles(t, filepath.Join(provHost, "dashboards")) {
		var dp struct {
			Providers []struct {
				Name    string `yaml:"name"`
				Type    string `yaml:"type"`
				Options struct {
					Path string `yaml:"path"`
				} `yaml:"options"`
			} `yaml:"providers"`
		}
		if err := yaml.Unmarshal(readFile(t, f), &dp); err != nil {
			t.Fatalf("%s: %v", f, err)
		}
		for _, p := range dp.Providers {
			providers++
			if filepath.Clean(p.Options.Path) != filepath.Clean(dashTarget) {
				t.Errorf("%s: provider %q path %q, want the dashboards mount target %q", f, p.Name, p.Options.Path, dashTarget)
			}
		}
	}
	if providers == 0 {
		t.Error("no dashboard provider provisioned")
	}

	// Dashboards reach their data through a variable or the provisioned uid.
	for _, f := range jsons {
		var d any
		if err := json.Unmarshal(readFile(t, f), &d); err != nil {
			t.Errorf("%s: %v", f, err)
			continue
		}
		for _, uid := range datasourceUIDs(d) {
			if !strings.HasPrefix(uid, "$") && !slices.Contains(dsUIDs, uid) &&
				!slices.Contains([]string{"grafana", "-- Grafana --", "-- Mixed --", "-- Dashboard --"}, uid) {
				t.Errorf("%s: datasource uid %q is neither a variable nor a provisioned datasource %q", filepath.Base(f), uid, dsUIDs)
			}
		}
	}
}

// yamlFiles lists the .yml and .yaml files of a provisioning directory.
func yamlFiles(t *testing.T, dir string) []string {
	t.Helper()
	var out []string
	entries, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range entries {
		if ext := filepath.Ext(e.Name()); !e.IsDir() && (ext == ".yml" || ext == ".yaml") {
			out = append(out, filepath.Join(dir, e.Name()))
		}
	}
	if len(out) == 0 {
		t.Errorf("%s holds no provisioning file", dir)
	}
	return out
}

// datasourceUIDs collects the uid of every "datasource" object in a dashboard.
func datasourceUIDs(v any) []string {
	var out []string
	switch v := v.(type) {
	case map[string]any:
		for k, val := range v {
			if ds, ok := val.(map[string]any); ok && k == "datasource" {
				if uid, ok := ds["uid"].(string); ok {
					out = append(out, uid)
				}
			}
			out = append(out, datasourceUIDs(val)...)
		}
	case []any:
		for _, val := range v {
			out = append(out, datasourceUIDs(val)...)
		}
	}
	return out
}

// TestComposePromtool runs `promtool check config` on the compose Prometheus
// config: once syntax only as written, and once in full on a copy whose
// rule_files are rewritten from container paths to the host files mounted
// there, so the alert rules are checked as the container will load them.
func TestComposePromtool(t *testing.T) {
	promtool := lookTool(t, "promtool")
	c := loadCompose(t)
	cfgPath := filepath.Join(composeDir(t), "prometheus.yml")
	run(t, composeDir(t), promtool, "check", "config", "--syntax-only", cfgPath)

	var doc yaml.Node
	if err := yaml.Unmarshal(readFile(t, cfgPath), &doc); err != nil {
		t.Fatal(err)
	}
	root := doc.Content[0]
	var rewritten int
	for i := 0; i+1 < len(root.Content); i += 2 {
		if root.Content[i].Value != "rule_files" {
			continue
		}
		for _, rf := range root.Content[i+1].Content {
			_, host, ok := mountFor(t, c.Services["prometheus"], rf.Value)
			if !ok {
				t.Fatalf("rule file %s is not mounted", rf.Value)
			}
			rf.Value = host
			rewritten++
		}
	}
	if rewritten == 0 {
		t.Fatal("prometheus.yml loads no rule file")
	}
	out, err := yaml.Marshal(&doc)
	if err != nil {
		t.Fatal(err)
	}
	local := filepath.Join(t.TempDir(), "prometheus.yml")
	if err := os.WriteFile(local, out, fs.FileMode(0o644)); err != nil {
		t.Fatal(err)
	}
	res := run(t, composeDir(t), promtool, "check", "config", local)
	if !strings.Contains(string(res), "SUCCESS") {
		t.Errorf("promtool check config: %s", res)
	}
}
