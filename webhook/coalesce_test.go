package webhook

import (
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus/testutil"
	"go.uber.org/goleak"
)

// drain returns what ch holds now.
func drain[T any](ch <-chan T) []T {
	var out []T
	for {
		select {
		case v := <-ch:
			out = append(out, v)
		default:
			return out
		}
	}
}

func TestCoalescerSingleEvent(t *testing.T) {
	f := newFixture(t, Options{})
	t0 := f.clk.Now()
	if got := f.rc.co.notify(7); got != notifyOK {
		t.Fatalf("notify = %v", got)
	}
	if s := drain(f.starts); len(s) != 1 || s[0].id != 7 || !s[0].at.Equal(t0) {
		t.Fatalf("starts = %+v, want pipeline 7 at once", s)
	}
	if c := recv(t, f.ref.calls); c.id != 7 {
		t.Fatalf("Refresh(%d), want 7", c.id)
	}
	recv(t, f.done)
	f.clk.Advance(DefaultWindow)
	none(t, f.starts, "refresh after a window without events")
	if n := f.rc.co.pendingPipelines(); n != 0 {
		t.Errorf("entries after the window = %d, want 0", n)
	}
	if n := f.clk.armed(); n != 0 {
		t.Errorf("armed timers after the window = %d, want 0", n)
	}
}

// A run's burst: 100 events for one pipeline within a second cause one
// refresh at once and one at the end of the window, whatever the spacing
// and however long the first refresh takes.
func TestCoalescerBurst(t *testing.T) {
	for _, tc := range []struct {
		name    string
		spacing time.Duration
		gated   bool // the leading refresh still runs when the window ends
	}{
		{"all at once", 0, false},
		{"spread over 990ms", 10 * time.Millisecond, false},
		{"leading refresh slower than the window", 10 * time.Millisecond, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			f := newFixture(t, Options{})
			if tc.gated {
				f.ref.gate = make(chan struct{})
			}
			t0 := f.clk.Now()
			for i := range 100 {
				if i > 0 {
					f.clk.Advance(tc.spacing)
				}
				if got := f.rc.co.notify(42); got != notifyOK {
					t.Fatalf("notify = %v", got)
				}
			}
			if s := drain(f.starts); len(s) != 1 || !s[0].at.Equal(t0) {
				t.Fatalf("starts during the burst = %+v, want one at the first event", s)
			}
			if !tc.gated {
				recv(t, f.done)
			}
			f.clk.Advance(t0.Add(DefaultWindow).Sub(f.clk.Now()))
			if tc.gated {
				none(t, f.starts, "trailing refresh while the leading one runs")
				f.ref.gate <- struct{}{} // the leading refresh returns: the trailing one starts
			}
			if s := recv(t, f.starts); s.id != 42 || !s.at.Equal(t0.Add(DefaultWindow)) {
				t.Fatalf("trailing start = %+v, want pipeline 42 at the window's end", s)
			}
			if tc.gated {
				recv(t, f.done)
				f.ref.gate <- struct{}{}
			}
			recv(t, f.done)
			f.clk.Advance(DefaultWindow) // a window without events: forgotten
			none(t, f.starts, "third refresh")
			f.rc.Close()
			if calls := drain(f.ref.calls); len(calls) != 2 {
				t.Errorf("Refresh called %d times, want 2", len(calls))
			}
			if f.ref.overlaps != 0 {
				t.Errorf("%d refreshes of one pipeline overlapped", f.ref.overlaps)
			}
			if n := f.rc.co.pendingPipelines(); n != 0 {
				t.Errorf("entries = %d, want 0", n)
			}
			if got := testutil.ToFloat64(f.rc.metrics.events.WithLabelValues(resultAccepted)); got != 100 {
				t.Errorf("accepted = %v, want 100", got)
			}
		})
	}
}

func TestCoalescerTwoPipelinesIndependent(t *testing.T) {
	f := newFixture(t, Options{})
	t0 := f.clk.Now()
	f.rc.co.notify(1)
	f.rc.co.notify(2)
	if s := drain(f.starts); len(s) != 2 || s[0] != (call{1, t0}) || s[1] != (call{2, t0}) {
		t.Fatalf("starts = %+v, want 1 and 2 at once", s)
	}
	recv(t, f.done)
	recv(t, f.done)
	// More events for pipeline 1 only: its trailing refresh, none for 2.
	f.clk.Advance(500 * time.Millisecond)
	f.rc.co.notify(1)
	f.rc.co.notify(1)
	f.clk.Advance(1500 * time.Millisecond)
	if s := drain(f.starts); len(s) != 1 || s[0].id != 1 {
		t.Fatalf("starts at the window's end = %+v, want pipeline 1's trailing refresh only", s)
	}
	recv(t, f.done)
	// Pipeline 2's window has ended: a new event is a leading edge again.
	f.rc.co.notify(2)
	if s := drain(f.starts); len(s) != 1 || s[0] != (call{2, t0.Add(DefaultWindow)}) {
		t.Fatalf("starts = %+v, want pipeline 2 at once", s)
	}
	recv(t, f.done)
}

// A steady stream of events: one refresh per window, never two closer
// than the minimum interval.
func TestCoalescerSteadyStream(t *testing.T) {
	for _, tc := range []struct {
		name        string
		window, min time.Duration
		wantGap     time.Duration
	}{
		{"defaults", 0, 0, DefaultWindow},
		{"window shorter than the minimum interval", 100 * time.Millisecond, time.Second, time.Second},
		{"longer window", 5 * time.Second, time.Second, 5 * time.Second},
	} {
		t.Run(tc.name, func(t *testing.T) {
			f := newFixture(t, Options{Window: tc.window, MinInterval: tc.min})
			var starts []call
			settle := func() {
				s := drain(f.starts)
				for range s {
					recv(t, f.done)
				}
				starts = append(starts, s...)
			}
			for range 200 { // 20 s, an event every 100 ms
				f.rc.co.notify(5)
				settle()
				f.clk.Advance(100 * time.Millisecond)
				settle()
			}
			for i := 1; i < len(starts); i++ {
				if gap := starts[i].at.Sub(starts[i-1].at); gap != tc.wantGap {
					t.Errorf("refresh %d started %v after the previous one, want %v", i, gap, tc.wantGap)
				}
			}
			if want := int(20*time.Second/tc.wantGap) + 1; len(starts) != want { // at 0 and at the end of every window
				t.Errorf("%d refreshes in 20s, want %d", len(starts), want)
			}
		})
	}
}

func TestCoalescerUnwatched(t *testing.T) {
	hooked := make(chan int64, 10)
	f := newFixture(t, Options{OnUnwatched: func(id int64) { hooked <- id }})
	f.ref.watched = func(id int64) bool { return id != 99 }
	f.rc.co.notify(99) // leading refresh: 1 event
	recv(t, f.done)
	f.rc.co.notify(99)
	f.rc.co.notify(99)
	f.rc.co.notify(1) // watched
	recv(t, f.done)
	f.clk.Advance(DefaultWindow) // trailing refresh of 99: 2 events
	recv(t, f.done)
	if got := testutil.ToFloat64(f.rc.metrics.events.WithLabelValues(resultUnwatched)); got != 3 {
		t.Errorf("unwatched = %v, want 3 (every event for pipeline 99)", got)
	}
	if got := testutil.ToFloat64(f.rc.metrics.events.WithLabelValues(resultAccepted)); got != 4 {
		t.Errorf("accepted = %v, want 4", got)
	}
	if got := drain(hooked); len(got) != 2 || got[0] != 99 || got[1] != 99 {
		t.Errorf("OnUnwatched calls = %v, want [99 99] (once per refresh)", got)
	}
	if n := drain(f.ref.calls); len(n) != 3 {
		t.Errorf("Refresh called %d times, want 3", len(n))
	}
}

func TestCoalescerBounded(t *testing.T) {
	f := newFixture(t, Options{})
	f.rc.co.maxPending = 3
	for id := int64(1); id <= 3; id++ {
		if got := f.rc.co.notify(id); got != notifyOK {
			t.Fatalf("notify(%d) = %v", id, got)
		}
	}
	if got := f.rc.co.notify(4); got != notifyFull {
		t.Fatalf("notify(4) with 3 pending = %v, want full", got)
	}
	if got := f.rc.co.notify(2); got != notifyOK {
		t.Fatalf("notify(2), already pending = %v, want ok", got)
	}
	for range 3 {
		recv(t, f.done)
	}
	f.clk.Advance(DefaultWindow) // 2's trailing refresh starts; 1 and 3 are forgotten
	recv(t, f.done)
	if got := f.rc.co.notify(4); got != notifyOK {
		t.Fatalf("notify(4) after the windows = %v, want ok", got)
	}
	recv(t, f.done)
}

// Close cancels the running refreshes, waits for them, drops the pending
// trailing one and stops the timers: nothing is left running.
func TestCoalescerClose(t *testing.T) {
	defer goleak.VerifyNone(t)
	clk := newFakeClock()
	ref := newFakeRefresher(clk)
	ref.gate = make(chan struct{}) // never opened: only the context ends a refresh
	rc := newReceiver(t.Context(), Options{Refresher: ref, Token: func() string { return testToken }}, clk)
	rc.co.notify(1)
	rc.co.notify(1) // a trailing refresh pending
	rc.co.notify(2)
	recv(t, ref.calls)
	recv(t, ref.calls)
	rc.Close()
	if ref.cancelled != 2 {
		t.Errorf("%d refreshes saw their context end, want 2", ref.cancelled)
	}
	if n := clk.armed(); n != 0 {
		t.Errorf("%d timers armed after Close", n)
	}
	clk.Advance(time.Hour)
	none(t, ref.calls, "refresh after Close")
	if got := rc.co.notify(3); got != notifyClosed {
		t.Errorf("notify after Close = %v, want closed", got)
	}
	rc.Close() // a second Close is harmless
}

// The real clock (time.AfterFunc): the same lifecycle, no leaks.
func TestCoalescerRealClock(t *testing.T) {
	defer goleak.VerifyNone(t)
	ref := newFakeRefresher(newFakeClock())
	rc := New(t.Context(), Options{Refresher: ref, Token: func() string { return testToken },
		Window: time.Millisecond, MinInterval: time.Millisecond})
	rc.co.notify(1)
	recv(t, ref.calls)
	rc.co.notify(1) // pending (a trailing refresh) or, if the window has ended, a leading one
	recv(t, ref.calls)
	rc.co.notify(2)
	rc.co.notify(2)
	rc.Close()
}

// A long window on the real clock: Close stops its timer.
func TestCoalescerRealClockCloseStopsTimer(t *testing.T) {
	defer goleak.VerifyNone(t)
	ref := newFakeRefresher(newFakeClock())
	rc := New(t.Context(), Options{Refresher: ref, Token: func() string { return testToken }, Window: time.Hour})
	rc.co.notify(1)
	rc.co.notify(1)
	recv(t, ref.calls)
	rc.Close()
	none(t, ref.calls, "trailing refresh after Close")
}
