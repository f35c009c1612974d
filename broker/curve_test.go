package broker_test

import (
	"context"
	"errors"
	"io"
	"net/http"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	zmq "github.com/pebbe/zmq4"

	"github.com/hose-project/hose/broker"
	"github.com/hose-project/hose/client"
	hstats "github.com/hose-project/hose/stats"
	"github.com/hose-project/hose/worker"
)

type keyPair struct{ pub, sec string }

func newKeys(t *testing.T) keyPair {
	t.Helper()
	pub, sec, err := zmq.NewCurveKeypair()
	if err != nil {
		t.Fatal(err)
	}
	return keyPair{pub, sec}
}

// TestCurveAuthentication proves the broker's sockets really are
// authenticated (pebbe/zmq4's AuthStart would not cover the broker's own
// context): listed peers work; an unlisted client key, an unlisted worker
// key, a wrong server key and a plain peer get no job through.
func TestCurveAuthentication(t *testing.T) {
	checkGoroutines(t)
	server, cli, wrk := newKeys(t), newKeys(t), newKeys(t)
	cfg := testConfig()
	cfg.CurveSecretKey = server.sec
	cfg.ClientKeys = []string{cli.pub}
	cfg.WorkerKeys = []string{wrk.pub}
	b := startBroker(t, cfg)

	var ran atomic.Int64
	counting := worker.HandlerFunc(func(_ context.Context, j *worker.Job) ([]byte, error) {
		ran.Add(1)
		return j.Payload, nil
	})
	startWorker(t, b, worker.Config{CurveServerKey: server.pub, CurvePublicKey: wrk.pub, CurveSecretKey: wrk.sec}, counting)
	waitWorkers(t, b, 1)

	good := newClient(t, client.Config{CurveServerKey: server.pub, CurvePublicKey: cli.pub, CurveSecretKey: cli.sec}, b.Frontend())
	if got, err := good.Execute(context.Background(), []byte("secret")); err != nil || string(got) != "secret" {
		t.Fatalf("listed client: %q, %v", got, err)
	}

	intruder := newKeys(t)
	refused := []struct {
		name string
		cfg  client.Config
	}{
		{"unlisted client key", client.Config{CurveServerKey: server.pub, CurvePublicKey: intruder.pub, CurveSecretKey: intruder.sec}},
		{"worker key on the frontend", client.Config{CurveServerKey: server.pub, CurvePublicKey: wrk.pub, CurveSecretKey: wrk.sec}},
		{"wrong server key", client.Config{CurveServerKey: intruder.pub, CurvePublicKey: cli.pub, CurveSecretKey: cli.sec}},
		{"plain client", client.Config{}},
	}
	for _, tc := range refused {
		t.Run(tc.name, func(t *testing.T) {
			tc.cfg.ConnectTimeout = 500 * time.Millisecond
			c := newClient(t, tc.cfg, b.Frontend())
			_, err := c.Execute(context.Background(), []byte("let me in"), client.WithTimeout(3*time.Second))
			if !errors.Is(err, client.ErrBrokerGone) {
				t.Fatalf("want ErrBrokerGone, got %v", err)
			}
		})
	}
	if n := ran.Load(); n != 1 {
		t.Fatalf("the worker ran %d jobs; only the listed client's should have run", n)
	}

	// An unlisted worker never registers, so it gets no job.
	bad := newKeys(t)
	startWorker(t, b, worker.Config{CurveServerKey: server.pub, CurvePublicKey: bad.pub, CurveSecretKey: bad.sec, Services: []string{"stolen"}}, counting)
	startWorker(t, b, worker.Config{Services: []string{"stolen"}}, counting) // plain
	_, err := good.Execute(context.Background(), []byte("x"), client.WithService("stolen"), client.WithTimeout(3*time.Second))
	if !errors.Is(err, client.ErrNoWorker) {
		t.Fatalf("job for a service only unlisted workers offer: %v", err)
	}
	st := stats(t, b)
	if len(st.Workers) != 1 || st.Counters.AuthDenied == 0 {
		t.Fatalf("workers %d, auth denied %d", len(st.Workers), st.Counters.AuthDenied)
	}
}

func TestCurveConfigValidation(t *testing.T) {
	k := newKeys(t)
	for _, cfg := range []broker.Config{
		{CurveSecretKey: "short"},
		{ClientKeys: []string{k.pub}},
		{CurveSecretKey: k.sec, WorkerKeys: []string{"not a key"}},
	} {
		if err := cfg.Validate(); err == nil {
			t.Errorf("accepted %+v", cfg)
		}
	}
	if err := (client.Config{CurvePublicKey: k.pub, CurveSecretKey: k.sec}).Validate(); err == nil {
		t.Error("client key pair without a server key accepted")
	}
	if _, err := worker.New(worker.Config{CurvePublicKey: k.pub}, echo); err == nil {
		t.Error("worker public key without its secret accepted")
	}
}

// TestCurveAuthDeniedPublished checks that refused handshakes reach the
// published snapshot and the Prometheus metrics: an unlisted client, then
// (on a broker of its own, so the count is its) an unlisted worker try a
// CURVE broker; totals.auth_denied and hose_auth_denied_total count them.
func TestCurveAuthDeniedPublished(t *testing.T) {
	checkGoroutines(t)
	server, cli, wrk, intruder := newKeys(t), newKeys(t), newKeys(t), newKeys(t)
	tests := []struct {
		name string
		try  func(t *testing.T, b *broker.Broker)
	}{
		{"unlisted client", func(t *testing.T, b *broker.Broker) {
			c := newClient(t, client.Config{ConnectTimeout: 500 * time.Millisecond,
				CurveServerKey: server.pub, CurvePublicKey: intruder.pub, CurveSecretKey: intruder.sec}, b.Frontend())
			if _, err := c.Execute(context.Background(), []byte("x"), client.WithTimeout(3*time.Second)); !errors.Is(err, client.ErrBrokerGone) {
				t.Fatalf("want ErrBrokerGone, got %v", err)
			}
		}},
		{"unlisted worker", func(t *testing.T, b *broker.Broker) {
			startWorker(t, b, worker.Config{CurveServerKey: server.pub, CurvePublicKey: intruder.pub, CurveSecretKey: intruder.sec}, echo)
		}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			cfg := statsConfig()
			cfg.Metrics = "127.0.0.1:0"
			cfg.CurveSecretKey = server.sec
			cfg.ClientKeys = []string{cli.pub}
			cfg.WorkerKeys = []string{wrk.pub}
			b := startBroker(t, cfg)
			sub := subscribeStats(t, b.StatsEndpoint(), server.pub, cli.pub, cli.sec)
			if first := sub.next(5 * time.Second); first.Totals.AuthDenied != 0 {
				t.Fatalf("auth_denied %d before anyone tried", first.Totals.AuthDenied)
			}
			tc.try(t, b)
			got := sub.until(10*time.Second, "auth_denied > 0", func(s *hstats.Snapshot) bool { return s.Totals.AuthDenied > 0 })
			snap := got[len(got)-1]
			if len(snap.Workers) != 0 {
				t.Fatalf("an unlisted worker is listed: %+v", snap.Workers)
			}

			url := "http://" + b.MetricsAddr() + "/metrics"
			var seen string
			waitFor(t, 5*time.Second, "hose_auth_denied_total in the metrics", func() bool {
				resp, err := http.Get(url)
				if err != nil {
					return false
				}
				defer resp.Body.Close()
				data, _ := io.ReadAll(resp.Body)
				for _, line := range strings.Split(string(data), "\n") {
					if v, ok := strings.CutPrefix(line, "hose_auth_denied_total "); ok {
						seen = v
						n, err := strconv.ParseFloat(v, 64)
						return err == nil && n >= float64(snap.Totals.AuthDenied)
					}
				}
				return false
			})
			t.Logf("auth_denied %d in the snapshot, %s in the metrics", snap.Totals.AuthDenied, seen)
		})
	}
}
