package main

import (
	"context"
	"os"
	"path/filepath"
	"testing"
	"time"

	zmq "github.com/pebbe/zmq4"

	"github.com/hose-project/hose/broker"
	"github.com/hose-project/hose/worker"
)

// TestCurveBroker drives a CURVE broker with a client allow-list: with the
// listed key every request is answered; with another key hosebench exits
// with an error instead of sending into the void.
func TestCurveBroker(t *testing.T) {
	serverPub, serverSec, _ := zmq.NewCurveKeypair()
	clientPub, clientSec, _ := zmq.NewCurveKeypair()
	_, strangerSec, _ := zmq.NewCurveKeypair()
	dir := t.TempDir()
	write := func(name, key string) string {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, []byte(key+"\n"), 0o600); err != nil {
			t.Fatal(err)
		}
		return p
	}
	serverFile, clientFile, strangerFile := write("broker.pub", serverPub), write("bench.key", clientSec), write("stranger.key", strangerSec)

	b, err := broker.New(broker.Config{Frontend: "tcp://127.0.0.1:*", Backend: "tcp://127.0.0.1:*",
		CurveSecretKey: serverSec, ClientKeys: []string{clientPub}})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	w, err := worker.New(worker.Config{Backend: b.Backend(), CurveServerKey: serverPub},
		worker.HandlerFunc(func(_ context.Context, j *worker.Job) ([]byte, error) { return j.Payload, nil }))
	if err != nil {
		t.Fatal(err)
	}
	go func() { done <- w.Run(ctx) }()
	t.Cleanup(func() {
		cancel()
		<-done
		b.Close()
	})
	deadline := time.Now().Add(10 * time.Second)
	for st, _ := b.Stats(); len(st.Workers) < 1; st, _ = b.Stats() {
		if time.Now().After(deadline) {
			t.Fatal("the CURVE worker did not register")
		}
		time.Sleep(10 * time.Millisecond)
	}

	out := filepath.Join(dir, "run.json")
	code, stdout, stderr := hosebench(t, context.Background(), "-broker", b.Frontend(), "-curve-server-key", serverFile,
		"-curve-key", clientFile, "-rate", "500", "-duration", "1s", "-warmup", "0", "-quiet", "-json", out)
	if code != exitOK {
		t.Fatalf("listed key: exit %d\n%s%s", code, stdout, stderr)
	}
	var r jsonRun
	readJSON(t, out, &r)
	if *r.OK != *r.Sent || *r.Sent < 450 {
		t.Errorf("listed key: %d of %d ok, errors %v", *r.OK, *r.Sent, r.Errors)
	}

	code, stdout, stderr = hosebench(t, context.Background(), "-broker", b.Frontend(), "-curve-server-key", serverPub,
		"-curve-key", strangerFile, "-rate", "500", "-duration", "1s", "-quiet")
	if code != exitError {
		t.Errorf("unlisted key: exit %d, want %d\n%s%s", code, exitError, stdout, stderr)
	}

	if code, _, stderr = hosebench(t, context.Background(), "-curve-server-key", serverPub); code != exitUsage {
		t.Errorf("-curve-server-key without -broker: exit %d, want %d (%s)", code, exitUsage, stderr)
	}
}
