package collector

import (
	"testing"

	"github.com/yunxiao-exporter/yunxiao_exporter/yunxiao"
)

const minute = yunxiao.Millis(60_000)

// T0 is when the exporter first sees the pipeline.
const t0 = yunxiao.Millis(1795694400000)

func run(id int64, status string, start, end yunxiao.Millis) yunxiao.RunSummary {
	return yunxiao.RunSummary{PipelineRunID: yunxiao.ID(id), Status: status, TriggerMode: 3, StartTime: start, EndTime: end}
}

func TestHistoryFirstSightInventsNothing(t *testing.T) {
	h := newHistory()
	h.start(t0, &yunxiao.PipelineRun{PipelineRunID: 9, Status: "SUCCESS", CreateTime: t0 - 10*minute})
	// Everything the API lists finished before the exporter looked.
	n := h.observe([]yunxiao.RunSummary{
		run(9, "SUCCESS", t0-10*minute, t0-5*minute),
		run(8, "FAIL", t0-30*minute, t0-20*minute),
	})
	if n != 0 || h.observed != 0 {
		t.Errorf("counted %d runs that finished before first sight", h.observed)
	}
}

func TestHistoryRunInProgressAtFirstSightIsCounted(t *testing.T) {
	h := newHistory()
	h.start(t0, &yunxiao.PipelineRun{PipelineRunID: 9, Status: "RUNNING", CreateTime: t0 - 10*minute})
	// The listing starts after it (issue 10 #7); it is followed by id.
	if h.since() != t0-10*minute+1 {
		t.Fatalf("must list from just after the latest run's start, lists from %d", h.since())
	}
	if ids := h.pendingLookups(nil, 10); len(ids) != 1 || ids[0] != 9 {
		t.Fatalf("the pending run is not looked up: %v", ids)
	}
	if ids := h.pendingLookups(nil, 9); len(ids) != 0 {
		t.Fatalf("the latest run answers for itself, yet is looked up: %v", ids)
	}
	h.observe([]yunxiao.RunSummary{run(9, "RUNNING", t0-10*minute, 0)})
	n := h.observe([]yunxiao.RunSummary{run(9, "SUCCESS", t0-10*minute, t0+2*minute)})
	if n != 1 || h.runs[runKey{"SUCCESS", "push"}] != 1 {
		t.Errorf("the run in progress at first sight: counted %d, runs %v", n, h.runs)
	}
}

func TestHistorySeveralRunsFinishBetweenRefreshes(t *testing.T) {
	h := newHistory()
	h.start(t0, nil)
	n := h.observe([]yunxiao.RunSummary{
		run(12, "SUCCESS", t0+9*minute, t0+10*minute),
		run(11, "FAIL", t0+5*minute, t0+8*minute),
		run(10, "CANCELED", t0+1*minute, t0+2*minute),
	})
	if n != 3 {
		t.Fatalf("counted %d of 3 runs finished between refreshes", n)
	}
	for _, k := range []runKey{{"SUCCESS", "push"}, {"FAIL", "push"}, {"CANCELED", "push"}} {
		if h.runs[k] != 1 {
			t.Errorf("%v counted %d times", k, h.runs[k])
		}
	}
}

func TestHistoryNeverCountsTwice(t *testing.T) {
	h := newHistory()
	h.start(t0, nil)
	listing := []yunxiao.RunSummary{run(10, "SUCCESS", t0+minute, t0+2*minute), run(11, "RUNNING", t0+3*minute, 0)}
	h.observe(listing)
	h.observe(listing) // the same answer again (a refresh with nothing new)
	// 11 finishes; 10 is listed again because the window starts at 11's start or before.
	h.observe([]yunxiao.RunSummary{run(10, "SUCCESS", t0+minute, t0+2*minute), run(11, "SUCCESS", t0+3*minute, t0+9*minute)})
	h.observe([]yunxiao.RunSummary{run(11, "SUCCESS", t0+3*minute, t0+9*minute)})
	if got := h.runs[runKey{"SUCCESS", "push"}]; got != 2 || h.observed != 2 {
		t.Errorf("SUCCESS counted %d times over 2 runs (observed %d)", got, h.observed)
	}
}

func TestHistoryWindowMovesAndForgets(t *testing.T) {
	h := newHistory()
	h.start(t0, nil)
	for i := int64(0); i < 100; i++ {
		start := t0 + yunxiao.Millis(i)*minute
		h.observe([]yunxiao.RunSummary{run(100+i, "SUCCESS", start, start+minute/2)})
	}
	if h.observed != 100 {
		t.Errorf("observed %d of 100 runs", h.observed)
	}
	if len(h.counted) > 2 || len(h.pending) != 0 {
		t.Errorf("the state grows: %d counted ids kept, %d pending", len(h.counted), len(h.pending))
	}
	if h.since() != t0+99*minute {
		t.Errorf("the window did not move: lists from %d", h.since())
	}
}

func TestHistoryDurations(t *testing.T) {
	h := newHistory()
	h.start(t0, nil)
	h.observe([]yunxiao.RunSummary{
		run(1, "SUCCESS", t0, t0+yunxiao.Millis(45_000)), // 45 s
		run(2, "FAIL", t0+minute, t0+minute+20*minute),   // 20 min
		run(3, "SUCCESS", t0+2*minute, 0),                // final without an end: counted, no duration
		run(4, "UNKOWN", t0+3*minute, t0+4*minute),       // not a final status: pending
		run(5, "SUCCESS", t0+5*minute, t0+4*minute),      // ends before it starts: no duration
	})
	if h.observed != 4 || h.duration.count != 2 || h.duration.sum != 45+1200 {
		t.Fatalf("observed %d, durations %d summing %g", h.observed, h.duration.count, h.duration.sum)
	}
	want := map[float64]uint64{30: 0, 60: 1, 600: 1, 1200: 2, 21600: 2}
	for i, bound := range runDurationBuckets {
		if w, ok := want[bound]; ok && h.duration.buckets[i] != w {
			t.Errorf("bucket le=%g: %d, want %d", bound, h.duration.buckets[i], w)
		}
	}
	if _, pending := h.pending[4]; !pending {
		t.Error("a run in an unknown status must wait, not be counted")
	}
}

// A pending run never holds the listing window (issue 10 #7); after a
// week it is no longer waited for at all.
func TestHistoryPendingRunHoldsNothing(t *testing.T) {
	h := newHistory()
	h.start(t0, &yunxiao.PipelineRun{PipelineRunID: 1, Status: "WAITING", CreateTime: t0 - minute})
	day := 24 * 60 * minute
	h.observe([]yunxiao.RunSummary{run(2, "SUCCESS", t0+day, t0+day+minute)})
	if !h.isPending(1) || h.since() != t0+day {
		t.Errorf("after a day: pending %v, lists from %d; want still pending and listing from %d", h.isPending(1), h.since(), t0+day)
	}
	h.observe([]yunxiao.RunSummary{run(3, "SUCCESS", t0+8*day, t0+8*day+minute)})
	if h.isPending(1) {
		t.Error("a run pending for over a week is still waited for")
	}
}

// Lookups take turns when more runs are pending than one refresh looks up.
func TestHistoryPendingLookupsRotate(t *testing.T) {
	h := newHistory()
	h.start(t0, nil)
	var listed []yunxiao.RunSummary
	for i := int64(1); i <= 7; i++ {
		listed = append(listed, run(i, "WAITING", t0+yunxiao.Millis(i)*minute, 0))
	}
	h.observe(listed)
	seen := map[yunxiao.ID]bool{}
	for range 3 {
		ids := h.pendingLookups(nil, 0)
		if len(ids) != maxPendingLookups {
			t.Fatalf("looked up %d, want %d", len(ids), maxPendingLookups)
		}
		for _, id := range ids {
			seen[id] = true
		}
	}
	if len(seen) != 7 {
		t.Errorf("three refreshes looked up %d of 7 pending runs", len(seen))
	}
}

// Counters exist at 0 for every documented final status and trigger mode
// as soon as history starts (issue 10 #3).
func TestHistoryCountersBornAtZero(t *testing.T) {
	h := newHistory()
	if len(h.runs) != 15 {
		t.Fatalf("%d counters at start, want 3 statuses × 5 trigger modes", len(h.runs))
	}
	for k, n := range h.runs {
		if n != 0 {
			t.Errorf("%v starts at %d", k, n)
		}
	}
}
