package loadgen

import (
	"context"
	"time"
)

// clock is the scheduler's view of time. Tests inject a fake one to check
// the schedule without waiting for it.
type clock interface {
	Now() time.Time
	// Wait blocks until d has passed, ctx ends, or a value can be received
	// from ready (nil: never). It reports whether it took a value from
	// ready. Like any timer it may return late.
	Wait(ctx context.Context, d time.Duration, ready <-chan struct{}) bool
}

// realClock waits on one reused timer. Go timers rarely wake up more
// precisely than about a millisecond, which is why the scheduler sends
// every request that is due at each wake-up instead of sleeping between
// requests.
type realClock struct {
	timer *time.Timer
}

func newRealClock() *realClock {
	t := time.NewTimer(time.Hour)
	t.Stop()
	return &realClock{timer: t}
}

func (c *realClock) Now() time.Time { return time.Now() }

func (c *realClock) Wait(ctx context.Context, d time.Duration, ready <-chan struct{}) bool {
	if ready != nil {
		select {
		case <-ready:
			return true
		default:
		}
	}
	if d <= 0 {
		return false
	}
	c.timer.Reset(d)
	defer c.timer.Stop()
	select {
	case <-c.timer.C:
		return false
	case <-ready:
		return true
	case <-ctx.Done():
		return false
	}
}
