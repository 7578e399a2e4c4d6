package collector

import (
	"bytes"
	"compress/gzip"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/klauspost/compress/zstd"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"
	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"
)

// fastFleet is a collector with every kind of fixture, a running one among
// them, and a registry of other metrics whose values do not move.
func fastFleet(t *testing.T) (*testEnv, *prometheus.Registry) {
	t.Helper()
	fixtures := []string{"success.json", "failed.json", "running.json", "waiting.json", "canceled.json", "unknown-status.json",
		"labels.json", "zero-times.json", "sources.json", "approval-waiting.json", "queued.json", "running-with-end-time.json"}
	var pipelines string
	for i := range fixtures {
		pipelines += fmt.Sprintf("  - id: %d\n    name: p%d\n    labels: {team: t%d}\n", i+1, i+1, i%3)
	}
	e := newTestEnv(t, pipelines)
	e.extra = "run_history: true\n"
	e.apply(pipelines, "org-1")
	for i, f := range fixtures {
		e.pinFixture(int64(i+1), f)
	}
	e.refresh()
	e.clock.Add(5 * time.Second) // the clock moves: dynamic values must agree too
	others := prometheus.NewPedanticRegistry()
	g := prometheus.NewGauge(prometheus.GaugeOpts{Name: "yunxiao_exporter_test_other", Help: "Another metric of the process."})
	g.Set(3)
	others.MustRegister(g, e.metrics)
	return e, others
}

// sortedLines drops the scrape's own duration (wall-clock time) and sorts.
func sortedLines(body string) []string {
	var out []string
	for _, l := range strings.Split(strings.TrimSpace(body), "\n") {
		if strings.HasPrefix(l, "yunxiao_scrape_duration_seconds ") {
			continue
		}
		out = append(out, l)
	}
	slices.Sort(out)
	return out
}

func scrape(t *testing.T, h http.Handler, header map[string]string) (*http.Response, []byte) {
	t.Helper()
	req := httptest.NewRequest(http.MethodGet, "/metrics", nil)
	for k, v := range header {
		req.Header.Set(k, v)
	}
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, req)
	resp := rec.Result()
	body, _ := io.ReadAll(resp.Body)
	return resp, body
}

// TestTextFastPathMatchesCollect (issue 13): the pre-rendered exposition
// is, byte for byte after sorting, what client_golang writes for the same
// series through Collect and a registry.
func TestTextFastPathMatchesCollect(t *testing.T) {
	e, others := fastFleet(t)
	h := e.coll.Handler(HandlerOpts{Gatherer: others})
	resp, fast := scrape(t, h, map[string]string{"Accept": "text/plain;version=0.0.4"})
	if ct := resp.Header.Get("Content-Type"); !strings.HasPrefix(ct, "text/plain; version=0.0.4") {
		t.Errorf("Content-Type %q", ct)
	}
	reg := prometheus.NewPedanticRegistry()
	reg.MustRegister(e.coll)
	both := prometheus.Gatherers{reg, others}
	_, viaCollect := scrape(t, promhttp.HandlerFor(both, promhttp.HandlerOpts{}), map[string]string{"Accept": "text/plain;version=0.0.4"})
	if got, want := sortedLines(string(fast)), sortedLines(string(viaCollect)); !slices.Equal(got, want) {
		t.Errorf("fast path differs from Collect:\n--- fast\n%s\n--- collect\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
	// Families in name order, each once, parseable.
	p := expfmt.NewTextParser(model.UTF8Validation)
	if _, err := p.TextToMetricFamilies(bytes.NewReader(fast)); err != nil {
		t.Errorf("the fast path's output does not parse: %v", err)
	}
	var names []string
	for _, l := range strings.Split(string(fast), "\n") {
		if name, ok := strings.CutPrefix(l, "# TYPE "); ok {
			names = append(names, strings.Fields(name)[0])
		}
	}
	if !slices.IsSorted(names) || len(slices.Compact(slices.Clone(names))) != len(names) {
		t.Errorf("families not in name order, or repeated: %v", names)
	}
	if promtool, err := exec.LookPath("promtool"); err == nil {
		path := filepath.Join(t.TempDir(), "metrics.prom")
		if err := os.WriteFile(path, fast, 0o600); err != nil {
			t.Fatal(err)
		}
		cmd := exec.Command(promtool, "check", "metrics")
		cmd.Stdin = bytes.NewReader(fast)
		if out, err := cmd.CombinedOutput(); err != nil {
			t.Errorf("promtool check metrics: %v\n%s", err, out)
		}
	} else if os.Getenv("CI") == "true" {
		t.Fatal("promtool not found")
	}
}

// TestTextNegotiation: compressed answers decode to the plain one; a
// client asking only for protobuf or OpenMetrics is served through
// client_golang's encoder.
func TestTextNegotiation(t *testing.T) {
	e, others := fastFleet(t)
	h := e.coll.Handler(HandlerOpts{Gatherer: others})
	_, plain := scrape(t, h, nil)
	want := sortedLines(string(plain))

	resp, body := scrape(t, h, map[string]string{"Accept-Encoding": "gzip"})
	if resp.Header.Get("Content-Encoding") != "gzip" {
		t.Fatalf("gzip not used: %v", resp.Header)
	}
	zr, err := gzip.NewReader(bytes.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	unzipped, _ := io.ReadAll(zr)
	if !slices.Equal(sortedLines(string(unzipped)), want) {
		t.Error("the gzip answer differs from the plain one")
	}

	resp, body = scrape(t, h, map[string]string{"Accept-Encoding": "gzip, zstd"})
	if resp.Header.Get("Content-Encoding") != "zstd" {
		t.Fatalf("zstd not preferred: %v", resp.Header)
	}
	dec, _ := zstd.NewReader(nil)
	defer dec.Close()
	unz, err := dec.DecodeAll(body, nil)
	if err != nil || !slices.Equal(sortedLines(string(unz)), want) {
		t.Errorf("the zstd answer differs from the plain one (%v)", err)
	}

	for _, accept := range []string{
		"application/vnd.google.protobuf;proto=io.prometheus.client.MetricFamily;encoding=delimited",
		"application/openmetrics-text;version=1.0.0",
	} {
		resp, body := scrape(t, h, map[string]string{"Accept": accept})
		if ct := resp.Header.Get("Content-Type"); strings.HasPrefix(ct, "text/plain") || len(body) == 0 {
			t.Errorf("Accept %s: answered %q (%d bytes)", accept, ct, len(body))
		}
	}
	// What Prometheus 3 sends: text/plain is among its choices.
	p3 := "application/openmetrics-text;version=1.0.0;escaping=allow-utf-8;q=0.6,application/openmetrics-text;version=0.0.1;q=0.5,text/plain;version=1.0.0;escaping=allow-utf-8;q=0.4,text/plain;version=0.0.4;q=0.3,*/*;q=0.2"
	if resp, _ := scrape(t, h, map[string]string{"Accept": p3}); !strings.HasPrefix(resp.Header.Get("Content-Type"), "text/plain; version=0.0.4") {
		t.Errorf("Prometheus 3's Accept got %q", resp.Header.Get("Content-Type"))
	}
}

// TestConcurrentScrapesShareOneRendering (issue 13 #4): scrapes arriving
// while a compressed body is being made get that body rather than each
// making their own.
func TestConcurrentScrapesShareOneRendering(t *testing.T) {
	e, others := fastFleet(t)
	gate := make(chan struct{})
	arrived := make(chan struct{}, 1)
	blocking := prometheus.GathererFunc(func() ([]*dto.MetricFamily, error) {
		select {
		case arrived <- struct{}{}:
			<-gate // the first rendering waits until the others have asked
		default:
		}
		return others.Gather()
	})
	tw := &textWriter{c: e.coll, gatherer: blocking}
	var wg sync.WaitGroup
	const scrapers = 8
	sizes := make([]int, scrapers)
	serve := func(i int) {
		defer wg.Done()
		req := httptest.NewRequest(http.MethodGet, "/metrics", nil)
		req.Header.Set("Accept-Encoding", "gzip")
		rec := httptest.NewRecorder()
		tw.serve(rec, req, time.Now())
		sizes[i] = rec.Body.Len()
	}
	wg.Add(1)
	go serve(0)
	<-arrived // the first rendering has started and waits
	wg.Add(scrapers - 1)
	for i := 1; i < scrapers; i++ {
		go serve(i)
	}
	deadline := time.Now().Add(10 * time.Second)
	for tw.waiting.Load() < scrapers { // every scraper is in, waiting on the one rendering
		if time.Now().After(deadline) {
			t.Fatalf("only %d of %d scrapes arrived", tw.waiting.Load(), scrapers)
		}
		runtime.Gosched()
	}
	close(gate)
	wg.Wait()
	if n := tw.renders.Load(); n != 1 {
		t.Errorf("%d concurrent scrapes made %d renderings, want 1", scrapers, n)
	}
	for i, n := range sizes {
		if n == 0 || n != sizes[0] {
			t.Errorf("scrape %d got %d bytes, the first %d", i, n, sizes[0])
		}
	}
}
