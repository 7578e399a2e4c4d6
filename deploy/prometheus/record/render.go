package main

import (
	"encoding/json"
	"fmt"
	"regexp"
	"sort"
	"strings"
	"time"

	"go.yaml.in/yaml/v3"

	"github.com/yunxiao-exporter/yunxiao_exporter/deploy/mixin"
)

// rule is what the recorder needs of a rule: an alert's expression,
// labels and annotations, a recording rule's name and expression.
type rule struct {
	Alert       string            `yaml:"alert"`
	Record      string            `yaml:"record"`
	Expr        string            `yaml:"expr"`
	Labels      map[string]string `yaml:"labels"`
	Annotations map[string]string `yaml:"annotations"`
}

// alertRule is an alerting rule.
type alertRule = rule

// allRules are the rules of alerts.yml, alerting and recording, rendered
// from mixin.Default() as `make generate` renders them.
var allRules = func() []rule {
	data, err := mixin.Rules(mixin.Default())
	if err != nil {
		panic(err)
	}
	var f struct {
		Groups []struct {
			Rules []rule `yaml:"rules"`
		} `yaml:"groups"`
	}
	if err := yaml.Unmarshal(data, &f); err != nil {
		panic(err)
	}
	var out []rule
	for _, g := range f.Groups {
		out = append(out, g.Rules...)
	}
	return out
}()

// rules are the alerting rules by name.
var rules = func() map[string]alertRule {
	out := map[string]alertRule{}
	for _, r := range allRules {
		if r.Alert != "" {
			out[r.Alert] = r
		}
	}
	return out
}()

// recordedByRules are the names recording rules write.
var recordedByRules = func() map[string]bool {
	out := map[string]bool{}
	for _, r := range allRules {
		if r.Record != "" {
			out[r.Record] = true
		}
	}
	return out
}()

var (
	identifier   = regexp.MustCompile(`[a-zA-Z_:][a-zA-Z0-9_:]*`)
	quotedString = regexp.MustCompile(`"(?:[^"\\]|\\.)*"`)
)

// ruleMetric holds the metric names the alerting rules read: every
// identifier of their expressions outside strings, and, for an identifier
// that a recording rule writes, the names that rule reads, and so on. Only
// these series are written, so that the file stays reviewable (promtool
// evaluates the recording rules too, but these tests assert only alerts);
// their values and shapes are untouched.
var ruleMetric = func() map[string]bool {
	idents := func(expr string) []string {
		return identifier.FindAllString(quotedString.ReplaceAllString(expr, `""`), -1)
	}
	byRecord := map[string][]string{}
	for _, r := range allRules {
		if r.Record != "" {
			byRecord[r.Record] = append(byRecord[r.Record], r.Expr)
		}
	}
	out := map[string]bool{}
	var todo []string
	for _, r := range allRules {
		if r.Alert != "" {
			todo = append(todo, idents(r.Expr)...)
		}
	}
	for len(todo) > 0 {
		id := todo[len(todo)-1]
		todo = todo[:len(todo)-1]
		if out[id] {
			continue
		}
		out[id] = true
		for _, expr := range byRecord[id] {
			todo = append(todo, idents(expr)...)
		}
	}
	return out
}()

// Alert is one expected firing alert: its labels besides alertname and
// severity, and the text {{ $value ... }} renders to in its annotations.
type Alert struct {
	Labels map[string]string
	Value  string
}

// P is a per-pipeline alert.
func P(id, name string) Alert {
	return Alert{Labels: map[string]string{"pipeline_id": id, "pipeline_name": name}}
}

// With adds a label, such as the team a per-pipeline alert carries from
// the pipeline's yunxiao_pipeline_info.
func (a Alert) With(name, value string) Alert {
	labels := map[string]string{name: value}
	for k, v := range a.Labels {
		labels[k] = v
	}
	a.Labels = labels
	return a
}

// Team is a per-pipeline alert of a pipeline configured with that team.
func (a Alert) Team(team string) Alert { return a.With("team", team) }

// J is a per-job alert.
func J() Alert { return Alert{Labels: map[string]string{"job": ExporterJob}} }

// X is a per-exporter alert.
func X(instance string) Alert {
	return Alert{Labels: map[string]string{"job": ExporterJob, "instance": instance}}
}

// V sets the rendered $value.
func (a Alert) V(v string) Alert { a.Value = v; return a }

// Case is one alert_rule_test case: at story minute At (plus seconds, if
// any), Alert fires exactly Firing (none: it is quiet).
type Case struct {
	At      time.Duration
	Alert   string
	Firing  []Alert
	Comment string
}

// at is a story time of m minutes.
func at(m int) time.Duration { return time.Duration(m) * time.Minute }

// fires and quiet build cases at story minute m.
func fires(m int, alert string, firing ...Alert) Case {
	return Case{At: at(m), Alert: alert, Firing: firing}
}

func quiet(m int, alert string) Case { return Case{At: at(m), Alert: alert} }

// because adds a comment to a case.
func (c Case) because(comment string) Case { c.Comment = comment; return c }

// quietAll is every alert quiet at each minute.
func quietAll(minutes ...int) []Case {
	var out []Case
	for _, m := range minutes {
		for _, name := range mixin.AlertNames() {
			out = append(out, quiet(m, name))
		}
	}
	return out
}

// Scenario is one test group: a story the recorder plays, and what the
// alerts must do.
type Scenario struct {
	Name string
	Doc  string
	// Origin is the Unix time of story minute 0 (promtool's samples start
	// at Unix 0): room for runs before the exporter starts, whose times
	// must be positive.
	Origin time.Duration
	Script func(r *Recorder)
	Expect []Case
}

var templateRef = regexp.MustCompile(`\{\{(.*?)\}\}`)
var labelRef = regexp.MustCompile(`^\s*\$labels\.(\w+)\s*$`)

// annotations renders an alert's annotations for exp_annotations.
func annotations(rule alertRule, labels map[string]string, value string) (map[string]string, error) {
	out := map[string]string{}
	for k, tmpl := range rule.Annotations {
		var err error
		out[k] = templateRef.ReplaceAllStringFunc(tmpl, func(ref string) string {
			expr := templateRef.FindStringSubmatch(ref)[1]
			if m := labelRef.FindStringSubmatch(expr); m != nil {
				return labels[m[1]]
			}
			if strings.HasPrefix(strings.TrimSpace(expr), "$value") {
				if value == "" {
					err = fmt.Errorf("%s: the expectation gives no $value for %q", rule.Alert, expr)
				}
				return value
			}
			err = fmt.Errorf("%s: cannot render %q", rule.Alert, expr)
			return ""
		})
		if err != nil {
			return nil, err
		}
	}
	return out, nil
}

var plain = regexp.MustCompile(`^[A-Za-z_][A-Za-z0-9_.:-]*$`)

// q quotes a YAML scalar when it is not a plain word.
func q(s string) string {
	switch s {
	case "yes", "no", "true", "false", "on", "off", "null", "y", "n":
	default:
		if plain.MatchString(s) {
			return s
		}
	}
	b, _ := json.Marshal(s)
	return strings.NewReplacer(`\u003c`, "<", `\u003e`, ">", `\u0026`, "&").Replace(string(b))
}

func comment(b *strings.Builder, indent, text string) {
	for _, l := range strings.Split(strings.TrimSpace(text), "\n") {
		b.WriteString(strings.TrimRight(indent+"# "+l, " ") + "\n")
	}
}

// evalTime writes an absolute eval_time.
func evalTime(d time.Duration) string { return mixin.Duration(d).String() }

// renderGroup writes one test group.
func renderGroup(b *strings.Builder, sc Scenario, rec *recording) error {
	b.WriteString("  # " + strings.Repeat("-", 75) + "\n")
	comment(b, "  ", sc.Doc)
	comment(b, "  ", fmt.Sprintf("Minute 0 of this story is %s (Unix %d): eval_time is %s plus the minute.",
		evalTime(sc.Origin), int64(sc.Origin/time.Second), evalTime(sc.Origin)))
	fmt.Fprintf(b, "  - name: %s\n", q(sc.Name))
	b.WriteString("    interval: 1m\n")
	b.WriteString("    input_series:\n")
	for _, s := range rec.series {
		fmt.Fprintf(b, "      - series: '%s'\n", strings.ReplaceAll(s.String(), "'", "''"))
		// Samples start at Unix 0, the story at its origin.
		pad := make([]sample, int(sc.Origin/Step), int(sc.Origin/Step)+len(s.samples))
		fmt.Fprintf(b, "        values: '%s'\n", encodeValues(append(pad, s.samples...)))
	}
	b.WriteString("    alert_rule_test:\n")
	for _, c := range sc.Expect {
		rule, ok := rules[c.Alert]
		if !ok {
			return fmt.Errorf("%s: no alert %s", sc.Name, c.Alert)
		}
		if c.Comment != "" {
			comment(b, "      ", c.Comment)
		}
		t := evalTime(sc.Origin + c.At)
		minute := int(c.At / Step)
		if len(c.Firing) == 0 {
			fmt.Fprintf(b, "      - {eval_time: %s, alertname: %s, exp_alerts: []}  # minute %d\n", t, c.Alert, minute)
			continue
		}
		fmt.Fprintf(b, "      - eval_time: %s  # minute %d\n        alertname: %s\n        exp_alerts:\n", t, minute, c.Alert)
		for _, a := range c.Firing {
			labels := map[string]string{"severity": rule.Labels["severity"]}
			for k, v := range a.Labels {
				labels[k] = v
			}
			ann, err := annotations(rule, labels, a.Value)
			if err != nil {
				return fmt.Errorf("%s at %s: %w", sc.Name, t, err)
			}
			b.WriteString("          - exp_labels:\n")
			for _, k := range sortedKeys(labels) {
				fmt.Fprintf(b, "              %s: %s\n", k, q(labels[k]))
			}
			b.WriteString("            exp_annotations:\n")
			for _, k := range sortedKeys(ann) {
				fmt.Fprintf(b, "              %s: %s\n", k, q(ann[k]))
			}
		}
	}
	return nil
}

func sortedKeys(m map[string]string) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	return keys
}

const header = `# Unit tests for alerts.yml: ` + "`promtool test rules alerts_test.yml`" + `
# (go test ./deploy/prometheus runs it with every promtool it finds).
#
# Code generated by deploy/prometheus/record; DO NOT EDIT. Regenerate with
# ` + "`go run ./deploy/prometheus/record`" + ` (or ` + "`make generate`" + `); a test in that package
# fails when this file differs from what it records.
#
# The input series are recorded, not written: each group is a scenario
# scripted in Go (deploy/prometheus/record/scenarios*.go) that runs the real
# exporter in process (collector, yunxiao client, config reload and
# discovery metrics, webhook receiver, its /metrics handler) against the
# simulated Flow API (flowsim, with the scenario's runs and faults) on a
# fake clock, POSTs the scenario's Flow webhook events to it, scrapes every
# target once a minute and stores what Prometheus would: the series of each
# scrape with job and instance, without labels whose value is empty; a
# staleness marker for each series that a successful scrape no longer has,
# for every series of the target when a scrape fails or the target leaves
# service discovery; and up (1, 0, or stale once the target has gone). Only
# the series of metrics the rules read are written, with their values
# untouched but one: the receiver stamps its last accepted event with the
# wall clock, which the recorder moves to the event's time on the fake
# clock. A restarted exporter is a new process: its counters are born again
# at 0 and its series are those it emits. The alert expectations are
# written next to each script.
#
# Notation (promtool's): one value per minute (interval: 1m); ` + "`_`" + ` no sample,
# ` + "`_xN`" + ` N minutes without one, ` + "`stale`" + ` a staleness marker, ` + "`axN`" + ` a for N+1
# minutes, ` + "`a+bxN`" + ` from a up by b, N more times. Samples start at Unix 0;
# each story starts at its own origin so that runs before it have positive
# times: timestamps are Unix seconds.
#
# The alerts are those of deploy/mixin's Default(): job="yunxiao-exporter".
# Pending alerts are not listed by promtool: ` + "`exp_alerts: []`" + ` means nothing
# is firing.

rule_files:
  - alerts.yml

evaluation_interval: 1m

tests:
`
