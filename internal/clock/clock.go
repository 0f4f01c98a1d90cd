// Package clock lets code whose behaviour depends on the passage of time
// (backoff, holds, probe deadlines, timeouts) take its time from a Clock, so
// that a test moves time itself with a Fake instead of waiting for it.
package clock

import "time"

// Clock tells the time and makes timers. Implementations are safe for
// concurrent use.
type Clock interface {
	Now() time.Time
	// NewTimer returns a Timer that sends the time on its channel once d
	// has passed; d <= 0 fires at once.
	NewTimer(d time.Duration) Timer
}

// Timer is a one-shot timer with the semantics of time.Timer since Go 1.23:
// its channel holds at most one value, and once Stop or Reset returns no
// value from before the call is received.
type Timer interface {
	C() <-chan time.Time
	// Stop prevents the timer from firing; it reports whether the timer
	// was pending.
	Stop() bool
	// Reset makes the timer fire d from now; it reports whether the timer
	// was pending.
	Reset(d time.Duration) bool
}

// Real is the system clock. Its zero value is ready to use.
type Real struct{}

// Now returns time.Now().
func (Real) Now() time.Time { return time.Now() }

// NewTimer returns a time.Timer.
func (Real) NewTimer(d time.Duration) Timer { return realTimer{time.NewTimer(d)} }

type realTimer struct{ *time.Timer }

func (t realTimer) C() <-chan time.Time { return t.Timer.C }
