// Package broker owns the hose broker: a ZeroMQ ROUTER frontend for clients
// and a ROUTER backend for workers, served by one goroutine that routes
// batches of jobs to the least recently used workers with free capacity,
// enforces deadlines, queue bounds and worker liveness, and answers every
// request with a result or a typed error status.
package broker

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"os"
	"strings"
	"sync"
	"time"

	zmq "github.com/pebbe/zmq4"

	"github.com/hose-project/hose/internal/wake"
	"github.com/hose-project/hose/internal/zsock"
	"github.com/hose-project/hose/protocol"
)

// Errors returned by New, Shutdown and Close.
var (
	// ErrAlreadyRunning: a live broker already answers on the frontend.
	ErrAlreadyRunning = errors.New("broker: a broker is already running")
	// ErrClosed: the broker has stopped.
	ErrClosed = errors.New("broker: closed")
)

// Broker is a running hose broker. Create it with New; stop it with
// Shutdown or Close.
type Broker struct {
	cfg        Config
	frontEP    string
	backEP     string
	zctx       *zmq.Context
	front      *zmq.Socket
	back       *zmq.Socket
	pub        *zmq.Socket // stats, nil when off
	zap        *zmq.Socket // ZAP handler, nil without CURVE
	zapW       *wake.Watch
	clientKeys map[string]bool
	workerKeys map[string]bool
	statsEP    string
	waiter     *wake.Waiter
	frontW     *wake.Watch
	backW      *wake.Watch
	ctl        chan ctlMsg
	done       chan struct{}
	closeErr   error
	once       sync.Once

	// Everything below belongs to the loop goroutine.
	start     time.Time
	instance  uint64
	pid       uint32
	host      string
	jobs      map[uint64]*job
	nextJobID uint64
	nextWID   uint32
	services  map[string]*service
	workers   map[string]*worker
	clients   map[string]*client
	heap      expiryHeap
	free      []*job
	dirtyW    []*worker
	spareW    []*worker
	dirtyC    []*client
	retry     bool // a send hit a full pipe; poll again soon
	draining  bool
	nextTick  int64
	nextPub   int64
	obs       observations
	counters  Counters
	allowed   map[string]bool
}

type ctlKind int

const (
	ctlDrain ctlKind = iota
	ctlAbort
	ctlStats
)

type ctlMsg struct {
	kind  ctlKind
	stats chan Stats
}

// New checks that no broker already answers on cfg.Frontend, binds both
// sockets and starts serving.
func New(cfg Config) (*Broker, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	cfg = cfg.withDefaults()
	zctx, err := zmq.NewContext()
	if err != nil {
		return nil, fmt.Errorf("broker: zmq context: %w", err)
	}
	b := &Broker{
		cfg:      cfg,
		zctx:     zctx,
		ctl:      make(chan ctlMsg, 16),
		done:     make(chan struct{}),
		start:    time.Now(),
		instance: rand.Uint64() | 1,
		pid:      uint32(os.Getpid()),
		jobs:     make(map[uint64]*job),
		services: make(map[string]*service),
		workers:  make(map[string]*worker),
		clients:  make(map[string]*client),
		obs:      newObservations(),
	}
	b.host, _ = os.Hostname()
	if len(cfg.Services) > 0 {
		b.allowed = make(map[string]bool)
		for _, s := range cfg.Services {
			b.allowed[s] = true
		}
	}
	if err := b.open(); err != nil {
		b.closeSockets()
		zctx.Term()
		return nil, err
	}
	cfg.Logger.Info("broker started", "frontend", b.frontEP, "backend", b.backEP, "pid", b.pid)
	go b.loop()
	return b, nil
}

func (b *Broker) open() error {
	var err error
	if !b.cfg.SkipCheck {
		if err := b.checkRunning(); err != nil {
			return err
		}
	}
	if err := b.openZAP(); err != nil {
		return err
	}
	if b.front, err = b.newRouter(domainFront); err != nil {
		return err
	}
	if err := b.front.Bind(b.cfg.Frontend); err != nil {
		return b.bindError("frontend", b.cfg.Frontend, err)
	}
	if b.back, err = b.newRouter(domainBack); err != nil {
		return err
	}
	if err := b.back.Bind(b.cfg.Backend); err != nil {
		return b.bindError("backend", b.cfg.Backend, err)
	}
	b.frontEP, _ = b.front.GetLastEndpoint()
	b.backEP, _ = b.back.GetLastEndpoint()
	if b.cfg.Stats != "" {
		if b.pub, err = b.zctx.NewSocket(zmq.PUB); err != nil {
			return fmt.Errorf("broker: stats socket: %w", err)
		}
		_ = b.pub.SetLinger(0)
		_ = b.pub.SetSndhwm(16)
		// With CURVE the stats stream is encrypted too, and readers are
		// checked against the client allow-list: whoever may call the
		// broker may watch it.
		if err := b.curveServer(b.pub, domainFront); err != nil {
			return err
		}
		if err := b.pub.Bind(b.cfg.Stats); err != nil {
			return fmt.Errorf("broker: bind stats %s: %w", b.cfg.Stats, err)
		}
		b.statsEP, _ = b.pub.GetLastEndpoint()
	}
	if err := b.startMetrics(); err != nil {
		return err
	}
	b.waiter = wake.New()
	if b.frontW, err = b.waiter.Watch(b.front); err != nil {
		return err
	}
	if b.backW, err = b.waiter.Watch(b.back); err != nil {
		return err
	}
	if b.zap != nil {
		b.zapW, err = b.waiter.Watch(b.zap)
	}
	return err
}

func (b *Broker) newRouter(domain string) (*zmq.Socket, error) {
	s, err := b.zctx.NewSocket(zmq.ROUTER)
	if err != nil {
		return nil, fmt.Errorf("broker: socket: %w", err)
	}
	if err := b.curveServer(s, domain); err != nil {
		s.Close()
		return nil, err
	}
	// Linger briefly so the last answers sent at shutdown leave the process.
	_ = s.SetLinger(200 * time.Millisecond)
	// Unroutable sends fail instead of vanishing, so a gone worker is
	// noticed at once and a gone client's replies are counted.
	_ = s.SetRouterMandatory(1)
	// The high-water marks bound the messages queued per connection.
	for _, set := range []func(int) error{s.SetSndhwm, s.SetRcvhwm} {
		if err := set(b.cfg.HWM); err != nil {
			s.Close()
			return nil, fmt.Errorf("broker: high-water mark: %w", err)
		}
	}
	// A message larger than any legal batch is an attack or a bug: libzmq
	// drops the connection that sent it instead of buffering it.
	_ = s.SetMaxmsgsize(int64(b.cfg.MaxPayload) + 1<<20)
	return s, nil
}

func (b *Broker) bindError(which, ep string, err error) error {
	if errors.Is(err, zmq.EADDRINUSE) || zmq.AsErrno(err) == zmq.EADDRINUSE {
		if which == "frontend" && !b.cfg.SkipCheck {
			if pong, ok := b.ping(ep); ok {
				return fmt.Errorf("%w at %s (pid %d on %s)", ErrAlreadyRunning, ep, pong.PID, pong.Host)
			}
		}
	}
	return fmt.Errorf("broker: bind %s %s: %w", which, ep, err)
}

// checkRunning refuses to start when a broker answers PING on the frontend.
// A TCP port that is taken is caught by bind; an ipc:// path is not (libzmq
// silently replaces the file), so that case asks before binding.
func (b *Broker) checkRunning() error {
	ep := b.cfg.Frontend
	path, ok := strings.CutPrefix(ep, "ipc://")
	if !ok {
		return nil
	}
	if _, err := os.Stat(path); err != nil {
		return nil
	}
	if pong, ok := b.ping(ep); ok {
		return fmt.Errorf("%w at %s (pid %d on %s)", ErrAlreadyRunning, ep, pong.PID, pong.Host)
	}
	return nil
}

// ping sends one PING to ep and waits CheckTimeout for the PONG.
func (b *Broker) ping(ep string) (protocol.Pong, bool) {
	s, err := b.zctx.NewSocket(zmq.DEALER)
	if err != nil {
		return protocol.Pong{}, false
	}
	defer s.Close()
	_ = s.SetLinger(0)
	if s.Connect(ep) != nil {
		return protocol.Pong{}, false
	}
	if zsock.Send(s, nil, protocol.Header(protocol.Client, protocol.CmdPing), protocol.AppendU64(nil, 1), zmq.DONTWAIT) != nil {
		return protocol.Pong{}, false
	}
	p := zmq.NewPoller()
	p.Add(s, zmq.POLLIN)
	deadline := time.Now().Add(b.cfg.CheckTimeout)
	for {
		left := time.Until(deadline)
		if left <= 0 {
			return protocol.Pong{}, false
		}
		if polled, err := p.Poll(left); err != nil || len(polled) == 0 {
			return protocol.Pong{}, false
		}
		var m zsock.Msg
		if zsock.Recv(s, zmq.DONTWAIT, false, &m) != nil {
			continue
		}
		if cmd, err := protocol.ParseHeader(m.Header, protocol.Client); err == nil && cmd == protocol.CmdPong {
			if pong, err := protocol.DecodePong(m.Body); err == nil {
				return pong, true
			}
		}
	}
}

func (b *Broker) closeSockets() {
	b.stopMetrics()
	b.frontW.Close()
	b.backW.Close()
	b.zapW.Close()
	for _, s := range []*zmq.Socket{b.front, b.back, b.pub, b.zap} {
		if s != nil {
			s.Close()
		}
	}
}

// Frontend is the endpoint clients connect to, with the port resolved.
func (b *Broker) Frontend() string { return b.frontEP }

// Backend is the endpoint workers connect to, with the port resolved.
func (b *Broker) Backend() string { return b.backEP }

// StatsEndpoint is the stats PUB endpoint with the port resolved, or "".
func (b *Broker) StatsEndpoint() string { return b.statsEP }

// Done is closed when the broker has stopped.
func (b *Broker) Done() <-chan struct{} { return b.done }

func (b *Broker) send(m ctlMsg) bool {
	select {
	case <-b.done:
		return false
	case b.ctl <- m:
		b.waiter.Signal()
		return true
	}
}

// Shutdown stops accepting requests (new ones are answered "shutting down"),
// lets queued and running jobs finish, and stops. If ctx ends first, every
// request still pending is answered "shutting down", the broker stops and
// Shutdown returns ctx.Err().
func (b *Broker) Shutdown(ctx context.Context) error {
	b.send(ctlMsg{kind: ctlDrain})
	select {
	case <-b.done:
		return nil
	case <-ctx.Done():
	}
	b.send(ctlMsg{kind: ctlAbort})
	<-b.done
	return ctx.Err()
}

// Close answers every pending request "shutting down" and stops at once.
// It is safe to call more than once.
func (b *Broker) Close() error {
	b.send(ctlMsg{kind: ctlAbort})
	<-b.done
	return nil
}

// Stats returns a snapshot of the broker's counters, queues and workers.
func (b *Broker) Stats() (Stats, error) {
	ch := make(chan Stats, 1)
	if !b.send(ctlMsg{kind: ctlStats, stats: ch}) {
		return Stats{}, ErrClosed
	}
	select {
	case s := <-ch:
		return s, nil
	case <-b.done:
		return Stats{}, ErrClosed
	}
}
