package clock

import (
	"context"
	"errors"
	"sync"
	"testing"
	"time"
)

var (
	_ Clock = Real{}
	_ Clock = (*Fake)(nil)
)

var epoch = time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)

// received returns the value waiting on c, if any.
func received(c <-chan time.Time) (time.Time, bool) {
	select {
	case v := <-c:
		return v, true
	default:
		return time.Time{}, false
	}
}

func TestFakeAdvanceFiresDueTimersInOrder(t *testing.T) {
	f := NewFake(epoch)
	late := f.NewTimer(3 * time.Second)
	early := f.NewTimer(time.Second)
	if n := f.Advance(999 * time.Millisecond); n != 0 {
		t.Fatalf("Advance before any deadline fired %d timers", n)
	}
	if n := f.Advance(2 * time.Second); n != 1 {
		t.Fatalf("Advance past one deadline fired %d timers, want 1", n)
	}
	if v, ok := received(early.C()); !ok || !v.Equal(epoch.Add(time.Second)) {
		t.Errorf("early timer sent %v (%v), want its deadline %v", v, ok, epoch.Add(time.Second))
	}
	if _, ok := received(late.C()); ok {
		t.Error("late timer fired before its deadline")
	}
	if got, want := f.Now(), epoch.Add(2999*time.Millisecond); !got.Equal(want) {
		t.Errorf("Now %v, want %v", got, want)
	}
	if n := f.Advance(time.Millisecond); n != 1 {
		t.Fatalf("Advance to the late deadline fired %d timers, want 1", n)
	}
	if _, ok := received(late.C()); !ok {
		t.Error("late timer did not fire at its deadline")
	}
	if n := f.Advance(time.Hour); n != 0 {
		t.Errorf("fired timers fired again: %d", n)
	}
}

func TestFakeStopAndReset(t *testing.T) {
	f := NewFake(epoch)
	tm := f.NewTimer(time.Second)
	if !tm.Stop() {
		t.Error("Stop of an armed timer reported it was not armed")
	}
	if tm.Stop() {
		t.Error("second Stop reported the timer armed")
	}
	if n := f.Advance(time.Hour); n != 0 {
		t.Errorf("a stopped timer fired")
	}

	if tm.Reset(time.Second) {
		t.Error("Reset of a stopped timer reported it was armed")
	}
	f.Advance(time.Second)
	// Fired, not received: Reset drops the value, as time.Timer does.
	tm.Reset(time.Second)
	if _, ok := received(tm.C()); ok {
		t.Error("a value from before Reset was received")
	}
	f.Advance(time.Second)
	if v, ok := received(tm.C()); !ok || !v.Equal(epoch.Add(time.Hour+2*time.Second)) {
		t.Errorf("reset timer sent %v (%v), want a second after the Reset", v, ok)
	}

	tm.Reset(0)
	if _, ok := received(tm.C()); !ok {
		t.Error("Reset(0) did not fire at once")
	}
	if _, ok := received(f.NewTimer(-time.Second).C()); !ok {
		t.Error("NewTimer with a past deadline did not fire at once")
	}
}

// TestFakeBlockUntil waits for a goroutine to arm its timer before moving
// time, which is what makes a test independent of the scheduler.
func TestFakeBlockUntil(t *testing.T) {
	f := NewFake(epoch)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	woke := make(chan time.Time)
	go func() {
		tm := f.NewTimer(time.Minute)
		woke <- <-tm.C()
	}()
	if err := f.BlockUntil(ctx, 1); err != nil {
		t.Fatal(err)
	}
	f.Advance(time.Minute)
	if got := <-woke; !got.Equal(epoch.Add(time.Minute)) {
		t.Errorf("woke with %v, want %v", got, epoch.Add(time.Minute))
	}
	if err := f.BlockUntil(ctx, 0); err != nil {
		t.Fatal(err)
	}

	done, cancelDone := context.WithCancel(ctx)
	cancelDone()
	if err := f.BlockUntil(done, 1); !errors.Is(err, context.Canceled) {
		t.Errorf("BlockUntil(1) with nothing armed and a done context: %v, want context.Canceled", err)
	}
	if err := f.BlockUntil(done, 0); err != nil {
		t.Errorf("BlockUntil(0) with nothing armed and a done context: %v", err)
	}
}

// TestFakeConcurrentUse is for the race detector.
func TestFakeConcurrentUse(t *testing.T) {
	f := NewFake(epoch)
	var wg sync.WaitGroup
	for range 8 {
		wg.Go(func() {
			for i := range 100 {
				tm := f.NewTimer(time.Duration(i) * time.Millisecond)
				if i%2 == 0 {
					tm.Stop()
				} else {
					tm.Reset(time.Millisecond)
				}
				f.Now()
			}
		})
	}
	wg.Go(func() {
		for range 100 {
			f.Advance(time.Millisecond)
		}
	})
	wg.Wait()
}

func TestRealTimerFires(t *testing.T) {
	tm := Real{}.NewTimer(time.Millisecond)
	select {
	case <-tm.C():
	case <-time.After(10 * time.Second):
		t.Fatal("a real timer of 1ms did not fire within 10s")
	}
	if tm.Stop() {
		t.Error("Stop of a fired timer reported it armed")
	}
}
