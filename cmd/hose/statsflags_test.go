package main

import (
	"context"
	"io"
	"log/slog"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"

	zmq "github.com/pebbe/zmq4"

	"github.com/hose-project/hose/cluster"
	"github.com/hose-project/hose/stats"

	"github.com/hose-project/hose/internal/testproc"
)

// TestClusterStatsAndControl runs `hose cluster` with its stats stream,
// metrics and control endpoint on free ports, changes its worker count
// through the control endpoint, and sees the workers in the stats.
func TestClusterStatsAndControl(t *testing.T) {
	eps := freeTCP(t, 3)
	metrics := strings.TrimPrefix(freeTCP(t, 1)[0], "tcp://")
	cl, _ := startCluster(t, "-workers", "1", "-handler", "echo", "-stats", eps[0], "-stats-interval", "100ms",
		"-control", eps[1], "-metrics", metrics)
	defer stopCluster(t, cl)

	sub := newStatsSub(t, eps[0])
	waitSnapshot := func(what string, cond func(*stats.Snapshot) bool) *stats.Snapshot {
		t.Helper()
		var last *stats.Snapshot
		testproc.WaitFor(t, 15*time.Second, what, func() (bool, string) {
			body, err := sub.RecvBytes(0)
			if err != nil {
				return false, err.Error()
			}
			if last, err = stats.Decode(body); err != nil {
				t.Fatal(err)
			}
			return cond(last), ""
		})
		return last
	}
	waitSnapshot("1 worker", func(s *stats.Snapshot) bool { return s.Live() == 1 })

	ctl, err := cluster.DialControl(eps[1])
	if err != nil {
		t.Fatal(err)
	}
	defer ctl.Close()
	if n, err := ctl.SetWorkers(context.Background(), 3); err != nil || n != 3 {
		t.Fatalf("set 3 workers: %d, %v", n, err)
	}
	s := waitSnapshot("3 workers", func(s *stats.Snapshot) bool { return s.Live() == 3 })
	pids := map[uint32]bool{}
	for _, w := range s.Workers {
		pids[w.PID] = true
	}
	if len(pids) != 3 || pids[uint32(cl.PID())] {
		t.Fatalf("worker pids %v (cluster %d): want 3 worker processes", pids, cl.PID())
	}

	resp, err := http.Get("http://" + metrics + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if !strings.Contains(string(body), `hose_workers{state="ready"}`) {
		t.Fatalf("metrics:\n%s", body)
	}
}

// TestStatsEndpointTaken: a default endpoint that is taken (a second
// broker on the machine) is left out with a warning; one asked for by name
// that is taken stops the broker from starting.
func TestStatsEndpointTaken(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	busy := "tcp://" + ln.Addr().String()
	var logged strings.Builder
	log := slog.New(slog.NewTextHandler(&logged, nil))
	f := endpointFlag{ep: busy}
	if got := f.use(log, "stats", "-stats"); got != "" || !strings.Contains(logged.String(), "already in use") {
		t.Fatalf("a taken default endpoint: got %q, log %q", got, logged.String())
	}
	_ = f.Set(busy)
	if got := f.use(log, "stats", "-stats"); got != busy {
		t.Fatalf("an endpoint given by name was dropped: %q", got)
	}
	eps := freeTCP(t, 2)
	_, errs, code := runHose(t, 10*time.Second, "", "broker", "-frontend", eps[0], "-backend", eps[1], "-stats", busy)
	if code != exitError || !strings.Contains(errs, "stats") {
		t.Fatalf("broker with a taken -stats: exit %d, stderr:\n%s", code, errs)
	}
}

func newStatsSub(t testing.TB, ep string) *zmq.Socket {
	t.Helper()
	s, err := zmq.NewSocket(zmq.SUB)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	_ = s.SetLinger(0)
	_ = s.SetSubscribe("")
	_ = s.SetRcvtimeo(time.Second)
	if err := s.Connect(ep); err != nil {
		t.Fatal(err)
	}
	return s
}
