// Command hosetop watches a hose cluster live, the way htop watches a
// machine: throughput and latency over time, the workers, errors by kind.
// It reads the broker's stats stream (`hose broker -stats`), and can change
// the worker count of a `hose cluster` (through its -control endpoint) or of
// its own demo cluster (-demo), comparing the steady state of each count.
//
// The command is thin: flags into a tui.Config, then the bubbletea program.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"syscall"
	"time"

	tea "charm.land/bubbletea/v2"
	"charm.land/lipgloss/v2"

	"github.com/hose-project/hose/cluster"
	"github.com/hose-project/hose/internal/curvekey"
	"github.com/hose-project/hose/internal/demo"
	"github.com/hose-project/hose/tui"
)

const usage = `Usage: hosetop [flags]

Watches a hose broker through its stats stream: a header (broker, uptime,
jobs/s, queue, error rate, workers by state), throughput and latency
percentile charts, the worker table (sort, filter, detail), errors by kind,
and a comparison of worker counts. Press ? inside for the keys.

  hosetop                          the broker at the default stats endpoint
  hosetop -stats tcp://HOST:5557   another broker
  hosetop -demo -rate 800          a broker, workers and load in this process

Against 'hose cluster', hosetop changes the worker count through the
cluster's control endpoint (-control): + and - add and remove workers, and
the comparison panel (c) records the steady state of each count.

Exit codes: 0 quit, 1 could not start, 2 usage error.
`

const (
	exitOK    = 0
	exitError = 1
	exitUsage = 2
)

type options struct {
	stats     string
	control   string
	refresh   time.Duration
	settle    time.Duration
	exportDir string
	light     bool

	demo          bool
	handler       string
	rate          float64
	workers       int
	concurrency   int
	size          int
	statsInterval time.Duration
	curve         curvekey.PeerFlags
}

func (o *options) register(fs *flag.FlagSet) {
	fs.StringVar(&o.stats, "stats", "tcp://127.0.0.1:5557", "the broker's stats `ENDPOINT` (hose broker -stats); with -demo, where the demo publishes (default: a free port)")
	fs.StringVar(&o.control, "control", cluster.DefaultControlEndpoint, "a hose cluster's control `ENDPOINT`, to change its worker count (\"\" for none)")
	fs.DurationVar(&o.refresh, "refresh", time.Second, "how often the screen takes in new snapshots ([ and ] change it)")
	fs.DurationVar(&o.settle, "settle", 3*time.Second, "comparison: time after a worker-count change before measuring")
	fs.StringVar(&o.exportDir, "export-dir", ".", "where x writes the comparison (Markdown and JSON)")
	fs.BoolVar(&o.light, "light", false, "colours for a light terminal background (default: detected)")
	fs.BoolVar(&o.demo, "demo", false, "run a demo cluster in this process: a broker, -workers workers running -handler, and load at -rate")
	fs.StringVar(&o.handler, "handler", "sleep:10ms", "demo: the workers' built-in `JOB` (echo, sha256:ROUNDS, sleep:DURATION, fail)")
	fs.Float64Var(&o.rate, "rate", 500, "demo: requests per second (0: no load)")
	fs.IntVar(&o.workers, "workers", 2, "demo: initial worker count")
	fs.IntVar(&o.concurrency, "concurrency", 1, "demo: jobs each worker runs at once")
	fs.IntVar(&o.size, "size", 100, "demo: payload size in bytes")
	fs.DurationVar(&o.statsInterval, "stats-interval", time.Second, "demo: the broker's stats interval (100ms or more)")
	o.curve.Register(fs)
}

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	os.Exit(run(ctx, os.Args[1:], os.Stderr))
}

func run(ctx context.Context, args []string, stderr io.Writer) int {
	fs := flag.NewFlagSet("hosetop", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.Usage = func() {
		fmt.Fprint(stderr, usage, "\nFlags:\n")
		fs.PrintDefaults()
	}
	var o options
	o.register(fs)
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return exitOK
		}
		return exitUsage
	}
	if fs.NArg() > 0 {
		fmt.Fprintf(stderr, "hosetop: unexpected argument %q\n", fs.Arg(0))
		return exitUsage
	}
	if o.refresh <= 0 || o.settle < 0 {
		fmt.Fprintln(stderr, "hosetop: -refresh must be positive and -settle not negative")
		return exitUsage
	}

	cfg := tui.Config{Endpoint: o.stats, Refresh: o.refresh, Settle: o.settle, ExportDir: o.exportDir}
	if o.demo {
		// The demo's broker publishes on a free port, or on -stats when it
		// is given (for another reader: a second hosetop, a script).
		statsEP := ""
		fs.Visit(func(f *flag.Flag) {
			if f.Name == "stats" {
				statsEP = o.stats
			}
		})
		d, err := demo.Start(demo.Config{
			Job: o.handler, Workers: o.workers, Concurrency: o.concurrency, Rate: o.rate, Size: o.size,
			Stats: statsEP, StatsInterval: o.statsInterval,
		})
		if err != nil {
			fmt.Fprintf(stderr, "hosetop: %v\n", err)
			return exitError
		}
		defer d.Close()
		cfg.Endpoint = d.StatsEndpoint()
		cfg.Control, cfg.ControlName, cfg.Load = d, "demo", d.Describe()
	} else if o.control != "" {
		c, err := cluster.DialControl(o.control)
		if err != nil {
			fmt.Fprintf(stderr, "hosetop: %v\n", err)
			return exitUsage
		}
		defer c.Close()
		cfg.Control, cfg.ControlName = c, "hose cluster at "+o.control
	}

	server, pub, sec, err := o.curve.Keys()
	if err != nil {
		fmt.Fprintf(stderr, "hosetop: %v\n", err)
		return exitUsage
	}
	var srcOpts []tui.SourceOption
	if server != "" {
		srcOpts = append(srcOpts, tui.WithCurve(server, pub, sec))
	}
	src, err := tui.NewSource(cfg.Endpoint, nil, srcOpts...)
	if err != nil {
		fmt.Fprintf(stderr, "hosetop: %v\n", err)
		return exitUsage
	}
	defer src.Close()
	cfg.Next = src.Next
	dark := !o.light
	if !o.light {
		dark = lipgloss.HasDarkBackground(os.Stdin, os.Stdout)
	}
	st := tui.DefaultStyles(dark)
	cfg.Styles = &st

	p := tea.NewProgram(tui.New(cfg), tea.WithContext(ctx))
	if _, err := p.Run(); err != nil && !errors.Is(err, tea.ErrProgramKilled) && !errors.Is(err, tea.ErrInterrupted) && ctx.Err() == nil {
		fmt.Fprintf(stderr, "hosetop: %v\n", err)
		return exitError
	}
	return exitOK
}
