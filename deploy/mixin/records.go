package mixin

import (
	"fmt"
	"slices"
	"strings"
)

// groupDelivery holds the recording rules of delivery performance.
const groupDelivery = "yunxiao_delivery"

// Which list of values a recording rule is rendered once for.
const (
	eachOnce        = ""
	eachRunWindow   = "runWindows" // deploymentFrequencyWindows then changeFailureRateWindows, each once
	eachFrequency   = "deploymentFrequencyWindows"
	eachFailureRate = "changeFailureRateWindows"
	eachQuantile    = "timeToRestoreQuantiles"
)

// recordDef is one recording rule, rendered once per value of its list
// (each): name, comment and expr are templates like ruleDef's, and may
// call w (the window) or q (the quantile) besides the functions of rules.
type recordDef struct {
	each     string
	name     string
	comment  string
	expr     string
	quantile bool // labelled quantile="<q>"
}

// deployInfo is one yunxiao_pipeline_info series per deploy pipeline: the
// info deduplicated across exporters (max by the labels kept), read
// through the gap window like every gauge, and, when two series of one
// pipeline differ in a carried label (a reload changed it; the old series
// lingers for the gap window, or two exporters disagree), only one of them
// (topk), so a group_left join never fails with many-to-many.
const deployInfo = `topk by (<% pid %>) (1,
  max by (<% infoby %>) (last_over_time(yunxiao_pipeline_info{<% sel %>, deploy="true"}[<% gap %>]))
)`

// joinInfo carries the info's pipeline_name and labels onto a per-pipeline
// sum and keeps deploy pipelines only.
const joinInfo = `
* on (<% pid %>) group_left (<% carry %>)
` + deployInfo

var records = []recordDef{
	{
		each: eachRunWindow,
		name: "yunxiao:pipeline:deploy_runs:increase<% w %>",
		comment: `Finished runs of each deploy pipeline over <% w %>, by status (SUCCESS,
FAIL): summed over instances (runs counted before and after a restart or
reshard add up), rounded to whole runs (increase() extrapolates a little),
then joined to the pipeline's info for its name and labels. Absent for
pipelines without run_history.`,
		expr: `
round(
  sum by (<% pid %>, status) (
    increase(yunxiao_pipeline_runs_total{<% sel %>, status=~"SUCCESS|FAIL"}[<% w %>])
  )
)` + joinInfo,
	},
	{
		each:    eachFrequency,
		name:    "yunxiao:pipeline:deployments:increase<% w %>",
		comment: `Deployment frequency: successful runs of each deploy pipeline over <% w %>.`,
		expr: `
sum without (status) (yunxiao:pipeline:deploy_runs:increase<% w %>{status="SUCCESS"})`,
	},
	{
		each:    eachFrequency,
		name:    "yunxiao:team:deployments:increase<% w %>",
		comment: `Deployment frequency per team: successful deploy runs over <% w %>.`,
		expr: `
sum by (<% team %>) (yunxiao:pipeline:deployments:increase<% w %>)`,
	},
	{
		each: eachFailureRate,
		name: "yunxiao:pipeline:change_failure_rate:ratio<% w %>",
		comment: `Change failure rate: FAIL / (SUCCESS + FAIL) of each deploy pipeline's runs
over <% w %> (CANCELED runs count as neither). Absent, not NaN, when none
finished.`,
		expr: `
(
  sum without (status) (yunxiao:pipeline:deploy_runs:increase<% w %>{status="FAIL"})
  or
  0 * sum without (status) (yunxiao:pipeline:deploy_runs:increase<% w %>)
)
/
(sum without (status) (yunxiao:pipeline:deploy_runs:increase<% w %>) > 0)`,
	},
	{
		each: eachFailureRate,
		name: "yunxiao:team:change_failure_rate:ratio<% w %>",
		comment: `Change failure rate per team: the team's failed deploy runs over all its
finished deploy runs (not an average of its pipelines' rates).`,
		expr: `
(
  sum by (<% team %>) (yunxiao:pipeline:deploy_runs:increase<% w %>{status="FAIL"})
  or
  0 * sum by (<% team %>) (yunxiao:pipeline:deploy_runs:increase<% w %>)
)
/
(sum by (<% team %>) (yunxiao:pipeline:deploy_runs:increase<% w %>) > 0)`,
	},
	{
		name: "yunxiao:pipeline:restore_duration_seconds_bucket:increase<% rw %>",
		comment: `Time to restore: recoveries of each deploy pipeline that ended in the last
<% rw %>, by bucket (le), summed over instances and rounded like the runs.
Never select a bucket by an integer-looking le (Prometheus 3 writes 60 as
60.0): histogram_quantile reads them all.`,
		expr: `
round(
  sum by (<% pid %>, le) (
    increase(yunxiao_pipeline_restore_duration_seconds_bucket{<% sel %>}[<% rw %>])
  )
)` + joinInfo,
	},
	{
		name:    "yunxiao:pipeline:restores:increase<% rw %>",
		comment: `Recoveries of each deploy pipeline that ended in the last <% rw %>.`,
		expr: `
sum without (le) (yunxiao:pipeline:restore_duration_seconds_bucket:increase<% rw %>{le="+Inf"})`,
	},
	{
		name: "yunxiao:team:restores:increase<% rw %>",
		expr: `
sum by (<% team %>) (yunxiao:pipeline:restores:increase<% rw %>)`,
	},
	{
		each:     eachQuantile,
		quantile: true,
		name:     "yunxiao:pipeline:restore_duration_seconds:quantile<% rw %>",
		comment: `Time to restore, quantile <% q %> over the recoveries that ended in the last
<% rw %>; absent without one. A time beyond the largest bucket (6h) reads
as 6h.`,
		expr: `
histogram_quantile(<% q %>, yunxiao:pipeline:restore_duration_seconds_bucket:increase<% rw %>)
and on (<% pid %>)
(yunxiao:pipeline:restores:increase<% rw %> > 0)`,
	},
	{
		each:     eachQuantile,
		quantile: true,
		name:     "yunxiao:team:restore_duration_seconds:quantile<% rw %>",
		expr: `
histogram_quantile(<% q %>, sum by (<% teamle %>) (yunxiao:pipeline:restore_duration_seconds_bucket:increase<% rw %>))
and on (<% team %>)
(yunxiao:team:restores:increase<% rw %> > 0)`,
	},
}

// deliveryComment opens the group: what it records and what it cannot.
const deliveryComment = `Delivery performance: three of DORA's four keys, those Flow can give, per
deploy pipeline (yunxiao_pipeline_info{deploy="true"}) and per team (by
<% teamText %>), from run history's exact counters (needs run_history). The
per-pipeline series carry pipeline_name and <% labelsText %> from yunxiao_pipeline_info.
  deployment frequency   yunxiao:{pipeline,team}:deployments:increase<W>
  change failure rate    yunxiao:{pipeline,team}:change_failure_rate:ratio<W>
  time to restore        yunxiao:{pipeline,team}:restore_duration_seconds:quantile<W>{quantile}
Lead time for changes is NOT recorded: Flow's API gives no commit times
(a run's sources name a commit, never when it was made), so the time from
commit to deployment cannot be known. An HA pair that watches the same
pipelines counts every deployment twice (the rates and times are not
affected); shard instead.`

// values returns the values a record is rendered for, as text.
func (r *renderer) values(each string) []string {
	d := r.cfg.Delivery
	durs := func(ds ...[]Duration) []string {
		var out []string
		for _, l := range ds {
			for _, w := range l {
				if s := w.String(); !slices.Contains(out, s) {
					out = append(out, s)
				}
			}
		}
		return out
	}
	switch each {
	case eachOnce:
		return []string{""}
	case eachRunWindow:
		return durs(d.DeploymentFrequencyWindows, d.ChangeFailureRateWindows)
	case eachFrequency:
		return durs(d.DeploymentFrequencyWindows)
	case eachFailureRate:
		return durs(d.ChangeFailureRateWindows)
	case eachQuantile:
		var out []string
		for _, q := range d.TimeToRestoreQuantiles {
			out = append(out, formatFloat(q))
		}
		return out
	}
	panic("mixin: unknown list " + each)
}

// helmList is the Helm expression of a record's list.
func helmList(each string) string {
	switch each {
	case eachRunWindow:
		return `concat (default list $d.deploymentFrequencyWindows) (default list $d.changeFailureRateWindows) | uniq`
	case eachFrequency, eachFailureRate, eachQuantile:
		return "(default list $d." + each + ")"
	}
	panic("mixin: unknown list " + each)
}

// deliveryGroup renders the delivery group, every line prefixed with
// indent, as the items of `groups:` are.
func (r *renderer) deliveryGroup(indent string) (string, error) {
	var b strings.Builder
	line := func(depth int, format string, args ...any) {
		b.WriteString(indent + strings.Repeat("  ", depth) + fmt.Sprintf(format, args...) + "\n")
	}
	comment, err := r.exec(deliveryComment)
	if err != nil {
		return "", fmt.Errorf("delivery comment: %w", err)
	}
	for _, l := range strings.Split(comment, "\n") {
		line(1, "# %s", l)
	}
	line(1, "- name: %s", groupDelivery)
	if r.helm {
		pad := indent + strings.Repeat("  ", 2)
		line(2, "%s", r.token(`{{- if ne (include "yunxiao-exporter.alerts.seconds" $d.interval) "0" }}`+
			"\n"+pad+"interval: {{ $d.interval }}\n"+pad+"{{- end }}"))
	} else if r.cfg.Delivery.Interval != 0 {
		line(2, "interval: %s", r.cfg.Delivery.Interval)
	}
	line(2, "rules:")
	for _, rd := range records {
		vals := r.values(rd.each)
		if r.helm && rd.each != eachOnce {
			// One rule per value of the list, rendered by Helm.
			v := "$w"
			check := `{{- $_ := include "yunxiao-exporter.alerts.seconds" $w }}`
			if rd.each == eachQuantile {
				v, check = "$q", ""
			}
			line(3, "%s", r.token("{{- range "+v+" := "+helmList(rd.each)+" }}"+check))
			vals = []string{""}
		}
		for _, v := range vals {
			r.cur = v
			name, err := r.exec(rd.name)
			if err != nil {
				return "", fmt.Errorf("%s name: %w", rd.name, err)
			}
			line(3, "- record: %s", name)
			if rd.comment != "" {
				c, err := r.exec(rd.comment)
				if err != nil {
					return "", fmt.Errorf("%s comment: %w", rd.name, err)
				}
				for _, l := range strings.Split(c, "\n") {
					line(4, "# %s", l)
				}
			}
			expr, err := r.exec(strings.TrimPrefix(rd.expr, "\n"))
			if err != nil {
				return "", fmt.Errorf("%s expr: %w", rd.name, err)
			}
			line(4, "expr: |")
			for _, l := range strings.Split(expr, "\n") {
				line(5, "%s", l)
			}
			if rd.quantile {
				line(4, "labels:")
				if r.helm {
					line(5, "quantile: %s", r.token("{{ $q | quote }}"))
				} else {
					line(5, "quantile: %s", quote(v))
				}
			}
		}
		if r.helm && rd.each != eachOnce {
			line(3, "%s", r.token("{{- end }}"))
		}
	}
	r.cur = ""
	return b.String(), nil
}

// RecordNames lists the series the recording rules of c write, in the order
// of the rule file (a name recorded for several quantiles once).
func RecordNames(c Config) []string {
	r := &renderer{cfg: c}
	var out []string
	for _, rd := range records {
		for _, v := range r.values(rd.each) {
			r.cur = v
			name, err := r.exec(rd.name)
			if err != nil {
				panic(err)
			}
			if !slices.Contains(out, name) {
				out = append(out, name)
			}
		}
	}
	return out
}
