// Command hosebench is hose's load generator: an open-loop constant-rate
// (or Poisson, or closed-loop) benchmark of a hose cluster, embedded or
// live, with coordinated-omission-free HDR percentiles, rate and worker
// sweeps, and the knee of an SLO. See README.md, section hosebench.
package main

import (
	"context"
	"os"
	"os/signal"
	"syscall"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	// After the first interrupt a second one kills at once.
	context.AfterFunc(ctx, stop)
	code := run(ctx, os.Args[1:], os.Stdout, os.Stderr)
	stop()
	os.Exit(code)
}
