package main

import (
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"text/tabwriter"
	"time"

	"github.com/hose-project/hose/client"
	"github.com/hose-project/hose/internal/curvekey"
)

const pingUsage = `Usage: hose ping [flags]

Asks a broker for its health and prints its pid, host, version, uptime,
workers, queued and in-flight jobs and the round-trip time (-json for one
JSON object). Healthy means: it answered, it is not draining, and it has at
least one worker (unless -allow-no-workers).

Exit codes:
  0  healthy
  1  answered but unhealthy (draining, or no worker); the reason is on stderr
  2  usage error
  6  no answer within -timeout
`

type pingCmd struct {
	log            logFlags
	frontend       string
	timeout        time.Duration
	json           bool
	allowNoWorkers bool
	curve          curvekey.PeerFlags
}

func (c *pingCmd) register(fs *flag.FlagSet) {
	fs.StringVar(&c.frontend, "frontend", client.DefaultEndpoint, "the broker's frontend `ENDPOINT`")
	fs.DurationVar(&c.timeout, "timeout", 2*time.Second, "how long to wait for the answer")
	fs.BoolVar(&c.json, "json", false, "print one JSON object")
	fs.BoolVar(&c.allowNoWorkers, "allow-no-workers", false, "report a broker without workers as healthy")
	c.curve.Register(fs)
	c.log.register(fs)
}

// pingReport is what hose ping prints.
type pingReport struct {
	Endpoint  string  `json:"endpoint"`
	PID       int     `json:"pid"`
	Host      string  `json:"host"`
	Version   string  `json:"version"`
	Instance  string  `json:"instance"`
	UptimeSec float64 `json:"uptime_seconds"`
	Workers   int     `json:"workers"`
	Queued    int     `json:"queued"`
	InFlight  int     `json:"in_flight"`
	Draining  bool    `json:"draining"`
	RTTMicros int64   `json:"rtt_us"`
	Healthy   bool    `json:"healthy"`
	Problem   string  `json:"problem,omitempty"`
}

func (c *pingCmd) run(ctx context.Context, e *env, args []string) int {
	if len(args) > 0 {
		return usageError(e, "ping", "unexpected argument %q", args[0])
	}
	log, err := c.log.logger(e.stderr)
	if err != nil {
		return usageError(e, "ping", "%v", err)
	}
	if c.timeout <= 0 {
		return usageError(e, "ping", "-timeout %v: want a positive duration", c.timeout)
	}
	server, pub, sec, err := c.curve.Keys()
	if err != nil {
		return usageError(e, "ping", "%v", err)
	}
	cl, err := client.New(client.Config{Endpoints: []string{c.frontend}, ConnectTimeout: c.timeout, Logger: log,
		CurveServerKey: server, CurvePublicKey: pub, CurveSecretKey: sec})
	if err != nil {
		return usageError(e, "ping", "%v", err)
	}
	defer cl.Close()
	ctx, cancel := context.WithTimeout(ctx, c.timeout)
	defer cancel()
	info, err := pingRetry(ctx, cl)
	if err != nil {
		fmt.Fprintf(e.stderr, "hose ping: no answer from %s within %v: %v\n", c.frontend, c.timeout, err)
		return exitUnreachable
	}
	r := pingReport{
		Endpoint: info.Endpoint, PID: info.PID, Host: info.Host, Version: info.Version,
		Instance: fmt.Sprintf("%016x", info.Instance), UptimeSec: info.Uptime.Seconds(),
		Workers: info.Workers, Queued: info.Queued, InFlight: info.InFlight, Draining: info.Draining,
		RTTMicros: info.RTT.Microseconds(), Healthy: true,
	}
	switch {
	case info.Draining:
		r.Healthy, r.Problem = false, "the broker is draining"
	case info.Workers == 0 && !c.allowNoWorkers:
		r.Healthy, r.Problem = false, "the broker has no worker"
	}
	if c.json {
		enc := json.NewEncoder(e.stdout)
		if err := enc.Encode(r); err != nil {
			return exitError
		}
	} else {
		tw := tabwriter.NewWriter(e.stdout, 0, 0, 2, ' ', 0)
		fmt.Fprintf(tw, "endpoint\t%s\n", r.Endpoint)
		fmt.Fprintf(tw, "pid\t%d\n", r.PID)
		fmt.Fprintf(tw, "host\t%s\n", r.Host)
		fmt.Fprintf(tw, "version\t%s\n", r.Version)
		fmt.Fprintf(tw, "uptime\t%v\n", info.Uptime.Round(time.Millisecond))
		fmt.Fprintf(tw, "workers\t%d\n", r.Workers)
		fmt.Fprintf(tw, "queued\t%d\n", r.Queued)
		fmt.Fprintf(tw, "in-flight\t%d\n", r.InFlight)
		fmt.Fprintf(tw, "draining\t%t\n", r.Draining)
		fmt.Fprintf(tw, "rtt\t%v\n", info.RTT.Round(time.Microsecond))
		_ = tw.Flush()
	}
	if !r.Healthy {
		fmt.Fprintf(e.stderr, "hose ping: unhealthy: %s\n", r.Problem)
		return exitUnhealthy
	}
	return exitOK
}

// pingRetry pings until an answer comes or ctx ends. One Ping is not
// enough: the client sends its PING once, and a PING sent before the new
// connection is up is dropped, so a fresh client's first Ping waits out
// its whole timeout. Attempts wait 50ms, 100ms, 200ms, ... so a slow
// broker still gets time to answer.
func pingRetry(ctx context.Context, cl *client.Client) (client.BrokerInfo, error) {
	wait := 50 * time.Millisecond
	for {
		actx, cancel := context.WithTimeout(ctx, wait)
		info, err := cl.Ping(actx)
		cancel()
		if err == nil || ctx.Err() != nil {
			return info, err
		}
		wait *= 2
	}
}
