package webhook

import (
	"bytes"
	"context"
	"sync"
	"testing"
	"time"

	"github.com/go-kit/log"
	"go.uber.org/goleak"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// fakeClock runs timers only when the test advances it, in the test's
// goroutine, each at its own time.
type fakeClock struct {
	mu     sync.Mutex
	now    time.Time
	timers []*fakeTimer
}

type fakeTimer struct {
	c       *fakeClock
	at      time.Time
	f       func()
	stopped bool // or fired
}

func newFakeClock() *fakeClock { return &fakeClock{now: time.Unix(1_700_000_000, 0)} }

func (c *fakeClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.now
}

func (c *fakeClock) AfterFunc(d time.Duration, f func()) stopper {
	c.mu.Lock()
	defer c.mu.Unlock()
	t := &fakeTimer{c: c, at: c.now.Add(d), f: f}
	c.timers = append(c.timers, t)
	return t
}

func (t *fakeTimer) Stop() bool {
	t.c.mu.Lock()
	defer t.c.mu.Unlock()
	was := !t.stopped
	t.stopped = true
	return was
}

// Advance moves the clock by d, firing the timers due on the way in order.
func (c *fakeClock) Advance(d time.Duration) {
	c.mu.Lock()
	end := c.now.Add(d)
	c.mu.Unlock()
	for {
		c.mu.Lock()
		var next *fakeTimer
		for _, t := range c.timers {
			if !t.stopped && !t.at.After(end) && (next == nil || t.at.Before(next.at)) {
				next = t
			}
		}
		if next == nil {
			c.now = end
			c.mu.Unlock()
			return
		}
		next.stopped = true
		if next.at.After(c.now) {
			c.now = next.at
		}
		c.mu.Unlock()
		next.f()
	}
}

// armed counts the timers that have neither fired nor been stopped.
func (c *fakeClock) armed() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	n := 0
	for _, t := range c.timers {
		if !t.stopped {
			n++
		}
	}
	return n
}

type call struct {
	id int64
	at time.Time
}

// fakeRefresher records its calls. With gate set, each call waits for a
// value from gate (or for its context to end) before returning.
type fakeRefresher struct {
	clk     *fakeClock
	calls   chan call
	gate    chan struct{}
	watched func(int64) bool

	mu        sync.Mutex
	running   map[int64]int
	overlaps  int // calls for a pipeline while one for it ran
	cancelled int // calls that returned because their context ended
}

func newFakeRefresher(clk *fakeClock) *fakeRefresher {
	return &fakeRefresher{clk: clk, calls: make(chan call, 1000), running: map[int64]int{}}
}

func (f *fakeRefresher) Refresh(ctx context.Context, id int64) bool {
	f.mu.Lock()
	if f.running[id] > 0 {
		f.overlaps++
	}
	f.running[id]++
	f.mu.Unlock()
	defer func() {
		f.mu.Lock()
		f.running[id]--
		f.mu.Unlock()
	}()
	f.calls <- call{id, f.clk.Now()}
	if f.gate != nil {
		select {
		case <-f.gate:
		case <-ctx.Done():
			f.mu.Lock()
			f.cancelled++
			f.mu.Unlock()
		}
	}
	if f.watched != nil {
		return f.watched(id)
	}
	return true
}

// recv waits for one value; the timeout only turns a hang into a failure.
func recv[T any](t *testing.T, ch <-chan T) T {
	t.Helper()
	select {
	case v := <-ch:
		return v
	case <-time.After(10 * time.Second):
		t.Fatal("timed out waiting")
		panic("unreachable")
	}
}

// none checks that ch holds nothing now.
func none[T any](t *testing.T, ch <-chan T, what string) {
	t.Helper()
	select {
	case v := <-ch:
		t.Fatalf("unexpected %s: %v", what, v)
	default:
	}
}

// syncBuffer is a log sink safe for the refresh goroutines.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// fixture is a receiver on a fake clock with a fake refresher, logging
// every level to logs.
type fixture struct {
	rc     *Receiver
	clk    *fakeClock
	ref    *fakeRefresher
	logs   *syncBuffer
	starts chan call  // one value per refresh started, sent as it starts
	done   chan int64 // one value per finished refresh
	token  string
}

const testToken = "s3cr3t-T0ken-4c9f2b"

func newFixture(t *testing.T, o Options) *fixture {
	t.Helper()
	f := &fixture{clk: newFakeClock(), logs: &syncBuffer{}, starts: make(chan call, 1000), done: make(chan int64, 1000), token: testToken}
	f.ref = newFakeRefresher(f.clk)
	if o.Refresher == nil {
		o.Refresher = f.ref
	}
	if o.Token == nil {
		o.Token = func() string { return f.token }
	}
	o.Logger = log.NewLogfmtLogger(f.logs)
	f.rc = newReceiver(context.Background(), o, f.clk)
	f.rc.co.onStart = func(id int64) { f.starts <- call{id, f.clk.Now()} }
	f.rc.co.afterRefresh = func(id int64) { f.done <- id }
	t.Cleanup(f.rc.Close)
	return f
}
