package webhook

import (
	"context"
	"sync"
	"time"

	"github.com/go-kit/log"
	"github.com/go-kit/log/level"
)

// Refresher re-reads one pipeline from the API. The exporter's collector
// implements it.
type Refresher interface {
	// Refresh fetches pipelineID now, bypassing cache_ttl, through the same
	// concurrency and rate limits as polling, and returns when done. It
	// returns false, at once and without a fetch, when the pipeline is not
	// watched. The receiver calls it from its own goroutines, never twice
	// at a time for one pipeline, with a context that Close cancels.
	Refresh(ctx context.Context, pipelineID int64) (watched bool)
}

// clock is time as the coalescer and the rate limit see it; tests replace it.
type clock interface {
	Now() time.Time
	AfterFunc(d time.Duration, f func()) stopper
}

type stopper interface{ Stop() bool }

type realClock struct{}

func (realClock) Now() time.Time                              { return time.Now() }
func (realClock) AfterFunc(d time.Duration, f func()) stopper { return time.AfterFunc(d, f) }

// defaultMaxPending bounds the pipelines with an open window or a running
// refresh. With the default rate limit about 70 are ever needed.
const defaultMaxPending = 4096

// coalescer collapses the events of one pipeline into at most one refresh
// per window; see the package comment.
type coalescer struct {
	refresher   Refresher
	onUnwatched func(pipelineID int64)
	gap         time.Duration // the window: at least the minimum interval
	maxPending  int
	clk         clock
	metrics     *metrics
	log         *causeLog

	ctx    context.Context // the refreshes' context; cancelled by close
	cancel context.CancelFunc
	wg     sync.WaitGroup // running refreshes

	// Tests: a refresh starts (called with mu held), a refresh has finished
	// and its entry is updated.
	onStart, afterRefresh func(pipelineID int64)

	mu      sync.Mutex
	closed  bool
	entries map[int64]*entry // pipelines with an open window or a running refresh
}

// entry is one pipeline's state; its fields are guarded by coalescer.mu.
type entry struct {
	timer      stopper // ends the window; armed whenever windowOpen
	windowOpen bool
	running    bool
	pending    int // events since the running or last refresh started
}

type notifyResult int

const (
	notifyOK     notifyResult = iota
	notifyFull                // too many pipelines pending
	notifyClosed              // the receiver is closed
)

func newCoalescer(parent context.Context, o Options, clk clock, m *metrics, l *causeLog) *coalescer {
	ctx, cancel := context.WithCancel(parent)
	return &coalescer{
		refresher:   o.Refresher,
		onUnwatched: o.OnUnwatched,
		gap:         max(o.Window, o.MinInterval),
		maxPending:  defaultMaxPending,
		clk:         clk,
		metrics:     m,
		log:         l,
		ctx:         ctx,
		cancel:      cancel,
		entries:     make(map[int64]*entry),
	}
}

// notify records an accepted event for pipelineID and refreshes it at once
// if no window is open for it. It never blocks on a refresh.
func (c *coalescer) notify(pipelineID int64) notifyResult {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.closed {
		return notifyClosed
	}
	if e := c.entries[pipelineID]; e != nil {
		e.pending++
		c.metrics.accepted(c.clk.Now())
		return notifyOK
	}
	if len(c.entries) >= c.maxPending {
		return notifyFull
	}
	e := &entry{}
	c.entries[pipelineID] = e
	c.metrics.accepted(c.clk.Now())
	c.start(pipelineID, e, 1)
	return notifyOK
}

// start opens a window and runs a refresh for the given number of events;
// c.mu is held, the window is closed and no refresh runs.
func (c *coalescer) start(pipelineID int64, e *entry, events int) {
	e.running, e.windowOpen, e.pending = true, true, 0
	e.timer = c.clk.AfterFunc(c.gap, func() { c.windowEnded(pipelineID, e) })
	if c.onStart != nil {
		c.onStart(pipelineID)
	}
	c.wg.Add(1)
	go c.refresh(pipelineID, e, events)
}

func (c *coalescer) refresh(pipelineID int64, e *entry, events int) {
	defer c.wg.Done()
	watched := c.refresher.Refresh(c.ctx, pipelineID)
	if watched {
		level.Debug(c.log.logger).Log("msg", "webhook: pipeline refreshed", "pipeline_id", pipelineID, "events", events)
	} else {
		c.metrics.unwatched(events)
		c.log.report("pipeline not watched", "msg", "webhook: event for a pipeline that is not watched; ignored", "pipeline_id", pipelineID, "events", events)
		if c.onUnwatched != nil && c.ctx.Err() == nil {
			c.onUnwatched(pipelineID)
		}
	}
	c.mu.Lock()
	e.running = false
	if !c.closed && !e.windowOpen {
		c.next(pipelineID, e)
	}
	c.mu.Unlock()
	if c.afterRefresh != nil {
		c.afterRefresh(pipelineID)
	}
}

func (c *coalescer) windowEnded(pipelineID int64, e *entry) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.closed || c.entries[pipelineID] != e {
		return
	}
	e.windowOpen = false
	if !e.running {
		c.next(pipelineID, e)
	}
}

// next runs the trailing refresh, or forgets the pipeline when no event
// came; c.mu is held, the window is closed and no refresh runs.
func (c *coalescer) next(pipelineID int64, e *entry) {
	if e.pending > 0 {
		c.start(pipelineID, e, e.pending)
		return
	}
	delete(c.entries, pipelineID)
}

// close stops the timers, drops the pending events, cancels the running
// refreshes and waits for them to return.
func (c *coalescer) close() {
	c.mu.Lock()
	if !c.closed {
		c.closed = true
		for _, e := range c.entries {
			e.timer.Stop()
		}
		clear(c.entries)
	}
	c.mu.Unlock()
	c.cancel()
	c.wg.Wait()
}

// pendingPipelines reports how many pipelines have an entry (tests).
func (c *coalescer) pendingPipelines() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return len(c.entries)
}

// causeLog logs the first occurrence of each cause at warn and later ones
// at debug, as the rest of the exporter does. Causes come from a fixed set
// of texts, so the set of seen ones stays small; it is capped all the same.
type causeLog struct {
	logger log.Logger
	mu     sync.Mutex
	seen   map[string]bool
}

const maxCauses = 64

func newCauseLog(l log.Logger) *causeLog {
	if l == nil {
		l = log.NewNopLogger()
	}
	return &causeLog{logger: l, seen: make(map[string]bool)}
}

func (l *causeLog) report(cause string, keyvals ...any) {
	l.mu.Lock()
	first := !l.seen[cause] && len(l.seen) < maxCauses
	if first {
		l.seen[cause] = true
	}
	l.mu.Unlock()
	logger := level.Debug(l.logger)
	if first {
		logger = level.Warn(l.logger)
	}
	logger.Log(append(keyvals, "cause", cause)...)
}
