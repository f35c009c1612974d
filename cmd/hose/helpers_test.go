package main

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"github.com/hose-project/hose/internal/testproc"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/hose-project/hose/client"
)

// hoseBin is the hose binary built once by TestMain; the process-level
// tests run it as brokers, workers and clusters.
var hoseBin string

func TestMain(m *testing.M) {
	dir, err := os.MkdirTemp("", "hose-cmd-test-")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	hoseBin = filepath.Join(dir, "hose")
	args := []string{"build", "-o", hoseBin}
	if raceEnabled && os.Getenv("HOSE_TEST_RACE_BINARY") != "" {
		// The children run with the race detector too: slower, and
		// thorough.
		args = append(args, "-race")
	}
	build := exec.Command(testproc.GoTool(), append(args, ".")...)
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

// proc is a hose process started by a test.
type proc = testproc.Proc

// startHose starts `hose args...`. When the test ends the process is killed
// (SIGKILL) if still running; gentle processes (a cluster, which must stop
// its own children) get SIGTERM and 10 s first. Its output is logged when
// the test failed.
func startHose(t testing.TB, name string, gentle bool, args ...string) *proc {
	t.Helper()
	return testproc.Start(t, name, testproc.Options{Gentle: gentle}, append([]string{hoseBin}, args...)...)
}

// runHose runs a one-shot hose command with stdin and returns its output
// and exit code; it fails the test if the command runs longer than limit.
func runHose(t testing.TB, limit time.Duration, stdin string, args ...string) (stdout, stderr string, code int) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), limit)
	defer cancel()
	cmd := exec.CommandContext(ctx, hoseBin, args...)
	var out, errb bytes.Buffer
	cmd.Stdin = strings.NewReader(stdin)
	cmd.Stdout, cmd.Stderr = &out, &errb
	err := cmd.Run()
	if ctx.Err() != nil {
		t.Fatalf("hose %s: still running after %v (hung)", strings.Join(args, " "), limit)
	}
	var ee *exec.ExitError
	if err != nil && !errors.As(err, &ee) {
		t.Fatalf("hose %s: %v", strings.Join(args, " "), err)
	}
	return out.String(), errb.String(), cmd.ProcessState.ExitCode()
}

// freeTCP returns n loopback tcp:// endpoints on ports that were free a
// moment ago. The listeners are held until all n are picked, so the ports
// differ.
func freeTCP(t testing.TB, n int) []string {
	t.Helper()
	var eps []string
	var ls []net.Listener
	for i := 0; i < n; i++ {
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		ls = append(ls, l)
		eps = append(eps, "tcp://"+l.Addr().String())
	}
	for _, l := range ls {
		l.Close()
	}
	return eps
}

// testHeartbeat makes brokers and workers notice faults within ~0.5 s.
const testHeartbeat = "100ms"

type brokerProc struct {
	*proc
	frontend, backend string
}

// startBroker runs `hose broker` on fresh loopback ports and waits until it
// answers.
func startBroker(t testing.TB, extra ...string) *brokerProc {
	t.Helper()
	eps := freeTCP(t, 2)
	return startBrokerAt(t, eps[0], eps[1], extra...)
}

func startBrokerAt(t testing.TB, frontend, backend string, extra ...string) *brokerProc {
	t.Helper()
	args := append([]string{"broker", "-frontend", frontend, "-backend", backend,
		"-heartbeat", testHeartbeat, "-log-level", "debug"}, extra...)
	b := &brokerProc{proc: startHose(t, "broker", false, args...), frontend: frontend, backend: backend}
	c := newClient(t, frontend)
	testproc.WaitFor(t, 5*time.Second, "broker answering", func() (bool, string) {
		if b.Exited() {
			t.Fatalf("broker exited with %d", b.Cmd.ProcessState.ExitCode())
		}
		_, err := ping(c)
		return err == nil, fmt.Sprint(err)
	})
	return b
}

// startWorker runs `hose worker` against backend.
func startWorker(t testing.TB, name, backend string, extra ...string) *proc {
	t.Helper()
	args := append([]string{"worker", "-backend", backend, "-log-level", "debug"}, extra...)
	return startHose(t, name, false, args...)
}

// newClient returns a client of frontend, closed when the test ends.
func newClient(t testing.TB, frontend string) *client.Client {
	t.Helper()
	c, err := client.New(client.Config{Endpoints: []string{frontend}})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

// ping asks the broker for its state, within a second.
func ping(c *client.Client) (client.BrokerInfo, error) {
	ctx, cancel := context.WithTimeout(context.Background(), time.Second)
	defer cancel()
	return pingRetry(ctx, c)
}

// waitWorkers waits until the broker lists exactly n workers.
func waitWorkers(t testing.TB, c *client.Client, n int, limit time.Duration) {
	t.Helper()
	testproc.WaitFor(t, limit, fmt.Sprintf("%d workers", n), func() (bool, string) {
		info, err := ping(c)
		if err != nil {
			return false, err.Error()
		}
		return info.Workers == n, fmt.Sprintf("%d workers", info.Workers)
	})
}

// waitInFlight waits until the broker holds n jobs at workers.
func waitInFlight(t testing.TB, c *client.Client, n int, limit time.Duration) {
	t.Helper()
	testproc.WaitFor(t, limit, fmt.Sprintf("%d jobs in flight", n), func() (bool, string) {
		info, err := ping(c)
		if err != nil {
			return false, err.Error()
		}
		return info.InFlight == n && info.Queued == 0, fmt.Sprintf("%d in flight, %d queued", info.InFlight, info.Queued)
	})
}

// outcome is one Execute's end.
type outcome struct {
	res  []byte
	err  error
	took time.Duration
	end  time.Time
}

// goExecute runs Execute in a goroutine with a 10 s deadline.
func goExecute(c *client.Client, payload string, opts ...client.CallOption) <-chan outcome {
	ch := make(chan outcome, 1)
	go func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		start := time.Now()
		res, err := c.Execute(ctx, []byte(payload), opts...)
		ch <- outcome{res: res, err: err, took: time.Since(start), end: time.Now()}
	}()
	return ch
}

// await receives an outcome; the call's own deadline is 10 s, so one that
// has not ended after 12 s hung.
func await(t testing.TB, ch <-chan outcome) outcome {
	t.Helper()
	select {
	case o := <-ch:
		return o
	case <-time.After(12 * time.Second):
		t.Fatal("Execute hung past its deadline")
		return outcome{}
	}
}

// errKind names the client sentinel err matches, for counting outcomes.
func errKind(err error) string {
	if err == nil {
		return "ok"
	}
	for _, k := range []struct {
		err  error
		name string
	}{
		{client.ErrTimeout, "ErrTimeout"}, {client.ErrNoWorker, "ErrNoWorker"},
		{client.ErrBusy, "ErrBusy"}, {client.ErrWorkerLost, "ErrWorkerLost"},
		{client.ErrBrokerGone, "ErrBrokerGone"}, {client.ErrTooLarge, "ErrTooLarge"},
		{client.ErrBadRequest, "ErrBadRequest"}, {client.ErrUnknownService, "ErrUnknownService"},
		{client.ErrShuttingDown, "ErrShuttingDown"}, {client.ErrWorker, "ErrWorker"},
		{client.ErrClosed, "ErrClosed"},
	} {
		if errors.Is(err, k.err) {
			return k.name
		}
	}
	return "other: " + err.Error()
}

// loadStats counts the outcomes of a load run by kind.
type loadStats struct {
	mu     sync.Mutex
	counts map[string]int
	wrong  int // replies whose payload was not the echo of the request
	total  int
	first  map[string]time.Time // when each kind of failure was first seen
}

func (s *loadStats) add(kind string, wrong bool, at time.Time) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.counts == nil {
		s.counts = make(map[string]int)
		s.first = make(map[string]time.Time)
	}
	s.counts[kind]++
	s.total++
	if wrong {
		s.wrong++
	}
	if _, ok := s.first[kind]; !ok && kind != "ok" {
		s.first[kind] = at
	}
}

func (s *loadStats) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return fmt.Sprintf("%d calls: %v (wrong payloads: %d)", s.total, s.counts, s.wrong)
}

// echoLoad runs callers goroutines that each send echo jobs back to back
// until n calls were made in all (n > 0) or until stop is closed. Every
// call has a 10 s deadline.
func echoLoad(c *client.Client, callers, n int, stop <-chan struct{}, opts ...client.CallOption) *loadStats {
	st := &loadStats{}
	var wg sync.WaitGroup
	var mu sync.Mutex
	next := 0
	for g := 0; g < callers; g++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				select {
				case <-stop:
					return
				default:
				}
				mu.Lock()
				i := next
				next++
				mu.Unlock()
				if n > 0 && i >= n {
					return
				}
				payload := fmt.Sprintf("job-%d", i)
				ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
				res, err := c.Execute(ctx, []byte(payload), opts...)
				cancel()
				st.add(errKind(err), err == nil && string(res) != payload, time.Now())
			}
		}()
	}
	wg.Wait()
	return st
}
