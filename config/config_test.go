package config

import (
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"reflect"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
	"go.yaml.in/yaml/v3"
)

// Distinctive tokens: no error, warning or printout may ever contain one.
const (
	fileToken   = "pt-FILE-TOKEN-c0ffee5ecret" // testdata/token.txt, with whitespace around it
	inlineToken = "pt-INLINE-TOKEN-d3adb33f"   // inline in some testdata files
	envToken    = "pt-ENV-TOKEN-5ca1ab1e"      // what the fake environment holds
)

// assertNoToken fails the test if s shows any of the test tokens.
func assertNoToken(t *testing.T, what, s string) {
	t.Helper()
	for _, tok := range []string{fileToken, inlineToken, envToken} {
		if strings.Contains(s, tok) {
			t.Errorf("%s reveals the token %q:\n%s", what, tok, s)
		}
	}
}

// checkErr asserts err's text is exactly want and shows no token.
func checkErr(t *testing.T, err error, want string) {
	t.Helper()
	if err == nil {
		t.Fatalf("no error; want:\n%s", want)
	}
	assertNoToken(t, "error", err.Error())
	if err.Error() != want {
		t.Errorf("wrong error:\n got: %s\nwant: %s", err, want)
	}
}

// checkWarnings asserts cfg's warnings are exactly want and show no token.
func checkWarnings(t *testing.T, cfg *Config, want ...string) {
	t.Helper()
	for _, w := range cfg.Warnings {
		assertNoToken(t, "warning", w)
	}
	if len(cfg.Warnings) != len(want) || (len(want) > 0 && !reflect.DeepEqual(cfg.Warnings, want)) {
		t.Errorf("warnings:\n got: %q\nwant: %q", cfg.Warnings, want)
	}
}

func noEnv(string) string { return "" }

// env fakes an environment holding YUNXIAO_TOKEN=token.
func env(token string) func(string) string {
	return func(name string) string {
		if name == TokenEnv {
			return token
		}
		return ""
	}
}

func TestLoadInvalid(t *testing.T) {
	cases := []struct {
		file string
		want string
	}{
		// Keys the schema does not know.
		{"invalid-unknown-key.yml", `testdata/invalid-unknown-key.yml:4: scrape_interval: unknown key`},
		{"invalid-webhook-short.yml", `testdata/invalid-webhook-short.yml:7: webhook.token: the webhook token must be at least 16 characters (it is the only thing that authenticates Flow's calls)`},
		{"invalid-webhook-both.yml", `testdata/invalid-webhook-both.yml:8: webhook.token_file: set either token or token_file, not both`},
		{"invalid-webhook-chars.yml", `testdata/invalid-webhook-chars.yml:7: webhook.token: the webhook token may contain only letters, digits and - . _ ~ (it is sent in a URL query)`},
		{"invalid-webhook-file-missing.yml", `testdata/invalid-webhook-file-missing.yml:7: webhook.token_file: cannot read testdata/no-such-webhook-token: no such file or directory`},
		{"invalid-unknown-yunxiao-key.yml", `testdata/invalid-unknown-yunxiao-key.yml:4: yunxiao.foo: unknown key`},
		{"invalid-unknown-pipeline-key.yml", `testdata/invalid-unknown-pipeline-key.yml:8: pipelines[1].nmae: unknown key`},

		// Values of the wrong kind: the message names the kind, never a Go type.
		{"invalid-type.yml", "testdata/invalid-type.yml:4: yunxiao.max_concurrency: cannot unmarshal !!str `eight` as an integer"},
		{"invalid-max-body-bytes-type.yml", "testdata/invalid-max-body-bytes-type.yml:4: yunxiao.max_body_bytes: cannot unmarshal !!str `4MiB` as an integer"},
		{"invalid-pipeline-id-type.yml", "testdata/invalid-pipeline-id-type.yml:5: pipelines[0].id: cannot unmarshal !!str `backend...` as an integer"},
		{"invalid-yunxiao-not-mapping.yml", "testdata/invalid-yunxiao-not-mapping.yml:1: yunxiao: cannot unmarshal !!str `https:/...` as a mapping of keys"},
		{"invalid-pipelines-not-list.yml", "testdata/invalid-pipelines-not-list.yml:4: pipelines: cannot unmarshal !!int `123` as a list"},
		{"invalid-duration.yml", `testdata/invalid-duration.yml:4: cache_ttl: must be a duration such as 30s or 5m, not "30 seconds"`},
		{"invalid-timeout-negative.yml", `testdata/invalid-timeout-negative.yml:4: yunxiao.timeout: must be positive, not -5s`},
		{"invalid-proxy-url.yml", `testdata/invalid-proxy-url.yml:4: yunxiao.proxy_url: not a valid URL: missing ']' in host`},

		// Values out of range.
		{"invalid-endpoint.yml", `testdata/invalid-endpoint.yml:2: yunxiao.endpoint: must be an absolute http(s) URL, not "openapi-rdc.aliyuncs.com"`},
		{"invalid-edition.yml", `testdata/invalid-edition.yml:3: yunxiao.edition: must be central or region, not "centrall"`},
		{"invalid-central-no-organization.yml", `testdata/invalid-central-no-organization.yml:1: yunxiao.organization_id: is required when edition is central`},
		{"invalid-timeout-zero.yml", `testdata/invalid-timeout-zero.yml:4: yunxiao.timeout: must be positive, not 0s`},
		{"invalid-max-concurrency.yml", `testdata/invalid-max-concurrency.yml:4: yunxiao.max_concurrency: must be at least 1, not 0`},
		{"invalid-rate-limit.yml", `testdata/invalid-rate-limit.yml:4: yunxiao.rate_limit: must be 0 (unlimited) or positive, not -1`},
		{"invalid-burst.yml", `testdata/invalid-burst.yml:5: yunxiao.burst: must be at least 1 when rate_limit is set, not 0`},
		{"invalid-max-body-bytes-zero.yml", `testdata/invalid-max-body-bytes-zero.yml:4: yunxiao.max_body_bytes: must be positive, not 0`},
		{"invalid-max-body-bytes-too-large.yml", `testdata/invalid-max-body-bytes-too-large.yml:5: yunxiao.max_body_bytes: must be at most 1073741824 (1 GiB), not 1073741825`},
		{"invalid-cache-ttl.yml", `testdata/invalid-cache-ttl.yml:4: cache_ttl: must be positive, not 0s`},
		{"invalid-no-pipelines.yml", `testdata/invalid-no-pipelines.yml: pipelines: list at least one pipeline, or enable discovery`},
		{"invalid-empty-pipelines.yml", `testdata/invalid-empty-pipelines.yml:4: pipelines: list at least one pipeline, or enable discovery`},
		{"invalid-pipeline-id.yml", `testdata/invalid-pipeline-id.yml:6: pipelines[1].id: must be a positive pipeline id, not 0`},
		{"invalid-duplicate-pipeline.yml", `testdata/invalid-duplicate-pipeline.yml:8: pipelines[2].id: duplicate pipeline id 10 (also pipelines[0])`},

		// Discovery.
		{"invalid-discovery-regexp.yml", "testdata/invalid-discovery-regexp.yml:8: discovery.include[1]: invalid regular expression \"backend-(\": missing closing ): `^(?:backend-()$`"},
		{"invalid-discovery-interval.yml", `testdata/invalid-discovery-interval.yml:6: discovery.refresh_interval: must be positive, not 0s`},

		// Extra labels and the deploy flag.
		{"invalid-label-name.yml", `testdata/invalid-label-name.yml:8: pipelines[0].labels.9team: "9team" is not a valid label name (letters, digits and _, not starting with a digit)`},
		{"invalid-label-reserved.yml", `testdata/invalid-label-reserved.yml:8: pipelines[0].labels.job: "job" is reserved`},
		{"invalid-label-dunder.yml", `testdata/invalid-label-dunder.yml:7: discovery.labels[0].labels.__x: "__x" is reserved: names starting with __ are for Prometheus' own use`},
		{"invalid-labels-too-many.yml", `testdata/invalid-labels-too-many.yml:6: pipelines[0].labels: 11 labels, at most 10 (each is a label of yunxiao_pipeline_info)`},
		{"invalid-labels-too-many-rule.yml", `testdata/invalid-labels-too-many-rule.yml:8: discovery.labels[0].labels: 11 labels, at most 10 (each is a label of yunxiao_pipeline_info)`},
		{"invalid-labels-too-many-total.yml", `testdata/invalid-labels-too-many-total.yml:16: pipelines[1].labels.zone: one label name too many: pipelines[].labels and discovery.labels together may name at most 10, each a label of yunxiao_pipeline_info (already cost_center, domain, env, owner, product, region, service, squad, team, tier)`},
		{"invalid-label-value-too-long.yml", `testdata/invalid-label-value-too-long.yml:8: pipelines[0].labels.note: value is 129 bytes, at most 128`},
		{"invalid-label-value-utf8.yml", `testdata/invalid-label-value-utf8.yml:7: pipelines[0].labels.team: value is not valid UTF-8`},
		{"invalid-label-value-empty.yml", `testdata/invalid-label-value-empty.yml:7: pipelines[0].labels.team: empty value: give one, or remove the label`},
		{"invalid-label-rule-regexp.yml", "testdata/invalid-label-rule-regexp.yml:8: discovery.labels[1].match: invalid regular expression \"payments-(\": missing closing ): `^(?:payments-()$`"},
		{"invalid-label-rule-no-match.yml", `testdata/invalid-label-rule-no-match.yml:6: discovery.labels[0].match: is required: an anchored regular expression on the pipeline name`},
		{"invalid-label-rule-empty.yml", `testdata/invalid-label-rule-empty.yml:6: discovery.labels[0]: sets neither labels nor deploy`},
		{"invalid-label-rule-unknown-key.yml", `testdata/invalid-label-rule-unknown-key.yml:7: discovery.labels[0].lables: unknown key`},
		{"invalid-labels-not-mapping.yml", "testdata/invalid-labels-not-mapping.yml:6: pipelines[0].labels: cannot unmarshal !!seq as a mapping of keys"},
		{"invalid-deploy-type.yml", "testdata/invalid-deploy-type.yml:6: pipelines[0].deploy: cannot unmarshal !!str `maybe` as true or false"},

		// The token.
		{"invalid-token-and-token-file.yml", `testdata/invalid-token-and-token-file.yml:4: yunxiao.token_file: set either token or token_file, not both`},
		{"invalid-token-file-missing.yml", `testdata/invalid-token-file-missing.yml:3: yunxiao.token_file: cannot read testdata/no-such-token.txt: no such file or directory`},
		{"invalid-token-file-empty.yml", `testdata/invalid-token-file-empty.yml:3: yunxiao.token_file: testdata/token-empty.txt is empty`},
		{"invalid-no-token.yml", `testdata/invalid-no-token.yml:1: yunxiao: no token: set yunxiao.token_file, yunxiao.token or the environment variable YUNXIAO_TOKEN`},

		// TLS.
		{"invalid-tls-ca-missing.yml", `testdata/invalid-tls-ca-missing.yml:5: yunxiao.tls_config.ca_file: cannot read testdata/no-such-ca.pem: no such file or directory`},

		// Not YAML, or nothing at all.
		{"invalid-yaml-syntax.yml", `testdata/invalid-yaml-syntax.yml:3: invalid YAML: did not find expected key`},
		{"invalid-empty.yml", `testdata/invalid-empty.yml: the file is empty`},
	}

	// Every invalid-*.yml has a case, so none is left unchecked.
	files, err := filepath.Glob("testdata/invalid-*.yml")
	if err != nil {
		t.Fatal(err)
	}
	var named []string
	for _, c := range cases {
		named = append(named, filepath.Join("testdata", c.file))
	}
	sort.Strings(named)
	if !reflect.DeepEqual(files, named) {
		t.Errorf("testdata/invalid-*.yml and the cases differ:\nfiles: %q\ncases: %q", files, named)
	}

	for _, c := range cases {
		t.Run(c.file, func(t *testing.T) {
			cfg, err := LoadFile(filepath.Join("testdata", c.file), LoadOptions{Getenv: noEnv})
			if cfg != nil {
				t.Errorf("got a config with the error")
			}
			checkErr(t, err, c.want)
		})
	}
}

// TestLoadErrors covers what is easier to show inline than in a file:
// several errors at once, and values in unusual places.
func TestLoadErrors(t *testing.T) {
	cases := []struct {
		name string
		yml  string
		env  string
		want string
	}{
		{
			name: "every problem is reported, in line order",
			yml:  "yunxiao:\n  edition: cloud\n  timeout: 0s\n  max_concurrency: -1\n  rate_limit: -2\ncache_ttl: 0s\npipelines:\n  - id: -3\n  - id: 4\n  - id: 4\n",
			want: "x.yml:1: yunxiao: no token: set yunxiao.token_file, yunxiao.token or the environment variable YUNXIAO_TOKEN\n" +
				"x.yml:2: yunxiao.edition: must be central or region, not \"cloud\"\n" +
				"x.yml:3: yunxiao.timeout: must be positive, not 0s\n" +
				"x.yml:4: yunxiao.max_concurrency: must be at least 1, not -1\n" +
				"x.yml:5: yunxiao.rate_limit: must be 0 (unlimited) or positive, not -2\n" +
				"x.yml:6: cache_ttl: must be positive, not 0s\n" +
				"x.yml:8: pipelines[0].id: must be a positive pipeline id, not -3\n" +
				"x.yml:10: pipelines[2].id: duplicate pipeline id 4 (also pipelines[1])",
		},
		{
			name: "several type errors",
			yml:  "yunxiao:\n  burst: many\n  rate_limit: fast\n  tls_config:\n    insecure_skip_verify: maybe\npipelines:\n  - id: 1\n    name: [a]\n",
			want: "x.yml:2: yunxiao.burst: cannot unmarshal !!str `many` as an integer\n" +
				"x.yml:3: yunxiao.rate_limit: cannot unmarshal !!str `fast` as a number\n" +
				"x.yml:5: yunxiao.tls_config.insecure_skip_verify: cannot unmarshal !!str `maybe` as true or false\n" +
				"x.yml:8: pipelines[0].name: cannot unmarshal !!seq as a string",
		},
		{
			name: "flow style: the key is told by its value",
			yml:  "yunxiao: {token: [x], organization_id: o}\npipelines: [{id: 1}]\n",
			want: "x.yml:1: yunxiao.token: cannot unmarshal !!seq as a string",
		},
		{
			name: "duration in flow style",
			yml:  "yunxiao: {token: x, organization_id: o, timeout: 1x}\npipelines: [{id: 1}]\n",
			want: `x.yml:1: yunxiao.timeout: must be a duration such as 30s or 5m, not "1x"`,
		},
		{
			name: "duration as a bare number",
			yml:  "yunxiao: {token: x, organization_id: o}\ncache_ttl: 30\npipelines: [{id: 1}]\n",
			want: `x.yml:2: cache_ttl: must be a duration such as 30s or 5m, not "30"`,
		},
		{
			name: "duration as a list",
			yml:  "yunxiao: {token: x, organization_id: o}\ncache_ttl: [30s]\npipelines: [{id: 1}]\n",
			want: `x.yml:2: cache_ttl: cannot unmarshal !!seq as a duration such as 30s or 5m`,
		},
		{
			name: "pipeline not a mapping",
			yml:  "yunxiao: {token: x, organization_id: o}\npipelines:\n  - 123\n",
			want: "x.yml:3: pipelines[0]: cannot unmarshal !!int `123` as a mapping of keys",
		},
		{
			name: "tls_config not a mapping",
			yml:  "yunxiao:\n  token: x\n  organization_id: o\n  tls_config: yes\npipelines: [{id: 1}]\n",
			want: "x.yml:4: yunxiao.tls_config: cannot unmarshal !!str `yes` as a mapping of keys",
		},
		{
			name: "the file is not a mapping",
			yml:  "pipelines\n",
			want: "x.yml:1: cannot unmarshal !!str `pipelines` as a mapping of keys",
		},
		{
			name: "only comments",
			yml:  "# nothing yet\n",
			want: "x.yml: the file is empty",
		},
		{
			name: "a tab for indentation",
			yml:  "yunxiao:\n\ttoken: x\n",
			want: "x.yml:2: invalid YAML: found character that cannot start any token",
		},
		{
			name: "unknown TLS version",
			yml:  "yunxiao:\n  token: x\n  organization_id: o\n  tls_config:\n    min_version: TLS99\npipelines: [{id: 1}]\n",
			want: "x.yml:5: yunxiao.tls_config.min_version: unknown TLS version: TLS99",
		},
		{
			name: "TLS key without certificate",
			yml:  "yunxiao:\n  token: x\n  organization_id: o\n  tls_config:\n    key_file: key.pem\npipelines: [{id: 1}]\n",
			want: "x.yml:4: yunxiao.tls_config: exactly one of cert or cert_file must be configured when a client key is configured",
		},
		{
			name: "TLS CA file that is not PEM",
			yml:  "yunxiao:\n  token: x\n  organization_id: o\n  tls_config:\n    ca_file: testdata/token.txt\npipelines: [{id: 1}]\n",
			want: "x.yml:4: yunxiao.tls_config: unable to use specified CA cert file testdata/token.txt",
		},
		{
			name: "a list nested where a string belongs",
			yml:  "yunxiao: {token: t, organization_id: o}\npipelines: [{id: 1, name: [[[x]]]}]\n",
			want: "x.yml:2: pipelines[0].name: cannot unmarshal !!seq as a string",
		},
		{
			name: "long non-ASCII value is cut between characters",
			yml:  "yunxiao: {token: t, organization_id: o, max_concurrency: \"éééééééééééé\"}\npipelines: [{id: 1}]\n",
			want: "x.yml:1: yunxiao.max_concurrency: cannot unmarshal !!str `ééééééé...` as an integer",
		},
		{
			name: "a value with a line break stays on one line",
			yml:  "yunxiao: {token: t, organization_id: o}\npipelines:\n  - id: \"1\\n2\"\n",
			want: "x.yml:3: pipelines[0].id: cannot unmarshal !!str `1\\n2` as an integer",
		},
		{
			name: "the file is a multi-line string",
			yml:  "one\n\ntwo\n",
			want: "x.yml:1: cannot unmarshal !!str `one\\ntwo` as a mapping of keys",
		},
		{
			name: "unknown key with a space and a line break",
			yml:  "yunxiao: {token: t, organization_id: o}\n\"cache ttl\\n\": 5s\npipelines: [{id: 1}]\n",
			want: "x.yml:2: cache ttl\\n: unknown key",
		},
		{
			name: "an alias to a value of the wrong kind",
			yml:  "base: &b 5\nyunxiao: *b\npipelines: [{id: 1}]\n",
			want: "x.yml:1: base: unknown key\n" +
				"x.yml:1: yunxiao: cannot unmarshal !!int `5` as a mapping of keys",
		},
		{
			name: "a bad duration behind an alias",
			yml:  "base: &b {timeout: 5}\nyunxiao: *b\npipelines: [{id: 1}]\n",
			want: `x.yml:2: yunxiao: not a valid duration string: "5"`,
		},
		{
			name: "a binary key",
			yml:  "yunxiao: {token: t, organization_id: o, !!binary 0000: x}\npipelines: [{id: 1}]\n",
			want: "x.yml:1: \uFFFDM4: unknown key",
		},
		{
			name: "duplicate top-level key",
			yml:  "yunxiao: {token: t, organization_id: o}\npipelines: [{id: 1}]\npipelines: [{id: 2}]\n",
			want: `x.yml:3: pipelines: mapping key "pipelines" already defined at line 2`,
		},
		{
			name: "duplicate key",
			yml:  "yunxiao:\n  token: x\n  organization_id: o\n  token: y\npipelines: [{id: 1}]\n",
			want: `x.yml:4: yunxiao.token: mapping key "token" already defined at line 2`,
		},
		{
			name: "endpoint with user info",
			yml:  "yunxiao:\n  endpoint: https://user:pw@openapi-rdc.aliyuncs.com\n  token: x\n  organization_id: o\npipelines: [{id: 1}]\n",
			want: "x.yml:2: yunxiao.endpoint: must not carry a query, fragment or user info",
		},
		{
			name: "relative proxy URL",
			yml:  "yunxiao:\n  proxy_url: proxy:3128\n  token: x\n  organization_id: o\npipelines: [{id: 1}]\n",
			want: "x.yml:2: yunxiao.proxy_url: must be an absolute URL such as http://proxy:3128",
		},
		{
			name: "max_body_bytes negative",
			yml:  "yunxiao:\n  token: x\n  organization_id: o\n  max_body_bytes: -1\npipelines: [{id: 1}]\n",
			want: "x.yml:4: yunxiao.max_body_bytes: must be positive, not -1",
		},
		{
			// yaml.v3 takes a float with an integer value as that integer.
			name: "max_body_bytes in exponent form, too large",
			yml:  "yunxiao: {token: x, organization_id: o, max_body_bytes: 2e9}\npipelines: [{id: 1}]\n",
			want: "x.yml:1: yunxiao.max_body_bytes: must be at most 1073741824 (1 GiB), not 2000000000",
		},
		{
			name: "max_body_bytes beyond int64",
			yml:  "yunxiao: {token: x, organization_id: o, max_body_bytes: 99999999999999999999}\npipelines: [{id: 1}]\n",
			want: "x.yml:1: yunxiao.max_body_bytes: cannot unmarshal !!float `9999999...` as an integer",
		},
		{
			name: "rate_limit not a number",
			yml:  "yunxiao:\n  token: x\n  organization_id: o\n  rate_limit: .nan\npipelines: [{id: 1}]\n",
			want: "x.yml:4: yunxiao.rate_limit: must be 0 (unlimited) or positive, not NaN",
		},
		{
			name: "rate_limit infinite",
			yml:  "yunxiao:\n  token: x\n  organization_id: o\n  rate_limit: .inf\npipelines: [{id: 1}]\n",
			want: "x.yml:4: yunxiao.rate_limit: must be 0 (unlimited) or positive, not +Inf",
		},
		{
			name: "blank organization_id",
			yml:  "yunxiao:\n  token: x\n  organization_id: \"  \"\npipelines: [{id: 1}]\n",
			want: "x.yml:3: yunxiao.organization_id: is required when edition is central",
		},
		// The token in odd places: the message still never shows it.
		{
			name: "inline token with a line break",
			yml:  "yunxiao:\n  organization_id: o\n  token: \"" + inlineToken + "\\n" + inlineToken + "\"\npipelines: [{id: 1}]\n",
			want: "x.yml:3: yunxiao.token: the token contains a line break or NUL byte",
		},
		{
			name: "env token with a line break",
			yml:  "yunxiao:\n  organization_id: o\npipelines: [{id: 1}]\n",
			env:  envToken + "\n" + envToken,
			want: "x.yml:1: yunxiao: the token in YUNXIAO_TOKEN contains a line break or NUL byte",
		},
		{
			name: "inline token under a misspelt key",
			yml:  "yunxiao:\n  organization_id: o\n  tokne: " + inlineToken + "\npipelines: [{id: 1}]\n",
			want: "x.yml:3: yunxiao.tokne: unknown key",
		},
		{
			name: "inline token as a list",
			yml:  "yunxiao:\n  organization_id: o\n  token: [" + inlineToken + "]\npipelines: [{id: 1}]\n",
			want: "x.yml:3: yunxiao.token: cannot unmarshal !!seq as a string",
		},
		{
			name: "inline token and token_file",
			yml:  "yunxiao:\n  organization_id: o\n  token: " + inlineToken + "\n  token_file: testdata/token.txt\npipelines: [{id: 1}]\n",
			want: "x.yml:4: yunxiao.token_file: set either token or token_file, not both",
		},
		{
			name: "inline token before a syntax error",
			yml:  "yunxiao:\n  token: " + inlineToken + "\n   organization_id: o\n",
			want: "x.yml:3: invalid YAML: mapping values are not allowed in this context",
		},
		{
			name: "inline token in a mapping",
			yml:  "yunxiao:\n  organization_id: o\n  token: {value: " + inlineToken + "}\npipelines: [{id: 1}]\n",
			want: "x.yml:3: yunxiao.token: cannot unmarshal !!map as a string",
		},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			cfg, err := Load([]byte(c.yml), "x.yml", LoadOptions{Getenv: env(c.env)})
			if cfg != nil {
				t.Errorf("got a config with the error")
			}
			checkErr(t, err, c.want)
		})
	}
}

func TestLoadFileMissing(t *testing.T) {
	_, err := LoadFile("testdata/no-such-config.yml", LoadOptions{Getenv: noEnv})
	checkErr(t, err, "testdata/no-such-config.yml: no such file or directory")
}

// resolved is what a test compares of a loaded config.
type resolved struct {
	Endpoint       string
	Edition        string
	OrganizationID string
	Token          string
	Timeout        time.Duration
	MaxConcurrency int
	RateLimit      float64
	Burst          int
	MaxBodyBytes   int64
	CAFile         string
	ServerName     string
	ProxyURL       string
	CacheTTL       time.Duration
	Pipelines      []Pipeline
	LabelRules     []labelRule
}

// labelRule is a LabelRule as a test compares it.
type labelRule struct {
	Match  string
	Labels map[string]string
	Deploy *bool
}

func resolvedOf(cfg *Config) resolved {
	y := cfg.Yunxiao
	r := resolved{
		Endpoint:       y.Endpoint,
		Edition:        y.Edition,
		OrganizationID: y.OrganizationID,
		Token:          cfg.Token(),
		Timeout:        time.Duration(y.Timeout),
		MaxConcurrency: y.MaxConcurrency,
		RateLimit:      y.RateLimit,
		Burst:          y.Burst,
		MaxBodyBytes:   y.MaxBodyBytes,
		CAFile:         y.TLSConfig.CAFile,
		ServerName:     y.TLSConfig.ServerName,
		CacheTTL:       time.Duration(cfg.CacheTTL),
		Pipelines:      cfg.Pipelines,
	}
	for _, lr := range cfg.Discovery.Labels {
		r.LabelRules = append(r.LabelRules, labelRule{lr.Match.original, lr.Labels, lr.Deploy})
	}
	if y.ProxyURL.URL != nil {
		r.ProxyURL = y.ProxyURL.String()
	}
	return r
}

func TestLoadValid(t *testing.T) {
	// The defaults, as SPEC.md documents them.
	defaults := func(r resolved) resolved {
		if r.Endpoint == "" {
			r.Endpoint = "https://openapi-rdc.aliyuncs.com"
		}
		if r.Edition == "" {
			r.Edition = "central"
		}
		if r.Timeout == 0 {
			r.Timeout = 10 * time.Second
		}
		if r.MaxConcurrency == 0 {
			r.MaxConcurrency = 8
		}
		if r.RateLimit == 0 {
			r.RateLimit = 20
		}
		if r.Burst == 0 {
			r.Burst = 20
		}
		if r.MaxBodyBytes == 0 {
			r.MaxBodyBytes = 4194304
		}
		if r.CacheTTL == 0 {
			r.CacheTTL = 30 * time.Second
		}
		return r
	}
	no, yes := false, true
	cases := []struct {
		file string
		env  string
		want resolved
	}{
		{
			file: "valid-discovery.yml",
			want: defaults(resolved{
				OrganizationID: "60d54f3daccf2bbd6659f3ad",
				Token:          "pt-test",
				Pipelines:      []Pipeline{{ID: 7, Name: "release", RunHistory: &no}},
			}),
		},
		{
			file: "valid-minimal.yml",
			want: defaults(resolved{
				OrganizationID: "60d54f3daccf2bbd6659f3ad",
				Token:          fileToken, // the whitespace around it trimmed
				Pipelines:      []Pipeline{{ID: 123}},
			}),
		},
		{
			file: "valid-minimal.yml",
			env:  envToken, // ignored: the file names a token_file
			want: defaults(resolved{
				OrganizationID: "60d54f3daccf2bbd6659f3ad",
				Token:          fileToken,
				Pipelines:      []Pipeline{{ID: 123}},
			}),
		},
		{
			file: "valid-region.yml",
			want: defaults(resolved{
				Endpoint:  "https://devops.example.internal",
				Edition:   "region",
				Token:     fileToken,
				Pipelines: []Pipeline{{ID: 1}, {ID: 2, Name: "deploy-prod"}},
			}),
		},
		{
			file: "valid-full.yml",
			want: resolved{ // no defaults: every key is set
				Endpoint:       "https://openapi-rdc.example.com/base",
				Edition:        "central",
				OrganizationID: "60d54f3daccf2bbd6659f3ad",
				Token:          fileToken,
				Timeout:        2500 * time.Millisecond,
				MaxConcurrency: 3,
				RateLimit:      0, // explicit 0 (unlimited) is kept, not defaulted
				Burst:          7,
				MaxBodyBytes:   8388608,
				CAFile:         "testdata/ca.pem", // relative to the config file
				ServerName:     "openapi-rdc.aliyuncs.com",
				ProxyURL:       "http://proxy.internal:3128",
				CacheTTL:       2 * time.Minute,
				Pipelines: []Pipeline{
					{ID: 123, Name: "backend-build", Labels: map[string]string{"team": "payments", "env": "prod"}, Deploy: &yes},
					{ID: 456, Name: "frontend-build", Deploy: &no},
					{ID: 9007199254740993},
				},
			},
		},
		{
			file: "valid-labels.yml",
			want: defaults(resolved{
				OrganizationID: "60d54f3daccf2bbd6659f3ad",
				Token:          fileToken,
				Pipelines: []Pipeline{
					{ID: 1, Name: "payments-build"},
					{ID: 2, Name: "payments-deploy", Labels: map[string]string{"team": "checkout", "owner": "张三"}},
					{ID: 3, Name: "payments-sandbox-deploy"},
					{ID: 4, Name: "payments-prod-deploy", Deploy: &no},
					{ID: 5, Labels: map[string]string{"team": "search"}, Deploy: &yes},
					{ID: 6},
				},
				LabelRules: []labelRule{
					{"payments-.*", map[string]string{"team": "payments", "tier": "backend"}, &yes},
					{".*-deploy", map[string]string{"env": "prod"}, nil},
					{"payments-sandbox-deploy", map[string]string{"env": "sandbox"}, &no},
				},
			}),
		},
		{
			file: "valid-inline-token.yml",
			env:  envToken, // ignored: the file holds a token
			want: defaults(resolved{
				OrganizationID: "org-1",
				Token:          inlineToken, // the whitespace around it trimmed
				RateLimit:      2.5,
				Pipelines:      []Pipeline{{ID: 7, Name: "nightly"}},
			}),
		},
		{
			file: "valid-env-token.yml",
			env:  " \t" + envToken + "\n",
			want: defaults(resolved{
				OrganizationID: "org-1",
				Token:          envToken, // the whitespace around it trimmed
				Pipelines:      []Pipeline{{ID: 42}},
			}),
		},
	}

	files, err := filepath.Glob("testdata/valid-*.yml")
	if err != nil {
		t.Fatal(err)
	}
	tested := map[string]bool{}
	for _, c := range cases {
		tested[filepath.Join("testdata", c.file)] = true
	}
	for _, f := range files {
		if !tested[f] {
			t.Errorf("%s has no case", f)
		}
	}

	for _, c := range cases {
		t.Run(c.file, func(t *testing.T) {
			path := filepath.Join("testdata", c.file)
			cfg, err := LoadFile(path, LoadOptions{Getenv: env(c.env)})
			if err != nil {
				assertNoToken(t, "error", err.Error())
				t.Fatal(err)
			}
			if got := resolvedOf(cfg); !reflect.DeepEqual(got, c.want) {
				t.Errorf("resolved config:\n got: %+v\nwant: %+v", got, c.want)
			}
			if cfg.SourceFile != path {
				t.Errorf("SourceFile %q, want %q", cfg.SourceFile, path)
			}
			for _, w := range cfg.Warnings {
				assertNoToken(t, "warning", w)
			}
			// What the API client gets agrees with the config.
			opts := cfg.ClientOptions()
			if opts.Endpoint != c.want.Endpoint || string(opts.Edition) != c.want.Edition || opts.OrganizationID != c.want.OrganizationID ||
				opts.Token != c.want.Token || opts.Timeout != c.want.Timeout || opts.MaxConcurrency != c.want.MaxConcurrency ||
				opts.RateLimit != c.want.RateLimit || opts.Burst != c.want.Burst || opts.MaxBodyBytes != c.want.MaxBodyBytes {
				t.Errorf("ClientOptions %+v disagree with %+v", opts, c.want)
			}
			if opts.TLSConfig == nil {
				t.Errorf("ClientOptions.TLSConfig is nil")
			} else if opts.TLSConfig.ServerName != c.want.ServerName || (opts.TLSConfig.RootCAs != nil) != (c.want.CAFile != "") || opts.TLSConfig.InsecureSkipVerify {
				t.Errorf("ClientOptions.TLSConfig: server name %q, custom roots %t, insecure %t; want %q, %t, false",
					opts.TLSConfig.ServerName, opts.TLSConfig.RootCAs != nil, opts.TLSConfig.InsecureSkipVerify, c.want.ServerName, c.want.CAFile != "")
			}
			if got := ""; opts.ProxyURL != nil || c.want.ProxyURL != "" {
				if opts.ProxyURL != nil {
					got = opts.ProxyURL.String()
				}
				if got != c.want.ProxyURL {
					t.Errorf("ClientOptions.ProxyURL %q, want %q", got, c.want.ProxyURL)
				}
			}
			var ids []int64
			for _, p := range c.want.Pipelines {
				ids = append(ids, p.ID)
			}
			if got := cfg.PipelineIDs(); !reflect.DeepEqual(got, ids) {
				t.Errorf("PipelineIDs %v, want %v", got, ids)
			}
		})
	}
}

// TestLoadFromBytes: Load and LoadFile agree, and Load resolves relative
// files against the directory of the path it is given.
func TestLoadFromBytes(t *testing.T) {
	data, err := os.ReadFile("testdata/valid-full.yml")
	if err != nil {
		t.Fatal(err)
	}
	fromBytes, err := Load(data, "testdata/valid-full.yml", LoadOptions{Getenv: noEnv})
	if err != nil {
		t.Fatal(err)
	}
	fromFile, err := LoadFile("testdata/valid-full.yml", LoadOptions{Getenv: noEnv})
	if err != nil {
		t.Fatal(err)
	}
	if a, b := resolvedOf(fromBytes), resolvedOf(fromFile); !reflect.DeepEqual(a, b) {
		t.Errorf("Load %+v, LoadFile %+v", a, b)
	}
	_, err = Load(data, "elsewhere.yml", LoadOptions{Getenv: noEnv})
	checkErr(t, err, "elsewhere.yml:6: yunxiao.token_file: cannot read token.txt: no such file or directory\n"+
		"elsewhere.yml:12: yunxiao.tls_config.ca_file: cannot read ca.pem: no such file or directory")
}

func TestDefault(t *testing.T) {
	d := Default()
	want := resolved{
		Endpoint:       "https://openapi-rdc.aliyuncs.com",
		Edition:        "central",
		Timeout:        10 * time.Second,
		MaxConcurrency: 8,
		RateLimit:      20,
		Burst:          20,
		MaxBodyBytes:   4194304,
		CacheTTL:       30 * time.Second,
	}
	if got := resolvedOf(&d); !reflect.DeepEqual(got, want) {
		t.Errorf("Default():\n got: %+v\nwant: %+v", got, want)
	}
}

// writeFile writes data to dir/name with exactly mode perm, whatever the umask.
func writeFile(t *testing.T, dir, name, data string, perm os.FileMode) string {
	t.Helper()
	path := filepath.Join(dir, name)
	if err := os.WriteFile(path, []byte(data), perm); err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(path, perm); err != nil {
		t.Fatal(err)
	}
	return path
}

func TestWarnings(t *testing.T) {
	const fileConfig = "yunxiao:\n  organization_id: o\n  token_file: token\npipelines: [{id: 1}]\n"
	const inlineConfig = "yunxiao:\n  organization_id: o\n  token: " + inlineToken + "\npipelines: [{id: 1}]\n"
	const envConfig = "yunxiao:\n  organization_id: o\npipelines: [{id: 1}]\n"
	cases := []struct {
		name       string
		config     string
		configMode os.FileMode
		tokenMode  os.FileMode // 0: no token file
		env        string
		want       func(dir string) []string
	}{
		{
			name: "token_file readable by all", config: fileConfig, configMode: 0o644, tokenMode: 0o644,
			want: func(dir string) []string {
				return []string{"yunxiao.token_file " + filepath.Join(dir, "token") + " is readable by other users (mode -rw-r--r--); chmod 600 it"}
			},
		},
		{
			// Kubernetes mounts Secrets 0440 with fsGroup for non-root pods.
			name: "token_file readable by its group only", config: fileConfig, configMode: 0o644, tokenMode: 0o440,
		},
		{
			name: "token_file readable by others but not its group", config: fileConfig, configMode: 0o644, tokenMode: 0o604,
			want: func(dir string) []string {
				return []string{"yunxiao.token_file " + filepath.Join(dir, "token") + " is readable by other users (mode -rw----r--); chmod 600 it"}
			},
		},
		{
			// The config file's own mode does not matter when it holds no token.
			name: "token_file private", config: fileConfig, configMode: 0o644, tokenMode: 0o600,
		},
		{
			name: "token_file read-only private", config: fileConfig, configMode: 0o644, tokenMode: 0o400,
		},
		{
			name: "inline token in a config file readable by all", config: inlineConfig, configMode: 0o644,
			want: func(dir string) []string {
				return []string{"the config file, which holds yunxiao.token inline, " + filepath.Join(dir, "config.yml") + " is readable by other users (mode -rw-r--r--); chmod 600 it"}
			},
		},
		{
			name: "inline token in a private config file", config: inlineConfig, configMode: 0o600,
		},
		{
			name: "token from the environment", config: envConfig, configMode: 0o644, env: envToken,
		},
		{
			name: "organization_id with region", configMode: 0o644, env: envToken,
			config: "yunxiao:\n  edition: region\n  organization_id: o\npipelines: [{id: 1}]\n",
			want: func(string) []string {
				return []string{"yunxiao.organization_id is ignored when edition is region"}
			},
		},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			dir := t.TempDir()
			path := writeFile(t, dir, "config.yml", c.config, c.configMode)
			if c.tokenMode != 0 {
				writeFile(t, dir, "token", fileToken+"\n", c.tokenMode)
			}
			cfg, err := LoadFile(path, LoadOptions{Getenv: env(c.env)})
			if err != nil {
				assertNoToken(t, "error", err.Error())
				t.Fatal(err)
			}
			var want []string
			if c.want != nil {
				want = c.want(dir)
			}
			checkWarnings(t, cfg, want...)
		})
	}
}

// TestTokenFileReread: the token file is read at every load, so a reload
// picks up a rotated token.
func TestTokenFileReread(t *testing.T) {
	dir := t.TempDir()
	path := writeFile(t, dir, "config.yml", "yunxiao:\n  organization_id: o\n  token_file: token\npipelines: [{id: 1}]\n", 0o600)
	writeFile(t, dir, "token", "first\n", 0o600)
	cfg, err := LoadFile(path, LoadOptions{Getenv: noEnv})
	if err != nil {
		t.Fatal(err)
	}
	writeFile(t, dir, "token", "  second  ", 0o600)
	cfg2, err := LoadFile(path, LoadOptions{Getenv: noEnv})
	if err != nil {
		t.Fatal(err)
	}
	if cfg.Token() != "first" || cfg2.Token() != "second" {
		t.Errorf("tokens %q then %q, want first then second", cfg.Token(), cfg2.Token())
	}
}

// TestPrintingHidesToken: a config printed or marshalled any usual way
// never shows the token, inline or resolved.
func TestPrintingHidesToken(t *testing.T) {
	for _, c := range []struct {
		file, env string
	}{
		{"valid-inline-token.yml", ""},
		{"valid-full.yml", ""},
		{"valid-env-token.yml", envToken},
	} {
		t.Run(c.file, func(t *testing.T) {
			cfg, err := LoadFile(filepath.Join("testdata", c.file), LoadOptions{Getenv: env(c.env)})
			if err != nil {
				t.Fatal(err)
			}
			if cfg.Token() == "" {
				t.Fatal("no token resolved")
			}
			y, err := yaml.Marshal(cfg)
			if err != nil {
				t.Fatal(err)
			}
			j, err := json.Marshal(cfg)
			if err != nil {
				t.Fatal(err)
			}
			outputs := map[string]string{
				"yaml.Marshal":   string(y),
				"json.Marshal":   string(j),
				"String()":       cfg.String(),
				"%v of *Config":  fmt.Sprintf("%v", cfg),
				"%+v of *Config": fmt.Sprintf("%+v", cfg),
				"%#v of *Config": fmt.Sprintf("%#v", cfg),
				"%v of Config":   fmt.Sprintf("%v", *cfg),
				"%+v of Config":  fmt.Sprintf("%+v", *cfg),
				//lint:ignore S1025 what fmt prints for %s is the point here
				"%s of Config":      fmt.Sprintf("%s", *cfg),
				"%v of Yunxiao":     fmt.Sprintf("%v", cfg.Yunxiao),
				"%+v of Yunxiao":    fmt.Sprintf("%+v", cfg.Yunxiao),
				"%#v of Yunxiao":    fmt.Sprintf("%#v", cfg.Yunxiao),
				"%v of []*Config":   fmt.Sprintf("%v", []*Config{cfg}),
				"%+v of a wrapper":  fmt.Sprintf("%+v", struct{ C Config }{*cfg}),
				"Sprint of Yunxiao": fmt.Sprint(&cfg.Yunxiao),
			}
			for what, out := range outputs {
				if strings.Contains(out, cfg.Token()) {
					t.Errorf("%s shows the token:\n%s", what, out)
				}
				if strings.Contains(out, "PANIC") {
					t.Errorf("%s panicked:\n%s", what, out)
				}
			}
			if cfg.Yunxiao.Token != "" {
				if !strings.Contains(string(y), "token: <secret>") {
					t.Errorf("yaml.Marshal does not show the inline token as <secret>:\n%s", y)
				}
				if !strings.Contains(cfg.String(), "token: <secret>") {
					t.Errorf("String() does not show the inline token as <secret>:\n%s", cfg)
				}
			}
		})
	}
}

// TestStringLoadsBack: String() is itself a config that loads to the same
// values (for a config whose token is not inline, which it hides).
func TestStringLoadsBack(t *testing.T) {
	for _, file := range []string{"valid-minimal.yml", "valid-region.yml", "valid-full.yml", "valid-labels.yml"} {
		t.Run(file, func(t *testing.T) {
			cfg, err := LoadFile(filepath.Join("testdata", file), LoadOptions{Getenv: noEnv})
			if err != nil {
				t.Fatal(err)
			}
			// Relative names are resolved already (testdata/ca.pem), so load
			// the printout as a file in the working directory.
			text := strings.Replace(cfg.String(), "token_file: token.txt", "token_file: testdata/token.txt", 1)
			again, err := Load([]byte(text), "printed.yml", LoadOptions{Getenv: noEnv})
			if err != nil {
				t.Fatalf("%v\nprinted:\n%s", err, text)
			}
			a, b := resolvedOf(cfg), resolvedOf(again)
			if !reflect.DeepEqual(a, b) {
				t.Errorf("loaded back:\n got: %+v\nwant: %+v\nprinted:\n%s", b, a, text)
			}
		})
	}
}

// gauge reads one unlabelled gauge from reg.
func gauge(t *testing.T, reg prometheus.Gatherer, name string) float64 {
	t.Helper()
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, mf := range mfs {
		if mf.GetName() == name {
			return mf.GetMetric()[0].GetGauge().GetValue()
		}
	}
	t.Fatalf("no metric %s", name)
	return 0
}

func TestSafeConfigReload(t *testing.T) {
	const (
		good1 = "yunxiao:\n  organization_id: o\n  token: " + inlineToken + "\npipelines: [{id: 1}]\n"
		good2 = "yunxiao:\n  organization_id: o\n  token: " + inlineToken + "\npipelines: [{id: 1}, {id: 2}]\n"
		bad   = "yunxiao:\n  organization_id: o\n  token: " + inlineToken + "\n  edition: centrall\npipelines: [{id: 1}]\n"
	)
	dir := t.TempDir()
	path := filepath.Join(dir, "config.yml")
	write := func(s string) { writeFile(t, dir, "config.yml", s, 0o600) }

	reg := prometheus.NewRegistry()
	sc := NewSafeConfig(reg, LoadOptions{Getenv: noEnv})
	if sc.Get() != nil {
		t.Fatal("a new SafeConfig has a config")
	}
	reloadOK := func(want float64) {
		t.Helper()
		err := testutil.GatherAndCompare(reg, strings.NewReader(fmt.Sprintf(`
# HELP yunxiao_exporter_config_last_reload_successful 1 when the last attempt to load the configuration file succeeded, 0 when it failed (the previous configuration stays in force).
# TYPE yunxiao_exporter_config_last_reload_successful gauge
yunxiao_exporter_config_last_reload_successful %g
`, want)), "yunxiao_exporter_config_last_reload_successful")
		if err != nil {
			t.Error(err)
		}
	}
	reloadTime := func() float64 {
		t.Helper()
		return gauge(t, reg, "yunxiao_exporter_config_last_reload_success_timestamp_seconds")
	}
	reloadOK(0)

	// A valid file becomes the running config.
	write(good1)
	before := float64(time.Now().Unix())
	first, err := sc.ReloadConfig(path, nil)
	if err != nil {
		t.Fatal(err)
	}
	if sc.Get() != first || len(first.Pipelines) != 1 || first.Token() != inlineToken {
		t.Fatalf("Get() %v after a good reload, want %v", sc.Get(), first)
	}
	reloadOK(1)
	stamp := reloadTime()
	if stamp < before || stamp > float64(time.Now().Unix()+1) {
		t.Errorf("reload timestamp %f, want about %f", stamp, before)
	}

	// An invalid file is refused: the first config stays.
	write(bad)
	got, err := sc.ReloadConfig(path, func(*Config) error {
		t.Error("apply called with an invalid config")
		return nil
	})
	checkErr(t, err, path+`:4: yunxiao.edition: must be central or region, not "centrall"`)
	if got != nil {
		t.Errorf("ReloadConfig returned a config with its error")
	}
	if sc.Get() != first {
		t.Errorf("Get() changed after a failed reload")
	}
	reloadOK(0)
	if reloadTime() != stamp {
		t.Errorf("reload timestamp moved on a failed reload")
	}

	// A missing file likewise.
	_, err = sc.ReloadConfig(filepath.Join(dir, "gone.yml"), nil)
	checkErr(t, err, filepath.Join(dir, "gone.yml")+": no such file or directory")
	if sc.Get() != first {
		t.Errorf("Get() changed after a failed reload")
	}

	// A valid file that apply refuses: the first config stays, and apply
	// saw the new config while the old one was still running.
	write(good2)
	refusal := errors.New("collector refused the config")
	var offered *Config
	_, err = sc.ReloadConfig(path, func(c *Config) error {
		offered = c
		if sc.Get() != first {
			t.Errorf("apply: Get() is not the running config")
		}
		return refusal
	})
	if !errors.Is(err, refusal) {
		t.Errorf("ReloadConfig error %v, want apply's %v", err, refusal)
	}
	checkErr(t, err, refusal.Error())
	if offered == nil || len(offered.Pipelines) != 2 {
		t.Errorf("apply was offered %v, want the new config", offered)
	}
	if sc.Get() != first {
		t.Errorf("Get() changed after apply refused")
	}
	reloadOK(0)

	// Accepted: the new config runs, and success is 1 again.
	time.Sleep(10 * time.Millisecond)
	applied := 0
	second, err := sc.ReloadConfig(path, func(c *Config) error { applied++; return nil })
	if err != nil {
		t.Fatal(err)
	}
	if applied != 1 || sc.Get() != second || second == first || len(second.Pipelines) != 2 {
		t.Errorf("after a good reload: applied %d times, Get() %v, want %v", applied, sc.Get(), second)
	}
	reloadOK(1)
	if reloadTime() <= stamp {
		t.Errorf("reload timestamp %f did not move past %f", reloadTime(), stamp)
	}
}

// TestSafeConfigSet: Set (used by --demo) installs a config as a good reload.
func TestSafeConfigSet(t *testing.T) {
	reg := prometheus.NewRegistry()
	sc := NewSafeConfig(reg, LoadOptions{})
	cfg := Default()
	sc.Set(&cfg)
	if sc.Get() != &cfg {
		t.Errorf("Get() is not what Set installed")
	}
	if v := testutil.ToFloat64(sc.reloadSuccess); v != 1 {
		t.Errorf("last_reload_successful %g after Set, want 1", v)
	}
	if v := gauge(t, reg, "yunxiao_exporter_config_last_reload_success_timestamp_seconds"); v <= 0 {
		t.Errorf("reload timestamp %g after Set, want now", v)
	}
}

// TestSafeConfigConcurrent runs readers against reloads, for -race.
func TestSafeConfigConcurrent(t *testing.T) {
	dir := t.TempDir()
	path := writeFile(t, dir, "config.yml", "yunxiao:\n  organization_id: o\npipelines: [{id: 1}]\n", 0o600)
	sc := NewSafeConfig(prometheus.NewRegistry(), LoadOptions{Getenv: env(envToken)})
	if _, err := sc.ReloadConfig(path, nil); err != nil {
		t.Fatal(err)
	}
	var wg sync.WaitGroup
	stop := make(chan struct{})
	for range 4 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				select {
				case <-stop:
					return
				default:
				}
				if c := sc.Get(); c == nil || c.Token() != envToken || len(c.Pipelines) != 1 {
					t.Errorf("Get() %v during reloads", c)
					return
				}
			}
		}()
	}
	for range 50 {
		if _, err := sc.ReloadConfig(path, nil); err != nil {
			t.Error(err)
		}
	}
	close(stop)
	wg.Wait()
}

func TestDiscoveryAndRunHistoryConfig(t *testing.T) {
	cfg, err := LoadFile("testdata/valid-discovery.yml", LoadOptions{Getenv: noEnv})
	if err != nil {
		t.Fatal(err)
	}
	d := cfg.Discovery
	if !d.Enabled || time.Duration(d.RefreshInterval) != 5*time.Minute || len(d.Include) != 2 || len(d.Exclude) != 1 {
		t.Errorf("discovery = %+v", d)
	}
	for name, want := range map[string]bool{
		"backend-build": true, "frontend-web": true, "backend-sandbox": false,
		"x-backend-build": false, // anchored: the whole name must match
		"nightly":         false,
	} {
		if got := d.Selects(name); got != want {
			t.Errorf("Selects(%q) = %v, want %v", name, got, want)
		}
	}
	if !cfg.RunHistory || cfg.HistoryEnabled(cfg.Pipelines[0]) || !cfg.HistoryEnabled(Pipeline{ID: 99}) {
		t.Errorf("run_history: global %v, pipeline 7 %v, others %v", cfg.RunHistory, cfg.HistoryEnabled(cfg.Pipelines[0]), cfg.HistoryEnabled(Pipeline{ID: 99}))
	}
	// Defaults when the section is absent.
	def, err := LoadFile("testdata/valid-minimal.yml", LoadOptions{Getenv: noEnv})
	if err != nil {
		t.Fatal(err)
	}
	if def.Discovery.Enabled || time.Duration(def.Discovery.RefreshInterval) != DefaultDiscoveryInterval || def.RunHistory {
		t.Errorf("defaults: discovery %+v, run_history %v", def.Discovery, def.RunHistory)
	}
	if !(&Discovery{}).Selects("anything") {
		t.Error("no include means every pipeline")
	}
}

// The webhook's secret follows the API token's rules: trimmed, from a file
// or inline, re-read on reload, never printed.
func TestWebhookToken(t *testing.T) {
	dir := t.TempDir()
	file := filepath.Join(dir, "webhook-token")
	if err := os.WriteFile(file, []byte("  first-secret-0123456789\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	yml := "yunxiao:\n  organization_id: o\n  token: pt-x\npipelines:\n  - id: 1\nwebhook:\n  token_file: webhook-token\n"
	cfgPath := filepath.Join(dir, "config.yml")
	if err := os.WriteFile(cfgPath, []byte(yml), 0o600); err != nil {
		t.Fatal(err)
	}
	cfg, err := LoadFile(cfgPath, LoadOptions{Getenv: func(string) string { return "" }})
	if err != nil {
		t.Fatal(err)
	}
	if got := cfg.WebhookToken(); got != "first-secret-0123456789" {
		t.Errorf("webhook token %q", got)
	}
	if strings.Contains(cfg.String(), "first-secret") || strings.Contains(fmt.Sprintf("%+v %#v", cfg, cfg), "first-secret") {
		t.Error("printing the config shows the webhook secret")
	}
	if err := os.WriteFile(file, []byte("second-secret-0123456789"), 0o600); err != nil {
		t.Fatal(err)
	}
	if cfg, err = LoadFile(cfgPath, LoadOptions{Getenv: func(string) string { return "" }}); err != nil || cfg.WebhookToken() != "second-secret-0123456789" {
		t.Errorf("reload did not re-read the webhook token: %v", err)
	}
	inline, err := Load([]byte("yunxiao:\n  organization_id: o\n  token: pt-x\npipelines:\n  - id: 1\nwebhook:\n  token: inline-secret-0123456789\n"), "x.yml", LoadOptions{Getenv: func(string) string { return "" }})
	if err != nil || inline.WebhookToken() != "inline-secret-0123456789" || strings.Contains(inline.String(), "inline-secret") {
		t.Errorf("inline webhook token: %v", err)
	}
	off, err := Load([]byte("yunxiao:\n  organization_id: o\n  token: pt-x\npipelines:\n  - id: 1\n"), "x.yml", LoadOptions{Getenv: func(string) string { return "" }})
	if err != nil || off.WebhookToken() != "" {
		t.Errorf("no webhook section: token %q, %v", off.WebhookToken(), err)
	}
}
