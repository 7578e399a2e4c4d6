package dashboards

import (
	"encoding/json"
	"math"
	"regexp"
	"sort"
	"strconv"
	"strings"
	"testing"
	"time"

	"go.yaml.in/yaml/v3"

	"github.com/yunxiao-exporter/yunxiao_exporter/deploy/mixin"
)

// wantDashboards are the dashboards this directory ships, by file, with the
// uid links and bookmarks depend on.
var wantDashboards = []struct {
	file, uid string
}{
	{"delivery-performance.json", "yunxiao-delivery"},
	{"exporter-health.json", "yunxiao-exporter-health"},
	{"overview.json", "yunxiao-overview"},
	{"pipeline-detail.json", "yunxiao-pipeline-detail"},
}

// contractMetrics are the metric names the dashboards may query: those the
// README's metrics table says the exporter exports (a histogram by its
// series names), the few standard go_/process_ ones the dashboards use, and
// the series Prometheus itself adds to every scrape. Sources marked
// run_history or discovery exist only when that is enabled in the config.
var contractMetrics = []struct {
	name, source string
}{
	{"yunxiao_pipeline_run_status", "exporter"},
	{"yunxiao_pipeline_run_trigger_mode", "exporter"},
	{"yunxiao_pipeline_run_id", "exporter"},
	{"yunxiao_pipeline_run_start_timestamp_seconds", "exporter"},
	{"yunxiao_pipeline_run_end_timestamp_seconds", "exporter"},
	{"yunxiao_pipeline_run_duration_seconds", "exporter"},
	{"yunxiao_pipeline_stage_status", "exporter"},
	{"yunxiao_pipeline_stage_duration_seconds", "exporter"},
	{"yunxiao_pipeline_job_status", "exporter"},
	{"yunxiao_pipeline_job_duration_seconds", "exporter"},
	{"yunxiao_pipeline_up", "exporter"},
	{"yunxiao_pipeline_last_fetch_success_timestamp_seconds", "exporter"},
	{"yunxiao_pipeline_last_finished_run_status", "exporter (exact with run_history)"},
	{"yunxiao_pipeline_last_successful_run_end_timestamp_seconds", "exporter (exact with run_history)"},
	{"yunxiao_pipeline_run_last_progress_timestamp_seconds", "exporter"},
	{"yunxiao_pipeline_fetch_errors_total", "exporter"},
	{"yunxiao_pipeline_runs_total", "exporter (run_history)"},
	{"yunxiao_pipeline_run_completed_duration_seconds_bucket", "exporter (run_history)"},
	{"yunxiao_pipeline_run_completed_duration_seconds_sum", "exporter (run_history)"},
	{"yunxiao_pipeline_run_completed_duration_seconds_count", "exporter (run_history)"},
	{"yunxiao_pipeline_info", "exporter"},
	{"yunxiao_pipeline_run_source_info", "exporter"},
	{"yunxiao_pipeline_run_queued_seconds", "exporter"},
	{"yunxiao_pipeline_run_waiting_seconds", "exporter"},
	{"yunxiao_pipeline_run_executing_seconds", "exporter"},
	{"yunxiao_pipeline_run_queued_duration_seconds_bucket", "exporter (run_history)"},
	{"yunxiao_pipeline_run_queued_duration_seconds_sum", "exporter (run_history)"},
	{"yunxiao_pipeline_run_queued_duration_seconds_count", "exporter (run_history)"},
	{"yunxiao_pipeline_run_executing_duration_seconds_bucket", "exporter (run_history)"},
	{"yunxiao_pipeline_run_executing_duration_seconds_sum", "exporter (run_history)"},
	{"yunxiao_pipeline_run_executing_duration_seconds_count", "exporter (run_history)"},
	{"yunxiao_pipeline_restore_duration_seconds_bucket", "exporter (run_history)"},
	{"yunxiao_pipeline_restore_duration_seconds_sum", "exporter (run_history)"},
	{"yunxiao_pipeline_restore_duration_seconds_count", "exporter (run_history)"},
	{"yunxiao_discovery_pipelines", "exporter (discovery)"},
	{"yunxiao_discovery_last_success_timestamp_seconds", "exporter (discovery)"},
	{"yunxiao_discovery_errors_total", "exporter (discovery)"},
	{"yunxiao_up", "exporter"},
	{"yunxiao_scrape_duration_seconds", "exporter"},
	{"yunxiao_api_requests_total", "exporter"},
	{"yunxiao_api_request_duration_seconds_bucket", "exporter"},
	{"yunxiao_api_request_duration_seconds_sum", "exporter"},
	{"yunxiao_api_request_duration_seconds_count", "exporter"},
	{"yunxiao_exporter_build_info", "exporter"},
	{"yunxiao_exporter_config_last_reload_successful", "exporter"},
	{"yunxiao_exporter_config_last_reload_success_timestamp_seconds", "exporter"},
	{"yunxiao_exporter_shard_info", "exporter"},
	{"yunxiao_webhook_enabled", "exporter"},
	{"yunxiao_webhook_events_total", "exporter"},
	{"yunxiao_webhook_last_accepted_timestamp_seconds", "exporter (webhook, after its first accepted event)"},
	{"go_goroutines", "go collector"},
	{"go_memstats_heap_inuse_bytes", "go collector"},
	{"process_cpu_seconds_total", "process collector"},
	{"process_resident_memory_bytes", "process collector"},
	{"process_open_fds", "process collector"},
	{"process_max_fds", "process collector"},
	{"up", "Prometheus"},
	{"scrape_duration_seconds", "Prometheus"},
	{"scrape_timeout_seconds", "Prometheus (--enable-feature=extra-scrape-metrics)"},
}

var allowedPanelTypes = map[string]bool{
	"timeseries": true, "stat": true, "table": true, "state-timeline": true,
	"status-history": true, "bargauge": true, "text": true, "row": true,
}

// statusColours are the colours every panel showing run, stage or job
// statuses gives them.
var statusColours = map[string]string{
	"SUCCESS":  "green",
	"FAIL":     "red",
	"RUNNING":  "blue",
	"WAITING":  "orange",
	"CANCELED": "#8e8e8e",
}

var grafanaBuiltins = map[string]bool{
	"__rate_interval": true, "__interval": true, "__interval_ms": true,
	"__range": true, "__range_s": true, "__range_ms": true,
}

func loadAll(t *testing.T) ([]Dashboard, map[string][]byte) {
	t.Helper()
	raw, err := All()
	if err != nil {
		t.Fatal(err)
	}
	ds, err := Load()
	if err != nil {
		t.Fatal(err)
	}
	return ds, raw
}

func TestDashboardFiles(t *testing.T) {
	ds, _ := loadAll(t)
	if len(ds) != len(wantDashboards) {
		t.Fatalf("got %d dashboards, want %d", len(ds), len(wantDashboards))
	}
	uids := map[string]string{}
	for i, want := range wantDashboards {
		d := ds[i]
		if d.File != want.file || d.UID != want.uid {
			t.Errorf("dashboard %d: got %s uid %q, want %s uid %q", i, d.File, d.UID, want.file, want.uid)
		}
		if other, dup := uids[d.UID]; dup {
			t.Errorf("%s and %s share uid %q", other, d.File, d.UID)
		}
		uids[d.UID] = d.File
		if d.Title == "" {
			t.Errorf("%s: no title", d.File)
		}
		if d.SchemaVersion < 36 {
			t.Errorf("%s: schemaVersion %d, want 36 or later", d.File, d.SchemaVersion)
		}
	}
}

func TestProvisionable(t *testing.T) {
	_, raw := loadAll(t)
	for name, b := range raw {
		t.Run(name, func(t *testing.T) {
			var top map[string]any
			if err := json.Unmarshal(b, &top); err != nil {
				t.Fatal(err)
			}
			if _, ok := top["__inputs"]; ok {
				t.Error("has __inputs: export it without 'for sharing externally'")
			}
			for _, bad := range []string{"${DS_", "$DS_", "__requires"} {
				if strings.Contains(string(b), bad) {
					t.Errorf("contains %q", bad)
				}
			}
			// Every /d/<uid> link points at one of our dashboards.
			for _, m := range regexp.MustCompile(`/d/([A-Za-z0-9_-]+)`).FindAllStringSubmatch(string(b), -1) {
				found := false
				for _, w := range wantDashboards {
					found = found || w.uid == m[1]
				}
				if !found {
					t.Errorf("link to unknown dashboard uid %q", m[1])
				}
			}
			// Readable: 2-space indented, as json.MarshalIndent writes it.
			if !strings.HasPrefix(string(b), "{\n  \"") {
				t.Error("not indented with 2 spaces")
			}
		})
	}
}

func TestVariables(t *testing.T) {
	want := []struct {
		name, typ, query string
	}{
		{"datasource", "datasource", "prometheus"},
		{"job", "query", "label_values(yunxiao_up, job)"},
		{"instance", "query", `label_values(yunxiao_up{job=~"$job"}, instance)`},
	}
	ds, _ := loadAll(t)
	for _, d := range ds {
		vars := map[string]Variable{}
		for _, v := range d.Templating.List {
			vars[v.Name] = v
		}
		for _, w := range want {
			v, ok := vars[w.name]
			if !ok {
				t.Errorf("%s: no %s variable", d.File, w.name)
				continue
			}
			if v.Type != w.typ || v.QueryString() != w.query {
				t.Errorf("%s: variable %s is %s %q, want %s %q", d.File, w.name, v.Type, v.QueryString(), w.typ, w.query)
			}
			if v.Type == "query" && !isOurDatasource(v.Datasource) {
				t.Errorf("%s: variable %s datasource %+v", d.File, w.name, v.Datasource)
			}
		}
		// Every variable an expression uses is defined or Grafana's own.
		for _, p := range d.AllPanels() {
			for _, tg := range p.Targets {
				for _, m := range variableRe.FindAllStringSubmatch(tg.Expr, -1) {
					name := m[1] + m[2] + m[3]
					if _, ok := vars[name]; !ok && !grafanaBuiltins[name] {
						t.Errorf("%s: panel %q uses undefined variable $%s", d.File, p.Title, name)
					}
				}
			}
		}
	}
}

func isOurDatasource(ds *Datasource) bool {
	return ds != nil && ds.Type == "prometheus" && ds.UID == "${datasource}"
}

func TestPanels(t *testing.T) {
	ds, _ := loadAll(t)
	for _, d := range ds {
		ids, titles := map[int]string{}, map[string]bool{}
		for _, p := range d.AllPanels() {
			if titles[p.Title] {
				t.Errorf("%s: two panels titled %q", d.File, p.Title)
			}
			titles[p.Title] = true
			where := d.File + ": panel " + strings.TrimSpace(p.Title)
			if strings.TrimSpace(p.Title) == "" {
				t.Errorf("%s: panel id %d has no title", d.File, p.ID)
			}
			if !allowedPanelTypes[p.Type] {
				t.Errorf("%s: type %q is not one of the allowed core panels", where, p.Type)
			}
			if other, dup := ids[p.ID]; dup || p.ID == 0 {
				t.Errorf("%s: id %d missing or also used by %q", where, p.ID, other)
			}
			ids[p.ID] = p.Title
			if g := p.GridPos; g == nil || g.W <= 0 || g.H <= 0 || g.X < 0 || g.Y < 0 || g.X+g.W > 24 {
				t.Errorf("%s: bad or missing gridPos %+v", where, g)
			}
			if p.Type == "row" || p.Type == "text" {
				continue
			}
			if !isOurDatasource(p.Datasource) {
				t.Errorf("%s: datasource %+v, want prometheus ${datasource}", where, p.Datasource)
			}
			if p.FieldConfig.Defaults.Unit == "" {
				t.Errorf("%s: no unit (fieldConfig.defaults.unit)", where)
			}
			if len(p.Targets) == 0 {
				t.Errorf("%s: no queries", where)
			}
			refs := map[string]bool{}
			for _, tg := range p.Targets {
				if tg.RefID == "" || refs[tg.RefID] {
					t.Errorf("%s: refId %q empty or repeated", where, tg.RefID)
				}
				refs[tg.RefID] = true
				if tg.Datasource != nil && !isOurDatasource(tg.Datasource) {
					t.Errorf("%s %s: target datasource %+v", where, tg.RefID, tg.Datasource)
				}
			}
		}
	}
}

func TestExpressions(t *testing.T) {
	allowed := map[string]bool{}
	for _, m := range contractMetrics {
		allowed[m.name] = true
	}
	// The series deploy/mixin's recording rules write: summed over every
	// exporter the rules' selector matches, they have no job or instance
	// label, and carry the team instead.
	recorded := map[string]bool{}
	for _, n := range mixin.RecordNames(mixin.Default()) {
		recorded[n] = true
	}
	rateCall := regexp.MustCompile(`\b(rate|irate|increase)\s*\(`)
	// rate and irate take [$__rate_interval]; increase may also count over
	// the dashboard's range or a rolling day.
	windows := map[string][]string{
		"rate":     {"[$__rate_interval]"},
		"irate":    {"[$__rate_interval]"},
		"increase": {"[$__rate_interval]", "[$__range]", "[1d]"},
	}
	ds, _ := loadAll(t)
	for _, d := range ds {
		for _, v := range d.Templating.List {
			if v.Type != "query" {
				continue
			}
			expr, _, err := parseVariableQuery(v.QueryString())
			if err != nil {
				t.Errorf("%s: variable %s: %v", d.File, v.Name, err)
			}
			for _, s := range selectors(expr) {
				if !allowed[s.metric] {
					t.Errorf("%s: variable %s: metric %q is not in the contract", d.File, v.Name, s.metric)
				}
			}
		}
		for _, p := range d.AllPanels() {
			for _, tg := range p.Targets {
				where := d.File + ": panel " + p.Title + " " + tg.RefID
				sels := selectors(tg.Expr)
				if len(sels) == 0 {
					t.Errorf("%s: selects no metric: %q", where, tg.Expr)
				}
				for _, s := range sels {
					if recorded[s.metric] {
						if !strings.Contains(s.matchers, `team=~"$team"`) {
							t.Errorf("%s: recorded %s{%s} lacks team=~\"$team\"", where, s.metric, s.matchers)
						}
						continue
					}
					if !allowed[s.metric] {
						t.Errorf("%s: metric %q is neither in the contract nor recorded by deploy/mixin's rules", where, s.metric)
					}
					for _, m := range []string{`job=~"$job"`, `instance=~"$instance"`} {
						if !strings.Contains(s.matchers, m) {
							t.Errorf("%s: %s{%s} lacks %s", where, s.metric, s.matchers, m)
						}
					}
				}
				for _, loc := range rateCall.FindAllStringSubmatchIndex(tg.Expr, -1) {
					fn := tg.Expr[loc[2]:loc[3]]
					end := closing(tg.Expr, loc[1]-1)
					ok := false
					for _, w := range windows[fn] {
						ok = ok || (end >= 0 && strings.Contains(tg.Expr[loc[0]:end], w))
					}
					if !ok {
						t.Errorf("%s: %s without %s: %q", where, fn, strings.Join(windows[fn], " or "), tg.Expr)
					}
				}
			}
		}
	}
}

// TestStatusColours checks that panels showing statuses colour them.
func TestStatusColours(t *testing.T) {
	showsStatus := regexp.MustCompile(`(by|group_left) \([^)]*\bstatus\b[^)]*\)|status="SUCCESS"[\s\S]*status="FAIL"`)
	_, raw := loadAll(t)
	for name, b := range raw {
		var d struct {
			Panels []rawPanel `json:"panels"`
		}
		if err := json.Unmarshal(b, &d); err != nil {
			t.Fatal(err)
		}
		n := 0
		for _, p := range flattenRaw(d.Panels) {
			shows := false
			for _, tg := range p.Targets {
				shows = shows || ((strings.Contains(tg.Expr, "_status{") || strings.Contains(tg.Expr, "_runs_total{")) &&
					showsStatus.MatchString(tg.Expr))
			}
			if !shows {
				continue
			}
			n++
			got := p.colours()
			for status, colour := range statusColours {
				if got[status] != colour {
					t.Errorf("%s: panel %q colours %s %q, want %q", name, p.Title, status, got[status], colour)
				}
			}
		}
		if name != "exporter-health.json" && name != "delivery-performance.json" && n == 0 {
			t.Errorf("%s: no panel shows statuses", name)
		}
	}
}

func TestQueries(t *testing.T) {
	qs, err := Queries(map[string]string{"pipeline": "1001"})
	if err != nil {
		t.Fatal(err)
	}
	ds, _ := loadAll(t)
	want := 0
	for _, d := range ds {
		for _, v := range d.Templating.List {
			if v.Type == "query" {
				want++
			}
		}
		for _, p := range d.AllPanels() {
			want += len(p.Targets)
		}
	}
	if len(qs) != want {
		t.Errorf("Queries returned %d, want %d (every variable query and target)", len(qs), want)
	}
	seen := map[string]bool{}
	for _, q := range qs {
		where := q.Dashboard + ": " + q.Panel + q.Variable + " " + q.RefID
		if q.Dashboard == "" || (q.Panel == "") == (q.Variable == "") {
			t.Errorf("%s: incomplete %+v", where, q)
		}
		if q.Panel != "" && (q.RefID == "" || q.PanelID == 0) {
			t.Errorf("%s: panel query without refId or panel id", where)
		}
		if seen[where] {
			t.Errorf("%s: repeated", where)
		}
		seen[where] = true
		if strings.Contains(q.Expr, "$") {
			t.Errorf("%s: unsubstituted variable in %q", where, q.Expr)
		}
		if err := balanced(q.Expr); err != "" {
			t.Errorf("%s: %s in %q", where, err, q.Expr)
		}
	}
	for _, w := range []struct{ dashboard, part string }{
		{"yunxiao-pipeline-detail", `pipeline_id=~"1001"`},
		{"yunxiao-overview", "> 7200"},
		{"yunxiao-exporter-health", "[1m]"},
		{"yunxiao-overview", "[1h]"},
		{"yunxiao-overview", "yunxiao_pipeline_runs_total"},
		{"yunxiao-pipeline-detail", "yunxiao_pipeline_run_completed_duration_seconds_bucket"},
		{"yunxiao-exporter-health", "yunxiao_discovery_last_success_timestamp_seconds"},
		{"yunxiao-exporter-health", "yunxiao_exporter_shard_info"},
		{"yunxiao-overview", `pipeline_id=~"1001"`},
		{"yunxiao-overview", "topk(10,"},
		{"yunxiao-overview", "> 7 * 86400"},
		{"yunxiao-overview", "yunxiao_pipeline_last_finished_run_status"},
		{"yunxiao-overview", "yunxiao_pipeline_run_last_progress_timestamp_seconds"},
		{"yunxiao-pipeline-detail", "yunxiao_pipeline_last_successful_run_end_timestamp_seconds"},
		{"yunxiao-pipeline-detail", "increase(yunxiao_pipeline_fetch_errors_total"},
		{"yunxiao-exporter-health", "yunxiao_pipeline_last_fetch_success_timestamp_seconds"},
		// Issue 11.
		{"yunxiao-overview", "yunxiao_pipeline_info"},
		{"yunxiao-overview", "yunxiao_pipeline_run_source_info"},
		{"yunxiao-pipeline-detail", "yunxiao_pipeline_run_source_info"},
		{"yunxiao-pipeline-detail", "yunxiao_pipeline_run_queued_seconds"},
		{"yunxiao-pipeline-detail", "yunxiao_pipeline_run_waiting_seconds"},
		{"yunxiao-pipeline-detail", "yunxiao_pipeline_run_executing_seconds"},
		{"yunxiao-delivery", "yunxiao:team:deployments:increase1d"},
		{"yunxiao-delivery", "yunxiao:pipeline:change_failure_rate:ratio7d"},
		{"yunxiao-delivery", "yunxiao:team:restore_duration_seconds:quantile30d"},
		// Issue 12.
		{"yunxiao-exporter-health", "yunxiao_webhook_enabled"},
		{"yunxiao-exporter-health", "increase(yunxiao_webhook_events_total"},
		{"yunxiao-exporter-health", "yunxiao_webhook_last_accepted_timestamp_seconds"},
	} {
		found := false
		for _, q := range qs {
			found = found || (q.Dashboard == w.dashboard && strings.Contains(q.Expr, w.part))
		}
		if !found {
			t.Errorf("%s: no query contains %q", w.dashboard, w.part)
		}
	}
}

func TestSubstitute(t *testing.T) {
	lookup := func(name string) (string, bool) {
		v, ok := map[string]string{"job": "j.*", "__rate_interval": "2m"}[name]
		return v, ok
	}
	for _, c := range []struct {
		in, want string
		fails    bool
	}{
		{in: `rate(x{job=~"$job"}[$__rate_interval])`, want: `rate(x{job=~"j.*"}[2m])`},
		{in: `x{job=~"${job}"} or x{job=~"${job:regex}"} or x{job=~"[[job]]"}`, want: `x{job=~"j.*"} or x{job=~"j.*"} or x{job=~"j.*"}`},
		{in: `x{a="$nope"}`, fails: true},
		{in: `x{a="${__data.fields.id}"}`, fails: true},
	} {
		got, err := substitute(c.in, lookup)
		if (err != nil) != c.fails || (!c.fails && got != c.want) {
			t.Errorf("substitute(%q) = %q, %v; want %q (fails %v)", c.in, got, err, c.want, c.fails)
		}
	}
}

func TestParseVariableQuery(t *testing.T) {
	for _, c := range []struct{ in, expr, label string }{
		{`label_values(yunxiao_up{job=~"$job", a="b"}, instance)`, `yunxiao_up{job=~"$job", a="b"}`, "instance"},
		{`query_result(max by (a) (x))`, `max by (a) (x)`, ""},
	} {
		expr, label, err := parseVariableQuery(c.in)
		if err != nil || expr != c.expr || label != c.label {
			t.Errorf("parseVariableQuery(%q) = %q, %q, %v", c.in, expr, label, err)
		}
	}
	if _, _, err := parseVariableQuery("metrics(yunxiao_.*)"); err == nil {
		t.Error("metrics() accepted")
	}
}

func TestSelectors(t *testing.T) {
	got := selectors(`sum by (le, endpoint) (rate(a_b{x="}{", y=~"$y"}[5m])) / on (job) group_left (status) max without (z) (c offset 5m) or vector(0) * 1e3 and time() > bool d:e > $threshold`)
	var names []string
	for _, s := range got {
		names = append(names, s.metric)
	}
	sort.Strings(names)
	if strings.Join(names, " ") != "a_b c d:e" {
		t.Errorf("selectors found %v, want [a_b c d:e]", names)
	}
	if got[0].matchers != `x="}{", y=~"$y"` {
		t.Errorf("matchers %q", got[0].matchers)
	}
}

// selector is a metric name in an expression and its {matchers} ("" if none).
type selector struct{ metric, matchers string }

var (
	promKeywords = map[string]bool{
		"and": true, "or": true, "unless": true, "bool": true, "offset": true,
		"inf": true, "nan": true, "atan2": true,
	}
	// Followed by a parenthesised label list, not by an expression.
	labelListKeywords = map[string]bool{
		"by": true, "without": true, "on": true, "ignoring": true,
		"group_left": true, "group_right": true,
	}
	aggregations = map[string]bool{
		"sum": true, "min": true, "max": true, "avg": true, "group": true, "stddev": true,
		"stdvar": true, "count": true, "count_values": true, "bottomk": true, "topk": true,
		"quantile": true, "limitk": true, "limit_ratio": true,
	}
)

// selectors finds the metric selectors of a PromQL expression with a small
// lexer: enough for the dashboards' expressions, not a PromQL parser.
func selectors(expr string) []selector {
	var out []selector
	isIdentStart := func(c byte) bool { return c == '_' || c == ':' || c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' }
	isIdent := func(c byte) bool { return isIdentStart(c) || c >= '0' && c <= '9' }
	nextNonSpace := func(i int) int {
		for i < len(expr) && strings.ContainsRune(" \t\n", rune(expr[i])) {
			i++
		}
		return i
	}
	for i := 0; i < len(expr); {
		c := expr[i]
		switch {
		case c == '"' || c == '\'' || c == '`':
			i = skipString(expr, i)
		case c == '[':
			for i < len(expr) && expr[i] != ']' {
				i++
			}
		case c == '$': // a Grafana variable, not a metric
			if m := variableRe.FindStringIndex(expr[i:]); m != nil && m[0] == 0 {
				i += m[1]
				continue
			}
		case c >= '0' && c <= '9' || c == '.':
			for i < len(expr) && (isIdent(expr[i]) || expr[i] == '.') {
				i++
			}
			continue
		case isIdentStart(c):
			j := i
			for j < len(expr) && isIdent(expr[j]) {
				j++
			}
			word, k := expr[i:j], nextNonSpace(j)
			i = j
			switch {
			case labelListKeywords[word]:
				if k < len(expr) && expr[k] == '(' {
					i = closing(expr, k) + 1
				}
			case promKeywords[word] || aggregations[word]:
			case k < len(expr) && expr[k] == '(':
				// a function call
			case k < len(expr) && expr[k] == '{':
				end := closing(expr, k)
				out = append(out, selector{word, expr[k+1 : end]})
				i = end + 1
			default:
				out = append(out, selector{word, ""})
			}
			continue
		}
		i++
	}
	return out
}

// skipString returns the index just past the string literal starting at i.
func skipString(s string, i int) int {
	q := s[i]
	for i++; i < len(s); i++ {
		if s[i] == '\\' && q != '`' {
			i++
		} else if s[i] == q {
			return i + 1
		}
	}
	return i
}

// closing returns the index of the bracket closing the one at open, or -1.
func closing(s string, open int) int {
	pairs := map[byte]byte{'(': ')', '{': '}', '[': ']'}
	var stack []byte
	for i := open; i < len(s); {
		c := s[i]
		if c == '"' || c == '\'' || c == '`' {
			i = skipString(s, i)
			continue
		}
		if want, ok := pairs[c]; ok {
			stack = append(stack, want)
		} else if len(stack) > 0 && c == stack[len(stack)-1] {
			stack = stack[:len(stack)-1]
			if len(stack) == 0 {
				return i
			}
		}
		i++
	}
	return -1
}

// balanced reports what is wrong with the expression's brackets and quotes,
// or "" when they balance.
func balanced(s string) string {
	var stack []byte
	for i := 0; i < len(s); {
		c := s[i]
		switch c {
		case '"', '\'', '`':
			j := skipString(s, i)
			if j > len(s) || s[j-1] != c || j-1 == i {
				return "unterminated string"
			}
			i = j
			continue
		case '(', '{', '[':
			stack = append(stack, map[byte]byte{'(': ')', '{': '}', '[': ']'}[c])
		case ')', '}', ']':
			if len(stack) == 0 || stack[len(stack)-1] != c {
				return "unbalanced " + string(c)
			}
			stack = stack[:len(stack)-1]
		}
		i++
	}
	if len(stack) > 0 {
		return "unclosed bracket"
	}
	return ""
}

// TestOptInPanelsSaySo checks that every panel querying metrics that exist
// only with run_history or discovery enabled says so in its description, so
// that an empty panel explains itself.
func TestOptInPanelsSaySo(t *testing.T) {
	optIn := []struct{ metric, mention string }{
		{"yunxiao_pipeline_runs_total", "run_history"},
		{"yunxiao_pipeline_run_completed_duration_seconds", "run_history"},
		{"yunxiao_discovery_", "discovery.enabled"},
		// Exact with run_history, best effort without: the panel says which.
		{"yunxiao_pipeline_last_finished_run_status", "run_history"},
		{"yunxiao_pipeline_last_successful_run_end_timestamp_seconds", "run_history"},
		{"yunxiao_pipeline_restore_duration_seconds", "run_history"},
		{"yunxiao_pipeline_run_queued_duration_seconds", "run_history"},
		{"yunxiao_pipeline_run_executing_duration_seconds", "run_history"},
		// The delivery recording rules read run history's counters.
		{"yunxiao:", "run_history"},
		// Absent until the webhook, turned on, accepts an event.
		{"yunxiao_webhook_last_accepted_timestamp_seconds", "webhook.token"},
	}
	_, raw := loadAll(t)
	for name, b := range raw {
		var d struct {
			Panels []rawPanel `json:"panels"`
		}
		if err := json.Unmarshal(b, &d); err != nil {
			t.Fatal(err)
		}
		for _, p := range flattenRaw(d.Panels) {
			for _, o := range optIn {
				uses := false
				for _, tg := range p.Targets {
					uses = uses || strings.Contains(tg.Expr, o.metric)
				}
				if uses && !strings.Contains(p.Description, o.mention) {
					t.Errorf("%s: panel %q queries %s but its description does not mention %s", name, p.Title, o.metric, o.mention)
				}
			}
		}
	}
}

// rawPanel is what TestStatusColours and TestOptInPanelsSaySo read of a panel.
type rawPanel struct {
	Title       string     `json:"title"`
	Description string     `json:"description"`
	Panels      []rawPanel `json:"panels"`
	Targets     []struct {
		Expr string `json:"expr"`
	} `json:"targets"`
	FieldConfig struct {
		Defaults struct {
			Mappings []mapping `json:"mappings"`
		} `json:"defaults"`
		Overrides []struct {
			Matcher struct {
				ID      string `json:"id"`
				Options any    `json:"options"`
			} `json:"matcher"`
			Properties []struct {
				ID    string          `json:"id"`
				Value json.RawMessage `json:"value"`
			} `json:"properties"`
		} `json:"overrides"`
	} `json:"fieldConfig"`
}

type mapping struct {
	Type    string `json:"type"`
	Options map[string]struct {
		Text  string `json:"text"`
		Color string `json:"color"`
	} `json:"options"`
}

func flattenRaw(ps []rawPanel) []rawPanel {
	var out []rawPanel
	for _, p := range ps {
		out = append(out, p)
		out = append(out, flattenRaw(p.Panels)...)
	}
	return out
}

// colours returns the colour the panel gives each displayed text, from value
// mappings (defaults and overrides) and fixed colours of byName overrides.
func (p rawPanel) colours() map[string]string {
	out := map[string]string{}
	addMappings := func(ms []mapping) {
		for _, m := range ms {
			if m.Type != "value" {
				continue
			}
			for key, r := range m.Options {
				text := r.Text
				if text == "" {
					text = key
				}
				out[text] = r.Color
			}
		}
	}
	addMappings(p.FieldConfig.Defaults.Mappings)
	for _, o := range p.FieldConfig.Overrides {
		for _, pr := range o.Properties {
			switch pr.ID {
			case "mappings":
				var ms []mapping
				if json.Unmarshal(pr.Value, &ms) == nil {
					addMappings(ms)
				}
			case "color":
				var c struct {
					FixedColor string `json:"fixedColor"`
				}
				name, _ := o.Matcher.Options.(string)
				if o.Matcher.ID == "byName" && json.Unmarshal(pr.Value, &c) == nil {
					out[name] = c.FixedColor
				}
			}
		}
	}
	return out
}

// versionDependentMatchers returns the le and quantile matchers of expr that
// select a bucket or quantile by a value Prometheus 2 and 3 store
// differently: Prometheus 3 normalises le="1" to le="1.0" (and quantile
// alike), so an exact match on an integer-looking value, or a regular
// expression that matches only one of the two spellings, selects nothing on
// one of them. Use histogram_quantile over every bucket, or le=~"1(\\.0)?".
func versionDependentMatchers(expr string) []string {
	var out []string
	for _, m := range floatLabelMatcher.FindAllStringSubmatch(expr, -1) {
		op, value := m[2], unquotePromQL(m[3])
		switch op {
		case "=", "!=":
			if f, err := strconv.ParseFloat(value, 64); err == nil && !math.IsInf(f, 0) && f == math.Trunc(f) {
				out = append(out, m[0])
			}
		case "=~", "!~":
			re, err := regexp.Compile("^(?:" + value + ")$")
			if err != nil {
				out = append(out, m[0]+" (invalid regular expression)")
				continue
			}
			for _, n := range regexp.MustCompile(`\d+`).FindAllString(value, -1) {
				if re.MatchString(n) != re.MatchString(n+".0") {
					out = append(out, m[0])
					break
				}
			}
		}
	}
	return out
}

var floatLabelMatcher = regexp.MustCompile("\\b(le|quantile)\\s*(=~|!~|!=|=)\\s*(\"(?:[^\"\\\\]|\\\\.)*\"|'(?:[^'\\\\]|\\\\.)*'|`[^`]*`)")

// unquotePromQL returns the value of a PromQL string literal.
func unquotePromQL(q string) string {
	switch q[0] {
	case '`':
		return q[1 : len(q)-1]
	case '\'':
		q = `"` + strings.ReplaceAll(strings.ReplaceAll(q[1:len(q)-1], `\'`, `'`), `"`, `\"`) + `"`
	}
	s, err := strconv.Unquote(q)
	if err != nil {
		return q
	}
	return s
}

func TestVersionDependentMatchers(t *testing.T) {
	for _, c := range []struct {
		expr string
		bad  bool
	}{
		{`x_bucket{le="1"}`, true},
		{`x_bucket{le="1.0"}`, true},
		{`x_bucket{job="a", le = "3600"}`, true},
		{`x_bucket{le!="10"}`, true},
		{`x_bucket{le="1e3"}`, true},
		{`x_bucket{le='60'}`, true},
		{`x_bucket{le=~"3600"}`, true},
		{`x_bucket{le=~"3600|7200(\\.0)?"}`, true},
		{`x{quantile="1"}`, true},
		{`x_bucket{le="0.5"}`, false},
		{`x_bucket{le="+Inf"}`, false},
		{`x_bucket{le=~"3600(\\.0)?"}`, false},
		{`x_bucket{le=~"(3600|7200)(\\.0)?"}`, false},
		{`x{quantile="0.99"}`, false},
		{`histogram_quantile(0.5, sum by (le) (rate(x_bucket[5m])))`, false},
		{`x{handle="1"}`, false},
	} {
		if got := versionDependentMatchers(c.expr); (len(got) > 0) != c.bad {
			t.Errorf("versionDependentMatchers(%s) = %q, want bad %v", c.expr, got, c.bad)
		}
	}
}

// TestNoIntegerBucketSelectors (issue 10, item 16): no query selects a
// histogram bucket or a quantile by a value Prometheus 3 spells otherwise.
func TestNoIntegerBucketSelectors(t *testing.T) {
	ds, _ := loadAll(t)
	for _, d := range ds {
		for _, v := range d.Templating.List {
			if bad := versionDependentMatchers(v.QueryString()); len(bad) > 0 {
				t.Errorf("%s: variable %s selects by %q", d.File, v.Name, bad)
			}
		}
		for _, p := range d.AllPanels() {
			for _, tg := range p.Targets {
				if bad := versionDependentMatchers(tg.Expr); len(bad) > 0 {
					t.Errorf("%s: panel %q %s selects by %q: Prometheus 3 stores le=\"1\" as le=\"1.0\"", d.File, p.Title, tg.RefID, bad)
				}
			}
		}
	}
}

// drawsEachSeries are the panel types that draw one line, row, tile or bar
// per series.
var drawsEachSeries = map[string]bool{
	"timeseries": true, "state-timeline": true, "status-history": true, "bargauge": true, "stat": true,
}

// perPipeline reports whether a target yields one series per pipeline: its
// legend names the pipeline, or its outermost aggregation keeps pipeline_id.
func perPipeline(tg Target, legend string) bool {
	if strings.Contains(legend, "{{pipeline_") || strings.Contains(legend, "{{ pipeline_") {
		return true
	}
	m := outerBy.FindStringSubmatch(strings.TrimSpace(tg.Expr))
	return m != nil && regexp.MustCompile(`\bpipeline_(id|name)\b`).MatchString(m[1])
}

var outerBy = regexp.MustCompile(`^(?:max|min|sum|avg|count|group|last_over_time)?\s*by\s*\(([^)]*)\)`)

// TestReadableAtThousandPipelines (issue 10, item 17): the overview and the
// health dashboard draw aggregates or the top N pipelines by default, never a
// series per pipeline for every pipeline; per-pipeline lines are only in
// collapsed rows (whose queries run when the row is opened) and on the
// pipeline detail dashboard. The overview filters every query on its
// multi-value pipeline variable.
func TestReadableAtThousandPipelines(t *testing.T) {
	ds, raw := loadAll(t)
	for _, d := range ds {
		if d.UID == "yunxiao-pipeline-detail" {
			continue
		}
		var legends map[string]string // panel title + refId -> legendFormat
		{
			var r struct {
				Panels []struct {
					Title   string `json:"title"`
					Targets []struct {
						RefID  string `json:"refId"`
						Legend string `json:"legendFormat"`
					} `json:"targets"`
				} `json:"panels"`
			}
			if err := json.Unmarshal(raw[d.File], &r); err != nil {
				t.Fatal(err)
			}
			legends = map[string]string{}
			for _, p := range r.Panels {
				for _, tg := range p.Targets {
					legends[p.Title+"\x00"+tg.RefID] = tg.Legend
				}
			}
		}
		topN := 0
		// d.Panels are the panels shown when the dashboard opens: a
		// collapsed row keeps its panels inside it.
		for _, p := range d.Panels {
			if !drawsEachSeries[p.Type] {
				continue
			}
			for _, tg := range p.Targets {
				if !perPipeline(tg, legends[p.Title+"\x00"+tg.RefID]) {
					continue
				}
				if !regexp.MustCompile(`^(topk|bottomk)\s*\(`).MatchString(strings.TrimSpace(tg.Expr)) &&
					!regexp.MustCompile(`\b(topk|bottomk)\s*\(\s*(\$topn|10)\s*,`).MatchString(tg.Expr) {
					t.Errorf("%s: panel %q %s draws one series per pipeline without topk/bottomk: at 1,000 pipelines that is 1,000 series (aggregate, take the top N, or move it into a collapsed row)", d.File, p.Title, tg.RefID)
					continue
				}
				topN++
			}
		}
		if topN == 0 {
			t.Errorf("%s: no top-N panel", d.File)
		}
	}

	var ov Dashboard
	for _, d := range ds {
		if d.UID == "yunxiao-overview" {
			ov = d
		}
	}
	vars := map[string]Variable{}
	for _, v := range ov.Templating.List {
		vars[v.Name] = v
	}
	pv, ok := vars["pipeline"]
	switch {
	case !ok:
		t.Fatal("overview: no pipeline variable")
	case pv.Type != "query" || !isOurDatasource(pv.Datasource) || !pv.IncludeAll || pv.AllValue != ".*":
		t.Errorf("overview: pipeline variable %+v: want a query variable on ${datasource} with All (.*)", pv)
	case !strings.Contains(pv.QueryString(), "pipeline_id") || !strings.Contains(pv.QueryString(), "pipeline_name"):
		t.Errorf("overview: pipeline variable lists %q: want names, selecting ids", pv.QueryString())
	}
	var multi struct {
		Templating struct {
			List []struct {
				Name  string `json:"name"`
				Multi bool   `json:"multi"`
				Regex string `json:"regex"`
			} `json:"list"`
		} `json:"templating"`
	}
	if err := json.Unmarshal(raw[ov.File], &multi); err != nil {
		t.Fatal(err)
	}
	for _, v := range multi.Templating.List {
		if v.Name == "pipeline" && (!v.Multi || !strings.Contains(v.Regex, `pipeline_id="(?<value>`)) {
			t.Errorf("overview: pipeline variable multi %v regex %q: want multi-value, valued by pipeline_id like the detail dashboard's", v.Multi, v.Regex)
		}
	}
	if _, ok := vars["topn"]; !ok {
		t.Error("overview: no topn variable")
	}
	// Every per-pipeline selector of the overview filters on $pipeline.
	for _, p := range ov.AllPanels() {
		for _, tg := range p.Targets {
			for _, s := range selectors(tg.Expr) {
				if strings.HasPrefix(s.metric, "yunxiao_pipeline_") && !strings.Contains(s.matchers, `pipeline_id=~"$pipeline"`) {
					t.Errorf("overview: panel %q %s: %s{%s} lacks pipeline_id=~\"$pipeline\"", p.Title, tg.RefID, s.metric, s.matchers)
				}
			}
		}
	}
}

// TestStatsCountCounters (issue 10, item 17): a single-number panel over a
// counter shows a count over the range (increase(...[$__range])), not a mean
// per-second rate.
func TestStatsCountCounters(t *testing.T) {
	counter := regexp.MustCompile(`\b(rate|irate)\s*\(\s*[a-z_:]+(_total|_count|_bucket)\b`)
	ds, _ := loadAll(t)
	for _, d := range ds {
		for _, p := range d.AllPanels() {
			if p.Type != "stat" && p.Type != "bargauge" {
				continue
			}
			for _, tg := range p.Targets {
				if counter.MatchString(tg.Expr) {
					t.Errorf("%s: panel %q %s shows a per-second rate of a counter; show increase(...[$__range]): %q", d.File, p.Title, tg.RefID, tg.Expr)
				}
				for _, loc := range regexp.MustCompile(`\bincrease\s*\(`).FindAllStringIndex(tg.Expr, -1) {
					if end := closing(tg.Expr, loc[1]-1); end < 0 || !strings.HasSuffix(strings.TrimSpace(tg.Expr[:end]), "[$__range]") {
						t.Errorf("%s: panel %q %s counts over something other than the dashboard's range: %q", d.File, p.Title, tg.RefID, tg.Expr)
					}
				}
			}
		}
	}
}

// TestAPIErrorRatio (issue 10, item 17): the API error ratio counts only
// answers that are real errors: not the 404 of a pipeline that never ran,
// not a 429 the exporter waited out; and it is 0, not empty, without errors.
func TestAPIErrorRatio(t *testing.T) {
	ds, _ := loadAll(t)
	found := false
	for _, d := range ds {
		for _, p := range d.AllPanels() {
			if p.Title != "API error ratio" {
				continue
			}
			found = true
			if p.FieldConfig.Defaults.Unit != "percentunit" {
				t.Errorf("%s: API error ratio unit %q", d.File, p.FieldConfig.Defaults.Unit)
			}
			for _, tg := range p.Targets {
				for _, s := range selectors(tg.Expr) {
					// A is the error ratio; B the share of 429s, drawn apart.
					if tg.RefID == "A" && s.metric == "yunxiao_api_requests_total" && strings.Contains(s.matchers, "code") &&
						!strings.Contains(s.matchers, `code!~"2..|404|429"`) {
						t.Errorf("%s: API error ratio selects %s{%s}: want code!~\"2..|404|429\"", d.File, s.metric, s.matchers)
					}
				}
				if !strings.Contains(tg.Expr, "or\n  0 *") {
					t.Errorf("%s: API error ratio is empty, not 0, without errors: %q", d.File, tg.Expr)
				}
			}
		}
	}
	if !found {
		t.Error("no API error ratio panel")
	}
}

// alertThresholds are the alert rules' thresholds the dashboards must use.
type alertThresholds struct {
	stuck, noSuccess, dataStale, discovery, webhookSilent time.Duration
}

// TestThresholdsAgreeWithAlerts (issue 10, item 15): the dashboards' default
// thresholds and colour steps are the alert rules'.
func TestThresholdsAgreeWithAlerts(t *testing.T) {
	a := rulesThresholds()
	if a.noSuccess%(24*time.Hour) != 0 {
		t.Fatalf("the no-success threshold %s is not a whole number of days; the overview's variable counts days", a.noSuccess)
	}
	ds, raw := loadAll(t)
	vars := map[string]string{}
	for _, d := range ds {
		if d.UID != "yunxiao-overview" {
			continue
		}
		for _, v := range d.Templating.List {
			vars[v.Name] = currentValue(v)
		}
	}
	for name, want := range map[string]string{
		"stuck_threshold": strconv.Itoa(int(a.stuck.Seconds())),
		"no_success_days": strconv.Itoa(int(a.noSuccess / (24 * time.Hour))),
	} {
		if vars[name] != want {
			t.Errorf("overview: variable %s defaults to %q, the alert rules' threshold is %s", name, vars[name], want)
		}
	}

	// The value at which each panel turns red.
	red := map[string]float64{} // file + "\x00" + title
	for name, b := range raw {
		var d struct {
			Panels []thresholdPanel `json:"panels"`
		}
		if err := json.Unmarshal(b, &d); err != nil {
			t.Fatal(err)
		}
		var walk func([]thresholdPanel)
		walk = func(ps []thresholdPanel) {
			for _, p := range ps {
				for _, s := range p.FieldConfig.Defaults.Thresholds.Steps {
					if s.Color == "red" && s.Value != nil {
						red[name+"\x00"+p.Title] = *s.Value
					}
				}
				walk(p.Panels)
			}
		}
		walk(d.Panels)
	}
	for _, w := range []struct {
		file, title string
		want        time.Duration
	}{
		{"pipeline-detail.json", "No progress for", a.stuck},
		{"pipeline-detail.json", "Since last successful run", a.noSuccess},
		{"overview.json", "Longest without a successful run (top $topn)", a.noSuccess},
		{"pipeline-detail.json", "Data age", a.dataStale},
		{"exporter-health.json", "Oldest data", a.dataStale},
		{"exporter-health.json", "Data age", a.dataStale},
		{"exporter-health.json", "Since last discovery", a.discovery},
		{"exporter-health.json", "Since last accepted webhook event", a.webhookSilent},
	} {
		got, ok := red[w.file+"\x00"+w.title]
		if !ok {
			t.Errorf("%s: panel %q has no red threshold step", w.file, w.title)
		} else if got != w.want.Seconds() {
			t.Errorf("%s: panel %q turns red at %v s, the alert rules' threshold is %v s", w.file, w.title, got, w.want.Seconds())
		}
	}

	// The stuck and no-success panels use the variables, not a number.
	for _, q := range mustQueries(t) {
		if strings.Contains(q.Expr, "yunxiao_pipeline_run_last_progress_timestamp_seconds") && q.Dashboard == "yunxiao-overview" &&
			!strings.Contains(q.Expr, "> "+vars["stuck_threshold"]) {
			t.Errorf("overview: %s %s does not compare with $stuck_threshold: %q", q.Panel, q.RefID, q.Expr)
		}
	}
}

type thresholdPanel struct {
	Title       string           `json:"title"`
	Panels      []thresholdPanel `json:"panels"`
	FieldConfig struct {
		Defaults struct {
			Thresholds struct {
				Steps []struct {
					Color string   `json:"color"`
					Value *float64 `json:"value"`
				} `json:"steps"`
			} `json:"thresholds"`
		} `json:"defaults"`
	} `json:"fieldConfig"`
}

func mustQueries(t *testing.T) []Query {
	t.Helper()
	qs, err := Queries(nil)
	if err != nil {
		t.Fatal(err)
	}
	return qs
}

// rulesThresholds returns the alert rules' thresholds: deploy/mixin's
// Default(), from which alerts.yml, the PrometheusRule and the Helm chart's
// rules are generated.
func rulesThresholds() alertThresholds {
	c := mixin.Default()
	return alertThresholds{
		stuck:     time.Duration(c.PipelineRunStuck.Threshold),
		noSuccess: time.Duration(c.PipelineNoRecentSuccess.Threshold),
		dataStale: time.Duration(c.PipelineDataStale.Threshold),
		discovery: time.Duration(c.DiscoveryFailing.Threshold),
		// The health dashboard's time since the last accepted event.
		webhookSilent: time.Duration(c.WebhookSilent.Threshold),
	}
}

// TestStuckStatusesAgreeWithAlerts: the dashboards call a run stuck in the
// statuses YunxiaoPipelineRunStuck does (every active status but WAITING).
func TestStuckStatusesAgreeWithAlerts(t *testing.T) {
	rules, err := mixin.Rules(mixin.Default())
	if err != nil {
		t.Fatal(err)
	}
	var file struct {
		Groups []struct {
			Rules []struct {
				Alert string `yaml:"alert"`
				Expr  string `yaml:"expr"`
			} `yaml:"rules"`
		} `yaml:"groups"`
	}
	if err := yaml.Unmarshal(rules, &file); err != nil {
		t.Fatal(err)
	}
	statusRe := regexp.MustCompile(`yunxiao_pipeline_run_status\{[^}]*status=~"([^"]+)"`)
	want := ""
	for _, g := range file.Groups {
		for _, r := range g.Rules {
			if r.Alert == "YunxiaoPipelineRunStuck" {
				if m := statusRe.FindStringSubmatch(r.Expr); m != nil {
					want = m[1]
				}
			}
		}
	}
	if want == "" {
		t.Fatal("YunxiaoPipelineRunStuck selects no yunxiao_pipeline_run_status{status=~...}")
	}
	n := 0
	for _, q := range mustQueries(t) {
		if !strings.Contains(q.Expr, "yunxiao_pipeline_run_last_progress_timestamp_seconds") {
			continue
		}
		for _, m := range statusRe.FindAllStringSubmatch(q.Expr, -1) {
			n++
			if m[1] != want {
				t.Errorf("%s: %s %s calls %q active, YunxiaoPipelineRunStuck %q", q.Dashboard, q.Panel, q.RefID, m[1], want)
			}
		}
	}
	if n == 0 {
		t.Error("no dashboard query tells stuck runs by their status")
	}
}

// TestWebhookPanels (issue 12): the Exporter health dashboard shows the
// webhook receiver's metrics: whether it is on, its events in the range by
// result as counts (increase over $__range, in a stat or bar gauge, not a
// rate), and the time since the last accepted event the way
// YunxiaoWebhookSilent reads it (the newest over every instance of the
// job, so a restart does not blank it), each panel with a description
// naming what it shows, and the last one naming the alert and its
// threshold.
func TestWebhookPanels(t *testing.T) {
	d, raw := dashboardByUID(t, "yunxiao-exporter-health")
	var top struct {
		Panels []rawPanel `json:"panels"`
	}
	if err := json.Unmarshal(raw, &top); err != nil {
		t.Fatal(err)
	}
	descriptions := map[string]string{}
	for _, p := range flattenRaw(top.Panels) {
		descriptions[p.Title] = p.Description
	}
	threshold := mixin.Default().WebhookSilent.Threshold
	found := map[string]bool{}
	for _, p := range d.AllPanels() {
		for _, tg := range p.Targets {
			where := p.Title + " " + tg.RefID
			switch {
			case strings.Contains(tg.Expr, "yunxiao_webhook_enabled"):
				found["enabled"] = true
				if p.Type != "stat" || !strings.Contains(descriptions[p.Title], "webhook.token") {
					t.Errorf("%s: want a stat whose description says webhook.token turns it on", where)
				}
			case strings.Contains(tg.Expr, "yunxiao_webhook_events_total"):
				found["events"] = true
				if !regexp.MustCompile(`^sum by \(result\) \(increase\(yunxiao_webhook_events_total\{[^}]*\}\[\$__range\]\)\)$`).MatchString(tg.Expr) ||
					(p.Type != "stat" && p.Type != "bargauge") || !tg.Instant {
					t.Errorf("%s: want an instant stat or bar gauge of sum by (result) (increase(...[$__range])), got %s %q", where, p.Type, tg.Expr)
				}
				for _, result := range []string{"accepted", "unauthorized", "bad_request", "too_large", "rate_limited", "unwatched"} {
					if !strings.Contains(descriptions[p.Title], result) {
						t.Errorf("%s: the description does not explain result %s", where, result)
					}
				}
			case strings.Contains(tg.Expr, "yunxiao_webhook_last_accepted_timestamp_seconds"):
				found["last"] = true
				if !strings.Contains(tg.Expr, "max by (job) (max_over_time(yunxiao_webhook_last_accepted_timestamp_seconds{") {
					t.Errorf("%s: want the newest event over every instance of the job, as the alert reads it: %q", where, tg.Expr)
				}
				if p.FieldConfig.Defaults.Unit != "s" {
					t.Errorf("%s: unit %q, want s", where, p.FieldConfig.Defaults.Unit)
				}
				if desc := descriptions[p.Title]; !strings.Contains(desc, "YunxiaoWebhookSilent") || !strings.Contains(desc, threshold.String()) {
					t.Errorf("%s: the description does not name YunxiaoWebhookSilent and its threshold %s", where, threshold)
				}
			}
		}
	}
	for _, want := range []string{"enabled", "events", "last"} {
		if !found[want] {
			t.Errorf("exporter health: no webhook panel shows %s", want)
		}
	}
}
