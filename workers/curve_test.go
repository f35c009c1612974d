package workers_test

import (
	"context"
	"os"
	"path/filepath"
	"testing"
	"time"

	zmq "github.com/pebbe/zmq4"

	"github.com/hose-project/hose/broker"
	"github.com/hose-project/hose/client"
)

// TestWorkerCurve runs the Python and C++ workers against a CURVE broker
// with a worker allow-list: with its listed key each serves; with a fresh
// key it never registers.
func TestWorkerCurve(t *testing.T) {
	for _, l := range []lang{langPython, langCpp} {
		t.Run(l.label, func(t *testing.T) { testWorkerCurve(t, l) })
	}
}

func testWorkerCurve(t *testing.T, l lang) {
	serverPub, serverSec, _ := zmq.NewCurveKeypair()
	workerPub, workerSec, _ := zmq.NewCurveKeypair()
	clientPub, clientSec, _ := zmq.NewCurveKeypair()
	cfg := testBrokerConfig("tcp://127.0.0.1:*", "tcp://127.0.0.1:*")
	cfg.CurveSecretKey = serverSec
	cfg.WorkerKeys = []string{workerPub}
	cfg.ClientKeys = []string{clientPub}
	b, err := broker.New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = b.Close() })
	keyFile := filepath.Join(t.TempDir(), "w.key")
	if err := os.WriteFile(keyFile, []byte(workerSec+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}

	l.start(t, b.Backend(), []string{"echo.curve-listed"}, "--curve-server-key", serverPub, "--curve-key", keyFile)
	l.start(t, b.Backend(), []string{"echo.curve-stranger"}, "--curve-server-key", serverPub)
	c, err := client.New(client.Config{Endpoints: []string{b.Frontend()},
		CurveServerKey: serverPub, CurvePublicKey: clientPub, CurveSecretKey: clientSec})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = c.Close() })

	waitFor(t, 20*time.Second, "the listed worker to answer", func() bool {
		got, err := c.Execute(context.Background(), []byte("over curve"), client.WithService("echo.curve-listed"), client.WithTimeout(2*time.Second))
		return err == nil && string(got) == "over curve"
	})
	// The stranger may try its handshake after the listed worker served.
	var st broker.Stats
	waitFor(t, 10*time.Second, "the unlisted worker's handshake refused", func() bool {
		st, err = b.Stats()
		return err == nil && st.Counters.AuthDenied > 0
	})
	if len(st.Workers) != 1 {
		t.Fatalf("workers %d (want only the listed one), auth denied %d", len(st.Workers), st.Counters.AuthDenied)
	}
}
