package broker

import (
	hdrhistogram "github.com/HdrHistogram/hdrhistogram-go"
)

// Latency histograms cover 1 µs to 1 hour with 2 significant digits: about
// 10 KiB each, so one per worker stays cheap with hundreds of workers.
const (
	histMinUS = 1
	histMaxUS = 3600 * 1000 * 1000
	histSig   = 2
)

func newHist() *hdrhistogram.Histogram { return hdrhistogram.New(histMinUS, histMaxUS, histSig) }

// observations are the broker-side latency histograms of the current stats
// interval; the stats publisher reads and resets them.
type observations struct {
	queue   *hdrhistogram.Histogram // arrival to dispatch
	service *hdrhistogram.Histogram // dispatch to result
}

func newObservations() observations {
	return observations{queue: newHist(), service: newHist()}
}

// record adds a duration in nanoseconds to h, clamped to its range.
func (o *observations) record(h *hdrhistogram.Histogram, ns int64) {
	us := ns / 1000
	if us < histMinUS {
		us = histMinUS
	} else if us > histMaxUS {
		us = histMaxUS
	}
	_ = h.RecordValue(us)
}
