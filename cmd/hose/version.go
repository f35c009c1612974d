package main

import (
	"context"
	"flag"
	"fmt"
	"runtime"
	"runtime/debug"

	"github.com/hose-project/hose/protocol"
)

const versionUsage = `Usage: hose version

Prints hose's version, the protocol it speaks, and the Go toolchain and
platform it was built with.

Exit codes:
  0  always
  2  usage error
`

type versionCmd struct {
	log logFlags
}

func (c *versionCmd) register(fs *flag.FlagSet) { c.log.register(fs) }

func (c *versionCmd) run(_ context.Context, e *env, args []string) int {
	if len(args) > 0 {
		return usageError(e, "version", "unexpected argument %q", args[0])
	}
	rev := ""
	if bi, ok := debug.ReadBuildInfo(); ok {
		for _, s := range bi.Settings {
			if s.Key == "vcs.revision" && len(s.Value) >= 12 {
				rev = " " + s.Value[:12]
			}
		}
	}
	fmt.Fprintf(e.stdout, "hose %s%s (protocol %s/%s, %s, %s/%s)\n", protocol.Version, rev,
		protocol.ClientTag, protocol.WorkerTag, runtime.Version(), runtime.GOOS, runtime.GOARCH)
	return exitOK
}
