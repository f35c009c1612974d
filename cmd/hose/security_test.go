package main

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	zmq "github.com/pebbe/zmq4"

	"github.com/hose-project/hose/internal/testproc"
)

// TestHWMFlag checks -hwm on the commands that run a broker: it is
// listed, and a negative mark is a usage error.
func TestHWMFlag(t *testing.T) {
	for _, cmd := range []string{"broker", "cluster"} {
		t.Run(cmd, func(t *testing.T) {
			if out, _, code := runInProcess(cmd, "-h"); code != exitOK || !strings.Contains(out, "-hwm") {
				t.Errorf("hose %s -h: exit %d, -hwm not listed:\n%s", cmd, code, out)
			}
			_, errs, code := runInProcess(cmd, "-hwm", "-1")
			if code != exitUsage || !strings.Contains(errs, "high-water mark -1") {
				t.Errorf("hose %s -hwm -1: exit %d, stderr %q; want a usage error", cmd, code, errs)
			}
		})
	}
}

// writeKeys writes NAME.key (0600) and NAME.pub in dir for a fresh CURVE
// key pair, as hose keygen does, and returns the public key.
func writeKeys(t *testing.T, dir, name string) string {
	t.Helper()
	pub, sec, err := zmq.NewCurveKeypair()
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, name+".key"), []byte(sec+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, name+".pub"), []byte(pub+"\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	return pub
}

// TestClusterCurve runs `hose cluster` with -curve-secret and a client
// allow-list: its own workers register (with a key the cluster made, read
// from a private file, not from their command line), a listed client's
// `hose exec` is served, an unlisted one gets nothing through, and the key
// file is gone once the cluster has stopped.
func TestClusterCurve(t *testing.T) {
	dir := t.TempDir()
	writeKeys(t, dir, "broker")
	c1 := writeKeys(t, dir, "c1")
	writeKeys(t, dir, "stranger")
	clients := filepath.Join(dir, "clients.txt")
	if err := os.WriteFile(clients, []byte("# listed clients\n"+c1+"\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	cl, frontend := startCluster(t, "-workers", "2", "-handler", "echo", "-stats", "", "-control", "",
		"-curve-secret", filepath.Join(dir, "broker.key"), "-client-keys", clients)

	exec := func(key string) (string, string, int) {
		return runHose(t, 20*time.Second, "", "exec", "-frontend", frontend, "-timeout", "3s", "-connect-timeout", "500ms",
			"-curve-server-key", filepath.Join(dir, "broker.pub"), "-curve-key", filepath.Join(dir, key), "sealed")
	}
	testproc.WaitFor(t, 15*time.Second, "the listed client's job", func() (bool, string) {
		out, errs, code := exec("c1.key")
		return code == exitOK && out == "sealed", fmt.Sprintf("exit %d: %s", code, errs)
	})
	testproc.WaitFor(t, 10*time.Second, "both workers registered", func() (bool, string) {
		st := readCluster(cl)
		return len(st.registered) == 2, fmt.Sprintf("registered %v, started %v", st.registered, st.started)
	})
	if out, errs, code := exec("stranger.key"); code != exitUnreachable || out != "" {
		t.Errorf("unlisted client: exit %d, stdout %q, stderr %q; want exit %d and nothing", code, out, errs, exitUnreachable)
	}

	// The workers' command lines name the key file, never a secret key;
	// the file is private.
	secret, _ := os.ReadFile(filepath.Join(dir, "broker.key"))
	var keyFile string
	for _, pid := range readCluster(cl).current {
		raw, err := os.ReadFile(fmt.Sprintf("/proc/%d/cmdline", pid))
		if err != nil {
			t.Fatalf("worker %d: %v", pid, err)
		}
		args := strings.Split(strings.TrimRight(string(raw), "\x00"), "\x00")
		if strings.Contains(string(raw), strings.TrimSpace(string(secret))) {
			t.Errorf("worker %d: the broker's secret key is on its command line", pid)
		}
		for i, a := range args[:len(args)-1] {
			if a == "-curve-key" {
				keyFile = args[i+1]
			}
		}
	}
	if keyFile == "" {
		t.Fatal("no -curve-key on the workers' command lines")
	}
	for path, want := range map[string]os.FileMode{keyFile: 0o600, filepath.Dir(keyFile): 0o700} {
		st, err := os.Stat(path)
		if err != nil || st.Mode().Perm() != want {
			t.Errorf("%s: mode %v (%v), want %v", path, st.Mode().Perm(), err, want)
		}
	}
	key, _ := os.ReadFile(keyFile)
	if k := strings.TrimSpace(string(key)); len(k) != 40 {
		t.Errorf("key file holds %q, want a Z85 secret key", k)
	}

	stopCluster(t, cl)
	if _, err := os.Stat(filepath.Dir(keyFile)); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("the workers' key directory is still there after the cluster stopped: %v", err)
	}
}

func TestClusterCurveFlags(t *testing.T) {
	if out, _, _ := runInProcess("cluster", "-h"); !strings.Contains(out, "-curve-secret") || !strings.Contains(out, "besides the cluster's own") {
		t.Errorf("hose cluster -h lacks the CURVE flags:\n%s", out)
	}
	for _, args := range [][]string{
		{"cluster", "-client-keys", "clients"},
		{"cluster", "-worker-keys", "workers"},
	} {
		if _, errs, code := runInProcess(args...); code != exitUsage || !strings.Contains(errs, "need -curve-secret") {
			t.Errorf("%v: exit %d, stderr %q; want a usage error", args, code, errs)
		}
	}
}
