package loadgen

import (
	"context"
	"testing"
	"time"

	"github.com/hose-project/hose/client"
)

// nopExecutor answers every request at once: it isolates the generator's
// own cost.
type nopExecutor struct{}

func (nopExecutor) ExecuteTimed(context.Context, []byte, ...client.CallOption) ([]byte, client.Timing, error) {
	return nil, client.Timing{}, nil
}

// BenchmarkGeneratorOverhead runs the open-loop generator at 50 000/s for
// 2s against an executor that answers at once, and reports the CPU the
// generator uses (percent of one core) and its lag p99. Run it with
// -benchtime 1x.
func BenchmarkGeneratorOverhead(b *testing.B) {
	for range b.N {
		cfg := DefaultConfig()
		cfg.Rates = []float64{50000}
		cfg.Duration = 2 * time.Second
		cfg.Warmup = -1
		cfg.Broker = []string{"tcp://127.0.0.1:1"}
		cfg.Workers = nil
		cfg.Executor = nopExecutor{}
		rep, err := Run(context.Background(), cfg)
		if err != nil {
			b.Fatal(err)
		}
		r := rep.Runs[0]
		b.ReportMetric(r.CPU.PercentOfCore, "%core")
		b.ReportMetric(r.Lag.P99, "lag-p99-µs")
		b.ReportMetric(r.AchievedRate, "sent/s")
	}
}
