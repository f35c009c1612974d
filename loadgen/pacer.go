package loadgen

import (
	"fmt"
	"math"
	"math/rand/v2"
	"time"
)

// A Pacer lays out the send schedule of an open-loop run. Each call to Next
// returns the moment the next request is due, as an offset from the start
// of the run. Offsets never decrease. A Pacer is used by one goroutine.
//
// The schedule is fixed in advance and never depends on replies: that is
// what keeps a slow reply from delaying the requests behind it, and what
// lets latency be measured from the moment a request was due.
type Pacer interface {
	Next() time.Duration
	// Rate is the mean number of requests per second.
	Rate() float64
}

// ConstantPacer spaces requests evenly: request n is due at n/rate seconds.
// Each offset is computed from n, not by adding intervals, so rounding never
// accumulates into drift.
type ConstantPacer struct {
	rate float64
	n    uint64
}

// NewConstantPacer returns a pacer sending rate requests per second, the
// first at offset 0.
func NewConstantPacer(rate float64) *ConstantPacer {
	return &ConstantPacer{rate: rate}
}

// Next returns the offset of the next request.
func (p *ConstantPacer) Next() time.Duration {
	d := time.Duration(math.Round(float64(p.n) * 1e9 / p.rate))
	p.n++
	return d
}

// Rate returns the configured rate.
func (p *ConstantPacer) Rate() float64 { return p.rate }

func (p *ConstantPacer) String() string { return fmt.Sprintf("constant %g/s", p.rate) }

// PoissonPacer models independent callers: the gaps between requests are
// exponentially distributed with mean 1/rate, so requests sometimes bunch
// up, as real traffic does.
type PoissonPacer struct {
	rate float64
	rng  *rand.Rand
	t    float64 // seconds
}

// NewPoissonPacer returns a pacer whose arrivals form a Poisson process of
// the given rate, drawn from rng (a fixed seed gives a fixed schedule).
func NewPoissonPacer(rate float64, rng *rand.Rand) *PoissonPacer {
	return &PoissonPacer{rate: rate, rng: rng}
}

// Next returns the offset of the next request.
func (p *PoissonPacer) Next() time.Duration {
	p.t += p.rng.ExpFloat64() / p.rate
	return time.Duration(p.t * 1e9)
}

// Rate returns the configured mean rate.
func (p *PoissonPacer) Rate() float64 { return p.rate }

func (p *PoissonPacer) String() string { return fmt.Sprintf("poisson %g/s", p.rate) }

var (
	_ Pacer = (*ConstantPacer)(nil)
	_ Pacer = (*PoissonPacer)(nil)
)
