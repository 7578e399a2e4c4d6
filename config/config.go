// Package config defines the exporter's configuration file: its schema and
// defaults, strict loading with errors that name the file, line and key,
// validation, and a SafeConfig that reloads atomically.
package config

import (
	"crypto/tls"
	"fmt"
	"math"
	"net/url"
	"regexp"
	"strings"
	"time"

	commoncfg "github.com/prometheus/common/config"
	"github.com/prometheus/common/model"
	"go.yaml.in/yaml/v3"

	"github.com/yunxiao-exporter/yunxiao_exporter/yunxiao"
)

// Defaults, as documented in SPEC.md and config.yml.example.
const (
	DefaultEndpoint       = "https://openapi-rdc.aliyuncs.com"
	DefaultEdition        = string(yunxiao.EditionCentral)
	DefaultTimeout        = 10 * time.Second
	DefaultMaxConcurrency = 8
	DefaultRateLimit      = 20
	DefaultBurst          = 20
	DefaultCacheTTL       = 30 * time.Second
	DefaultMaxBodyBytes   = yunxiao.DefaultMaxBodyBytes // 4 MiB
	// MaxMaxBodyBytes bounds yunxiao.max_body_bytes: an answer is read
	// whole into memory, as many at once as max_concurrency allows.
	MaxMaxBodyBytes = 1 << 30
	// TokenEnv names the environment variable read when the file names no token.
	TokenEnv = "YUNXIAO_TOKEN"
)

// Config is the whole configuration file.
type Config struct {
	Yunxiao   Yunxiao        `yaml:"yunxiao"`
	CacheTTL  model.Duration `yaml:"cache_ttl"`
	Pipelines []Pipeline     `yaml:"pipelines"`
	// RunHistory counts every finished run (ListPipelineRuns) for all
	// pipelines; pipelines[].run_history overrides it per pipeline.
	RunHistory bool      `yaml:"run_history"`
	Discovery  Discovery `yaml:"discovery"`
	Webhook    Webhook   `yaml:"webhook"`

	// Filled in by Load, not read from the file.
	token        string        // the resolved token; never printed
	webhookToken string        // the resolved webhook secret; never printed
	tls          *tls.Config   // built from Yunxiao.TLSConfig
	byID         map[int64]int // pipeline id -> index in Pipelines
	Warnings     []string      `yaml:"-"` // things worth logging that are not errors
	SourceFile   string        `yaml:"-"`
}

// Yunxiao is how to reach and authenticate to the Flow API.
type Yunxiao struct {
	Endpoint       string              `yaml:"endpoint"`
	Edition        string              `yaml:"edition"`
	OrganizationID string              `yaml:"organization_id"`
	Token          commoncfg.Secret    `yaml:"token"`
	TokenFile      string              `yaml:"token_file"`
	Timeout        model.Duration      `yaml:"timeout"`
	MaxConcurrency int                 `yaml:"max_concurrency"`
	RateLimit      float64             `yaml:"rate_limit"`
	Burst          int                 `yaml:"burst"`
	TLSConfig      commoncfg.TLSConfig `yaml:"tls_config"`
	ProxyURL       commoncfg.URL       `yaml:"proxy_url"`
	// MaxBodyBytes caps one answer; a larger one fails as too_large
	// rather than being read whole.
	MaxBodyBytes int64 `yaml:"max_body_bytes"`
}

// Pipeline is one pipeline to watch. Name, when set, replaces the name
// GetPipeline would give.
type Pipeline struct {
	ID         int64  `yaml:"id"`
	Name       string `yaml:"name"`
	RunHistory *bool  `yaml:"run_history"` // nil: the global run_history
	// Labels are extra labels of yunxiao_pipeline_info; they win over
	// discovery.labels rules for the same name.
	Labels map[string]string `yaml:"labels,omitempty"`
	// Deploy marks the pipeline as a deployment; nil leaves it to the
	// discovery.labels rules (false when none says).
	Deploy *bool `yaml:"deploy,omitempty"`
}

// HistoryEnabled reports whether run history is counted for p under c.
func (c *Config) HistoryEnabled(p Pipeline) bool {
	if p.RunHistory != nil {
		return *p.RunHistory
	}
	return c.RunHistory
}

// Discovery adds the organization's pipelines found by ListPipelines to
// the configured ones.
type Discovery struct {
	Enabled         bool           `yaml:"enabled"`
	RefreshInterval model.Duration `yaml:"refresh_interval"`
	// Include and Exclude filter on the pipeline name; anchored RE2.
	// Empty include means every pipeline.
	Include []Regexp `yaml:"include"`
	Exclude []Regexp `yaml:"exclude"`
	// Labels are rules that give extra labels (and the deploy flag) by
	// name to every watched pipeline, configured or discovered, in order:
	// a later rule wins over an earlier one. They apply even when
	// discovery is not enabled.
	Labels []LabelRule `yaml:"labels,omitempty"`
}

// DefaultDiscoveryInterval is how often discovery lists pipelines.
const DefaultDiscoveryInterval = 10 * time.Minute

// UnmarshalYAML applies defaults before decoding.
func (d *Discovery) UnmarshalYAML(unmarshal func(any) error) error {
	*d = Discovery{RefreshInterval: model.Duration(DefaultDiscoveryInterval)}
	type plain Discovery
	return unmarshal((*plain)(d))
}

// Selects reports whether a discovered pipeline's name passes the filters.
func (d *Discovery) Selects(name string) bool {
	included := len(d.Include) == 0
	for _, re := range d.Include {
		included = included || re.MatchString(name)
	}
	if !included {
		return false
	}
	for _, re := range d.Exclude {
		if re.MatchString(name) {
			return false
		}
	}
	return true
}

// Regexp is an anchored regular expression in the config, as in
// Prometheus' relabelling: it must match the whole name.
type Regexp struct {
	*regexp.Regexp
	original string
}

// UnmarshalYAML compiles the expression, anchored.
func (r *Regexp) UnmarshalYAML(unmarshal func(any) error) error {
	var s string
	if err := unmarshal(&s); err != nil {
		return err
	}
	re, err := regexp.Compile("^(?:" + s + ")$")
	if err != nil {
		return fmt.Errorf("invalid regular expression %q: %s", s, strings.TrimPrefix(err.Error(), "error parsing regexp: "))
	}
	r.Regexp, r.original = re, s
	return nil
}

// MarshalYAML prints the expression as written.
func (r Regexp) MarshalYAML() (any, error) { return r.original, nil }

// Default returns a Config holding every default.
func Default() Config {
	return Config{Yunxiao: defaultYunxiao(), CacheTTL: model.Duration(DefaultCacheTTL),
		Discovery: Discovery{RefreshInterval: model.Duration(DefaultDiscoveryInterval)}}
}

func defaultYunxiao() Yunxiao {
	return Yunxiao{
		Endpoint:       DefaultEndpoint,
		Edition:        DefaultEdition,
		Timeout:        model.Duration(DefaultTimeout),
		MaxConcurrency: DefaultMaxConcurrency,
		RateLimit:      DefaultRateLimit,
		Burst:          DefaultBurst,
		MaxBodyBytes:   DefaultMaxBodyBytes,
	}
}

// UnmarshalYAML applies defaults before decoding. It uses the decoder's
// own callback so that unknown keys stay errors.
func (c *Config) UnmarshalYAML(unmarshal func(any) error) error {
	*c = Default()
	type plain Config
	return unmarshal((*plain)(c))
}

// UnmarshalYAML applies defaults before decoding.
func (y *Yunxiao) UnmarshalYAML(unmarshal func(any) error) error {
	*y = defaultYunxiao()
	type plain Yunxiao
	return unmarshal((*plain)(y))
}

// String returns the config as YAML, an inline token shown as <secret>.
// Without it fmt's %v would print every field, the resolved token too.
func (c Config) String() string { return marshalString(c) }

// GoString keeps %#v as discreet as %v.
func (c Config) GoString() string { return c.String() }

// String returns the section as YAML, an inline token shown as <secret>.
func (y Yunxiao) String() string { return marshalString(y) }

// GoString keeps %#v as discreet as %v.
func (y Yunxiao) GoString() string { return y.String() }

func marshalString(v any) string {
	b, err := yaml.Marshal(v)
	if err != nil {
		return "<config: " + err.Error() + ">"
	}
	return string(b)
}

// Token returns the resolved API token.
func (c *Config) Token() string { return c.token }

// Webhook enables the receiver of Flow's webhook notifications at
// /webhook/flow?token=<secret>; without a token it is off.
type Webhook struct {
	Token     commoncfg.Secret `yaml:"token"`
	TokenFile string           `yaml:"token_file"`
}

// WebhookToken returns the webhook's secret, or "" when the webhook is off.
func (c *Config) WebhookToken() string {
	if c == nil {
		return ""
	}
	return c.webhookToken
}

// PipelineIDs returns the configured pipeline ids in file order.
func (c *Config) PipelineIDs() []int64 {
	ids := make([]int64, len(c.Pipelines))
	for i, p := range c.Pipelines {
		ids[i] = p.ID
	}
	return ids
}

// ClientOptions returns what the API client needs.
func (c *Config) ClientOptions() yunxiao.Options {
	opts := yunxiao.Options{
		Endpoint:       c.Yunxiao.Endpoint,
		Edition:        yunxiao.Edition(c.Yunxiao.Edition),
		OrganizationID: c.Yunxiao.OrganizationID,
		Token:          c.token,
		Timeout:        time.Duration(c.Yunxiao.Timeout),
		MaxConcurrency: c.Yunxiao.MaxConcurrency,
		RateLimit:      c.Yunxiao.RateLimit,
		Burst:          c.Yunxiao.Burst,
		TLSConfig:      c.tls,
		MaxBodyBytes:   c.Yunxiao.MaxBodyBytes,
		MaxRetries:     yunxiao.DefaultMaxRetries,
	}
	if c.Yunxiao.ProxyURL.URL != nil {
		opts.ProxyURL = c.Yunxiao.ProxyURL.URL
	}
	return opts
}

// fieldError is a problem with one key; Load adds file and line.
type fieldError struct {
	path string // e.g. yunxiao.edition, pipelines[2].id
	msg  string
}

// validate checks what the schema cannot; it reports every problem.
func (c *Config) validate() []fieldError {
	var errs []fieldError
	add := func(path, format string, args ...any) {
		errs = append(errs, fieldError{path, fmt.Sprintf(format, args...)})
	}
	y := &c.Yunxiao
	if u, err := url.Parse(y.Endpoint); err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		add("yunxiao.endpoint", "must be an absolute http(s) URL, not %q", y.Endpoint)
	} else if u.RawQuery != "" || u.Fragment != "" || u.User != nil {
		add("yunxiao.endpoint", "must not carry a query, fragment or user info")
	}
	switch yunxiao.Edition(y.Edition) {
	case yunxiao.EditionCentral:
		if strings.TrimSpace(y.OrganizationID) == "" {
			add("yunxiao.organization_id", "is required when edition is central")
		}
	case yunxiao.EditionRegion:
		if y.OrganizationID != "" {
			c.Warnings = append(c.Warnings, "yunxiao.organization_id is ignored when edition is region")
		}
	default:
		add("yunxiao.edition", "must be central or region, not %q", y.Edition)
	}
	if y.Token != "" && y.TokenFile != "" {
		add("yunxiao.token_file", "set either token or token_file, not both")
	}
	if y.Timeout <= 0 {
		add("yunxiao.timeout", "must be positive, not %s", y.Timeout)
	}
	if y.MaxConcurrency < 1 {
		add("yunxiao.max_concurrency", "must be at least 1, not %d", y.MaxConcurrency)
	}
	if y.RateLimit < 0 || math.IsNaN(y.RateLimit) || math.IsInf(y.RateLimit, 0) {
		add("yunxiao.rate_limit", "must be 0 (unlimited) or positive, not %g", y.RateLimit)
	}
	if y.RateLimit > 0 && y.Burst < 1 {
		add("yunxiao.burst", "must be at least 1 when rate_limit is set, not %d", y.Burst)
	}
	if u := y.ProxyURL.URL; u != nil && (u.Scheme == "" || u.Host == "") {
		add("yunxiao.proxy_url", "must be an absolute URL such as http://proxy:3128")
	}
	switch {
	case y.MaxBodyBytes < 1:
		add("yunxiao.max_body_bytes", "must be positive, not %d", y.MaxBodyBytes)
	case y.MaxBodyBytes > MaxMaxBodyBytes:
		add("yunxiao.max_body_bytes", "must be at most %d (1 GiB), not %d", MaxMaxBodyBytes, y.MaxBodyBytes)
	}
	if c.CacheTTL <= 0 {
		add("cache_ttl", "must be positive, not %s", c.CacheTTL)
	}
	if len(c.Pipelines) == 0 && !c.Discovery.Enabled {
		add("pipelines", "list at least one pipeline, or enable discovery")
	}
	if c.Discovery.Enabled && c.Discovery.RefreshInterval <= 0 {
		add("discovery.refresh_interval", "must be positive, not %s", c.Discovery.RefreshInterval)
	}
	seen := map[int64]int{}
	for i, p := range c.Pipelines {
		path := fmt.Sprintf("pipelines[%d]", i)
		if p.ID <= 0 {
			add(path+".id", "must be a positive pipeline id, not %d", p.ID)
			continue
		}
		if first, dup := seen[p.ID]; dup {
			add(path+".id", "duplicate pipeline id %d (also pipelines[%d])", p.ID, first)
			continue
		}
		seen[p.ID] = i
	}
	errs = append(errs, c.validateLabels()...)
	return errs
}
