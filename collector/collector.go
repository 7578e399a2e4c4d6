// Package collector turns the latest runs of the configured pipelines into
// Prometheus metrics. On each scrape it refreshes the pipelines whose cached
// data is older than cache_ttl (one fetch per pipeline however many scrapes
// ask, within the client's concurrency and rate limits), waits for them only
// until the scrape's deadline, and serves metric families that were built
// once per fetched run.
package collector

import (
	"context"
	"errors"
	"fmt"
	"sort"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/go-kit/log"
	"github.com/go-kit/log/level"
	"github.com/prometheus/client_golang/prometheus"
	"golang.org/x/sync/singleflight"

	"github.com/yunxiao-exporter/yunxiao_exporter/config"
	"github.com/yunxiao-exporter/yunxiao_exporter/yunxiao"
)

// Options tune a Collector; the zero value of each field means its default.
type Options struct {
	Logger log.Logger
	// Now is the clock for cache ages and durations (tests inject one).
	Now func() time.Time
	// NameTTL is how long a name from GetPipeline is used before asking again.
	NameTTL time.Duration
	// FetchTimeout bounds one pipeline's background fetch, retries included.
	// It is independent of scrapes: a fetch a scrape stopped waiting for
	// still lands in the cache for the next one.
	FetchTimeout time.Duration
	// ScrapeTimeout is the deadline Collect uses (the HTTP handler takes
	// Prometheus' own from its request header).
	ScrapeTimeout time.Duration
	// Shard restricts the collector to its share of the pipelines.
	Shard Shard
	// ManualDiscovery runs no background discovery loop: the caller calls
	// Discover (tests, to know when a discovery happened).
	ManualDiscovery bool
}

// Defaults for Options.
const (
	DefaultNameTTL       = time.Hour
	DefaultFetchTimeout  = time.Minute
	DefaultScrapeTimeout = 10 * time.Second
)

// API is the part of the Flow API client the collector uses.
type API interface {
	GetLatestPipelineRun(ctx context.Context, pipelineID int64) (*yunxiao.PipelineRun, error)
	GetPipeline(ctx context.Context, pipelineID int64) (*yunxiao.Pipeline, error)
	ListPipelineRuns(ctx context.Context, pipelineID int64, since yunxiao.Millis) ([]yunxiao.RunSummary, error)
	ListPipelines(ctx context.Context) ([]yunxiao.PipelineSummary, error)
}

// Collector is a prometheus.Collector for the configured pipelines, and a
// fast path (Handler) that serves the same metrics prebuilt.
type Collector struct {
	opts   Options
	logger log.Logger
	now    func() time.Time
	descs  [numFamilies]*prometheus.Desc
	scrape *prometheus.Desc

	ctx    context.Context // parent of background fetches; ended by Close
	cancel context.CancelFunc
	group  singleflight.Group
	seq    atomic.Int64 // gives each target a unique singleflight key

	mu         sync.RWMutex
	api        API
	apiKey     string // endpoint, edition, organization: a change empties the cache
	ttl        time.Duration
	cfg        *config.Config
	discovered map[int64]string // id -> name, the last good discovery
	targets    []*target        // sorted by pipeline_id label value

	discovery discovery
}

// target is one watched pipeline: its fetch state (under mu) and the
// snapshot scrapes read (lock-free).
type target struct {
	id         int64
	key        string
	configName string
	snap       atomic.Pointer[snapshot]

	mu          sync.Mutex
	lastAttempt time.Time
	fetching    bool // a fetch is under way: scrapes join it rather than skip
	run         *yunxiao.PipelineRun
	lastSuccess time.Time
	up          bool
	lastError   string
	lastCause   string // the error cause last logged, to log each cause once
	errors      map[yunxiao.Reason]uint64
	name        string // from GetPipeline
	nameTime    time.Time
	dupWarned   int64 // run id whose duplicate series were last reported
	historyOn   bool
	history     *history // nil until run history is first on
	histCause   string   // the history error cause last logged
}

// New returns a Collector with no pipelines; call ApplyConfig.
func New(opts Options) *Collector {
	if opts.Logger == nil {
		opts.Logger = log.NewNopLogger()
	}
	if opts.Now == nil {
		opts.Now = time.Now
	}
	if opts.NameTTL <= 0 {
		opts.NameTTL = DefaultNameTTL
	}
	if opts.FetchTimeout <= 0 {
		opts.FetchTimeout = DefaultFetchTimeout
	}
	if opts.ScrapeTimeout <= 0 {
		opts.ScrapeTimeout = DefaultScrapeTimeout
	}
	if opts.Shard.Total < 1 {
		opts.Shard = Shard{Index: 0, Total: 1}
	}
	c := &Collector{opts: opts, logger: opts.Logger, now: opts.Now, scrape: newDesc(scrapeDurationDef)}
	for f, d := range metricDefs {
		c.descs[f] = newDesc(d)
	}
	c.ctx, c.cancel = context.WithCancel(context.Background())
	c.discovery = newDiscovery()
	return c
}

// Close stops background fetches and discovery.
func (c *Collector) Close() {
	c.cancel()
	c.mu.Lock()
	c.discovery.stop()
	c.mu.Unlock()
}

// ApplyConfig switches to cfg's pipelines and API settings. Cached data of
// pipelines that stay is kept unless the API endpoint, edition or
// organization changed; pipelines no longer listed vanish from the next
// scrape.
func (c *Collector) ApplyConfig(cfg *config.Config, metrics *yunxiao.Metrics) error {
	client, err := yunxiao.New(cfg.ClientOptions(), metrics)
	if err != nil {
		return err
	}
	return c.SetAPI(client, cfg)
}

// SetAPI is ApplyConfig with a given API implementation.
func (c *Collector) SetAPI(api API, cfg *config.Config) error {
	apiKey := cfg.Yunxiao.Endpoint + "\x00" + cfg.Yunxiao.Edition + "\x00" + cfg.Yunxiao.OrganizationID
	c.mu.Lock()
	defer c.mu.Unlock()
	if apiKey != c.apiKey || !cfg.Discovery.Enabled {
		c.discovered = nil // another organization, or discovery off
	}
	if apiKey != c.apiKey {
		c.targets = nil // another organization: no cached data carries over
	}
	c.api, c.apiKey, c.ttl, c.cfg = api, apiKey, time.Duration(cfg.CacheTTL), cfg
	c.rebuildTargets()
	c.restartDiscovery(api, cfg.Discovery)
	return nil
}

// rebuildTargets makes the targets the configured pipelines plus the
// discovered ones, in this shard, keeping each kept pipeline's cache and
// run history. Explicit entries win on names and run_history. c.mu is held.
func (c *Collector) rebuildTargets() {
	type want struct {
		name    string
		history bool
	}
	wanted := map[int64]want{}
	for id, name := range c.discovered {
		wanted[id] = want{name: name, history: c.cfg.RunHistory}
	}
	for _, p := range c.cfg.Pipelines {
		w := wanted[p.ID] // a discovered name serves when the config gives none
		if p.Name != "" {
			w.name = p.Name
		}
		w.history = c.cfg.HistoryEnabled(p)
		wanted[p.ID] = w
	}
	old := make(map[int64]*target, len(c.targets))
	for _, t := range c.targets {
		old[t.id] = t
	}
	targets := make([]*target, 0, len(wanted))
	for id, w := range wanted {
		if !c.opts.Shard.Owns(id) {
			continue
		}
		t := old[id]
		if t == nil {
			t = &target{id: id, key: strconv.FormatInt(c.seq.Add(1), 10), errors: map[yunxiao.Reason]uint64{}}
		}
		t.mu.Lock()
		changed := t.configName != w.name || t.historyOn != w.history
		t.configName, t.historyOn = w.name, w.history
		if changed && t.snap.Load() != nil {
			t.publish() // relabel now rather than at the next fetch
		}
		t.mu.Unlock()
		targets = append(targets, t)
	}
	sort.Slice(targets, func(i, j int) bool {
		return strconv.FormatInt(targets[i].id, 10) < strconv.FormatInt(targets[j].id, 10)
	})
	c.targets = targets
}

func (c *Collector) current() (API, time.Duration, []*target) {
	c.mu.RLock()
	defer c.mu.RUnlock()
	return c.api, c.ttl, c.targets
}

// Refresh fetches every pipeline whose data is older than cache_ttl and
// waits for those fetches until ctx ends. Concurrent callers share one
// fetch per pipeline; fetches outlive ctx and land in the cache.
func (c *Collector) Refresh(ctx context.Context) {
	api, ttl, targets := c.current()
	if api == nil {
		return
	}
	now := c.now()
	var pending []<-chan singleflight.Result
	for _, t := range targets {
		if !t.due(now, ttl) {
			continue
		}
		pending = append(pending, c.group.DoChan(t.key, func() (any, error) {
			c.fetch(api, ttl, t)
			return nil, nil
		}))
	}
	for _, ch := range pending {
		select {
		case <-ch:
		case <-ctx.Done():
			return
		}
	}
}

// due reports whether a scrape should fetch t, or join the fetch under way.
func (t *target) due(now time.Time, ttl time.Duration) bool {
	t.mu.Lock()
	defer t.mu.Unlock()
	return t.fetching || t.lastAttempt.IsZero() || now.Sub(t.lastAttempt) >= ttl
}

// fetch refreshes one pipeline. At most one runs per pipeline at a time.
func (c *Collector) fetch(api API, ttl time.Duration, t *target) {
	now := c.now()
	t.mu.Lock()
	// Another caller may have fetched between due() and now.
	if !t.lastAttempt.IsZero() && now.Sub(t.lastAttempt) < ttl {
		t.mu.Unlock()
		return
	}
	t.lastAttempt, t.fetching = now, true
	configName, name, nameTime := t.configName, t.name, t.nameTime
	t.mu.Unlock()

	ctx, cancel := context.WithTimeout(c.ctx, c.opts.FetchTimeout)
	defer cancel()

	// The name, when the config gives none: asked for rarely, kept on failure.
	var nameErr error
	if configName == "" && (name == "" || now.Sub(nameTime) >= c.opts.NameTTL) {
		var p *yunxiao.Pipeline
		if p, nameErr = api.GetPipeline(ctx, t.id); nameErr == nil {
			name, nameTime = p.Name, now
		}
	}
	var run *yunxiao.PipelineRun
	err := nameErr
	askedForRun := err == nil || name != ""
	if askedForRun {
		run, err = api.GetLatestPipelineRun(ctx, t.id)
	}
	if askedForRun && yunxiao.ReasonOf(err) == yunxiao.ReasonNotFound {
		// A 404 for the latest run means no run, or no pipeline:
		// GetPipeline tells which (unless it just did).
		if nameTime.Equal(now) {
			err = nil
		} else if p, perr := api.GetPipeline(ctx, t.id); perr == nil {
			err, name, nameTime = nil, p.Name, now
		} else if yunxiao.ReasonOf(perr) != yunxiao.ReasonNotFound {
			err = perr
		}
		if err != nil {
			err = fmt.Errorf("pipeline %d not found: %w", t.id, err)
		}
	}

	// Run history: the first good fetch sets the watermark; later ones list
	// the runs since and count the newly finished.
	t.mu.Lock()
	historyOn, historyStarted := t.historyOn, t.history != nil && t.history.started
	var since yunxiao.Millis
	if historyStarted {
		since = t.history.since()
	}
	t.mu.Unlock()
	var listed []yunxiao.RunSummary
	var histErr error
	if err == nil && historyOn && historyStarted {
		listed, histErr = api.ListPipelineRuns(ctx, t.id, since)
	}

	t.mu.Lock()
	defer t.mu.Unlock()
	t.fetching = false
	if err == nil && historyOn {
		c.noteHistory(t, run, listed, histErr)
	}
	if nameTime.After(t.nameTime) {
		t.name, t.nameTime = name, nameTime
	}
	if err != nil {
		c.noteFailure(t, err)
	} else {
		if t.lastCause != "" {
			level.Info(c.logger).Log("msg", "pipeline fetch recovered", "pipeline_id", t.id, "after", t.lastCause)
		}
		t.run, t.lastSuccess, t.up, t.lastError, t.lastCause = run, c.now(), true, "", ""
	}
	t.publish()
	if s := t.snap.Load(); s.dropped > 0 && run != nil && int64(run.PipelineRunID) != t.dupWarned {
		t.dupWarned = int64(run.PipelineRunID)
		level.Warn(c.logger).Log("msg", "run has jobs or stages with identical labels; only the first of each is exported",
			"pipeline_id", t.id, "run_id", t.dupWarned, "dropped_series", s.dropped)
	}
}

// noteHistory advances t's run history; t.mu is held.
func (c *Collector) noteHistory(t *target, latest *yunxiao.PipelineRun, listed []yunxiao.RunSummary, err error) {
	if t.history == nil {
		t.history = newHistory()
	}
	if !t.history.started {
		t.history.start(yunxiao.Millis(c.now().UnixMilli()), latest)
		return
	}
	switch {
	case err == nil:
	case errors.Is(err, yunxiao.ErrTooManyPages):
		// More runs since the last refresh than one refresh may fetch: count
		// the newest ones and say that older ones may be missed.
		level.Warn(c.logger).Log("msg", "run history: too many runs since the last refresh; older ones are not counted",
			"pipeline_id", t.id, "listed", len(listed))
	default:
		reason := yunxiao.ReasonOf(err)
		t.errors[reason]++
		logger := level.Debug(c.logger)
		if cause := "history " + string(reason); cause != t.histCause {
			logger, t.histCause = level.Warn(c.logger), cause
		}
		logger.Log("msg", "run history: listing runs failed; will retry from the same point", "pipeline_id", t.id, "reason", reason, "err", err)
		return
	}
	t.histCause = ""
	t.history.observe(listed)
}

// noteFailure records a failed fetch and logs it once per cause.
func (c *Collector) noteFailure(t *target, err error) {
	reason := yunxiao.ReasonOf(err)
	if reason == "" {
		reason = yunxiao.ReasonNetwork
	}
	t.errors[reason]++
	t.up = false
	t.lastError = err.Error()
	// A cause is the reason and HTTP status: the same failure repeated
	// (with another request id or message) is not news.
	cause := string(reason)
	var apiErr *yunxiao.Error
	if errors.As(err, &apiErr) && apiErr.StatusCode != 0 {
		cause = fmt.Sprintf("%s (HTTP %d)", reason, apiErr.StatusCode)
	}
	logger := level.Debug(c.logger)
	if cause != t.lastCause {
		logger = level.Warn(c.logger)
		t.lastCause = cause
	}
	logger.Log("msg", "pipeline fetch failed; keeping its last good data", "pipeline_id", t.id, "reason", reason, "err", err)
}

// publish builds and installs a new snapshot from t's state; t.mu is held.
func (t *target) publish() {
	name := t.configName
	if name == "" {
		name = t.name
	}
	errs := make(map[yunxiao.Reason]uint64, len(t.errors))
	for k, v := range t.errors {
		errs[k] = v
	}
	var hv *historyView
	if t.historyOn {
		hv = t.history.view()
	}
	t.snap.Store(buildSnapshot(fetchState{
		id: t.id, name: name, run: t.run, up: t.up,
		lastSuccess: t.lastSuccess, lastError: t.lastError, errors: errs, history: hv,
	}))
}

// Describe implements prometheus.Collector.
func (c *Collector) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range c.descs {
		ch <- d
	}
	ch <- c.scrape
}

// Collect implements prometheus.Collector: it refreshes within the default
// scrape timeout and sends every pipeline's metrics.
func (c *Collector) Collect(ch chan<- prometheus.Metric) {
	start := time.Now()
	ctx, cancel := context.WithTimeout(context.Background(), c.opts.ScrapeTimeout)
	c.Refresh(ctx)
	cancel()
	_, _, targets := c.current()
	now := c.now().UnixMilli()
	for f := range numFamilies {
		var ms []*dtoMetric
		for _, t := range targets {
			if s := t.snap.Load(); s != nil {
				ms = s.appendFamily(ms[:0], f, now)
				for _, m := range ms {
					ch <- prebuilt{desc: c.descs[f], metric: m}
				}
			}
		}
	}
	ch <- prometheus.MustNewConstMetric(c.scrape, prometheus.GaugeValue, time.Since(start).Seconds())
}

// Pipelines returns the state of every watched pipeline, for the landing page.
func (c *Collector) Pipelines() []PipelineStatus {
	_, _, targets := c.current()
	out := make([]PipelineStatus, 0, len(targets))
	for _, t := range targets {
		if s := t.snap.Load(); s != nil {
			out = append(out, s.status)
		} else {
			t.mu.Lock()
			name := t.configName
			t.mu.Unlock()
			out = append(out, PipelineStatus{ID: t.id, Name: name})
		}
	}
	return out
}
