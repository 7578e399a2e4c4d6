package collector

import (
	"context"
	"net/http"
	"sort"
	"strconv"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"
	dto "github.com/prometheus/client_model/go"
	"golang.org/x/sync/semaphore"
	"google.golang.org/protobuf/proto"
)

// HandlerOpts configure the /metrics handler.
type HandlerOpts struct {
	// Gatherer supplies the process's other metrics (client, config reload,
	// build info, go_ and process_). It must not hold this Collector.
	Gatherer prometheus.Gatherer
	// MaxRequestsInFlight bounds concurrent scrapes; more get 503. 0: 40.
	MaxRequestsInFlight int64
	// TimeoutOffset is kept free before Prometheus' scrape timeout so that
	// encoding and the network fit in it. 0: 500ms.
	TimeoutOffset time.Duration
	ErrorLog      promhttp.Logger
}

// ScrapeTimeoutHeader is the header Prometheus sends with its scrape timeout.
const ScrapeTimeoutHeader = "X-Prometheus-Scrape-Timeout-Seconds"

// Handler serves the collector's metrics and opts.Gatherer's. Each request
// refreshes stale pipelines until the scrape's deadline, then answers with
// what it has. A client that takes the text format (Prometheus always
// does) gets the fast path: each pipeline's series were rendered to
// exposition bytes when its data was fetched, so the scrape writes bytes
// and formats only the values that move with the clock; concurrent scrapes
// share one rendering and compression. A client that wants only protobuf or
// OpenMetrics gets the same series through client_golang's encoder.
func (c *Collector) Handler(opts HandlerOpts) http.Handler {
	if opts.MaxRequestsInFlight <= 0 {
		opts.MaxRequestsInFlight = 40
	}
	if opts.TimeoutOffset <= 0 {
		opts.TimeoutOffset = 500 * time.Millisecond
	}
	if opts.Gatherer == nil {
		opts.Gatherer = prometheus.NewRegistry()
	}
	inFlight := semaphore.NewWeighted(opts.MaxRequestsInFlight)
	fast := &textWriter{c: c, gatherer: opts.Gatherer, errorLog: opts.ErrorLog}
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if !inFlight.TryAcquire(1) {
			http.Error(w, "too many concurrent scrapes", http.StatusServiceUnavailable)
			return
		}
		defer inFlight.Release(1)
		start := time.Now()
		ctx, cancel := context.WithTimeout(r.Context(), c.scrapeTimeout(r, opts.TimeoutOffset))
		c.Refresh(ctx)
		cancel()
		if acceptsText(r.Header.Get("Accept")) {
			fast.serve(w, r, start)
			return
		}
		gather := prometheus.GathererFunc(func() ([]*dto.MetricFamily, error) {
			families := c.Families()
			others, err := opts.Gatherer.Gather()
			families = append(families, others...)
			families = append(families, scrapeDurationFamily(time.Since(start)))
			sort.Slice(families, func(i, j int) bool { return families[i].GetName() < families[j].GetName() })
			return families, err
		})
		promhttp.HandlerFor(gather, promhttp.HandlerOpts{
			ErrorHandling:     promhttp.ContinueOnError,
			ErrorLog:          opts.ErrorLog,
			EnableOpenMetrics: true, // a client that asked for it alone gets it
		}).ServeHTTP(w, r)
	})
}

// scrapeTimeout is Prometheus' scrape timeout less the offset, or the
// default when the request does not say (a person with curl).
func (c *Collector) scrapeTimeout(r *http.Request, offset time.Duration) time.Duration {
	timeout := c.opts.ScrapeTimeout
	if v := r.Header.Get(ScrapeTimeoutHeader); v != "" {
		if secs, err := strconv.ParseFloat(v, 64); err == nil && secs > 0 && secs < 1e6 {
			timeout = time.Duration(secs * float64(time.Second))
		}
	}
	if timeout > 2*offset {
		return timeout - offset
	}
	return timeout / 2
}

// Families returns the pipelines' metric families as of now, from the
// prebuilt snapshots: no fetch, no sorting of series, and only the
// durations of unfinished runs, stages and jobs computed afresh.
func (c *Collector) Families() []*dto.MetricFamily {
	builts := c.builts()
	now := c.now().UnixMilli()
	out := make([]*dto.MetricFamily, 0, numFamilies)
	for f := range numFamilies {
		n := 0
		for _, b := range builts {
			n += len(b.families[f])
		}
		if n == 0 {
			continue
		}
		metrics := make([]*dto.Metric, 0, n)
		for _, b := range builts {
			metrics = b.appendFamily(metrics, f, now)
		}
		def := &metricDefs[f]
		out = append(out, &dto.MetricFamily{Name: &def.Name, Help: &def.Help, Type: def.Type.Enum(), Metric: metrics})
	}
	return out
}

func scrapeDurationFamily(d time.Duration) *dto.MetricFamily {
	return &dto.MetricFamily{
		Name:   proto.String(scrapeDurationDef.Name),
		Help:   proto.String(scrapeDurationDef.Help),
		Type:   dto.MetricType_GAUGE.Enum(),
		Metric: []*dto.Metric{{Gauge: &dto.Gauge{Value: proto.Float64(d.Seconds())}}},
	}
}
