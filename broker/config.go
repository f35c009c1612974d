package broker

import (
	"fmt"
	"io"
	"log/slog"
	"math"
	"strings"
	"time"
)

// Config configures a Broker. The zero value of a field means its default;
// start from DefaultConfig to see them.
type Config struct {
	// Frontend is the endpoint clients connect to. Default
	// tcp://127.0.0.1:5555; a port of * or 0 picks a free one (see
	// Broker.Frontend). Listening beyond loopback is opt-in: name the
	// address.
	Frontend string
	// Backend is the endpoint workers connect to. Default tcp://127.0.0.1:5556.
	Backend string

	// HeartbeatInterval is how often the broker and its workers send a
	// heartbeat when they have nothing else to send. Workers adopt the
	// broker's value when they register. Default 500ms.
	HeartbeatInterval time.Duration
	// Liveness is the number of silent heartbeat intervals after which a
	// worker is declared lost. Default 4.
	Liveness int

	// DefaultTimeout applies to requests that carry no timeout. Default 30s.
	DefaultTimeout time.Duration
	// NoWorkerWait bounds how long a job waits for a service that has no
	// worker at all before it is answered "no worker". Default 1s.
	NoWorkerWait time.Duration
	// MaxQueue is the number of jobs a service may hold waiting for a
	// worker; one more is answered "busy". Default 10000.
	MaxQueue int
	// MaxClientInFlight bounds the requests one client connection may have
	// pending (queued or running); more are answered "busy", so one client
	// cannot fill the queues and starve the others. Default: half of
	// MaxQueue.
	MaxClientInFlight int
	// MaxPayload is the largest job payload accepted; larger ones are
	// answered "too large". Default 8 MiB.
	MaxPayload int
	// HWM is the high-water mark of the frontend and backend sockets: the
	// messages libzmq queues for one peer connection in each direction
	// before it stops. A message is a batch of jobs or answers (up to
	// 256 KiB, or one job up to MaxPayload), so a connection may hold up to
	// about HWM batches in memory each way. When the broker hits it, jobs
	// for a worker wait in the broker and are sent again shortly, but
	// answers for a client that does not read are dropped (counted in
	// Unroutable) and its calls time out. Default 100000; libzmq's 0
	// ("no limit") is not offered: a peer that never reads would grow the
	// broker's memory without bound.
	HWM int
	// SlowGrace is how long past its deadline a worker may hold a job before
	// the broker drops the worker as slow. Default 5s.
	SlowGrace time.Duration
	// Services, when not empty, is the list of services the broker routes;
	// requests for others are answered "unknown service" and workers that
	// offer none of them are refused. Empty means any name.
	Services []string

	// Stats, when set, is the endpoint of the stats PUB socket: a snapshot
	// every StatsInterval (see docs/STATS.md). Off by default in the
	// library; `hose broker` binds tcp://127.0.0.1:5557.
	Stats string
	// StatsInterval is the publishing interval, 100ms or more. Default 1s.
	StatsInterval time.Duration
	// Metrics, when set, is a host:port serving the same figures for
	// Prometheus at /metrics. Off by default.
	Metrics string

	// CurveSecretKey, when set (Z85, 40 characters; `hose keygen`), makes
	// both sockets CURVE servers: traffic is encrypted and every peer must
	// know the matching public key. ClientKeys and WorkerKeys are the Z85
	// public keys allowed on the frontend and on the backend; an empty list
	// lets any peer that knows the server key in.
	CurveSecretKey string
	ClientKeys     []string
	WorkerKeys     []string

	// SkipCheck turns off the check for a live broker already answering on
	// the frontend (Powerhose's --check). Tests that bind port 0 skip it
	// anyway.
	SkipCheck bool
	// CheckTimeout is how long the check waits for a PONG. Default 300ms.
	CheckTimeout time.Duration

	// Logger receives the broker's logs. Default: discard.
	Logger *slog.Logger
}

// Defaults.
const (
	DefaultFrontend = "tcp://127.0.0.1:5555"
	DefaultBackend  = "tcp://127.0.0.1:5556"
	// DefaultHWM is the default Config.HWM, in messages.
	DefaultHWM = 100000
)

// DefaultConfig returns a Config with every default filled in.
func DefaultConfig() Config {
	return Config{
		Frontend:          DefaultFrontend,
		Backend:           DefaultBackend,
		HeartbeatInterval: 500 * time.Millisecond,
		Liveness:          4,
		DefaultTimeout:    30 * time.Second,
		NoWorkerWait:      time.Second,
		MaxQueue:          10000,
		MaxClientInFlight: 5000,
		MaxPayload:        8 << 20,
		HWM:               DefaultHWM,
		SlowGrace:         5 * time.Second,
		CheckTimeout:      300 * time.Millisecond,
	}
}

// withDefaults fills zero fields from DefaultConfig.
func (c Config) withDefaults() Config {
	d := DefaultConfig()
	if c.Frontend == "" {
		c.Frontend = d.Frontend
	}
	if c.Backend == "" {
		c.Backend = d.Backend
	}
	if c.HeartbeatInterval == 0 {
		c.HeartbeatInterval = d.HeartbeatInterval
	}
	if c.Liveness == 0 {
		c.Liveness = d.Liveness
	}
	if c.DefaultTimeout == 0 {
		c.DefaultTimeout = d.DefaultTimeout
	}
	if c.NoWorkerWait == 0 {
		c.NoWorkerWait = d.NoWorkerWait
	}
	if c.MaxQueue == 0 {
		c.MaxQueue = d.MaxQueue
	}
	if c.MaxPayload == 0 {
		c.MaxPayload = d.MaxPayload
	}
	if c.HWM == 0 {
		c.HWM = d.HWM
	}
	if c.MaxClientInFlight == 0 {
		c.MaxClientInFlight = max(1, c.MaxQueue/2)
	}
	if c.SlowGrace == 0 {
		c.SlowGrace = d.SlowGrace
	}
	if c.CheckTimeout == 0 {
		c.CheckTimeout = d.CheckTimeout
	}
	if c.StatsInterval == 0 {
		c.StatsInterval = time.Second
	}
	if c.Logger == nil {
		c.Logger = slog.New(slog.NewTextHandler(io.Discard, nil))
	}
	return c
}

// Validate reports a configuration the broker cannot run with.
func (c Config) Validate() error {
	c = c.withDefaults()
	for _, ep := range []string{c.Frontend, c.Backend} {
		if !strings.HasPrefix(ep, "tcp://") && !strings.HasPrefix(ep, "ipc://") && !strings.HasPrefix(ep, "inproc://") {
			return fmt.Errorf("broker: endpoint %q: want tcp://, ipc:// or inproc://", ep)
		}
	}
	if c.Frontend == c.Backend && !strings.HasSuffix(c.Frontend, ":*") && !strings.HasSuffix(c.Frontend, ":0") {
		return fmt.Errorf("broker: frontend and backend are both %q", c.Frontend)
	}
	switch {
	case c.HeartbeatInterval < 10*time.Millisecond:
		return fmt.Errorf("broker: heartbeat interval %v is under 10ms", c.HeartbeatInterval)
	case c.Liveness < 2 || c.Liveness > 255:
		return fmt.Errorf("broker: liveness %d is outside 2..255", c.Liveness)
	case c.DefaultTimeout < time.Millisecond:
		return fmt.Errorf("broker: default timeout %v is under 1ms", c.DefaultTimeout)
	case c.StatsInterval < 100*time.Millisecond:
		return fmt.Errorf("broker: stats interval %v is under 100ms", c.StatsInterval)
	case c.MaxQueue < 0:
		return fmt.Errorf("broker: max queue %d is negative", c.MaxQueue)
	case c.MaxClientInFlight < 0:
		return fmt.Errorf("broker: max client in-flight %d is negative", c.MaxClientInFlight)
	case c.MaxPayload < 1024 || c.MaxPayload > 1<<30:
		return fmt.Errorf("broker: max payload %d is outside 1 KiB..1 GiB", c.MaxPayload)
	case c.HWM < 0 || c.HWM > math.MaxInt32:
		return fmt.Errorf("broker: high-water mark %d is outside 1..%d messages (0 means the default)", c.HWM, math.MaxInt32)
	}
	if c.CurveSecretKey != "" {
		if err := curveKey(c.CurveSecretKey); err != nil {
			return fmt.Errorf("broker: CurveSecretKey: %w", err)
		}
	} else if len(c.ClientKeys)+len(c.WorkerKeys) > 0 {
		return fmt.Errorf("broker: client or worker keys without CurveSecretKey")
	}
	for _, k := range append(append([]string(nil), c.ClientKeys...), c.WorkerKeys...) {
		if err := curveKey(k); err != nil {
			return fmt.Errorf("broker: allowed key: %w", err)
		}
	}
	for _, s := range c.Services {
		if s == "" || len(s) > 255 {
			return fmt.Errorf("broker: service name %q must be 1..255 bytes", s)
		}
	}
	return nil
}
