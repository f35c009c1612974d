package main

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/hose-project/hose/internal/testproc"
)

// TestCurveEndToEnd runs `hose keygen`, a CURVE broker with client and
// worker allow-lists, a listed worker, and `hose exec` as a listed client,
// an unlisted client and a plain client.
func TestCurveEndToEnd(t *testing.T) {
	dir := t.TempDir()
	for _, name := range []string{"broker", "w1", "c1", "stranger"} {
		if out, errs, code := runHose(t, 10*time.Second, "", "keygen", filepath.Join(dir, name)); code != 0 {
			t.Fatalf("keygen %s: %d %s %s", name, code, out, errs)
		}
	}
	st, err := os.Stat(filepath.Join(dir, "broker.key"))
	if err != nil || st.Mode().Perm() != 0o600 {
		t.Fatalf("secret key file mode: %v %v", st.Mode(), err)
	}
	if _, _, code := runHose(t, 10*time.Second, "", "keygen", filepath.Join(dir, "broker")); code != 1 {
		t.Fatalf("keygen over existing files exited %d, want 1", code)
	}
	clients := filepath.Join(dir, "clients")
	if err := os.Mkdir(clients, 0o755); err != nil {
		t.Fatal(err)
	}
	pub, _ := os.ReadFile(filepath.Join(dir, "c1.pub"))
	if err := os.WriteFile(filepath.Join(clients, "c1.pub"), pub, 0o644); err != nil {
		t.Fatal(err)
	}

	eps := freeTCP(t, 2)
	startHose(t, "broker", false, "broker", "-frontend", eps[0], "-backend", eps[1], "-stats", "",
		"-heartbeat", testHeartbeat, "-curve-secret", filepath.Join(dir, "broker.key"),
		"-client-keys", clients, "-worker-keys", filepath.Join(dir, "w1.pub"))
	startWorker(t, "worker", eps[1], "-curve-server-key", filepath.Join(dir, "broker.pub"), "-curve-key", filepath.Join(dir, "w1.key"))

	exec := func(extra ...string) (string, string, int) {
		args := append([]string{"exec", "-frontend", eps[0], "-timeout", "3s", "-connect-timeout", "500ms"}, extra...)
		return runHose(t, 20*time.Second, "", append(args, "secret payload")...)
	}
	serverKey := []string{"-curve-server-key", filepath.Join(dir, "broker.pub")}
	testproc.WaitFor(t, 10*time.Second, "the listed client's job", func() (bool, string) {
		out, errs, code := exec(append(serverKey, "-curve-key", filepath.Join(dir, "c1.key"))...)
		return code == 0 && out == "secret payload", errs
	})
	for name, extra := range map[string][]string{
		"unlisted client": append(serverKey, "-curve-key", filepath.Join(dir, "stranger.key")),
		"fresh key pair":  serverKey,
		"plain client":    nil,
	} {
		out, errs, code := exec(extra...)
		if code != 6 || out != "" {
			t.Errorf("%s: exit %d, stdout %q, stderr %q; want exit 6 and nothing", name, code, out, errs)
		}
		if name != "plain client" && !strings.Contains(errs, "refused the handshake") {
			t.Errorf("%s: stderr does not say the handshake was refused: %q", name, errs)
		}
	}
}
