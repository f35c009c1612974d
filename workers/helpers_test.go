package workers_test

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"flag"
	"fmt"
	"github.com/hose-project/hose/internal/testproc"
	"io/fs"
	"log/slog"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"runtime"
	"sort"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/hose-project/hose/broker"
	"github.com/hose-project/hose/client"
	"github.com/hose-project/hose/worker"
)

// The test binary doubles as the Go worker and the Go broker of the
// process-level tests: run with HOSE_CONFORMANCE_ROLE set, TestMain runs
// that role instead of the tests. The Go worker takes the same flags and
// serves the same demo jobs as the Python and C++ examples.
const roleEnv = "HOSE_CONFORMANCE_ROLE"

// Timing of every broker in these tests: a worker is declared lost after
// testLiveness silent intervals of testHeartbeat.
const (
	testHeartbeat = 100 * time.Millisecond
	testLiveness  = 5
)

var workDir string // removed after the tests

func TestMain(m *testing.M) {
	switch os.Getenv(roleEnv) {
	case "worker":
		os.Exit(goWorkerMain(os.Args[1:]))
	case "broker":
		os.Exit(goBrokerMain(os.Args[1:]))
	}
	dir, err := os.MkdirTemp("", "hose-workers-test-")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	workDir = dir
	code := m.Run()
	os.RemoveAll(dir)
	os.Exit(code)
}

// --- the Go worker and broker roles ---

type stringList []string

func (l *stringList) String() string     { return strings.Join(*l, ",") }
func (l *stringList) Set(s string) error { *l = append(*l, s); return nil }

func goWorkerMain(args []string) int {
	fs := flag.NewFlagSet("go-worker", flag.ContinueOnError)
	backend := fs.String("backend", "", "broker backend")
	concurrency := fs.Int("concurrency", 2, "jobs at once")
	prefetch := fs.Int("prefetch", 0, "jobs beyond concurrency")
	maxJobs := fs.Int("max-jobs", 0, "retire after N jobs")
	maxAge := fs.Duration("max-age", 0, "retire after D")
	drain := fs.Duration("drain-timeout", 30*time.Second, "drain timeout")
	var services, params stringList
	fs.Var(&services, "service", "service, repeatable")
	fs.Var(&params, "param", "KEY=VALUE, repeatable")
	if err := fs.Parse(args); err != nil {
		return 2
	}
	cfg := worker.Config{
		Backend: *backend, Services: services, Concurrency: *concurrency, Prefetch: *prefetch, MaxJobs: *maxJobs, MaxAge: *maxAge,
		DrainTimeout: *drain, Params: map[string]string{},
		Logger: slog.New(slog.NewTextHandler(os.Stderr, nil)).With("pid", os.Getpid()),
	}
	for _, p := range params {
		k, v, _ := strings.Cut(p, "=")
		cfg.Params[k] = v
	}
	w, err := worker.New(cfg, worker.HandlerFunc(goDemo))
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 2
	}
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, syscall.SIGINT)
	defer stop()
	if err := w.Run(ctx); err != nil && !errors.Is(err, worker.ErrRetired) {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	return 0
}

// goDemo is the Go twin of examples.jobs:demo (Python) and --job demo (C++).
func goDemo(ctx context.Context, j *worker.Job) ([]byte, error) {
	op, _, _ := strings.Cut(j.Service, ".")
	who := []byte(fmt.Sprintf("go %d", os.Getpid()))
	ms, _ := strconv.Atoi(string(j.Payload))
	switch op {
	case "echo":
		return j.Payload, nil
	case "lang":
		return who, nil
	case "sha256":
		r := j.Header("rounds")
		if r == "" {
			r = j.Params["rounds"]
		}
		n, _ := strconv.Atoi(r)
		return sha256Rounds(j.Payload, n), nil
	case "fail":
		return nil, errors.New("fail: " + string(j.Payload))
	case "sleep":
		t := time.NewTimer(time.Duration(ms) * time.Millisecond)
		defer t.Stop()
		select {
		case <-t.C:
		case <-ctx.Done():
		}
		return who, nil
	case "spin":
		end := time.Now().Add(time.Duration(ms) * time.Millisecond)
		var h uint64 = 0xcbf29ce484222325
		for time.Now().Before(end) {
			for i := 0; i < 1000; i++ {
				h = (h ^ uint64(i&0xff)) * 0x100000001b3
			}
		}
		return append(who, fmt.Sprintf(" spin %016x", h)...), nil
	case "headers", "params":
		m := j.Params
		if op == "headers" {
			// The first value of a repeated key, as Job.Header gives it
			// (Job.Headers keeps the last).
			m = j.Headers()
			for k := range m {
				m[k] = j.Header(k)
			}
		}
		return []byte(kvLines(m)), nil
	}
	return nil, fmt.Errorf("demo: no job named %q (service %q)", op, j.Service)
}

func kvLines(m map[string]string) string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	var b strings.Builder
	for _, k := range keys {
		fmt.Fprintf(&b, "%s=%s\n", k, m[k])
	}
	return b.String()
}

func sha256Rounds(p []byte, rounds int) []byte {
	if rounds < 1 {
		rounds = 1000
	}
	sum := sha256.Sum256(p)
	for i := 1; i < rounds; i++ {
		sum = sha256.Sum256(sum[:])
	}
	return sum[:]
}

func goBrokerMain(args []string) int {
	fs := flag.NewFlagSet("go-broker", flag.ContinueOnError)
	front := fs.String("frontend", "", "frontend")
	back := fs.String("backend", "", "backend")
	if err := fs.Parse(args); err != nil {
		return 2
	}
	b, err := broker.New(testBrokerConfig(*front, *back))
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, syscall.SIGINT)
	defer stop()
	<-ctx.Done()
	_ = b.Close()
	return 0
}

// --- toolchains ---

// requireTool skips the test when a toolchain is missing, or fails it in CI,
// where scripts/deps.sh installs every toolchain.
func requireTool(t testing.TB, format string, args ...any) {
	t.Helper()
	msg := fmt.Sprintf(format, args...)
	if ci := os.Getenv("CI"); ci != "" && ci != "false" && ci != "0" {
		t.Fatalf("%s (CI is set: scripts/deps.sh should have installed it)", msg)
	}
	t.Skipf("%s; run scripts/deps.sh to test this", msg)
}

var pythonOnce struct {
	sync.Once
	path string
	err  error
}

// pythonExe returns a Python 3 interpreter that imports zmq: $HOSE_PYTHON,
// Debian's /usr/bin/python3, or the first python3 on PATH.
func pythonExe(t testing.TB) string {
	t.Helper()
	pythonOnce.Do(func() {
		var tried []string
		cands := []string{os.Getenv("HOSE_PYTHON"), "/usr/bin/python3"}
		for _, name := range []string{"python3", "python3.13", "python3.12", "python3.11", "python3.10", "python3.9"} {
			if p, err := exec.LookPath(name); err == nil {
				cands = append(cands, p)
			}
		}
		for _, c := range cands {
			if c == "" {
				continue
			}
			tried = append(tried, c)
			if exec.Command(c, "-c", "import sys, zmq; assert sys.version_info >= (3, 8)").Run() == nil {
				pythonOnce.path = c
				return
			}
		}
		pythonOnce.err = fmt.Errorf("no Python 3.8+ interpreter that imports zmq (tried %s; Debian: apt-get install python3-zmq)", strings.Join(tried, ", "))
	})
	if pythonOnce.err != nil {
		requireTool(t, "%v", pythonOnce.err)
	}
	return pythonOnce.path
}

var cppOnce struct {
	sync.Once
	dir string
	err error
	log string
}

// cppBin returns the path of a binary of the C++ worker build: cmake builds
// workers/cpp once per source hash into a cache directory under
// os.TempDir, so reruns take no time.
func cppBin(t testing.TB, name string) string {
	t.Helper()
	cppOnce.Do(func() { cppOnce.dir, cppOnce.log, cppOnce.err = buildCpp() })
	if cppOnce.err != nil {
		if errors.Is(cppOnce.err, exec.ErrNotFound) {
			requireTool(t, "cannot build the C++ worker: %v", cppOnce.err)
		}
		t.Fatalf("building the C++ worker: %v\n%s", cppOnce.err, cppOnce.log)
	}
	return filepath.Join(cppOnce.dir, name)
}

var cppOutputs = []string{"hose-cpp-worker", "hose-cpp-vectors"}

func buildCpp() (dir, log string, err error) {
	for _, tool := range []string{"cmake", "c++"} {
		if _, err := exec.LookPath(tool); err != nil {
			return "", "", fmt.Errorf("%s: %w (Debian: apt-get install cmake g++ cppzmq-dev libzmq3-dev)", tool, exec.ErrNotFound)
		}
	}
	if _, err := os.Stat("/usr/include/zmq.hpp"); err != nil && os.Getenv("HOSE_CPPZMQ_ELSEWHERE") == "" {
		return "", "", fmt.Errorf("cppzmq header zmq.hpp: %w (Debian: apt-get install cppzmq-dev)", exec.ErrNotFound)
	}
	src, err := filepath.Abs("cpp")
	if err != nil {
		return "", "", err
	}
	h := sha256.New()
	err = filepath.WalkDir(src, func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if d.IsDir() {
			if d.Name() == "build" {
				return filepath.SkipDir
			}
			return nil
		}
		b, err := os.ReadFile(path)
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(src, path)
		fmt.Fprintf(h, "%s %d\n", rel, len(b))
		h.Write(b)
		return nil
	})
	if err != nil {
		return "", "", err
	}
	dir = filepath.Join(os.TempDir(), "hose-cpp-"+hex.EncodeToString(h.Sum(nil))[:16])
	if haveAll(dir) {
		return dir, "", nil
	}
	build, err := os.MkdirTemp("", "hose-cpp-build-")
	if err != nil {
		return "", "", err
	}
	defer os.RemoveAll(build)
	var out bytes.Buffer
	for _, args := range [][]string{
		{"-S", src, "-B", build, "-DCMAKE_BUILD_TYPE=Release"},
		{"--build", build, "-j", strconv.Itoa(runtime.NumCPU())},
	} {
		cmd := exec.Command("cmake", args...)
		cmd.Stdout, cmd.Stderr = &out, &out
		if err := cmd.Run(); err != nil {
			return "", out.String(), fmt.Errorf("cmake %s: %w", strings.Join(args, " "), err)
		}
	}
	// Publish atomically: copy the binaries into a fresh directory and
	// rename it, so concurrent test runs never see half a cache.
	stage, err := os.MkdirTemp(os.TempDir(), "hose-cpp-stage-")
	if err != nil {
		return "", "", err
	}
	defer os.RemoveAll(stage)
	for _, name := range cppOutputs {
		b, err := os.ReadFile(filepath.Join(build, name))
		if err != nil {
			return "", out.String(), err
		}
		if err := os.WriteFile(filepath.Join(stage, name), b, 0o755); err != nil {
			return "", "", err
		}
	}
	if err := os.Chmod(stage, 0o755); err != nil {
		return "", "", err
	}
	if err := os.Rename(stage, dir); err != nil && !haveAll(dir) {
		return "", "", err
	}
	return dir, out.String(), nil
}

func haveAll(dir string) bool {
	for _, name := range cppOutputs {
		if st, err := os.Stat(filepath.Join(dir, name)); err != nil || st.Mode()&0o111 == 0 {
			return false
		}
	}
	return true
}

// --- processes ---

// proc is a process started by a test; it is killed (SIGKILL) when the test
// ends, and its output is logged when the test failed.
type proc = testproc.Proc

func startProc(t testing.TB, name, dir string, env []string, argv ...string) *proc {
	t.Helper()
	return testproc.Start(t, name, testproc.Options{Dir: dir, Env: env, Merge: true}, argv...)
}

// --- workers in three languages ---

// lang starts worker processes of one language; they all take the flags
// --backend, --service (repeatable), --concurrency, --param KEY=VALUE,
// --max-jobs, --max-age and --drain-timeout, and serve the demo jobs.
type lang struct {
	name  string // as the lang job answers: "go", "python" or "cpp"
	label string // subtest name
	extra []string
}

var (
	langGo      = lang{name: "go", label: "go"}
	langPython  = lang{name: "python", label: "python"}
	langPyProcs = lang{name: "python", label: "python-process-pool", extra: []string{"--pool", "process"}}
	langCpp     = lang{name: "cpp", label: "cpp"}
	allLangs    = []lang{langGo, langPython, langCpp}
)

// start runs a worker of l connected to backend, serving services.
func (l lang) start(t testing.TB, backend string, services []string, flags ...string) *proc {
	t.Helper()
	var dir string
	var env, argv []string
	switch l.name {
	case "go":
		argv = []string{os.Args[0]}
		env = []string{roleEnv + "=worker"}
	case "python":
		dir = "python"
		argv = []string{pythonExe(t), "-m", "hoseworker", "--log-level", "info"}
		env = []string{"PYTHONDONTWRITEBYTECODE=1"}
	case "cpp":
		argv = []string{cppBin(t, "hose-cpp-worker"), "--job", "demo"}
	}
	argv = append(argv, l.extra...)
	argv = append(argv, "--backend", backend, "--concurrency", "2")
	for _, s := range services {
		argv = append(argv, "--service", s)
	}
	argv = append(argv, flags...)
	if l.name == "python" {
		argv = append(argv, "examples.jobs:demo")
	}
	return startProc(t, l.label+" worker", dir, env, argv...)
}

// --- brokers and clients ---

func testBrokerConfig(front, back string) broker.Config {
	return broker.Config{
		Frontend: front, Backend: back,
		HeartbeatInterval: testHeartbeat, Liveness: testLiveness,
		NoWorkerWait: 5 * time.Second, SkipCheck: true,
	}
}

// startBroker starts an in-process broker on front and back (tcp://...:*
// for free ports), closed when the test ends.
func startBroker(t testing.TB, front, back string) *broker.Broker {
	t.Helper()
	b, err := broker.New(testBrokerConfig(front, back))
	if err != nil {
		t.Fatalf("broker: %v", err)
	}
	t.Cleanup(func() { _ = b.Close() })
	return b
}

func newBroker(t testing.TB) *broker.Broker {
	return startBroker(t, "tcp://127.0.0.1:*", "tcp://127.0.0.1:*")
}

func newClient(t testing.TB, frontend string) *client.Client {
	t.Helper()
	c, err := client.New(client.Config{Endpoints: []string{frontend}})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = c.Close() })
	return c
}

// waitFor polls cond every 10ms until it holds, failing the test after limit.
func waitFor(t testing.TB, limit time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(limit)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("after %v: still waiting for %s", limit, what)
		}
		time.Sleep(10 * time.Millisecond) // polling interval, not synchronisation
	}
}

// workerStats returns the broker's view of the worker with pid, if
// registered.
func workerStats(t testing.TB, b *broker.Broker, pid int) (broker.WorkerStats, bool) {
	t.Helper()
	st, err := b.Stats()
	if err != nil {
		t.Fatalf("broker stats: %v", err)
	}
	for _, w := range st.Workers {
		if int(w.PID) == pid {
			return w, true
		}
	}
	return broker.WorkerStats{}, false
}

func waitRegistered(t testing.TB, b *broker.Broker, p *proc) broker.WorkerStats {
	t.Helper()
	var ws broker.WorkerStats
	waitFor(t, 15*time.Second, p.Name+" to register", func() bool {
		if p.Exited() {
			t.Fatalf("%s exited (code %d) before registering:\n%s", p.Name, p.Cmd.ProcessState.ExitCode(), p.Stdout.String())
		}
		var ok bool
		ws, ok = workerStats(t, b, p.PID())
		return ok
	})
	return ws
}

func waitGone(t testing.TB, b *broker.Broker, p *proc) {
	t.Helper()
	waitFor(t, 10*time.Second, "the broker to drop "+p.Name, func() bool {
		_, ok := workerStats(t, b, p.PID())
		return !ok
	})
}

func waitInFlight(t testing.TB, b *broker.Broker, p *proc, n int) {
	t.Helper()
	waitFor(t, 10*time.Second, fmt.Sprintf("%s to hold %d jobs", p.Name, n), func() bool {
		ws, ok := workerStats(t, b, p.PID())
		return ok && ws.InFlight == n
	})
}

type outcome struct {
	res []byte
	err error
}

// execAsync runs one Execute in a goroutine; read the outcome from the
// channel.
func execAsync(c *client.Client, timeout time.Duration, payload string, opts ...client.CallOption) <-chan outcome {
	ch := make(chan outcome, 1)
	go func() {
		ctx, cancel := context.WithTimeout(context.Background(), timeout)
		defer cancel()
		res, err := c.Execute(ctx, []byte(payload), opts...)
		ch <- outcome{res, err}
	}()
	return ch
}

func execute(t testing.TB, c *client.Client, service, payload string, opts ...client.CallOption) ([]byte, error) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	return c.Execute(ctx, []byte(payload), append(opts, client.WithService(service))...)
}

// receive waits up to limit for an outcome.
func receive(t testing.TB, ch <-chan outcome, limit time.Duration, what string) outcome {
	t.Helper()
	select {
	case o := <-ch:
		return o
	case <-time.After(limit):
		t.Fatalf("no answer to %s within %v", what, limit)
		return outcome{}
	}
}

// whoAnswered parses "<lang> <pid> ..." as the demo jobs answer.
func whoAnswered(res []byte) (string, int) {
	f := strings.Fields(string(res))
	if len(f) < 2 {
		return "", 0
	}
	pid, _ := strconv.Atoi(f[1])
	return f[0], pid
}
