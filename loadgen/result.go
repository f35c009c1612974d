package loadgen

import (
	"math"
	"time"

	hdrhistogram "github.com/HdrHistogram/hdrhistogram-go"
)

// Result is the outcome of one run. Its JSON form is the schema of
// hosebench -json (README.md, section hosebench); fields are only ever added.
type Result struct {
	// Mode is "open" (a fixed schedule at TargetRate) or "closed"
	// (Concurrency callers, each sending its next request when the last
	// answer arrives).
	Mode    string `json:"mode"`
	Arrival string `json:"arrival,omitempty"` // "constant" or "poisson" (open loop)
	// TargetRate is the scheduled rate in requests per second (0: closed).
	TargetRate  float64 `json:"target_rate"`
	Concurrency int     `json:"concurrency,omitempty"` // closed-loop callers
	MaxInFlight int     `json:"max_inflight,omitempty"`

	// Target is "embedded" or the broker endpoints.
	Target  string `json:"target"`
	Service string `json:"service,omitempty"`
	Job     string `json:"job"`
	Size    int    `json:"size"`
	// Workers is the number of workers serving the run (from the broker
	// when the cluster is remote; 0 when unknown).
	Workers           int `json:"workers"`
	WorkerConcurrency int `json:"worker_concurrency,omitempty"`

	Started time.Time `json:"started"`
	// WarmupSeconds precede the measured window and are left out of every
	// figure below.
	WarmupSeconds float64 `json:"warmup_s"`
	// DurationSeconds is the length of the measured window (shorter than
	// asked when the run was interrupted).
	DurationSeconds float64 `json:"duration_s"`

	// Sent counts requests due in the measured window that were sent
	// (closed loop: started in it). Every one of them ended as ok, an
	// error or cancelled.
	Sent      uint64            `json:"sent"`
	OK        uint64            `json:"ok"`
	Errors    map[string]uint64 `json:"errors"` // by kind, every kind present
	ErrorsAll uint64            `json:"error_total"`
	// Cancelled requests were in flight when the run was interrupted.
	Cancelled uint64 `json:"cancelled"`
	// Missed counts slots due in the measured window that were never sent:
	// the in-flight limit was reached and no place freed before the end.
	Missed uint64 `json:"missed"`
	// Throttled counts the times the scheduler had to wait for an in-flight
	// place, sending the requests behind it late.
	Throttled uint64 `json:"throttled"`

	// AchievedRate is requests actually sent during the measured window,
	// per second: what the cluster was offered.
	AchievedRate float64 `json:"achieved_rate"`
	// Throughput is ok answers received during the measured window, per
	// second: what the cluster delivered.
	Throughput float64 `json:"throughput"`

	// Latency is end to end, from the moment each request was due
	// (corrected for coordinated omission), for ok answers.
	Latency Percentiles `json:"latency_us"`
	// Uncorrected is end to end from the moment each request was actually
	// sent: what a tool that ignores its schedule would report.
	Uncorrected Percentiles `json:"uncorrected_us"`
	// QueueTime is the broker's wait for a free worker; ServiceTime is
	// from the broker's dispatch to the worker's result, as the broker
	// reports them (to the microsecond).
	QueueTime   Percentiles `json:"queue_us"`
	ServiceTime Percentiles `json:"service_us"`
	// Lag is the generator's own delay: actual send minus due time.
	Lag Percentiles `json:"lag_us"`

	// CPU is this process's CPU time during the run (the generator, plus
	// the cluster when it is embedded).
	CPU CPU `json:"cpu"`

	SLO *SLOResult `json:"slo,omitempty"`
	// Direct is the -compare-direct baseline, when asked for.
	Direct *Direct `json:"direct,omitempty"`

	Warnings    []string `json:"warnings,omitempty"`
	Interrupted bool     `json:"interrupted,omitempty"`

	// Histograms, in nanoseconds, for reporters (-hgrm) and callers.
	LatencyHist     *hdrhistogram.Histogram `json:"-"`
	UncorrectedHist *hdrhistogram.Histogram `json:"-"`
	LagHist         *hdrhistogram.Histogram `json:"-"`
}

// Percentiles summarises a histogram, in microseconds.
type Percentiles struct {
	Count  int64   `json:"count"`
	Mean   float64 `json:"mean"`
	P50    float64 `json:"p50"`
	P75    float64 `json:"p75"`
	P90    float64 `json:"p90"`
	P99    float64 `json:"p99"`
	P999   float64 `json:"p999"`
	P9999  float64 `json:"p9999"`
	Max    float64 `json:"max"`
	StdDev float64 `json:"stddev"`
}

func summarise(h *hdrhistogram.Histogram) Percentiles {
	if h.TotalCount() == 0 {
		return Percentiles{}
	}
	// Values in the lowest bucket (under 1µs, such as a queue wait the
	// broker reports as 0µs) read as 0.
	us := func(v int64) float64 {
		if v < histLowest {
			return 0
		}
		return round1(float64(v) / 1e3)
	}
	return Percentiles{
		Count:  h.TotalCount(),
		Mean:   us(int64(h.Mean())),
		P50:    us(h.ValueAtQuantile(50)),
		P75:    us(h.ValueAtQuantile(75)),
		P90:    us(h.ValueAtQuantile(90)),
		P99:    us(h.ValueAtQuantile(99)),
		P999:   us(h.ValueAtQuantile(99.9)),
		P9999:  us(h.ValueAtQuantile(99.99)),
		Max:    us(h.Max()),
		StdDev: round1(h.StdDev() / 1e3),
	}
}

func round1(v float64) float64 { return math.Round(v*10) / 10 }

// CPU is CPU time used by this process.
type CPU struct {
	UserSeconds   float64 `json:"user_s"`
	SystemSeconds float64 `json:"system_s"`
	// PercentOfCore is (user+system)/wall time: 100 is one core busy.
	PercentOfCore float64 `json:"percent_of_core"`
}

// Direct is the throughput of the job run as a plain function call.
type Direct struct {
	Goroutines int     `json:"goroutines"`
	Calls      uint64  `json:"calls"`
	Seconds    float64 `json:"seconds"`
	Rate       float64 `json:"rate"`
	// Ratio is the run's throughput over Rate: 1 means hose costs nothing,
	// 0.5 that it halves throughput.
	Ratio float64 `json:"ratio"`
}

// SLOResult tells whether a run met the service level objective.
type SLOResult struct {
	Spec string `json:"spec"`
	Met  bool   `json:"met"`
	// Why lists the objectives missed.
	Why []string `json:"why,omitempty"`
}
