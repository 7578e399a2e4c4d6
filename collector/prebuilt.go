package collector

import (
	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"
)

type dtoMetric = dto.Metric

// prebuilt is a prometheus.Metric over a metric built once per fetch, so
// that Collect sends the same values the fast path serves.
type prebuilt struct {
	desc   *prometheus.Desc
	metric *dto.Metric
}

func (p prebuilt) Desc() *prometheus.Desc { return p.desc }

func (p prebuilt) Write(out *dto.Metric) error {
	out.Label = p.metric.Label
	out.Gauge = p.metric.Gauge
	out.Counter = p.metric.Counter
	out.Histogram = p.metric.Histogram
	return nil
}
