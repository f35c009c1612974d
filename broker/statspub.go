package broker

import (
	"encoding/json"

	zmq "github.com/pebbe/zmq4"
)

// publish sends one stats snapshot on the PUB socket and starts a new
// interval. It runs in the loop goroutine, which owns the socket.
func (b *Broker) publish(now int64) {
	snap := b.snapshot(now)
	body, err := json.Marshal(snap)
	if err != nil {
		return
	}
	_, _ = b.pub.SendBytes(body, zmq.DONTWAIT)
	b.obs.queue.Reset()
	b.obs.service.Reset()
	for _, w := range b.workers {
		w.service.Reset()
	}
}
