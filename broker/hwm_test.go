package broker_test

import (
	"context"
	"math"
	"testing"
	"time"

	zmq "github.com/pebbe/zmq4"

	"github.com/hose-project/hose/broker"
	"github.com/hose-project/hose/client"
	"github.com/hose-project/hose/protocol"
	"github.com/hose-project/hose/worker"
)

func TestHWMValidation(t *testing.T) {
	tests := []struct {
		hwm int
		ok  bool
	}{
		{-1, false},
		{0, true}, // the default
		{1, true},
		{broker.DefaultHWM, true},
		{math.MaxInt32, true},
		{math.MaxInt32 + 1, false},
	}
	for _, tt := range tests {
		cfg := broker.DefaultConfig()
		cfg.HWM = tt.hwm
		if err := cfg.Validate(); (err == nil) != tt.ok {
			t.Errorf("broker HWM %d: Validate() = %v, want ok %v", tt.hwm, err, tt.ok)
		}
		if err := (client.Config{HWM: tt.hwm}).Validate(); (err == nil) != tt.ok {
			t.Errorf("client HWM %d: Validate() = %v, want ok %v", tt.hwm, err, tt.ok)
		}
	}
	if _, err := broker.New(broker.Config{HWM: -5}); err == nil {
		t.Error("New accepted a negative HWM")
	}
	if _, err := client.New(client.Config{HWM: -5}); err == nil {
		t.Error("client.New accepted a negative HWM")
	}
}

// TestTinyHWM runs a broker with a high-water mark of four messages and a
// client with one: calls made one at a time still get through, and a client that
// stops reading loses the answers the broker cannot queue for it (counted
// as unroutable) instead of growing the broker's memory. With the default
// mark of 100000 the broker would have queued all of them.
func TestTinyHWM(t *testing.T) {
	checkGoroutines(t)
	cfg := testConfig()
	// Four, not one: a client's answers share the broker's pipe to it with
	// PONGs, and with a mark of one an answer met the PONG before it still
	// in the pipe when libzmq's I/O thread lagged (seen in CI) and was
	// dropped, though the client reads.
	cfg.HWM = 4
	b := startBroker(t, cfg)
	startWorker(t, b, worker.Config{}, echo)
	big := make([]byte, 2<<20)
	startWorker(t, b, worker.Config{Services: []string{"big"}},
		worker.HandlerFunc(func(context.Context, *worker.Job) ([]byte, error) { return big, nil }))
	waitWorkers(t, b, 2)

	c := newClient(t, client.Config{HWM: 1}, b.Frontend())
	stillServes(t, c)

	// A bare client with a receive mark of one that never reads: the
	// kernel's socket buffers take some tens of MiB of answers, the rest
	// meet a full pipe in the broker. 64 answers of 2 MiB are well over.
	zctx, err := zmq.NewContext()
	if err != nil {
		t.Fatal(err)
	}
	sock, err := zctx.NewSocket(zmq.DEALER)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { sock.Close(); zctx.Term() })
	_ = sock.SetLinger(0)
	if err := sock.SetRcvhwm(1); err != nil {
		t.Fatal(err)
	}
	if err := sock.Connect(b.Frontend()); err != nil {
		t.Fatal(err)
	}
	const n = 64
	var body []byte
	for id := uint64(1); id <= n; id++ {
		body = protocol.AppendJob(body, &protocol.Job{ID: id, TimeoutMS: 60000, Service: []byte("big"), Payload: []byte("x")})
	}
	before := stats(t, b).Counters.Replied
	if _, err := sock.SendMessage(protocol.Header(protocol.Client, protocol.CmdRequest), body); err != nil {
		t.Fatal(err)
	}
	waitFor(t, 60*time.Second, "every job answered", func() bool {
		return stats(t, b).Counters.Replied-before == n
	})
	st := stats(t, b)
	t.Logf("%d answers of 2 MiB: %d unroutable", n, st.Counters.Unroutable)
	if st.Counters.Unroutable == 0 || st.Counters.Unroutable >= n {
		t.Errorf("%d of %d answers unroutable; want some (the high-water mark) but not all (the first finds an empty pipe)", st.Counters.Unroutable, n)
	}
	stillServes(t, c)
}
