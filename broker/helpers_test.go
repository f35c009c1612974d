package broker_test

import (
	"context"
	"runtime"
	"strings"
	"sync"
	"testing"
	"time"

	zmq "github.com/pebbe/zmq4"

	"github.com/hose-project/hose/broker"
	"github.com/hose-project/hose/client"
	"github.com/hose-project/hose/internal/zsock"
	"github.com/hose-project/hose/protocol"
	"github.com/hose-project/hose/worker"
)

// testConfig is a broker on free loopback ports with fast heartbeats so
// faults show within a few hundred milliseconds.
func testConfig() broker.Config {
	return broker.Config{
		Frontend:          "tcp://127.0.0.1:*",
		Backend:           "tcp://127.0.0.1:*",
		HeartbeatInterval: 100 * time.Millisecond,
		Liveness:          4,
		NoWorkerWait:      200 * time.Millisecond,
	}
}

// startBroker starts a broker and closes it at the end of the test.
func startBroker(t testing.TB, cfg broker.Config) *broker.Broker {
	t.Helper()
	b, err := broker.New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { b.Close() })
	return b
}

// startWorker runs an in-process worker until the test ends and returns a
// function that stops it early (gracefully) and returns Run's error.
func startWorker(t testing.TB, b *broker.Broker, cfg worker.Config, h worker.Handler) func() error {
	t.Helper()
	cfg.Backend = b.Backend()
	if cfg.HeartbeatInterval == 0 {
		cfg.HeartbeatInterval = 100 * time.Millisecond
	}
	w, err := worker.New(cfg, h)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- w.Run(ctx) }()
	var once sync.Once
	var runErr error
	stop := func() error {
		once.Do(func() {
			cancel()
			select {
			case runErr = <-done:
			case <-time.After(10 * time.Second):
				t.Error("worker did not stop within 10s")
			}
		})
		return runErr
	}
	t.Cleanup(func() { stop() })
	return stop
}

// newClient connects a client to b and closes it at the end of the test.
func newClient(t testing.TB, cfg client.Config, eps ...string) *client.Client {
	t.Helper()
	cfg.Endpoints = eps
	if cfg.HeartbeatInterval == 0 {
		cfg.HeartbeatInterval = 100 * time.Millisecond
	}
	c, err := client.New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

// waitFor polls cond until it holds or the limit passes.
func waitFor(t testing.TB, limit time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(limit)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %v waiting for %s", limit, what)
		}
		time.Sleep(2 * time.Millisecond)
	}
}

// waitWorkers waits until the broker lists n workers that are not draining.
func waitWorkers(t testing.TB, b *broker.Broker, n int) {
	t.Helper()
	waitFor(t, 5*time.Second, "workers to register", func() bool {
		st, err := b.Stats()
		if err != nil {
			return false
		}
		live := 0
		for _, w := range st.Workers {
			if !w.Draining {
				live++
			}
		}
		return live == n
	})
}

func stats(t testing.TB, b *broker.Broker) broker.Stats {
	t.Helper()
	st, err := b.Stats()
	if err != nil {
		t.Fatal(err)
	}
	return st
}

var echo = worker.HandlerFunc(func(_ context.Context, j *worker.Job) ([]byte, error) { return j.Payload, nil })

// blocker is a handler that blocks until released or its context ends,
// and counts the jobs it started.
type blocker struct {
	started chan uint64
	release chan struct{}
}

func newBlocker() *blocker {
	return &blocker{started: make(chan uint64, 1000), release: make(chan struct{})}
}

func (b *blocker) Handle(ctx context.Context, j *worker.Job) ([]byte, error) {
	b.started <- j.ID
	select {
	case <-b.release:
		return j.Payload, nil
	case <-ctx.Done():
		return nil, ctx.Err()
	}
}

// checkGoroutines fails the test if goroutines started during it are still
// running once cleanup is over (allowing a moment for them to exit).
func checkGoroutines(t *testing.T) {
	t.Helper()
	before := runtime.NumGoroutine()
	t.Cleanup(func() {
		deadline := time.Now().Add(5 * time.Second)
		for {
			n := runtime.NumGoroutine()
			if n <= before {
				return
			}
			if time.Now().After(deadline) {
				buf := make([]byte, 1<<16)
				buf = buf[:runtime.Stack(buf, true)]
				t.Errorf("goroutines leaked: %d before, %d after\n%s", before, n, buf)
				return
			}
			time.Sleep(5 * time.Millisecond)
		}
	})
}

// rawPeer is a bare DEALER speaking (or mangling) the protocol by hand.
type rawPeer struct {
	t    testing.TB
	ctx  *zmq.Context
	sock *zmq.Socket
}

func newRawPeer(t testing.TB, ep string) *rawPeer {
	t.Helper()
	ctx, err := zmq.NewContext()
	if err != nil {
		t.Fatal(err)
	}
	s, err := ctx.NewSocket(zmq.DEALER)
	if err != nil {
		t.Fatal(err)
	}
	_ = s.SetLinger(0)
	if err := s.Connect(ep); err != nil {
		t.Fatal(err)
	}
	p := &rawPeer{t: t, ctx: ctx, sock: s}
	t.Cleanup(p.close)
	return p
}

func (p *rawPeer) close() {
	if p.sock != nil {
		p.sock.Close()
		p.sock = nil
		p.ctx.Term()
	}
}

func (p *rawPeer) sendFrames(frames ...[]byte) {
	p.t.Helper()
	for i, f := range frames {
		flag := zmq.Flag(0)
		if i < len(frames)-1 {
			flag = zmq.SNDMORE
		}
		if _, err := p.sock.SendBytes(f, flag); err != nil {
			p.t.Fatalf("raw send: %v", err)
		}
	}
}

func (p *rawPeer) send(d protocol.Dialect, cmd protocol.Command, body []byte) {
	p.t.Helper()
	p.sendFrames(protocol.Header(d, cmd), body)
}

// recv waits up to limit for one message; ok is false on timeout.
func (p *rawPeer) recv(limit time.Duration) (zsock.Msg, bool) {
	p.t.Helper()
	if err := p.sock.SetRcvtimeo(limit); err != nil {
		p.t.Fatal(err)
	}
	var m zsock.Msg
	if err := zsock.Recv(p.sock, 0, false, &m); err != nil {
		return m, false
	}
	return m, true
}

// recvCmd waits for a message with the given command, skipping others
// (heartbeats), and returns its body.
func (p *rawPeer) recvCmd(d protocol.Dialect, want protocol.Command, limit time.Duration) ([]byte, bool) {
	p.t.Helper()
	deadline := time.Now().Add(limit)
	for {
		left := time.Until(deadline)
		if left <= 0 {
			return nil, false
		}
		m, ok := p.recv(left)
		if !ok {
			return nil, false
		}
		cmd, err := protocol.ParseHeader(m.Header, d)
		if err == nil && cmd == want {
			return m.Body, true
		}
	}
}

func contains(s, sub string) bool { return strings.Contains(s, sub) }
