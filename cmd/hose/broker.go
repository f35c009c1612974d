package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"log/slog"
	"os"
	"runtime"
	"time"

	"github.com/hose-project/hose/broker"
)

const brokerUsage = `Usage: hose broker [flags]

Runs a broker: clients connect to -frontend, workers to -backend (tcp:// or
ipc:// endpoints). It refuses to start when a broker already answers on the
frontend, and names that broker's PID. SIGINT or SIGTERM starts a graceful
stop: new requests are refused, queued and running jobs get -drain-timeout
to finish, then whatever is left is answered "shutting down". A second
signal stops at once.

Exit codes:
  0  stopped after a signal
  1  could not start (a broker already runs there, endpoint in use, ...)
  2  usage error
`

// brokerFlags are the flags that fill a broker.Config; hose cluster shares
// them.
type brokerFlags struct {
	frontend     string
	backend      string
	heartbeat    time.Duration
	liveness     int
	timeout      time.Duration
	noWorkerWait time.Duration
	maxQueue     int
	maxClient    int
	maxPayload   byteSize
	hwm          int
	slowGrace    time.Duration
	services     stringList
	skipCheck    bool
	checkTimeout time.Duration
	// The stats stream and metrics (docs/STATS.md).
	stats         endpointFlag
	statsInterval time.Duration
	metrics       string
}

// register adds the broker flags; allowList adds -service, which hose
// cluster gives to its workers instead.
func (f *brokerFlags) register(fs *flag.FlagSet, allowList bool) {
	d := broker.DefaultConfig()
	fs.StringVar(&f.frontend, "frontend", d.Frontend, "the `ENDPOINT` clients connect to (tcp://HOST:PORT or ipc://PATH)")
	fs.StringVar(&f.backend, "backend", d.Backend, "the `ENDPOINT` workers connect to (tcp://HOST:PORT or ipc://PATH)")
	fs.DurationVar(&f.heartbeat, "heartbeat", d.HeartbeatInterval, "heartbeat interval between broker and workers (workers adopt it)")
	fs.IntVar(&f.liveness, "liveness", d.Liveness, "silent heartbeat intervals after which a worker is lost (2..255)")
	fs.DurationVar(&f.timeout, "timeout", d.DefaultTimeout, "timeout of requests that carry none")
	fs.DurationVar(&f.noWorkerWait, "no-worker-wait", d.NoWorkerWait, `how long a job waits for a service with no worker before "no worker"`)
	fs.IntVar(&f.maxQueue, "max-queue", d.MaxQueue, `jobs a service may queue; one more is answered "busy"`)
	fs.IntVar(&f.maxClient, "max-client-inflight", 0, `requests one client connection may have pending; more are answered "busy" (default: half of -max-queue)`)
	f.maxPayload = byteSize(d.MaxPayload)
	fs.Var(&f.maxPayload, "max-payload", "largest job payload accepted: a `SIZE` in bytes or with KiB, MiB or GiB")
	fs.IntVar(&f.hwm, "hwm", d.HWM, "high-water mark of each client and worker connection, in messages (each a batch of jobs) queued each way")
	fs.DurationVar(&f.slowGrace, "slow-grace", d.SlowGrace, "how long past a job's deadline a worker may hold it before it is dropped as slow")
	if allowList {
		fs.Var(&f.services, "service", "a service `NAME` to route, repeatable; requests for others are refused (default: any)")
	}
	fs.BoolVar(&f.skipCheck, "skip-check", false, "skip the check for a broker already answering on -frontend")
	fs.DurationVar(&f.checkTimeout, "check-timeout", d.CheckTimeout, "how long the check waits for a running broker's answer")
	f.stats = endpointFlag{ep: defaultStatsEndpoint}
	fs.Var(&f.stats, "stats", "the stats PUB `ENDPOINT` hosetop reads (\"\" for none; see docs/STATS.md)")
	fs.DurationVar(&f.statsInterval, "stats-interval", time.Second, "how often a stats snapshot is published (100ms or more)")
	fs.StringVar(&f.metrics, "metrics", "", "serve Prometheus metrics at http://`HOST:PORT`/metrics (default off)")
}

func (f *brokerFlags) config(log *slog.Logger) broker.Config {
	return broker.Config{
		Frontend:          f.frontend,
		Backend:           f.backend,
		HeartbeatInterval: f.heartbeat,
		Liveness:          f.liveness,
		DefaultTimeout:    f.timeout,
		NoWorkerWait:      f.noWorkerWait,
		MaxQueue:          f.maxQueue,
		MaxClientInFlight: f.maxClient,
		MaxPayload:        int(f.maxPayload),
		HWM:               f.hwm,
		SlowGrace:         f.slowGrace,
		Services:          f.services,
		SkipCheck:         f.skipCheck,
		CheckTimeout:      f.checkTimeout,
		Stats:             f.stats.use(log, "stats", "-stats"),
		StatsInterval:     f.statsInterval,
		Metrics:           f.metrics,
		Logger:            log,
	}
}

type brokerCmd struct {
	log          logFlags
	broker       brokerFlags
	drainTimeout time.Duration
	curve        brokerCurveFlags
	procs        int
}

func (c *brokerCmd) register(fs *flag.FlagSet) {
	c.broker.register(fs, true)
	c.curve.register(fs, false)
	fs.DurationVar(&c.drainTimeout, "drain-timeout", 10*time.Second, "on SIGINT/SIGTERM, how long queued and running jobs get to finish")
	fs.IntVar(&c.procs, "procs", 1, "Go processors (GOMAXPROCS) of the broker process: its work is one goroutine; 0 (or a GOMAXPROCS environment variable): Go's default")
	c.log.register(fs)
}

func (c *brokerCmd) run(ctx context.Context, e *env, args []string) int {
	if len(args) > 0 {
		return usageError(e, "broker", "unexpected argument %q", args[0])
	}
	log, err := c.log.logger(e.stderr)
	if err != nil {
		return usageError(e, "broker", "%v", err)
	}
	cfg := c.broker.config(log)
	if err := c.curve.apply(&cfg); err != nil {
		return usageError(e, "broker", "%v", err)
	}
	if err := cfg.Validate(); err != nil {
		return usageError(e, "broker", "%v", err)
	}
	// The broker's work is one goroutine (and libzmq's I/O thread, which
	// is not Go's): one processor saves the thread switches of idle
	// processors spinning for work, about 10 % more jobs/s on 2 cores.
	if c.procs > 0 && os.Getenv("GOMAXPROCS") == "" {
		runtime.GOMAXPROCS(c.procs)
	}
	b, err := broker.New(cfg)
	if err != nil {
		fmt.Fprintf(e.stderr, "hose broker: %v\n", err)
		if errors.Is(err, broker.ErrAlreadyRunning) {
			fmt.Fprintln(e.stderr, "hose broker: stop that broker first, or choose other endpoints")
		}
		return exitError
	}
	select {
	case <-ctx.Done():
	case <-b.Done():
		fmt.Fprintln(e.stderr, "hose broker: the broker stopped by itself")
		return exitError
	}
	shutdownBroker(b, c.drainTimeout, log)
	return exitOK
}

// shutdownBroker drains b for up to d, then stops it.
func shutdownBroker(b *broker.Broker, d time.Duration, log *slog.Logger) {
	log.Info("stopping broker", "drain_timeout", d)
	ctx, cancel := context.WithTimeout(context.Background(), d)
	defer cancel()
	if err := b.Shutdown(ctx); err != nil {
		log.Warn("drain timed out; requests still pending were answered \"shutting down\"", "drain_timeout", d)
	}
}
