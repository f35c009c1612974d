package main

import (
	"context"
	"flag"
	"fmt"
	"os"
	"os/exec"
	"time"

	"github.com/hose-project/hose/broker"
	"github.com/hose-project/hose/cluster"
)

const clusterUsage = `Usage: hose cluster -workers N -handler JOB [worker flags] [broker flags]

Runs a broker in this process and N worker processes (this same program run
as 'hose worker'), and keeps N running: a worker that exits is started
again, at once when it exited cleanly (it retired: -max-age, -max-jobs), or
after a delay that doubles with each failure in a row (-restart-min up to
-restart-max) when it crashed or was killed. Each restart is logged.
-service names the services the workers serve; this broker routes any.
SIGINT or SIGTERM sends SIGTERM to every worker, waits for them to finish
their jobs (-drain-timeout), then drains and stops the broker. A second
signal stops at once. Workers get SIGTERM if this process dies.

With -curve-secret the broker's sockets use CURVE (see hose broker). The
cluster then makes a key pair for its own workers at start: the public key
joins the backend's allow-list (with -worker-keys, if any) and the workers
read the secret key from a mode 0600 file in a private temporary directory,
removed when the cluster stops. Clients need -curve-server-key, and a key
listed in -client-keys if it is given.

Exit codes:
  0  stopped after a signal
  1  could not start (a broker already runs there, ...), or the broker died
  2  usage error
`

type clusterCmd struct {
	log          logFlags
	broker       brokerFlags
	worker       workerFlags
	workers      int
	restartMin   time.Duration
	restartMax   time.Duration
	drainTimeout time.Duration
	control      endpointFlag
	curve        brokerCurveFlags
}

func (c *clusterCmd) register(fs *flag.FlagSet) {
	d := cluster.DefaultSupervisorConfig()
	fs.IntVar(&c.workers, "workers", 2, "number of worker processes")
	c.worker.register(fs)
	c.broker.register(fs, false)
	c.curve.register(fs, true)
	fs.DurationVar(&c.restartMin, "restart-min", d.RestartMin, "delay before restarting a worker that failed the first time")
	fs.DurationVar(&c.restartMax, "restart-max", d.RestartMax, "longest delay before restarting a worker that keeps failing")
	fs.DurationVar(&c.drainTimeout, "drain-timeout", 10*time.Second, "on SIGINT/SIGTERM, how long workers, then the broker, get to finish their jobs")
	c.control = endpointFlag{ep: defaultControlEndpoint}
	fs.Var(&c.control, "control", "the control `ENDPOINT` through which hosetop reads and sets the worker count (\"\" for none)")
	c.log.register(fs)
}

func (c *clusterCmd) run(ctx context.Context, e *env, args []string) int {
	if len(args) > 0 {
		return usageError(e, "cluster", "unexpected argument %q", args[0])
	}
	log, err := c.log.logger(e.stderr)
	if err != nil {
		return usageError(e, "cluster", "%v", err)
	}
	if c.workers < 0 {
		return usageError(e, "cluster", "-workers %d: want 0 or more", c.workers)
	}
	if _, err := c.worker.spec(); err != nil {
		return usageError(e, "cluster", "%v", err)
	}
	bcfg := c.broker.config(log.With("component", "broker"))
	if err := c.curve.apply(&bcfg); err != nil {
		return usageError(e, "cluster", "%v", err)
	}
	if err := bcfg.Validate(); err != nil {
		return usageError(e, "cluster", "%v", err)
	}
	exe, err := os.Executable()
	if err != nil {
		fmt.Fprintf(e.stderr, "hose cluster: cannot find this program to start workers: %v\n", err)
		return exitError
	}
	keyArgs, removeKey, err := ownWorkerKey(&bcfg)
	if err != nil {
		fmt.Fprintf(e.stderr, "hose cluster: %v\n", err)
		return exitError
	}
	defer removeKey()
	b, err := broker.New(bcfg)
	if err != nil {
		fmt.Fprintf(e.stderr, "hose cluster: %v\n", err)
		return exitError
	}
	wargs := []string{"worker", "-backend", b.Backend(), "-drain-timeout", c.drainTimeout.String()}
	wargs = append(wargs, keyArgs...)
	wargs = append(wargs, c.log.args()...)
	wargs = append(wargs, c.worker.args()...)
	sup, err := cluster.NewSupervisor(cluster.SupervisorConfig{
		Count: c.workers,
		Command: func(int) *exec.Cmd {
			cmd := exec.Command(exe, wargs...)
			cmd.Stdout, cmd.Stderr = e.stderr, e.stderr
			cmd.SysProcAttr = childProcAttr()
			return cmd
		},
		RestartMin: c.restartMin,
		RestartMax: c.restartMax,
		Logger:     log.With("component", "supervisor"),
	})
	if err == nil {
		err = sup.Start()
	}
	if err != nil {
		b.Close()
		fmt.Fprintf(e.stderr, "hose cluster: %v\n", err)
		return exitError
	}
	ctlEP := c.control.use(log, "control", "-control")
	if ctlEP != "" {
		ctl, err := cluster.ServeControl(cluster.ControlConfig{Endpoint: ctlEP, Logger: log.With("component", "control")}, cluster.SupervisorScaler(sup))
		if err != nil {
			fmt.Fprintf(e.stderr, "hose cluster: %v\n", err)
			_ = sup.Stop(context.Background())
			b.Close()
			return exitError
		}
		defer ctl.Close()
	}
	log.Info("cluster running", "frontend", b.Frontend(), "backend", b.Backend(), "workers", c.workers,
		"stats", b.StatsEndpoint(), "control", ctlEP)

	code := exitOK
	select {
	case <-ctx.Done():
	case <-b.Done():
		fmt.Fprintln(e.stderr, "hose cluster: the broker stopped by itself")
		code = exitError
	}
	log.Info("stopping workers", "running", sup.Running(), "restarts", sup.Restarts())
	// Workers get the drain timeout for their jobs, plus a margin to say
	// goodbye, before they are killed.
	sctx, cancel := context.WithTimeout(context.Background(), c.drainTimeout+2*time.Second)
	defer cancel()
	if err := sup.Stop(sctx); err != nil {
		log.Warn("workers did not stop in time and were killed", "err", err)
	}
	shutdownBroker(b, c.drainTimeout, log)
	return code
}
