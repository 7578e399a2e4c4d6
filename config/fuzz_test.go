package config

import (
	"math"
	"net/url"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"
	"unicode/utf8"
)

// goTypeInError catches an error that names a Go type instead of a kind of
// value ("cannot unmarshal !!str `x` into config.plain").
var goTypeInError = regexp.MustCompile("cannot unmarshal \\S+( `[^`]*`)? into ")

// FuzzLoad feeds arbitrary bytes to Load. It must never panic; an error
// must name the file and no Go type; a config it returns must satisfy
// every rule validate enforces.
//
// The seeds are every testdata file, the committed corpus in
// testdata/fuzz/FuzzLoad, and a few written here.
func FuzzLoad(f *testing.F) {
	files, err := filepath.Glob("testdata/*.yml")
	if err != nil {
		f.Fatal(err)
	}
	for _, file := range files {
		data, err := os.ReadFile(file)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(data)
	}
	for _, s := range []string{
		"",
		"~",
		"---\n---\n",
		"[]",
		"yunxiao: {token: t, organization_id: o}\npipelines: [{id: 1}]\n",
		"yunxiao: {token: t, edition: region, timeout: 1ms, rate_limit: 1e300, burst: 1}\ncache_ttl: 1ms\npipelines: [{id: 9223372036854775807}]\n",
		"yunxiao: &y {token: t, organization_id: o}\npipelines: [{id: 1}, {id: 1}]\nx: *y\n",
		"base: &b {id: 1}\npipelines: [*b, {<<: *b, name: n}]\n",
		"yunxiao:\n  token: t\n  organization_id: o\n  proxy_url: 'http://u:p@[::1]:3128/'\n  tls_config: {min_version: TLS13, max_version: TLS12}\npipelines:\n- id: 0x10\n- id: 0o20\n",
		"yunxiao:\n  token: \"t\\u0000\"\n  organization_id: o\ncache_ttl: 1y2w3d4h5m6s7ms\npipelines: [{id: 1}]\n",
		"pipelines: [{id: 1}]\nyunxiao: !!map {token: !!str 1, organization_id: !!binary b2s=}\n",
		"yunxiao: {token: t, organization_id: o}\ndiscovery:\n  labels:\n  - {match: \"a.*\", labels: {team: a}, deploy: true}\n  - {match: \".*\", deploy: false}\npipelines: [{id: 1, name: ab, labels: {env: prod, team: b}, deploy: true}, {id: 2}]\n",
		"yunxiao: {token: t, organization_id: o}\npipelines: [{id: 1, labels: {a: x, b: x, c: x, d: x, e: x, f: x, g: x, h: x, i: x, j: x}}, {id: 2, labels: {k: !!binary /w==}}]\n",
		"yunxiao: {token: t, organization_id: o}\ndiscovery: {labels: [{match: \"(\", labels: {__x: \"\", job: ~, 9: 1}}]}\npipelines: [{id: 1, deploy: 1}]\n",
	} {
		f.Add([]byte(s))
	}

	f.Fuzz(checkLoad)
}

// checkLoad is FuzzLoad's body: Load data and check what comes back.
func checkLoad(t *testing.T, data []byte) {
	// In testdata, so the seeds' relative token.txt and ca.pem resolve.
	const path = "testdata/fuzz.yml"
	cfg, err := Load(data, path, LoadOptions{Getenv: env("pt-fuzz")})
	if err != nil {
		if cfg != nil {
			t.Errorf("a config with the error %q", err)
		}
		msg := err.Error()
		for _, line := range strings.Split(msg, "\n") {
			if !strings.HasPrefix(line, path+":") {
				t.Errorf("error line does not start with the file name: %q", line)
			}
		}
		if !utf8.ValidString(msg) {
			t.Errorf("error is not valid UTF-8: %q", msg)
		}
		if goTypeInError.MatchString(msg) {
			t.Errorf("error names a Go type: %q", msg)
		}
		return
	}
	checkInvariants(t, cfg)
}

// checkInvariants fails t if cfg breaks a rule that Load promises.
func checkInvariants(t *testing.T, cfg *Config) {
	t.Helper()
	y := cfg.Yunxiao
	if u, err := url.Parse(y.Endpoint); err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		t.Errorf("endpoint %q is not an absolute http(s) URL", y.Endpoint)
	}
	switch y.Edition {
	case "central":
		if strings.TrimSpace(y.OrganizationID) == "" {
			t.Errorf("central edition without organization_id")
		}
	case "region":
	default:
		t.Errorf("edition %q", y.Edition)
	}
	if y.Timeout <= 0 {
		t.Errorf("timeout %v", y.Timeout)
	}
	if cfg.CacheTTL <= 0 {
		t.Errorf("cache_ttl %v", cfg.CacheTTL)
	}
	if y.MaxConcurrency < 1 {
		t.Errorf("max_concurrency %d", y.MaxConcurrency)
	}
	if y.RateLimit < 0 || math.IsNaN(y.RateLimit) || math.IsInf(y.RateLimit, 0) {
		t.Errorf("rate_limit %g", y.RateLimit)
	}
	if y.RateLimit > 0 && y.Burst < 1 {
		t.Errorf("burst %d with rate_limit %g", y.Burst, y.RateLimit)
	}
	if y.MaxBodyBytes < 1 || y.MaxBodyBytes > MaxMaxBodyBytes {
		t.Errorf("max_body_bytes %d", y.MaxBodyBytes)
	}
	if len(cfg.Pipelines) == 0 && !cfg.Discovery.Enabled {
		t.Errorf("no pipelines and no discovery")
	}
	if cfg.Discovery.Enabled && cfg.Discovery.RefreshInterval <= 0 {
		t.Errorf("discovery refresh_interval %s", cfg.Discovery.RefreshInterval)
	}
	seen := map[int64]bool{}
	for _, p := range cfg.Pipelines {
		if p.ID <= 0 {
			t.Errorf("pipeline id %d", p.ID)
		}
		if seen[p.ID] {
			t.Errorf("pipeline id %d twice", p.ID)
		}
		seen[p.ID] = true
	}
	tok := cfg.Token()
	if tok == "" || tok != strings.TrimSpace(tok) || strings.ContainsAny(tok, "\r\n\x00") {
		t.Errorf("token %q", tok)
	}
	if y.Token != "" && y.TokenFile != "" {
		t.Errorf("both token and token_file")
	}
	opts := cfg.ClientOptions()
	if opts.TLSConfig == nil {
		t.Errorf("no TLS config")
	}
	if opts.Token != tok || opts.Timeout <= 0 || opts.MaxConcurrency < 1 || opts.MaxBodyBytes != y.MaxBodyBytes {
		t.Errorf("ClientOptions %+v", opts)
	}
	checkLabelInvariants(t, cfg)
	_ = cfg.String()
	_ = cfg.PipelineIDs()
}

// checkLabelInvariants fails t if cfg's extra labels break a rule of Load.
func checkLabelInvariants(t *testing.T, cfg *Config) {
	t.Helper()
	checkMap := func(what string, labels map[string]string) {
		if len(labels) > MaxExtraLabels {
			t.Errorf("%s: %d labels", what, len(labels))
		}
		for n, v := range labels {
			if why := checkLabelName(n); why != "" || !labelNameRE.MatchString(n) || strings.HasPrefix(n, "__") || reservedLabels[n] {
				t.Errorf("%s: label name %q", what, n)
			}
			if v == "" || len(v) > MaxLabelValueBytes || !utf8.ValidString(v) {
				t.Errorf("%s: label %s value %q", what, n, v)
			}
		}
	}
	for i, r := range cfg.Discovery.Labels {
		if r.Match.Regexp == nil {
			t.Errorf("discovery.labels[%d] without match", i)
		}
		if len(r.Labels) == 0 && r.Deploy == nil {
			t.Errorf("discovery.labels[%d] sets nothing", i)
		}
		checkMap("a rule", r.Labels)
	}
	for _, p := range cfg.Pipelines {
		checkMap("a pipeline", p.Labels)
	}
	names := cfg.LabelNames()
	if len(names) > MaxExtraLabels || !slices.IsSorted(names) {
		t.Errorf("LabelNames() = %q", names)
	}
	meta := func(id int64, name string) {
		labels, _ := cfg.PipelineMeta(id, name)
		if labels == nil {
			t.Errorf("PipelineMeta(%d, %q) gives a nil map", id, name)
		}
		for n := range labels {
			if !slices.Contains(names, n) {
				t.Errorf("PipelineMeta(%d, %q) gives %q, not in LabelNames() %q", id, name, n, names)
			}
		}
	}
	for _, p := range cfg.Pipelines {
		meta(p.ID, "")
		meta(p.ID, p.Name)
		meta(p.ID, "payments-deploy")
	}
	meta(-1, "payments-deploy")
}
