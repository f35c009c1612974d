package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"time"

	"github.com/hose-project/hose/client"
	"github.com/hose-project/hose/internal/curvekey"
)

const execUsage = `Usage: hose exec [flags] [DATA]

Sends one job to a broker and writes the worker's result, unchanged, to
stdout. The job's payload is DATA, or stdin when DATA is absent or "-".
On failure the error goes to stderr and the exit code tells its kind.

Exit codes:
  0   the result is on stdout
  1   other error (interrupted, malformed request, version mismatch)
  2   usage error
  3   timeout: no answer within -timeout
  4   no worker serves the service
  5   worker error: the handler failed; its message is on stderr
  6   broker unreachable, or it went away with the job
  7   busy: the service's queue in the broker is full
  8   worker lost mid-job
  9   unknown service: the broker does not route it
  10  payload too large
  11  the broker is shutting down
`

type execCmd struct {
	log            logFlags
	frontend       string
	service        string
	timeout        time.Duration
	connectTimeout time.Duration
	headers        kvList
	idempotent     bool
	maxPayload     byteSize
	curve          curvekey.PeerFlags
}

func (c *execCmd) register(fs *flag.FlagSet) {
	d := client.DefaultConfig()
	fs.StringVar(&c.frontend, "frontend", client.DefaultEndpoint, "the broker's frontend `ENDPOINT`")
	fs.StringVar(&c.service, "service", "", "the service `NAME` to send the job to (default: default)")
	fs.DurationVar(&c.timeout, "timeout", d.DefaultTimeout, "how long to wait for the result")
	fs.DurationVar(&c.connectTimeout, "connect-timeout", d.ConnectTimeout, "how long to wait for a broker connection")
	fs.Var(&c.headers, "header", "a `KEY=VALUE` job header, repeatable")
	fs.BoolVar(&c.idempotent, "idempotent", false, "let the broker run the job again elsewhere if its worker is lost")
	c.maxPayload = byteSize(d.MaxPayload)
	fs.Var(&c.maxPayload, "max-payload", "largest payload to send: a `SIZE` in bytes or with KiB, MiB or GiB")
	c.curve.Register(fs)
	c.log.register(fs)
}

func (c *execCmd) run(ctx context.Context, e *env, args []string) int {
	if len(args) > 1 {
		return usageError(e, "exec", "want at most one DATA argument, got %d (quote it)", len(args))
	}
	log, err := c.log.logger(e.stderr)
	if err != nil {
		return usageError(e, "exec", "%v", err)
	}
	if c.timeout <= 0 {
		return usageError(e, "exec", "-timeout %v: want a positive duration", c.timeout)
	}
	var payload []byte
	if len(args) == 1 && args[0] != "-" {
		payload = []byte(args[0])
	} else {
		payload, err = io.ReadAll(io.LimitReader(e.stdin, int64(c.maxPayload)+1))
		if err != nil {
			fmt.Fprintf(e.stderr, "hose exec: reading stdin: %v\n", err)
			return exitError
		}
	}
	server, pub, sec, err := c.curve.Keys()
	if err != nil {
		return usageError(e, "exec", "%v", err)
	}
	cl, err := client.New(client.Config{
		CurveServerKey: server, CurvePublicKey: pub, CurveSecretKey: sec,
		Endpoints:      []string{c.frontend},
		DefaultTimeout: c.timeout,
		ConnectTimeout: c.connectTimeout,
		MaxPayload:     int(c.maxPayload),
		Logger:         log,
	})
	if err != nil {
		return usageError(e, "exec", "%v", err)
	}
	defer cl.Close()

	opts := []client.CallOption{client.WithTimeout(c.timeout)}
	if c.service != "" {
		opts = append(opts, client.WithService(c.service))
	}
	for _, h := range c.headers {
		opts = append(opts, client.WithHeader(h.key, h.value))
	}
	if c.idempotent {
		opts = append(opts, client.Idempotent())
	}
	ctx, cancel := context.WithTimeout(ctx, c.timeout)
	defer cancel()
	res, err := cl.Execute(ctx, payload, opts...)
	if err != nil {
		fmt.Fprintln(e.stderr, err)
		return execExitCode(err)
	}
	if _, err := e.stdout.Write(res); err != nil {
		fmt.Fprintf(e.stderr, "hose exec: writing the result: %v\n", err)
		return exitError
	}
	return exitOK
}

// execExitCode maps an Execute error to hose exec's exit code.
func execExitCode(err error) int {
	for _, m := range []struct {
		err  error
		code int
	}{
		{client.ErrTimeout, exitTimeout},
		{client.ErrNoWorker, exitNoWorker},
		{client.ErrWorker, exitWorkerError},
		{client.ErrBrokerGone, exitUnreachable},
		{client.ErrBusy, exitBusy},
		{client.ErrWorkerLost, exitWorkerLost},
		{client.ErrUnknownService, exitUnknownService},
		{client.ErrTooLarge, exitTooLarge},
		{client.ErrShuttingDown, exitShuttingDown},
	} {
		if errors.Is(err, m.err) {
			return m.code
		}
	}
	return exitError
}
