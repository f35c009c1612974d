// Package wake lets any goroutine wake the one goroutine that owns a set of
// ZeroMQ sockets while it blocks in zmq_poll.
//
// ZeroMQ sockets are not goroutine-safe, so the owner cannot be handed a Go
// channel to select on. Instead it polls one more socket, the receiving end of
// an inproc PAIR. Producers never touch that pair: they flip an atomic flag
// and, only when the owner is actually asleep, nudge a forwarder goroutine
// (which owns the sending end) through a buffered channel. Under load the
// owner rarely sleeps, so signals cost one atomic load and no cgo call.
package wake

import (
	"fmt"
	"sync"
	"sync/atomic"

	zmq "github.com/pebbe/zmq4"
)

var seq atomic.Uint64

// Waker is the wake-up channel of one socket owner.
type Waker struct {
	recv     *zmq.Socket // owned by the owner goroutine
	send     *zmq.Socket // owned by the forwarder goroutine
	sig      chan struct{}
	done     chan struct{}
	wg       sync.WaitGroup
	sleeping atomic.Bool
	once     sync.Once
}

// New creates a Waker whose sockets live in ctx.
func New(ctx *zmq.Context) (*Waker, error) {
	ep := fmt.Sprintf("inproc://hose-wake-%d", seq.Add(1))
	recv, err := ctx.NewSocket(zmq.PAIR)
	if err != nil {
		return nil, err
	}
	_ = recv.SetLinger(0)
	if err := recv.Bind(ep); err != nil {
		recv.Close()
		return nil, err
	}
	send, err := ctx.NewSocket(zmq.PAIR)
	if err != nil {
		recv.Close()
		return nil, err
	}
	_ = send.SetLinger(0)
	if err := send.Connect(ep); err != nil {
		recv.Close()
		send.Close()
		return nil, err
	}
	w := &Waker{recv: recv, send: send, sig: make(chan struct{}, 1), done: make(chan struct{})}
	w.wg.Add(1)
	go w.forward()
	return w, nil
}

func (w *Waker) forward() {
	defer w.wg.Done()
	defer w.send.Close()
	one := []byte{1}
	for {
		select {
		case <-w.sig:
			// DONTWAIT: a full pipe already holds a pending wake-up.
			_, _ = w.send.SendBytes(one, zmq.DONTWAIT)
		case <-w.done:
			return
		}
	}
}

// Socket is the socket the owner adds to its poller.
func (w *Waker) Socket() *zmq.Socket { return w.recv }

// Signal wakes the owner if it is asleep. Safe from any goroutine.
func (w *Waker) Signal() {
	if w.sleeping.Load() && w.sleeping.CompareAndSwap(true, false) {
		select {
		case w.sig <- struct{}{}:
		default:
		}
	}
}

// Sleep marks the owner as about to block. The owner must look at its queues
// once more after Sleep and call Awake instead of blocking if they hold work:
// a producer that queued before Sleep did not signal.
func (w *Waker) Sleep() { w.sleeping.Store(true) }

// Awake marks the owner as running. Owner only.
func (w *Waker) Awake() { w.sleeping.Store(false) }

// Drain reads pending wake-up messages; call it when the poller reports the
// wake socket readable. Owner only.
func (w *Waker) Drain() {
	for {
		if _, err := w.recv.RecvBytes(zmq.DONTWAIT); err != nil {
			return
		}
	}
}

// Close stops the forwarder and closes both sockets. Owner only, once the
// owner no longer polls.
func (w *Waker) Close() {
	w.once.Do(func() {
		close(w.done)
		w.wg.Wait()
		w.recv.Close()
	})
}
