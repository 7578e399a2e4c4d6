package collector

import (
	"sort"
	"strings"

	"github.com/yunxiao-exporter/yunxiao_exporter/yunxiao"
)

// maxPending is how long a run may stay unfinished before history stops
// waiting for it. A pending run costs no listing (it is looked up by id,
// see pendingLookups), so a run waiting a weekend for approval is still
// counted when it ends.
const maxPending = 7 * 24 * 60 * 60 * 1000 // ms

// maxPendingLookups bounds the GetPipelineRun calls one refresh makes for
// runs that are pending but no longer the latest; more wait their turn.
const maxPendingLookups = 3

// seedWindow is how far back the first sight of a pipeline lists its runs
// to learn its last finished and last successful run (nothing is counted).
const seedWindow = 7 * 24 * 60 * 60 * 1000 // ms

// Run counters exported from 0 as soon as history starts, so that
// increase() sees the first run of each: every final status the API
// documents by every documented trigger mode. Others are born at their
// first run.
var (
	initialRunStatuses = []string{"CANCELED", "FAIL", "SUCCESS"}
	initialTriggerMode = []string{"manual", "pipeline", "push", "scheduled", "webhook"}
)

// runDurationBuckets suit CI runs: ten seconds to six hours.
var runDurationBuckets = []float64{10, 30, 60, 120, 300, 600, 900, 1200, 1800, 2700, 3600, 5400, 7200, 10800, 21600}

// restoreBuckets suit times to restore, which span minutes to days: five
// minutes to a week.
var restoreBuckets = []float64{300, 900, 1800, 3600, 7200, 14400, 21600, 43200, 86400, 172800, 345600, 604800}

// history counts a pipeline's finished runs exactly once each, from the
// run lists the API gives (ListPipelineRuns, filtered by start time).
//
//   - The first sight of the pipeline sets the watermark: runs that finished
//     before the exporter looked are never counted (none invented), but the
//     run in progress then is remembered as pending and counted when it ends.
//   - A finished run is counted if it has not been counted and it was pending
//     or started at or after the watermark. Several runs finishing between
//     two refreshes are all in the list, so none is lost.
//   - A run still unfinished is pending. The listing never waits for it: it
//     moves on from the newest start seen, and a pending run that is not the
//     latest is looked up by id (GetPipelineRun, a few per refresh), so one
//     run waiting for approval does not make every refresh relist the runs
//     since it started.
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
	duration histo // of every counted run with a start and an end
	queued   histo // of counted runs whose details were read (GetPipelineRun)
	exec     histo // likewise
	restore  histo // red (first FAIL after a SUCCESS) until green again
	observed int   // runs counted, for tests and logs
	lookup   int   // rotates pending lookups when more are pending than one refresh looks up

	// Restore state: whether the last finished run known is green, and
	// since when it is red (the end of the first FAIL after a SUCCESS).
	greenKnown bool
	redSince   yunxiao.Millis

	lastCounted []yunxiao.RunSummary // what the last observe counted
}

// histo is a cumulative histogram over bounds.
type histo struct {
	bounds  []float64 // shared, never modified
	buckets []uint64
	sum     float64
	count   uint64
}

func newHisto(bounds []float64) histo {
	return histo{bounds: bounds, buckets: make([]uint64, len(bounds))}
}

func (h *histo) observe(seconds float64) {
	h.sum += seconds
	h.count++
	for i, bound := range h.bounds {
		if seconds <= bound {
			h.buckets[i]++
		}
	}
}

func (h histo) clone() histo {
	return histo{bounds: h.bounds, buckets: append([]uint64(nil), h.buckets...), sum: h.sum, count: h.count}
}

type runKey struct{ status, triggerMode string }

func newHistory() *history {
	h := &history{
		pending:  map[yunxiao.ID]yunxiao.Millis{},
		counted:  map[yunxiao.ID]yunxiao.Millis{},
		runs:     map[runKey]uint64{},
		duration: newHisto(runDurationBuckets), queued: newHisto(runDurationBuckets), exec: newHisto(runDurationBuckets),
		restore: newHisto(restoreBuckets),
	}
	for _, status := range initialRunStatuses {
		for _, mode := range initialTriggerMode {
			h.runs[runKey{status, mode}] = 0
		}
	}
	return h
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
func (h *history) since() yunxiao.Millis { return h.watermark }

// pendingLookups returns the pending runs to look up by id this refresh:
// those not in listed and not the latest run (which answers for itself),
// at most maxPendingLookups, taking turns when there are more.
func (h *history) pendingLookups(listed []yunxiao.RunSummary, latest yunxiao.ID) []yunxiao.ID {
	seen := make(map[yunxiao.ID]bool, len(listed)+1)
	for _, r := range listed {
		seen[r.PipelineRunID] = true
	}
	seen[latest] = true
	var ids []yunxiao.ID
	for id := range h.pending {
		if !seen[id] {
			ids = append(ids, id)
		}
	}
	if len(ids) <= maxPendingLookups {
		return ids
	}
	sort.Slice(ids, func(i, j int) bool { return ids[i] < ids[j] })
	h.lookup = (h.lookup + maxPendingLookups) % len(ids)
	out := make([]yunxiao.ID, 0, maxPendingLookups)
	for i := range maxPendingLookups {
		out = append(out, ids[(h.lookup+i)%len(ids)])
	}
	return out
}

// forget stops waiting for a pending run the API no longer has.
func (h *history) forget(id yunxiao.ID) { delete(h.pending, id) }

// isPending reports whether id is a run history is waiting for.
func (h *history) isPending(id yunxiao.ID) bool {
	_, ok := h.pending[id]
	return ok
}

// observe takes the runs listed since h.since() and counts the newly
// finished ones; it returns how many it counted.
func (h *history) observe(runs []yunxiao.RunSummary) int {
	n := 0
	h.lastCounted = h.lastCounted[:0]
	newest := h.watermark
	for _, r := range runs {
		if r.PipelineRunID == 0 {
			continue
		}
		if !h.isPending(r.PipelineRunID) {
			// A pending run looked up by id started before the
			// watermark; it must not pull the listing back.
			newest = max(newest, r.StartTime)
		}
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
		h.lastCounted = append(h.lastCounted, r)
		n++
	}
	h.replay(h.lastCounted, true)
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
	h.duration.observe((r.EndTime - r.StartTime).Seconds())
}

// wouldCount reports whether observe would count r now: a finished run
// not yet counted that was pending or started at or after the watermark.
func (h *history) wouldCount(r yunxiao.RunSummary) bool {
	if r.PipelineRunID == 0 || !isFinal(r.Status) {
		return false
	}
	if _, done := h.counted[r.PipelineRunID]; done {
		return false
	}
	return h.isPending(r.PipelineRunID) || r.StartTime >= h.watermark
}

// seed replays the runs listed at first sight through the restore state,
// observing nothing: it learns whether the pipeline is red, and since when,
// so that a recovery after a restart of the exporter is observed once.
func (h *history) seed(runs []yunxiao.RunSummary) { h.replay(runs, false) }

// replay moves the restore state through finished runs in the order they
// ended: the first FAIL after a SUCCESS starts a red spell, the next
// SUCCESS ends it (and, when observing, its length is one time to restore).
// CANCELED and other final statuses change nothing.
func (h *history) replay(runs []yunxiao.RunSummary, observe bool) {
	ordered := make([]yunxiao.RunSummary, 0, len(runs))
	for _, r := range runs {
		if isFinal(r.Status) && r.EndTime.IsSet() {
			ordered = append(ordered, r)
		}
	}
	sort.SliceStable(ordered, func(i, j int) bool {
		if ordered[i].EndTime != ordered[j].EndTime {
			return ordered[i].EndTime < ordered[j].EndTime
		}
		return ordered[i].PipelineRunID < ordered[j].PipelineRunID
	})
	for _, r := range ordered {
		switch strings.ToUpper(r.Status) {
		case "SUCCESS":
			if h.redSince.IsSet() && observe && r.EndTime >= h.redSince {
				h.restore.observe((r.EndTime - h.redSince).Seconds())
			}
			h.greenKnown, h.redSince = true, 0
		case "FAIL", "FAILED":
			if h.greenKnown && !h.redSince.IsSet() {
				h.redSince = r.EndTime
			}
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
