package wake

import (
	"testing"
	"time"

	zmq "github.com/pebbe/zmq4"
)

func pair(t *testing.T) (ctx *zmq.Context, a, b *zmq.Socket) {
	t.Helper()
	ctx, err := zmq.NewContext()
	if err != nil {
		t.Fatal(err)
	}
	a, _ = ctx.NewSocket(zmq.DEALER)
	b, _ = ctx.NewSocket(zmq.DEALER)
	_ = a.SetLinger(0)
	_ = b.SetLinger(0)
	if err := a.Bind("tcp://127.0.0.1:*"); err != nil {
		t.Fatal(err)
	}
	ep, _ := a.GetLastEndpoint()
	if err := b.Connect(ep); err != nil {
		t.Fatal(err)
	}
	return ctx, a, b
}

// TestNoLostWakeups sends messages in bursts with pauses of every length
// and lets the owner sleep for an hour between looks: a single lost edge
// would stall it, which the deadline catches.
func TestNoLostWakeups(t *testing.T) {
	ctx, a, b := pair(t)
	w := New()
	x, err := w.Watch(b)
	if err != nil {
		t.Fatal(err)
	}
	const n = 5000
	go func() {
		for i := 0; i < n; i++ {
			_, _ = a.SendBytes([]byte{byte(i)}, 0)
			if i%7 == 0 {
				time.Sleep(time.Duration(i%5) * 100 * time.Microsecond)
			}
		}
	}()
	got := 0
	deadline := time.Now().Add(20 * time.Second)
	for got < n {
		if time.Now().After(deadline) {
			t.Fatalf("stalled after %d of %d messages: a wake-up was lost", got, n)
		}
		if !x.Ready() {
			w.Sleep()
			w.Wait(time.Hour)
			continue
		}
		for {
			if _, err := b.RecvBytes(zmq.DONTWAIT); err != nil {
				break
			}
			got++
		}
		// Answer something, as owners do: sending may consume the signal.
		_, _ = b.SendBytes([]byte("ack"), zmq.DONTWAIT)
	}
	x.Close()
	x.Close() // twice is fine
	a.Close()
	b.Close()
	ctx.Term()
}

func TestSignalAndTimeout(t *testing.T) {
	w := New()
	start := time.Now()
	w.Sleep()
	w.Wait(20 * time.Millisecond)
	if el := time.Since(start); el < 15*time.Millisecond {
		t.Fatalf("Wait returned after %v without a signal", el)
	}
	// A Signal while awake does nothing; one while asleep ends the wait.
	w.Signal()
	w.Sleep()
	go func() {
		time.Sleep(10 * time.Millisecond)
		w.Signal()
	}()
	start = time.Now()
	w.Wait(time.Hour)
	if el := time.Since(start); el > 5*time.Second {
		t.Fatalf("signal did not wake the owner (%v)", el)
	}
	var nilWatch *Watch
	if nilWatch.Ready() {
		t.Fatal("nil watch ready")
	}
	nilWatch.Close()
}
