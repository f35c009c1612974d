package broker_test

import (
	"context"
	"sync"
	"testing"
	"time"

	zmq "github.com/pebbe/zmq4"

	"github.com/hose-project/hose/broker"
	"github.com/hose-project/hose/client"
	"github.com/hose-project/hose/worker"
)

// BenchmarkStatsOverhead is pipelined 100-byte echo (128 callers) through
// a broker with 200 registered in-process workers, with the stats stream off
// and on at 1 Hz (with a subscriber reading it). Two fleets: 200 echo
// workers running 2 jobs each (every row has latency figures), and 2 echo
// workers running 128 each beside 198 idle ones of another service (the
// broker, not the fleet, is the bottleneck). Compare the jobs/s of off and
// 1Hz with benchstat over several -count runs; the budget is 2 %.
func BenchmarkStatsOverhead(b *testing.B) {
	for _, fleet := range []struct {
		name             string
		busy, conc, idle int
	}{{"200x2", 200, 2, 0}, {"2x128+198idle", 2, 128, 198}} {
		for _, mode := range []struct {
			name  string
			stats string
		}{{"off", ""}, {"1Hz", "tcp://127.0.0.1:*"}} {
			b.Run("fleet="+fleet.name+"/stats="+mode.name, func(b *testing.B) {
				cfg := broker.Config{Frontend: "tcp://127.0.0.1:*", Backend: "tcp://127.0.0.1:*", Stats: mode.stats, StatsInterval: time.Second}
				br, c := workerFleet(b, cfg, fleet.busy, fleet.conc, fleet.idle)
				if mode.stats != "" {
					readStats(b, br.StatsEndpoint())
				}
				payload := make([]byte, 100)
				b.SetBytes(int64(len(payload)))
				b.ReportAllocs()
				b.SetParallelism(64) // 128 callers on 2 CPUs
				b.ResetTimer()
				start, cpu0 := time.Now(), cpuTime()
				b.RunParallel(func(pb *testing.PB) {
					ctx := context.Background()
					for pb.Next() {
						if _, err := c.Execute(ctx, payload); err != nil {
							b.Error(err)
							return
						}
					}
				})
				b.ReportMetric(float64(b.N)/time.Since(start).Seconds(), "jobs/s")
				// CPU per job (the whole process: broker, workers, callers)
				// varies less than throughput on a shared machine.
				b.ReportMetric(float64(cpuTime()-cpu0)/float64(time.Microsecond)/float64(b.N), "cpu-µs/job")
			})
		}
	}
}

// workerFleet starts a broker with n in-process echo workers of the default
// service, idle more of a service nobody calls, and a client.
func workerFleet(tb testing.TB, cfg broker.Config, n, concurrency, idle int) (*broker.Broker, *client.Client) {
	tb.Helper()
	br, err := broker.New(cfg)
	if err != nil {
		tb.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	for i := 0; i < n+idle; i++ {
		wc := worker.Config{Backend: br.Backend(), Concurrency: concurrency}
		if i >= n {
			wc = worker.Config{Backend: br.Backend(), Concurrency: 1, Services: []string{"idle"}}
		}
		w, err := worker.New(wc, echo)
		if err != nil {
			tb.Fatal(err)
		}
		wg.Add(1)
		go func() { defer wg.Done(); _ = w.Run(ctx) }()
	}
	c, err := client.Dial(br.Frontend())
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() {
		c.Close()
		cancel()
		wg.Wait()
		br.Close()
	})
	waitWorkers(tb, br, n+idle)
	return br, c
}

// readStats drains the stats stream in the background until the test ends.
func readStats(tb testing.TB, ep string) {
	tb.Helper()
	zctx, err := zmq.NewContext()
	if err != nil {
		tb.Fatal(err)
	}
	s, err := zctx.NewSocket(zmq.SUB)
	if err != nil {
		tb.Fatal(err)
	}
	_ = s.SetLinger(0)
	_ = s.SetSubscribe("")
	_ = s.SetRcvtimeo(50 * time.Millisecond)
	if err := s.Connect(ep); err != nil {
		tb.Fatal(err)
	}
	done := make(chan struct{})
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		defer func() { s.Close(); zctx.Term() }()
		for {
			select {
			case <-done:
				return
			default:
			}
			_, _ = s.RecvBytes(0)
		}
	}()
	tb.Cleanup(func() { close(done); wg.Wait() })
}
