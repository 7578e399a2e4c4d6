package mixin

import (
	"bytes"
	"encoding/json"
	"fmt"
	"sort"
	"strings"
	"text/template"

	"go.yaml.in/yaml/v3"
)

// The rule groups.
const (
	groupPipelines = "yunxiao_pipelines"
	groupExporter  = "yunxiao_exporter"
)

// activeStatuses are the run statuses that count as active for
// YunxiaoPipelineRunStuck: every active status except WAITING (a run that
// waits, for an approval or a runner, is YunxiaoPipelineWaitingTooLong's).
const activeStatuses = "RUNNING|QUEUED|QUEUEING|PENDING|INIT|READY|CANCELLING"

// ruleDef is one alert. comment, brief, expr, summary and description are
// text/template sources with <% %> delimiters (PromQL and Prometheus'
// annotation templates keep their own syntax untouched); see funcs for what
// they may call.
type ruleDef struct {
	group   string
	name    string
	key     string // its Config key, as in values.yaml
	brief   string // one line for the table atop alerts.yml
	comment string
	expr    string
	summary string
	desc    string
}

// alertRef pairs an alert's Config key with its common settings.
type alertRef struct {
	key string
	cfg Alert
}

func (c Config) alerts() []alertRef {
	return []alertRef{
		{"pipelineRunFailed", c.PipelineRunFailed},
		{"pipelineNoRecentSuccess", c.PipelineNoRecentSuccess.Alert},
		{"pipelineRunStuck", c.PipelineRunStuck.Alert},
		{"pipelineWaitingTooLong", c.PipelineWaitingTooLong},
		{"pipelineFetchFailing", c.PipelineFetchFailing},
		{"pipelineDataStale", c.PipelineDataStale.Alert},
		{"pipelineFailureRatioHigh", c.PipelineFailureRatioHigh.Alert},
		{"apiDown", c.APIDown},
		{"apiRateLimited", c.APIRateLimited.Alert},
		{"exporterDown", c.ExporterDown},
		{"exporterAbsent", c.ExporterAbsent},
		{"exporterConfigReloadFailed", c.ExporterConfigReloadFailed},
		{"discoveryFailing", c.DiscoveryFailing.Alert},
		{"webhookSilent", c.WebhookSilent.Alert},
	}
}

func (c Config) alert(key string) Alert {
	for _, a := range c.alerts() {
		if a.key == key {
			return a.cfg
		}
	}
	panic("mixin: no alert " + key)
}

// holdback is appended to the per-pipeline fetch and staleness alerts: they
// stay quiet while any exporter saw the API down, or the token
// rate-limited, within fetchHoldback.
const holdback = `
unless on (<% gby %>)
(
  (min by (<% gby %>) (min_over_time(yunxiao_up{<% sel %>}[<% hold %>])) == 0)
  or
  (
    sum by (<% gby %>) (increase(yunxiao_api_requests_total{<% sel %>, code="429"}[<% hold %>]))
    /
    sum by (<% gby %>) (increase(yunxiao_api_requests_total{<% sel %>}[<% hold %>]))
    > <% num "apiRateLimited.ratio" %>
  )
)`

// pipelineJoin wraps every per-pipeline alert's expression (x): the
// alert carries pipelineLabels of its pipeline's yunxiao_pipeline_info,
// deduplicated as the delivery rules do it (max by the labels kept, so HA
// pairs and rollouts give one series; read through the gap window like
// every gauge; topk, so two series of one pipeline that differ in a
// carried label, while a reload's old series lingers or two exporters
// disagree, never make the join fail with many-to-many). The value is
// the expression's (the info is 1). A pipeline without an info series
// (its name not known yet) alerts all the same, without the labels.
const pipelineJoin = `(
<% x %>
)
* on (<% pid %>) group_left (<% pcarry %>)
topk by (<% pid %>) (1,
  max by (<% pinfoby %>) (last_over_time(yunxiao_pipeline_info{<% sel %>}[<% gap %>]))
)
or on (<% pid %>)
(
<% x %>
)`

// joinInfo returns a per-pipeline alert's rendered expression wrapped in
// pipelineJoin.
func (r *renderer) joinInfo(expr string) (string, error) {
	lines := strings.Split(expr, "\n")
	for i, l := range lines {
		lines[i] = "  " + l
	}
	r.cur = strings.Join(lines, "\n")
	defer func() { r.cur = "" }()
	return r.exec(pipelineJoin)
}

var rules = []ruleDef{
	{
		group: groupPipelines,
		name:  "YunxiaoPipelineRunFailed",
		key:   "pipelineRunFailed",
		brief: `last finished run FAIL (red until green)`,
		comment: `Red until green: the state of the most recently *finished* run, so a
rerun in progress keeps it firing; a run that finishes SUCCESS (or
CANCELED) resolves it, and so does the pipeline no longer being watched.
One alert per pipeline whatever the number of exporters that see it.`,
		expr: `
max by (<% pby %>) (
  last_over_time(yunxiao_pipeline_last_finished_run_status{<% sel %>, status="FAIL"}[<% gap %>])
) == 1`,
		summary: `Yunxiao pipeline {{ $labels.pipeline_name }} is failing`,
		desc:    `The last finished run of Yunxiao Flow pipeline {{ $labels.pipeline_name }} (id {{ $labels.pipeline_id }}) ended in FAIL. The alert stays while a rerun is in progress and resolves when a run finishes without failing.`,
	},
	{
		group: groupPipelines,
		name:  "YunxiaoPipelineNoRecentSuccess",
		key:   "pipelineNoRecentSuccess",
		brief: `ran within <% dur "pipelineNoRecentSuccess.threshold" %>, no success for > <% dur "pipelineNoRecentSuccess.threshold" %>`,
		comment: `Only pipelines that run: the latest run started within the threshold.
The last success is yunxiao_pipeline_last_successful_run_end_timestamp_seconds,
or, for a pipeline with run history (yunxiao_pipeline_runs_total) that knows
of no success in the 7d it looked back at start, never.`,
		expr: `
(
  (
    time() - max by (<% pby %>) (last_over_time(yunxiao_pipeline_last_successful_run_end_timestamp_seconds{<% sel %>}[<% gap %>]))
    > <% secs "pipelineNoRecentSuccess.threshold" %>
  )
  or
  (
    max by (<% pby %>) (last_over_time(yunxiao_pipeline_runs_total{<% sel %>}[<% gap %>]))
    unless on (<% pby %>)
    max by (<% pby %>) (last_over_time(yunxiao_pipeline_last_successful_run_end_timestamp_seconds{<% sel %>}[<% gap %>]))
  )
)
and on (<% pby %>)
(
  time() - max by (<% pby %>) (last_over_time(yunxiao_pipeline_run_start_timestamp_seconds{<% sel %>}[<% gap %>]))
  < <% secs "pipelineNoRecentSuccess.threshold" %>
)`,
		summary: `Yunxiao pipeline {{ $labels.pipeline_name }} has not passed for <% dur "pipelineNoRecentSuccess.threshold" %>`,
		desc:    `Yunxiao Flow pipeline {{ $labels.pipeline_name }} (id {{ $labels.pipeline_id }}) has run in the last <% dur "pipelineNoRecentSuccess.threshold" %>, but none of its runs has succeeded for more than <% dur "pipelineNoRecentSuccess.threshold" %>. With run_history the last success is exact; without it, it is best effort, known only from the runs this exporter process has seen since it started.`,
	},
	{
		group: groupPipelines,
		name:  "YunxiaoPipelineRunStuck",
		key:   "pipelineRunStuck",
		brief: `active, no job WAITING, no progress for > <% dur "pipelineRunStuck.threshold" %>`,
		comment: `No progress while running: no stage or job of the latest run has started
or finished for the threshold (the value), while the run is in an active
status other than WAITING, no job of it waits (for an approval), and its
data is fresh (yunxiao_pipeline_up 1: stale data never makes a run stuck).
Approving ends the waiting job, which counts as progress.`,
		expr: `
(
  time() - max by (<% pby %>) (last_over_time(yunxiao_pipeline_run_last_progress_timestamp_seconds{<% sel %>}[<% gap %>]))
  > <% secs "pipelineRunStuck.threshold" %>
)
and on (<% pby %>)
(max by (<% pby %>) (last_over_time(yunxiao_pipeline_run_status{<% sel %>, status=~"` + activeStatuses + `"}[<% gap %>])) == 1)
and on (<% pby %>)
(max by (<% pby %>) (last_over_time(yunxiao_pipeline_up{<% sel %>}[<% gap %>])) == 1)
unless on (<% pby %>)
(max by (<% pby %>) (last_over_time(yunxiao_pipeline_job_status{<% sel %>, status="WAITING"}[<% gap %>])) == 1)`,
		summary: `Yunxiao pipeline {{ $labels.pipeline_name }} has made no progress for <% dur "pipelineRunStuck.threshold" %>`,
		desc:    `The latest run of Yunxiao Flow pipeline {{ $labels.pipeline_name }} (id {{ $labels.pipeline_id }}) is active, but none of its stages or jobs has started or finished for {{ $value | humanizeDuration }}, more than <% dur "pipelineRunStuck.threshold" %>. Time spent waiting for an approval does not count.`,
	},
	{
		group: groupPipelines,
		name:  "YunxiaoPipelineWaitingTooLong",
		key:   "pipelineWaitingTooLong",
		brief: `WAITING (approval or a runner)`,
		comment: `The time spent WAITING is measured by ` + "`for:`" + ` (the run's own duration
would count the time it ran before it began to wait).`,
		expr: `
max by (<% pby %>) (
  last_over_time(yunxiao_pipeline_run_status{<% sel %>, status="WAITING"}[<% gap %>])
) == 1`,
		summary: `Yunxiao pipeline {{ $labels.pipeline_name }} has been waiting for more than <% dur "pipelineWaitingTooLong.for" %>`,
		desc:    `The latest run of Yunxiao Flow pipeline {{ $labels.pipeline_name }} (id {{ $labels.pipeline_id }}) has been WAITING for more than <% dur "pipelineWaitingTooLong.for" %>, usually for a manual approval.`,
	},
	{
		group: groupPipelines,
		name:  "YunxiaoPipelineFetchFailing",
		key:   "pipelineFetchFailing",
		brief: `no exporter fetches the pipeline (held back on API trouble)`,
		comment: `Fires when no exporter has the pipeline's data (an HA partner that has it
keeps it quiet). Held back while any exporter saw the API down or the token
rate-limited in the last <% hold %>: YunxiaoApiDown or YunxiaoApiRateLimited
says it once instead.`,
		expr: `
(
  max by (<% pby %>) (last_over_time(yunxiao_pipeline_up{<% sel %>}[<% gap %>])) == 0
)` + holdback,
		summary: `yunxiao_exporter cannot fetch pipeline {{ $labels.pipeline_name }}`,
		desc:    `No yunxiao_exporter has fetched Yunxiao Flow pipeline {{ $labels.pipeline_name }} (id {{ $labels.pipeline_id }}) successfully for more than <% dur "pipelineFetchFailing.for" %>, while the API as a whole answers and the token is not rate-limited. Its last good data is still exported.`,
	},
	{
		group: groupPipelines,
		name:  "YunxiaoPipelineDataStale",
		key:   "pipelineDataStale",
		brief: `newest fetch older than <% dur "pipelineDataStale.threshold" %> (held back as FetchFailing)`,
		comment: `The value is the age of the newest data any exporter has. Keep the
threshold above the exporter's cache_ttl plus the scrape interval. Held back
like YunxiaoPipelineFetchFailing, so an API recovery does not fire it for
every pipeline not yet re-fetched.`,
		expr: `
(
  time() - max by (<% pby %>) (last_over_time(yunxiao_pipeline_last_fetch_success_timestamp_seconds{<% sel %>}[<% gap %>]))
  > <% secs "pipelineDataStale.threshold" %>
)` + holdback,
		summary: `Data for Yunxiao pipeline {{ $labels.pipeline_name }} is stale`,
		desc:    `The newest data the exporters have for Yunxiao Flow pipeline {{ $labels.pipeline_name }} (id {{ $labels.pipeline_id }}) was fetched {{ $value | humanizeDuration }} ago, more than <% dur "pipelineDataStale.threshold" %>: its status, durations and run id may be out of date.`,
	},
	{
		group: groupPipelines,
		name:  "YunxiaoPipelineFailureRatioHigh",
		key:   "pipelineFailureRatioHigh",
		brief: `over <% dur "pipelineFailureRatioHigh.window" %>: >= <% num "pipelineFailureRatioHigh.minRuns" %> finished runs, > <% num "pipelineFailureRatioHigh.ratio" %> FAIL`,
		comment: `Needs run_history (yunxiao_pipeline_runs_total, born at 0). Summed over
instances, so runs counted before and after a restart, rollout or reshard
add up; an HA pair scraped twice doubles the counts (and so reaches minRuns
sooner) but not the ratio. CANCELED counts as finished, not failed.`,
		expr: `
(
  sum by (<% pby %>) (increase(yunxiao_pipeline_runs_total{<% sel %>, status="FAIL"}[<% dur "pipelineFailureRatioHigh.window" %>]))
  /
  sum by (<% pby %>) (increase(yunxiao_pipeline_runs_total{<% sel %>}[<% dur "pipelineFailureRatioHigh.window" %>]))
  > <% num "pipelineFailureRatioHigh.ratio" %>
)
and on (<% pby %>)
(
  sum by (<% pby %>) (increase(yunxiao_pipeline_runs_total{<% sel %>}[<% dur "pipelineFailureRatioHigh.window" %>]))
  >= <% num "pipelineFailureRatioHigh.minRuns" %>
)`,
		summary: `Yunxiao pipeline {{ $labels.pipeline_name }} fails often`,
		desc:    `{{ $value | humanizePercentage }} of the runs of Yunxiao Flow pipeline {{ $labels.pipeline_name }} (id {{ $labels.pipeline_id }}) that finished in the last <% dur "pipelineFailureRatioHigh.window" %> ended in FAIL: more than <% num "pipelineFailureRatioHigh.ratio" %> of at least <% num "pipelineFailureRatioHigh.minRuns" %> runs.`,
	},
	{
		group: groupExporter,
		name:  "YunxiaoApiDown",
		key:   "apiDown",
		brief: `yunxiao_up 0: token refused or API unreachable`,
		comment: `yunxiao_up is the exporter's probe of the API as a whole (absent until
the first probe): one pipeline's 5xx, 404, 429 or timeout never sets it to 0.
One alert per exporter; Alertmanager groups them into one notification.`,
		expr: `
max by (<% xby %>) (last_over_time(yunxiao_up{<% sel %>}[<% gap %>])) == 0`,
		summary: `yunxiao_exporter cannot use the Yunxiao Flow API`,
		desc:    `yunxiao_exporter {{ $labels.instance }} (job {{ $labels.job }}) has found the Yunxiao Flow API unusable for <% dur "apiDown.for" %>: the token is refused, or the API cannot be reached or answers 5xx. No pipeline data is being refreshed; per-pipeline fetch and staleness alerts are held back until <% hold %> after it recovers.`,
	},
	{
		group: groupExporter,
		name:  "YunxiaoApiRateLimited",
		key:   "apiRateLimited",
		brief: `> <% num "apiRateLimited.ratio" %> of API requests over <% dur "apiRateLimited.window" %> answered 429`,
		comment: `Token-wide rate limiting, said once per job instead of one
YunxiaoPipelineFetchFailing per pipeline (those are held back meanwhile).`,
		expr: `
(
  sum by (<% jby %>) (rate(yunxiao_api_requests_total{<% sel %>, code="429"}[<% dur "apiRateLimited.window" %>]))
  /
  sum by (<% jby %>) (rate(yunxiao_api_requests_total{<% sel %>}[<% dur "apiRateLimited.window" %>]))
)
> <% num "apiRateLimited.ratio" %>`,
		summary: `The Yunxiao Flow API is rate-limiting yunxiao_exporter`,
		desc:    `{{ $value | humanizePercentage }} of the requests of job {{ $labels.job }} to the Yunxiao Flow API over the last <% dur "apiRateLimited.window" %> were answered 429 Too Many Requests, more than <% num "apiRateLimited.ratio" %>. Pipeline data is refreshed late; per-pipeline fetch and staleness alerts are held back until <% hold %> after it ends.`,
	},
	{
		group:   groupExporter,
		name:    "YunxiaoExporterDown",
		key:     "exporterDown",
		brief:   `up 0`,
		comment: `One missed scrape is one sample of up 0: ` + "`for:`" + ` keeps it from firing.`,
		expr: `
max by (<% xby %>) (up{<% sel %>}) == 0`,
		summary: `yunxiao_exporter is down`,
		desc:    `Prometheus has failed to scrape yunxiao_exporter {{ $labels.instance }} (job {{ $labels.job }}) for <% dur "exporterDown.for" %>: the pipelines it watches are not watched, and their alerts cannot fire.`,
	},
	{
		group: groupExporter,
		name:  "YunxiaoExporterAbsent",
		key:   "exporterAbsent",
		brief: `no up series matches the selector`,
		comment: `The selector must match the exporter's scrape job and nothing else (a
blackbox probe of the API named after it would keep this quiet forever).`,
		expr: `
absent(up{<% sel %>})`,
		summary: `yunxiao_exporter has disappeared from Prometheus`,
		desc:    `Prometheus has had no scrape target for yunxiao_exporter (no up series matching the selector of these alerts) for <% dur "exporterAbsent.for" %>: no pipeline is being watched.`,
	},
	{
		group: groupExporter,
		name:  "YunxiaoExporterConfigReloadFailed",
		key:   "exporterConfigReloadFailed",
		brief: `last config reload failed`,
		expr: `
max by (<% xby %>) (last_over_time(yunxiao_exporter_config_last_reload_successful{<% sel %>}[<% gap %>])) == 0`,
		summary: `yunxiao_exporter failed to reload its configuration`,
		desc:    `yunxiao_exporter {{ $labels.instance }} (job {{ $labels.job }}) could not load its latest configuration file and still runs with the previous one.`,
	},
	{
		group: groupExporter,
		name:  "YunxiaoDiscoveryFailing",
		key:   "discoveryFailing",
		brief: `no successful discovery for > <% dur "discoveryFailing.threshold" %>`,
		comment: `Fires when the newest success seen in the last threshold (a restarted
exporter's predecessor's included) is older than the threshold, or when none
was seen although discovery was enabled a threshold ago; so not while a
just-started exporter has not discovered yet, nor once discovery is off.
Keep the threshold above discovery.refresh_interval (10m by default).`,
		expr: `
(
  time() - max by (<% xby %>) (max_over_time(yunxiao_discovery_last_success_timestamp_seconds{<% sel %>}[<% dur "discoveryFailing.threshold" %>]))
  > <% secs "discoveryFailing.threshold" %>
  and on (<% xby %>)
  max by (<% xby %>) (last_over_time(yunxiao_discovery_errors_total{<% sel %>}[<% gap %>]))
)
or
(
  max by (<% xby %>) (last_over_time(yunxiao_discovery_errors_total{<% sel %>}[<% gap %>]))
  and on (<% xby %>)
  max by (<% xby %>) (last_over_time(yunxiao_discovery_errors_total{<% sel %>}[<% gap %>] offset <% dur "discoveryFailing.threshold" %>))
  unless on (<% xby %>)
  max by (<% xby %>) (max_over_time(yunxiao_discovery_last_success_timestamp_seconds{<% sel %>}[<% dur "discoveryFailing.threshold" %>]))
)`,
		summary: `yunxiao_exporter cannot discover pipelines`,
		desc:    `Pipeline discovery (ListPipelines) on yunxiao_exporter {{ $labels.instance }} (job {{ $labels.job }}) has not succeeded for more than <% dur "discoveryFailing.threshold" %>. The exporter keeps watching its last good list (only the configured pipelines if none succeeded since it started): new pipelines are not picked up and deleted ones not dropped.`,
	},
	{
		group: groupExporter,
		name:  "YunxiaoWebhookSilent",
		key:   "webhookSilent",
		brief: `webhook on, no event accepted for > <% dur "webhookSilent.threshold" %> while runs started`,
		comment: `The webhook is on (yunxiao_webhook_enabled 1) but no exporter of the job
has accepted an event for the threshold, while some pipeline of the job
started a run in it (its yunxiao_pipeline_run_id changed, across
instances): Flow's plugin, the token or the route to /webhook/flow is
broken. Per job. The newest accepted event is taken over the threshold
across instances, so a restarted exporter (no last-accepted time until its
first event) keeps its predecessor's and does not fire; with none in the
threshold it fires only if the webhook was already on a threshold ago.`,
		expr: `
(
  (
    time() - max by (<% jby %>) (max_over_time(yunxiao_webhook_last_accepted_timestamp_seconds{<% sel %>}[<% dur "webhookSilent.threshold" %>]))
    > <% secs "webhookSilent.threshold" %>
  )
  or
  (
    max by (<% jby %>) (last_over_time(yunxiao_webhook_enabled{<% sel %>}[<% gap %>] offset <% dur "webhookSilent.threshold" %>)) == 1
    unless on (<% jby %>)
    max by (<% jby %>) (max_over_time(yunxiao_webhook_last_accepted_timestamp_seconds{<% sel %>}[<% dur "webhookSilent.threshold" %>]))
  )
)
and on (<% jby %>)
(max by (<% jby %>) (last_over_time(yunxiao_webhook_enabled{<% sel %>}[<% gap %>])) == 1)
and on (<% jby %>)
(
  max by (<% jby %>, pipeline_id) (max_over_time(yunxiao_pipeline_run_id{<% sel %>}[<% dur "webhookSilent.threshold" %>]))
  !=
  min by (<% jby %>, pipeline_id) (min_over_time(yunxiao_pipeline_run_id{<% sel %>}[<% dur "webhookSilent.threshold" %>]))
)`,
		summary: `Flow's webhook has been silent for <% dur "webhookSilent.threshold" %> while pipelines ran`,
		desc:    `The Flow webhook of job {{ $labels.job }} is enabled, but no exporter of the job has accepted an event for more than <% dur "webhookSilent.threshold" %>, while pipelines it watches started new runs: Flow's webhook plugin is not reaching /webhook/flow (plugin removed or pointed elsewhere, token changed, ingress or route broken). Changes show only at the next cache_ttl poll.`,
	},
}

// AlertNames lists the alerts in the order of the rule file.
func AlertNames() []string {
	out := make([]string, len(rules))
	for i, r := range rules {
		out[i] = r.name
	}
	return out
}

// renderer renders the rule templates either with a Config's values (Rules)
// or, for Helm, with references to the chart's values (HelmTemplate): then
// each Helm expression is put in as a token, the text is escaped for Helm,
// and the tokens are replaced last.
type renderer struct {
	cfg    Config
	helm   bool
	vals   map[string]any
	tokens []string
	cur    string // the window or quantile a recording rule is rendered for
}

func newRenderer(c Config, helm bool) (*renderer, error) {
	r := &renderer{cfg: c, helm: helm}
	if !helm {
		if err := c.Validate(); err != nil {
			return nil, err
		}
		b, err := yaml.Marshal(c)
		if err != nil {
			return nil, err
		}
		if err := yaml.Unmarshal(b, &r.vals); err != nil {
			return nil, err
		}
	}
	return r, nil
}

const tokenFormat = "@@HELM%d@@"

func (r *renderer) token(helmExpr string) string {
	r.tokens = append(r.tokens, helmExpr)
	return fmt.Sprintf(tokenFormat, len(r.tokens)-1)
}

// value is the Config value at a dotted values.yaml path, formatted.
func (r *renderer) value(path string) string {
	var v any = r.vals
	for _, k := range strings.Split(path, ".") {
		m, ok := v.(map[string]any)
		if !ok {
			panic("mixin: no config value " + path)
		}
		if v, ok = m[k]; !ok {
			panic("mixin: no config value " + path)
		}
	}
	switch v := v.(type) {
	case float64:
		return formatFloat(v)
	default:
		return fmt.Sprint(v)
	}
}

func (r *renderer) by(labels ...string) string {
	return strings.Join(append(append([]string{}, r.cfg.GroupLabels...), labels...), ", ")
}

func (r *renderer) funcs() template.FuncMap {
	if r.helm {
		ref := func(path string) string { return r.token("{{ $a." + path + " }}") }
		return template.FuncMap{
			"sel":  func() string { return r.token("{{ $sel }}") },
			"pby":  func() string { return r.token("{{ $pipelineBy }}") },
			"xby":  func() string { return r.token("{{ $exporterBy }}") },
			"jby":  func() string { return r.token("{{ $jobBy }}") },
			"gby":  func() string { return r.token("{{ $groupBy }}") },
			"gap":  func() string { return ref("gapWindow") },
			"hold": func() string { return ref("fetchHoldback") },
			"dur":  ref,
			"num":  ref,
			"secs": func(path string) string {
				return r.token(`{{ include "yunxiao-exporter.alerts.seconds" $a.` + path + ` }}`)
			},
			"w":          func() string { return r.token("{{ $w }}") },
			"q":          func() string { return r.token("{{ $q }}") },
			"rw":         func() string { return r.token("{{ $d.timeToRestoreWindow }}") },
			"pid":        func() string { return r.token("{{ $pipelineIDBy }}") },
			"infoby":     func() string { return r.token("{{ $deliveryInfoBy }}") },
			"carry":      func() string { return r.token("{{ $deliveryCarry }}") },
			"team":       func() string { return r.token("{{ $deliveryTeamBy }}") },
			"teamle":     func() string { return r.token("{{ $deliveryTeamLeBy }}") },
			"teamText":   func() string { return r.token(`{{ join ", " (default list $d.teamLabels) }}`) },
			"labelsText": func() string { return r.token(`{{ join ", " $pipelineLabels }}`) },
			"pcarry":     func() string { return r.token(`{{ join ", " $pipelineLabels }}`) },
			"pinfoby":    func() string { return r.token("{{ $pipelineInfoBy }}") },
			"x":          func() string { return r.cur },
		}
	}
	return template.FuncMap{
		"sel":  func() string { return r.cfg.Selector },
		"pby":  func() string { return r.by("pipeline_id", "pipeline_name") },
		"xby":  func() string { return r.by("job", "instance") },
		"jby":  func() string { return r.by("job") },
		"gby":  func() string { return r.by() },
		"gap":  func() string { return r.cfg.GapWindow.String() },
		"hold": func() string { return r.cfg.FetchHoldback.String() },
		"dur":  r.value,
		"num":  r.value,
		"secs": func(path string) string {
			d, err := ParseDuration(r.value(path))
			if err != nil {
				panic(err)
			}
			return d.Seconds()
		},
		"w":   func() string { return r.cur },
		"q":   func() string { return r.cur },
		"rw":  func() string { return r.cfg.Delivery.TimeToRestoreWindow.String() },
		"pid": func() string { return r.by("pipeline_id") },
		"infoby": func() string {
			return r.by(append([]string{"pipeline_id", "pipeline_name"}, r.cfg.PipelineLabels...)...)
		},
		"carry": func() string {
			return strings.Join(append([]string{"pipeline_name"}, r.cfg.PipelineLabels...), ", ")
		},
		"team":       func() string { return r.by(r.cfg.Delivery.TeamLabels...) },
		"teamle":     func() string { return r.by(append(append([]string{}, r.cfg.Delivery.TeamLabels...), "le")...) },
		"teamText":   func() string { return strings.Join(r.cfg.Delivery.TeamLabels, ", ") },
		"labelsText": func() string { return strings.Join(r.cfg.PipelineLabels, ", ") },
		"pcarry":     func() string { return strings.Join(r.cfg.PipelineLabels, ", ") },
		"pinfoby":    func() string { return r.by(append([]string{"pipeline_id"}, r.cfg.PipelineLabels...)...) },
		"x":          func() string { return r.cur },
	}
}

func (r *renderer) exec(src string) (string, error) {
	t, err := template.New("").Delims("<%", "%>").Funcs(r.funcs()).Option("missingkey=error").Parse(src)
	if err != nil {
		return "", err
	}
	var b strings.Builder
	if err := t.Execute(&b, nil); err != nil {
		return "", err
	}
	return b.String(), nil
}

// quote writes s as a YAML double-quoted scalar (JSON's quoting is valid
// YAML), leaving <, > and & alone.
func quote(s string) string {
	var b bytes.Buffer
	enc := json.NewEncoder(&b)
	enc.SetEscapeHTML(false)
	if err := enc.Encode(s); err != nil {
		panic(err)
	}
	return strings.TrimSuffix(b.String(), "\n")
}

// groups renders the `groups:` list, every line prefixed with indent.
func (r *renderer) groups(indent string) (string, error) {
	var b strings.Builder
	line := func(depth int, format string, args ...any) {
		b.WriteString(indent + strings.Repeat("  ", depth) + fmt.Sprintf(format, args...) + "\n")
	}
	line(0, "groups:")
	group := ""
	for _, rd := range rules {
		if rd.group != group {
			group = rd.group
			line(1, "- name: %s", group)
			line(2, "rules:")
		}
		line(3, "- alert: %s", rd.name)
		if rd.comment != "" {
			comment, err := r.exec(rd.comment)
			if err != nil {
				return "", fmt.Errorf("%s comment: %w", rd.name, err)
			}
			for _, l := range strings.Split(comment, "\n") {
				line(4, "# %s", l)
			}
		}
		expr, err := r.exec(strings.TrimPrefix(rd.expr, "\n"))
		if err != nil {
			return "", fmt.Errorf("%s expr: %w", rd.name, err)
		}
		line(4, "expr: |")
		exprLines := func(e string) {
			for _, l := range strings.Split(e, "\n") {
				line(5, "%s", l)
			}
		}
		switch {
		case rd.group != groupPipelines:
			exprLines(expr)
		case r.helm:
			// The join only when the chart's pipelineLabels name some.
			joined, err := r.joinInfo(expr)
			if err != nil {
				return "", fmt.Errorf("%s expr: %w", rd.name, err)
			}
			line(5, "%s", r.token("{{- if $pipelineLabels }}"))
			exprLines(joined)
			line(5, "%s", r.token("{{- else }}"))
			exprLines(expr)
			line(5, "%s", r.token("{{- end }}"))
		case len(r.cfg.PipelineLabels) > 0:
			joined, err := r.joinInfo(expr)
			if err != nil {
				return "", fmt.Errorf("%s expr: %w", rd.name, err)
			}
			exprLines(joined)
		default:
			exprLines(expr)
		}
		a := r.cfg.alert(rd.key)
		for _, f := range []struct {
			yaml, key string
			d         Duration
		}{{"for", "for", a.For}, {"keep_firing_for", "keepFiringFor", a.KeepFiringFor}} {
			switch {
			case r.helm:
				path := rd.key + "." + f.key
				line(4, "%s", r.token(fmt.Sprintf(`{{- if ne (include "yunxiao-exporter.alerts.seconds" $a.%s) "0" }}`, path)+
					fmt.Sprintf("\n%s%s: {{ $a.%s }}", indent+strings.Repeat("  ", 4), f.yaml, path)+
					"\n"+indent+strings.Repeat("  ", 4)+"{{- end }}"))
			case f.d != 0:
				line(4, "%s: %s", f.yaml, f.d)
			}
		}
		line(4, "labels:")
		if r.helm {
			line(5, "severity: %s", r.token("{{ $a."+rd.key+".severity }}"))
			pad := indent + strings.Repeat("  ", 5)
			line(5, "%s", r.token("{{- range $k, $v := $a.extraLabels }}\n"+pad+"{{ $k }}: {{ $v | quote }}\n"+pad+"{{- end }}"))
		} else {
			line(5, "severity: %s", a.Severity)
			keys := make([]string, 0, len(r.cfg.ExtraLabels))
			for k := range r.cfg.ExtraLabels {
				keys = append(keys, k)
			}
			sort.Strings(keys)
			for _, k := range keys {
				line(5, "%s: %s", k, quote(r.cfg.ExtraLabels[k]))
			}
		}
		line(4, "annotations:")
		for _, an := range []struct{ key, src string }{{"summary", rd.summary}, {"description", rd.desc}} {
			text, err := r.exec(an.src)
			if err != nil {
				return "", fmt.Errorf("%s %s: %w", rd.name, an.key, err)
			}
			line(5, "%s: %s", an.key, quote(text))
		}
		anchor := strings.ToLower(rd.name)
		if r.helm {
			line(5, "runbook_url: %s", quote(r.token("{{ $a.runbookURL }}")+anchor))
		} else {
			line(5, "runbook_url: %s", quote(r.cfg.RunbookURL+anchor))
		}
	}
	delivery, err := r.deliveryGroup(indent)
	if err != nil {
		return "", err
	}
	b.WriteString(delivery)
	return b.String(), nil
}

// header is the comment atop alerts.yml: what it is, how to change it, and
// a table of the alerts with their thresholds.
func (r *renderer) header() (string, error) {
	var b strings.Builder
	b.WriteString(`# Prometheus alerting and recording rules for yunxiao_exporter.
#
# Code generated by deploy/mixin/gen from deploy/mixin's Default(); DO NOT
# EDIT. Change deploy/mixin (its Config holds the selector, every threshold,
# for, severity and extra label) and run ` + "`make generate`" + `, which also writes the
# kustomize PrometheusRule and the Helm chart's rules; Helm users override
# the chart's prometheusRule.alerts values instead.
#
# Load with ` + "`rule_files: [alerts.yml]`" + ` (see prometheus.yml beside this file).
# Unit tests: ` + "`promtool test rules alerts_test.yml`" + `; what each alert means, under
# outages, restarts, HA pairs and approvals, and how to act: docs/runbook.md.
# Needs Prometheus 2.26 or later (last_over_time); 2.42 with keepFiringFor.
#
# The last group, yunxiao_delivery, records delivery performance (deployment
# frequency, change failure rate, time to restore) of deploy pipelines, per
# pipeline and per team, for the Delivery performance dashboard; lead time
# for changes is not recorded (see the group). Unit tests:
# ` + "`promtool test rules recording_test.yml`" + `.
#
`)
	fmt.Fprintf(&b, "# Selector: %s. Extra labels on every alert: %s.\n", r.cfg.Selector, r.extraLabelsText())
	fmt.Fprintf(&b, "# Per-pipeline alerts are keyed by (%s), exporter alerts\n", r.by("pipeline_id", "pipeline_name"))
	fmt.Fprintf(&b, "# by (%s): a restart, an HA pair or a reshard never fires a second\n", r.by("job", "instance"))
	if len(r.cfg.PipelineLabels) > 0 {
		fmt.Fprintf(&b, "# copy. Per-pipeline alerts carry %s of yunxiao_pipeline_info, for\n", strings.Join(r.cfg.PipelineLabels, ", "))
		fmt.Fprintf(&b, "# routing by team (without them when a pipeline has no info series).\n")
		fmt.Fprintf(&b, "# Gauges are read through last_over_time(...[%s]), so one missed scrape\n", r.cfg.GapWindow)
	} else {
		fmt.Fprintf(&b, "# copy. Gauges are read through last_over_time(...[%s]), so one missed scrape\n", r.cfg.GapWindow)
	}
	fmt.Fprintf(&b, "# resolves nothing. Per-pipeline fetch and staleness alerts are held back\n")
	fmt.Fprintf(&b, "# while the API is down or the token rate-limited, and %s after.\n#\n", r.cfg.FetchHoldback)
	width := 0
	for _, rd := range rules {
		width = max(width, len(rd.name))
	}
	for _, rd := range rules {
		brief, err := r.exec(rd.brief)
		if err != nil {
			return "", fmt.Errorf("%s brief: %w", rd.name, err)
		}
		a := r.cfg.alert(rd.key)
		when := "at once"
		if a.For != 0 {
			when = "for: " + a.For.String()
		}
		fmt.Fprintf(&b, "#   %-*s  %-8s %-12s %s\n", width, rd.name, a.Severity, when, brief)
	}
	return b.String(), nil
}

func (r *renderer) extraLabelsText() string {
	if len(r.cfg.ExtraLabels) == 0 {
		return "none"
	}
	keys := make([]string, 0, len(r.cfg.ExtraLabels))
	for k := range r.cfg.ExtraLabels {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	var parts []string
	for _, k := range keys {
		parts = append(parts, k+"="+quote(r.cfg.ExtraLabels[k]))
	}
	return strings.Join(parts, ", ")
}

// Rules returns the Prometheus rule file for c: deploy/prometheus/alerts.yml
// for Default().
func Rules(c Config) ([]byte, error) {
	r, err := newRenderer(c, false)
	if err != nil {
		return nil, err
	}
	head, err := r.header()
	if err != nil {
		return nil, err
	}
	groups, err := r.groups("")
	if err != nil {
		return nil, err
	}
	return []byte(head + groups), nil
}

func formatFloat(f float64) string {
	return fmt.Sprint(f)
}
