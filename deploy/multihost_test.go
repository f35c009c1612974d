package deploy

import (
	"bufio"
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	zmq "github.com/pebbe/zmq4"

	"github.com/hose-project/hose/client"
	"github.com/hose-project/hose/internal/testproc"
	"github.com/hose-project/hose/loadgen"
)

// hoseBin is the hose binary TestMain builds (without -race: it plays the
// installed /usr/local/bin/hose).
var hoseBin string

// helperEnv, when set, makes the test binary a helper program run inside a
// namespace (see helperMain) instead of running tests.
const helperEnv = "HOSE_DEPLOY_HELPER"

func TestMain(m *testing.M) {
	if mode := os.Getenv(helperEnv); mode != "" {
		os.Exit(helperMain(mode, os.Args[1:]))
	}
	dir, err := os.MkdirTemp("", "hose-deploy-test-")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	hoseBin = filepath.Join(dir, "hose")
	build := exec.Command(testproc.GoTool(), "build", "-o", hoseBin, "github.com/hose-project/hose/cmd/hose")
	build.Stdout, build.Stderr = os.Stderr, os.Stderr
	if err := build.Run(); err != nil {
		fmt.Fprintf(os.Stderr, "building hose: %v\n", err)
		os.RemoveAll(dir)
		os.Exit(1)
	}
	code := m.Run()
	os.RemoveAll(dir)
	os.Exit(code)
}

// helperMain is the test binary run as a small program inside a host's
// namespace:
//
//	bench -frontend EP -server-key FILE -key FILE -rate R -duration D -json FILE
//	    hosebench's engine (loadgen) with a CURVE client; writes the
//	    hosebench -json document
//	get URL     prints the body of an HTTP GET
//	dial ADDR   exits 0 when a TCP connection to ADDR opens, 1 otherwise
//
// hosebench itself has no CURVE flags, so the load comes from here.
func helperMain(mode string, args []string) int {
	var err error
	switch mode {
	case "bench":
		err = helperBench(args)
	case "get":
		err = helperGet(args)
	case "dial":
		err = helperDial(args)
	default:
		err = fmt.Errorf("unknown helper mode %q", mode)
	}
	if err != nil {
		fmt.Fprintf(os.Stderr, "helper %s: %v\n", mode, err)
		return 1
	}
	return 0
}

func helperBench(args []string) error {
	fs := flag.NewFlagSet("bench", flag.ContinueOnError)
	frontend := fs.String("frontend", "", "broker frontend")
	serverKey := fs.String("server-key", "", "broker public key file")
	keyFile := fs.String("key", "", "client secret key file")
	rate := fs.Float64("rate", 500, "requests per second")
	duration := fs.Duration("duration", 3*time.Second, "measured run")
	warmup := fs.Duration("warmup", 500*time.Millisecond, "warm-up")
	out := fs.String("json", "", "result file")
	if err := fs.Parse(args); err != nil {
		return err
	}
	server, err := readKeyFile(*serverKey)
	if err != nil {
		return err
	}
	sec, err := readKeyFile(*keyFile)
	if err != nil {
		return err
	}
	pub, err := zmq.AuthCurvePublic(sec)
	if err != nil {
		return err
	}
	c, err := client.New(client.Config{
		Endpoints: []string{*frontend}, CurveServerKey: server, CurvePublicKey: pub, CurveSecretKey: sec,
	})
	if err != nil {
		return err
	}
	defer c.Close()
	cfg := loadgen.DefaultConfig()
	cfg.Broker = []string{*frontend}
	cfg.Workers = nil
	cfg.Rates = []float64{*rate}
	cfg.Duration, cfg.Warmup = *duration, *warmup
	cfg.Executor = c
	ctx, cancel := context.WithTimeout(context.Background(), *warmup+*duration+30*time.Second)
	defer cancel()
	rep, err := loadgen.Run(ctx, cfg)
	if err != nil {
		return err
	}
	if err := loadgen.NewTextReporter(rep)(os.Stderr); err != nil {
		return err
	}
	f, err := os.Create(*out)
	if err != nil {
		return err
	}
	if err := loadgen.NewJSONReporter(rep)(f); err != nil {
		f.Close()
		return err
	}
	return f.Close()
}

func helperGet(args []string) error {
	if len(args) != 1 {
		return fmt.Errorf("want one URL")
	}
	hc := &http.Client{Timeout: 2 * time.Second}
	resp, err := hc.Get(args[0])
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("GET %s: %s", args[0], resp.Status)
	}
	_, err = io.Copy(os.Stdout, resp.Body)
	return err
}

func helperDial(args []string) error {
	if len(args) != 1 {
		return fmt.Errorf("want one HOST:PORT")
	}
	c, err := net.DialTimeout("tcp", args[0], 2*time.Second)
	if err != nil {
		return err
	}
	return c.Close()
}

func readKeyFile(path string) (string, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return "", err
	}
	return strings.TrimSpace(string(b)), nil
}

// helper returns the command that runs the test binary as helper mode.
func helper(mode string, args ...string) (argv, env []string) {
	exe, err := os.Executable()
	if err != nil {
		exe = os.Args[0]
	}
	return append([]string{exe}, args...), []string{helperEnv + "=" + mode}
}

// keygen runs `hose keygen PATH` as an administrator does on a host.
func keygen(t testing.TB, path string) {
	t.Helper()
	if out, err := exec.Command(hoseBin, "keygen", path).CombinedOutput(); err != nil {
		t.Fatalf("hose keygen %s: %v\n%s", path, err, out)
	}
}

// copyFile copies a public key from one host to another (scp).
func copyFile(t testing.TB, from, to string) {
	t.Helper()
	b, err := os.ReadFile(from)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.MkdirAll(filepath.Dir(to), 0o750); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(to, b, 0o644); err != nil {
		t.Fatal(err)
	}
}

// startUnit starts what systemd would for unit on h, as a process the test
// reaps.
func startUnit(t testing.TB, h *host, unit, instance string) *testproc.Proc {
	t.Helper()
	argv := unitCommand(t, unit, instance, h.etc, hoseBin)
	name := strings.Replace(unit, "@.", "@"+instance+".", 1) + " on " + h.name
	t.Logf("%s: %s", name, strings.Join(argv, " "))
	return testproc.Start(t, name, testproc.Options{}, h.argv(argv...)...)
}

// stopUnit does what systemctl stop does with these units: SIGTERM
// (KillSignal), then it must exit 0 within TimeoutStopSec.
func stopUnit(t testing.TB, p *testproc.Proc, unit string) {
	t.Helper()
	limit, err := time.ParseDuration(readUnit(t, filepath.Join("systemd", unit)).value("Service", "TimeoutStopSec"))
	if err != nil {
		t.Fatal(err)
	}
	p.Signal(t, syscall.SIGTERM)
	if code := p.Wait(t, limit); code != 0 {
		t.Errorf("%s exited %d after SIGTERM, want 0", p.Name, code)
	}
}

// pingInfo is the part of `hose ping -json` the tests read.
type pingInfo struct {
	PID     int `json:"pid"`
	Workers int `json:"workers"`
}

// TestMultiHost deploys hose as README.md describes across four hosts,
// each a network namespace on one bridge, over real TCP with CURVE: the
// broker on n1 (hose-broker.service), workers on n2 (hose-worker@1 and @2)
// and n3 (hose-worker@1), clients on n4. Every process is started from the
// units' ExecStart lines and the env files in env/, edited only where an
// administrator must: the addresses.
func TestMultiHost(t *testing.T) {
	l := newLab(t, 4)
	n1, n2, n3, n4 := l.hosts[0], l.hosts[1], l.hosts[2], l.hosts[3]
	frontend := "tcp://" + n1.addr + ":5555"
	backend := "tcp://" + n1.addr + ":5556"
	keys := func(h *host, name string) string { return filepath.Join(h.etc, "keys", name) }

	// Keys: the broker's pair on n1; a pair per worker host, made there,
	// whose .pub goes to n1's workers/; a pair for the client application
	// on n4, whose .pub goes to n1's clients/; broker.pub to everyone.
	// n4 also holds a key the broker was never told about.
	keygen(t, keys(n1, "broker"))
	for _, h := range []*host{n2, n3} {
		keygen(t, keys(h, "worker"))
		copyFile(t, keys(h, "worker.pub"), keys(n1, "workers/"+h.name+".pub"))
		copyFile(t, keys(n1, "broker.pub"), keys(h, "broker.pub"))
	}
	keygen(t, keys(n4, "webapp"))
	keygen(t, keys(n4, "stranger"))
	copyFile(t, keys(n4, "webapp.pub"), keys(n1, "clients/webapp.pub"))
	copyFile(t, keys(n1, "broker.pub"), keys(n4, "broker.pub"))

	// Env files: the shipped ones, with the broker's address filled in.
	installEnv(t, n1.etc, "broker.env", map[string]string{"HOSE_FRONTEND": frontend, "HOSE_BACKEND": backend})
	for _, h := range []*host{n2, n3} {
		installEnv(t, h.etc, "worker.env", map[string]string{"HOSE_BACKEND": backend})
	}
	// A per-instance override, as worker-INSTANCE.env allows.
	if err := os.WriteFile(filepath.Join(n2.etc, "worker-2.env"), []byte("HOSE_WORKER_ARGS=-concurrency 1\n"), 0o640); err != nil {
		t.Fatal(err)
	}

	clientFlags := []string{"-frontend", frontend, "-curve-server-key", keys(n4, "broker.pub"), "-curve-key", keys(n4, "webapp.key")}
	ping := func() (pingInfo, string, bool) {
		out, errOut, code := n4.run(t, 10*time.Second, append([]string{hoseBin, "ping", "-json", "-allow-no-workers", "-timeout", "500ms"}, clientFlags...)...)
		var pi pingInfo
		if code != 0 || json.Unmarshal([]byte(out), &pi) != nil {
			return pi, fmt.Sprintf("exit %d: %s%s", code, out, errOut), false
		}
		return pi, "", true
	}

	start := time.Now()
	broker := startUnit(t, n1, "hose-broker.service", "")
	var pi pingInfo
	testproc.WaitFor(t, 10*time.Second, "the broker answering n4 over CURVE", func() (bool, string) {
		if broker.Exited() {
			t.Fatalf("broker exited with %d", broker.Cmd.ProcessState.ExitCode())
		}
		var why string
		var ok bool
		pi, why, ok = ping()
		return ok, why
	})
	if in, err := n1.inNamespace(pi.PID); !in || pi.PID != broker.PID() {
		t.Fatalf("the broker answering is pid %d, want %d in %s's namespace (%v)", pi.PID, broker.PID(), n1.name, err)
	}

	// An intruder: a worker on n4 using the client's key, which opens the
	// frontend but not the backend. It must never get a job.
	intruder := testproc.Start(t, "intruder worker on n4", testproc.Options{}, n4.argv(hoseBin, "worker",
		"-backend", backend, "-curve-server-key", keys(n4, "broker.pub"), "-curve-key", keys(n4, "webapp.key"))...)

	workers := map[*testproc.Proc]*host{
		startUnit(t, n2, "hose-worker@.service", "1"): n2,
		startUnit(t, n2, "hose-worker@.service", "2"): n2,
		startUnit(t, n3, "hose-worker@.service", "1"): n3,
	}
	for p, h := range workers {
		// ip netns exec execs in place: the PID is the worker's, in h.
		testproc.WaitFor(t, 5*time.Second, p.Name+" in its namespace", func() (bool, string) {
			ok, err := h.inNamespace(p.PID())
			return ok, fmt.Sprint(err)
		})
	}
	testproc.WaitFor(t, 10*time.Second, "3 workers registered", func() (bool, string) {
		pi, why, ok := ping()
		if ok && pi.Workers == 3 {
			return true, ""
		}
		return false, fmt.Sprintf("%d workers %s", pi.Workers, why)
	})
	t.Logf("broker and 3 workers up after %v", time.Since(start).Round(time.Millisecond))

	// One job with hose exec, as a shell user on n4 would.
	out, errOut, code := n4.run(t, 10*time.Second, append(append([]string{hoseBin, "exec"}, clientFlags...), "hello from n4")...)
	if code != 0 || out != "hello from n4" {
		t.Fatalf("hose exec from n4: exit %d, stdout %q, stderr %s", code, out, errOut)
	}

	// Load from n4: open loop at rate for 3 s.
	const rate = 500
	result := filepath.Join(t.TempDir(), "bench.json")
	argv, env := helper("bench", "-frontend", frontend, "-server-key", keys(n4, "broker.pub"),
		"-key", keys(n4, "webapp.key"), "-rate", strconv.Itoa(rate), "-duration", "3s", "-json", result)
	bench := testproc.Start(t, "bench on n4", testproc.Options{Env: env}, n4.argv(argv...)...)
	if code := bench.Wait(t, 30*time.Second); code != 0 {
		t.Fatalf("bench on n4 exited %d:\n%s", code, bench.Stderr)
	}
	t.Logf("bench on n4:\n%s", bench.Stderr)
	var res loadgen.Result
	if b, err := os.ReadFile(result); err != nil {
		t.Fatal(err)
	} else if err := json.Unmarshal(b, &res); err != nil {
		t.Fatalf("%s: %v", result, err)
	}
	if res.Sent == 0 || res.OK != res.Sent || res.ErrorsAll != 0 || res.Missed != 0 || res.Cancelled != 0 {
		t.Errorf("load: sent %d, ok %d, errors %d %v, missed %d, cancelled %d; want every request answered",
			res.Sent, res.OK, res.ErrorsAll, res.Errors, res.Missed, res.Cancelled)
	}
	for what, v := range map[string]float64{"achieved rate": res.AchievedRate, "throughput": res.Throughput} {
		if v < 0.9*rate || v > 1.1*rate {
			t.Errorf("load: %s %.1f/s, want %d/s ± 10%%", what, v, rate)
		}
	}

	// The broker's metrics, read on n1 (they are on its loopback): every
	// worker served jobs, and the workers are exactly the three started
	// on n2 and n3 (not the intruder).
	want := map[int]*testproc.Proc{}
	for p := range workers {
		want[p.PID()] = p
	}
	var jobs map[int]uint64
	testproc.WaitFor(t, 5*time.Second, "the metrics to count the load", func() (bool, string) {
		var err error
		if jobs, err = workerJobs(t, n1); err != nil {
			return false, err.Error()
		}
		var sum uint64
		for _, n := range jobs {
			sum += n
		}
		return sum >= res.OK, fmt.Sprintf("%d jobs in metrics, %d answered in the measured window", sum, res.OK)
	})
	if len(jobs) != len(want) {
		t.Errorf("metrics list workers %v, want the PIDs of %d workers (intruder is PID %d)", jobs, len(want), intruder.PID())
	}
	for pid, p := range want {
		if jobs[pid] == 0 {
			t.Errorf("%s (pid %d) served no jobs (metrics: %v)", p.Name, pid, jobs)
		}
	}
	t.Logf("jobs per worker PID: %v", jobs)

	// Whoever lacks a listed key gets nothing through: exit 6, the broker
	// refused the handshake, and no job runs.
	t.Run("refused", func(t *testing.T) {
		for _, c := range []struct {
			name string
			h    *host
			args []string
		}{
			{"unlisted client key", n4, []string{"-curve-server-key", keys(n4, "broker.pub"), "-curve-key", keys(n4, "stranger.key")}},
			{"fresh key pair", n4, []string{"-curve-server-key", keys(n4, "broker.pub")}},
			{"worker key at the frontend", n2, []string{"-curve-server-key", keys(n2, "broker.pub"), "-curve-key", keys(n2, "worker.key")}},
			{"wrong server key", n4, []string{"-curve-server-key", keys(n4, "stranger.pub"), "-curve-key", keys(n4, "webapp.key")}},
			{"no CURVE", n4, nil},
		} {
			t.Run(c.name, func(t *testing.T) {
				t.Parallel()
				args := append([]string{hoseBin, "exec", "-frontend", frontend, "-timeout", "3s"}, c.args...)
				out, errOut, code := c.h.run(t, 15*time.Second, append(args, "let me in")...)
				if code != 6 || out != "" {
					t.Errorf("exit %d, stdout %q, stderr %s; want exit 6 (refused) and no result", code, out, errOut)
				}
			})
		}
	})

	// Only the CURVE sockets are reachable from other hosts: the stats
	// stream and the metrics stay on n1's loopback.
	for port, open := range map[string]bool{"5555": true, "5556": true, "5557": false, "9555": false} {
		argv, env := helper("dial", n1.addr+":"+port)
		p := testproc.Start(t, "dial "+port+" from n4", testproc.Options{Env: env, Merge: true}, n4.argv(argv...)...)
		if got := p.Wait(t, 10*time.Second) == 0; got != open {
			t.Errorf("from n4, %s:%s reachable = %v, want %v (%s)", n1.addr, port, got, open, p.Stdout)
		}
	}

	// systemctl stop: SIGTERM, then a clean exit within TimeoutStopSec.
	for p := range workers {
		stopUnit(t, p, "hose-worker@.service")
	}
	stopUnit(t, broker, "hose-broker.service")
}

// workerJobs reads hose_worker_jobs_total from the broker's metrics on h
// (HOSE_METRICS on its loopback) and returns jobs by worker PID.
func workerJobs(t testing.TB, h *host) (map[int]uint64, error) {
	t.Helper()
	ep := shippedEnv(t, "broker.env")["HOSE_METRICS"]
	argv, env := helper("get", "http://"+ep+"/metrics")
	p := testproc.Start(t, "metrics on "+h.name, testproc.Options{Env: env}, h.argv(argv...)...)
	if code := p.Wait(t, 10*time.Second); code != 0 {
		return nil, fmt.Errorf("metrics: exit %d: %s", code, p.Stderr)
	}
	jobs := map[int]uint64{}
	sc := bufio.NewScanner(strings.NewReader(p.Stdout.String()))
	for sc.Scan() {
		line := sc.Text()
		if !strings.HasPrefix(line, "hose_worker_jobs_total{") {
			continue
		}
		_, rest, _ := strings.Cut(line, `pid="`)
		pidText, _, _ := strings.Cut(rest, `"`)
		pid, err := strconv.Atoi(pidText)
		if err != nil {
			return nil, fmt.Errorf("metrics line %q: %v", line, err)
		}
		f := strings.Fields(line)
		n, err := strconv.ParseFloat(f[len(f)-1], 64)
		if err != nil {
			return nil, fmt.Errorf("metrics line %q: %v", line, err)
		}
		jobs[pid] = uint64(n)
	}
	return jobs, nil
}

// TestClusterUnit runs hose-cluster.service, the one-host alternative, in
// a namespace of its own (so its default loopback ports are its own):
// supervised workers come up, a job goes through, and SIGTERM stops it
// cleanly within TimeoutStopSec.
func TestClusterUnit(t *testing.T) {
	l := newLab(t, 1)
	h := l.hosts[0]
	installEnv(t, h.etc, "cluster.env", map[string]string{"HOSE_WORKERS": "2"})
	cl := startUnit(t, h, "hose-cluster.service", "")
	frontend := shippedEnv(t, "cluster.env")["HOSE_FRONTEND"]
	testproc.WaitFor(t, 15*time.Second, "2 workers in the cluster", func() (bool, string) {
		if cl.Exited() {
			t.Fatalf("hose cluster exited with %d", cl.Cmd.ProcessState.ExitCode())
		}
		out, errOut, code := h.run(t, 10*time.Second, hoseBin, "ping", "-json", "-allow-no-workers", "-timeout", "500ms", "-frontend", frontend)
		var pi pingInfo
		if code != 0 || json.Unmarshal([]byte(out), &pi) != nil {
			return false, fmt.Sprintf("exit %d: %s%s", code, out, errOut)
		}
		return pi.Workers == 2, fmt.Sprintf("%d workers", pi.Workers)
	})
	out, errOut, code := h.run(t, 10*time.Second, hoseBin, "exec", "-frontend", frontend, "hi")
	if code != 0 || out != "hi" {
		t.Fatalf("hose exec: exit %d, stdout %q, stderr %s", code, out, errOut)
	}
	stopUnit(t, cl, "hose-cluster.service")
}
