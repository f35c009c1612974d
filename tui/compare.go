package tui

import (
	"encoding/json"
	"fmt"
	"sort"
	"strings"
	"time"

	hdrhistogram "github.com/HdrHistogram/hdrhistogram-go"

	"github.com/hose-project/hose/stats"
)

// Trial is the steady state measured at one worker count: every snapshot
// taken at least the settle time after the count last changed.
type Trial struct {
	Workers   int     `json:"workers"`
	Seconds   float64 `json:"seconds"`  // time measured
	Answered  uint64  `json:"answered"` // requests answered in it, ok or not
	Errors    uint64  `json:"errors"`
	JobsPerS  float64 `json:"jobs_per_s"` // answered ok per second
	P50US     int64   `json:"p50_us"`     // broker-side latency, arrival to result
	P99US     int64   `json:"p99_us"`
	ErrorRate float64 `json:"error_rate"` // errors / answered

	hist *hdrhistogram.Histogram
}

// comparison records a Trial per worker count as the count changes.
type comparison struct {
	settle   time.Duration
	trials   map[int]*Trial
	order    []int // worker counts in the order first measured
	cur      int   // live workers now, -1 before the first snapshot
	since    time.Time
	prev     *stats.Snapshot
	draining bool // the last snapshot was left out: a backlog drained
}

func newComparison(settle time.Duration) *comparison {
	return &comparison{settle: settle, trials: map[int]*Trial{}, cur: -1}
}

// observe folds one snapshot in. total is its decoded latency histogram.
func (c *comparison) observe(s *stats.Snapshot, total *hdrhistogram.Histogram) {
	live := s.Live()
	prev := c.prev
	c.prev = s
	if prev == nil || prev.Broker.Instance != s.Broker.Instance || live != c.cur {
		c.cur, c.since, c.draining = live, s.Time, false
		return
	}
	// Only intervals that start once the count has settled.
	if prev.Time.Sub(c.since) < c.settle {
		return
	}
	dt := stats.Elapsed(prev, s)
	a0, a1 := prev.Totals.Answered(), s.Totals.Answered()
	e0, e1 := prev.Totals.Errors, s.Totals.Errors
	if dt <= 0 || a1 < a0 || e1 < e0 {
		return
	}
	// A queue that shrinks is a backlog from the previous count draining:
	// not the steady state of this one.
	// It settles again once the queue stops shrinking: the jobs answered
	// just after a drain still carry the wait.
	if shrunk := prev.QueueDepth() - s.QueueDepth(); shrunk > max(10, int(a1-a0)/20) {
		c.draining, c.since = true, s.Time
		return
	}
	c.draining = false
	t := c.trials[live]
	if t == nil {
		t = &Trial{Workers: live, hist: stats.NewHistogram()}
		c.trials[live] = t
		c.order = append(c.order, live)
	}
	t.Seconds += dt
	t.Answered += a1 - a0
	t.Errors += e1 - e0
	if total != nil {
		t.hist.Merge(total)
	}
	t.JobsPerS = float64(t.Answered-t.Errors) / t.Seconds
	if t.Answered > 0 {
		t.ErrorRate = float64(t.Errors) / float64(t.Answered)
	}
	t.P50US = t.hist.ValueAtQuantile(50)
	t.P99US = t.hist.ValueAtQuantile(99)
}

// settling is how long the current count still settles (0 once measuring).
func (c *comparison) settling(now time.Time) time.Duration {
	if c.cur < 0 {
		return 0
	}
	return max(c.settle-now.Sub(c.since), 0)
}

// rows are the trials by worker count.
func (c *comparison) rows() []Trial {
	out := make([]Trial, 0, len(c.trials))
	for _, t := range c.trials {
		out = append(out, *t)
	}
	sort.Slice(out, func(i, k int) bool { return out[i].Workers < out[k].Workers })
	return out
}

func (c *comparison) clear() {
	c.trials = map[int]*Trial{}
	c.order = nil
}

// exportInfo describes where the comparison was measured.
type exportInfo struct {
	Generated time.Time `json:"generated"`
	Broker    string    `json:"broker"`
	Load      string    `json:"load,omitempty"`
	SettleS   float64   `json:"settle_s"`
}

// exportJSON is the comparison as JSON.
func exportJSON(info exportInfo, rows []Trial) ([]byte, error) {
	doc := struct {
		exportInfo
		Trials []Trial `json:"trials"`
	}{info, rows}
	if doc.Trials == nil {
		doc.Trials = []Trial{}
	}
	b, err := json.MarshalIndent(doc, "", "  ")
	return append(b, '\n'), err
}

// exportMarkdown is the comparison as a Markdown table.
func exportMarkdown(info exportInfo, rows []Trial) []byte {
	var b strings.Builder
	fmt.Fprintf(&b, "# hose worker-count comparison\n\n")
	fmt.Fprintf(&b, "- measured: %s\n", info.Generated.Format(time.RFC3339))
	fmt.Fprintf(&b, "- broker: %s\n", info.Broker)
	if info.Load != "" {
		fmt.Fprintf(&b, "- load: %s\n", info.Load)
	}
	fmt.Fprintf(&b, "- steady state: intervals starting %gs or more after the last change of the worker count, backlog drains left out; latency is broker-side, arrival to result\n\n", info.SettleS)
	b.WriteString("| workers | measured | jobs/s ok | p50 | p99 | error rate |\n")
	b.WriteString("|--:|--:|--:|--:|--:|--:|\n")
	for _, t := range rows {
		fmt.Fprintf(&b, "| %d | %s | %.1f | %s | %s | %s |\n", t.Workers,
			fmtAge(time.Duration(t.Seconds*float64(time.Second))), t.JobsPerS, fmtUS(t.P50US), fmtUS(t.P99US), fmtPct(t.ErrorRate))
	}
	return []byte(b.String())
}
