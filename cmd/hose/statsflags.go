package main

import (
	"log/slog"
	"net"
	"strings"
)

// Default stats and control endpoints of hose broker and hose cluster.
const (
	defaultStatsEndpoint   = "tcp://127.0.0.1:5557"
	defaultControlEndpoint = "tcp://127.0.0.1:5558"
)

// endpointFlag is an endpoint flag that knows whether it was given: a
// default endpoint that is taken (a second broker on the machine) is
// skipped with a warning, a chosen one that is taken is an error.
type endpointFlag struct {
	ep  string
	set bool
}

func (f *endpointFlag) String() string { return f.ep }

func (f *endpointFlag) Set(v string) error {
	f.ep, f.set = v, true
	return nil
}

// use returns the endpoint to bind: "" when off, or when it is the default
// and already in use (what is lost is logged).
func (f *endpointFlag) use(log *slog.Logger, what, flagName string) string {
	if f.ep == "" || f.set || !tcpInUse(f.ep) {
		return f.ep
	}
	log.Warn(what+" endpoint already in use (another broker on this machine?): running without it; choose one with "+flagName,
		"endpoint", f.ep)
	return ""
}

// tcpInUse reports whether a tcp:// endpoint's address cannot be bound.
func tcpInUse(ep string) bool {
	addr, ok := strings.CutPrefix(ep, "tcp://")
	if !ok || strings.HasSuffix(addr, ":*") || strings.HasSuffix(addr, ":0") {
		return false
	}
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return true
	}
	ln.Close()
	return false
}
