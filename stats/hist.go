package stats

import (
	"fmt"

	hdrhistogram "github.com/HdrHistogram/hdrhistogram-go"
)

// The broker's latency histograms: microseconds from 1 µs to 1 hour with 2
// significant digits. NewHistogram makes an empty one of the same range, to
// merge decoded ones into.
const (
	HistMinUS  = 1
	HistMaxUS  = 3600 * 1000 * 1000
	HistDigits = 2
)

// NewHistogram returns an empty histogram of the broker's range.
func NewHistogram() *hdrhistogram.Histogram {
	return hdrhistogram.New(HistMinUS, HistMaxUS, HistDigits)
}

// Summarize computes h's summary figures and its compressed form, as
// hdrhistogram's own Encode writes it. A publisher should use an Encoder.
func Summarize(h *hdrhistogram.Histogram) (Hist, error) {
	out := summary(h)
	enc, err := h.Encode(hdrhistogram.V2CompressedEncodingCookieBase)
	if err != nil {
		return out, fmt.Errorf("stats: encode histogram: %w", err)
	}
	out.HDR = string(enc)
	return out, nil
}

// Histogram decodes the compressed histogram. An empty HDR field gives an
// empty histogram.
func (h Hist) Histogram() (*hdrhistogram.Histogram, error) {
	if h.HDR == "" {
		return NewHistogram(), nil
	}
	d, err := hdrhistogram.Decode([]byte(h.HDR))
	if err != nil {
		return nil, fmt.Errorf("stats: decode histogram: %w", err)
	}
	return d, nil
}

// Percentiles are the figures hosetop charts, in microseconds.
type Percentiles struct {
	Count               int64
	P50, P90, P99, P999 int64
	Max                 int64
	MeanUS              float64
}

// PercentilesOf reads the charted percentiles of h.
func PercentilesOf(h *hdrhistogram.Histogram) Percentiles {
	if h == nil || h.TotalCount() == 0 {
		return Percentiles{}
	}
	return Percentiles{
		Count:  h.TotalCount(),
		P50:    h.ValueAtQuantile(50),
		P90:    h.ValueAtQuantile(90),
		P99:    h.ValueAtQuantile(99),
		P999:   h.ValueAtQuantile(99.9),
		Max:    h.Max(),
		MeanUS: h.Mean(),
	}
}
