// Package mixin is the one source of truth for the Prometheus alerts of
// yunxiao_exporter, in the style of the monitoring mixins (kubernetes-mixin's
// `_config`): a Config holds the exporter's job selector, every threshold,
// every `for`/`keep_firing_for`, the severities, labels added to every alert
// and the runbook's address, and the rules are rendered from it.
//
// `go run ./deploy/mixin/gen` (`make generate`) writes from Default():
//
//   - deploy/prometheus/alerts.yml, the rule file Prometheus loads;
//   - deploy/kubernetes/base/prometheusrule.yaml, the same groups as a
//     Prometheus Operator PrometheusRule (deploy/internal/rulegen);
//   - the Helm chart's templates/prometheusrule.yaml and the
//     `prometheusRule.alerts` block of its values.yaml: the same rules with
//     every Config value replaced by a reference to that block, so a chart
//     user overrides selector, thresholds, severities and extra labels in
//     values, never forking the rules (HelmTemplate, HelmValues).
//
// Tests fail when a committed file drifts from what the generator writes.
// Scenario tests under a real Prometheus call Rules(Default().Scale(f)) to
// run the real expressions with every duration shortened.
package mixin

import (
	"errors"
	"fmt"
	"math"
	"reflect"
	"regexp"
	"slices"
	"sort"
	"strings"
	"time"

	"github.com/prometheus/common/model"
)

// Duration is a Prometheus duration (1d, 2h, 90s, 1h30m) that prints in the
// same syntax, with days as the largest unit (7d, not 1w).
type Duration time.Duration

// ParseDuration parses Prometheus' duration syntax.
func ParseDuration(s string) (Duration, error) {
	d, err := model.ParseDuration(s)
	return Duration(d), err
}

// String formats d in Prometheus' syntax: "0s", "500ms", "90s" as "1m30s",
// "7d", "1d12h".
func (d Duration) String() string {
	ms := time.Duration(d).Milliseconds()
	if ms == 0 {
		return "0s"
	}
	var b strings.Builder
	for _, u := range []struct {
		name string
		ms   int64
	}{{"d", 86400000}, {"h", 3600000}, {"m", 60000}, {"s", 1000}, {"ms", 1}} {
		if n := ms / u.ms; n > 0 {
			fmt.Fprintf(&b, "%d%s", n, u.name)
			ms -= n * u.ms
		}
	}
	return b.String()
}

// Seconds formats d as a PromQL number of seconds: "7200", or "0.5" for
// 500ms.
func (d Duration) Seconds() string {
	ms := time.Duration(d).Milliseconds()
	if ms%1000 == 0 {
		return fmt.Sprint(ms / 1000)
	}
	return formatFloat(float64(ms) / 1000)
}

// MarshalYAML writes d as a duration string.
func (d Duration) MarshalYAML() (any, error) { return d.String(), nil }

// UnmarshalYAML reads a duration string.
func (d *Duration) UnmarshalYAML(unmarshal func(any) error) error {
	var s string
	if err := unmarshal(&s); err != nil {
		return err
	}
	v, err := ParseDuration(s)
	if err != nil {
		return err
	}
	*d = v
	return nil
}

// Alert holds what every alert has: its severity, how long its condition
// must hold before it fires (`for`) and how long it keeps firing once the
// condition is gone (`keep_firing_for`).
type Alert struct {
	Severity      string   `yaml:"severity"`
	For           Duration `yaml:"for"`
	KeepFiringFor Duration `yaml:"keepFiringFor"`
}

// ThresholdAlert is an alert with a time threshold measured inside its
// expression (data age, time without progress, ...).
type ThresholdAlert struct {
	Alert     `yaml:",inline"`
	Threshold Duration `yaml:"threshold"`
}

// FailureRatioAlert is YunxiaoPipelineFailureRatioHigh's configuration.
type FailureRatioAlert struct {
	Alert `yaml:",inline"`
	// Window over which finished runs are counted.
	Window Duration `yaml:"window"`
	// Ratio of FAIL among finished runs above which the alert fires.
	Ratio float64 `yaml:"ratio"`
	// MinRuns: finished runs in Window below which it never fires.
	MinRuns int `yaml:"minRuns"`
}

// RateLimitAlert is YunxiaoApiRateLimited's configuration.
type RateLimitAlert struct {
	Alert `yaml:",inline"`
	// Window over which the share of 429 answers is measured.
	Window Duration `yaml:"window"`
	// Ratio of 429 answers among all API requests above which the token
	// counts as rate-limited (the alert fires, and per-pipeline fetch and
	// staleness alerts are held back).
	Ratio float64 `yaml:"ratio"`
}

// Delivery configures the recording rules of delivery performance (the
// DORA "four keys" Flow can give): deployment frequency, change failure
// rate and time to restore, per deploy pipeline and per team. They read the
// exact run counters of run history (yunxiao_pipeline_runs_total,
// yunxiao_pipeline_restore_duration_seconds) of the pipelines whose
// yunxiao_pipeline_info says deploy="true", and carry the Config's
// PipelineLabels of that info, as the per-pipeline alerts do.
// Lead time for changes is not recorded: Flow's API gives no commit times.
type Delivery struct {
	// TeamLabels: the labels the team-level series are aggregated by; a
	// subset of the Config's PipelineLabels. Empty: one series over every
	// deploy pipeline.
	TeamLabels []string `yaml:"teamLabels"`
	// Interval at which Prometheus evaluates the group ("0s": its global
	// evaluation_interval). The long windows read every sample of every
	// run-history pipeline's counters: evaluating them less often is what
	// keeps them cheap, and DORA numbers move by the day. Keep it under
	// Prometheus' 5m lookback, so a recorded series never has a gap.
	Interval Duration `yaml:"interval"`
	// DeploymentFrequencyWindows: successful deploy runs are counted over
	// each of these windows.
	DeploymentFrequencyWindows []Duration `yaml:"deploymentFrequencyWindows"`
	// ChangeFailureRateWindows: FAIL / (SUCCESS + FAIL) of deploy runs over
	// each of these windows.
	ChangeFailureRateWindows []Duration `yaml:"changeFailureRateWindows"`
	// TimeToRestoreWindow: recoveries (first FAIL after a SUCCESS until the
	// next SUCCESS) ended in this window make the time-to-restore
	// quantiles.
	TimeToRestoreWindow Duration `yaml:"timeToRestoreWindow"`
	// TimeToRestoreQuantiles, each between 0 and 1, e.g. [0.5, 0.9].
	TimeToRestoreQuantiles []float64 `yaml:"timeToRestoreQuantiles"`
}

// Config is everything the rules are rendered from. Its YAML form (camelCase
// keys) is the Helm chart's `prometheusRule.alerts` block.
type Config struct {
	// Selector: PromQL label matchers, without braces, that select the
	// exporter's scrape job in every query, e.g. `job="yunxiao-exporter"`.
	// Every scrape config of this repository names its job so.
	Selector string `yaml:"selector"`
	// GroupLabels: target labels every alert keeps beyond its subject's
	// own (pipeline_id and pipeline_name, or job and instance), e.g.
	// [cluster] for a Prometheus that sees several clusters.
	GroupLabels []string `yaml:"groupLabels"`
	// ExtraLabels are added to every alert (e.g. page: "no"). A key may
	// not be one of PipelineLabels: the rule's fixed value would replace
	// every pipeline's own.
	ExtraLabels map[string]string `yaml:"extraLabels"`
	// PipelineLabels: labels of yunxiao_pipeline_info (set by
	// pipelines[].labels and discovery.labels, or the pipeline's Flow
	// group) carried onto every per-pipeline alert and every per-pipeline
	// delivery series, e.g. [team, group], so Alertmanager can route a
	// pipeline's alerts by team. Joined on pipeline_id with the info
	// deduplicated (one series per pipeline, whatever the exporters, a
	// reload or a rollout); an alert whose pipeline has no info series
	// fires without them. Empty: no join.
	PipelineLabels []string `yaml:"pipelineLabels"`
	// RunbookURL: each alert's runbook_url is this plus its name in lower
	// case (the runbook's heading anchor).
	RunbookURL string `yaml:"runbookURL"`
	// GapWindow carries a gauge's last value across missed scrapes
	// (last_over_time over it): longer than two scrape intervals plus the
	// evaluation interval, so one failed scrape (whose staleness markers
	// end every series of the target) neither resolves nor resets an
	// alert. A series that truly ended counts for this long more.
	GapWindow Duration `yaml:"gapWindow"`
	// FetchHoldback: per-pipeline FetchFailing and DataStale stay quiet
	// while any exporter reported the API down (yunxiao_up 0) or the token
	// rate-limited within this window, i.e. during the outage and this long
	// after it, while the exporter re-fetches every pipeline.
	FetchHoldback Duration `yaml:"fetchHoldback"`

	PipelineRunFailed          Alert             `yaml:"pipelineRunFailed"`
	PipelineNoRecentSuccess    ThresholdAlert    `yaml:"pipelineNoRecentSuccess"`
	PipelineRunStuck           ThresholdAlert    `yaml:"pipelineRunStuck"`
	PipelineWaitingTooLong     Alert             `yaml:"pipelineWaitingTooLong"`
	PipelineFetchFailing       Alert             `yaml:"pipelineFetchFailing"`
	PipelineDataStale          ThresholdAlert    `yaml:"pipelineDataStale"`
	PipelineFailureRatioHigh   FailureRatioAlert `yaml:"pipelineFailureRatioHigh"`
	APIDown                    Alert             `yaml:"apiDown"`
	APIRateLimited             RateLimitAlert    `yaml:"apiRateLimited"`
	ExporterDown               Alert             `yaml:"exporterDown"`
	ExporterAbsent             Alert             `yaml:"exporterAbsent"`
	ExporterConfigReloadFailed Alert             `yaml:"exporterConfigReloadFailed"`
	DiscoveryFailing           ThresholdAlert    `yaml:"discoveryFailing"`
	// WebhookSilent: the webhook is on but has accepted no event for
	// Threshold while pipelines of the job started runs.
	WebhookSilent ThresholdAlert `yaml:"webhookSilent"`

	// Delivery: the recording rules of delivery performance.
	Delivery Delivery `yaml:"delivery"`
}

// DefaultSelector is the job every scrape config of this repository uses.
const DefaultSelector = `job="yunxiao-exporter"`

// DefaultRunbookURL is the runbook in this repository.
const DefaultRunbookURL = "https://github.com/yunxiao-exporter/yunxiao_exporter/blob/main/docs/runbook.md#"

// HistorySeedWindow is how far back the exporter's run history looks when it
// first sees a pipeline; PipelineNoRecentSuccess.Threshold may not exceed it
// (an older success is unknown after a restart).
const HistorySeedWindow = Duration(7 * 24 * time.Hour)

// Default is the configuration the committed rule files are rendered from.
//
// Severities follow who must act: alerts about a pipeline (it fails, does
// not pass, is stuck, fails often) are `warning` for the pipeline's owners,
// a run waiting for an approval is `info`; alerts about the exporter, its
// data and the API are `warning` for whoever runs the exporter. Nothing is
// `critical`: no alert here means production is down, and a broken
// exporter only blinds the other alerts (ExporterDown/Absent say so).
func Default() Config {
	h, m := Duration(time.Hour), Duration(time.Minute)
	return Config{
		Selector:       DefaultSelector,
		GroupLabels:    []string{},
		ExtraLabels:    map[string]string{},
		PipelineLabels: []string{"team", "group"},
		RunbookURL:     DefaultRunbookURL,
		GapWindow:      3 * m,
		FetchHoldback:  15 * m,

		PipelineRunFailed: Alert{Severity: "warning"},
		// 7d: a weekly scheduled pipeline runs at least once in it, and it
		// is the run history's seed window, so with run_history the last
		// success is exact over it even after a restart.
		PipelineNoRecentSuccess:    ThresholdAlert{Alert{Severity: "warning", For: 15 * m}, 7 * 24 * h},
		PipelineRunStuck:           ThresholdAlert{Alert{Severity: "warning", For: 5 * m}, 2 * h},
		PipelineWaitingTooLong:     Alert{Severity: "info", For: h},
		PipelineFetchFailing:       Alert{Severity: "warning", For: 10 * m},
		PipelineDataStale:          ThresholdAlert{Alert{Severity: "warning"}, 15 * m},
		PipelineFailureRatioHigh:   FailureRatioAlert{Alert{Severity: "warning"}, 24 * h, 0.5, 5},
		APIDown:                    Alert{Severity: "warning", For: 5 * m},
		APIRateLimited:             RateLimitAlert{Alert{Severity: "warning", For: 5 * m}, 10 * m, 0.1},
		ExporterDown:               Alert{Severity: "warning", For: 5 * m},
		ExporterAbsent:             Alert{Severity: "warning", For: 15 * m},
		ExporterConfigReloadFailed: Alert{Severity: "warning", For: 5 * m},
		DiscoveryFailing:           ThresholdAlert{Alert{Severity: "warning"}, 30 * m},
		// 6h: a working day has runs every few hours; a webhook silent that
		// long while runs start is broken, not quiet.
		WebhookSilent: ThresholdAlert{Alert{Severity: "warning"}, 6 * h},

		// 1d and 7d: deployments today and this week; 30d: enough
		// deployments for a rate and recoveries for a median. Every 2m:
		// the 30d windows read a month of samples of every run-history
		// counter, too much for every 30s, and 2m stays well inside the
		// 5m lookback.
		Delivery: Delivery{
			TeamLabels:                 []string{"team"},
			Interval:                   2 * m,
			DeploymentFrequencyWindows: []Duration{24 * h, 7 * 24 * h},
			ChangeFailureRateWindows:   []Duration{7 * 24 * h, 30 * 24 * h},
			TimeToRestoreWindow:        30 * 24 * h,
			TimeToRestoreQuantiles:     []float64{0.5, 0.9},
		},
	}
}

// Scale returns a copy of c with every duration (each `for`,
// `keep_firing_for`, time threshold and window, GapWindow and FetchHoldback)
// multiplied by factor, rounded to the millisecond and never below 1ms
// unless zero. Scenario tests use it to run the real expressions on a short
// clock (e.g. Scale(1.0/120) turns 2h into 1m); thresholds that are not
// times (ratios, run counts) are kept. GapWindow shrinks too: when the
// test's scrape and evaluation intervals are not scaled alike, set it again
// after Scale, above two scrape intervals plus the evaluation interval.
func (c Config) Scale(factor float64) Config {
	out := c.clone()
	walkDurations(reflect.ValueOf(&out).Elem(), func(d *Duration) {
		if *d == 0 {
			return
		}
		ms := math.Round(float64(time.Duration(*d).Milliseconds()) * factor)
		*d = Duration(time.Duration(max(ms, 1)) * time.Millisecond)
	})
	return out
}

func (c Config) clone() Config {
	out := c
	out.GroupLabels = append([]string{}, c.GroupLabels...)
	out.PipelineLabels = append([]string{}, c.PipelineLabels...)
	out.Delivery.TeamLabels = append([]string{}, c.Delivery.TeamLabels...)
	out.Delivery.DeploymentFrequencyWindows = append([]Duration{}, c.Delivery.DeploymentFrequencyWindows...)
	out.Delivery.ChangeFailureRateWindows = append([]Duration{}, c.Delivery.ChangeFailureRateWindows...)
	out.Delivery.TimeToRestoreQuantiles = append([]float64{}, c.Delivery.TimeToRestoreQuantiles...)
	out.ExtraLabels = make(map[string]string, len(c.ExtraLabels))
	for k, v := range c.ExtraLabels {
		out.ExtraLabels[k] = v
	}
	return out
}

var durationType = reflect.TypeFor[Duration]()

func walkDurations(v reflect.Value, f func(*Duration)) {
	switch {
	case v.Type() == durationType:
		f(v.Addr().Interface().(*Duration))
	case v.Kind() == reflect.Struct:
		for i := range v.NumField() {
			walkDurations(v.Field(i), f)
		}
	case v.Kind() == reflect.Slice:
		for i := range v.Len() {
			walkDurations(v.Index(i), f)
		}
	}
}

var (
	labelName = regexp.MustCompile(`^[a-zA-Z_][a-zA-Z0-9_]*$`)
	// matcher is one PromQL label matcher: name, operator, quoted value.
	matcher = regexp.MustCompile(`^\s*([a-zA-Z_][a-zA-Z0-9_]*)\s*(=~|!~|!=|=)\s*"((?:[^"\\]|\\.)*)"\s*$`)
)

// Validate reports every problem of c, naming the key as in values.yaml.
func (c Config) Validate() error {
	var errs []error
	bad := func(key, format string, args ...any) {
		errs = append(errs, fmt.Errorf("%s: "+format, append([]any{key}, args...)...))
	}
	if _, err := ParseSelector(c.Selector); err != nil {
		bad("selector", "%v", err)
	}
	reserved := map[string]bool{"pipeline_id": true, "pipeline_name": true, "job": true, "instance": true}
	seen := map[string]bool{}
	for _, l := range c.GroupLabels {
		switch {
		case !labelName.MatchString(l):
			bad("groupLabels", "%q is not a label name", l)
		case reserved[l]:
			bad("groupLabels", "%q is already kept where it applies", l)
		case seen[l]:
			bad("groupLabels", "%q is listed twice", l)
		}
		seen[l] = true
	}
	keys := make([]string, 0, len(c.ExtraLabels))
	for k := range c.ExtraLabels {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	for _, k := range keys {
		switch {
		case !labelName.MatchString(k) || strings.HasPrefix(k, "__"):
			bad("extraLabels", "%q is not a label name", k)
		case k == "severity" || k == "alertname":
			bad("extraLabels", "%q is set per alert and cannot be overridden here", k)
		case strings.ContainsAny(c.ExtraLabels[k], "\"\\\n"):
			bad("extraLabels", "value of %q must not contain quotes, backslashes or newlines", k)
		}
	}
	if c.RunbookURL == "" || strings.ContainsAny(c.RunbookURL, "\"\\\n ") {
		bad("runbookURL", "must be a non-empty URL without quotes or spaces")
	}
	if c.GapWindow <= 0 {
		bad("gapWindow", "must be positive")
	}
	if c.FetchHoldback <= 0 {
		bad("fetchHoldback", "must be positive")
	}
	for _, a := range c.alerts() {
		switch a.cfg.Severity {
		case "critical", "warning", "info":
		default:
			bad(a.key+".severity", "%q, want critical, warning or info", a.cfg.Severity)
		}
		if a.cfg.For < 0 {
			bad(a.key+".for", "must not be negative")
		}
		if a.cfg.KeepFiringFor < 0 {
			bad(a.key+".keepFiringFor", "must not be negative")
		}
	}
	for key, t := range map[string]Duration{
		"pipelineNoRecentSuccess.threshold": c.PipelineNoRecentSuccess.Threshold,
		"pipelineRunStuck.threshold":        c.PipelineRunStuck.Threshold,
		"pipelineDataStale.threshold":       c.PipelineDataStale.Threshold,
		"discoveryFailing.threshold":        c.DiscoveryFailing.Threshold,
		"webhookSilent.threshold":           c.WebhookSilent.Threshold,
		"pipelineFailureRatioHigh.window":   c.PipelineFailureRatioHigh.Window,
		"apiRateLimited.window":             c.APIRateLimited.Window,
		"pipelineWaitingTooLong.for":        c.PipelineWaitingTooLong.For,
	} {
		if t <= 0 {
			bad(key, "must be positive")
		}
	}
	if c.PipelineNoRecentSuccess.Threshold > HistorySeedWindow {
		bad("pipelineNoRecentSuccess.threshold", "%s is longer than the %s run history looks back when it starts", c.PipelineNoRecentSuccess.Threshold, HistorySeedWindow)
	}
	for key, r := range map[string]float64{
		"pipelineFailureRatioHigh.ratio": c.PipelineFailureRatioHigh.Ratio,
		"apiRateLimited.ratio":           c.APIRateLimited.Ratio,
	} {
		if !(r > 0 && r < 1) {
			bad(key, "%v, want a ratio between 0 and 1", r)
		}
	}
	if c.PipelineFailureRatioHigh.MinRuns < 1 {
		bad("pipelineFailureRatioHigh.minRuns", "must be at least 1")
	}
	labels := map[string]bool{}
	for _, l := range c.PipelineLabels {
		switch {
		case !labelName.MatchString(l) || strings.HasPrefix(l, "__"):
			bad("pipelineLabels", "%q is not a label name", l)
		case pipelineReserved[l]:
			bad("pipelineLabels", "%q is a label of the series the rules read or write", l)
		case slices.Contains(c.GroupLabels, l):
			bad("pipelineLabels", "%q is in groupLabels, which every rule keeps already", l)
		case labels[l]:
			bad("pipelineLabels", "%q is listed twice", l)
		}
		labels[l] = true
	}
	for _, k := range keys {
		if labels[k] {
			bad("extraLabels", "%q is also in pipelineLabels: its fixed value would replace every pipeline's own %s on the per-pipeline alerts; drop one", k, k)
		}
	}
	errs = append(errs, c.Delivery.validate(c.PipelineLabels)...)
	return errors.Join(errs...)
}

// pipelineReserved are the labels of the series the rules read or write,
// and those Prometheus sets on an alert: carrying an info label of that
// name would clash with them.
var pipelineReserved = map[string]bool{
	"pipeline_id": true, "pipeline_name": true, "job": true, "instance": true,
	"status": true, "trigger_mode": true, "le": true, "quantile": true, "deploy": true,
	"alertname": true, "severity": true,
}

func (d Delivery) validate(pipelineLabels []string) []error {
	var errs []error
	bad := func(key, format string, args ...any) {
		errs = append(errs, fmt.Errorf("delivery.%s: "+format, append([]any{key}, args...)...))
	}
	team := map[string]bool{}
	for _, l := range d.TeamLabels {
		switch {
		case !slices.Contains(pipelineLabels, l):
			bad("teamLabels", "%q is not one of pipelineLabels %q", l, pipelineLabels)
		case team[l]:
			bad("teamLabels", "%q is listed twice", l)
		}
		team[l] = true
	}
	if d.Interval < 0 {
		bad("interval", "must not be negative")
	}
	for key, ws := range map[string][]Duration{
		"deploymentFrequencyWindows": d.DeploymentFrequencyWindows,
		"changeFailureRateWindows":   d.ChangeFailureRateWindows,
	} {
		seen := map[Duration]bool{}
		for _, w := range ws {
			switch {
			case w <= 0:
				bad(key, "%s: must be positive", w)
			case seen[w]:
				bad(key, "%s is listed twice", w)
			}
			seen[w] = true
		}
	}
	if d.TimeToRestoreWindow <= 0 {
		bad("timeToRestoreWindow", "must be positive")
	}
	seen := map[float64]bool{}
	for _, q := range d.TimeToRestoreQuantiles {
		switch {
		case !(q > 0 && q < 1):
			bad("timeToRestoreQuantiles", "%v, want a quantile between 0 and 1", q)
		case seen[q]:
			bad("timeToRestoreQuantiles", "%v is listed twice", q)
		}
		seen[q] = true
	}
	return errs
}

// Matcher is one label matcher of a selector.
type Matcher struct {
	Name, Op, Value string
}

// Matches reports whether a label value (empty when the label is missing)
// satisfies the matcher, with PromQL's fully anchored regular expressions.
func (m Matcher) Matches(value string) bool {
	switch m.Op {
	case "=":
		return value == m.Value
	case "!=":
		return value != m.Value
	}
	re, err := regexp.Compile("^(?s:" + m.Value + ")$")
	if err != nil {
		return false
	}
	return re.MatchString(value) == (m.Op == "=~")
}

// ParseSelector splits a selector (matchers without braces, separated by
// commas) into its matchers. Values are double-quoted strings with Go/PromQL
// escapes.
func ParseSelector(sel string) ([]Matcher, error) {
	if strings.TrimSpace(sel) == "" {
		return nil, errors.New("empty; want matchers such as job=\"yunxiao-exporter\"")
	}
	var out []Matcher
	for _, part := range splitMatchers(sel) {
		m := matcher.FindStringSubmatch(part)
		if m == nil {
			return nil, fmt.Errorf("%q is not a label matcher such as job=\"yunxiao-exporter\"", strings.TrimSpace(part))
		}
		val, err := unquote(m[3])
		if err != nil {
			return nil, fmt.Errorf("%q: %v", part, err)
		}
		if m[2] == "=~" || m[2] == "!~" {
			if _, err := regexp.Compile(val); err != nil {
				return nil, fmt.Errorf("%q: %v", part, err)
			}
		}
		out = append(out, Matcher{m[1], m[2], val})
	}
	var matchesEmpty = true
	for _, m := range out {
		matchesEmpty = matchesEmpty && m.Matches("")
	}
	if matchesEmpty {
		return nil, fmt.Errorf("%q matches the empty label set: PromQL needs one matcher that does not", sel)
	}
	return out, nil
}

// MatchesLabels reports whether every matcher of sel matches the labels.
func MatchesLabels(sel []Matcher, labels map[string]string) bool {
	for _, m := range sel {
		if !m.Matches(labels[m.Name]) {
			return false
		}
	}
	return true
}

// splitMatchers splits at commas outside double quotes.
func splitMatchers(s string) []string {
	var parts []string
	inQuote, escaped, start := false, false, 0
	for i, r := range s {
		switch {
		case escaped:
			escaped = false
		case r == '\\' && inQuote:
			escaped = true
		case r == '"':
			inQuote = !inQuote
		case r == ',' && !inQuote:
			parts = append(parts, s[start:i])
			start = i + 1
		}
	}
	return append(parts, s[start:])
}

func unquote(s string) (string, error) {
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		if s[i] != '\\' {
			b.WriteByte(s[i])
			continue
		}
		i++
		if i == len(s) {
			return "", errors.New("trailing backslash")
		}
		switch s[i] {
		case '\\', '"':
			b.WriteByte(s[i])
		case 'n':
			b.WriteByte('\n')
		case 't':
			b.WriteByte('\t')
		default:
			// PromQL keeps unknown escapes as they are, for regexps (\.).
			b.WriteByte('\\')
			b.WriteByte(s[i])
		}
	}
	return b.String(), nil
}
