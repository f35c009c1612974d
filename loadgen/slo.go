package loadgen

import (
	"fmt"
	"strconv"
	"strings"
	"time"
)

// Objective bounds one latency percentile.
type Objective struct {
	Name     string  // as written: "p99", "p99.9", "max"
	Quantile float64 // 0 < Quantile <= 100 (max is 100)
	Limit    time.Duration
}

// SLO is a service level objective: every objective must hold, and the run
// must have no errors and no missed slots.
type SLO []Objective

// ParseSLO parses a comma-separated list of PERCENTILE=DURATION:
// "p99=2ms", "p50=500us,p99.9=10ms", "max=1s". p999 means p99.9 and p9999
// p99.99.
func ParseSLO(s string) (SLO, error) {
	var slo SLO
	for _, part := range strings.Split(s, ",") {
		part = strings.TrimSpace(part)
		if part == "" {
			continue
		}
		name, lim, ok := strings.Cut(part, "<=")
		if !ok {
			name, lim, ok = strings.Cut(part, "=")
		}
		if !ok {
			return nil, fmt.Errorf("loadgen: slo %q: want PERCENTILE=DURATION, such as p99=2ms", part)
		}
		name = strings.ToLower(strings.TrimSpace(name))
		q, err := parseQuantile(name)
		if err != nil {
			return nil, fmt.Errorf("loadgen: slo %q: %w", part, err)
		}
		d, err := time.ParseDuration(strings.TrimSpace(lim))
		if err != nil || d <= 0 {
			return nil, fmt.Errorf("loadgen: slo %q: %q is not a positive duration", part, lim)
		}
		slo = append(slo, Objective{Name: name, Quantile: q, Limit: d})
	}
	if len(slo) == 0 {
		return nil, fmt.Errorf("loadgen: empty slo")
	}
	return slo, nil
}

// parseQuantile reads "max", "p50", "p99.9", "p999" (99.9), "p9999".
func parseQuantile(name string) (float64, error) {
	if name == "max" || name == "p100" {
		return 100, nil
	}
	digits, ok := strings.CutPrefix(name, "p")
	if !ok || digits == "" {
		return 0, fmt.Errorf("percentile %q: want p50, p99, p99.9, p999 or max", name)
	}
	if !strings.Contains(digits, ".") && len(digits) > 2 {
		// p999 -> 99.9, p9999 -> 99.99
		digits = digits[:2] + "." + digits[2:]
	}
	q, err := strconv.ParseFloat(digits, 64)
	if err != nil || q <= 0 || q > 100 {
		return 0, fmt.Errorf("percentile %q: want p50, p99, p99.9, p999 or max", name)
	}
	return q, nil
}

func (s SLO) String() string {
	parts := make([]string, len(s))
	for i, o := range s {
		parts[i] = o.Name + "<=" + o.Limit.String()
	}
	return strings.Join(parts, ",")
}

// Check evaluates the SLO on a finished run.
func (s SLO) Check(r *Result) *SLOResult {
	res := &SLOResult{Spec: s.String(), Met: true}
	miss := func(format string, args ...any) {
		res.Met = false
		res.Why = append(res.Why, fmt.Sprintf(format, args...))
	}
	if r.ErrorsAll > 0 {
		miss("%d errors", r.ErrorsAll)
	}
	if r.Missed > 0 {
		miss("%d missed slots", r.Missed)
	}
	if r.OK == 0 || r.LatencyHist == nil {
		miss("no ok answers")
		return res
	}
	for _, o := range s {
		v := time.Duration(r.LatencyHist.ValueAtQuantile(o.Quantile))
		if o.Quantile == 100 {
			v = time.Duration(r.LatencyHist.Max())
		}
		if v > o.Limit {
			miss("%s %s > %s", o.Name, fmtDur(v), fmtDur(o.Limit))
		}
	}
	return res
}
