package loadgen

import (
	"context"
	"math"
	"math/rand/v2"
	"testing"
	"time"
)

// fakeClock is a clock whose time moves only when the scheduler waits. Each
// wait lasts the requested time rounded up to a multiple of tick, as a
// coarse timer would.
type fakeClock struct {
	now  time.Time
	tick time.Duration
}

func newFakeClock(tick time.Duration) *fakeClock {
	return &fakeClock{now: time.Unix(1_000_000, 0), tick: tick}
}

func (c *fakeClock) Now() time.Time { return c.now }

func (c *fakeClock) Wait(ctx context.Context, d time.Duration, ready <-chan struct{}) bool {
	if ready != nil {
		select {
		case <-ready:
			return true
		default:
		}
	}
	if c.tick > 0 {
		d = (d + c.tick - 1) / c.tick * c.tick
	}
	c.now = c.now.Add(d)
	return false
}

// each adapts a per-slot callback to the scheduler's batch callback.
func each(f func(slot)) func([]slot) {
	return func(slots []slot) {
		for _, sl := range slots {
			f(sl)
		}
	}
}

func TestConstantPacerOffsets(t *testing.T) {
	tests := []struct {
		rate float64
		want []time.Duration
	}{
		{1, []time.Duration{0, time.Second, 2 * time.Second}},
		{1000, []time.Duration{0, time.Millisecond, 2 * time.Millisecond, 3 * time.Millisecond}},
		{3, []time.Duration{0, 333333333, 666666667, time.Second}},
		{0.5, []time.Duration{0, 2 * time.Second, 4 * time.Second}},
		{50000, []time.Duration{0, 20 * time.Microsecond, 40 * time.Microsecond}},
	}
	for _, tt := range tests {
		p := NewConstantPacer(tt.rate)
		for i, want := range tt.want {
			if got := p.Next(); got != want {
				t.Errorf("rate %g: offset %d = %v, want %v", tt.rate, i, got, want)
			}
		}
	}
}

// TestConstantPacerNoDrift checks that the millionth offset is exact: the
// pacer computes offsets from the count, not by summing rounded intervals.
func TestConstantPacerNoDrift(t *testing.T) {
	p := NewConstantPacer(3)
	var d time.Duration
	for i := 0; i <= 3_000_000; i++ {
		d = p.Next()
	}
	if d != 1_000_000*time.Second {
		t.Fatalf("offset 3e6 at 3/s = %v, want 1000000s", d)
	}
}

func TestScheduleConstant(t *testing.T) {
	tests := []struct {
		name     string
		rate     float64
		duration time.Duration
		tick     time.Duration // timer granularity of the fake clock
		sends    uint64
		maxWake  uint64 // upper bound on wake-ups
	}{
		{"1000/s precise timer", 1000, time.Second, 0, 1000, 1000},
		{"1000/s 1ms timer", 1000, time.Second, time.Millisecond, 1000, 1000},
		{"1000/s 5ms timer", 1000, time.Second, 5 * time.Millisecond, 1000, 200},
		{"50000/s 1ms timer", 50000, time.Second, time.Millisecond, 50000, 1000},
		{"50000/s 15ms timer", 50000, time.Second, 15 * time.Millisecond, 50000, 67},
		{"3/s", 3, time.Second, time.Millisecond, 3, 3},
		{"7/s over 2.5s", 7, 2500 * time.Millisecond, time.Millisecond, 18, 18},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			clk := newFakeClock(tt.tick)
			start := clk.Now()
			pacer := NewConstantPacer(tt.rate)
			var n uint64
			var maxLag time.Duration
			s := &scheduler{
				clock: clk, pacer: pacer, start: start, end: tt.duration,
				send: each(func(sl slot) {
					want := time.Duration(math.Round(float64(n) * 1e9 / tt.rate))
					if sl.seq != n || sl.at != want {
						t.Fatalf("slot %d: got seq %d at %v, want at %v", n, sl.seq, sl.at, want)
					}
					lag := clk.Now().Sub(start) - sl.at
					if lag < 0 {
						t.Fatalf("slot %d sent %v early", n, -lag)
					}
					maxLag = max(maxLag, lag)
					n++
				}),
			}
			st := s.run(context.Background())
			if st.sent != tt.sends || n != tt.sends {
				t.Fatalf("sent %d (callback %d), want %d", st.sent, n, tt.sends)
			}
			if st.missed != 0 || st.throttled != 0 {
				t.Fatalf("missed %d throttled %d, want 0", st.missed, st.throttled)
			}
			if st.wakeups > tt.maxWake {
				t.Fatalf("%d wake-ups, want at most %d", st.wakeups, tt.maxWake)
			}
			// A late wake-up delays a request by less than one timer tick.
			if limit := max(tt.tick, time.Nanosecond); maxLag >= limit && tt.tick > 0 {
				t.Fatalf("max lag %v, want < %v", maxLag, limit)
			}
		})
	}
}

// TestScheduleLateStart: a scheduler that starts 300ms late (a slow timer,
// a GC pause) sends the 300 overdue slots at once, each keeping its due
// time.
func TestScheduleLateStart(t *testing.T) {
	clk := newFakeClock(time.Millisecond)
	start := clk.Now()
	clk.now = clk.now.Add(300 * time.Millisecond)
	var first []time.Duration
	s := &scheduler{clock: clk, pacer: NewConstantPacer(1000), start: start, end: time.Second,
		send: each(func(sl slot) {
			if clk.Now().Sub(start) == 300*time.Millisecond {
				first = append(first, sl.at)
			}
		})}
	st := s.run(context.Background())
	if st.sent != 1000 {
		t.Fatalf("sent %d, want 1000", st.sent)
	}
	if len(first) != 301 || first[0] != 0 || first[300] != 300*time.Millisecond {
		t.Fatalf("at the late start sent %d slots (%v..), want 301 from 0 to 300ms", len(first), first[:min(3, len(first))])
	}
}

// TestScheduleMaxInFlight: with two in-flight places that never free up,
// two requests leave and every other measured slot is counted as missed.
func TestScheduleMaxInFlight(t *testing.T) {
	tests := []struct {
		name    string
		warmup  time.Duration
		release bool // requests complete at once and give their place back
		sent    uint64
		missed  uint64
	}{
		{"stalled", 0, false, 2, 998},
		{"stalled with warmup", 500 * time.Millisecond, false, 2, 500},
		{"flowing", 0, true, 1000, 0},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			clk := newFakeClock(time.Millisecond)
			tokens := make(chan struct{}, 2)
			tokens <- struct{}{}
			tokens <- struct{}{}
			s := &scheduler{clock: clk, pacer: NewConstantPacer(1000), start: clk.Now(),
				end: time.Second, warmup: tt.warmup, tokens: tokens,
				send: each(func(slot) {
					if tt.release {
						tokens <- struct{}{}
					}
				})}
			st := s.run(context.Background())
			if st.sent != tt.sent || st.missed != tt.missed {
				t.Fatalf("sent %d missed %d, want %d and %d", st.sent, st.missed, tt.sent, tt.missed)
			}
			if !tt.release && st.throttled != 1 {
				t.Fatalf("throttled %d, want 1", st.throttled)
			}
		})
	}
}

// TestScheduleInterrupted: a cancelled run stops at once and counts no
// future slot as missed.
func TestScheduleInterrupted(t *testing.T) {
	clk := newFakeClock(time.Millisecond)
	ctx, cancel := context.WithCancel(context.Background())
	s := &scheduler{clock: clk, pacer: NewConstantPacer(1000), start: clk.Now(), end: time.Second,
		send: each(func(sl slot) {
			if sl.seq == 99 {
				cancel()
			}
		})}
	st := s.run(ctx)
	if st.sent != 100 || st.missed != 0 {
		t.Fatalf("sent %d missed %d, want 100 and 0", st.sent, st.missed)
	}
	if st.stopped != 100*time.Millisecond {
		t.Fatalf("stopped at %v, want 100ms", st.stopped)
	}
}

func TestPoissonPacer(t *testing.T) {
	for _, rate := range []float64{100, 1000, 20000} {
		p := NewPoissonPacer(rate, rand.New(rand.NewPCG(1, 2)))
		const window = 20 * time.Second
		var n int
		var prev time.Duration
		var sum, sumSq float64
		for {
			d := p.Next()
			if d < prev {
				t.Fatalf("rate %g: offset %v after %v", rate, d, prev)
			}
			if d >= window {
				break
			}
			gap := (d - prev).Seconds()
			sum += gap
			sumSq += gap * gap
			prev = d
			n++
		}
		// The count in the window is Poisson(rate*T): within 5 sigma.
		want := rate * window.Seconds()
		if math.Abs(float64(n)-want) > 5*math.Sqrt(want) {
			t.Errorf("rate %g: %d arrivals in %v, want %.0f ± %.0f", rate, n, window, want, 5*math.Sqrt(want))
		}
		// Exponential gaps: mean 1/rate, coefficient of variation 1.
		mean := sum / float64(n)
		cv := math.Sqrt(sumSq/float64(n)-mean*mean) / mean
		if math.Abs(mean*rate-1) > 0.05 || math.Abs(cv-1) > 0.05 {
			t.Errorf("rate %g: gap mean %.3g (want %.3g), cv %.3f (want 1)", rate, mean, 1/rate, cv)
		}
	}
}

// TestSchedulePoisson: every poisson slot is sent, in order, never early.
func TestSchedulePoisson(t *testing.T) {
	clk := newFakeClock(time.Millisecond)
	start := clk.Now()
	ref := NewPoissonPacer(5000, rand.New(rand.NewPCG(7, 7)))
	var want uint64
	for ref.Next() < 2*time.Second {
		want++
	}
	var prev time.Duration
	s := &scheduler{clock: clk, pacer: NewPoissonPacer(5000, rand.New(rand.NewPCG(7, 7))), start: start, end: 2 * time.Second,
		send: each(func(sl slot) {
			if sl.at < prev || clk.Now().Sub(start) < sl.at {
				t.Fatalf("slot %d at %v: out of order or early", sl.seq, sl.at)
			}
			prev = sl.at
		})}
	if st := s.run(context.Background()); st.sent != want {
		t.Fatalf("sent %d, want %d", st.sent, want)
	}
}

// TestScheduleBatches: the slots due at one wake-up leave together, in
// batches of at most maxBatch.
func TestScheduleBatches(t *testing.T) {
	tests := []struct {
		rate     float64
		tick     time.Duration
		maxBatch int
	}{
		{1000, time.Millisecond, 1},
		{50000, time.Millisecond, 50},
		{50000, 15 * time.Millisecond, maxBatch},
	}
	for _, tt := range tests {
		clk := newFakeClock(tt.tick)
		largest, total := 0, 0
		s := &scheduler{clock: clk, pacer: NewConstantPacer(tt.rate), start: clk.Now(), end: time.Second,
			send: func(slots []slot) {
				largest = max(largest, len(slots))
				total += len(slots)
			}}
		s.run(context.Background())
		if largest != tt.maxBatch || total != int(tt.rate) {
			t.Errorf("%g/s, %v timer: largest batch %d, %d slots; want %d and %d", tt.rate, tt.tick, largest, total, tt.maxBatch, int(tt.rate))
		}
	}
}
