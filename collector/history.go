package collector

import (
	"sort"

	"github.com/yunxiao-exporter/yunxiao_exporter/yunxiao"
)

// maxPending is how long a run may stay unfinished before history stops
// waiting for it: a run stuck for days must not hold the listing window
// (and so the number of pages fetched) open forever.
const maxPending = 24 * 60 * 60 * 1000 // ms

// runDurationBuckets suit CI runs: ten seconds to six hours.
var runDurationBuckets = []float64{10, 30, 60, 120, 300, 600, 900, 1200, 1800, 2700, 3600, 5400, 7200, 10800, 21600}

// history counts a pipeline's finished runs exactly once each, from the
// run lists the API gives (ListPipelineRuns, filtered by start time).
//
//   - The first sight of the pipeline sets the watermark: runs that finished
//     before the exporter looked are never counted (none invented), but the
//     run in progress then is remembered as pending and counted when it ends.
//   - A finished run is counted if it has not been counted and it was pending
//     or started at or after the watermark. Several runs finishing between
//     two refreshes are all in the list, so none is lost.
//   - Only one refresh of a pipeline runs at a time (the collector's
//     singleflight), and the state lives with the pipeline's target across
//     config reloads, so no run is counted twice.
//
// It is not safe for concurrent use; the target's lock guards it.
type history struct {
	started   bool
	watermark yunxiao.Millis                // runs started at or after this are new
	pending   map[yunxiao.ID]yunxiao.Millis // unfinished runs seen: id -> start
	counted   map[yunxiao.ID]yunxiao.Millis // counted runs still inside the query window: id -> start

	runs     map[runKey]uint64
	buckets  []uint64 // cumulative counts per runDurationBuckets bound
	sum      float64
	count    uint64
	observed int // runs counted, for tests and logs
}

type runKey struct{ status, triggerMode string }

func newHistory() *history {
	return &history{
		pending: map[yunxiao.ID]yunxiao.Millis{},
		counted: map[yunxiao.ID]yunxiao.Millis{},
		runs:    map[runKey]uint64{},
		buckets: make([]uint64, len(runDurationBuckets)),
	}
}

// start sets the watermark at the first sight of the pipeline; latest is
// its latest run then (nil when it has none). Runs created after the latest
// one are new; the API's own clock says so, so clock skew between the
// exporter and the API cannot invent or lose runs. Without a latest run,
// the exporter's now stands in.
func (h *history) start(now yunxiao.Millis, latest *yunxiao.PipelineRun) {
	h.started, h.watermark = true, now
	if latest == nil || !latest.CreateTime.IsSet() {
		return
	}
	h.watermark = latest.CreateTime + 1
	if !isFinal(latest.Status) {
		h.pending[latest.PipelineRunID] = latest.CreateTime
	}
}

// since is the start time to list runs from.
func (h *history) since() yunxiao.Millis {
	from := h.watermark
	for _, start := range h.pending {
		from = min(from, start)
	}
	return from
}

// observe takes the runs listed since h.since() and counts the newly
// finished ones; it returns how many it counted.
func (h *history) observe(runs []yunxiao.RunSummary) int {
	n := 0
	newest := h.watermark
	for _, r := range runs {
		if r.PipelineRunID == 0 {
			continue
		}
		newest = max(newest, r.StartTime)
		if _, done := h.counted[r.PipelineRunID]; done {
			continue
		}
		_, wasPending := h.pending[r.PipelineRunID]
		isNew := r.StartTime >= h.watermark
		if !wasPending && !isNew {
			continue // finished or started before we first looked
		}
		if !isFinal(r.Status) {
			h.pending[r.PipelineRunID] = r.StartTime
			continue
		}
		delete(h.pending, r.PipelineRunID)
		h.counted[r.PipelineRunID] = r.StartTime
		h.count1(r)
		n++
	}
	// Runs started before the newest listed one are all known now (counted
	// or pending), so the next listing can start there; the counted ones at
	// or after it stay remembered so that they are not counted again.
	h.watermark = newest
	for id, start := range h.pending {
		if start < newest-maxPending {
			delete(h.pending, id)
		}
	}
	from := h.since()
	for id, start := range h.counted {
		if start < from {
			delete(h.counted, id)
		}
	}
	return n
}

func (h *history) count1(r yunxiao.RunSummary) {
	mode, ok := yunxiao.TriggerModeName(r.TriggerMode)
	if !ok {
		mode = "unknown"
	}
	h.runs[runKey{r.Status, mode}]++
	h.observed++
	if !r.StartTime.IsSet() || !r.EndTime.IsSet() || r.EndTime < r.StartTime {
		return // counted, but no duration to observe
	}
	d := (r.EndTime - r.StartTime).Seconds()
	h.sum += d
	h.count++
	for i, bound := range runDurationBuckets {
		if d <= bound {
			h.buckets[i]++
		}
	}
}

// keys returns the counted (status, trigger mode) pairs in a stable order.
func (h *history) keys() []runKey {
	keys := make([]runKey, 0, len(h.runs))
	for k := range h.runs {
		keys = append(keys, k)
	}
	sort.Slice(keys, func(i, j int) bool {
		if keys[i].status != keys[j].status {
			return keys[i].status < keys[j].status
		}
		return keys[i].triggerMode < keys[j].triggerMode
	})
	return keys
}
