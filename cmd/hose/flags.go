package main

import (
	"flag"
	"fmt"
	"io"
	"log/slog"
	"strconv"
	"strings"
)

// Exit codes. Codes 3 and up mean different things per command; each
// command's usage lists its own.
const (
	exitOK    = 0
	exitError = 1 // any failure without a code of its own
	exitUsage = 2 // bad flags or arguments

	// hose exec
	exitTimeout        = 3
	exitNoWorker       = 4
	exitWorkerError    = 5
	exitUnreachable    = 6 // also hose ping
	exitBusy           = 7
	exitWorkerLost     = 8
	exitUnknownService = 9
	exitTooLarge       = 10
	exitShuttingDown   = 11

	// hose ping
	exitUnhealthy = 1

	// hose worker
	exitBrokerLost = 3
)

// stringList is a repeatable flag collecting its values in order.
type stringList []string

func (l *stringList) String() string { return strings.Join(*l, ",") }

func (l *stringList) Set(v string) error {
	if v == "" {
		return fmt.Errorf("empty value")
	}
	*l = append(*l, v)
	return nil
}

// kv is one key=value pair.
type kv struct{ key, value string }

// kvList is a repeatable key=value flag, in the order given.
type kvList []kv

func (l *kvList) String() string {
	parts := make([]string, len(*l))
	for i, p := range *l {
		parts[i] = p.key + "=" + p.value
	}
	return strings.Join(parts, ",")
}

func (l *kvList) Set(v string) error {
	k, val, ok := strings.Cut(v, "=")
	if !ok || k == "" {
		return fmt.Errorf("%q: want key=value", v)
	}
	*l = append(*l, kv{k, val})
	return nil
}

// byteSize is a size flag: a number of bytes with an optional suffix
// KiB, MiB, GiB (or K, M, G, also powers of 1024).
type byteSize int

func (b *byteSize) String() string {
	n := int(*b)
	switch {
	case n != 0 && n%(1<<30) == 0:
		return strconv.Itoa(n>>30) + "GiB"
	case n != 0 && n%(1<<20) == 0:
		return strconv.Itoa(n>>20) + "MiB"
	case n != 0 && n%(1<<10) == 0:
		return strconv.Itoa(n>>10) + "KiB"
	}
	return strconv.Itoa(n)
}

func (b *byteSize) Set(v string) error {
	s := strings.TrimSpace(v)
	mult := 1
	for _, u := range []struct {
		suffix string
		mult   int
	}{{"KiB", 1 << 10}, {"MiB", 1 << 20}, {"GiB", 1 << 30}, {"K", 1 << 10}, {"M", 1 << 20}, {"G", 1 << 30}, {"B", 1}} {
		if rest, ok := strings.CutSuffix(s, u.suffix); ok {
			s, mult = strings.TrimSpace(rest), u.mult
			break
		}
	}
	n, err := strconv.Atoi(s)
	if err != nil || n < 0 || n > (1<<40)/mult {
		return fmt.Errorf("%q: want a size such as 1048576, 512KiB or 8MiB", v)
	}
	*b = byteSize(n * mult)
	return nil
}

// logFlags are the logging flags every subcommand takes.
type logFlags struct {
	level  string
	format string
}

func (l *logFlags) register(fs *flag.FlagSet) {
	fs.StringVar(&l.level, "log-level", "info", "log `LEVEL`: debug, info, warn or error")
	fs.StringVar(&l.format, "log-format", "text", "log `FORMAT`: text or json")
}

// logger returns the logger the flags describe, writing to w.
func (l *logFlags) logger(w io.Writer) (*slog.Logger, error) {
	var level slog.Level
	if err := level.UnmarshalText([]byte(l.level)); err != nil {
		return nil, fmt.Errorf("-log-level %q: want debug, info, warn or error", l.level)
	}
	opts := &slog.HandlerOptions{Level: level}
	switch l.format {
	case "text":
		return slog.New(slog.NewTextHandler(w, opts)), nil
	case "json":
		return slog.New(slog.NewJSONHandler(w, opts)), nil
	}
	return nil, fmt.Errorf("-log-format %q: want text or json", l.format)
}

// args returns the flags that give a child process the same logging.
func (l *logFlags) args() []string {
	return []string{"-log-level", l.level, "-log-format", l.format}
}
