package tui

import (
	"context"
	"runtime"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/hose-project/hose/broker"
	"github.com/hose-project/hose/client"
	"github.com/hose-project/hose/handlers"
	"github.com/hose-project/hose/worker"
)

// startStatsBroker starts a broker publishing every 100ms on statsEP (a
// free port for tcp://127.0.0.1:*) with n echo workers.
func startStatsBroker(t testing.TB, statsEP string, n int) *broker.Broker {
	t.Helper()
	b, err := broker.New(broker.Config{
		Frontend: "tcp://127.0.0.1:*", Backend: "tcp://127.0.0.1:*", Stats: statsEP,
		StatsInterval: 100 * time.Millisecond, HeartbeatInterval: 50 * time.Millisecond,
	})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	for i := 0; i < n; i++ {
		w, err := worker.New(worker.Config{Backend: b.Backend(), Concurrency: 2, HeartbeatInterval: 50 * time.Millisecond}, handlers.Echo())
		if err != nil {
			t.Fatal(err)
		}
		wg.Add(1)
		go func() { defer wg.Done(); _ = w.Run(ctx) }()
	}
	t.Cleanup(func() {
		cancel()
		wg.Wait()
		b.Close()
	})
	return b
}

// recv waits for the source's next message of type T, feeding every
// message to m on the way, and fails after limit.
func recv[T any](t testing.TB, src *Source, m *Model, limit time.Duration, what string, ok func(T) bool) T {
	t.Helper()
	deadline := time.Now().Add(limit)
	ch := make(chan any, 1)
	for {
		go func() { ch <- src.Next()() }()
		select {
		case msg := <-ch:
			if m != nil {
				m.Update(msg)
			}
			if v, is := msg.(T); is && ok(v) {
				return v
			}
		case <-time.After(time.Until(deadline)):
			t.Fatalf("timed out after %v waiting for %s", limit, what)
		}
	}
}

// TestSourceAgainstARealBroker reads real snapshots from a real broker with
// workers, checks the figures against the jobs run, then sees the broker
// go, and come back.
func TestSourceAgainstARealBroker(t *testing.T) {
	b := startStatsBroker(t, "tcp://127.0.0.1:*", 2)
	ep := b.StatsEndpoint()
	src, err := newSource(ep, nil, 500*time.Millisecond)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { src.Close() })
	m := testModel(t, Config{Endpoint: ep, Now: time.Now}, 100, 30)

	// The model starts waiting, and the source says so at once.
	recv(t, src, m, 5*time.Second, "the initial waiting message", func(WaitingMsg) bool { return true })
	if !strings.Contains(plain(m), "waiting for broker at "+ep) {
		t.Fatalf("view:\n%s", plain(m))
	}
	base := recv(t, src, m, 5*time.Second, "2 workers", func(s SnapshotMsg) bool { return s.Snap.Live() == 2 })
	before := base.Snap.Totals

	c, err := client.Dial(b.Frontend())
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	const n = 150
	for i := 0; i < n; i++ {
		if _, err := c.Execute(context.Background(), []byte("hello")); err != nil {
			t.Fatal(err)
		}
	}
	var counted int64
	last := recv(t, src, m, 5*time.Second, "every job in the totals", func(s SnapshotMsg) bool {
		if s.Total != nil {
			counted += s.Total.TotalCount()
		}
		return s.Snap.Totals.Replied-before.Replied == n
	})
	if counted != n {
		t.Fatalf("the snapshots' latency histograms hold %d jobs, want %d", counted, n)
	}
	var done uint64
	for _, w := range last.Snap.Workers {
		done += w.Done
	}
	if done != n || last.Snap.Totals.Dispatched-before.Dispatched != n {
		t.Fatalf("workers did %d jobs, broker dispatched %d; want %d", done, last.Snap.Totals.Dispatched-before.Dispatched, n)
	}
	// What the model charted (and holds for the next refresh) adds up to
	// the same jobs.
	var charted int64
	for i := 0; i < m.hist.len(); i++ {
		charted += m.hist.at(i).Lat.Count
	}
	charted += m.pend.hist.TotalCount()
	if charted != n {
		t.Fatalf("the model charted %d jobs, want %d", charted, n)
	}
	m.Update(tickMsg(time.Now().Add(time.Hour)))
	if m.shown.Totals.Replied != last.Snap.Totals.Replied || len(m.rows()) != 2 {
		t.Fatalf("model shows %d replies and %d rows", m.shown.Totals.Replied, len(m.rows()))
	}

	// The broker goes away: the source reports it, the model says so.
	first := last.Snap.Broker.Instance
	b.Close()
	recv(t, src, m, 5*time.Second, "the broker reported gone", func(w WaitingMsg) bool { return !w.LastSeen.IsZero() })
	if !m.waiting || !strings.Contains(plain(m), "waiting for broker at "+ep) {
		t.Fatalf("view after the broker left:\n%s", plain(m))
	}

	// A new broker on the same endpoint: the source reconnects by itself.
	startStatsBroker(t, ep, 1)
	again := recv(t, src, m, 10*time.Second, "a snapshot from the new broker", func(s SnapshotMsg) bool { return s.Snap.Broker.Instance != first })
	if m.waiting || m.shown.Broker.Instance != again.Snap.Broker.Instance {
		t.Fatal("the model did not take the new broker")
	}
}

// TestSourceWithNoBroker: nothing listens, the source says it waits and
// closes promptly.
func TestSourceWithNoBroker(t *testing.T) {
	before := runtime.NumGoroutine()
	src, err := NewSource("tcp://127.0.0.1:1", nil)
	if err != nil {
		t.Fatal(err)
	}
	w := recv(t, src, nil, 5*time.Second, "the waiting message", func(WaitingMsg) bool { return true })
	if w.Endpoint != "tcp://127.0.0.1:1" || !w.LastSeen.IsZero() {
		t.Fatalf("waiting message %+v", w)
	}
	done := make(chan struct{})
	go func() { src.Close(); close(done) }()
	select {
	case <-done:
	case <-time.After(5 * time.Second):
		t.Fatal("Close did not return")
	}
	if src.Next()() != nil {
		t.Fatal("a closed source delivered a message")
	}
	// Its goroutines are gone (the one recv started ends with Close).
	deadline := time.Now().Add(5 * time.Second)
	for runtime.NumGoroutine() > before {
		if time.Now().After(deadline) {
			t.Fatalf("%d goroutines before the source, %d after Close", before, runtime.NumGoroutine())
		}
		runtime.Gosched()
		time.Sleep(time.Millisecond)
	}
}

func TestSourceBadEndpoint(t *testing.T) {
	if _, err := NewSource("nonsense", nil); err == nil {
		t.Fatal("a malformed endpoint was accepted")
	}
}
