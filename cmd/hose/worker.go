package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"log/slog"
	"os"
	"strconv"
	"strings"
	"time"

	"github.com/hose-project/hose/handlers"
	"github.com/hose-project/hose/internal/curvekey"
	"github.com/hose-project/hose/worker"
)

const workerUsage = `Usage: hose worker -backend ENDPOINT[,ENDPOINT...] -handler JOB [flags]

Runs a worker that serves jobs from a broker's backend with a built-in
handler. JOB is one of:
  echo            return the payload
  sha256[:N]      hash the payload N times (default 1000; or -rounds N)
  sleep[:D]       wait D, then return the payload (default 10ms; or -sleep D)
  fail[:MESSAGE]  answer every job with a worker error carrying MESSAGE
The worker registers with the broker, re-registers by itself when the broker
restarts, and stops gracefully on SIGINT or SIGTERM: it takes no more jobs,
finishes those it holds (up to -drain-timeout) and tells the broker.
-max-age or -max-jobs retire it the same way; a supervisor (hose cluster)
then starts a fresh one.

Several brokers: give -backend a comma-separated list, or repeat it. The
worker registers with each broker on its own connection and runs the jobs
of all of them on one pool of -concurrency handlers; each broker is offered
-concurrency plus -prefetch jobs, so one left alone gets the whole pool.
When a broker goes away the worker keeps serving the others and reconnects
to it in the background. A stop drains every broker before the worker
exits, and -max-jobs counts the jobs of all of them.

Exit codes:
  0  stopped gracefully (signal) or retired (-max-age, -max-jobs)
  1  error
  2  usage error
  3  -exit-on-broker-loss is set and the broker went away (with several
     brokers: every one of them was lost at the same time)
`

// workerFlags are the flags that fill a worker.Config and choose its
// handler; hose cluster shares them and passes them on to its workers.
type workerFlags struct {
	handler          string
	rounds           int
	sleep            time.Duration
	concurrency      int
	prefetch         int
	services         stringList
	params           kvList
	maxAge           time.Duration
	maxAgeDelta      time.Duration
	maxJobs          int
	timeLimit        time.Duration
	exitOnBrokerLoss bool
}

func (f *workerFlags) register(fs *flag.FlagSet) {
	fs.StringVar(&f.handler, "handler", "echo", "the `JOB` handler: echo, sha256[:ROUNDS], sleep[:DURATION] or fail[:MESSAGE]")
	fs.IntVar(&f.rounds, "rounds", 0, "sha256 rounds per job (default 1000)")
	fs.DurationVar(&f.sleep, "sleep", 0, "sleep per job (default 10ms)")
	fs.IntVar(&f.concurrency, "concurrency", 0, "jobs run at once (default: the number of CPUs)")
	fs.IntVar(&f.prefetch, "prefetch", 0, "jobs held beyond -concurrency so the next starts without a round trip (default: equal to -concurrency; -1: none)")
	fs.Var(&f.services, "service", "a service `NAME` to serve, repeatable (default: default)")
	fs.Var(&f.params, "param", "a `KEY=VALUE` parameter handed to every job, repeatable")
	fs.DurationVar(&f.maxAge, "max-age", 0, "retire after this long (0: never)")
	fs.DurationVar(&f.maxAgeDelta, "max-age-delta", 0, "add a random part up to this to -max-age, so a pool does not retire at once")
	fs.IntVar(&f.maxJobs, "max-jobs", 0, "retire after this many jobs, counted across brokers (0: never)")
	fs.DurationVar(&f.timeLimit, "time-limit", 0, "abandon a job still running after this, answering a worker error (0: none)")
	fs.BoolVar(&f.exitOnBrokerLoss, "exit-on-broker-loss", false, "exit with status 3 when the broker goes away (with several -backend: every one at once) instead of waiting for it")
}

// spec resolves -handler with -rounds and -sleep.
func (f *workerFlags) spec() (handlers.Spec, error) {
	s, err := handlers.Parse(f.handler)
	if err != nil {
		return handlers.Spec{}, err
	}
	_, _, hasArg := strings.Cut(f.handler, ":")
	if f.rounds != 0 {
		if s.Name != "sha256" || hasArg {
			return handlers.Spec{}, fmt.Errorf("-rounds applies to -handler sha256 without :ROUNDS (got %q)", f.handler)
		}
		if f.rounds < 1 {
			return handlers.Spec{}, fmt.Errorf("-rounds %d: want a positive number", f.rounds)
		}
		s.Rounds = f.rounds
	}
	if f.sleep != 0 {
		if s.Name != "sleep" || hasArg {
			return handlers.Spec{}, fmt.Errorf("-sleep applies to -handler sleep without :DURATION (got %q)", f.handler)
		}
		if f.sleep < 0 {
			return handlers.Spec{}, fmt.Errorf("-sleep %v: want a positive duration", f.sleep)
		}
		s.Sleep = f.sleep
	}
	return s, nil
}

func (f *workerFlags) config(backend string, drain time.Duration, log *slog.Logger) worker.Config {
	cfg := worker.Config{
		Backend:          backend,
		Services:         f.services,
		Concurrency:      f.concurrency,
		Prefetch:         f.prefetch,
		TimeLimit:        f.timeLimit,
		MaxAge:           f.maxAge,
		MaxAgeDelta:      f.maxAgeDelta,
		MaxJobs:          f.maxJobs,
		DrainTimeout:     drain,
		ExitOnBrokerLoss: f.exitOnBrokerLoss,
		Logger:           log,
	}
	if len(f.params) > 0 {
		cfg.Params = make(map[string]string, len(f.params))
		for _, p := range f.params {
			cfg.Params[p.key] = p.value
		}
	}
	return cfg
}

// args returns the flags that give a `hose worker` child the same settings.
func (f *workerFlags) args() []string {
	a := []string{"-handler", f.handler}
	add := func(name string, set bool, value string) {
		if set {
			a = append(a, "-"+name, value)
		}
	}
	add("rounds", f.rounds != 0, strconv.Itoa(f.rounds))
	add("sleep", f.sleep != 0, f.sleep.String())
	add("concurrency", f.concurrency != 0, strconv.Itoa(f.concurrency))
	add("prefetch", f.prefetch != 0, strconv.Itoa(f.prefetch))
	for _, s := range f.services {
		a = append(a, "-service", s)
	}
	for _, p := range f.params {
		a = append(a, "-param", p.key+"="+p.value)
	}
	add("max-age", f.maxAge != 0, f.maxAge.String())
	add("max-age-delta", f.maxAgeDelta != 0, f.maxAgeDelta.String())
	add("max-jobs", f.maxJobs != 0, strconv.Itoa(f.maxJobs))
	add("time-limit", f.timeLimit != 0, f.timeLimit.String())
	if f.exitOnBrokerLoss {
		a = append(a, "-exit-on-broker-loss")
	}
	return a
}

// backendList is -backend: endpoints separated by commas, the flag
// repeatable. The first value given replaces the default.
type backendList struct {
	eps []string
	set bool
}

func (l *backendList) String() string { return strings.Join(l.eps, ",") }

func (l *backendList) Set(v string) error {
	if !l.set {
		l.eps, l.set = nil, true
	}
	for _, ep := range strings.Split(v, ",") {
		ep = strings.TrimSpace(ep)
		if ep == "" {
			return fmt.Errorf("%q: empty endpoint in the list", v)
		}
		l.eps = append(l.eps, ep)
	}
	return nil
}

type workerCmd struct {
	log          logFlags
	worker       workerFlags
	curve        curvekey.PeerFlags
	backends     backendList
	hwm          int
	drainTimeout time.Duration
}

func (c *workerCmd) register(fs *flag.FlagSet) {
	c.backends = backendList{eps: []string{worker.DefaultBackend}}
	fs.Var(&c.backends, "backend", "the broker's backend `ENDPOINT`; several brokers: a comma-separated list, or repeat the flag")
	fs.IntVar(&c.hwm, "hwm", worker.DefaultHWM, "ZeroMQ send and receive high-water mark of each broker connection, in `MESSAGES` (at least concurrency + prefetch + 16)")
	c.worker.register(fs)
	c.curve.Register(fs)
	fs.DurationVar(&c.drainTimeout, "drain-timeout", 30*time.Second, "on SIGINT/SIGTERM or retirement, how long held jobs get to finish")
	c.log.register(fs)
}

func (c *workerCmd) run(ctx context.Context, e *env, args []string) int {
	if len(args) > 0 {
		return usageError(e, "worker", "unexpected argument %q", args[0])
	}
	log, err := c.log.logger(e.stderr)
	if err != nil {
		return usageError(e, "worker", "%v", err)
	}
	spec, err := c.worker.spec()
	if err != nil {
		return usageError(e, "worker", "%v", err)
	}
	log = log.With("pid", os.Getpid())
	cfg := c.worker.config(c.backends.eps[0], c.drainTimeout, log)
	cfg.Backends = c.backends.eps
	cfg.HWM = c.hwm
	if cfg.CurveServerKey, cfg.CurvePublicKey, cfg.CurveSecretKey, err = c.curve.Keys(); err != nil {
		return usageError(e, "worker", "%v", err)
	}
	w, err := worker.New(cfg, spec.Handler())
	if err != nil {
		return usageError(e, "worker", "%v", err)
	}
	log.Info("worker starting", "handler", spec.String(), "backend", c.backends.String())
	err = w.Run(ctx)
	switch {
	case err == nil:
		return exitOK
	case errors.Is(err, worker.ErrRetired):
		log.Info("worker retired")
		return exitOK
	case errors.Is(err, worker.ErrBrokerLost):
		fmt.Fprintf(e.stderr, "hose worker: %v\n", err)
		return exitBrokerLost
	}
	fmt.Fprintf(e.stderr, "hose worker: %v\n", err)
	return exitError
}
