package loadgen

import (
	"bufio"
	"encoding/json"
	"fmt"
	"io"
	"strconv"
	"strings"
	"text/tabwriter"
	"time"
)

// A Reporter writes a report to w.
type Reporter func(w io.Writer) error

// Report writes itself with r.
func (r Reporter) Report(w io.Writer) error { return r(w) }

// NewTextReporter writes the human report: the full account of a single
// run, or the comparison table (and knees) of a sweep.
func NewTextReporter(rep *Report) Reporter {
	return func(w io.Writer) error {
		bw := bufio.NewWriter(w)
		if len(rep.Runs) == 1 {
			writeRun(bw, rep.Runs[0])
		} else {
			writeSweep(bw, rep)
		}
		if rep.Interrupted {
			fmt.Fprintln(bw, "interrupted: the report covers what ran")
		}
		return bw.Flush()
	}
}

// NewJSONReporter writes the -json document: a single run's Result object
// (its "slo" field says whether it met the SLO), or for a sweep an object
// with "runs" (Result objects), "knees", "slo" and "direct".
func NewJSONReporter(rep *Report) Reporter {
	return func(w io.Writer) error {
		enc := json.NewEncoder(w)
		enc.SetIndent("", "  ")
		if len(rep.Runs) == 1 {
			return enc.Encode(rep.Runs[0])
		}
		return enc.Encode(rep)
	}
}

// NewHGRMReporter writes a run's corrected latency distribution in
// HdrHistogram's percentile distribution format (.hgrm), values in
// milliseconds, plottable with HdrHistogram's plotter.
func NewHGRMReporter(r *Result) Reporter {
	return func(w io.Writer) error {
		if r.LatencyHist == nil {
			return fmt.Errorf("loadgen: run has no latency histogram")
		}
		_, err := r.LatencyHist.PercentilesPrint(w, 5, 1e6)
		return err
	}
}

// NewTableReporter writes the comparison table of every run.
func NewTableReporter(rep *Report) Reporter {
	return func(w io.Writer) error {
		tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', tabwriter.AlignRight)
		fmt.Fprintln(tw, "workers\trate\tachieved\tthroughput\tp50\tp99\tp99.9\tmax\terrors\tmissed\tslo\t")
		for _, r := range rep.Runs {
			rate := "max"
			if r.Mode == "open" {
				rate = fmtRate(r.TargetRate)
			}
			slo := "-"
			if r.SLO != nil {
				slo = "ok"
				if !r.SLO.Met {
					slo = "MISS"
				}
			}
			workers := "?"
			if r.Workers > 0 {
				workers = strconv.Itoa(r.Workers)
			}
			fmt.Fprintf(tw, "%s\t%s\t%.1f\t%.1f\t%s\t%s\t%s\t%s\t%d\t%d\t%s\t\n",
				workers, rate, r.AchievedRate, r.Throughput,
				fmtUS(r.Latency.P50), fmtUS(r.Latency.P99), fmtUS(r.Latency.P999), fmtUS(r.Latency.Max),
				r.ErrorsAll, r.Missed, slo)
		}
		return tw.Flush()
	}
}

// NewKneeReporter writes the knee of each worker count.
func NewKneeReporter(rep *Report) Reporter {
	return func(w io.Writer) error {
		if rep.SLO == "" {
			return nil
		}
		fmt.Fprintf(w, "knee (highest rate meeting %s, no errors, no missed slots):\n", rep.SLO)
		for _, k := range rep.Knees {
			who := workersLabel(k.Workers)
			if k.Rate == 0 {
				fmt.Fprintf(w, "  %s: none of the rates tried met it", who)
				if k.Next > 0 {
					fmt.Fprintf(w, " (%s/s: %s)", fmtRate(k.Next), strings.Join(k.NextWhy, ", "))
				}
				fmt.Fprintln(w)
				continue
			}
			fmt.Fprintf(w, "  %s: %s/s (throughput %.1f/s, p99 %s)", who, fmtRate(k.Rate), k.Throughput, fmtUS(k.P99))
			if k.Next > 0 {
				fmt.Fprintf(w, "; %s/s missed it: %s", fmtRate(k.Next), strings.Join(k.NextWhy, ", "))
			} else {
				fmt.Fprint(w, "; every rate tried met it")
			}
			fmt.Fprintln(w)
		}
		return nil
	}
}

func workersLabel(n int) string {
	switch n {
	case 0:
		return "live cluster"
	case 1:
		return "1 worker"
	}
	return fmt.Sprintf("%d workers", n)
}

func writeSweep(w io.Writer, rep *Report) {
	if len(rep.Runs) == 0 {
		fmt.Fprintln(w, "no run completed")
		return
	}
	r0 := rep.Runs[0]
	who := targetLabel(r0)
	if r0.WorkerConcurrency > 0 {
		who += fmt.Sprintf(" (workers of concurrency %d)", r0.WorkerConcurrency)
	}
	fmt.Fprintf(w, "hosebench sweep: %s, job %s, %d-byte payload, %s per run after %s warmup\n\n",
		who, r0.Job, r0.Size, fmtSeconds(r0.DurationSeconds), fmtSeconds(r0.WarmupSeconds))
	_ = NewTableReporter(rep)(w)
	if rep.SLO != "" {
		fmt.Fprintln(w)
		_ = NewKneeReporter(rep)(w)
	}
	if rep.Direct != nil {
		fmt.Fprintf(w, "\ndirect: the job as a function call on %d goroutines: %.1f/s\n", rep.Direct.Goroutines, rep.Direct.Rate)
	}
	for _, r := range rep.Runs {
		for _, warn := range r.Warnings {
			fmt.Fprintf(w, "warning (%s, %s/s): %s\n", workersLabel(r.Workers), fmtRate(r.TargetRate), warn)
		}
	}
}

func targetLabel(r *Result) string {
	if r.Target == "embedded" {
		return "embedded cluster"
	}
	return "broker " + r.Target
}

func writeRun(w io.Writer, r *Result) {
	who := targetLabel(r)
	if r.Workers > 0 {
		who += ", " + workersLabel(r.Workers)
		if r.WorkerConcurrency > 0 {
			who += fmt.Sprintf(" of concurrency %d", r.WorkerConcurrency)
		}
	}
	if r.Service != "" {
		who += ", service " + r.Service
	}
	fmt.Fprintf(w, "hosebench: %s, job %s, %d-byte payload\n", who, r.Job, r.Size)
	if r.Mode == "open" {
		fmt.Fprintf(w, "open loop, %s arrivals at %s/s for %s after %s warmup, max in-flight %d\n\n",
			r.Arrival, fmtRate(r.TargetRate), fmtSeconds(r.DurationSeconds), fmtSeconds(r.WarmupSeconds), r.MaxInFlight)
	} else {
		fmt.Fprintf(w, "closed loop, %d callers for %s after %s warmup\n\n",
			r.Concurrency, fmtSeconds(r.DurationSeconds), fmtSeconds(r.WarmupSeconds))
	}

	fmt.Fprintf(w, "requests    sent %d   ok %d   errors %d", r.Sent, r.OK, r.ErrorsAll)
	if r.Mode == "open" {
		fmt.Fprintf(w, "   missed %d", r.Missed)
	}
	if r.Cancelled > 0 {
		fmt.Fprintf(w, "   cancelled %d", r.Cancelled)
	}
	fmt.Fprintln(w)
	if r.ErrorsAll > 0 {
		fmt.Fprint(w, "errors     ")
		for _, k := range ErrorKinds {
			if n := r.Errors[k.String()]; n > 0 {
				fmt.Fprintf(w, " %s %d", k, n)
			}
		}
		fmt.Fprintln(w)
	}
	if r.Mode == "open" {
		fmt.Fprintf(w, "rate        target %s/s   achieved %.1f/s   throughput %.1f/s\n", fmtRate(r.TargetRate), r.AchievedRate, r.Throughput)
	} else {
		fmt.Fprintf(w, "rate        achieved %.1f/s   throughput %.1f/s\n", r.AchievedRate, r.Throughput)
	}
	fmt.Fprintf(w, "duration    %s\n\n", fmtSeconds(r.DurationSeconds))

	tw := tabwriter.NewWriter(w, 0, 0, 3, ' ', tabwriter.AlignRight)
	if r.Mode == "open" {
		fmt.Fprintln(tw, "latency\tend-to-end\tuncorrected\tqueue\tservice\t")
		fmt.Fprintln(tw, "\t(from due time)\t(from send)\t(broker)\t(worker)\t")
	} else {
		fmt.Fprintln(tw, "latency\tend-to-end\tqueue\tservice\t")
		fmt.Fprintln(tw, "\t\t(broker)\t(worker)\t")
	}
	cell := func(p Percentiles, get func(Percentiles) float64) string {
		switch v := get(p); {
		case p.Count == 0:
			return "-"
		case v == 0:
			return "<1µs"
		default:
			return fmtDur(usDur(v))
		}
	}
	row := func(name string, get func(Percentiles) float64) {
		if r.Mode == "open" {
			fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t\n", name, cell(r.Latency, get), cell(r.Uncorrected, get), cell(r.QueueTime, get), cell(r.ServiceTime, get))
		} else {
			fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t\n", name, cell(r.Latency, get), cell(r.QueueTime, get), cell(r.ServiceTime, get))
		}
	}
	row("p50", func(p Percentiles) float64 { return p.P50 })
	row("p75", func(p Percentiles) float64 { return p.P75 })
	row("p90", func(p Percentiles) float64 { return p.P90 })
	row("p99", func(p Percentiles) float64 { return p.P99 })
	row("p99.9", func(p Percentiles) float64 { return p.P999 })
	row("p99.99", func(p Percentiles) float64 { return p.P9999 })
	row("max", func(p Percentiles) float64 { return p.Max })
	row("mean", func(p Percentiles) float64 { return p.Mean })
	_ = tw.Flush()
	fmt.Fprintln(w)

	if r.Mode == "open" {
		fmt.Fprintf(w, "generator   lag (send minus due) p50 %s  p99 %s  max %s", fmtUS(r.Lag.P50), fmtUS(r.Lag.P99), fmtUS(r.Lag.Max))
		if r.Throttled > 0 {
			fmt.Fprintf(w, "; waited for an in-flight place %d times", r.Throttled)
		}
		fmt.Fprintln(w)
	}
	scope := "hosebench"
	if r.Target == "embedded" {
		scope = "hosebench and the embedded cluster"
	}
	fmt.Fprintf(w, "cpu         %.0f%% of one core (user %.2fs, system %.2fs; %s)\n",
		r.CPU.PercentOfCore, r.CPU.UserSeconds, r.CPU.SystemSeconds, scope)
	if r.SLO != nil {
		if r.SLO.Met {
			fmt.Fprintf(w, "slo         %s: met\n", r.SLO.Spec)
		} else {
			fmt.Fprintf(w, "slo         %s: MISSED (%s)\n", r.SLO.Spec, strings.Join(r.SLO.Why, ", "))
		}
	}
	if d := r.Direct; d != nil {
		fmt.Fprintf(w, "direct      the job as a function call on %d goroutines: %.1f/s; through hose: %.1f/s (ratio %.3g)\n",
			d.Goroutines, d.Rate, r.Throughput, d.Ratio)
	}
	for _, warn := range r.Warnings {
		fmt.Fprintf(w, "warning: %s\n", warn)
	}
}

// ProgressLine renders p as one terminal line (no newline).
func ProgressLine(p Progress) string {
	var b strings.Builder
	if p.Runs > 1 {
		rate := "max"
		if p.Target > 0 {
			rate = fmtRate(p.Target) + "/s"
		}
		fmt.Fprintf(&b, "[%d/%d %s, %s] ", p.Run, p.Runs, workersLabel(p.Workers), rate)
	}
	phase := ""
	if p.Warmup {
		phase = " warmup"
	}
	fmt.Fprintf(&b, "%5.1fs%s  rate %.0f/s  ok %d  errors %d  in flight %d", p.Elapsed.Seconds(), phase, p.Rate, p.OK, p.Errors, p.InFlight)
	if p.P99 > 0 {
		fmt.Fprintf(&b, "  p99 %s", fmtDur(p.P99))
	}
	return b.String()
}

// fmtDur prints a duration with three significant digits.
func fmtDur(d time.Duration) string {
	switch {
	case d <= 0:
		return "0"
	case d < time.Microsecond:
		return fmt.Sprintf("%dns", d.Nanoseconds())
	case d < 100*time.Microsecond:
		return fmt.Sprintf("%.1fµs", float64(d)/1e3)
	case d < time.Millisecond:
		return fmt.Sprintf("%.0fµs", float64(d)/1e3)
	case d < 10*time.Millisecond:
		return fmt.Sprintf("%.2fms", float64(d)/1e6)
	case d < 100*time.Millisecond:
		return fmt.Sprintf("%.1fms", float64(d)/1e6)
	case d < time.Second:
		return fmt.Sprintf("%.0fms", float64(d)/1e6)
	}
	return fmt.Sprintf("%.2fs", d.Seconds())
}

func fmtUS(us float64) string {
	if us == 0 {
		return "-"
	}
	return fmtDur(usDur(us))
}

func fmtSeconds(s float64) string { return fmtDur(time.Duration(s * 1e9)) }

func fmtRate(r float64) string { return strconv.FormatFloat(r, 'f', -1, 64) }
