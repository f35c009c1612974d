// Package wake lets the one goroutine that owns a set of ZeroMQ sockets
// sleep until any of them may have input, another goroutine has work for it,
// or a timeout passes, without a blocking cgo call.
//
// A goroutine blocked in zmq_poll sits in a cgo call that keeps its P (Go's
// processor) until the runtime's monitor takes it back, which can take up
// to 10 ms when the program was idle. With a few such owners in one process
// (a client, a broker, workers) every P can be stuck in C while timers and
// runnable goroutines wait, and each wake-up costs OS thread switches.
// Instead each socket's ZMQ_FD (an edge-triggered "look at ZMQ_EVENTS"
// signal) is handed, as a dup, to Go's own netpoller; a small watcher
// goroutine turns its edges into a send on a channel, and the owner waits
// in a plain select, parked like any goroutine doing network I/O.
//
// The ZMQ_FD contract applies: the fd only says "something changed". After
// every wake-up, and after sending on a socket, the owner must ask
// ZMQ_EVENTS (Watch.Ready) and drain the socket until it would block before
// it waits again.
package wake

import (
	"fmt"
	"os"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	zmq "github.com/pebbe/zmq4"
	"golang.org/x/sys/unix"
)

// Waiter is the wake-up point of one socket owner.
type Waiter struct {
	c        chan struct{}
	sleeping atomic.Bool
	timer    *time.Timer
}

// New returns a Waiter.
func New() *Waiter {
	t := time.NewTimer(time.Hour)
	t.Stop()
	return &Waiter{c: make(chan struct{}, 1), timer: t}
}

// Signal wakes the owner if it sleeps. Safe from any goroutine; costs one
// atomic load while the owner is awake.
func (w *Waiter) Signal() {
	if w.sleeping.Load() && w.sleeping.CompareAndSwap(true, false) {
		w.poke()
	}
}

func (w *Waiter) poke() {
	select {
	case w.c <- struct{}{}:
	default:
	}
}

// Sleep marks the owner as about to wait. The owner must then look at its
// queues once more and call Wait only if they are empty (Awake otherwise):
// a producer that queued before Sleep did not signal.
func (w *Waiter) Sleep() { w.sleeping.Store(true) }

// Awake cancels Sleep.
func (w *Waiter) Awake() { w.sleeping.Store(false) }

// Wait blocks until a signal, a socket edge, or d passes (d <= 0: no wait).
func (w *Waiter) Wait(d time.Duration) {
	defer w.sleeping.Store(false)
	if d <= 0 {
		select {
		case <-w.c:
		default:
		}
		return
	}
	w.timer.Reset(d)
	select {
	case <-w.c:
	case <-w.timer.C:
	}
	w.timer.Stop()
}

// Watch is one socket's ZMQ_FD registered with the netpoller.
type Watch struct {
	sock *zmq.Socket // used by the owner only (Ready)
	f    *os.File
	ack  chan struct{}
	stop chan struct{}
	done chan struct{}
	once sync.Once
}

// Watch starts turning edges of s's ZMQ_FD into wake-ups of w. Close the
// Watch before closing s.
func (w *Waiter) Watch(s *zmq.Socket) (*Watch, error) {
	fd, err := s.GetFd()
	if err != nil {
		return nil, fmt.Errorf("wake: ZMQ_FD: %w", err)
	}
	// A dup, so closing our *os.File never closes libzmq's fd; it shares
	// the open file description, so it sees the same edges.
	d, err := syscall.Dup(int(fd))
	if err != nil {
		return nil, fmt.Errorf("wake: dup ZMQ_FD: %w", err)
	}
	syscall.CloseOnExec(d)
	f := os.NewFile(uintptr(d), "zmq-fd")
	rc, err := f.SyscallConn()
	if err != nil {
		f.Close()
		return nil, fmt.Errorf("wake: ZMQ_FD is not pollable: %w", err)
	}
	x := &Watch{sock: s, f: f, ack: make(chan struct{}, 1), stop: make(chan struct{}), done: make(chan struct{})}
	go x.run(rc, w)
	return x, nil
}

// run pokes the owner whenever the fd is readable, then waits until the
// owner has looked at the socket (Ready) before watching again: until
// then libzmq has not consumed the signal and the fd stays readable.
//
// The level is checked with poll(2), which does not consume anything, on
// every round: Go's RawConn.Read forgets a readiness event that arrived
// before it was called, so an edge between two rounds would otherwise be
// lost. The fd is never read: it is libzmq's.
func (x *Watch) run(rc syscall.RawConn, w *Waiter) {
	defer close(x.done)
	parked := false
	wait := func(fd uintptr) bool {
		if parked || readable(int(fd)) {
			return true
		}
		parked = true
		return false
	}
	for {
		parked = false
		if err := rc.Read(wait); err != nil {
			return
		}
		w.poke()
		select {
		case <-x.ack:
		case <-x.stop:
			return
		}
	}
}

// readable polls fd for input without waiting and without reading.
func readable(fd int) bool {
	pfd := []unix.PollFd{{Fd: int32(fd), Events: unix.POLLIN}}
	n, err := unix.Poll(pfd, 0)
	return err == nil && n > 0 && pfd[0].Revents&unix.POLLIN != 0
}

// Close stops the watcher and releases the dup. Safe to call twice, and on
// a nil Watch.
func (x *Watch) Close() {
	if x == nil {
		return
	}
	x.once.Do(func() {
		close(x.stop)
		_ = x.f.SetReadDeadline(time.Unix(1, 0))
		<-x.done
		x.f.Close()
	})
}

// Ready reports whether the socket has a message to read now (ZMQ_EVENTS,
// which also lets libzmq consume the fd's signal) and lets the watcher
// watch again. Owner only; nil-safe (false).
func (x *Watch) Ready() bool {
	if x == nil {
		return false
	}
	ev, err := x.sock.GetEvents()
	select {
	case x.ack <- struct{}{}:
	default:
	}
	return err == nil && ev&zmq.POLLIN != 0
}
