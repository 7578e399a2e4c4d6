package main

import (
	"fmt"
	"math"
	"math/rand/v2"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"
)

// generated is Generate's output, produced once for every test that needs it.
var generated = sync.OnceValues(Generate)

// TestUpToDate regenerates alerts_test.yml in memory and fails when the
// committed file differs: the exporter, the rules or a scenario changed.
// The committed file was recorded by another process at another time, so
// this also fails if a recording depended on the wall clock or on
// scheduling.
func TestUpToDate(t *testing.T) {
	start := time.Now()
	got, err := generated()
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("recorded %d scenarios in %s", len(Scenarios()), time.Since(start).Round(time.Millisecond))
	path := filepath.Join("..", "alerts_test.yml")
	want, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if string(got) == string(want) {
		return
	}
	gl, wl := strings.Split(string(got), "\n"), strings.Split(string(want), "\n")
	for i := 0; i < len(gl) || i < len(wl); i++ {
		var g, w string
		if i < len(gl) {
			g = gl[i]
		}
		if i < len(wl) {
			w = wl[i]
		}
		if g != w {
			t.Fatalf("%s differs from what the scenarios record (first at line %d):\n  committed: %s\n  recorded:  %s\n"+
				"run `go run ./deploy/prometheus/record` (or `make generate`), then review the change: "+
				"it is what the exporter now emits, and promtool tests the alerts on it", path, i+1, w, g)
		}
	}
}

var seriesLine = regexp.MustCompile(`(?m)^      - series: '([a-zA-Z_:][a-zA-Z0-9_:]*)\{`)

// TestEveryRuleMetricRecorded: every metric the rules read is emitted by the
// exporter (or is Prometheus' up) in some scenario. A rule reading a name
// nothing emits would stay quiet for ever, and its hand-written tests
// would not notice.
func TestEveryRuleMetricRecorded(t *testing.T) {
	data, err := generated()
	if err != nil {
		t.Fatal(err)
	}
	recorded := map[string]bool{}
	for _, m := range seriesLine.FindAllStringSubmatch(string(data), -1) {
		recorded[m[1]] = true
	}
	for name := range ruleMetric {
		if !strings.HasPrefix(name, "yunxiao_") && name != "up" || recordedByRules[name] {
			continue // PromQL functions, keywords, label names, recording rules
		}
		if !recorded[name] {
			t.Errorf("the rules read %s, which no scenario's exporter emits", name)
		}
	}
	for _, want := range []string{"up", "yunxiao_up", "yunxiao_pipeline_runs_total", "yunxiao_discovery_errors_total",
		"yunxiao_pipeline_info", "yunxiao_webhook_enabled", "yunxiao_webhook_last_accepted_timestamp_seconds", "yunxiao_pipeline_run_id"} {
		if !ruleMetric[want] {
			t.Errorf("metric filter: the rules should read %s", want)
		}
	}
	if ruleMetric["yunxiao_api_request_duration_seconds_bucket"] || ruleMetric["go_goroutines"] {
		t.Error("metric filter keeps metrics the rules do not read")
	}
}

// TestScenarioCases: every case is inside its recording, and names a rule.
func TestScenarioCases(t *testing.T) {
	for _, sc := range Scenarios() {
		if sc.Origin%Step != 0 {
			t.Errorf("%s: origin %s is not a whole number of steps", sc.Name, sc.Origin)
		}
		for _, c := range sc.Expect {
			if _, ok := rules[c.Alert]; !ok {
				t.Errorf("%s: no alert %s", sc.Name, c.Alert)
			}
			if c.At < 0 || c.At%Step != 0 {
				t.Errorf("%s: case at %s is not a step of the story", sc.Name, c.At)
			}
		}
	}
}

func values(vs ...any) []sample {
	var out []sample
	for _, v := range vs {
		switch v := v.(type) {
		case nil:
			out = append(out, sample{})
		case string:
			out = append(out, sample{kind: stale})
		case float64:
			out = append(out, sample{kind: value, v: v})
		case int:
			out = append(out, sample{kind: value, v: float64(v)})
		}
	}
	return out
}

func TestEncodeValues(t *testing.T) {
	for _, tc := range []struct {
		in   []sample
		want string
	}{
		{values(1, 1, 1), "1x2"},
		{values(nil, nil, 0, 1, 2, 3), "_x2 0+1x3"},
		{values(0, 1, 1, 1), "0 1x2"},
		{values(5, 4), "5 4"},
		{values(1, 1, "stale", nil, 1), "1x1 stale _ 1"},
		{values(10, 8, 6, 4, nil, nil), "10-2x3"},
		{values(-5400, -5400), "-5400x1"},
		{values(0.1, 0.2, 0.30000000000000004), "0.1+0.1x2"},
		{values(0.1, 0.2, 0.3), "0.1 0.2 0.3"},
		{values(1.7956518e+09, 1.7956518e+09), "1795651800x1"},
		{values(math.NaN(), math.Inf(1)), "NaN Inf"},
		{values(nil, nil, nil), ""},
	} {
		got := encodeValues(tc.in)
		if got != tc.want {
			t.Errorf("encodeValues(%v) = %q, want %q", tc.in, got, tc.want)
		}
	}
}

// TestEncodeRoundTrip: promtool's expansion of what encodeValues writes is
// exactly what was recorded, bit for bit.
func TestEncodeRoundTrip(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	for range 2000 {
		var in []sample
		v := float64(rng.IntN(100))
		step := []float64{0, 1, 60, 0.1, -3, 1e-3}[rng.IntN(6)]
		for range rng.IntN(40) {
			switch rng.IntN(10) {
			case 0:
				in = append(in, sample{})
			case 1:
				in = append(in, sample{kind: stale})
			case 2:
				v = rng.Float64() * 1e6
				in = append(in, sample{kind: value, v: v})
			default:
				v += step
				in = append(in, sample{kind: value, v: v})
			}
		}
		enc := encodeValues(in)
		out, ok := decodeValues(enc)
		if !ok {
			t.Fatalf("cannot read back %q", enc)
		}
		for len(in) > 0 && in[len(in)-1].kind == absent {
			in = in[:len(in)-1]
		}
		if !slices.EqualFunc(in, out, func(a, b sample) bool {
			return a.kind == b.kind && math.Float64bits(a.v) == math.Float64bits(b.v)
		}) {
			t.Fatalf("%v\nwritten as %q\nreads back as %v", in, enc, out)
		}
	}
}

// TestStaleness checks what the recorder stores for a target's life: up,
// a missed scrape, removal.
func TestStaleness(t *testing.T) {
	r, err := newRecorder(time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	defer r.close()
	r.API().Pipeline(1, "p", ran(1, Push, m(-20), m(-10), "SUCCESS"))
	a := r.Exporter("a:1", spec(pipes("1 p")))
	r.RunTo(2)
	a.MissScrape()
	r.RunTo(4)
	a.Unreachable(true)
	r.RunTo(6)
	a.Unreachable(false)
	r.RunTo(7)
	a.Remove()
	r.RunTo(9)
	if r.err != nil {
		t.Fatal(r.err)
	}
	for _, tc := range []struct{ key, want string }{
		{`up{job="yunxiao-exporter", instance="a:1"}`, "1x1 0 1 0x1 1 stale"},
		{`yunxiao_pipeline_up{job="yunxiao-exporter", instance="a:1", pipeline_id="1", pipeline_name="p"}`, "1x1 stale 1 stale _ 1 stale"},
	} {
		var got *series
		for _, s := range r.series {
			if s.String() == tc.key {
				got = s
			}
		}
		if got == nil {
			t.Errorf("no series %s", tc.key)
			continue
		}
		if v := encodeValues(got.samples); v != tc.want {
			t.Errorf("%s: %q, want %q", tc.key, v, tc.want)
		}
	}
}

// TestWebhook: the recorder's exporter runs the real webhook receiver, off
// without a token; an accepted event refreshes its pipeline before the
// scrape, and the last-accepted time is the event's time on the fake
// clock; a refused one changes neither.
func TestWebhook(t *testing.T) {
	r, err := newRecorder(time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	defer r.close()
	r.API().Pipeline(1, "p", ran(1, Push, m(-20), m(-10), "SUCCESS"), ran(2, Push, m(3), m(5), "SUCCESS"))
	off := r.Exporter("off:1", spec(pipes("1 p")+"cache_ttl: 1h\n"))
	a := r.Exporter("a:1", spec(webhookConfig+pipes("1 p")+"cache_ttl: 1h\n"))
	r.RunTo(3)
	if got := off.Webhook(1, "flow-hook-secret-2024"); got != 404 {
		t.Errorf("webhook off: answered %d, want 404", got)
	}
	if got := a.Webhook(1, "wrong-token-of-16-chars"); got != 401 {
		t.Errorf("wrong token: answered %d, want 401", got)
	}
	r.RunTo(4)
	if got := a.Webhook(1, "flow-hook-secret-2024"); got != 202 {
		t.Errorf("answered %d, want 202", got)
	}
	r.RunTo(6)
	if r.err != nil {
		t.Fatal(r.err)
	}
	origin := int64(time.Hour / time.Second)
	for _, tc := range []struct{ key, want string }{
		{`yunxiao_webhook_enabled{job="yunxiao-exporter", instance="off:1"}`, "0x5"},
		{`yunxiao_webhook_enabled{job="yunxiao-exporter", instance="a:1"}`, "1x5"},
		{`yunxiao_webhook_last_accepted_timestamp_seconds{job="yunxiao-exporter", instance="a:1"}`, fmt.Sprintf("_x4 %dx1", origin+4*60)},
		// cache_ttl 1h: run 2 (from minute 3) shows at minute 4, refreshed by the event.
		{`yunxiao_pipeline_run_id{job="yunxiao-exporter", instance="a:1", pipeline_id="1", pipeline_name="p"}`, "1x3 2x1"},
		{`yunxiao_pipeline_run_id{job="yunxiao-exporter", instance="off:1", pipeline_id="1", pipeline_name="p"}`, "1x5"},
	} {
		var got *series
		for _, s := range r.series {
			if s.String() == tc.key {
				got = s
			}
		}
		if got == nil {
			t.Errorf("no series %s", tc.key)
			continue
		}
		if v := encodeValues(got.samples); v != tc.want {
			t.Errorf("%s: %q, want %q", tc.key, v, tc.want)
		}
	}
}
