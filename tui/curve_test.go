package tui

import (
	"testing"
	"time"

	zmq "github.com/pebbe/zmq4"

	"github.com/hose-project/hose/broker"
)

// TestSourceWithCurve: a CURVE broker's stats stream is encrypted and
// checked against the client allow-list: a reader with a listed key gets
// snapshots; one with another key, or without CURVE, gets none, and the
// broker counts the refused key.
func TestSourceWithCurve(t *testing.T) {
	serverPub, serverSec, _ := zmq.NewCurveKeypair()
	readerPub, readerSec, _ := zmq.NewCurveKeypair()
	b, err := broker.New(broker.Config{
		Frontend: "tcp://127.0.0.1:*", Backend: "tcp://127.0.0.1:*", Stats: "tcp://127.0.0.1:*",
		StatsInterval: 100 * time.Millisecond, CurveSecretKey: serverSec, ClientKeys: []string{readerPub},
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { b.Close() })
	ep := b.StatsEndpoint()

	listed, err := NewSource(ep, nil, WithCurve(serverPub, readerPub, readerSec))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { listed.Close() })
	snap := recv(t, listed, nil, 5*time.Second, "a snapshot over CURVE", func(SnapshotMsg) bool { return true })
	if snap.Snap.Broker.Instance == "" {
		t.Fatal("a snapshot without a broker instance")
	}

	for name, opts := range map[string][]SourceOption{
		"unlisted key": {WithCurve(serverPub, "", "")},
		"no CURVE":     nil,
	} {
		src, err := NewSource(ep, nil, opts...)
		if err != nil {
			t.Fatal(err)
		}
		got := make(chan bool, 1)
		go func() {
			for {
				switch src.Next()().(type) {
				case SnapshotMsg:
					got <- true
					return
				case nil:
					got <- false
					return
				}
			}
		}()
		select {
		case <-got:
			t.Errorf("%s: got a snapshot", name)
		case <-time.After(time.Second): // ten intervals
		}
		src.Close()
	}
	st, err := b.Stats()
	if err != nil {
		t.Fatal(err)
	}
	if st.Counters.AuthDenied == 0 {
		t.Error("the unlisted reader's key was not counted as refused")
	}
}
