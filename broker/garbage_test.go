package broker_test

import (
	"math/rand/v2"
	"net"
	"strings"
	"testing"
	"time"

	zmq "github.com/pebbe/zmq4"

	"github.com/hose-project/hose/client"
	"github.com/hose-project/hose/protocol"
	"github.com/hose-project/hose/worker"
)

// TestGarbageOnEverySocket throws raw TCP bytes, random ZeroMQ frames and
// valid commands in wrong orders at every bound socket (frontend, backend,
// stats), then checks the broker still answers real clients through real
// workers and still publishes.
func TestGarbageOnEverySocket(t *testing.T) {
	checkGoroutines(t)
	cfg := testConfig()
	cfg.Stats = "tcp://127.0.0.1:*"
	cfg.StatsInterval = 100 * time.Millisecond
	b := startBroker(t, cfg)
	startWorker(t, b, worker.Config{}, echo)
	waitWorkers(t, b, 1)
	c := newClient(t, client.Config{}, b.Frontend())
	stillServes(t, c)
	rng := rand.New(rand.NewPCG(1, 2))

	for _, ep := range []string{b.Frontend(), b.Backend()} {
		rawTCPGarbage(t, ep, rng)
		// ZMTP peers sending random frames and commands out of order.
		for i := 0; i < 10; i++ {
			p := newRawPeer(t, ep)
			for k := 0; k < 50; k++ {
				n := rng.IntN(4) + 1
				frames := make([][]byte, n)
				for f := range frames {
					frames[f] = make([]byte, rng.IntN(64))
					for j := range frames[f] {
						frames[f][j] = byte(rng.Uint32())
					}
				}
				// Half the time, a valid header with a random body.
				if rng.IntN(2) == 0 {
					d := protocol.Client
					if rng.IntN(2) == 0 {
						d = protocol.Worker
					}
					frames[0] = protocol.Header(d, protocol.Command(rng.IntN(9)))
				}
				p.sendFrames(frames...)
			}
			// Valid commands in the wrong order: results and heartbeats
			// before registering, a drain, then a READY, results for jobs
			// never sent, a second READY, DISCONNECT twice.
			p.send(protocol.Worker, protocol.CmdResult, protocol.AppendResult(nil, 1, protocol.StatusOK, nil))
			p.send(protocol.Worker, protocol.CmdDrain, nil)
			p.send(protocol.Worker, protocol.CmdReady, protocol.AppendReady(nil, &protocol.Ready{Capacity: 3, Services: []string{"junk"}}))
			p.send(protocol.Worker, protocol.CmdResult, protocol.AppendResult(nil, 987654, protocol.StatusWorkerError, []byte("?")))
			p.send(protocol.Worker, protocol.CmdReady, protocol.AppendReady(nil, &protocol.Ready{Capacity: 1}))
			p.send(protocol.Worker, protocol.CmdDisconnect, nil)
			p.send(protocol.Worker, protocol.CmdDisconnect, nil)
			p.send(protocol.Client, protocol.CmdCancel, protocol.AppendU64(nil, 5))
			p.close()
		}
		stillServes(t, c)
	}
	// The stats PUB socket: raw TCP, then XSUB peers (the only kind a PUB
	// talks to) sending random frames upstream, which a PUB reads as
	// (un)subscriptions or drops.
	rawTCPGarbage(t, b.StatsEndpoint(), rng)
	for i := 0; i < 5; i++ {
		x, err := zmq.NewSocket(zmq.XSUB)
		if err != nil {
			t.Fatal(err)
		}
		_ = x.SetLinger(0)
		if err := x.Connect(b.StatsEndpoint()); err != nil {
			t.Fatal(err)
		}
		for k := 0; k < 50; k++ {
			f := make([]byte, rng.IntN(300))
			for j := range f {
				f[j] = byte(rng.Uint32())
			}
			_, _ = x.SendBytes(f, zmq.DONTWAIT)
		}
		x.Close()
	}
	// A subscriber that joins afterwards still gets snapshots.
	subscribeStats(t, b.StatsEndpoint()).next(5 * time.Second)
	stillServes(t, c)

	st := stats(t, b)
	t.Logf("malformed %d, unknown worker %d, late %d", st.Counters.Malformed, st.Counters.UnknownWorker, st.Counters.Late)
	if st.Counters.Malformed == 0 {
		t.Fatal("no malformed message counted")
	}
}

// rawTCPGarbage opens TCP connections to a tcp:// endpoint and writes random
// bytes, a truncated ZMTP greeting, or a greeting followed by noise. libzmq
// drops these connections.
func rawTCPGarbage(t testing.TB, ep string, rng *rand.Rand) {
	t.Helper()
	addr := strings.TrimPrefix(ep, "tcp://")
	for i := 0; i < 20; i++ {
		conn, err := net.DialTimeout("tcp", addr, time.Second)
		if err != nil {
			t.Fatal(err)
		}
		junk := make([]byte, rng.IntN(4096)+1)
		for j := range junk {
			junk[j] = byte(rng.Uint32())
		}
		if i%3 == 1 {
			junk = append([]byte{0xff, 0, 0, 0, 0, 0, 0, 0, 1, 0x7f, 3, 0}, junk...)
		}
		_ = conn.SetWriteDeadline(time.Now().Add(time.Second))
		_, _ = conn.Write(junk)
		conn.Close()
	}
}
