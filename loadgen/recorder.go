package loadgen

import (
	"sync/atomic"
	"time"

	hdrhistogram "github.com/HdrHistogram/hdrhistogram-go"
)

// Histograms record nanoseconds from 1µs to one hour with three significant
// digits: about 200 KB each, whatever the run's length.
const (
	histLowest  = int64(time.Microsecond)
	histHighest = int64(time.Hour)
	histDigits  = 3
)

func newHistogram() *hdrhistogram.Histogram {
	return hdrhistogram.New(histLowest, histHighest, histDigits)
}

// record adds d to h, clamping it into the histogram's range. Values under
// 1µs land in the lowest bucket.
func record(h *hdrhistogram.Histogram, d int64) {
	if d < 0 {
		d = 0
	} else if d > histHighest {
		d = histHighest
	}
	_ = h.RecordValue(d)
}

// sample is one finished request, sent to the recorder in a batch. Times are nanoseconds from the start of the run.
type sample struct {
	at      int64 // when it was due
	sent    int64 // when it was handed to the client
	done    int64 // when the answer (or error) came back
	queue   int64 // broker queue wait (ok answers)
	service int64 // broker dispatch-to-result time (ok answers)
	kind    Kind
}

// recorder owns every histogram and counter of a run. Samples reach it in
// batches through a channel, so the request goroutines take no lock; it is the only
// goroutine that touches the histograms until it returns.
type recorder struct {
	in       chan *batch
	start    time.Time
	warmup   int64
	end      int64
	interval time.Duration
	launched *atomic.Uint64 // requests started so far (owned by the sender)
	progress func(Progress)
	log      *intervalLog
	tag      string
	base     Progress // fields of the progress report fixed for the run

	latency, uncorrected, queue, service, lag *hdrhistogram.Histogram
	window                                    *hdrhistogram.Histogram // latency in this interval

	kinds       [numKinds]uint64 // measured samples by kind
	all         [numKinds]uint64 // every sample, warmup included (progress)
	sentInRange uint64           // sent inside [warmup, end)
	okInRange   uint64           // ok answers received inside [warmup, end)
	lastLaunch  uint64
	lastTick    time.Time
	logErr      error
}

func newRecorder(start time.Time, warmup, end time.Duration, launched *atomic.Uint64) *recorder {
	return &recorder{
		in:          make(chan *batch, 1024),
		start:       start,
		warmup:      int64(warmup),
		end:         int64(end),
		launched:    launched,
		latency:     newHistogram(),
		uncorrected: newHistogram(),
		queue:       newHistogram(),
		service:     newHistogram(),
		lag:         newHistogram(),
		window:      newHistogram(),
		lastTick:    start,
	}
}

// run consumes samples until in is closed.
func (r *recorder) run() {
	var tick <-chan time.Time
	if r.interval > 0 && (r.progress != nil || r.log != nil) {
		t := time.NewTicker(r.interval)
		defer t.Stop()
		tick = t.C
	}
	for {
		select {
		case b, ok := <-r.in:
			if !ok {
				r.flush(time.Now())
				return
			}
			for _, s := range b.samples {
				r.add(s)
			}
			b.release()
		case now := <-tick:
			r.flush(now)
		}
	}
}

func (r *recorder) add(s sample) {
	r.all[s.kind]++
	if s.sent >= r.warmup && s.sent < r.end {
		r.sentInRange++
	}
	if s.kind == KindOK && s.done >= r.warmup && s.done < r.end {
		r.okInRange++
	}
	if s.at < r.warmup {
		return
	}
	r.kinds[s.kind]++
	if s.kind == KindCancelled {
		return
	}
	record(r.lag, s.sent-s.at)
	if s.kind != KindOK {
		return
	}
	record(r.latency, s.done-s.at)
	record(r.window, s.done-s.at)
	record(r.uncorrected, s.done-s.sent)
	record(r.queue, s.queue)
	record(r.service, s.service)
}

// flush ends an interval: it reports progress and logs the interval's
// latency histogram.
func (r *recorder) flush(now time.Time) {
	if r.log != nil && r.logErr == nil && r.window.TotalCount() > 0 {
		r.window.SetStartTimeMs(r.lastTick.UnixMilli())
		r.window.SetEndTimeMs(now.UnixMilli())
		r.window.SetTag(r.tag)
		r.logErr = r.log.write(r.window)
	}
	r.window.Reset()
	if r.progress != nil {
		p := r.base
		p.Elapsed = now.Sub(r.start)
		p.Warmup = p.Elapsed < time.Duration(r.warmup)
		launched := r.launched.Load()
		p.Sent = launched
		if dt := now.Sub(r.lastTick).Seconds(); dt > 0 {
			p.Rate = float64(launched-r.lastLaunch) / dt
		}
		for k, n := range r.all {
			switch Kind(k) {
			case KindOK:
				p.OK = n
			case KindCancelled:
			default:
				p.Errors += n
			}
		}
		p.InFlight = launched - min(launched, p.OK+p.Errors+r.all[KindCancelled])
		if r.latency.TotalCount() > 0 {
			p.P99 = time.Duration(r.latency.ValueAtQuantile(99))
		}
		r.progress(p)
	}
	r.lastLaunch = r.launched.Load()
	r.lastTick = now
}

// Progress is a live view of a run, reported about once per interval.
type Progress struct {
	Run, Runs int     // this run's number (from 1) and the number of runs
	Workers   int     // workers in the cluster (0: unknown)
	Target    float64 // target rate (0: closed loop)
	Elapsed   time.Duration
	Warmup    bool          // still in the warmup period
	Sent      uint64        // requests started, warmup included
	OK        uint64        // ok answers, warmup included
	Errors    uint64        // error answers, warmup included
	InFlight  uint64        // requests awaiting an answer
	Rate      float64       // requests started per second over the last interval
	P99       time.Duration // corrected p99 of the measured answers so far
}
