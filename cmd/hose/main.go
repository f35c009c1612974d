// Command hose runs the parts of a hose job broker: a broker, workers, a
// supervised local cluster, and one-shot jobs and health checks from the
// shell. Run `hose help` for the subcommands.
//
// The command is thin: each subcommand parses its flags into a library
// Config, calls the library, and maps its errors to exit codes.
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
)

// env is what a subcommand may touch of the outside world.
type env struct {
	stdin  io.Reader
	stdout io.Writer
	stderr io.Writer
}

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	go func() {
		// The first signal starts a graceful stop; a second one gets the
		// default action and ends the process at once.
		<-ctx.Done()
		stop()
	}()
	code := run(ctx, os.Args[1:], &env{stdin: os.Stdin, stdout: os.Stdout, stderr: os.Stderr})
	stop()
	os.Exit(code)
}

// subcommand is one `hose NAME`: it registers its flags on a FlagSet, then
// runs with the arguments left after the flags.
type subcommand interface {
	register(fs *flag.FlagSet)
	run(ctx context.Context, e *env, args []string) int
}

type command struct {
	name    string
	summary string // one line for `hose help`
	usage   string // synopsis, description and exit codes, above the flags
	new     func() subcommand
}

func commands() []command {
	return []command{
		{"broker", "run a broker", brokerUsage, func() subcommand { return &brokerCmd{} }},
		{"worker", "run a worker with a built-in handler", workerUsage, func() subcommand { return &workerCmd{} }},
		{"cluster", "run a broker and N supervised worker processes", clusterUsage, func() subcommand { return &clusterCmd{} }},
		{"exec", "send one job and print its result", execUsage, func() subcommand { return &execCmd{} }},
		{"ping", "check a broker's health", pingUsage, func() subcommand { return &pingCmd{} }},
		{"keygen", "make a CURVE key pair", keygenUsage, func() subcommand { return &keygenCmd{} }},
		{"version", "print the version", versionUsage, func() subcommand { return &versionCmd{} }},
	}
}

func findCommand(name string) (command, bool) {
	for _, c := range commands() {
		if c.name == name {
			return c, true
		}
	}
	return command{}, false
}

// run dispatches to a subcommand and returns the process exit code.
func run(ctx context.Context, args []string, e *env) int {
	if len(args) == 0 {
		printHelp(e.stderr)
		return exitUsage
	}
	name := args[0]
	switch name {
	case "help", "-h", "-help", "--help":
		if len(args) > 1 && name == "help" {
			c, ok := findCommand(args[1])
			if !ok {
				fmt.Fprintf(e.stderr, "hose: unknown command %q\n", args[1])
				return exitUsage
			}
			fs, _ := newFlagSet(c)
			printUsage(e.stdout, c, fs)
			return exitOK
		}
		printHelp(e.stdout)
		return exitOK
	case "-version", "--version":
		name = "version"
	}
	c, ok := findCommand(name)
	if !ok {
		fmt.Fprintf(e.stderr, "hose: unknown command %q\n\n", name)
		printHelp(e.stderr)
		return exitUsage
	}
	fs, sub := newFlagSet(c)
	fs.SetOutput(e.stderr)
	if err := fs.Parse(args[1:]); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			printUsage(e.stdout, c, fs)
			return exitOK
		}
		// flag has printed the error; show how to call it right.
		fmt.Fprintln(e.stderr)
		printUsage(e.stderr, c, fs)
		return exitUsage
	}
	return sub.run(ctx, e, fs.Args())
}

func newFlagSet(c command) (*flag.FlagSet, subcommand) {
	fs := flag.NewFlagSet("hose "+c.name, flag.ContinueOnError)
	fs.Usage = func() {} // run prints the usage itself, to the right stream
	sub := c.new()
	sub.register(fs)
	return fs, sub
}

func printHelp(w io.Writer) {
	fmt.Fprint(w, "hose runs and talks to a hose job broker.\n\nUsage:\n  hose COMMAND [flags] [args]\n\nCommands:\n")
	for _, c := range commands() {
		fmt.Fprintf(w, "  %-8s %s\n", c.name, c.summary)
	}
	fmt.Fprint(w, "  help     print this help, or a command's: hose help COMMAND\n\n"+
		"Every command takes -log-level debug|info|warn|error and -log-format text|json;\n"+
		"logs go to stderr. Run 'hose COMMAND -h' for a command's flags and exit codes.\n")
}

func printUsage(w io.Writer, c command, fs *flag.FlagSet) {
	fmt.Fprint(w, c.usage)
	fmt.Fprint(w, "\nFlags:\n")
	out := fs.Output()
	fs.SetOutput(w)
	fs.PrintDefaults()
	fs.SetOutput(out)
}

// usageError reports a bad invocation found after flag parsing.
func usageError(e *env, name, format string, a ...any) int {
	fmt.Fprintf(e.stderr, "hose %s: %s\nRun 'hose %s -h' for usage.\n", name, fmt.Sprintf(format, a...), name)
	return exitUsage
}
