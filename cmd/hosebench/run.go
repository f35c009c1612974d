package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"runtime/pprof"
	"strconv"
	"strings"
	"time"

	"github.com/hose-project/hose/handlers"
	"github.com/hose-project/hose/internal/curvekey"
	"github.com/hose-project/hose/loadgen"
)

// Exit codes.
const (
	exitOK          = 0
	exitError       = 1 // the benchmark could not run or its output not be written
	exitUsage       = 2
	exitSLOMissed   = 3 // -slo: some worker count has no rate meeting it
	exitInterrupted = 130
)

// options are the flags that are not part of loadgen.Config.
type options struct {
	jsonFile, hgrmFile, hlogFile string
	cpuProfile                   string
	quiet, verbose               bool
}

const usageText = `usage: hosebench [flags]

Drives a hose cluster at a fixed request rate and reports latency
percentiles measured from each request's due time. Without -broker it
starts an embedded cluster (an in-process broker and -workers workers).

  hosebench -rate 5000                      5000/s for 10s on 2 embedded echo workers
  hosebench -rate max -concurrency 128      closed-loop maximum throughput
  hosebench -rate 1000,5000,10000 -workers 1,2,4 -slo p99=2ms
                                            sweep; prints a table and the knee
  hosebench -broker tcp://10.0.0.5:5555 -rate 2000 -json out.json

Flags:
`

const exitText = `
Exit codes: 0 done; 1 the cluster could not be started or reached, or an
output file could not be written; 2 usage error; 3 -slo given and some
worker count has no rate meeting it; 130 interrupted (the partial report is
printed). See README.md, section hosebench.
`

// run is hosebench without the process around it: flags in, exit code out.
func run(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	cfg, opts, usage, err := parseFlags(args)
	if errors.Is(err, flag.ErrHelp) {
		usage(stdout)
		return exitOK
	}
	if err != nil {
		fmt.Fprintf(stderr, "hosebench: %v\n", err)
		usage(stderr)
		return exitUsage
	}
	if err := cfg.Validate(); err != nil {
		fmt.Fprintf(stderr, "hosebench: %v\n", err)
		return exitUsage
	}
	if opts.verbose {
		cfg.Logger = slog.New(slog.NewTextHandler(stderr, nil))
	}
	var hlog *os.File
	if opts.hlogFile != "" {
		if hlog, err = os.Create(opts.hlogFile); err != nil {
			fmt.Fprintf(stderr, "hosebench: %v\n", err)
			return exitError
		}
		defer hlog.Close()
		cfg.IntervalLog = hlog
	}
	if opts.cpuProfile != "" {
		f, err := os.Create(opts.cpuProfile)
		if err == nil {
			err = pprof.StartCPUProfile(f)
		}
		if err != nil {
			fmt.Fprintf(stderr, "hosebench: cpu profile: %v\n", err)
			return exitError
		}
		defer f.Close()
		defer pprof.StopCPUProfile()
	}
	progress := !opts.quiet && isTerminal(stderr)
	if progress {
		cfg.Progress = func(p loadgen.Progress) {
			fmt.Fprintf(stderr, "\r%s\x1b[K", loadgen.ProgressLine(p))
		}
	}

	rep, err := loadgen.Run(ctx, cfg)
	if progress {
		fmt.Fprint(stderr, "\r\x1b[K")
	}
	if err != nil {
		fmt.Fprintf(stderr, "hosebench: %v\n", err)
		return exitError
	}
	code := exitOK
	if err := loadgen.NewTextReporter(rep)(stdout); err != nil {
		fmt.Fprintf(stderr, "hosebench: %v\n", err)
		code = exitError
	}
	if err := writeFiles(rep, opts); err != nil {
		fmt.Fprintf(stderr, "hosebench: %v\n", err)
		code = exitError
	}
	if hlog != nil {
		if err := hlog.Close(); err != nil {
			fmt.Fprintf(stderr, "hosebench: %v\n", err)
			code = exitError
		}
	}
	switch {
	case rep.Interrupted:
		return exitInterrupted
	case code != exitOK:
		return code
	case !rep.SLOMet():
		return exitSLOMissed
	}
	return exitOK
}

// writeFiles writes the -json and -hgrm outputs.
func writeFiles(rep *loadgen.Report, opts options) error {
	var errs []error
	if opts.jsonFile != "" {
		errs = append(errs, writeFile(opts.jsonFile, loadgen.NewJSONReporter(rep)))
	}
	if opts.hgrmFile != "" {
		for _, r := range rep.Runs {
			name := opts.hgrmFile
			if len(rep.Runs) > 1 {
				name = runFileName(name, r)
			}
			errs = append(errs, writeFile(name, loadgen.NewHGRMReporter(r)))
		}
	}
	return errors.Join(errs...)
}

// runFileName names a sweep run's file: out.hgrm -> out-w2-r5000.hgrm.
func runFileName(name string, r *loadgen.Result) string {
	ext := filepath.Ext(name)
	rate := "max"
	if r.Mode == "open" {
		rate = strconv.FormatFloat(r.TargetRate, 'f', -1, 64)
	}
	return fmt.Sprintf("%s-w%d-r%s%s", strings.TrimSuffix(name, ext), r.Workers, rate, ext)
}

func writeFile(name string, rep loadgen.Reporter) error {
	f, err := os.Create(name)
	if err != nil {
		return err
	}
	if err := rep(f); err != nil {
		f.Close()
		return fmt.Errorf("%s: %w", name, err)
	}
	return f.Close()
}

// parseFlags parses the command line into a Config. usage prints the help.
func parseFlags(args []string) (cfg loadgen.Config, opts options, usage func(io.Writer), err error) {
	d := loadgen.DefaultConfig()
	var (
		rates, workers, job, broker, slo string
		curve                            curvekey.PeerFlags
		arrival                          string
		warmup                           time.Duration
	)
	cfg = d
	fs := flag.NewFlagSet("hosebench", flag.ContinueOnError)
	fs.SetOutput(io.Discard) // run prints parse errors and the usage
	fs.Usage = func() {}
	usage = func(w io.Writer) {
		fmt.Fprint(w, usageText)
		fs.SetOutput(w)
		fs.PrintDefaults()
		fmt.Fprint(w, exitText)
	}
	fs.StringVar(&rates, "rate", "1000", "target `rates` per second, comma-separated (one run each); 0 or max: closed loop with -concurrency callers")
	fs.DurationVar(&cfg.Duration, "duration", d.Duration, "measured length of each run")
	fs.DurationVar(&warmup, "warmup", d.Warmup, "unmeasured warmup before each run (0: none)")
	fs.StringVar(&arrival, "arrival", string(d.Arrival), "open-loop arrivals: constant or poisson")
	fs.Uint64Var(&cfg.Seed, "seed", 0, "seed of the poisson schedule (0: random)")
	fs.IntVar(&cfg.MaxInFlight, "max-inflight", d.MaxInFlight, "cap on requests awaiting an answer; past it sends wait, and slots still unsent at the end are reported as missed")
	fs.IntVar(&cfg.Concurrency, "concurrency", d.Concurrency, "closed-loop callers (with -rate max)")
	fs.DurationVar(&cfg.Timeout, "timeout", d.Timeout, "per-request timeout")
	fs.StringVar(&broker, "broker", "", "`endpoints` of a live broker's frontend, comma-separated (default: an embedded cluster)")
	curve.Register(fs)
	fs.StringVar(&cfg.Service, "service", "", "service to send jobs to (default: the default service)")
	fs.StringVar(&workers, "workers", "2", "embedded cluster: worker `counts`, comma-separated (one run each)")
	fs.IntVar(&cfg.WorkerConcurrency, "worker-concurrency", 0, "embedded cluster: jobs each worker runs at once (default GOMAXPROCS)")
	fs.StringVar(&job, "job", "echo", "job: echo, sha256:ROUNDS, sleep:DURATION or fail; the embedded workers run it; with -broker it only names the live workers' job (report, -compare-direct)")
	fs.IntVar(&cfg.Size, "size", d.Size, "payload size in `bytes`")
	fs.StringVar(&slo, "slo", "", "service level objective, e.g. p99=2ms or p50=1ms,p99.9=20ms; finds the knee of a sweep")
	fs.BoolVar(&cfg.CompareDirect, "compare-direct", false, "also run the job as a plain function call on all cores and report the throughput ratio")
	fs.StringVar(&opts.jsonFile, "json", "", "write the results as JSON to `file`")
	fs.StringVar(&opts.hgrmFile, "hgrm", "", "write the latency distribution in HdrHistogram .hgrm format to `file` (one file per run in a sweep)")
	fs.StringVar(&opts.hlogFile, "hlog", "", "write an HdrHistogram interval log to `file`")
	fs.DurationVar(&cfg.Interval, "interval", d.Interval, "period of the progress line and of -hlog intervals")
	fs.StringVar(&opts.cpuProfile, "cpuprofile", "", "write a Go CPU profile of hosebench to `file`")
	fs.BoolVar(&opts.quiet, "quiet", false, "no progress line")
	fs.BoolVar(&opts.verbose, "v", false, "log the embedded cluster's and the client's messages to stderr")
	if err = fs.Parse(args); err != nil {
		return cfg, opts, usage, err
	}
	if fs.NArg() > 0 {
		return cfg, opts, usage, fmt.Errorf("unexpected argument %q", fs.Arg(0))
	}
	set := map[string]bool{}
	fs.Visit(func(f *flag.Flag) { set[f.Name] = true })

	if cfg.Rates, err = parseRates(rates); err != nil {
		return cfg, opts, usage, err
	}
	cfg.Warmup = warmup
	if warmup == 0 {
		cfg.Warmup = -1 // none
	}
	cfg.Arrival = loadgen.Arrival(arrival)
	cfg.Job = handlers.Spec{}
	if broker == "" || set["job"] {
		if cfg.Job, err = handlers.Parse(job); err != nil {
			return cfg, opts, usage, err
		}
	}
	if broker != "" {
		cfg.Broker = splitList(broker)
		if set["workers"] || set["worker-concurrency"] {
			return cfg, opts, usage, errors.New("-workers and -worker-concurrency configure the embedded cluster; a live cluster (-broker) has the workers it was started with")
		}
		cfg.Workers = nil
		if cfg.CurveServerKey, cfg.CurvePublicKey, cfg.CurveSecretKey, err = curve.Keys(); err != nil {
			return cfg, opts, usage, err
		}
	} else if curve.Set() {
		return cfg, opts, usage, errors.New("-curve-server-key and -curve-key need -broker: the embedded cluster listens on loopback only")
	} else if cfg.Workers, err = parseInts(workers); err != nil {
		return cfg, opts, usage, fmt.Errorf("-workers: %w", err)
	}
	if cfg.Size == 0 {
		cfg.Size = -1 // an empty payload
	}
	if slo != "" {
		if cfg.SLO, err = loadgen.ParseSLO(slo); err != nil {
			return cfg, opts, usage, err
		}
	}
	return cfg, opts, usage, nil
}

// parseRates reads "1000", "1000,5k,10000", "max".
func parseRates(s string) ([]float64, error) {
	var out []float64
	for _, f := range splitList(s) {
		if f == "max" {
			out = append(out, 0)
			continue
		}
		mult := 1.0
		if rest, ok := strings.CutSuffix(strings.ToLower(f), "k"); ok {
			f, mult = rest, 1000
		}
		v, err := strconv.ParseFloat(f, 64)
		if err != nil || v < 0 {
			return nil, fmt.Errorf("-rate: %q is not a rate (want a number per second, 5k, or max)", f)
		}
		out = append(out, v*mult)
	}
	if len(out) == 0 {
		return nil, errors.New("-rate: empty")
	}
	return out, nil
}

func parseInts(s string) ([]int, error) {
	var out []int
	for _, f := range splitList(s) {
		v, err := strconv.Atoi(f)
		if err != nil || v < 1 {
			return nil, fmt.Errorf("%q is not a positive integer", f)
		}
		out = append(out, v)
	}
	if len(out) == 0 {
		return nil, errors.New("empty list")
	}
	return out, nil
}

func splitList(s string) []string {
	var out []string
	for _, f := range strings.Split(s, ",") {
		if f = strings.TrimSpace(f); f != "" {
			out = append(out, f)
		}
	}
	return out
}

// isTerminal reports whether w is a terminal.
func isTerminal(w io.Writer) bool {
	f, ok := w.(*os.File)
	if !ok {
		return false
	}
	fi, err := f.Stat()
	return err == nil && fi.Mode()&os.ModeCharDevice != 0
}
