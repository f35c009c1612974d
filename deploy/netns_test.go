package deploy

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync/atomic"
	"syscall"
	"testing"
	"time"
)

// nsPrefix starts the name of every network namespace the tests create:
// "hmh-PID-N-", so that parallel runs and packages never collide and a
// later run can tell a dead run's leftovers by their PID.
const nsPrefix = "hmh-"

// subnet is the lab's private IPv4 /24. It exists only inside the lab's
// namespaces (the bridge has its own namespace too), so it cannot clash
// with the machine's networks or another run's lab.
const subnet = "10.231.7."

var labSeq atomic.Int32

// host is one machine of a lab: a network namespace with an address on
// the lab's bridge and its own directory standing in for /etc/hose.
type host struct {
	name string // n1, n2, ...
	ns   string // the network namespace
	addr string // its IPv4 address on the bridge
	etc  string // stands for /etc/hose on this host
}

// lab is a set of hosts joined by a bridge, each in its own network
// namespace.
type lab struct {
	hosts []*host
}

// needNetns skips the test unless it can create network namespaces: root
// and ip(8). In CI (CI set) a missing capability fails instead.
func needNetns(t testing.TB) {
	t.Helper()
	why := ""
	if os.Geteuid() != 0 {
		why = "needs root to create network namespaces"
	} else if _, err := exec.LookPath("ip"); err != nil {
		why = "needs ip(8) from iproute2 (scripts/deps.sh installs it)"
	}
	if why == "" {
		return
	}
	if os.Getenv("CI") != "" {
		t.Fatalf("%s (CI is set, so this is a failure)", why)
	}
	t.Skip(why)
}

// ipCmd runs ip(8) with args and fails the test on an error.
func ipCmd(t testing.TB, args ...string) {
	t.Helper()
	out, err := exec.Command("ip", args...).CombinedOutput()
	if err != nil {
		t.Fatalf("ip %s: %v\n%s", strings.Join(args, " "), err, out)
	}
}

// newLab creates n hosts, n1..nN at subnet.1 .. subnet.N, each in a fresh
// network namespace with loopback up and an eth0 on a bridge that lives in
// a namespace of its own. Everything is deleted when the test ends.
func newLab(t testing.TB, n int) *lab {
	t.Helper()
	needNetns(t)
	removeStale(t)
	prefix := fmt.Sprintf("%s%d-%d-", nsPrefix, os.Getpid(), labSeq.Add(1))
	addNS := func(name string) {
		ipCmd(t, "netns", "add", name)
		t.Cleanup(func() {
			if out, err := exec.Command("ip", "netns", "del", name).CombinedOutput(); err != nil {
				t.Errorf("ip netns del %s: %v\n%s", name, err, out)
			}
		})
	}
	br := prefix + "br"
	addNS(br)
	ipCmd(t, "-n", br, "link", "add", "br0", "type", "bridge")
	ipCmd(t, "-n", br, "link", "set", "br0", "up")
	l := &lab{}
	root := t.TempDir()
	for i := 1; i <= n; i++ {
		h := &host{
			name: fmt.Sprintf("n%d", i),
			ns:   fmt.Sprintf("%sn%d", prefix, i),
			addr: subnet + strconv.Itoa(i),
		}
		h.etc = filepath.Join(root, h.name, "etc", "hose")
		if err := os.MkdirAll(filepath.Join(h.etc, "keys"), 0o750); err != nil {
			t.Fatal(err)
		}
		addNS(h.ns)
		port := fmt.Sprintf("v%d", i)
		// The pair is made in the bridge's namespace with one end moved
		// straight into the host's, so nothing appears in the root
		// namespace, even for a moment.
		ipCmd(t, "-n", br, "link", "add", port, "type", "veth", "peer", "name", "eth0", "netns", h.ns)
		ipCmd(t, "-n", br, "link", "set", port, "master", "br0", "up")
		ipCmd(t, "-n", h.ns, "link", "set", "lo", "up")
		ipCmd(t, "-n", h.ns, "addr", "add", h.addr+"/24", "dev", "eth0")
		ipCmd(t, "-n", h.ns, "link", "set", "eth0", "up")
		l.hosts = append(l.hosts, h)
	}
	return l
}

// removeStale deletes namespaces left by runs that died before their
// cleanup: those named with nsPrefix whose PID is no longer running.
// Namespaces of live runs are left alone.
func removeStale(t testing.TB) {
	t.Helper()
	out, err := exec.Command("ip", "netns", "list").Output()
	if err != nil {
		t.Fatalf("ip netns list: %v", err)
	}
	for _, line := range strings.Split(string(out), "\n") {
		name, _, _ := strings.Cut(strings.TrimSpace(line), " ")
		rest, ok := strings.CutPrefix(name, nsPrefix)
		if !ok {
			continue
		}
		pidText, _, _ := strings.Cut(rest, "-")
		pid, err := strconv.Atoi(pidText)
		if err != nil || pid <= 0 || pid == os.Getpid() {
			continue
		}
		if err := syscall.Kill(pid, 0); !errors.Is(err, syscall.ESRCH) {
			continue
		}
		if out, err := exec.Command("ip", "netns", "del", name).CombinedOutput(); err != nil {
			t.Logf("removing stale namespace %s: %v\n%s", name, err, out)
		} else {
			t.Logf("removed stale namespace %s", name)
		}
	}
}

// argv returns the command line that runs argv in h's namespace. ip netns
// exec execs the command in place, so the process's PID is the command's.
func (h *host) argv(argv ...string) []string {
	return append([]string{"ip", "netns", "exec", h.ns}, argv...)
}

// run runs argv in h's namespace and returns its output and exit code,
// failing the test if it runs longer than limit.
func (h *host) run(t testing.TB, limit time.Duration, argv ...string) (stdout, stderr string, code int) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), limit)
	defer cancel()
	full := h.argv(argv...)
	cmd := exec.CommandContext(ctx, full[0], full[1:]...)
	var out, errb bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errb
	err := cmd.Run()
	if ctx.Err() != nil {
		t.Fatalf("%s: %s still running after %v", h.name, strings.Join(argv, " "), limit)
	}
	var ee *exec.ExitError
	if err != nil && !errors.As(err, &ee) {
		t.Fatalf("%s: %s: %v", h.name, strings.Join(argv, " "), err)
	}
	return out.String(), errb.String(), cmd.ProcessState.ExitCode()
}

// inNamespace reports whether process pid runs in h's network namespace.
func (h *host) inNamespace(pid int) (bool, error) {
	link, err := os.Readlink(fmt.Sprintf("/proc/%d/ns/net", pid))
	if err != nil {
		return false, err
	}
	var st syscall.Stat_t
	if err := syscall.Stat(filepath.Join("/run/netns", h.ns), &st); err != nil {
		return false, err
	}
	return link == fmt.Sprintf("net:[%d]", st.Ino), nil
}
