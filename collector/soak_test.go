package collector

import (
	"fmt"
	"net/http"
	"net/http/httptest"
	"runtime"
	"strings"
	"sync"
	"testing"
	"time"

	"go.uber.org/goleak"

	"github.com/yunxiao-exporter/yunxiao_exporter/flowsim"
	"github.com/yunxiao-exporter/yunxiao_exporter/yunxiao"
)

// TestSoak: many concurrent scrapers over a few hundred pipelines, a fifth
// of them faulting, for a fixed number of rounds. Every scrape answers,
// the API sees at most one fetch per pipeline per cache_ttl, the heap does
// not grow with the rounds, and no goroutine outlives the collector.
func TestSoak(t *testing.T) {
	if testing.Short() {
		t.Skip("soak test; skipped with -short")
	}
	const (
		pipelines = 300
		scrapers  = 16
		rounds    = 20
		step      = 10 * time.Second // fake time between rounds; cache_ttl is 30s
	)
	var fleet []flowsim.Pipeline
	var yml strings.Builder
	for i := 0; i < pipelines; i++ {
		id := int64(5000 + i)
		stages := []flowsim.Stage{{Name: "Build", Jobs: []flowsim.Job{{Sign: "a", Name: "A", Duration: time.Minute}, {Sign: "b", Name: "B", Duration: 2 * time.Minute}}}}
		fleet = append(fleet, flowsim.Pipeline{ID: id, Name: fmt.Sprint("p", i), Period: 10 * time.Minute,
			Stages: stages, Outcomes: []flowsim.Outcome{flowsim.Success, flowsim.Fail, flowsim.Stuck}})
		fmt.Fprintf(&yml, "  - id: %d\n    name: p%d\n", id, i)
	}

	transport := http.DefaultTransport.(*http.Transport).Clone()
	e := newTestEnv(t, yml.String(), fleet...)
	ignore := goleak.IgnoreCurrent() // the fake API's server, which outlives the test body
	// A fifth of the pipelines fault: hung, 500, HTML, 429, bad JSON.
	faults := []http.HandlerFunc{
		hang,
		headersAnd(500, nil, ""),
		headersAnd(502, map[string]string{"Content-Type": "text/html"}, "<html><title>Bad Gateway</title></html>"),
		headersAnd(429, map[string]string{"Retry-After": "30"}, ""),
		headersAnd(200, map[string]string{"Content-Type": "application/json"}, `{"pipelineRunId": "x"`),
	}
	faulty := map[int64]bool{}
	for i := 0; i < pipelines; i += 5 {
		id := int64(5000 + i)
		faulty[id] = true
		e.sim.Fault(id, faults[(i/5)%len(faults)])
	}
	cfg := e.config(yml.String(), "org-1")
	opts := cfg.ClientOptions()
	opts.Timeout, opts.RetryBackoff, opts.Transport, opts.MaxRetries = 100*time.Millisecond, time.Millisecond, transport, yunxiao.DefaultMaxRetries
	client, err := yunxiao.New(opts, e.metrics)
	if err != nil {
		t.Fatal(err)
	}
	if err := e.coll.SetAPI(client, cfg); err != nil {
		t.Fatal(err)
	}
	handler := e.coll.Handler(HandlerOpts{MaxRequestsInFlight: scrapers})

	var heap []uint64
	for round := 0; round < rounds; round++ {
		var wg sync.WaitGroup
		failures := make(chan string, scrapers)
		for s := 0; s < scrapers; s++ {
			wg.Add(1)
			go func() {
				defer wg.Done()
				req := httptest.NewRequest(http.MethodGet, "/metrics", nil)
				req.Header.Set(ScrapeTimeoutHeader, "3")
				rec := httptest.NewRecorder()
				handler.ServeHTTP(rec, req)
				if rec.Code != http.StatusOK || !strings.Contains(rec.Body.String(), "yunxiao_pipeline_up") {
					failures <- fmt.Sprintf("round %d: HTTP %d", round, rec.Code)
				}
			}()
		}
		wg.Wait()
		close(failures)
		for f := range failures {
			t.Error(f)
		}
		e.clock.Add(step)
		if round%5 == 4 {
			// Measure the cache, not the fetches still under way (they
			// outlive scrapes by design; hung ones until their timeout):
			// wait, bounded, for them to end, and let two collections
			// empty the render buffers' pool.
			quiesce(t, e.coll)
			var ms runtime.MemStats
			runtime.GC()
			runtime.GC()
			runtime.ReadMemStats(&ms)
			heap = append(heap, ms.HeapAlloc)
		}
	}

	// API cost: a fetch per pipeline per cache_ttl of fake time (the first
	// round fetches too), plus one GetPipeline for its tags per NameTTL; a
	// failing fetch may retry within itself.
	maxFetches := int64(rounds*step/(30*time.Second)) + 1 + 1
	var healthyMax, faultyMax int64
	for i := 0; i < pipelines; i++ {
		id := int64(5000 + i)
		n := e.sim.PipelineRequests(id)
		limit := maxFetches
		if faulty[id] {
			limit *= int64(yunxiao.DefaultMaxRetries + 1)
			faultyMax = max(faultyMax, n)
		} else {
			healthyMax = max(healthyMax, n)
		}
		if n > limit {
			t.Errorf("pipeline %d: %d API requests in %s of fake time, want at most %d", id, n, time.Duration(rounds)*step, limit)
		}
	}
	t.Logf("%d scrapes of %d pipelines: at most %d requests per healthy pipeline, %d per faulty (limit %d fetches); heap after GC by 5 rounds: %v KiB",
		rounds*scrapers, pipelines, healthyMax, faultyMax, maxFetches, kib(heap))
	if first, last := heap[0], heap[len(heap)-1]; last > 2*first {
		t.Errorf("heap grew from %d to %d KiB over the rounds", first/1024, last/1024)
	}

	// Goroutines: once the collector and connections are closed, none stays.
	e.coll.Close()
	transport.CloseIdleConnections()
	goleak.VerifyNone(t, ignore)
}

func kib(v []uint64) []uint64 {
	out := make([]uint64, len(v))
	for i, b := range v {
		out[i] = b / 1024
	}
	return out
}

// quiesce waits, bounded, until no fetch is queued or running.
func quiesce(t *testing.T, c *Collector) {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for {
		busy := 0
		_, _, targets := c.current()
		for _, tg := range targets {
			tg.mu.Lock()
			if tg.pending != nil {
				busy++
			}
			tg.mu.Unlock()
		}
		if busy == 0 {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%d fetches still under way after 30 s", busy)
		}
		time.Sleep(10 * time.Millisecond)
	}
}
