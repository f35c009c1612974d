package broker_test

import (
	"context"
	"runtime"
	"sync"
	"testing"
	"time"

	hdrhistogram "github.com/HdrHistogram/hdrhistogram-go"

	"github.com/hose-project/hose/broker"
)

// BenchmarkExecute is pipelined 100-byte echo through a real broker with two
// in-process workers: 256 callers in flight on one client.
func BenchmarkExecute(b *testing.B) {
	_, c := workerFleet(b, broker.Config{Frontend: "tcp://127.0.0.1:*", Backend: "tcp://127.0.0.1:*"}, 2, 128, 0)
	payload := make([]byte, 100)
	var mu sync.Mutex
	total := hdrhistogram.New(1, int64(10*time.Second/time.Microsecond), 3)
	b.SetBytes(int64(len(payload)))
	b.ReportAllocs()
	b.SetParallelism(max(1, 256/runtime.GOMAXPROCS(0)))
	start := time.Now()
	b.RunParallel(func(pb *testing.PB) {
		h := hdrhistogram.New(1, int64(10*time.Second/time.Microsecond), 3)
		ctx := context.Background()
		for pb.Next() {
			t0 := time.Now()
			if _, err := c.Execute(ctx, payload); err != nil {
				b.Error(err)
				return
			}
			_ = h.RecordValue(int64(time.Since(t0) / time.Microsecond))
		}
		mu.Lock()
		total.Merge(h)
		mu.Unlock()
	})
	el := time.Since(start)
	b.ReportMetric(float64(b.N)/el.Seconds(), "jobs/s")
	b.ReportMetric(float64(total.ValueAtQuantile(50)), "p50-µs")
	b.ReportMetric(float64(total.ValueAtQuantile(99)), "p99-µs")
}
