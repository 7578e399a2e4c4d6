package dashboards

import (
	"encoding/json"
	"fmt"
	"regexp"
	"strings"
	"testing"

	"github.com/yunxiao-exporter/yunxiao_exporter/deploy/mixin"
)

// Issue 11: team, group and branch filters, the latest run's sources and
// phases, and the Delivery performance dashboard.

func dashboardByUID(t *testing.T, uid string) (Dashboard, []byte) {
	t.Helper()
	ds, raw := loadAll(t)
	for _, d := range ds {
		if d.UID == uid {
			return d, raw[d.File]
		}
	}
	t.Fatalf("no dashboard %s", uid)
	return Dashboard{}, nil
}

// rawVariables reads what Variable leaves out: multi.
func rawVariables(t *testing.T, raw []byte) map[string]bool {
	t.Helper()
	var d struct {
		Templating struct {
			List []struct {
				Name  string `json:"name"`
				Multi bool   `json:"multi"`
			} `json:"list"`
		} `json:"templating"`
	}
	if err := json.Unmarshal(raw, &d); err != nil {
		t.Fatal(err)
	}
	multi := map[string]bool{}
	for _, v := range d.Templating.List {
		multi[v.Name] = v.Multi
	}
	return multi
}

// checkListVariable: a multi-value query variable on ${datasource} with
// All matching everything, listing label of metric.
func checkListVariable(t *testing.T, d Dashboard, raw []byte, name, query string) {
	t.Helper()
	multi := rawVariables(t, raw)
	for _, v := range d.Templating.List {
		if v.Name != name {
			continue
		}
		if v.Type != "query" || v.QueryString() != query || !isOurDatasource(v.Datasource) {
			t.Errorf("%s: variable %s is %s %q, want query %q on ${datasource}", d.File, name, v.Type, v.QueryString(), query)
		}
		if !v.IncludeAll || v.AllValue != ".*" || !multi[name] {
			t.Errorf("%s: variable %s: want multi-value with All = .* (pipelines without the label included)", d.File, name)
		}
		return
	}
	t.Errorf("%s: no %s variable", d.File, name)
}

// TestTeamGroupBranchFilters: the overview and the detail dashboard filter
// by the team and group labels of yunxiao_pipeline_info; the overview also
// by the branch of the latest run's sources, every panel through the same
// join, All keeping every pipeline (with or without a team, a group, a
// source).
func TestTeamGroupBranchFilters(t *testing.T) {
	info := `yunxiao_pipeline_info{job=~"$job", instance=~"$instance"}`
	for _, uid := range []string{"yunxiao-overview", "yunxiao-pipeline-detail"} {
		d, raw := dashboardByUID(t, uid)
		checkListVariable(t, d, raw, "team", "label_values("+info+", team)")
		checkListVariable(t, d, raw, "group", "label_values("+info+", group)")
		for _, v := range d.Templating.List {
			if v.Name == "pipeline" && !strings.Contains(v.QueryString(), `and on (pipeline_id) yunxiao_pipeline_info{job=~"$job", instance=~"$instance", team=~"$team", group=~"$group"}`) {
				t.Errorf("%s: the Pipeline list is not narrowed by Team and Group: %q", d.File, v.QueryString())
			}
		}
	}

	ov, raw := dashboardByUID(t, "yunxiao-overview")
	checkListVariable(t, ov, raw, "branch", `label_values(yunxiao_pipeline_run_source_info{job=~"$job", instance=~"$instance"}, branch)`)
	sel := `job=~"$job", instance=~"$instance", pipeline_id=~"$pipeline"`
	filter := []string{
		"and on (pipeline_id)",
		`yunxiao_pipeline_info{` + sel + `, team=~"$team", group=~"$group"}`,
		`yunxiao_pipeline_run_source_info{` + sel + `, branch=~"$branch"}`,
		// All (.*) selects no source here, so absent() keeps every
		// pipeline, those without sources too.
		`absent(yunxiao_pipeline_run_source_info{` + sel + `, branch!~"$branch"})`,
	}
	for _, p := range ov.AllPanels() {
		for _, tg := range p.Targets {
			for _, f := range filter {
				if !strings.Contains(tg.Expr, f) {
					t.Errorf("overview: panel %q %s is not filtered by Team, Group and Branch: lacks %s", p.Title, tg.RefID, f)
				}
			}
		}
	}
	// Grouped by branch, and by team.
	found := map[string]bool{}
	for _, p := range ov.AllPanels() {
		for _, tg := range p.Targets {
			for _, by := range []string{"branch", "team"} {
				if strings.Contains(tg.Expr, "count by ("+by+", status)") {
					found[by] = true
				}
			}
		}
	}
	if !found["branch"] || !found["team"] {
		t.Errorf("overview: latest runs counted by branch %v, by team %v; want both", found["branch"], found["team"])
	}
}

// TestDetailSourcesAndPhases: the detail dashboard shows the branch,
// repository and commit of the latest run, and where its time went, as a
// bar gauge and over time.
func TestDetailSourcesAndPhases(t *testing.T) {
	d, _ := dashboardByUID(t, "yunxiao-pipeline-detail")
	sources, phases := false, map[string]int{}
	for _, p := range d.AllPanels() {
		for _, tg := range p.Targets {
			if p.Type == "table" && strings.Contains(tg.Expr, "yunxiao_pipeline_run_source_info") {
				for _, l := range []string{"repo", "branch", "commit", "source_name"} {
					if !regexp.MustCompile(`by \([^)]*\b` + l + `\b`).MatchString(tg.Expr) {
						t.Errorf("detail: %q does not show %s: %s", p.Title, l, tg.Expr)
					}
				}
				sources = true
			}
			for _, m := range []string{"queued", "waiting", "executing"} {
				if strings.Contains(tg.Expr, "yunxiao_pipeline_run_"+m+"_seconds{") {
					phases[p.Type]++
					if p.FieldConfig.Defaults.Unit != "s" {
						t.Errorf("detail: %q unit %q, want s", p.Title, p.FieldConfig.Defaults.Unit)
					}
				}
			}
		}
	}
	if !sources {
		t.Error("detail: no table of the latest run's sources")
	}
	if phases["bargauge"] != 3 || phases["timeseries"] != 3 {
		t.Errorf("detail: the phase gauges are drawn %v; want queued, waiting and executing in a bar gauge and over time", phases)
	}
}

// TestDeliveryDashboard: the Delivery performance dashboard reads only
// what deploy/mixin's recording rules write for its Default() (its
// windows, quantiles and team label), filters every query by team, gives
// rates and times their units, and says why lead time is not shown.
func TestDeliveryDashboard(t *testing.T) {
	d, raw := dashboardByUID(t, "yunxiao-delivery")
	c := mixin.Default().Delivery
	if len(c.TeamLabels) == 0 {
		t.Fatal("deploy/mixin's Default() aggregates teams by no label")
	}
	checkListVariable(t, d, raw, "team", `label_values(yunxiao_pipeline_info{job=~"$job", instance=~"$instance", deploy="true"}, `+c.TeamLabels[0]+`)`)
	if c.TeamLabels[0] != "team" {
		t.Errorf("deploy/mixin's team label is %q; the dashboard's variable and legends say team", c.TeamLabels[0])
	}

	recorded := map[string]bool{}
	for _, n := range mixin.RecordNames(mixin.Default()) {
		recorded[n] = true
	}
	quantiles := map[string]bool{}
	for _, q := range c.TimeToRestoreQuantiles {
		quantiles[fmt.Sprint(q)] = true
	}
	all := ""
	for _, p := range d.AllPanels() {
		for _, tg := range p.Targets {
			all += tg.Expr + "\n"
			for _, s := range selectors(tg.Expr) {
				if !recorded[s.metric] {
					t.Errorf("delivery: %q %s reads %s, not a series the recording rules write: the rules carry the cost of the long windows", p.Title, tg.RefID, s.metric)
				}
			}
			for _, m := range regexp.MustCompile(`quantile="([^"]*)"`).FindAllStringSubmatch(tg.Expr, -1) {
				if !quantiles[m[1]] {
					t.Errorf("delivery: %q %s selects quantile %s, not one of the rules' %v", p.Title, tg.RefID, m[1], c.TimeToRestoreQuantiles)
				}
			}
			unit := p.FieldConfig.Defaults.Unit
			switch {
			case p.Type == "table":
			case strings.Contains(tg.Expr, "change_failure_rate") || strings.Contains(tg.Expr, `status="FAIL"`):
				if unit != "percentunit" {
					t.Errorf("delivery: %q shows a change failure rate in %q, want percentunit", p.Title, unit)
				}
			case strings.Contains(tg.Expr, "restore_duration_seconds"):
				if unit != "s" {
					t.Errorf("delivery: %q shows a time to restore in %q, want s", p.Title, unit)
				}
			}
		}
	}
	// Every window and quantile of the rules is shown.
	for _, w := range c.DeploymentFrequencyWindows {
		if !strings.Contains(all, "deployments:increase"+w.String()) {
			t.Errorf("delivery: no panel shows deployments over %s", w)
		}
	}
	for _, w := range c.ChangeFailureRateWindows {
		if !strings.Contains(all, "change_failure_rate:ratio"+w.String()) && !strings.Contains(all, "deploy_runs:increase"+w.String()) {
			t.Errorf("delivery: no panel shows the change failure rate over %s", w)
		}
	}
	for q := range quantiles {
		if !strings.Contains(all, `quantile="`+q+`"`) {
			t.Errorf("delivery: no panel shows time to restore quantile %s", q)
		}
	}
	if !strings.Contains(all, "restore_duration_seconds:quantile"+c.TimeToRestoreWindow.String()) {
		t.Errorf("delivery: no panel shows time to restore over %s", c.TimeToRestoreWindow)
	}

	// Lead time: not available, and why, on the board itself.
	var top struct {
		Description string `json:"description"`
		Panels      []struct {
			Type    string `json:"type"`
			Options struct {
				Content string `json:"content"`
			} `json:"options"`
		} `json:"panels"`
	}
	if err := json.Unmarshal(raw, &top); err != nil {
		t.Fatal(err)
	}
	note := false
	for _, p := range top.Panels {
		note = note || (p.Type == "text" && strings.Contains(p.Options.Content, "Lead time for changes is not shown") &&
			strings.Contains(p.Options.Content, "no commit times"))
	}
	if !note {
		t.Error("delivery: no text panel says that lead time for changes is not shown because Flow's API gives no commit times")
	}
	if !strings.Contains(top.Description, "Lead time") {
		t.Error("delivery: the dashboard's description does not mention lead time")
	}
}
