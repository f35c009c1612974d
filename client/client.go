// Package client owns the caller's side of hose: Execute sends a job to a
// broker and waits for the worker's answer or a typed error.
//
// A Client is safe for any number of goroutines. Calls are pipelined: one
// goroutine owns the ZeroMQ DEALER sockets (one per broker endpoint), packs
// every call queued since its last wake-up into one REQUEST batch, and hands
// each answer back to its caller through a channel. Given several broker
// endpoints, the client spreads calls over the live ones and fails over when
// one goes away.
package client

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"math"
	"sync"
	"sync/atomic"
	"time"

	zmq "github.com/pebbe/zmq4"

	"github.com/hose-project/hose/internal/wake"
	"github.com/hose-project/hose/internal/zsock"
	"github.com/hose-project/hose/protocol"
)

// DefaultEndpoint is the broker frontend used when Config names none.
const DefaultEndpoint = "tcp://127.0.0.1:5555"

// DefaultHWM is the default Config.HWM, in messages.
const DefaultHWM = 100000

// Config configures a Client. Zero fields take the defaults of
// DefaultConfig.
type Config struct {
	// Endpoints are broker frontends. Calls are spread over the live ones.
	Endpoints []string
	// DefaultTimeout bounds calls whose context has no deadline. Default 30s.
	DefaultTimeout time.Duration
	// ConnectTimeout is how long a call waits for a broker connection
	// before it fails with ErrBrokerGone. Default 1s; a broker restarted
	// within it loses none of the calls made meanwhile.
	ConnectTimeout time.Duration
	// HeartbeatInterval is how often the client pings an idle broker, and
	// pings a broker holding its calls to notice a restart. Default 500ms.
	HeartbeatInterval time.Duration
	// Liveness is the number of silent intervals after which a broker that
	// holds calls is declared gone. Default 4.
	Liveness int
	// MaxPayload is the largest payload Execute sends. Default 8 MiB.
	MaxPayload int
	// HWM is the high-water mark of each broker connection: the messages
	// (batches of calls one way, batches of answers the other) libzmq
	// queues before it stops. Calls that meet a full queue wait in the
	// client and are sent shortly; answers the broker cannot queue are
	// dropped there and their calls time out. Default 100000; 0 means the
	// default (libzmq's "no limit" is not offered), negative is refused.
	HWM int
	// CurveServerKey, when set, is the broker's CURVE public key (Z85, 40
	// characters): the connection is encrypted and the broker is
	// authenticated. CurvePublicKey and CurveSecretKey are this client's
	// key pair, which a broker with a client allow-list checks; left empty,
	// a fresh pair is made (accepted only by a broker without a list).
	CurveServerKey string
	CurvePublicKey string
	CurveSecretKey string
	// Logger receives the client's logs. Default: discard.
	Logger *slog.Logger
}

// DefaultConfig returns a Config with every default filled in.
func DefaultConfig() Config {
	return Config{
		Endpoints:         []string{DefaultEndpoint},
		DefaultTimeout:    30 * time.Second,
		ConnectTimeout:    time.Second,
		HeartbeatInterval: 500 * time.Millisecond,
		Liveness:          4,
		MaxPayload:        8 << 20,
		HWM:               DefaultHWM,
	}
}

func (c Config) withDefaults() Config {
	d := DefaultConfig()
	if len(c.Endpoints) == 0 {
		c.Endpoints = d.Endpoints
	}
	if c.DefaultTimeout <= 0 {
		c.DefaultTimeout = d.DefaultTimeout
	}
	if c.ConnectTimeout <= 0 {
		c.ConnectTimeout = d.ConnectTimeout
	}
	if c.HeartbeatInterval <= 0 {
		c.HeartbeatInterval = d.HeartbeatInterval
	}
	if c.Liveness <= 0 {
		c.Liveness = d.Liveness
	}
	if c.MaxPayload <= 0 {
		c.MaxPayload = d.MaxPayload
	}
	if c.HWM == 0 {
		c.HWM = d.HWM
	}
	if c.Logger == nil {
		c.Logger = slog.New(slog.NewTextHandler(io.Discard, nil))
	}
	return c
}

// Validate reports a configuration the client cannot run with.
func (c Config) Validate() error {
	c = c.withDefaults()
	if c.HWM < 0 || c.HWM > math.MaxInt32 {
		return fmt.Errorf("client: high-water mark %d is outside 1..%d messages (0 means the default)", c.HWM, math.MaxInt32)
	}
	if c.HeartbeatInterval < 10*time.Millisecond {
		return fmt.Errorf("client: heartbeat interval %v is under 10ms", c.HeartbeatInterval)
	}
	for _, ep := range c.Endpoints {
		if ep == "" {
			return fmt.Errorf("client: empty endpoint")
		}
	}
	if c.CurveServerKey == "" && (c.CurvePublicKey != "" || c.CurveSecretKey != "") {
		return fmt.Errorf("client: a CURVE key pair without CurveServerKey")
	}
	if (c.CurvePublicKey == "") != (c.CurveSecretKey == "") {
		return fmt.Errorf("client: CurvePublicKey and CurveSecretKey go together")
	}
	for _, k := range []string{c.CurveServerKey, c.CurvePublicKey, c.CurveSecretKey} {
		if k != "" && len(zmq.Z85decode(k)) != 32 {
			return fmt.Errorf("client: %q is not a Z85 CURVE key (40 characters)", k)
		}
	}
	return nil
}

// Client sends jobs to hose brokers.
type Client struct {
	cfg    Config
	zctx   *zmq.Context
	waiter *wake.Waiter
	eps    []*endpoint
	done   chan struct{}
	start  time.Time

	mu      sync.Mutex
	queue   []*call // calls waiting for the owner
	gaveUp  []*call // calls whose caller left
	pings   []*pingReq
	closing bool

	// owner goroutine state
	pending map[uint64]*call
	nextID  uint64
	rr      int
	backlog []*call
	waiters map[uint64]*pingReq
}

// BrokerInfo is a broker's answer to Ping.
type BrokerInfo struct {
	Endpoint string
	PID      int
	Host     string
	Version  string
	Instance uint64
	Uptime   time.Duration
	Workers  int
	Queued   int
	InFlight int
	Draining bool
	RTT      time.Duration
}

// Dial is New with default settings and the given broker endpoints.
func Dial(endpoints ...string) (*Client, error) {
	return New(Config{Endpoints: endpoints})
}

// New connects to the configured brokers. Connecting is asynchronous: New
// does not fail because a broker is down; calls do, with ErrBrokerGone.
func New(cfg Config) (*Client, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	cfg = cfg.withDefaults()
	zctx, err := zmq.NewContext()
	if err != nil {
		return nil, fmt.Errorf("client: zmq context: %w", err)
	}
	c := &Client{
		cfg: cfg, zctx: zctx, done: make(chan struct{}), start: time.Now(), waiter: wake.New(),
		pending: make(map[uint64]*call), waiters: make(map[uint64]*pingReq),
	}
	fail := func(err error) (*Client, error) {
		for _, ep := range c.eps {
			ep.close()
		}
		zctx.Term()
		return nil, err
	}
	for i, addr := range cfg.Endpoints {
		ep, err := c.newEndpoint(i, addr)
		if err != nil {
			return fail(err)
		}
		c.eps = append(c.eps, ep)
	}
	for _, ep := range c.eps {
		if ep.sockW, err = c.waiter.Watch(ep.sock); err != nil {
			return fail(err)
		}
		if ep.monW, err = c.waiter.Watch(ep.mon); err != nil {
			return fail(err)
		}
	}
	go c.loop()
	return c, nil
}

var monSeq atomic.Uint64

func (c *Client) newEndpoint(i int, addr string) (*endpoint, error) {
	s, err := c.zctx.NewSocket(zmq.DEALER)
	if err != nil {
		return nil, fmt.Errorf("client: socket: %w", err)
	}
	ep := &endpoint{idx: i, addr: addr, sock: s}
	_ = s.SetLinger(0)
	for _, set := range []func(int) error{s.SetSndhwm, s.SetRcvhwm} {
		if err := set(c.cfg.HWM); err != nil {
			ep.close()
			return nil, fmt.Errorf("client: high-water mark: %w", err)
		}
	}
	_ = s.SetReconnectIvl(100 * time.Millisecond)
	_ = s.SetReconnectIvlMax(time.Second)
	// Connection state comes from libzmq's socket monitor: a DISCONNECTED
	// event means every call sent on that connection is lost (replies
	// cannot reach a new connection), which is how the client tells
	// "broker gone" from "broker slow" at once.
	monEP := fmt.Sprintf("inproc://hose-client-mon-%d", monSeq.Add(1))
	if err := c.setCurve(s); err != nil {
		ep.close()
		return nil, err
	}
	if err := s.Monitor(monEP, zmq.EVENT_HANDSHAKE_SUCCEEDED|zmq.EVENT_DISCONNECTED|
		zmq.EVENT_HANDSHAKE_FAILED_AUTH|zmq.EVENT_HANDSHAKE_FAILED_PROTOCOL|zmq.EVENT_HANDSHAKE_FAILED_NO_DETAIL); err != nil {
		ep.close()
		return nil, fmt.Errorf("client: monitor: %w", err)
	}
	if ep.mon, err = c.zctx.NewSocket(zmq.PAIR); err != nil {
		ep.close()
		return nil, fmt.Errorf("client: monitor socket: %w", err)
	}
	_ = ep.mon.SetLinger(0)
	if err := ep.mon.Connect(monEP); err != nil {
		ep.close()
		return nil, fmt.Errorf("client: monitor connect: %w", err)
	}
	if err := s.Connect(addr); err != nil {
		ep.close()
		return nil, fmt.Errorf("client: connect %s: %w", addr, err)
	}
	return ep, nil
}

// setCurve makes s a CURVE client when the config names a server key.
func (c *Client) setCurve(s *zmq.Socket) error {
	if c.cfg.CurveServerKey == "" {
		return nil
	}
	if err := zsock.CurveClient(s, c.cfg.CurveServerKey, c.cfg.CurvePublicKey, c.cfg.CurveSecretKey); err != nil {
		return fmt.Errorf("client: CURVE: %w", err)
	}
	return nil
}

// CallOption adjusts one Execute call.
type CallOption func(*call)

// WithService routes the job to the named service (default "default").
func WithService(name string) CallOption {
	return func(c *call) { c.service = name }
}

// WithHeader adds a header to the job; workers read it with Job.Header.
// Keys are at most 255 bytes and values at most 65535; a call with a longer
// one fails with ErrBadRequest.
func WithHeader(key, value string) CallOption {
	return func(c *call) {
		if len(key) > 255 || len(value) > 65535 {
			c.bad = true
			return
		}
		c.headers = protocol.AppendHeader(c.headers, key, value)
	}
}

// WithTimeout bounds the call when it is shorter than the context's deadline.
func WithTimeout(d time.Duration) CallOption {
	return func(c *call) { c.timeout = d }
}

// Idempotent lets the broker run the job again on another worker when the
// first one is lost mid-job, and the client resend it when its broker goes
// away, as long as time remains.
func Idempotent() CallOption {
	return func(c *call) { c.flags |= protocol.FlagIdempotent }
}

// call is one Execute in flight. Fields written by the owner are read by the
// caller only after receiving from done.
type call struct {
	payload  []byte
	service  string
	headers  []byte
	timeout  time.Duration
	flags    byte
	bad      bool  // an option was out of range
	deadline int64 // on the client's clock (ns since start)
	enqueued int64
	done     chan struct{}

	// owner only
	id        uint64
	ep        *endpoint
	abandoned bool // the caller left
	refused   bool // a broker answered "shutting down": the call is being resent

	// result
	res []byte
	err error
	// Timing reported by the broker.
	queueUS, serviceUS uint32
}

var callPool = sync.Pool{New: func() any { return &call{done: make(chan struct{}, 1)} }}

func (c *Client) now() int64 { return int64(time.Since(c.start)) }

// Execute sends payload to a worker through the broker and returns the
// worker's result. The deadline is the context's, or DefaultTimeout when it
// has none (or WithTimeout when shorter). Errors match the Err* values of
// this package with errors.Is; a worker's own error is a *WorkerError.
// The returned slice is the caller's to keep.
func (c *Client) Execute(ctx context.Context, payload []byte, opts ...CallOption) ([]byte, error) {
	res, _, err := c.execute(ctx, payload, opts)
	return res, err
}

// Timing is the broker's account of where a job spent its time.
type Timing struct {
	Queue   time.Duration // waiting in the broker for a worker
	Service time.Duration // from dispatch to the worker's result
}

// ExecuteTimed is Execute that also returns the broker's timing of the job.
func (c *Client) ExecuteTimed(ctx context.Context, payload []byte, opts ...CallOption) ([]byte, Timing, error) {
	return c.execute(ctx, payload, opts)
}

func (c *Client) execute(ctx context.Context, payload []byte, opts []CallOption) ([]byte, Timing, error) {
	if err := ctx.Err(); err != nil {
		return nil, Timing{}, ctxError(err)
	}
	if len(payload) > c.cfg.MaxPayload {
		return nil, Timing{}, ErrTooLarge
	}
	cl := callPool.Get().(*call)
	cl.payload = payload
	for _, o := range opts {
		o(cl)
	}
	if cl.bad || len(cl.service) > protocol.MaxServiceLen || len(cl.headers) > protocol.MaxHeadersLen {
		c.recycle(cl)
		return nil, Timing{}, fmt.Errorf("%w: service name or headers too long", ErrBadRequest)
	}
	now := c.now()
	timeout := c.cfg.DefaultTimeout
	if cl.timeout > 0 && cl.timeout < timeout {
		timeout = cl.timeout
	}
	// The owner goroutine enforces every call's deadline (see sweep), so a
	// caller needs no timer of its own: it waits for its answer and, when
	// the context can end early, for the context.
	if dl, ok := ctx.Deadline(); ok && (cl.timeout <= 0 || time.Until(dl) < cl.timeout) {
		cl.deadline = now + int64(time.Until(dl))
	} else {
		cl.deadline = now + int64(timeout)
	}
	cl.enqueued = now

	c.mu.Lock()
	if c.closing {
		c.mu.Unlock()
		c.recycle(cl)
		return nil, Timing{}, ErrClosed
	}
	c.queue = append(c.queue, cl)
	c.mu.Unlock()
	c.waiter.Signal()

	if done := ctx.Done(); done != nil {
		select {
		case <-cl.done:
		case <-done:
			c.giveUp(cl)
			return nil, Timing{}, ctxError(ctx.Err())
		}
	} else {
		<-cl.done
	}
	res, err := cl.res, cl.err
	t := Timing{Queue: time.Duration(cl.queueUS) * time.Microsecond, Service: time.Duration(cl.serviceUS) * time.Microsecond}
	c.recycle(cl)
	return res, t, err
}

func ctxError(err error) error {
	if err == context.DeadlineExceeded {
		return ErrTimeout
	}
	return err
}

// recycle returns a finished call to the pool. A call whose caller gave up
// is never recycled: the owner may still hold it.
func (c *Client) recycle(cl *call) {
	*cl = call{done: cl.done}
	callPool.Put(cl)
}

func (c *Client) giveUp(cl *call) {
	c.mu.Lock()
	c.gaveUp = append(c.gaveUp, cl)
	c.mu.Unlock()
	c.waiter.Signal()
}

type pingReq struct {
	nonce uint64
	sent  int64
	ep    *endpoint
	reply chan BrokerInfo
}

// Ping asks a broker for its health: the first endpoint that answers wins.
func (c *Client) Ping(ctx context.Context) (BrokerInfo, error) {
	p := &pingReq{reply: make(chan BrokerInfo, len(c.eps))}
	c.mu.Lock()
	if c.closing {
		c.mu.Unlock()
		return BrokerInfo{}, ErrClosed
	}
	c.pings = append(c.pings, p)
	c.mu.Unlock()
	c.waiter.Signal()
	timer := time.NewTimer(c.cfg.ConnectTimeout)
	defer timer.Stop()
	select {
	case info := <-p.reply:
		return info, nil
	case <-ctx.Done():
		return BrokerInfo{}, ctxError(ctx.Err())
	case <-timer.C:
		return BrokerInfo{}, ErrBrokerGone
	case <-c.done:
		return BrokerInfo{}, ErrClosed
	}
}

// Close fails every pending call with ErrClosed and releases the sockets.
// It is safe to call more than once.
func (c *Client) Close() error {
	c.mu.Lock()
	c.closing = true
	c.mu.Unlock()
	c.waiter.Signal()
	<-c.done
	return nil
}
