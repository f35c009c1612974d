package loadgen

import (
	"context"
	"time"
)

// slot is one scheduled request.
type slot struct {
	seq uint64
	at  time.Duration // when it is due, from the start of the run
}

// maxBatch bounds the slots handed to send at once.
const maxBatch = 64

// scheduler walks a Pacer's schedule in real time and hands the slots to
// send when they fall due. It never waits for replies: send must start the
// requests and return. At each wake-up it sends every slot that is due, in
// batches of up to maxBatch, so a coarse timer delays requests a little
// (the lag, which the caller measures) but never loses or merges them.
type scheduler struct {
	clock  clock
	pacer  Pacer
	start  time.Time
	end    time.Duration // slots due at or after end are not part of the run
	warmup time.Duration // slots due before warmup are not reported
	// tokens, when not nil, holds one value per free in-flight place. The
	// scheduler takes one before each send; the request gives it back when
	// it completes. With none free the scheduler waits (the requests behind
	// are sent late, and their latency still counts from their due time)
	// until the run ends.
	tokens chan struct{}
	// send starts the requests of a batch; it must not keep the slice.
	send func([]slot)
	buf  []slot
}

// schedStats is what the scheduler did.
type schedStats struct {
	sent      uint64        // slots handed to send
	missed    uint64        // measured slots never sent: no in-flight place before the end
	throttled uint64        // times the scheduler waited for an in-flight place
	wakeups   uint64        // times it slept and woke
	stopped   time.Duration // when it stopped, from the start
}

// run sends the schedule until its end or until ctx ends.
func (s *scheduler) run(ctx context.Context) schedStats {
	var st schedStats
	next := s.pacer.Next()
	var seq uint64
	// starved: the loop ended waiting for an in-flight place, with the
	// slot next due and unsent.
	interrupted, starved := false, false
loop:
	for next < s.end {
		now := s.clock.Now().Sub(s.start)
		if next > now {
			st.wakeups++
			s.clock.Wait(ctx, next-now, nil)
			if ctx.Err() != nil {
				interrupted = true
				break
			}
			continue
		}
		// Send every slot due by now.
		for next <= now && next < s.end {
			if s.tokens != nil && !s.tryAcquire() {
				// Let the batch go before waiting for a place.
				s.flush()
				if !s.tryAcquire() && !s.acquire(ctx, &st) {
					interrupted, starved = ctx.Err() != nil, true
					break loop
				}
			}
			s.buf = append(s.buf, slot{seq: seq, at: next})
			if len(s.buf) == maxBatch {
				s.flush()
			}
			st.sent++
			seq++
			next = s.pacer.Next()
		}
		s.flush()
	}
	s.flush()
	// The run lasts until its end even when its last slot is due earlier:
	// a run of 1/s for 3s has slots at 0, 1 and 2s and a 3s window.
	for !interrupted {
		now := s.clock.Now().Sub(s.start)
		if now >= s.end {
			break
		}
		s.clock.Wait(ctx, s.end-now, nil)
		interrupted = ctx.Err() != nil
	}
	st.stopped = s.clock.Now().Sub(s.start)
	// Count the slots that fell due but could not be sent for want of an
	// in-flight place: up to the end, or up to the interrupt. A run
	// interrupted in its sleep missed nothing.
	limit := s.end
	if interrupted && st.stopped < limit {
		limit = st.stopped
	}
	for ; starved && next < limit; next = s.pacer.Next() {
		if next >= s.warmup {
			st.missed++
		}
	}
	if st.stopped > s.end {
		st.stopped = s.end
	}
	return st
}

func (s *scheduler) flush() {
	if len(s.buf) > 0 {
		s.send(s.buf)
		s.buf = s.buf[:0]
	}
}

// tryAcquire takes a free in-flight place if there is one.
func (s *scheduler) tryAcquire() bool {
	select {
	case <-s.tokens:
		return true
	default:
		return false
	}
}

// acquire waits for an in-flight place until the run ends.
func (s *scheduler) acquire(ctx context.Context, st *schedStats) bool {
	st.throttled++
	for {
		now := s.clock.Now().Sub(s.start)
		if now >= s.end {
			return false
		}
		if s.clock.Wait(ctx, s.end-now, s.tokens) {
			return true
		}
		if ctx.Err() != nil {
			return false
		}
	}
}
