package prometheus_test

// The shipped Alertmanager configs (this directory's documented example and
// the docker-compose one): routes checked with amtool, grouping and
// inhibition with Alertmanager's matching semantics reimplemented below (amtool
// cannot evaluate inhibition), and the same inhibition cases against a real
// Alertmanager when one is installed.
//
// The semantics, as in github.com/prometheus/alertmanager (dispatch/route.go,
// inhibit/inhibit.go, pkg/labels/parse.go): a route matches when all its
// matchers match; the first matching child (depth first, no `continue`
// here) handles the alert, else the route itself; group_by is inherited.
// A target alert is inhibited by a rule when another firing alert matches
// the rule's source matchers, the target matches its target matchers, and
// every label of `equal` has the same value on both (a missing label counts
// as empty). Regular expressions are anchored.

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"sort"
	"strconv"
	"strings"
	"testing"
	"time"

	"go.yaml.in/yaml/v3"

	"github.com/yunxiao-exporter/yunxiao_exporter/deploy/mixin"
)

var amConfigs = []struct {
	name, file string
	// backendRoute: whether the config has the example's backend-team route.
	backendRoute bool
}{
	{"example", "alertmanager.yml", true},
	{"docker-compose", "../docker-compose/alertmanager.yml", false},
}

// goBin is where `go install` puts binaries.
func goBin() string {
	if gobin := os.Getenv("GOBIN"); gobin != "" {
		return gobin
	}
	gopath := os.Getenv("GOPATH")
	if gopath == "" {
		home, _ := os.UserHomeDir()
		gopath = filepath.Join(home, "go")
	}
	return filepath.Join(filepath.SplitList(gopath)[0], "bin")
}

// findTool finds a tool on PATH or in the Go bin directory.
func findTool(name string) (string, bool) {
	if p, err := exec.LookPath(name); err == nil {
		return p, true
	}
	p := filepath.Join(goBin(), name)
	if fi, err := os.Stat(p); err == nil && !fi.IsDir() {
		return p, true
	}
	return "", false
}

// needTool finds a tool or skips the test, except in CI (CI=true), where a
// missing tool fails it.
func needTool(t *testing.T, name, install string) string {
	t.Helper()
	if p, ok := findTool(name); ok {
		return p
	}
	msg := fmt.Sprintf("%s not on PATH nor in %s; install it with `%s`", name, goBin(), install)
	if os.Getenv("CI") == "true" {
		t.Fatal(msg)
	}
	t.Skip(msg)
	return ""
}

const amtoolInstall = "go install github.com/prometheus/alertmanager/cmd/amtool@v0.35.0"

// ---- the config, as far as routing and inhibition go ----

type amConfig struct {
	Route        amRoute `yaml:"route"`
	InhibitRules []struct {
		SourceMatchers []string `yaml:"source_matchers"`
		TargetMatchers []string `yaml:"target_matchers"`
		Equal          []string `yaml:"equal"`
	} `yaml:"inhibit_rules"`
	Receivers []struct {
		Name string `yaml:"name"`
	} `yaml:"receivers"`
}

type amRoute struct {
	Receiver string    `yaml:"receiver"`
	GroupBy  []string  `yaml:"group_by"`
	Matchers []string  `yaml:"matchers"`
	Continue bool      `yaml:"continue"`
	Routes   []amRoute `yaml:"routes"`
}

func loadAMConfig(t *testing.T, file string) amConfig {
	t.Helper()
	var c amConfig
	data, err := os.ReadFile(file)
	if err != nil {
		t.Fatal(err)
	}
	if err := yaml.Unmarshal(data, &c); err != nil {
		t.Fatalf("%s: %v", file, err)
	}
	return c
}

var amMatcher = regexp.MustCompile(`^\s*([a-zA-Z_][a-zA-Z0-9_]*)\s*(=~|!~|!=|=)\s*(.*?)\s*$`)

// amMatches reports whether labels satisfy one Alertmanager matcher string.
func amMatches(t *testing.T, m string, labels map[string]string) bool {
	t.Helper()
	p := amMatcher.FindStringSubmatch(m)
	if p == nil {
		t.Fatalf("matcher %q: cannot parse", m)
	}
	val := p[3]
	if strings.HasPrefix(val, `"`) {
		var err error
		if val, err = strconv.Unquote(val); err != nil {
			t.Fatalf("matcher %q: %v", m, err)
		}
	}
	got := labels[p[1]]
	switch p[2] {
	case "=":
		return got == val
	case "!=":
		return got != val
	}
	re, err := regexp.Compile("^(?:" + val + ")$")
	if err != nil {
		t.Fatalf("matcher %q: %v", m, err)
	}
	return re.MatchString(got) == (p[2] == "=~")
}

func amMatchesAll(t *testing.T, ms []string, labels map[string]string) bool {
	t.Helper()
	for _, m := range ms {
		if !amMatches(t, m, labels) {
			return false
		}
	}
	return true
}

// routeFor returns the route that handles an alert: its receiver and
// group_by, and the path of route indexes to it (part of the group key).
func routeFor(t *testing.T, r amRoute, labels map[string]string) (receiver string, groupBy []string, path string) {
	t.Helper()
	for i, child := range r.Routes {
		if child.Continue {
			t.Fatal("routes with continue are not modelled here")
		}
		if !amMatchesAll(t, child.Matchers, labels) {
			continue
		}
		if child.Receiver == "" {
			child.Receiver = r.Receiver
		}
		if child.GroupBy == nil {
			child.GroupBy = r.GroupBy
		}
		rcv, gb, p := routeFor(t, child, labels)
		return rcv, gb, fmt.Sprintf("%d/%s", i, p)
	}
	return r.Receiver, r.GroupBy, ""
}

// groupKey is what Alertmanager groups notifications by.
func groupKey(t *testing.T, c amConfig, labels map[string]string) string {
	t.Helper()
	rcv, groupBy, path := routeFor(t, c.Route, labels)
	parts := []string{rcv, path}
	for _, l := range groupBy {
		parts = append(parts, l+"="+labels[l])
	}
	return strings.Join(parts, ",")
}

// inhibited returns the alerts that the firing alerts inhibit.
func inhibited(t *testing.T, c amConfig, firing []map[string]string) []string {
	t.Helper()
	var out []string
	for _, target := range firing {
	rules:
		for _, rule := range c.InhibitRules {
			if !amMatchesAll(t, rule.TargetMatchers, target) {
				continue
			}
			for _, source := range firing {
				if labelString(source) == labelString(target) || !amMatchesAll(t, rule.SourceMatchers, source) {
					continue
				}
				equal := true
				for _, l := range rule.Equal {
					equal = equal && source[l] == target[l]
				}
				if equal {
					out = append(out, labelString(target))
					break rules
				}
			}
		}
	}
	sort.Strings(out)
	return out
}

func labelString(labels map[string]string) string {
	keys := make([]string, 0, len(labels))
	for k := range labels {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	var parts []string
	for _, k := range keys {
		parts = append(parts, fmt.Sprintf("%s=%q", k, labels[k]))
	}
	return "{" + strings.Join(parts, ", ") + "}"
}

// ---- the alerts ----

const amJob = "yunxiao-exporter"

func pipelineAlert(name, id, pipeline string) map[string]string {
	return map[string]string{"alertname": name, "pipeline_id": id, "pipeline_name": pipeline, "severity": "warning"}
}

// teamAlert is a per-pipeline alert of a pipeline whose
// yunxiao_pipeline_info has a team, which every per-pipeline alert carries.
func teamAlert(name, id, pipeline, team string) map[string]string {
	a := pipelineAlert(name, id, pipeline)
	a["team"] = team
	a["group"] = "core"
	return a
}

func exporterAlert(name, instance string) map[string]string {
	return map[string]string{"alertname": name, "job": amJob, "instance": instance, "severity": "warning"}
}

// routeCases: every alert, with the receiver and group_by that must handle it.
func routeCases(backendRoute bool) []struct {
	labels   map[string]string
	receiver string
	groupBy  []string
} {
	pipeline := []string{"pipeline_id", "pipeline_name"}
	byName := []string{"alertname"}
	backend := "pipeline-owners"
	if backendRoute {
		backend = "backend-team"
	}
	type rc = struct {
		labels   map[string]string
		receiver string
		groupBy  []string
	}
	cases := []rc{
		{pipelineAlert("YunxiaoPipelineRunFailed", "1001", "backend-build"), backend, pipeline},
		{pipelineAlert("YunxiaoPipelineRunFailed", "1002", "frontend-build"), "pipeline-owners", pipeline},
		{pipelineAlert("YunxiaoPipelineNoRecentSuccess", "1002", "frontend-build"), "pipeline-owners", pipeline},
		{pipelineAlert("YunxiaoPipelineRunStuck", "1002", "frontend-build"), "pipeline-owners", pipeline},
		{pipelineAlert("YunxiaoPipelineWaitingTooLong", "1002", "frontend-build"), "pipeline-owners", pipeline},
		{pipelineAlert("YunxiaoPipelineFailureRatioHigh", "1002", "frontend-build"), "pipeline-owners", pipeline},
		{pipelineAlert("YunxiaoPipelineFetchFailing", "1001", "backend-build"), "platform", byName},
		{pipelineAlert("YunxiaoPipelineDataStale", "1001", "backend-build"), "platform", byName},
		{exporterAlert("YunxiaoApiDown", "a:10036"), "platform", byName},
		{map[string]string{"alertname": "YunxiaoApiRateLimited", "job": amJob, "severity": "warning"}, "platform", byName},
		{exporterAlert("YunxiaoExporterDown", "a:10036"), "platform", byName},
		{map[string]string{"alertname": "YunxiaoExporterAbsent", "job": amJob, "severity": "warning"}, "platform", byName},
		{exporterAlert("YunxiaoExporterConfigReloadFailed", "a:10036"), "platform", byName},
		{exporterAlert("YunxiaoDiscoveryFailing", "a:10036"), "platform", byName},
		{map[string]string{"alertname": "YunxiaoWebhookSilent", "job": amJob, "severity": "warning"}, "platform", byName},
		// By team: the team's route wins over the route by name, for
		// every run alert of the team's pipelines; another team, or none,
		// stays with pipeline-owners (or the route by name); the fetch
		// and staleness alerts stay the platform's.
		{teamAlert("YunxiaoPipelineRunFailed", "1001", "backend-build", "payments"), "team-payments", pipeline},
		{teamAlert("YunxiaoPipelineWaitingTooLong", "1003", "deploy-production", "payments"), "team-payments", pipeline},
		{teamAlert("YunxiaoPipelineFailureRatioHigh", "1003", "deploy-production", "payments"), "team-payments", pipeline},
		{teamAlert("YunxiaoPipelineRunStuck", "1002", "frontend-build", "web"), "pipeline-owners", pipeline},
		{teamAlert("YunxiaoPipelineRunFailed", "1004", "backend-api", "web"), backend, pipeline},
		{teamAlert("YunxiaoPipelineFetchFailing", "1003", "deploy-production", "payments"), "platform", byName},
		{teamAlert("YunxiaoPipelineDataStale", "1003", "deploy-production", "payments"), "platform", byName},
	}
	return cases
}

// TestAlertmanagerCheckConfig runs amtool check-config on both configs.
func TestAlertmanagerCheckConfig(t *testing.T) {
	amtool := needTool(t, "amtool", amtoolInstall)
	for _, c := range amConfigs {
		if out, err := exec.Command(amtool, "check-config", c.file).CombinedOutput(); err != nil {
			t.Errorf("amtool check-config %s: %v\n%s", c.file, err, out)
		}
	}
}

// TestAlertmanagerRoutes: every alert of the rules reaches the receiver of
// who must act, grouped as documented; amtool confirms the receivers.
func TestAlertmanagerRoutes(t *testing.T) {
	amtool, haveAmtool := findTool("amtool")
	if !haveAmtool && os.Getenv("CI") == "true" {
		t.Fatalf("amtool not found; install it with `%s`", amtoolInstall)
	}
	for _, cfg := range amConfigs {
		t.Run(cfg.name, func(t *testing.T) {
			c := loadAMConfig(t, cfg.file)
			covered := map[string]bool{}
			for _, rc := range routeCases(cfg.backendRoute) {
				covered[rc.labels["alertname"]] = true
				rcv, groupBy, _ := routeFor(t, c.Route, rc.labels)
				if rcv != rc.receiver || !slices.Equal(groupBy, rc.groupBy) {
					t.Errorf("%s: routed to %s grouped by %v, want %s grouped by %v", labelString(rc.labels), rcv, groupBy, rc.receiver, rc.groupBy)
				}
				if !haveAmtool {
					continue
				}
				args := []string{"config", "routes", "test", "--config.file=" + cfg.file, "--verify.receivers=" + rc.receiver}
				for k, v := range rc.labels {
					args = append(args, k+"="+v)
				}
				if out, err := exec.Command(amtool, args...).CombinedOutput(); err != nil {
					t.Errorf("amtool %s: %v\n%s", strings.Join(args, " "), err, out)
				}
			}
			for _, name := range mixin.AlertNames() {
				if !covered[name] {
					t.Errorf("no routing case for %s", name)
				}
			}
			if !haveAmtool {
				t.Skipf("amtool not found: routes checked with the Go model only; install it with `%s`", amtoolInstall)
			}
		})
	}
}

// TestAlertmanagerGrouping: one outage is one notification (the fetch and
// staleness alerts of every pipeline share a group; so do the ApiDown alerts
// of every replica), and the run alerts of one pipeline share a group of
// their own.
func TestAlertmanagerGrouping(t *testing.T) {
	for _, cfg := range amConfigs {
		c := loadAMConfig(t, cfg.file)
		same := func(a, b map[string]string, want bool) {
			t.Helper()
			if got := groupKey(t, c, a) == groupKey(t, c, b); got != want {
				t.Errorf("%s: %s and %s in one notification: %v, want %v", cfg.file, labelString(a), labelString(b), got, want)
			}
		}
		same(pipelineAlert("YunxiaoPipelineFetchFailing", "1", "a"), pipelineAlert("YunxiaoPipelineFetchFailing", "2", "b"), true)
		same(pipelineAlert("YunxiaoPipelineDataStale", "1", "a"), pipelineAlert("YunxiaoPipelineDataStale", "2", "b"), true)
		same(exporterAlert("YunxiaoApiDown", "a:10036"), exporterAlert("YunxiaoApiDown", "b:10036"), true)
		same(pipelineAlert("YunxiaoPipelineRunFailed", "1", "frontend-build"), pipelineAlert("YunxiaoPipelineNoRecentSuccess", "1", "frontend-build"), true)
		same(pipelineAlert("YunxiaoPipelineRunFailed", "1", "frontend-build"), pipelineAlert("YunxiaoPipelineRunFailed", "2", "mobile-build"), false)
		same(pipelineAlert("YunxiaoPipelineRunFailed", "1", "frontend-build"), pipelineAlert("YunxiaoPipelineFetchFailing", "1", "frontend-build"), false)
		// A team's pipelines: one notification per pipeline, as for
		// pipeline-owners; the platform's alerts group across teams.
		same(teamAlert("YunxiaoPipelineRunFailed", "1", "a", "payments"), teamAlert("YunxiaoPipelineNoRecentSuccess", "1", "a", "payments"), true)
		same(teamAlert("YunxiaoPipelineRunFailed", "1", "a", "payments"), teamAlert("YunxiaoPipelineRunFailed", "2", "b", "payments"), false)
		same(teamAlert("YunxiaoPipelineFetchFailing", "1", "a", "payments"), pipelineAlert("YunxiaoPipelineFetchFailing", "2", "b"), true)
	}
}

// inhibitionCases: the firing alerts, and which of them must be inhibited.
var inhibitionCases = []struct {
	name      string
	firing    []map[string]string
	inhibited []int // indexes into firing
}{
	{
		name: "API down silences fetch and staleness, not run alerts",
		firing: []map[string]string{
			exporterAlert("YunxiaoApiDown", "a:10036"),
			pipelineAlert("YunxiaoPipelineFetchFailing", "1", "backend-build"),
			pipelineAlert("YunxiaoPipelineDataStale", "2", "frontend-build"),
			pipelineAlert("YunxiaoPipelineRunFailed", "1", "backend-build"),
			exporterAlert("YunxiaoDiscoveryFailing", "a:10036"),
		},
		inhibited: []int{1, 2, 4},
	},
	{
		name: "rate limit silences fetch, staleness and discovery",
		firing: []map[string]string{
			{"alertname": "YunxiaoApiRateLimited", "job": amJob, "severity": "warning"},
			pipelineAlert("YunxiaoPipelineFetchFailing", "1", "backend-build"),
			pipelineAlert("YunxiaoPipelineDataStale", "1", "backend-build"),
			exporterAlert("YunxiaoDiscoveryFailing", "b:10036"),
			pipelineAlert("YunxiaoPipelineRunStuck", "3", "data-sync"),
		},
		inhibited: []int{1, 2, 3},
	},
	{
		name: "exporter down silences fetch and staleness",
		firing: []map[string]string{
			exporterAlert("YunxiaoExporterDown", "a:10036"),
			pipelineAlert("YunxiaoPipelineFetchFailing", "1", "backend-build"),
			pipelineAlert("YunxiaoPipelineDataStale", "2", "frontend-build"),
			pipelineAlert("YunxiaoPipelineWaitingTooLong", "4", "deploy-production"),
		},
		inhibited: []int{1, 2},
	},
	{
		name: "exporter absent silences staleness",
		firing: []map[string]string{
			{"alertname": "YunxiaoExporterAbsent", "job": amJob, "severity": "warning"},
			pipelineAlert("YunxiaoPipelineDataStale", "2", "frontend-build"),
		},
		inhibited: []int{1},
	},
	{
		name: "discovery is silenced only by its own job's API trouble",
		firing: []map[string]string{
			map[string]string{"alertname": "YunxiaoApiDown", "job": "other-exporter", "instance": "x:10036", "severity": "warning"},
			exporterAlert("YunxiaoDiscoveryFailing", "a:10036"),
			exporterAlert("YunxiaoExporterConfigReloadFailed", "a:10036"),
		},
		inhibited: []int{},
	},
	{
		name: "the fetch alerts of a team's pipelines are silenced too",
		firing: []map[string]string{
			exporterAlert("YunxiaoApiDown", "a:10036"),
			teamAlert("YunxiaoPipelineFetchFailing", "1", "backend-build", "payments"),
			teamAlert("YunxiaoPipelineRunFailed", "1", "backend-build", "payments"),
			{"alertname": "YunxiaoWebhookSilent", "job": amJob, "severity": "warning"},
		},
		inhibited: []int{1},
	},
	{
		name: "without a cause, nothing is silenced",
		firing: []map[string]string{
			pipelineAlert("YunxiaoPipelineFetchFailing", "1", "backend-build"),
			pipelineAlert("YunxiaoPipelineDataStale", "1", "backend-build"),
			pipelineAlert("YunxiaoPipelineFailureRatioHigh", "1", "backend-build"),
			exporterAlert("YunxiaoDiscoveryFailing", "a:10036"),
		},
		inhibited: []int{},
	},
}

func wantInhibited(firing []map[string]string, idx []int) []string {
	out := []string{}
	for _, i := range idx {
		out = append(out, labelString(firing[i]))
	}
	sort.Strings(out)
	return out
}

// TestAlertmanagerInhibition evaluates the inhibit rules with Alertmanager's
// semantics, and checks that each names only alerts that exist.
func TestAlertmanagerInhibition(t *testing.T) {
	known := mixin.AlertNames()
	for _, cfg := range amConfigs {
		c := loadAMConfig(t, cfg.file)
		for i, rule := range c.InhibitRules {
			for _, ms := range [][]string{rule.SourceMatchers, rule.TargetMatchers} {
				var matched int
				for _, name := range known {
					if amMatchesAll(t, ms, map[string]string{"alertname": name}) {
						matched++
					}
				}
				if matched == 0 {
					t.Errorf("%s: inhibit rule %d: %q matches no alert of alerts.yml", cfg.file, i, ms)
				}
			}
		}
		for _, tc := range inhibitionCases {
			got := inhibited(t, c, tc.firing)
			if want := wantInhibited(tc.firing, tc.inhibited); !slices.Equal(append([]string{}, got...), want) {
				t.Errorf("%s: %s: inhibited %v, want %v", cfg.file, tc.name, got, want)
			}
		}
	}
}

// TestAlertmanagerInhibitionReal runs the inhibition cases against a real
// Alertmanager, when `alertmanager` is installed. `go install
// github.com/prometheus/alertmanager/cmd/alertmanager@v0.35.0` does not build
// (its web UI is not in the module), so this is skipped without one, also in
// CI; TestAlertmanagerInhibition always runs. Build one from the module with
// an empty ui/app/dist to run it.
func TestAlertmanagerInhibitionReal(t *testing.T) {
	am, ok := findTool("alertmanager")
	if !ok {
		t.Skip("alertmanager not found; the inhibition is checked by TestAlertmanagerInhibition")
	}
	if testing.Short() {
		t.Skip("starts Alertmanager")
	}
	for _, cfg := range amConfigs {
		for _, tc := range inhibitionCases {
			t.Run(cfg.name+"/"+tc.name, func(t *testing.T) {
				base := startAlertmanager(t, am, cfg.file)
				got := realInhibited(t, base, tc.firing, wantInhibited(tc.firing, tc.inhibited))
				if want := wantInhibited(tc.firing, tc.inhibited); !slices.Equal(got, want) {
					t.Errorf("inhibited %v, want %v", got, want)
				}
			})
		}
	}
}

func freePort(t *testing.T) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().String()
}

func startAlertmanager(t *testing.T, bin, config string) string {
	t.Helper()
	addr := freePort(t)
	ctx, cancel := context.WithCancel(context.Background())
	cmd := exec.CommandContext(ctx, bin,
		"--config.file="+config,
		"--storage.path="+t.TempDir(),
		"--web.listen-address="+addr,
		"--cluster.listen-address=",
		"--log.level=warn")
	var logs bytes.Buffer
	cmd.Stdout, cmd.Stderr = &logs, &logs
	if err := cmd.Start(); err != nil {
		cancel()
		t.Fatal(err)
	}
	t.Cleanup(func() {
		cancel()
		_ = cmd.Wait()
		if t.Failed() {
			t.Logf("alertmanager log:\n%s", logs.String())
		}
	})
	base := "http://" + addr
	deadline := time.Now().Add(20 * time.Second)
	for {
		resp, err := http.Get(base + "/-/ready")
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return base
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("alertmanager not ready: %v\n%s", err, logs.String())
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// realInhibited posts the alerts and returns those Alertmanager reports as
// inhibited, once the expected ones are (or after a few seconds).
func realInhibited(t *testing.T, base string, firing []map[string]string, want []string) []string {
	t.Helper()
	type postAlert struct {
		Labels   map[string]string `json:"labels"`
		StartsAt time.Time         `json:"startsAt"`
		EndsAt   time.Time         `json:"endsAt"`
	}
	now := time.Now()
	var alerts []postAlert
	for _, l := range firing {
		alerts = append(alerts, postAlert{l, now.Add(-time.Minute), now.Add(time.Hour)})
	}
	body, _ := json.Marshal(alerts)
	resp, err := http.Post(base+"/api/v2/alerts", "application/json", bytes.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("POST /api/v2/alerts: %s", resp.Status)
	}
	read := func() (listed int, got []string) {
		resp, err := http.Get(base + "/api/v2/alerts")
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		var res []struct {
			Labels map[string]string `json:"labels"`
			Status struct {
				InhibitedBy []string `json:"inhibitedBy"`
			} `json:"status"`
		}
		if err := json.NewDecoder(resp.Body).Decode(&res); err != nil {
			t.Fatal(err)
		}
		got = []string{}
		for _, a := range res {
			if len(a.Status.InhibitedBy) > 0 {
				got = append(got, labelString(a.Labels))
			}
		}
		sort.Strings(got)
		return len(res), got
	}
	// The inhibitor learns of source alerts asynchronously: wait for every
	// alert to be listed and the expected inhibitions, then look once more
	// after a pause, for any unexpected one.
	for deadline := time.Now().Add(5 * time.Second); time.Now().Before(deadline); time.Sleep(100 * time.Millisecond) {
		if n, got := read(); n == len(firing) && slices.Equal(got, want) {
			break
		}
	}
	time.Sleep(300 * time.Millisecond)
	_, got := read()
	return got
}
