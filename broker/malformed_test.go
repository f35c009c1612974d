package broker_test

import (
	"context"
	"errors"
	"fmt"
	"testing"
	"time"

	"github.com/hose-project/hose/client"
	"github.com/hose-project/hose/protocol"
	"github.com/hose-project/hose/worker"
)

// stillServes asserts that a normal client still gets answers.
func stillServes(t *testing.T, c *client.Client) {
	t.Helper()
	for i := 0; i < 5; i++ {
		if got, err := c.Execute(context.Background(), []byte("ok"), client.WithTimeout(5*time.Second)); err != nil || string(got) != "ok" {
			t.Fatalf("broker no longer serves: %q, %v", got, err)
		}
	}
}

func TestMalformedClientFrames(t *testing.T) {
	checkGoroutines(t)
	b := startBroker(t, testConfig())
	startWorker(t, b, worker.Config{}, echo)
	waitWorkers(t, b, 1)
	c := newClient(t, client.Config{}, b.Frontend())
	stillServes(t, c)

	goodReq := func(id uint64) []byte {
		return protocol.AppendJob(nil, &protocol.Job{ID: id, TimeoutMS: 5000, Payload: []byte("raw")})
	}
	huge := make([]byte, 10<<20) // over MaxPayload + 1 MiB: libzmq drops the sender

	cases := []struct {
		name   string
		frames [][]byte
		// want is the status of the ERROR answer, or 0 for no answer.
		want protocol.Status
	}{
		{"empty frame", [][]byte{{}}, protocol.StatusMalformed},
		{"wrong tag", [][]byte{[]byte("MDPC01\x01"), goodReq(1)}, protocol.StatusMalformed},
		{"worker tag on frontend", [][]byte{protocol.Header(protocol.Worker, protocol.CmdReady), {}}, protocol.StatusMalformed},
		{"future version", [][]byte{[]byte("HOSEC2\x01"), goodReq(1)}, protocol.StatusUnsupportedVersion},
		{"unknown command", [][]byte{protocol.Header(protocol.Client, 0x7f), {}}, protocol.StatusMalformed},
		{"truncated batch", [][]byte{protocol.Header(protocol.Client, protocol.CmdRequest), goodReq(1)[:10]}, protocol.StatusMalformed},
		{"odd cancel body", [][]byte{protocol.Header(protocol.Client, protocol.CmdCancel), {1, 2, 3}}, protocol.StatusMalformed},
		{"10000 frames", append([][]byte{protocol.Header(protocol.Client, protocol.CmdPing), make([]byte, 8)}, make([][]byte, 10000)...), 0},
		{"oversized", [][]byte{protocol.Header(protocol.Client, protocol.CmdRequest), huge}, 0},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			p := newRawPeer(t, b.Frontend())
			p.sendFrames(tc.frames...)
			if tc.want != 0 {
				body, ok := p.recvCmd(protocol.Client, protocol.CmdError, 2*time.Second)
				if !ok {
					t.Fatal("no ERROR answer")
				}
				st, msg, err := protocol.DecodeError(body)
				if err != nil || st != tc.want {
					t.Fatalf("ERROR %v %q (%v), want %v", st, msg, err, tc.want)
				}
			}
			stillServes(t, c)
		})
	}
	if st := stats(t, b); st.Counters.Malformed < 6 {
		t.Fatalf("malformed counted %d times", st.Counters.Malformed)
	}
}

func TestBadRecordCostsOnlyItsOwnAnswer(t *testing.T) {
	b := startBroker(t, testConfig())
	startWorker(t, b, worker.Config{}, echo)
	waitWorkers(t, b, 1)
	p := newRawPeer(t, b.Frontend())
	// Record 2 claims a headers block longer than itself.
	bad := protocol.AppendJob(nil, &protocol.Job{ID: 2, Payload: []byte("x")})
	bad[4+8+4+1+1] = 0xff
	body := protocol.AppendJob(nil, &protocol.Job{ID: 1, Payload: []byte("one")})
	body = append(body, bad...)
	body = protocol.AppendJob(body, &protocol.Job{ID: 3, Payload: []byte("three")})
	p.send(protocol.Client, protocol.CmdRequest, body)
	got := map[uint64]protocol.Status{}
	deadline := time.Now().Add(3 * time.Second)
	for len(got) < 3 && time.Now().Before(deadline) {
		body, ok := p.recvCmd(protocol.Client, protocol.CmdReply, time.Until(deadline))
		if !ok {
			break
		}
		var r protocol.Reply
		for len(body) > 0 {
			var err error
			if body, err = protocol.NextReply(body, &r); err != nil {
				t.Fatal(err)
			}
			got[r.ID] = r.Status
		}
	}
	want := map[uint64]protocol.Status{1: protocol.StatusOK, 2: protocol.StatusMalformed, 3: protocol.StatusOK}
	for id, st := range want {
		if got[id] != st {
			t.Fatalf("answers %v, want %v", got, want)
		}
	}
}

func TestHeaderTooLongIsABadRequest(t *testing.T) {
	b := startBroker(t, testConfig())
	c := newClient(t, client.Config{}, b.Frontend())
	start := time.Now()
	_, err := c.Execute(context.Background(), nil, client.WithHeader(string(make([]byte, 300)), "v"))
	if !errors.Is(err, client.ErrBadRequest) || time.Since(start) > time.Second {
		t.Fatalf("got %v after %v", err, time.Since(start))
	}
}

func TestMalformedWorkerFrames(t *testing.T) {
	checkGoroutines(t)
	b := startBroker(t, testConfig())
	startWorker(t, b, worker.Config{}, echo)
	waitWorkers(t, b, 1)
	c := newClient(t, client.Config{}, b.Frontend())
	ready := protocol.AppendReady(nil, &protocol.Ready{Capacity: 1, PID: 1, Host: "raw", Version: "x", Services: []string{"raw"}})

	t.Run("garbage is dropped and counted", func(t *testing.T) {
		before := stats(t, b).Counters.Malformed
		p := newRawPeer(t, b.Backend())
		p.sendFrames([]byte("garbage"))
		p.sendFrames([]byte("MDPW01"), []byte("x"), []byte("y"))
		p.sendFrames(append([][]byte{protocol.Header(protocol.Worker, protocol.CmdHeartbeat)}, make([][]byte, 10000)...)...)
		waitFor(t, 2*time.Second, "malformed frames counted", func() bool { return stats(t, b).Counters.Malformed >= before+2 })
		stillServes(t, c)
	})
	t.Run("unknown worker gets DISCONNECT", func(t *testing.T) {
		p := newRawPeer(t, b.Backend())
		p.send(protocol.Worker, protocol.CmdHeartbeat, nil)
		if _, ok := p.recvCmd(protocol.Worker, protocol.CmdDisconnect, 2*time.Second); !ok {
			t.Fatal("no DISCONNECT for an unregistered worker")
		}
		p.send(protocol.Worker, protocol.CmdResult, protocol.AppendResult(nil, 99, protocol.StatusOK, []byte("x")))
		if _, ok := p.recvCmd(protocol.Worker, protocol.CmdDisconnect, 2*time.Second); !ok {
			t.Fatal("no DISCONNECT for a result from an unregistered worker")
		}
	})
	t.Run("malformed READY and future version are refused", func(t *testing.T) {
		p := newRawPeer(t, b.Backend())
		p.send(protocol.Worker, protocol.CmdReady, []byte{0, 0})
		if body, ok := p.recvCmd(protocol.Worker, protocol.CmdDisconnect, 2*time.Second); !ok || !contains(string(body), "malformed") {
			t.Fatalf("malformed READY: %q %v", body, ok)
		}
		p.sendFrames([]byte("HOSEW9\x01"), ready)
		if body, ok := p.recvCmd(protocol.Worker, protocol.CmdDisconnect, 2*time.Second); !ok || !contains(string(body), "version") {
			t.Fatalf("future version: %q %v", body, ok)
		}
	})
	t.Run("registered worker: unknown result ids and commands", func(t *testing.T) {
		p := newRawPeer(t, b.Backend())
		p.send(protocol.Worker, protocol.CmdReady, ready)
		if _, ok := p.recvCmd(protocol.Worker, protocol.CmdWelcome, 2*time.Second); !ok {
			t.Fatal("no WELCOME")
		}
		late := stats(t, b).Counters.Late
		p.send(protocol.Worker, protocol.CmdResult, protocol.AppendResult(nil, 123456, protocol.StatusOK, []byte("stray")))
		p.send(protocol.Worker, 0x7e, nil)
		p.send(protocol.Worker, protocol.CmdResult, []byte{0, 0, 0, 50, 1})
		waitFor(t, 2*time.Second, "stray result counted late", func() bool { return stats(t, b).Counters.Late == late+1 })
		stillServes(t, c)
	})
}

// TestWorkerLostMidJob uses a hand-driven worker that takes a job and goes
// silent: a plain job fails with ErrWorkerLost within the liveness window,
// an idempotent one runs again on a real worker.
func TestWorkerLostMidJob(t *testing.T) {
	checkGoroutines(t)
	b := startBroker(t, testConfig())
	c := newClient(t, client.Config{}, b.Frontend())
	ready := protocol.AppendReady(nil, &protocol.Ready{Capacity: 1, PID: 1, Host: "raw", Services: []string{"lossy"}})

	register := func() *rawPeer {
		p := newRawPeer(t, b.Backend())
		p.send(protocol.Worker, protocol.CmdReady, ready)
		if _, ok := p.recvCmd(protocol.Worker, protocol.CmdWelcome, 2*time.Second); !ok {
			t.Fatal("no WELCOME")
		}
		return p
	}

	p := register()
	res := make(chan error, 1)
	start := time.Now()
	go func() {
		_, err := c.Execute(context.Background(), []byte("x"), client.WithService("lossy"), client.WithTimeout(10*time.Second))
		res <- err
	}()
	if _, ok := p.recvCmd(protocol.Worker, protocol.CmdJob, 2*time.Second); !ok {
		t.Fatal("raw worker got no job")
	}
	// Silence: no heartbeat, no result.
	if err := <-res; !errors.Is(err, client.ErrWorkerLost) {
		t.Fatalf("want ErrWorkerLost, got %v", err)
	}
	if el := time.Since(start); el > 2*time.Second {
		t.Fatalf("worker lost reported after %v", el)
	}

	// Idempotent: the job moves to a real worker when the silent one is lost.
	p2 := register()
	go func() {
		got, err := c.Execute(context.Background(), []byte("payload kept"), client.WithService("lossy"), client.WithTimeout(10*time.Second), client.Idempotent())
		if err == nil && string(got) != "payload kept" {
			err = fmt.Errorf("re-run job answered %q", got)
		}
		res <- err
	}()
	if _, ok := p2.recvCmd(protocol.Worker, protocol.CmdJob, 2*time.Second); !ok {
		t.Fatal("raw worker got no job")
	}
	startWorker(t, b, worker.Config{Services: []string{"lossy"}}, echo)
	if err := <-res; err != nil {
		t.Fatalf("idempotent job after worker loss: %v", err)
	}
	if st := stats(t, b); st.Counters.Requeued != 1 {
		t.Fatalf("requeued %d", st.Counters.Requeued)
	}
	// The lost worker speaking again (a late result) is told to register.
	p2.send(protocol.Worker, protocol.CmdResult, protocol.AppendResult(nil, 2, protocol.StatusOK, []byte("late")))
	if _, ok := p2.recvCmd(protocol.Worker, protocol.CmdDisconnect, 2*time.Second); !ok {
		t.Fatal("lost worker speaking again should be told to register")
	}
}
