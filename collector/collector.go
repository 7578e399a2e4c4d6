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
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/go-kit/log"
	"github.com/go-kit/log/level"
	"github.com/prometheus/client_golang/prometheus"
	"golang.org/x/sync/semaphore"
	"golang.org/x/sync/singleflight"
	"golang.org/x/time/rate"

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
	GetPipelineRun(ctx context.Context, pipelineID int64, runID yunxiao.ID) (*yunxiao.PipelineRun, error)
	GetPipeline(ctx context.Context, pipelineID int64) (*yunxiao.Pipeline, error)
	ListPipelineRuns(ctx context.Context, pipelineID int64, since yunxiao.Millis) ([]yunxiao.RunSummary, error)
	ListPipelines(ctx context.Context) ([]yunxiao.PipelineSummary, error)
	// CheckAPI is the cheap authenticated probe behind yunxiao_up: it
	// tells whether the API as a whole answers and accepts the token.
	CheckAPI(ctx context.Context) error
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

	mu         sync.RWMutex
	api        API
	apiKey     string // endpoint, edition, organization: a change empties the cache
	ttl        time.Duration
	cfg        *config.Config
	discovered map[int64]string // id -> name, the last good discovery
	targets    []*target        // sorted by pipeline_id label value

	discovery discovery

	probeMu   sync.Mutex
	lastProbe time.Time // when CheckAPI last started; zero: due now

	discoverSoon *rate.Limiter       // RequestDiscovery: once a minute
	slots        *semaphore.Weighted // fetches running at once: fetchSlots
}

// probeKey is the singleflight key of the API probe.
const probeKey = "probe"

// target is one watched pipeline: its fetch state (under mu) and the
// snapshot scrapes read (lock-free).
type target struct {
	id         int64
	configName string
	snap       atomic.Pointer[snapshot]

	mu          sync.Mutex
	lastAttempt time.Time
	pending     chan struct{} // while a fetch is queued or running: closed when it ends
	run         *yunxiao.PipelineRun
	lastSuccess time.Time
	fetched     bool // a fetch has ended: up means something
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
	histGap     bool     // the last listing hit its page limit (logged once)
	lastDone    finishedRun
	lastGreen   finishedRun
	meta        func(name string) pipelineMeta // labels and deploy from the config, for a name
	tags        []string                       // from GetPipeline, refreshed with the name
	metaTried   time.Time                      // last GetPipeline for a pipeline whose name is configured
	waited      map[yunxiao.ID]bool            // jobs of the latest run seen WAITING
}

// noteFinished records a finished run for the last-finished and
// last-successful metrics; t.mu is held.
func (t *target) noteFinished(id yunxiao.ID, status string, start, end yunxiao.Millis) {
	if id == 0 || !isFinal(status) {
		return
	}
	f := finishedRun{id: id, status: status, end: end}
	if !end.IsSet() {
		f.end = start // orders it; no end time is exported for it
	}
	if f.after(t.lastDone) {
		t.lastDone = f
	}
	if strings.EqualFold(status, "SUCCESS") && end.IsSet() && f.after(t.lastGreen) {
		t.lastGreen = f
	}
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
	c.discoverSoon = rate.NewLimiter(rate.Every(time.Minute), 1)
	c.slots = semaphore.NewWeighted(fetchSlots)
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
	opts := cfg.ClientOptions()
	// The new client inherits the old one's 429 pauses and, when the
	// limits are unchanged, its rate limiter: a reload must not forget that
	// the API asked us to slow down, nor refill the burst. SetAPI closes
	// the old one.
	c.mu.RLock()
	opts.Previous, _ = c.api.(*yunxiao.Client)
	c.mu.RUnlock()
	client, err := yunxiao.New(opts, metrics)
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
	if old, ok := c.api.(interface{ Close() }); ok && c.api != api {
		// Its idle connections go now, the busy ones when their fetch ends.
		defer old.Close()
	}
	if c.api != api {
		c.probeMu.Lock()
		c.lastProbe = time.Time{} // probe the new API at the next scrape
		c.probeMu.Unlock()
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
		isNew := t == nil
		if isNew {
			t = &target{id: id, errors: map[yunxiao.Reason]uint64{}}
		}
		t.mu.Lock()
		changed := t.configName != w.name || t.historyOn != w.history || !isNew
		t.configName, t.historyOn = w.name, w.history
		cfg, pid := c.cfg, id
		t.meta = func(name string) pipelineMeta {
			labels, deploy := cfg.PipelineMeta(pid, name)
			return pipelineMeta{labels: labels, deploy: deploy}
		}
		if isNew || changed {
			// A new pipeline's error counters exist at 0 from now on;
			// a changed one is relabelled now rather than at its next
			// fetch.
			t.publish()
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
	if c.probeDue(now, ttl) {
		pending = append(pending, c.group.DoChan(probeKey, func() (any, error) {
			ctx, cancel := context.WithTimeout(c.ctx, c.opts.FetchTimeout)
			defer cancel()
			_ = api.CheckAPI(ctx) // the client records the outcome in yunxiao_up
			return nil, nil
		}))
	}
	// Each due pipeline gets one fetch however many scrapes ask: the first
	// queues it, the others wait for the same one. The fetches run in the
	// background, outliving this scrape if need be, with at most fetchSlots
	// goroutines at a time rather than one per pipeline (10,000 parked
	// goroutines were most of a cold start's memory).
	var waits []chan struct{}
	var queued []*target
	for _, t := range targets {
		if done, isNew := t.join(now, ttl, false); done != nil {
			waits = append(waits, done)
			if isNew {
				queued = append(queued, t)
			}
		}
	}
	if len(queued) > 0 {
		go c.runFetches(api, ttl, queued, false)
	}
	for _, ch := range pending {
		select {
		case <-ch:
		case <-ctx.Done():
			return
		}
	}
	for _, done := range waits {
		select {
		case <-done:
		case <-ctx.Done():
			return
		}
	}
}

// fetchSlots bounds the fetches (and their goroutines) running at once;
// the client's max_concurrency bounds the requests among them.
const fetchSlots = 64

// join returns the channel closed when t's current or next fetch ends:
// the one under way or queued, or a new one when t is due (or forced), in
// which case isNew is true and the caller must run it. nil: nothing to wait for.
func (t *target) join(now time.Time, ttl time.Duration, force bool) (done chan struct{}, isNew bool) {
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.pending != nil {
		return t.pending, false
	}
	if !force && !t.lastAttempt.IsZero() && now.Sub(t.lastAttempt) < ttl {
		return nil, false
	}
	t.pending = make(chan struct{})
	return t.pending, true
}

// runFetches fetches the queued targets, fetchSlots at a time, and lets
// each one's waiters go when it ends.
func (c *Collector) runFetches(api API, ttl time.Duration, queued []*target, force bool) {
	for i, t := range queued {
		if err := c.slots.Acquire(c.ctx, 1); err != nil {
			// Closing: release the waiters of what will not run.
			for _, t := range queued[i:] {
				t.finishFetch()
			}
			return
		}
		go func() {
			defer c.slots.Release(1)
			defer t.finishFetch()
			c.fetch(api, ttl, t, force)
		}()
	}
}

// finishFetch ends t's current fetch for its waiters.
func (t *target) finishFetch() {
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.pending != nil {
		close(t.pending)
		t.pending = nil
	}
}

// probeDue reports whether the API probe should run, and if so marks it
// started: once per cache_ttl, whether or not any pipeline is watched.
func (c *Collector) probeDue(now time.Time, ttl time.Duration) bool {
	c.probeMu.Lock()
	defer c.probeMu.Unlock()
	if !c.lastProbe.IsZero() && now.Sub(c.lastProbe) < ttl {
		return false
	}
	c.lastProbe = now
	return true
}

// RefreshPipeline re-reads one pipeline (and its run history) from the API
// now, bypassing cache_ttl, through the same singleflight, concurrency
// limit, rate limit and 429 handling as polling, and waits for it until
// ctx ends. It reports whether the pipeline is watched; an unwatched one
// costs no request. The webhook receiver calls it when Flow says a run
// changed.
func (c *Collector) RefreshPipeline(ctx context.Context, id int64) bool {
	api, ttl, targets := c.current()
	var t *target
	for _, x := range targets {
		if x.id == id {
			t = x
			break
		}
	}
	if t == nil || api == nil {
		return false
	}
	// A fetch already under way started before the event and may miss its
	// change; the webhook's trailing refresh covers that, so joining it is
	// enough here.
	done, isNew := t.join(c.now(), ttl, true)
	if isNew {
		go c.runFetches(api, ttl, []*target{t}, true)
	}
	select {
	case <-done:
	case <-ctx.Done():
	}
	return true
}

// RequestDiscovery asks for a discovery soon, at most once a minute and
// only with discovery on: an event about a pipeline not watched may be a
// new one.
func (c *Collector) RequestDiscovery() {
	c.mu.RLock()
	on := c.cfg != nil && c.cfg.Discovery.Enabled
	c.mu.RUnlock()
	if !on || !c.discoverSoon.Allow() {
		return
	}
	go func() { _ = c.Discover(c.ctx) }()
}

// fetch refreshes one pipeline. At most one runs per pipeline at a time.
// Unless forced, it does nothing when another caller fetched within ttl.
func (c *Collector) fetch(api API, ttl time.Duration, t *target, force bool) {
	now := c.now()
	t.mu.Lock()
	// Another caller may have fetched between due() and now.
	if !force && !t.lastAttempt.IsZero() && now.Sub(t.lastAttempt) < ttl {
		t.mu.Unlock()
		return
	}
	t.lastAttempt = now
	configName, name, nameTime, metaTried, lastSuccess := t.configName, t.name, t.nameTime, t.metaTried, t.lastSuccess
	t.mu.Unlock()

	ctx, cancel := context.WithTimeout(c.ctx, c.opts.FetchTimeout)
	defer cancel()

	// The pipeline's name and tags: asked for once per NameTTL, kept on
	// failure. A failure matters only while no name is known.
	var nameErr error
	var tags []string
	gotPipeline := false
	// Without a configured name, the name is needed: asked until known,
	// then once per NameTTL. With one, only the tags are: asked once per
	// NameTTL whether or not the last try worked.
	needName := configName == "" && (name == "" || now.Sub(nameTime) >= c.opts.NameTTL)
	// The tags wait for the second fetch, so that a cold start costs one
	// request per pipeline, not two.
	needTags := configName != "" && !lastSuccess.IsZero() && (metaTried.IsZero() || now.Sub(metaTried) >= c.opts.NameTTL)
	if needName || needTags {
		metaTried = now
		var p *yunxiao.Pipeline
		if p, nameErr = api.GetPipeline(ctx, t.id); nameErr == nil {
			name, nameTime, tags, gotPipeline = p.Name, now, p.Tags, true
		}
	}
	if configName != "" {
		nameErr = nil // the config names it; the tags can wait
		if name == "" {
			name = configName
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
			err, name, nameTime, tags, gotPipeline = nil, p.Name, now, p.Tags, true
		} else if yunxiao.ReasonOf(perr) != yunxiao.ReasonNotFound {
			err = perr
		}
		if err != nil {
			err = fmt.Errorf("pipeline %d not found: %w", t.id, err)
		}
	}

	var hr historyFetch
	if err == nil {
		hr = c.fetchHistory(ctx, api, t, run, now)
	}

	t.mu.Lock()
	defer t.mu.Unlock()
	t.fetched = true
	if hr.on {
		c.noteHistory(t, run, hr)
	}
	if err == nil && run != nil {
		t.noteFinished(run.PipelineRunID, run.Status, run.CreateTime, runEnd(run))
	}
	if nameTime.After(t.nameTime) {
		t.name, t.nameTime = name, nameTime
	}
	if gotPipeline {
		t.tags = tags
	}
	t.metaTried = metaTried
	if err == nil {
		t.waited = waitedJobs(run, t.waited)
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

// historyFetch is what one refresh read for a pipeline's run history.
type historyFetch struct {
	on       bool
	seeding  bool                                // first sight: listed seeds, nothing is counted
	listed   []yunxiao.RunSummary                // ListPipelineRuns since the watermark (or the seed window)
	err      error                               // of the listing
	resolved []yunxiao.RunSummary                // pending runs looked up by id
	gone     []yunxiao.ID                        // pending runs the API no longer has
	details  map[yunxiao.ID]*yunxiao.PipelineRun // full runs read, for phases
}

// fetchHistory reads what t's run history needs, outside t.mu: at first
// sight, the runs of the seed window (for the last finished and successful
// run); later, the runs since the watermark and a few pending runs by id.
func (c *Collector) fetchHistory(ctx context.Context, api API, t *target, latest *yunxiao.PipelineRun, now time.Time) historyFetch {
	t.mu.Lock()
	on, started := t.historyOn, t.history != nil && t.history.started
	var since yunxiao.Millis
	if started {
		since = t.history.since()
	}
	t.mu.Unlock()
	hr := historyFetch{on: on, seeding: !started}
	if !on {
		return hr
	}
	if !started {
		hr.listed, hr.err = api.ListPipelineRuns(ctx, t.id, yunxiao.Millis(now.UnixMilli())-seedWindow)
		return hr
	}
	hr.listed, hr.err = api.ListPipelineRuns(ctx, t.id, since)
	if hr.err != nil && !errors.Is(hr.err, yunxiao.ErrTooManyPages) {
		return hr
	}
	var latestID yunxiao.ID
	if latest != nil {
		latestID = latest.PipelineRunID
	}
	// Only one fetch of t runs at a time, so the history cannot change
	// between here and noteHistory.
	t.mu.Lock()
	ids := t.history.pendingLookups(hr.listed, latestID)
	var toDetail []yunxiao.ID
	for _, r := range hr.listed {
		if t.history.wouldCount(r) && len(toDetail) < maxDetailLookups {
			toDetail = append(toDetail, r.PipelineRunID)
		}
	}
	t.mu.Unlock()
	hr.details = map[yunxiao.ID]*yunxiao.PipelineRun{}
	if latest != nil {
		hr.details[latest.PipelineRunID] = latest
	}
	for _, id := range ids {
		run, err := api.GetPipelineRun(ctx, t.id, id)
		switch {
		case err == nil && run != nil:
			hr.resolved = append(hr.resolved, summaryOf(run))
			hr.details[id] = run
		case yunxiao.ReasonOf(err) == yunxiao.ReasonNotFound:
			hr.gone = append(hr.gone, id)
		case err != nil:
			level.Debug(c.logger).Log("msg", "run history: looking up a pending run failed; will retry", "pipeline_id", t.id, "run_id", id, "err", err)
		}
	}
	// The jobs of each run about to be counted, for its phases: one
	// GetPipelineRun per finished run (the stated cost of run_history).
	for _, id := range toDetail {
		if hr.details[id] != nil && isFinal(hr.details[id].Status) {
			continue
		}
		if run, err := api.GetPipelineRun(ctx, t.id, id); err == nil && run != nil {
			hr.details[id] = run
		}
	}
	return hr
}

// maxDetailLookups bounds the runs whose details one refresh reads for the
// phase histograms: one page of a listing.
const maxDetailLookups = 30

// waitedJobs returns the jobs of run seen WAITING, now or at an earlier
// fetch of the same run: their time counts as waiting once they end.
func waitedJobs(run *yunxiao.PipelineRun, before map[yunxiao.ID]bool) map[yunxiao.ID]bool {
	if run == nil {
		return nil
	}
	var out map[yunxiao.ID]bool
	for _, s := range run.Stages {
		if s.StageInfo == nil {
			continue
		}
		for _, j := range s.StageInfo.Jobs {
			if j.ID != 0 && (before[j.ID] || strings.EqualFold(j.Status, "WAITING")) {
				if out == nil {
					out = map[yunxiao.ID]bool{}
				}
				out[j.ID] = true
			}
		}
	}
	return out
}

// summaryOf is a run as a listing would show it.
func summaryOf(run *yunxiao.PipelineRun) yunxiao.RunSummary {
	return yunxiao.RunSummary{PipelineRunID: run.PipelineRunID, Status: run.Status, TriggerMode: run.TriggerMode,
		StartTime: run.CreateTime, EndTime: runEnd(run)}
}

// noteHistory advances t's run history; t.mu is held.
func (c *Collector) noteHistory(t *target, latest *yunxiao.PipelineRun, hr historyFetch) {
	if t.history == nil {
		t.history = newHistory()
	}
	if hr.err != nil && !errors.Is(hr.err, yunxiao.ErrTooManyPages) {
		reason := yunxiao.ReasonOf(hr.err)
		t.errors[reason]++
		logger := level.Debug(c.logger)
		if cause := "history " + string(reason); cause != t.histCause {
			logger, t.histCause = level.Warn(c.logger), cause
		}
		if hr.seeding {
			// Start counting anyway; only the seed is lost.
			logger.Log("msg", "run history: listing the last 7 days of runs failed; the last finished and successful run are known from the runs seen from now on",
				"pipeline_id", t.id, "reason", reason, "err", hr.err)
			t.history.start(yunxiao.Millis(c.now().UnixMilli()), latest)
			return
		}
		logger.Log("msg", "run history: listing runs failed; will retry from the same point", "pipeline_id", t.id, "reason", reason, "err", hr.err)
		return
	}
	t.histCause = ""
	if hr.seeding {
		t.history.start(yunxiao.Millis(c.now().UnixMilli()), latest)
		t.history.seed(hr.listed)
		for _, r := range hr.listed {
			t.noteFinished(r.PipelineRunID, r.Status, r.StartTime, r.EndTime)
		}
		return
	}
	gap := errors.Is(hr.err, yunxiao.ErrTooManyPages)
	switch {
	case gap && !t.histGap:
		// More runs since the last refresh than one refresh may fetch:
		// count the newest ones and say, once, that older ones may be missed.
		level.Warn(c.logger).Log("msg", "run history: too many runs since the last refresh; older ones are not counted",
			"pipeline_id", t.id, "listed", len(hr.listed))
	case !gap && t.histGap:
		level.Info(c.logger).Log("msg", "run history: listings fit their page limit again", "pipeline_id", t.id)
	}
	t.histGap = gap
	runs := append(append([]yunxiao.RunSummary(nil), hr.listed...), hr.resolved...)
	if latest != nil && t.history.isPending(latest.PipelineRunID) {
		runs = append(runs, summaryOf(latest))
	}
	for _, id := range hr.gone {
		t.history.forget(id)
	}
	t.history.observe(runs)
	for _, r := range t.history.lastCounted {
		run := hr.details[r.PipelineRunID]
		if run == nil || !isFinal(run.Status) {
			continue // not read this refresh: counted, phases unknown
		}
		if ph, ok := runPhases(run, nil); ok {
			t.history.queued.observe(ph.queued.fixed)
			t.history.exec.observe(max(ph.executing.fixed, 0))
		}
	}
	for _, r := range runs {
		t.noteFinished(r.PipelineRunID, r.Status, r.StartTime, r.EndTime)
	}
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
	errs := make([]uint64, len(yunxiao.Reasons))
	for i, r := range yunxiao.Reasons {
		errs[i] = t.errors[r]
	}
	var hv *historyView
	if t.historyOn {
		hv = t.history.view()
	}
	var meta pipelineMeta
	if t.meta != nil {
		meta = t.meta(name)
	}
	meta.tags = t.tags
	t.snap.Store(newSnapshot(fetchState{
		id: t.id, name: name, run: t.run, fetched: t.fetched, up: t.up,
		lastSuccess: t.lastSuccess, lastError: t.lastError, errors: errs, history: hv,
		lastDone: t.lastDone, lastGreen: t.lastGreen, meta: meta, waited: t.waited,
	}))
}

// Describe implements prometheus.Collector. It describes nothing, which
// makes the collector unchecked: yunxiao_pipeline_info's label names come
// from the config (pipelines[].labels, discovery.labels) and change on
// reload, which no fixed Desc can say. The series are still checked for
// validity and consistency when gathered.
func (c *Collector) Describe(chan<- *prometheus.Desc) {}

// Collect implements prometheus.Collector: it refreshes within the default
// scrape timeout and sends every pipeline's metrics.
func (c *Collector) Collect(ch chan<- prometheus.Metric) {
	start := time.Now()
	ctx, cancel := context.WithTimeout(context.Background(), c.opts.ScrapeTimeout)
	c.Refresh(ctx)
	cancel()
	now := c.now().UnixMilli()
	builts := c.builts()
	for f := range numFamilies {
		var ms []*dtoMetric
		for _, b := range builts {
			ms = b.appendFamily(ms[:0], f, now)
			for _, m := range ms {
				ch <- prebuilt{desc: c.descs[f], metric: m}
			}
		}
	}
	ch <- prometheus.MustNewConstMetric(c.scrape, prometheus.GaugeValue, time.Since(start).Seconds())
}

// builts rebuilds the data model of every watched pipeline's snapshot, for
// Collect and Families: the scrape's fast path never needs it.
func (c *Collector) builts() []*built {
	_, _, targets := c.current()
	out := make([]*built, 0, len(targets))
	for _, t := range targets {
		if s := t.snap.Load(); s != nil {
			out = append(out, build(s.state))
		}
	}
	return out
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
