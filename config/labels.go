package config

import (
	"fmt"
	"maps"
	"regexp"
	"slices"
	"strings"
	"unicode/utf8"
)

// Bounds on the extra labels of yunxiao_pipeline_info.
const (
	// MaxExtraLabels bounds the extra label names of one pipeline, of one
	// rule, and of the whole config together: the info metric's label set
	// is their union.
	MaxExtraLabels = 10
	// MaxLabelValueBytes bounds one extra label's value.
	MaxLabelValueBytes = 128
)

// LabelRule gives extra labels, and optionally the deploy flag, to every
// watched pipeline whose name Match matches (anchored RE2).
type LabelRule struct {
	Match  Regexp            `yaml:"match"`
	Labels map[string]string `yaml:"labels,omitempty"`
	// Deploy, when set, marks matching pipelines as deployments (true) or
	// not (false); nil leaves the flag to earlier rules.
	Deploy *bool `yaml:"deploy,omitempty"`
}

// NewRegexp compiles expr as the config does: anchored, so it must match
// the whole name.
func NewRegexp(expr string) (Regexp, error) {
	var r Regexp
	err := r.UnmarshalYAML(func(v any) error {
		*v.(*string) = expr
		return nil
	})
	return r, err
}

// reservedLabels are the label names the exporter's own series, Prometheus
// or the generated alerts use; an extra label may not take one.
var reservedLabels = map[string]bool{}

func init() {
	for _, n := range strings.Fields(`pipeline_id pipeline_name group tags deploy job instance status
		stage_index stage_name job_sign job_name trigger_mode reason le quantile source_name source_type
		repo branch commit endpoint code shard_index shard_total phase alertname severity`) {
		reservedLabels[n] = true
	}
}

var labelNameRE = regexp.MustCompile(`^[a-zA-Z_][a-zA-Z0-9_]*$`)

// checkLabelName returns why name cannot be an extra label, or "".
func checkLabelName(name string) string {
	switch {
	case !labelNameRE.MatchString(name):
		return fmt.Sprintf("%q is not a valid label name (letters, digits and _, not starting with a digit)", name)
	case strings.HasPrefix(name, "__"):
		return fmt.Sprintf("%q is reserved: names starting with __ are for Prometheus' own use", name)
	case reservedLabels[name]:
		return fmt.Sprintf("%q is reserved", name)
	}
	return ""
}

// checkLabelValue returns why value cannot be an extra label's value, or "".
func checkLabelValue(value string) string {
	switch {
	case value == "":
		return "empty value: give one, or remove the label"
	case !utf8.ValidString(value):
		return "value is not valid UTF-8"
	case len(value) > MaxLabelValueBytes:
		return fmt.Sprintf("value is %d bytes, at most %d", len(value), MaxLabelValueBytes)
	}
	return ""
}

// validateLabels checks pipelines[].labels and discovery.labels one by one.
func (c *Config) validateLabels() []fieldError {
	var errs []fieldError
	add := func(path, format string, args ...any) {
		errs = append(errs, fieldError{path, fmt.Sprintf(format, args...)})
	}
	checkMap := func(path string, labels map[string]string) {
		if len(labels) > MaxExtraLabels {
			add(path, "%d labels, at most %d (each is a label of yunxiao_pipeline_info)", len(labels), MaxExtraLabels)
		}
		for _, name := range slices.Sorted(maps.Keys(labels)) {
			if why := checkLabelName(name); why != "" {
				add(path+"."+name, "%s", why)
			} else if why := checkLabelValue(labels[name]); why != "" {
				add(path+"."+name, "%s", why)
			}
		}
	}
	for i, r := range c.Discovery.Labels {
		path := fmt.Sprintf("discovery.labels[%d]", i)
		if r.Match.Regexp == nil || r.Match.original == "" {
			add(path+".match", "is required: an anchored regular expression on the pipeline name")
		}
		if len(r.Labels) == 0 && r.Deploy == nil {
			add(path, "sets neither labels nor deploy")
		}
		checkMap(path+".labels", r.Labels)
	}
	for i, p := range c.Pipelines {
		checkMap(fmt.Sprintf("pipelines[%d].labels", i), p.Labels)
	}
	return errs
}

// validateLabelUnion checks that pipelines[].labels and discovery.labels
// together name at most MaxExtraLabels labels, naming each name past the
// limit where it first appears in the file (lineOf gives a key's line).
// A map over the limit on its own is reported by validateLabels alone.
func (c *Config) validateLabelUnion(lineOf func(path string) int) []fieldError {
	type use struct {
		path, name string
		line       int
	}
	var uses []use
	collect := func(path string, labels map[string]string) bool {
		if len(labels) > MaxExtraLabels {
			return false
		}
		for _, name := range slices.Sorted(maps.Keys(labels)) {
			if checkLabelName(name) == "" && checkLabelValue(labels[name]) == "" {
				p := path + "." + name
				uses = append(uses, use{p, name, lineOf(p)})
			}
		}
		return true
	}
	for i, r := range c.Discovery.Labels {
		if !collect(fmt.Sprintf("discovery.labels[%d].labels", i), r.Labels) {
			return nil
		}
	}
	for i, p := range c.Pipelines {
		if !collect(fmt.Sprintf("pipelines[%d].labels", i), p.Labels) {
			return nil
		}
	}
	slices.SortStableFunc(uses, func(a, b use) int { return a.line - b.line })
	var errs []fieldError
	var names []string
	for _, u := range uses {
		if slices.Contains(names, u.name) {
			continue
		}
		if len(names) >= MaxExtraLabels {
			errs = append(errs, fieldError{u.path, fmt.Sprintf(
				"one label name too many: pipelines[].labels and discovery.labels together may name at most %d, each a label of yunxiao_pipeline_info (already %s)",
				MaxExtraLabels, strings.Join(slices.Sorted(slices.Values(names)), ", "))})
			continue
		}
		names = append(names, u.name)
	}
	return errs
}

// indexPipelines records where each pipeline id is in c.Pipelines.
func (c *Config) indexPipelines() {
	c.byID = make(map[int64]int, len(c.Pipelines))
	for i, p := range c.Pipelines {
		if _, dup := c.byID[p.ID]; !dup {
			c.byID[p.ID] = i
		}
	}
}

// pipeline returns the configured entry of pipeline id, or nil.
func (c *Config) pipeline(id int64) *Pipeline {
	if c.byID != nil {
		if i, ok := c.byID[id]; ok {
			return &c.Pipelines[i]
		}
		return nil
	}
	for i := range c.Pipelines { // a Config not made by Load
		if c.Pipelines[i].ID == id {
			return &c.Pipelines[i]
		}
	}
	return nil
}

// PipelineMeta returns the extra labels (a fresh map, never nil) and the
// deploy flag of pipeline id. The discovery.labels rules whose match fits
// the pipeline's name apply in order, a later rule winning for the same
// label or flag; then the pipeline's own labels and deploy under
// pipelines[] win over them. The name matched is the configured
// pipelines[].name when there is one, else name (the name from discovery
// or GetPipeline); when neither is known yet, only the pipeline's own
// entry applies. deploy is false unless a rule or the entry sets it.
// Safe for concurrent use.
func (c *Config) PipelineMeta(id int64, name string) (labels map[string]string, deploy bool) {
	labels = map[string]string{}
	own := c.pipeline(id)
	if own != nil && own.Name != "" {
		name = own.Name
	}
	if name != "" {
		for _, r := range c.Discovery.Labels {
			if r.Match.Regexp == nil || !r.Match.MatchString(name) {
				continue
			}
			maps.Copy(labels, r.Labels)
			if r.Deploy != nil {
				deploy = *r.Deploy
			}
		}
	}
	if own != nil {
		maps.Copy(labels, own.Labels)
		if own.Deploy != nil {
			deploy = *own.Deploy
		}
	}
	return labels, deploy
}

// LabelNames returns, sorted, every extra label name PipelineMeta can
// give: the label set of yunxiao_pipeline_info beyond its fixed labels.
// Load bounds it to MaxExtraLabels names.
func (c *Config) LabelNames() []string {
	set := map[string]bool{}
	for _, r := range c.Discovery.Labels {
		for n := range r.Labels {
			set[n] = true
		}
	}
	for _, p := range c.Pipelines {
		for n := range p.Labels {
			set[n] = true
		}
	}
	return slices.Sorted(maps.Keys(set))
}
