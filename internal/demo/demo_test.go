package demo

import (
	"context"
	"strings"
	"testing"
	"time"

	zmq "github.com/pebbe/zmq4"

	"github.com/hose-project/hose/stats"
)

// TestDemo runs the demo's load and changes its worker count: the broker's
// snapshots show both.
func TestDemo(t *testing.T) {
	d, err := Start(Config{Job: "echo", Workers: 1, Rate: 200, StatsInterval: 100 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	defer d.Close()
	if !strings.HasPrefix(d.StatsEndpoint(), "tcp://127.0.0.1:") || !strings.Contains(d.Describe(), "echo at 200/s") {
		t.Fatalf("endpoint %q, description %q", d.StatsEndpoint(), d.Describe())
	}
	sub, err := zmq.NewSocket(zmq.SUB)
	if err != nil {
		t.Fatal(err)
	}
	defer sub.Close()
	_ = sub.SetLinger(0)
	_ = sub.SetSubscribe("")
	_ = sub.SetRcvtimeo(5 * time.Second)
	if err := sub.Connect(d.StatsEndpoint()); err != nil {
		t.Fatal(err)
	}
	wait := func(what string, cond func(*stats.Snapshot) bool) {
		t.Helper()
		deadline := time.Now().Add(10 * time.Second)
		for time.Now().Before(deadline) {
			body, err := sub.RecvBytes(0)
			if err != nil {
				t.Fatal(err)
			}
			s, err := stats.Decode(body)
			if err != nil {
				t.Fatal(err)
			}
			if cond(s) {
				return
			}
		}
		t.Fatalf("no snapshot with %s", what)
	}
	wait("load answered", func(s *stats.Snapshot) bool { return s.Rates.Replied > 100 })
	if n, err := d.SetWorkers(context.Background(), 3); err != nil || n != 3 {
		t.Fatalf("SetWorkers(3): %d, %v", n, err)
	}
	wait("3 workers", func(s *stats.Snapshot) bool { return s.Live() == 3 })
	if err := d.Close(); err != nil {
		t.Fatal(err)
	}
	if _, err := d.SetWorkers(context.Background(), 1); err == nil {
		t.Fatal("a closed demo changed its workers")
	}
}
