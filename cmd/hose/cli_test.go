package main

import (
	"bytes"
	"context"
	"errors"
	"flag"
	"fmt"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/hose-project/hose/client"
)

// runInProcess runs the command line in this process, for usage checks
// that need no network.
func runInProcess(args ...string) (stdout, stderr string, code int) {
	var out, errb bytes.Buffer
	code = run(context.Background(), args, &env{stdin: strings.NewReader(""), stdout: &out, stderr: &errb})
	return out.String(), errb.String(), code
}

func TestUsage(t *testing.T) {
	tests := []struct {
		name     string
		args     []string
		code     int
		inStdout string
		inStderr string
	}{
		{"help", []string{"help"}, exitOK, "Commands:", ""},
		{"no command", nil, exitUsage, "", "Commands:"},
		{"unknown command", []string{"frobnicate"}, exitUsage, "", `unknown command "frobnicate"`},
		{"help of a command", []string{"help", "exec"}, exitOK, "Exit codes:", ""},
		{"help of an unknown command", []string{"help", "nope"}, exitUsage, "", "unknown command"},
		{"broker -h", []string{"broker", "-h"}, exitOK, "-drain-timeout", ""},
		{"worker -h", []string{"worker", "-h"}, exitOK, "-max-age-delta", ""},
		{"cluster -h", []string{"cluster", "-h"}, exitOK, "-restart-max", ""},
		{"exec -h", []string{"exec", "-h"}, exitOK, "-idempotent", ""},
		{"ping -h", []string{"ping", "-h"}, exitOK, "-allow-no-workers", ""},
		{"version", []string{"version"}, exitOK, "hose 0.", ""},
		{"--version", []string{"--version"}, exitOK, "hose 0.", ""},
		{"bad flag", []string{"broker", "-nope"}, exitUsage, "", "flag provided but not defined: -nope"},
		{"bad log level", []string{"ping", "-log-level", "loud"}, exitUsage, "", "-log-level"},
		{"exec with two args", []string{"exec", "a", "b"}, exitUsage, "", "at most one DATA"},
		{"worker with an unknown handler", []string{"worker", "-handler", "nope"}, exitUsage, "", "unknown job"},
		{"worker -rounds on echo", []string{"worker", "-handler", "echo", "-rounds", "5"}, exitUsage, "", "-rounds applies"},
		{"broker with a bad endpoint", []string{"broker", "-frontend", "http://x"}, exitUsage, "", "want tcp://"},
		{"broker with a bad log format", []string{"broker", "-log-format", "xml"}, exitUsage, "", "-log-format"},
		{"cluster with negative workers", []string{"cluster", "-workers", "-1"}, exitUsage, "", "-workers -1"},
		{"ping with an argument", []string{"ping", "x"}, exitUsage, "", "unexpected argument"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			out, errs, code := runInProcess(tt.args...)
			if code != tt.code {
				t.Errorf("exit %d, want %d\nstdout: %s\nstderr: %s", code, tt.code, out, errs)
			}
			if !strings.Contains(out, tt.inStdout) {
				t.Errorf("stdout lacks %q:\n%s", tt.inStdout, out)
			}
			if !strings.Contains(errs, tt.inStderr) {
				t.Errorf("stderr lacks %q:\n%s", tt.inStderr, errs)
			}
		})
	}
}

func TestEveryCommandHasLogFlags(t *testing.T) {
	for _, c := range commands() {
		fs, _ := newFlagSet(c)
		for _, name := range []string{"log-level", "log-format"} {
			if fs.Lookup(name) == nil {
				t.Errorf("hose %s has no -%s", c.name, name)
			}
		}
		if !strings.Contains(c.usage, "Exit codes:") {
			t.Errorf("hose %s usage does not list its exit codes", c.name)
		}
	}
}

func TestByteSize(t *testing.T) {
	tests := []struct {
		in   string
		want int
		ok   bool
	}{
		{"1024", 1024, true},
		{"8MiB", 8 << 20, true},
		{"512KiB", 512 << 10, true},
		{"1G", 1 << 30, true},
		{"100B", 100, true},
		{"", 0, false},
		{"-1", 0, false},
		{"1.5MiB", 0, false},
		{"lots", 0, false},
	}
	for _, tt := range tests {
		var b byteSize
		err := b.Set(tt.in)
		if (err == nil) != tt.ok || (tt.ok && int(b) != tt.want) {
			t.Errorf("Set(%q) = %d, %v; want %d, ok %v", tt.in, int(b), err, tt.want, tt.ok)
		}
	}
	b := byteSize(8 << 20)
	if b.String() != "8MiB" {
		t.Errorf("String() = %q", b.String())
	}
}

func TestKVList(t *testing.T) {
	var l kvList
	for _, v := range []string{"a=1", "b=x=y", "c="} {
		if err := l.Set(v); err != nil {
			t.Fatal(err)
		}
	}
	want := kvList{{"a", "1"}, {"b", "x=y"}, {"c", ""}}
	if !reflect.DeepEqual(l, want) {
		t.Errorf("got %v, want %v", l, want)
	}
	for _, bad := range []string{"novalue", "=v"} {
		if err := l.Set(bad); err == nil {
			t.Errorf("Set(%q) accepted", bad)
		}
	}
}

func TestWorkerSpec(t *testing.T) {
	tests := []struct {
		handler string
		rounds  int
		sleep   time.Duration
		want    string
		ok      bool
	}{
		{"echo", 0, 0, "echo", true},
		{"sha256", 0, 0, "sha256:1000", true},
		{"sha256", 7, 0, "sha256:7", true},
		{"sha256:9", 0, 0, "sha256:9", true},
		{"sha256:9", 7, 0, "", false},
		{"sleep", 0, 20 * time.Millisecond, "sleep:20ms", true},
		{"sleep:1s", 0, 0, "sleep:1s", true},
		{"echo", 0, time.Second, "", false},
		{"fail:boom", 0, 0, "fail", true},
		{"nope", 0, 0, "", false},
	}
	for _, tt := range tests {
		f := workerFlags{handler: tt.handler, rounds: tt.rounds, sleep: tt.sleep}
		s, err := f.spec()
		if (err == nil) != tt.ok || (tt.ok && s.String() != tt.want) {
			t.Errorf("%+v: spec %v, %v; want %q, ok %v", tt, s, err, tt.want, tt.ok)
		}
	}
}

// The flags hose cluster passes to its workers parse back to the same
// settings.
func TestWorkerFlagsRoundTrip(t *testing.T) {
	fs := flag.NewFlagSet("a", flag.ContinueOnError)
	var in workerFlags
	in.register(fs)
	err := fs.Parse([]string{"-handler", "sleep", "-sleep", "15ms", "-concurrency", "4",
		"-service", "a", "-service", "b", "-param", "k=v", "-param", "x=1=2",
		"-max-age", "300ms", "-max-age-delta", "200ms", "-max-jobs", "50",
		"-time-limit", "2s", "-exit-on-broker-loss"})
	if err != nil {
		t.Fatal(err)
	}
	fs2 := flag.NewFlagSet("b", flag.ContinueOnError)
	var out workerFlags
	out.register(fs2)
	if err := fs2.Parse(in.args()); err != nil {
		t.Fatalf("parse %q: %v", in.args(), err)
	}
	if !reflect.DeepEqual(in, out) {
		t.Errorf("round trip changed the flags:\n in  %+v\n out %+v", in, out)
	}
	cfg := out.config("tcp://x:1", time.Second, nil)
	if cfg.Params["x"] != "1=2" || cfg.MaxJobs != 50 || len(cfg.Services) != 2 || !cfg.ExitOnBrokerLoss {
		t.Errorf("config: %+v", cfg)
	}
}

func TestExecExitCodes(t *testing.T) {
	tests := []struct {
		err  error
		code int
	}{
		{client.ErrTimeout, exitTimeout},
		{context.DeadlineExceeded, exitError},
		{client.ErrNoWorker, exitNoWorker},
		{&client.WorkerError{Message: "boom"}, exitWorkerError},
		{client.ErrBrokerGone, exitUnreachable},
		{client.ErrBusy, exitBusy},
		{client.ErrWorkerLost, exitWorkerLost},
		{client.ErrUnknownService, exitUnknownService},
		{client.ErrTooLarge, exitTooLarge},
		{client.ErrShuttingDown, exitShuttingDown},
		{fmt.Errorf("wrapped: %w", client.ErrNoWorker), exitNoWorker},
		{client.ErrBadRequest, exitError},
		{errors.New("something else"), exitError},
	}
	seen := map[int]error{}
	for _, tt := range tests {
		if got := execExitCode(tt.err); got != tt.code {
			t.Errorf("execExitCode(%v) = %d, want %d", tt.err, got, tt.code)
		}
		if tt.code != exitError {
			if prev, dup := seen[tt.code]; dup && !errors.Is(tt.err, prev) {
				t.Errorf("exit code %d used for both %v and %v", tt.code, prev, tt.err)
			}
			seen[tt.code] = tt.err
		}
	}
}
