package broker

import (
	hdrhistogram "github.com/HdrHistogram/hdrhistogram-go"
	zmq "github.com/pebbe/zmq4"

	"github.com/hose-project/hose/stats"
)

// publish sends one stats snapshot on the PUB socket, hands it to the
// metrics server, and starts a new interval. It runs in the loop goroutine,
// which owns the socket and every figure it reads.
func (b *Broker) publish(now int64) {
	o := &b.obs
	snap := b.statsSnapshot(now)
	if b.pub != nil {
		if body, err := stats.Encode(snap); err == nil {
			// A subscriber that does not keep up loses snapshots (the
			// socket's high-water mark), never slows the broker.
			_, _ = b.pub.SendBytes(body, zmq.DONTWAIT)
		}
	}
	if o.metrics != nil {
		o.metrics.update(snap, o)
	}
	o.lastPub = now
	o.lastTots = b.counters
	for _, h := range []*hdrhistogram.Histogram{o.queue, o.service, o.total} {
		h.Reset()
	}
	for _, w := range b.workers {
		// Clearing a histogram costs its whole size: skip the idle ones.
		if w.service.TotalCount() > 0 {
			w.service.Reset()
		}
	}
	for _, svc := range b.services {
		svc.hwm = svc.live
	}
}
