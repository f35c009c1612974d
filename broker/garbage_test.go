package broker_test

import (
	"math/rand/v2"
	"net"
	"strings"
	"testing"
	"time"

	"github.com/hose-project/hose/client"
	"github.com/hose-project/hose/protocol"
	"github.com/hose-project/hose/worker"
)

// TestGarbageOnEverySocket throws raw TCP bytes, random ZeroMQ frames and
// valid commands in wrong orders at both bound sockets, then checks the
// broker still answers real clients through real workers.
func TestGarbageOnEverySocket(t *testing.T) {
	checkGoroutines(t)
	b := startBroker(t, testConfig())
	startWorker(t, b, worker.Config{}, echo)
	waitWorkers(t, b, 1)
	c := newClient(t, client.Config{}, b.Frontend())
	stillServes(t, c)
	rng := rand.New(rand.NewPCG(1, 2))

	for _, ep := range []string{b.Frontend(), b.Backend()} {
		addr := strings.TrimPrefix(ep, "tcp://")
		// Raw TCP: random bytes, a truncated ZMTP greeting, a greeting
		// followed by noise. libzmq drops these connections.
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
	st := stats(t, b)
	t.Logf("malformed %d, unknown worker %d, late %d", st.Counters.Malformed, st.Counters.UnknownWorker, st.Counters.Late)
	if st.Counters.Malformed == 0 {
		t.Fatal("no malformed message counted")
	}
}
