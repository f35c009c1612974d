package broker

import (
	"fmt"
	"testing"
	"time"

	zmq "github.com/pebbe/zmq4"

	"github.com/hose-project/hose/stats"
)

// BenchmarkPublish200 measures one stats snapshot (build, encode, send,
// reset) of a broker with 200 workers that each ran jobs in the interval:
// the loop time publishing costs per interval.
func BenchmarkPublish200(b *testing.B) {
	zctx, err := zmq.NewContext()
	if err != nil {
		b.Fatal(err)
	}
	pub, err := zctx.NewSocket(zmq.PUB)
	if err != nil {
		b.Fatal(err)
	}
	defer func() { pub.Close(); zctx.Term() }()
	_ = pub.SetLinger(0)
	if err := pub.Bind(fmt.Sprintf("inproc://publish-bench-%p", b)); err != nil {
		b.Fatal(err)
	}
	br := &Broker{
		cfg: Config{}.withDefaults(), start: time.Now(), instance: 1, pid: 1, host: "bench",
		jobs: map[uint64]*job{}, services: map[string]*service{}, workers: map[string]*worker{},
		clients: map[string]*client{}, obs: newObservations(), pub: pub,
	}
	svc := br.newService("default")
	fill := func() {
		for _, w := range br.workers {
			for i := int64(0); i < 50; i++ {
				br.obs.record(w.service, (100+i*7)*1000)
				br.obs.record(br.obs.service, (100+i*7)*1000)
				br.obs.record(br.obs.total, (150+i*7)*1000)
				br.obs.record(br.obs.queue, (10+i)*1000)
			}
		}
	}
	for i := 0; i < 200; i++ {
		key := fmt.Sprintf("w%03d", i)
		w := &worker{id: []byte(key), key: key, wid: uint32(i + 1), svcs: []*service{svc}, inReady: []bool{false},
			capacity: 2, inflight: i % 3, pid: uint32(1000 + i), host: "bench-host", version: "1.0", done: uint64(i * 100),
			service: newHist()}
		br.workers[key] = w
		svc.workers++
	}
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		b.StopTimer()
		fill()
		b.StartTimer()
		now := int64(i+1) * int64(time.Second)
		br.publish(now)
	}
	b.StopTimer()
	fill()
	body, err := stats.Encode(br.statsSnapshot(int64(b.N+1) * int64(time.Second)))
	if err != nil {
		b.Fatal(err)
	}
	b.ReportMetric(float64(len(body)), "bytes/snapshot")
}
