package collector

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"runtime"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"
	dto "github.com/prometheus/client_model/go"

	"github.com/yunxiao-exporter/yunxiao_exporter/flowsim"
)

// The benchmark fleet: 1,000 pipelines of 4 stages × 2 jobs, about 32k
// series, a quarter of them running (so their durations are computed per
// scrape), against the in-process fake API.
const (
	benchPipelines   = 1000
	benchLatency     = 10 * time.Millisecond // per API request, at the fake
	benchConcurrency = 8
)

func benchFleetOf(n int) ([]flowsim.Pipeline, string) {
	var yml strings.Builder
	fleet := make([]flowsim.Pipeline, n)
	for i := range fleet {
		stages := make([]flowsim.Stage, 4)
		for s := range stages {
			stages[s] = flowsim.Stage{Name: fmt.Sprintf("Stage %d", s), Jobs: []flowsim.Job{
				{Sign: fmt.Sprintf("job-%d-a", s), Name: fmt.Sprintf("Job %d A", s), Duration: time.Minute},
				{Sign: fmt.Sprintf("job-%d-b", s), Name: fmt.Sprintf("Job %d B", s), Duration: 2 * time.Minute},
			}}
		}
		outcome := []flowsim.Outcome{flowsim.Success, flowsim.Fail, flowsim.Success, flowsim.Stuck}[i%4]
		fleet[i] = flowsim.Pipeline{ID: int64(100000 + i), Name: fmt.Sprintf("service-%04d-build", i), TriggerMode: 3,
			Period: time.Hour, Phase: 30 * time.Minute, Stages: stages, Outcomes: []flowsim.Outcome{outcome}}
		fmt.Fprintf(&yml, "  - id: %d\n    name: service-%04d-build\n", fleet[i].ID, i)
	}
	return fleet, yml.String()
}

func newBenchEnv(b *testing.B, latency time.Duration) *testEnv {
	return newBenchEnvOf(b, latency, benchPipelines)
}

func newBenchEnvOf(b *testing.B, latency time.Duration, n int) *testEnv {
	b.Helper()
	fleet, pipelines := benchFleetOf(n)
	clock := &fakeClock{t: testNow}
	sim := flowsim.New(flowsim.Options{Token: testToken, OrganizationID: "org-1", Now: clock.Now, Latency: latency}, fleet...)
	srv := httptest.NewServer(sim)
	b.Cleanup(srv.Close)
	e := &testEnv{t: b, sim: sim, url: srv.URL, clock: clock, logs: &syncBuffer{}, metrics: nil}
	e.coll = New(Options{Now: clock.Now})
	b.Cleanup(e.coll.Close)
	cfg := e.config(pipelines, "org-1")
	cfg.Yunxiao.MaxConcurrency = benchConcurrency
	if err := e.coll.ApplyConfig(cfg, nil); err != nil {
		b.Fatal(err)
	}
	return e
}

// BenchmarkColdRefresh fetches every pipeline (cache expired) through the
// client's concurrency limit. The floor is requests × latency / concurrency.
func BenchmarkColdRefresh(b *testing.B) {
	e := newBenchEnv(b, benchLatency)
	requests := func() int64 {
		var n int64
		for _, ep := range []string{flowsim.EndpointLatestRun, flowsim.EndpointPipeline, flowsim.EndpointList, flowsim.EndpointListRuns, flowsim.EndpointRun} {
			n += e.sim.Requests(ep)
		}
		return n
	}
	b.ReportAllocs()
	b.ResetTimer()
	var elapsed, floor time.Duration
	for i := 0; i < b.N; i++ {
		e.clock.Add(time.Minute) // everything older than cache_ttl
		before := requests()
		start := time.Now()
		e.refresh()
		elapsed += time.Since(start)
		// The floor: every request this refresh made, at the fake's
		// latency, through max_concurrency slots.
		floor += time.Duration(requests()-before) * benchLatency / benchConcurrency
	}
	b.ReportMetric(float64(elapsed)/float64(floor), "x-floor")
	if got := e.sim.Requests(flowsim.EndpointLatestRun); got != int64(b.N*benchPipelines) {
		b.Fatalf("%d requests for %d refreshes of %d pipelines", got, b.N, benchPipelines)
	}
}

// BenchmarkHeapPerPipeline reports the live heap the cache holds per
// pipeline after a cold refresh.
func BenchmarkHeapPerPipeline(b *testing.B) {
	for i := 0; i < b.N; i++ {
		e := newBenchEnv(b, 0)
		var before, after runtime.MemStats
		runtime.GC()
		runtime.ReadMemStats(&before)
		e.refresh()
		runtime.GC()
		runtime.ReadMemStats(&after)
		b.ReportMetric(float64(int64(after.HeapAlloc)-int64(before.HeapAlloc))/benchPipelines, "heap-B/pipeline")
		runtime.KeepAlive(e)
	}
}

type discardResponse struct{ h http.Header }

func (d *discardResponse) Header() http.Header         { return d.h }
func (d *discardResponse) Write(p []byte) (int, error) { return io.Discard.Write(p) }
func (d *discardResponse) WriteHeader(int)             {}

// BenchmarkScrape compares a warm scrape of the whole fleet with the
// floor, client_golang encoding the same families from memory, and with
// what a plain Registry.Gather over the Collector costs.
func BenchmarkScrape(b *testing.B) {
	e := newBenchEnv(b, 0)
	e.refresh()
	others := prometheus.NewRegistry()
	others.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	req := httptest.NewRequest(http.MethodGet, "/metrics", nil)
	serve := func(b *testing.B, h http.Handler) {
		b.ReportAllocs()
		w := &discardResponse{h: http.Header{}}
		for i := 0; i < b.N; i++ {
			h.ServeHTTP(w, req)
		}
	}

	b.Run("warm", func(b *testing.B) {
		serve(b, e.coll.Handler(HandlerOpts{Gatherer: others}))
	})
	b.Run("encode-floor", func(b *testing.B) {
		families := e.coll.Families()
		std, _ := others.Gather()
		families = append(families, std...)
		serve(b, promhttp.HandlerFor(prometheus.GathererFunc(func() ([]*dto.MetricFamily, error) {
			return families, nil
		}), promhttp.HandlerOpts{}))
	})
	b.Run("registry-gather", func(b *testing.B) {
		reg := prometheus.NewRegistry()
		reg.MustRegister(e.coll, collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
		serve(b, promhttp.HandlerFor(reg, promhttp.HandlerOpts{}))
	})
}

// BenchmarkFamilies is the part of a warm scrape that is ours: stitching
// the prebuilt snapshots together and computing running durations.
func BenchmarkFamilies(b *testing.B) {
	e := newBenchEnv(b, 0)
	e.refresh()
	ctx := context.Background()
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		e.coll.Refresh(ctx) // nothing due: only the cache check
		if len(e.coll.Families()) == 0 {
			b.Fatal("no families")
		}
	}
}

// BenchmarkHTTPScrape measures a warm scrape as Prometheus makes it: over
// HTTP, gzip accepted, the body read whole (not decompressed), against the
// floor of client_golang's promhttp serving the very same metric families
// from memory (no collection at all), at 100, 1,000 and 10,000 pipelines
// of 4 stages × 2 jobs. Compare the two with benchstat; the ratio is the
// figure issue 13 sets (≤ 0.6×).
func BenchmarkHTTPScrape(b *testing.B) {
	for _, n := range []int{100, 1000, 10000} {
		e := newBenchEnvOf(b, 0, n)
		e.refresh()
		others := prometheus.NewRegistry()
		others.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
		families := e.coll.Families()
		std, _ := others.Gather()
		families = append(families, std...)
		floor := promhttp.HandlerFor(prometheus.GathererFunc(func() ([]*dto.MetricFamily, error) { return families, nil }), promhttp.HandlerOpts{})
		for _, h := range []struct {
			name     string
			handler  http.Handler
			encoding string
		}{
			{"exporter", e.coll.Handler(HandlerOpts{Gatherer: others}), "gzip"},
			{"floor", floor, "gzip"},
			// Without compression: what the rendering alone saves.
			{"exporter-identity", e.coll.Handler(HandlerOpts{Gatherer: others}), "identity"},
			{"floor-identity", floor, "identity"},
		} {
			b.Run(fmt.Sprintf("pipelines=%d/%s", n, h.name), func(b *testing.B) {
				srv := httptest.NewServer(h.handler)
				defer srv.Close()
				client := &http.Client{Transport: &http.Transport{DisableCompression: true}}
				req, _ := http.NewRequest(http.MethodGet, srv.URL, nil)
				req.Header.Set("Accept-Encoding", h.encoding)
				req.Header.Set("Accept", "text/plain;version=0.0.4")
				var size int64
				b.ReportAllocs()
				b.ResetTimer()
				for i := 0; i < b.N; i++ {
					resp, err := client.Do(req)
					if err != nil {
						b.Fatal(err)
					}
					size, _ = io.Copy(io.Discard, resp.Body)
					resp.Body.Close()
				}
				b.ReportMetric(float64(size), "body-B")
			})
		}
		e.coll.Close()
	}
}

// BenchmarkWarmScrapeAllocs counts the allocations of a warm text scrape
// (gzip) at 100 and 1,000 pipelines: they must not grow with the fleet.
func BenchmarkWarmScrapeAllocs(b *testing.B) {
	for _, n := range []int{100, 1000} {
		e := newBenchEnvOf(b, 0, n)
		e.refresh()
		h := e.coll.Handler(HandlerOpts{Gatherer: prometheus.NewRegistry()})
		req := httptest.NewRequest(http.MethodGet, "/metrics", nil)
		req.Header.Set("Accept-Encoding", "gzip")
		b.Run(fmt.Sprintf("pipelines=%d", n), func(b *testing.B) {
			b.ReportAllocs()
			w := &discardResponse{h: http.Header{}}
			for i := 0; i < b.N; i++ {
				h.ServeHTTP(w, req)
			}
		})
		e.coll.Close()
	}
}
