package cluster

import (
	"context"
	"math/rand/v2"
	"net"
	"strings"
	"testing"
	"time"

	zmq "github.com/pebbe/zmq4"
)

// TestControlSurvivesGarbage throws raw TCP bytes and random frames from
// DEALER and REQ peers (some never reading the answer) at the control
// endpoint, then checks it still answers a real request.
func TestControlSurvivesGarbage(t *testing.T) {
	srv, c := serveControl(t, SupervisorScaler(mustSupervisor(t)))
	rng := rand.New(rand.NewPCG(3, 4))
	random := func(n int) []byte {
		b := make([]byte, rng.IntN(n))
		for i := range b {
			b[i] = byte(rng.Uint32())
		}
		return b
	}
	addr := strings.TrimPrefix(srv.Endpoint(), "tcp://")
	for i := 0; i < 20; i++ {
		conn, err := net.DialTimeout("tcp", addr, time.Second)
		if err != nil {
			t.Fatal(err)
		}
		_ = conn.SetWriteDeadline(time.Now().Add(time.Second))
		_, _ = conn.Write(append(random(4096), 1))
		conn.Close()
	}
	for _, typ := range []zmq.Type{zmq.DEALER, zmq.REQ} {
		for i := 0; i < 5; i++ {
			s, err := zmq.NewSocket(typ)
			if err != nil {
				t.Fatal(err)
			}
			_ = s.SetLinger(0)
			if err := s.Connect(srv.Endpoint()); err != nil {
				t.Fatal(err)
			}
			for k := 0; k < 20; k++ {
				frames := [][]byte{random(200)}
				if rng.IntN(2) == 0 {
					frames = append([][]byte{{}}, frames...) // a REQ envelope from a DEALER
				}
				if typ == zmq.REQ {
					frames = frames[len(frames)-1:]
				}
				if _, err := s.SendMessageDontwait(frames); err != nil {
					break // a REQ waits for its answer: one request each
				}
			}
			s.Close()
		}
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if _, err := c.Workers(ctx); err != nil {
		t.Fatalf("control after garbage: %v", err)
	}
}
