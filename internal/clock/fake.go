package clock

import (
	"context"
	"fmt"
	"slices"
	"sync"
	"time"
)

// Fake is a Clock whose time moves only when Advance is called; its timers
// fire inside Advance, so a test decides exactly when each one does. To
// advance past a deadline that another goroutine is about to arm, the test
// first waits for the timer with BlockUntil.
//
// All methods are safe for concurrent use.
type Fake struct {
	mu      sync.Mutex
	now     time.Time
	pending []*fakeTimer  // armed timers, in no order
	changed chan struct{} // closed and replaced when pending changes
}

// NewFake returns a Fake whose time is start.
func NewFake(start time.Time) *Fake {
	return &Fake{now: start, changed: make(chan struct{})}
}

// Now returns the fake time.
func (f *Fake) Now() time.Time {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.now
}

// NewTimer returns a timer that fires once the fake time has advanced by d.
func (f *Fake) NewTimer(d time.Duration) Timer {
	t := &fakeTimer{f: f, c: make(chan time.Time, 1)}
	f.mu.Lock()
	defer f.mu.Unlock()
	f.arm(t, d)
	return t
}

// Advance moves the time forward by d and fires, in the order of their
// deadlines, the timers due by then; each sends its own deadline. It
// returns how many timers fired. A timer armed while Advance runs (by a
// goroutine that received from a fired one) counts from the new time.
func (f *Fake) Advance(d time.Duration) int {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.now = f.now.Add(d)
	var due []*fakeTimer
	f.pending = slices.DeleteFunc(f.pending, func(t *fakeTimer) bool {
		if t.when.After(f.now) {
			return false
		}
		due = append(due, t)
		return true
	})
	slices.SortStableFunc(due, func(a, b *fakeTimer) int { return a.when.Compare(b.when) })
	for _, t := range due {
		t.c <- t.when // cannot block: arming emptied the channel
	}
	if len(due) > 0 {
		f.signal()
	}
	return len(due)
}

// BlockUntil waits until exactly n timers are armed (created or reset, and
// neither fired nor stopped), which is how a test knows that the code it
// drives is waiting for time to pass. It fails only when ctx ends first;
// with a ctx already done it tells at once whether n timers are armed.
func (f *Fake) BlockUntil(ctx context.Context, n int) error {
	for {
		f.mu.Lock()
		armed, changed := len(f.pending), f.changed
		f.mu.Unlock()
		if armed == n {
			return nil
		}
		select {
		case <-changed:
		case <-ctx.Done():
			return fmt.Errorf("clock: %d timers armed, want %d: %w", armed, n, ctx.Err())
		}
	}
}

// arm schedules t for d from now, or fires it at once when d <= 0. f.mu is
// held and t is not pending.
func (f *Fake) arm(t *fakeTimer, d time.Duration) {
	t.when = f.now.Add(d)
	if d <= 0 {
		t.c <- t.when
		return
	}
	f.pending = append(f.pending, t)
	f.signal()
}

// disarm removes t from the pending timers and drops a value it sent but
// nobody received; it reports whether t was pending. f.mu is held.
func (f *Fake) disarm(t *fakeTimer) bool {
	select {
	case <-t.c:
	default:
	}
	i := slices.Index(f.pending, t)
	if i < 0 {
		return false
	}
	f.pending = slices.Delete(f.pending, i, i+1)
	f.signal()
	return true
}

// signal wakes the goroutines in BlockUntil. f.mu is held.
func (f *Fake) signal() {
	close(f.changed)
	f.changed = make(chan struct{})
}

type fakeTimer struct {
	f    *Fake
	c    chan time.Time
	when time.Time // deadline; guarded by f.mu
}

func (t *fakeTimer) C() <-chan time.Time { return t.c }

func (t *fakeTimer) Stop() bool {
	t.f.mu.Lock()
	defer t.f.mu.Unlock()
	return t.f.disarm(t)
}

func (t *fakeTimer) Reset(d time.Duration) bool {
	t.f.mu.Lock()
	defer t.f.mu.Unlock()
	was := t.f.disarm(t)
	t.f.arm(t, d)
	return was
}
