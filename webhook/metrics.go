package webhook

import (
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

// The values of the result label.
const (
	resultAccepted     = "accepted"
	resultUnauthorized = "unauthorized"
	resultBadRequest   = "bad_request"
	resultTooLarge     = "too_large"
	resultRateLimited  = "rate_limited"
	resultUnwatched    = "unwatched"
)

var results = []string{resultAccepted, resultUnauthorized, resultBadRequest, resultTooLarge, resultRateLimited, resultUnwatched}

type metrics struct {
	events       *prometheus.CounterVec
	lastAccepted prometheus.Gauge
	enabled      *prometheus.Desc
	anyAccepted  atomic.Bool // until the first accepted event the gauge is absent, not 0
}

func newMetrics() *metrics {
	m := &metrics{
		events: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "yunxiao_webhook_events_total",
			Help: "Requests to the Flow webhook endpoint since the exporter started, by result, as the receiver answered them: " +
				"accepted (right token, a Flow event with a pipeline id: answered 202 and a refresh of that pipeline scheduled), " +
				"unauthorized (token missing or wrong: 401), bad_request (not POST: 405, or a body that is not a Flow event: 400), " +
				"too_large (body above 1 MiB: 413), rate_limited (the receiver's own rate limit, or too many pipelines waiting for a refresh: 429). " +
				"unwatched counts accepted events, already counted as accepted, whose pipeline the refresh found not watched (decided after the answer). " +
				"Requests while the webhook is disabled (404) are not counted.",
		}, []string{"result"}),
		lastAccepted: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "yunxiao_webhook_last_accepted_timestamp_seconds",
			Help: "Unix time, from the exporter's clock, when the Flow webhook endpoint last accepted an event (answered 202). Absent until the first accepted event since the exporter started.",
		}),
	}
	m.enabled = prometheus.NewDesc("yunxiao_webhook_enabled",
		"1 when the config gives the Flow webhook a token (webhook.token or webhook.token_file), so /webhook/flow accepts events; 0 when it is off. Lets an alert tell a silent webhook from one that is not configured.",
		nil, nil)
	for _, r := range results {
		m.events.WithLabelValues(r)
	}
	return m
}

func (m *metrics) count(result string) { m.events.WithLabelValues(result).Inc() }

func (m *metrics) accepted(now time.Time) {
	m.events.WithLabelValues(resultAccepted).Inc()
	m.lastAccepted.Set(float64(now.UnixNano()) / 1e9)
	m.anyAccepted.Store(true)
}

func (m *metrics) unwatched(events int) {
	m.events.WithLabelValues(resultUnwatched).Add(float64(events))
}

func (m *metrics) describe(ch chan<- *prometheus.Desc) {
	m.events.Describe(ch)
	m.lastAccepted.Describe(ch)
	ch <- m.enabled
}

func (m *metrics) collect(ch chan<- prometheus.Metric, enabled bool) {
	v := 0.0
	if enabled {
		v = 1
	}
	ch <- prometheus.MustNewConstMetric(m.enabled, prometheus.GaugeValue, v)
	m.events.Collect(ch)
	if m.anyAccepted.Load() {
		m.lastAccepted.Collect(ch)
	}
}
