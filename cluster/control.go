package cluster

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	zmq "github.com/pebbe/zmq4"

	"github.com/hose-project/hose/internal/wake"
	"github.com/hose-project/hose/internal/zsock"
)

// The control endpoint lets a tool (hosetop) read and change the number of
// workers of a running cluster. It is a ZeroMQ REP socket speaking one JSON
// object each way (docs/STATS.md):
//
//	{"op":"get"}              -> {"ok":true,"workers":4}
//	{"op":"set","workers":8}  -> {"ok":true,"workers":8}
//	anything wrong            -> {"ok":false,"error":"..."}
//
// It binds to loopback by default: whoever reaches it can start processes.

// DefaultControlEndpoint is where `hose cluster` listens for control
// requests.
const DefaultControlEndpoint = "tcp://127.0.0.1:5558"

// DefaultMaxWorkers bounds the worker count a control request may set.
const DefaultMaxWorkers = 1024

// Scaler is a pool of workers whose size can change while it runs. *Local
// is one; SupervisorScaler adapts a *Supervisor.
type Scaler interface {
	// Workers is the number of workers wanted now.
	Workers() int
	// SetWorkers changes it.
	SetWorkers(n int) error
}

var _ Scaler = (*Local)(nil)

// SupervisorScaler makes s a Scaler: its worker count is the number of
// processes it keeps running.
func SupervisorScaler(s *Supervisor) Scaler { return supervisorScaler{s} }

type supervisorScaler struct{ s *Supervisor }

func (a supervisorScaler) Workers() int           { return a.s.Count() }
func (a supervisorScaler) SetWorkers(n int) error { return a.s.SetCount(n) }

// ControlRequest is one request to the control endpoint.
type ControlRequest struct {
	Op      string `json:"op"`                // "get" or "set"
	Workers *int   `json:"workers,omitempty"` // for "set"
}

// ControlReply answers a ControlRequest.
type ControlReply struct {
	OK      bool   `json:"ok"`
	Workers int    `json:"workers"`
	Error   string `json:"error,omitempty"`
}

// ControlConfig configures a control endpoint.
type ControlConfig struct {
	// Endpoint to bind. Default DefaultControlEndpoint; a port of * picks a
	// free one (see ControlServer.Endpoint).
	Endpoint string
	// MaxWorkers bounds the counts "set" accepts. Default DefaultMaxWorkers.
	MaxWorkers int
	// Logger gets one line per change. Default: discard.
	Logger *slog.Logger
}

// Errors of the control endpoint.
var (
	// ErrControlClosed: the server or client was closed.
	ErrControlClosed = errors.New("cluster: control endpoint closed")
	// ErrNoControl: nothing answered at the control endpoint in time.
	ErrNoControl = errors.New("cluster: no answer from the control endpoint")
	// ErrControlRefused: the control endpoint answered with an error.
	ErrControlRefused = errors.New("cluster: control request refused")
)

// ControlServer serves a control endpoint. One goroutine owns its socket.
type ControlServer struct {
	cfg     ControlConfig
	scaler  Scaler
	zctx    *zmq.Context
	sock    *zmq.Socket
	waiter  *wake.Waiter
	watch   *wake.Watch
	ep      string
	closing atomic.Bool
	done    chan struct{}
	once    sync.Once
}

// localEndpoint reports whether ep can only be reached from this host.
func localEndpoint(ep string) bool {
	if strings.HasPrefix(ep, "ipc://") || strings.HasPrefix(ep, "inproc://") {
		return true
	}
	addr, ok := strings.CutPrefix(ep, "tcp://")
	if !ok {
		return false
	}
	host, _, err := net.SplitHostPort(addr)
	if err != nil {
		return false
	}
	if host == "localhost" {
		return true
	}
	ip := net.ParseIP(host)
	return ip != nil && ip.IsLoopback()
}

// ServeControl binds the control endpoint and serves it until Close.
func ServeControl(cfg ControlConfig, s Scaler) (*ControlServer, error) {
	if s == nil {
		return nil, errors.New("cluster: control endpoint needs a Scaler")
	}
	if cfg.Endpoint == "" {
		cfg.Endpoint = DefaultControlEndpoint
	}
	if cfg.MaxWorkers <= 0 {
		cfg.MaxWorkers = DefaultMaxWorkers
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.NewTextHandler(io.Discard, nil))
	}
	if !localEndpoint(cfg.Endpoint) {
		return nil, fmt.Errorf("cluster: control endpoint %s: it has no authentication and starts processes, so it binds to loopback (tcp://127.0.0.1 or [::1]) or ipc:// only", cfg.Endpoint)
	}
	zctx, err := zmq.NewContext()
	if err != nil {
		return nil, fmt.Errorf("cluster: control: %w", err)
	}
	c := &ControlServer{cfg: cfg, scaler: s, zctx: zctx, done: make(chan struct{})}
	if err := c.open(); err != nil {
		if c.sock != nil {
			c.sock.Close()
		}
		zctx.Term()
		return nil, err
	}
	go c.serve()
	return c, nil
}

func (c *ControlServer) open() error {
	var err error
	// A ROUTER rather than a REP: the envelope is checked here, so no
	// malformed message from a stranger can put a REP's state machine
	// out of step with its peers.
	if c.sock, err = c.zctx.NewSocket(zmq.ROUTER); err != nil {
		return fmt.Errorf("cluster: control socket: %w", err)
	}
	_ = c.sock.SetLinger(0)
	_ = c.sock.SetMaxmsgsize(64 << 10)
	if err := c.sock.Bind(c.cfg.Endpoint); err != nil {
		return fmt.Errorf("cluster: bind control %s: %w", c.cfg.Endpoint, err)
	}
	c.ep, _ = c.sock.GetLastEndpoint()
	c.waiter = wake.New()
	c.watch, err = c.waiter.Watch(c.sock)
	return err
}

// Endpoint is the bound endpoint with the port resolved.
func (c *ControlServer) Endpoint() string { return c.ep }

// Close stops serving and releases the endpoint. A request being handled
// (a SetWorkers waiting for workers) finishes first. Safe to call twice.
func (c *ControlServer) Close() error {
	c.once.Do(func() {
		c.closing.Store(true)
		c.waiter.Signal()
	})
	<-c.done
	return nil
}

func (c *ControlServer) serve() {
	defer close(c.done)
	defer func() {
		c.watch.Close()
		c.sock.Close()
		c.zctx.Term()
	}()
	for {
		if c.closing.Load() {
			return
		}
		if !c.watch.Ready() {
			c.waiter.Sleep()
			if c.closing.Load() {
				c.waiter.Awake()
				return
			}
			c.waiter.Wait(time.Hour)
			continue
		}
		parts, err := c.sock.RecvMessageBytes(zmq.DONTWAIT)
		if err != nil {
			continue
		}
		// [peer id, labels..., empty delimiter, request...] from a REQ;
		// anything without the delimiter is not a request: dropped.
		k := 1
		for k < len(parts) && len(parts[k]) > 0 {
			k++
		}
		if k >= len(parts) {
			continue
		}
		body, _ := json.Marshal(c.handle(parts[k+1:]))
		_, _ = c.sock.SendMessageDontwait(parts[:k+1], body)
	}
}

func (c *ControlServer) handle(parts [][]byte) ControlReply {
	fail := func(format string, args ...any) ControlReply {
		return ControlReply{Workers: c.scaler.Workers(), Error: fmt.Sprintf(format, args...)}
	}
	if len(parts) != 1 {
		return fail("malformed request: want one frame of JSON")
	}
	var req ControlRequest
	if err := json.Unmarshal(parts[0], &req); err != nil {
		return fail("malformed request: %v", err)
	}
	switch req.Op {
	case "get":
	case "set":
		if req.Workers == nil {
			return fail(`"set" needs "workers"`)
		}
		n := *req.Workers
		if n < 0 || n > c.cfg.MaxWorkers {
			return fail("workers %d: want 0..%d", n, c.cfg.MaxWorkers)
		}
		old := c.scaler.Workers()
		if err := c.scaler.SetWorkers(n); err != nil {
			return fail("%v", err)
		}
		if old != n {
			c.cfg.Logger.Info("worker count changed by control request", "from", old, "to", n)
		}
	default:
		return fail("unknown op %q: want get or set", req.Op)
	}
	return ControlReply{OK: true, Workers: c.scaler.Workers()}
}

// ControlClient talks to a control endpoint. Its methods are safe for
// concurrent use: each call uses a socket of its own.
type ControlClient struct {
	ep     string
	zctx   *zmq.Context
	mu     sync.Mutex
	closed bool
	calls  sync.WaitGroup
}

// DialControl returns a client of the control endpoint ep. It does not
// check that anything listens there: calls fail with ErrNoControl.
func DialControl(ep string) (*ControlClient, error) {
	if !strings.Contains(ep, "://") {
		return nil, fmt.Errorf("cluster: control endpoint %q: want tcp://HOST:PORT or ipc://PATH", ep)
	}
	zctx, err := zmq.NewContext()
	if err != nil {
		return nil, fmt.Errorf("cluster: control client: %w", err)
	}
	return &ControlClient{ep: ep, zctx: zctx}, nil
}

// Endpoint is the control endpoint the client talks to.
func (c *ControlClient) Endpoint() string { return c.ep }

// Workers asks for the current worker count.
func (c *ControlClient) Workers(ctx context.Context) (int, error) {
	return c.call(ctx, ControlRequest{Op: "get"})
}

// SetWorkers asks for n workers and returns the count the cluster now
// wants.
func (c *ControlClient) SetWorkers(ctx context.Context, n int) (int, error) {
	return c.call(ctx, ControlRequest{Op: "set", Workers: &n})
}

// controlTimeout bounds a call whose context has no deadline; a Local
// cluster takes up to 5s to see its new workers.
const controlTimeout = 10 * time.Second

func (c *ControlClient) call(ctx context.Context, req ControlRequest) (int, error) {
	body, _ := json.Marshal(req)
	return c.roundTrip(ctx, body)
}

// roundTrip sends one request body and decodes the reply.
func (c *ControlClient) roundTrip(ctx context.Context, body []byte) (int, error) {
	if err := ctx.Err(); err != nil {
		return 0, err
	}
	c.mu.Lock()
	if c.closed {
		c.mu.Unlock()
		return 0, ErrControlClosed
	}
	c.calls.Add(1)
	c.mu.Unlock()
	defer c.calls.Done()

	deadline, ok := ctx.Deadline()
	if !ok {
		deadline = time.Now().Add(controlTimeout)
	}
	s, err := c.zctx.NewSocket(zmq.REQ)
	if err != nil {
		return 0, fmt.Errorf("cluster: control socket: %w", err)
	}
	defer s.Close()
	_ = s.SetLinger(0)
	if err := s.Connect(c.ep); err != nil {
		return 0, fmt.Errorf("cluster: connect control %s: %w", c.ep, err)
	}
	if _, err := s.SendBytes(body, zmq.DONTWAIT); err != nil && !zsock.IsAgain(err) {
		return 0, fmt.Errorf("cluster: control send: %w", err)
	}
	poller := zmq.NewPoller()
	poller.Add(s, zmq.POLLIN)
	// Poll in short steps so a cancelled context is noticed.
	for {
		left := time.Until(deadline)
		if left <= 0 {
			return 0, fmt.Errorf("%w at %s", ErrNoControl, c.ep)
		}
		if err := ctx.Err(); err != nil {
			return 0, err
		}
		polled, err := poller.Poll(min(left, 100*time.Millisecond))
		if err != nil {
			return 0, fmt.Errorf("cluster: control poll: %w", err)
		}
		if len(polled) > 0 {
			break
		}
	}
	data, err := s.RecvBytes(zmq.DONTWAIT)
	if err != nil {
		return 0, fmt.Errorf("cluster: control receive: %w", err)
	}
	var rep ControlReply
	if err := json.Unmarshal(data, &rep); err != nil {
		return 0, fmt.Errorf("cluster: control reply: %w", err)
	}
	if !rep.OK {
		return rep.Workers, fmt.Errorf("%w: %s", ErrControlRefused, rep.Error)
	}
	return rep.Workers, nil
}

// Close waits for calls in progress and releases the client.
func (c *ControlClient) Close() error {
	c.mu.Lock()
	if c.closed {
		c.mu.Unlock()
		return nil
	}
	c.closed = true
	c.mu.Unlock()
	c.calls.Wait()
	return c.zctx.Term()
}
