package tui

import (
	"fmt"
	"sync"
	"sync/atomic"
	"time"

	tea "charm.land/bubbletea/v2"
	zmq "github.com/pebbe/zmq4"

	"github.com/hose-project/hose/internal/wake"
	"github.com/hose-project/hose/internal/zsock"
	"github.com/hose-project/hose/stats"
)

// Source subscribes to a broker's stats endpoint. One goroutine owns the
// SUB socket; it decodes each snapshot and hands it to the program through
// a channel, which the command from Next reads one message at a time.
// ZeroMQ reconnects by itself, so a broker that restarts or starts late is
// picked up without hosetop doing anything.
type Source struct {
	ep       string
	curve    curveKeys
	now      func() time.Time
	minStale time.Duration
	out      chan tea.Msg
	zctx     *zmq.Context
	sock     *zmq.Socket
	waiter   *wake.Waiter
	watch    *wake.Watch
	stop     atomic.Bool
	quit     chan struct{} // closed by Close
	done     chan struct{}
	once     sync.Once
}

// minStale is the shortest silence after which the broker is reported
// gone; otherwise it is three of its stats intervals.
const minStale = 3 * time.Second

// SourceOption adjusts NewSource.
type SourceOption func(*Source)

// curveKeys are a CURVE client's keys; server empty: no CURVE.
type curveKeys struct{ server, public, secret string }

// WithCurve reads a broker that runs CURVE: server is the broker's public
// key, public/secret this reader's pair (checked against the broker's
// client allow-list; empty: a fresh pair). All Z85.
func WithCurve(server, public, secret string) SourceOption {
	return func(s *Source) { s.curve = curveKeys{server, public, secret} }
}

// NewSource connects to the stats endpoint ep (connecting never fails for
// a broker that is not there yet) and starts reading. now is the clock
// (nil: time.Now).
func NewSource(ep string, now func() time.Time, opts ...SourceOption) (*Source, error) {
	return newSource(ep, now, minStale, opts...)
}

func newSource(ep string, now func() time.Time, stale time.Duration, opts ...SourceOption) (*Source, error) {
	if now == nil {
		now = time.Now
	}
	zctx, err := zmq.NewContext()
	if err != nil {
		return nil, fmt.Errorf("tui: zmq context: %w", err)
	}
	s := &Source{ep: ep, now: now, minStale: stale, out: make(chan tea.Msg, 16), zctx: zctx,
		quit: make(chan struct{}), done: make(chan struct{})}
	for _, o := range opts {
		o(s)
	}
	if err := s.open(); err != nil {
		if s.sock != nil {
			s.sock.Close()
		}
		zctx.Term()
		return nil, err
	}
	go s.run()
	return s, nil
}

func (s *Source) open() error {
	var err error
	if s.sock, err = s.zctx.NewSocket(zmq.SUB); err != nil {
		return fmt.Errorf("tui: stats socket: %w", err)
	}
	_ = s.sock.SetLinger(0)
	_ = s.sock.SetRcvhwm(64)
	_ = s.sock.SetMaxmsgsize(64 << 20)
	_ = s.sock.SetReconnectIvlMax(2 * time.Second)
	if k := s.curve; k.server != "" {
		if err := zsock.CurveClient(s.sock, k.server, k.public, k.secret); err != nil {
			return fmt.Errorf("tui: CURVE: %w", err)
		}
	}
	if err := s.sock.SetSubscribe(""); err != nil {
		return fmt.Errorf("tui: subscribe: %w", err)
	}
	if err := s.sock.Connect(s.ep); err != nil {
		return fmt.Errorf("tui: stats endpoint %s: %w", s.ep, err)
	}
	s.waiter = wake.New()
	s.watch, err = s.waiter.Watch(s.sock)
	return err
}

// Endpoint is the stats endpoint.
func (s *Source) Endpoint() string { return s.ep }

// Next is the command that delivers the next message from the source; the
// model issues it again after each one.
func (s *Source) Next() tea.Cmd {
	return func() tea.Msg {
		select {
		case m := <-s.out:
			return m
		case <-s.done:
			return nil
		}
	}
}

// Close stops the goroutine and closes the socket.
func (s *Source) Close() error {
	s.once.Do(func() {
		s.stop.Store(true)
		close(s.quit)
		s.waiter.Signal()
	})
	<-s.done
	return nil
}

func (s *Source) run() {
	defer close(s.done)
	defer func() {
		s.watch.Close()
		s.sock.Close()
		s.zctx.Term()
	}()
	var lastSeen time.Time
	stale := s.minStale
	reported := false // a WaitingMsg went out since the last snapshot
	if !s.send(WaitingMsg{Endpoint: s.ep, At: s.now()}) {
		return
	}
	reported = true
	for {
		wait := stale
		if !lastSeen.IsZero() && !reported {
			wait = max(time.Until(lastSeen.Add(stale)), time.Millisecond)
		}
		if !s.watch.Ready() {
			s.waiter.Sleep()
			if s.stop.Load() {
				return
			}
			s.waiter.Wait(wait)
		}
		if s.stop.Load() {
			return
		}
		got := false
		for i := 0; i < 64; i++ {
			body, err := s.sock.RecvBytes(zmq.DONTWAIT)
			if err != nil {
				break
			}
			got = true
			msg := decode(body, s.now())
			if w, bad := msg.(WaitingMsg); bad {
				w.Endpoint, w.LastSeen = s.ep, lastSeen
				msg = w
			} else {
				snap := msg.(SnapshotMsg)
				lastSeen = snap.At
				reported = false
				stale = max(s.minStale, time.Duration(3*snap.Snap.IntervalS*float64(time.Second)))
			}
			if !s.send(msg) {
				return
			}
		}
		if !got && !reported && !lastSeen.IsZero() && s.now().Sub(lastSeen) >= stale {
			reported = true
			if !s.send(WaitingMsg{Endpoint: s.ep, LastSeen: lastSeen, At: s.now()}) {
				return
			}
		}
	}
}

// send hands m to the program, giving up when the source is closed.
func (s *Source) send(m tea.Msg) bool {
	select {
	case s.out <- m:
		return true
	case <-s.quit:
		return false
	}
}

// decode turns one stats message into a SnapshotMsg, or a WaitingMsg
// naming the problem.
func decode(body []byte, at time.Time) tea.Msg {
	snap, err := stats.Decode(body)
	if err != nil {
		return WaitingMsg{At: at, Err: err.Error()}
	}
	m := SnapshotMsg{Snap: snap, At: at}
	if h, err := snap.Latency.Total.Histogram(); err == nil {
		m.Total = h
	}
	return m
}
