package yunxiao

import (
	"fmt"
	"net/http"
	"strings"
	"sync/atomic"
	"testing"
	"time"
)

// TestRateLimitPausesSubject: a 429 on page 2 of a listing holds back the
// next listing of that pipeline whatever page or startTime it asks for,
// and nothing else: not another pipeline's listing, not the same
// pipeline's other calls.
func TestRateLimitPausesSubject(t *testing.T) {
	var listings7 atomic.Int64
	srv, n := counted(t, func(w http.ResponseWriter, r *http.Request) {
		q := r.URL.Query()
		switch {
		case strings.HasSuffix(r.URL.Path, "/pipelines/7/runs"):
			listings7.Add(1)
			if q.Get("page") == "2" {
				w.Header().Set("Retry-After", "60")
				writeJSONBody(w, 429, `{"errorCode":"TooManyRequests"}`)
				return
			}
			w.Header().Set("x-total-pages", "2")
			items := make([]string, PerPage)
			for i := range items {
				items[i] = fmt.Sprintf(`{"pipelineRunId":%d,"status":"SUCCESS"}`, 100+i)
			}
			writeJSONBody(w, 200, "["+strings.Join(items, ",")+"]")
		case strings.HasSuffix(r.URL.Path, "/runs"):
			writeJSONBody(w, 200, `[]`)
		default:
			writeJSONBody(w, 200, `{"pipelineRunId":1}`)
		}
	})
	c, _ := newClient(t, testOptions(srv.URL))
	ctx := deadline(t, 30*time.Second)

	_, err := c.ListPipelineRuns(ctx, 7, 1000)
	mustFail(t, err, ReasonRateLimited)
	if listings7.Load() != 2 {
		t.Fatalf("pipeline 7 saw %d listing requests, want 2 (pages 1 and 2)", listings7.Load())
	}
	for _, since := range []Millis{1000, 2000, 0} {
		_, err = c.ListPipelineRuns(ctx, 7, since)
		e := mustFail(t, err, ReasonRateLimited)
		if !strings.HasPrefix(e.Message, "not sent:") || listings7.Load() != 2 {
			t.Errorf("since %d: %v after %d listing requests: the pause did not hold back page 1 of another range", since, err, listings7.Load())
		}
	}
	if ctx.Err() != nil {
		t.Error("a held-back listing waited out the deadline")
	}

	before := n.Load()
	if _, err := c.ListPipelineRuns(ctx, 8, 1000); err != nil {
		t.Errorf("another pipeline's listing: %v", err)
	}
	if _, err := c.GetLatestPipelineRun(ctx, 7); err != nil {
		t.Errorf("the same pipeline's latest run: %v", err)
	}
	if n.Load() != before+2 {
		t.Errorf("server saw %d more requests, want 2", n.Load()-before)
	}
}

// TestPausesPruned: entries go once their pause has long passed, whenever
// a new 429 is noted, so the map holds the subjects paused now or lately
// and not every subject that was ever paused; a subject's run of 429s is
// remembered across a gap as long as a fetch interval, so its backoff
// keeps doubling.
func TestPausesPruned(t *testing.T) {
	c, _ := newClient(t, testOptions("http://127.0.0.1:1"))
	p := c.pauses
	now := time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)
	p.now = func() time.Time { return now }

	for i := range 1000 {
		p.note(subject(EndpointGetLatestPipelineRun, int64(i)), "")
	}
	if p.size() != 1000 {
		t.Fatalf("%d entries, want 1000", p.size())
	}
	// Within the memory: nothing is pruned, and pipeline 0's backoff doubles.
	now = now.Add(30 * time.Second)
	if d := p.note(subject(EndpointGetLatestPipelineRun, 0), ""); d != 2*time.Second {
		t.Errorf("second 429 30 s later: hold off %v, want 2s", d)
	}
	if p.size() != 1000 {
		t.Errorf("%d entries 30 s later, want 1000", p.size())
	}

	// Long after: one more 429 prunes every entry whose pause is long over;
	// pipeline 0's second pause ended 31 s later than the others: it stays.
	now = now.Add(pauseMemory - 20*time.Second)
	long := subject(EndpointListPipelineRuns, 5)
	p.note(long, "600")
	if p.size() != 2 {
		t.Errorf("%d entries after the pauses passed, want 2", p.size())
	}
	now = now.Add(30 * time.Second)
	p.note(subject(EndpointGetPipeline, 9), "")
	if p.size() != 2 || p.left(long) <= 0 {
		t.Errorf("%d entries, pause left %v: the running pause must stay, the old one go", p.size(), p.left(long))
	}
	// An expired, forgotten run of 429s starts over at 1 s.
	now = now.Add(time.Hour)
	if d := p.note(subject(EndpointGetPipeline, 9), ""); d != time.Second || p.size() != 1 {
		t.Errorf("a 429 an hour later: hold off %v with %d entries, want 1s and 1", d, p.size())
	}
}
