package collector

import (
	"context"
	"errors"
	"time"

	"github.com/go-kit/log/level"
	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"

	"github.com/yunxiao-exporter/yunxiao_exporter/config"
	"github.com/yunxiao-exporter/yunxiao_exporter/yunxiao"
)

// discovery is the state of pipeline discovery; the collector's mu guards it.
type discovery struct {
	enabled     bool
	gen         int // bumped by every (re)start, so a replaced loop's result is dropped
	cancel      context.CancelFunc
	found       int
	lastSuccess time.Time
	errors      uint64
	lastCause   string

	descFound, descLastSuccess, descErrors *prometheus.Desc
}

// discoveryDefs are the discovery's self-metrics: found, last success, errors.
var discoveryDefs = [3]MetricDef{
	{"yunxiao_discovery_pipelines", "Pipelines the last successful discovery (ListPipelines) found and kept after the include/exclude filters.", dto.MetricType_GAUGE, nil},
	{"yunxiao_discovery_last_success_timestamp_seconds", "Unix time of the last successful discovery; the list it found stays in use until the next one succeeds.", dto.MetricType_GAUGE, nil},
	{"yunxiao_discovery_errors_total", "Discoveries (ListPipelines) that failed; the last good list stays in use.", dto.MetricType_COUNTER, nil},
}

// DiscoveryDefinitions returns the discovery's self-metrics, for docs.
func DiscoveryDefinitions() []MetricDef { return append([]MetricDef{}, discoveryDefs[:]...) }

func newDiscovery() discovery {
	return discovery{descFound: newDesc(discoveryDefs[0]), descLastSuccess: newDesc(discoveryDefs[1]), descErrors: newDesc(discoveryDefs[2])}
}

func (d *discovery) stop() {
	if d.cancel != nil {
		d.cancel()
		d.cancel = nil
	}
}

// restartDiscovery replaces the discovery loop for d; c.mu is held.
func (c *Collector) restartDiscovery(api API, d config.Discovery) {
	c.discovery.stop()
	c.discovery.gen++
	c.discovery.enabled = d.Enabled
	if !d.Enabled || c.opts.ManualDiscovery {
		return
	}
	ctx, cancel := context.WithCancel(c.ctx)
	c.discovery.cancel = cancel
	go c.discoveryLoop(ctx, c.discovery.gen, api, d)
}

// discoveryLoop discovers at once and then every refresh interval, in the
// background: never on a scrape's path.
func (c *Collector) discoveryLoop(ctx context.Context, gen int, api API, d config.Discovery) {
	for {
		_ = c.discover(ctx, gen, api, d)
		t := time.NewTimer(time.Duration(d.RefreshInterval))
		select {
		case <-ctx.Done():
			t.Stop()
			return
		case <-t.C:
		}
	}
}

// Discover runs one discovery now (the background loop does this every
// refresh_interval; tests call it directly).
func (c *Collector) Discover(ctx context.Context) error {
	c.mu.RLock()
	api, cfg, gen := c.api, c.cfg, c.discovery.gen
	c.mu.RUnlock()
	if api == nil || cfg == nil || !cfg.Discovery.Enabled {
		return nil
	}
	return c.discover(ctx, gen, api, cfg.Discovery)
}

func (c *Collector) discover(ctx context.Context, gen int, api API, d config.Discovery) error {
	ctx, cancel := context.WithTimeout(ctx, c.opts.FetchTimeout)
	defer cancel()
	list, err := api.ListPipelines(ctx)
	if err != nil && !errors.Is(err, yunxiao.ErrTooManyPages) {
		c.mu.Lock()
		defer c.mu.Unlock()
		c.discovery.errors++
		logger := level.Debug(c.logger)
		if cause := string(yunxiao.ReasonOf(err)); cause != c.discovery.lastCause {
			logger, c.discovery.lastCause = level.Warn(c.logger), cause
		}
		logger.Log("msg", "pipeline discovery failed; keeping the last good list", "reason", yunxiao.ReasonOf(err), "err", err)
		return err
	}
	found := make(map[int64]string, len(list))
	for _, p := range list {
		if p.PipelineID > 0 && d.Selects(p.PipelineName) {
			found[int64(p.PipelineID)] = p.PipelineName
		}
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if gen != c.discovery.gen {
		return nil // a reload replaced this discovery while it ran
	}
	if c.discovery.lastCause != "" {
		level.Info(c.logger).Log("msg", "pipeline discovery recovered")
		c.discovery.lastCause = ""
	}
	if err != nil {
		level.Warn(c.logger).Log("msg", "pipeline discovery stopped at its page limit; using the pipelines listed so far", "listed", len(list))
	}
	c.discovered = found
	c.rebuildTargets()
	c.discovery.found, c.discovery.lastSuccess = len(found), c.now()
	return nil
}

// DiscoveryMetrics returns the discovery's self-metrics, exported while
// discovery is enabled; register it beside the collector.
func (c *Collector) DiscoveryMetrics() prometheus.Collector { return discoveryMetrics{c} }

type discoveryMetrics struct{ c *Collector }

func (m discoveryMetrics) Describe(ch chan<- *prometheus.Desc) {
	d := &m.c.discovery
	ch <- d.descFound
	ch <- d.descLastSuccess
	ch <- d.descErrors
}

func (m discoveryMetrics) Collect(ch chan<- prometheus.Metric) {
	m.c.mu.RLock()
	defer m.c.mu.RUnlock()
	d := &m.c.discovery
	if !d.enabled {
		return
	}
	ch <- prometheus.MustNewConstMetric(d.descErrors, prometheus.CounterValue, float64(d.errors))
	if !d.lastSuccess.IsZero() {
		ch <- prometheus.MustNewConstMetric(d.descFound, prometheus.GaugeValue, float64(d.found))
		ch <- prometheus.MustNewConstMetric(d.descLastSuccess, prometheus.GaugeValue, float64(d.lastSuccess.UnixMilli())/1000)
	}
}
