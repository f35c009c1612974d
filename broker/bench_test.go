package broker_test

import (
	"context"
	"runtime"
	"sync"
	"testing"
	"time"

	hdrhistogram "github.com/HdrHistogram/hdrhistogram-go"

	"github.com/hose-project/hose/broker"
	"github.com/hose-project/hose/client"
	"github.com/hose-project/hose/worker"
)

// echoCluster starts a broker with n in-process echo workers of the given
// concurrency and a client, all on loopback TCP.
func echoCluster(tb testing.TB, n, concurrency int) (*broker.Broker, *client.Client) {
	tb.Helper()
	b, err := broker.New(broker.Config{Frontend: "tcp://127.0.0.1:*", Backend: "tcp://127.0.0.1:*"})
	if err != nil {
		tb.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	echo := worker.HandlerFunc(func(_ context.Context, j *worker.Job) ([]byte, error) { return j.Payload, nil })
	for i := 0; i < n; i++ {
		w, err := worker.New(worker.Config{Backend: b.Backend(), Concurrency: concurrency}, echo)
		if err != nil {
			tb.Fatal(err)
		}
		wg.Add(1)
		go func() { defer wg.Done(); _ = w.Run(ctx) }()
	}
	c, err := client.Dial(b.Frontend())
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() {
		c.Close()
		cancel()
		wg.Wait()
		b.Close()
	})
	// Wait until the workers are registered.
	for i := 0; ; i++ {
		st, _ := b.Stats()
		if len(st.Workers) == n {
			break
		}
		if i > 500 {
			tb.Fatal("workers did not register")
		}
		time.Sleep(5 * time.Millisecond)
	}
	return b, c
}

// BenchmarkExecute is pipelined 100-byte echo through a real broker with two
// in-process workers: 256 callers in flight on one client.
func BenchmarkExecute(b *testing.B) {
	_, c := echoCluster(b, 2, 128)
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
