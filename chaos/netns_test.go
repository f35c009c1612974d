//go:build chaos

package chaos

import (
	"fmt"
	"os"
	"os/exec"
	"strings"
	"testing"
)

// host is a network namespace joined to the root namespace by a veth pair:
// another machine, as far as TCP can tell. Taking the root end down is a
// partition (packets vanish, no connection is reset); bringing it up heals.
type host struct {
	t                testing.TB
	ns               string
	rootIf, nsIf     string
	rootAddr, nsAddr string
}

// newHost makes a namespace with its veth link, removed when the test
// ends. It skips the test where namespaces cannot be made.
func newHost(t testing.TB, n int) *host {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Skip(errNoNetns)
	}
	if _, err := exec.LookPath("ip"); err != nil {
		t.Skip(errNoNetns)
	}
	pid := os.Getpid()
	// 10.232.0.0/16 is this suite's; the third octet keeps parallel runs
	// (other PIDs) apart.
	sub := fmt.Sprintf("10.232.%d", (pid*7+n)%250+1)
	h := &host{
		t:        t,
		ns:       fmt.Sprintf("hch-%d-%d", pid, n),
		rootIf:   fmt.Sprintf("hchr%d%d", pid%100000, n),
		nsIf:     fmt.Sprintf("hchn%d%d", pid%100000, n),
		rootAddr: sub + ".1",
		nsAddr:   sub + ".2",
	}
	if out, err := exec.Command("ip", "netns", "add", h.ns).CombinedOutput(); err != nil {
		t.Skipf("%v: ip netns add: %v: %s", errNoNetns, err, out)
	}
	t.Cleanup(func() {
		_ = exec.Command("ip", "link", "del", h.rootIf).Run()
		_ = exec.Command("ip", "netns", "del", h.ns).Run()
	})
	h.ip("link", "add", h.rootIf, "type", "veth", "peer", "name", h.nsIf)
	h.ip("link", "set", h.nsIf, "netns", h.ns)
	h.ip("addr", "add", h.rootAddr+"/24", "dev", h.rootIf)
	h.ip("link", "set", h.rootIf, "up")
	h.ip("netns", "exec", h.ns, "ip", "link", "set", "lo", "up")
	h.ip("netns", "exec", h.ns, "ip", "addr", "add", h.nsAddr+"/24", "dev", h.nsIf)
	h.ip("netns", "exec", h.ns, "ip", "link", "set", h.nsIf, "up")
	return h
}

func (h *host) ip(args ...string) {
	h.t.Helper()
	if out, err := exec.Command("ip", args...).CombinedOutput(); err != nil {
		h.t.Fatalf("ip %s: %v: %s", strings.Join(args, " "), err, out)
	}
}

// partition cuts the host off; heal joins it again.
func (h *host) partition() { h.ip("link", "set", h.rootIf, "down") }
func (h *host) heal()      { h.ip("link", "set", h.rootIf, "up") }
