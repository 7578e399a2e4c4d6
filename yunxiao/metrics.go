package yunxiao

import (
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

// Metrics are the client's self-metrics. One value serves every Client the
// process creates, so counters survive config reloads.
type Metrics struct {
	requests *prometheus.CounterVec
	duration *prometheus.HistogramVec
	up       prometheus.Gauge
	upKnown  atomic.Bool // a probe has finished: until then yunxiao_up is absent, not 0
}

// NewMetrics creates the client metrics; register the result once.
func NewMetrics() *Metrics {
	m := &Metrics{
		requests: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "yunxiao_api_requests_total",
			Help: "Requests sent to the Yunxiao Flow API, by endpoint and HTTP status code (\"error\" when no answer arrived). Retries count as requests. 200, 429 and error exist from 0 for every endpoint.",
		}, []string{"endpoint", "code"}),
		duration: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name:    "yunxiao_api_request_duration_seconds",
			Help:    "Time from sending a Yunxiao Flow API request to having read its answer, by endpoint.",
			Buckets: []float64{0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30},
		}, []string{"endpoint"}),
		up: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "yunxiao_up",
			Help: "The Yunxiao Flow API and the token as a whole, from a probe (ListPipelines, one item) every cache_ttl: 1 when the API answered and did not refuse the token (2xx, 404, 429 or another 4xx); 0 when it refused the token (401, or 403 with a token or organization error code) or could not be reached (network error, timeout after retries, 5xx, refused redirect). One pipeline's failure never changes it. Absent until the first probe has finished.",
		}),
	}
	// The codes alerts and dashboards compare exist from 0, so that
	// increase() sees the first 429 or failed request of an episode. Other
	// codes are born at their first request (an open set, kept bounded).
	for _, endpoint := range []string{EndpointCheckAPI, EndpointGetLatestPipelineRun, EndpointGetPipeline,
		EndpointGetPipelineRun, EndpointListPipelines, EndpointListPipelineRuns} {
		for _, code := range []string{"200", "429", "error"} {
			m.requests.WithLabelValues(endpoint, code)
		}
	}
	return m
}

// Describe implements prometheus.Collector.
func (m *Metrics) Describe(ch chan<- *prometheus.Desc) {
	m.requests.Describe(ch)
	m.duration.Describe(ch)
	m.up.Describe(ch)
}

// Collect implements prometheus.Collector.
func (m *Metrics) Collect(ch chan<- prometheus.Metric) {
	m.requests.Collect(ch)
	m.duration.Collect(ch)
	if m.upKnown.Load() {
		m.up.Collect(ch)
	}
}

func (m *Metrics) observe(endpoint, code string, d time.Duration) {
	m.requests.WithLabelValues(endpoint, code).Inc()
	m.duration.WithLabelValues(endpoint).Observe(d.Seconds())
}

// setUp is CheckAPI's alone: see there for why.
func (m *Metrics) setUp(ok bool) {
	if ok {
		m.up.Set(1)
	} else {
		m.up.Set(0)
	}
	m.upKnown.Store(true)
}
