//go:build chaos

package chaos

import (
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"sort"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/hose-project/hose/client"
	"github.com/hose-project/hose/cluster"
	"github.com/hose-project/hose/internal/testproc"
	"github.com/hose-project/hose/loadgen"
)

// Load shape shared by the scenarios unless one says otherwise.
const (
	defaultRate     = 400             // tracked requests per second
	defaultDuration = 6 * time.Second // of tracked load
	defaultFaultAt  = 2 * time.Second // into the load
	callTimeout     = 5 * time.Second // every tracked call's deadline
	// slowCall: an answer slower than this counts as not yet recovered.
	slowCall = time.Second
	// tail: every call started in the last tail of the run must succeed.
	tail = time.Second
)

// clusterSpec describes the cluster a scenario starts.
type clusterSpec struct {
	workers     int           // worker processes (default 3)
	concurrency int           // jobs per worker (default 4)
	sleep       time.Duration // time per job (default 2ms)
	workerFlags []string      // more chaos-worker flags
	brokerFlags []string      // more hose broker flags
	backendHost string        // the address the backend binds (default 127.0.0.1)
	netns       map[int]string
	brokers     int // brokers (default 1); workers serve all of them
}

// env is a running cluster: broker processes and a supervised pool of
// worker processes, all journaling into one directory.
type env struct {
	t         *testing.T
	spec      clusterSpec
	frontends []string
	backends  []string
	brokers   []*testproc.Proc
	journal   string
	sup       *cluster.Supervisor
	workerOut *testproc.Buffer
	probes    []*client.Client // one per broker, for pings; not the tracked load's client
}

func startEnv(t *testing.T, spec clusterSpec) *env {
	t.Helper()
	if spec.workers == 0 {
		spec.workers = 3
	}
	if spec.concurrency == 0 {
		spec.concurrency = 4
	}
	if spec.sleep == 0 {
		spec.sleep = 10 * time.Millisecond
	}
	if spec.backendHost == "" {
		spec.backendHost = "127.0.0.1"
	}
	if spec.brokers == 0 {
		spec.brokers = 1
	}
	e := &env{t: t, spec: spec, journal: t.TempDir(), workerOut: &testproc.Buffer{}}
	for range spec.brokers {
		e.frontends = append(e.frontends, "tcp://127.0.0.1:"+strconv.Itoa(freePort(t, "127.0.0.1")))
		e.backends = append(e.backends, "tcp://"+spec.backendHost+":"+strconv.Itoa(freePort(t, spec.backendHost)))
		e.brokers = append(e.brokers, nil)
	}
	for _, fe := range e.frontends {
		probe, err := client.New(client.Config{Endpoints: []string{fe}})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { probe.Close() })
		e.probes = append(e.probes, probe)
	}
	for i := range e.brokers {
		e.startBroker(i)
	}
	self, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	sup, err := cluster.NewSupervisor(cluster.SupervisorConfig{
		Count:      spec.workers,
		RestartMin: 100 * time.Millisecond,
		Command: func(slot int) *exec.Cmd {
			args := []string{"-backend", strings.Join(e.backends, ","), "-journal", e.journal,
				"-sleep", spec.sleep.String(), "-concurrency", strconv.Itoa(spec.concurrency)}
			args = append(args, spec.workerFlags...)
			var cmd *exec.Cmd
			if ns := spec.netns[slot]; ns != "" {
				cmd = exec.Command("ip", append([]string{"netns", "exec", ns, self}, args...)...)
			} else {
				cmd = exec.Command(self, args...)
			}
			cmd.Env = append(os.Environ(), roleEnv+"=worker")
			cmd.Stdout, cmd.Stderr = e.workerOut, e.workerOut
			return cmd
		},
	})
	if err != nil {
		t.Fatal(err)
	}
	if err := sup.Start(); err != nil {
		t.Fatal(err)
	}
	e.sup = sup
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 15*time.Second)
		defer cancel()
		if err := sup.Stop(ctx); err != nil {
			t.Errorf("stopping the workers: %v", err)
		}
		if t.Failed() {
			t.Logf("--- workers' output:\n%s", e.workerOut.String())
		}
	})
	e.waitWorkers(spec.workers, 10*time.Second)
	return e
}

// freePort returns a TCP port free on host at the time of the call; the
// broker binds it a moment later and keeps it across restarts.
func freePort(t testing.TB, host string) int {
	t.Helper()
	ln, err := net.Listen("tcp", net.JoinHostPort(host, "0"))
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().(*net.TCPAddr).Port
}

// startBroker starts broker i (again) on its endpoints and waits until it
// answers.
func (e *env) startBroker(i int) {
	e.t.Helper()
	args := []string{"broker", "-frontend", e.frontends[i], "-backend", e.backends[i], "-stats=", "-log-level", "warn"}
	args = append(args, e.spec.brokerFlags...)
	e.brokers[i] = testproc.Start(e.t, fmt.Sprintf("broker%d", i), testproc.Options{Merge: true}, append([]string{bins.hose}, args...)...)
	testproc.WaitFor(e.t, 10*time.Second, "broker answering", func() (bool, string) {
		if e.brokers[i].Exited() {
			e.t.Fatalf("broker %d exited: %s", i, e.brokers[i].Stdout.String())
		}
		n := e.workers(i)
		return n >= 0, "no answer to a ping"
	})
}

// workers asks broker i how many workers it has (-1: no answer).
func (e *env) workers(i int) int {
	ctx, cancel := context.WithTimeout(context.Background(), 300*time.Millisecond)
	defer cancel()
	info, err := e.probes[i].Ping(ctx)
	if err != nil {
		return -1
	}
	return info.Workers
}

// waitWorkers waits until every broker has n workers.
func (e *env) waitWorkers(n int, limit time.Duration) {
	e.t.Helper()
	testproc.WaitFor(e.t, limit, fmt.Sprintf("%d workers", n), func() (bool, string) {
		for i := range e.brokers {
			if got := e.workers(i); got != n {
				return false, fmt.Sprintf("broker %d has %d", i, got)
			}
		}
		return true, ""
	})
}

// workerPID returns the PID of the worker in slot.
func (e *env) workerPID(slot int) int {
	e.t.Helper()
	for _, c := range e.sup.Children() {
		if c.Slot == slot && c.PID != 0 {
			return c.PID
		}
	}
	e.t.Fatalf("no worker running in slot %d", slot)
	return 0
}

// tracker is the load's Executor: it gives every request a unique id in
// its payload (which the workers journal), checks each reply is the echo
// of its request, and keeps each call's start, end and outcome.
type tracker struct {
	c        *client.Client
	t0       time.Time
	next     atomic.Uint64
	inflight atomic.Int64
	mu       sync.Mutex
	calls    []call
}

type call struct {
	start, end time.Duration // since t0
	kind       loadgen.Kind
	wrong      bool // an ok answer that is not the echo of the request
	done       bool
}

func (tr *tracker) ExecuteTimed(ctx context.Context, payload []byte, opts ...client.CallOption) ([]byte, client.Timing, error) {
	id := tr.next.Add(1) - 1
	p := make([]byte, 0, len(trackedMagic)+8+len(payload))
	p = append(p, trackedMagic...)
	p = binary.BigEndian.AppendUint64(p, id)
	p = append(p, payload...)
	tr.inflight.Add(1)
	start := time.Since(tr.t0)
	res, tm, err := tr.c.ExecuteTimed(ctx, p, opts...)
	c := call{start: start, end: time.Since(tr.t0), kind: loadgen.Classify(err), done: true}
	tr.inflight.Add(-1)
	c.wrong = err == nil && !bytes.Equal(res, p)
	tr.mu.Lock()
	if n := int(id) + 1; n > len(tr.calls) {
		tr.calls = slices.Grow(tr.calls, n-len(tr.calls))[:n]
	}
	tr.calls[id] = c
	tr.mu.Unlock()
	return res, tm, err
}

// scenario is one fault under load.
type scenario struct {
	name     string
	spec     clusterSpec
	rate     float64
	duration time.Duration
	faultAt  time.Duration
	// fault injects the fault at faultAt and returns the moment recovery
	// is measured from (usually when the fault began; after a heal or
	// restart, when it ended) and a note for the table. nil: no fault.
	fault func(e *env) (from time.Time, note string)
	// allowed are the error kinds the fault may cause; any other error
	// fails the scenario.
	allowed []loadgen.Kind
	// noRecovery: the fault is continuous (churn); no recovery time.
	noRecovery bool
}

// row is one scenario's line in the summary table.
type row struct {
	name                         string
	sent, ok                     int
	errors                       map[string]int
	unanswered, hangs, dups, bad int
	recovery                     time.Duration // -1: not applicable
	note                         string
}

var table struct {
	mu   sync.Mutex
	rows []row
}

// run starts the scenario's cluster, drives it with hosebench's engine
// (loadgen) through a tracker, injects the fault, and checks and reports
// the outcome.
func run(t *testing.T, sc scenario) {
	if sc.rate == 0 {
		sc.rate = defaultRate
	}
	if sc.duration == 0 {
		sc.duration = defaultDuration
	}
	if sc.faultAt == 0 {
		sc.faultAt = defaultFaultAt
	}
	e := startEnv(t, sc.spec)
	c, err := client.New(client.Config{Endpoints: e.frontends, DefaultTimeout: callTimeout})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	tr := &tracker{c: c}

	var (
		from time.Time
		note string
	)
	faultDone := make(chan struct{})
	loadDone := make(chan *loadgen.Report, 1)
	tr.t0 = time.Now()
	go func() {
		rep, err := loadgen.Run(context.Background(), loadgen.Config{
			Rates: []float64{sc.rate}, Duration: sc.duration, Warmup: -1,
			Broker: e.frontends, Timeout: callTimeout, Size: 100, MaxInFlight: 20000,
			Executor: tr,
		})
		if err != nil {
			t.Errorf("load: %v", err)
		}
		loadDone <- rep
	}()
	go func() {
		defer close(faultDone)
		if sc.fault == nil {
			return
		}
		time.Sleep(time.Until(tr.t0.Add(sc.faultAt)))
		from, note = sc.fault(e)
	}()
	// A run ends by its duration plus the longest a call may take; a call
	// still out well after that has hung.
	hangLimit := sc.duration + callTimeout + 5*time.Second
	var rep *loadgen.Report
	select {
	case rep = <-loadDone:
	case <-time.After(time.Until(tr.t0.Add(hangLimit))):
	}
	<-faultDone
	r := row{name: sc.name, errors: map[string]int{}, recovery: -1, note: note}
	r.hangs = int(tr.inflight.Load())
	if rep == nil {
		t.Errorf("the load did not end within %v: %d calls hung", hangLimit, r.hangs)
		c.Close() // ends the hung calls with ErrClosed
		rep = <-loadDone
	}

	tr.mu.Lock()
	calls := tr.calls
	tr.mu.Unlock()
	executed := readJournals(t, e.journal)
	allowed := map[loadgen.Kind]bool{loadgen.KindOK: true}
	for _, k := range sc.allowed {
		allowed[k] = true
	}
	faultAt := sc.faultAt
	if !from.IsZero() {
		faultAt = from.Sub(tr.t0)
	}
	var lastBad time.Duration
	runEnd := sc.duration
	notRecovered := 0
	unexpected := map[loadgen.Kind]int{}
	for id, cl := range calls {
		if !cl.done {
			continue // a hang, counted above
		}
		r.sent++
		switch {
		case cl.kind == loadgen.KindOK:
			r.ok++
			if cl.wrong {
				r.bad++
			}
			if executed[uint64(id)] == 0 {
				t.Errorf("call %d answered ok but no worker journaled it", id)
			}
		case cl.kind == loadgen.KindTimeout:
			// Every fault here is detected well within a call's 5 s:
			// a call that reached its deadline got no answer in time.
			r.unanswered++
		default:
			r.errors[cl.kind.String()]++
		}
		if !allowed[cl.kind] && cl.kind != loadgen.KindTimeout {
			unexpected[cl.kind]++
		}
		bad := cl.kind != loadgen.KindOK || cl.end-cl.start > slowCall
		if bad && cl.end > lastBad {
			lastBad = cl.end
		}
		if bad && cl.start >= runEnd-tail {
			if notRecovered++; notRecovered <= 5 {
				t.Errorf("call %d started %v into the run (in its last %v) and was %v after %v: not recovered",
					id, cl.start.Round(time.Millisecond), tail, cl.kind, (cl.end - cl.start).Round(time.Millisecond))
			}
		}
	}
	for k, n := range unexpected {
		t.Errorf("%d calls ended %v, not an outcome this fault may cause", n, k)
	}
	if notRecovered > 5 {
		t.Errorf("... %d calls in all were slow or failed in the last %v", notRecovered, tail)
	}
	for _, n := range executed {
		if n > 1 {
			r.dups++
		}
	}
	if !sc.noRecovery && sc.fault != nil {
		r.recovery = max(0, lastBad-faultAt)
	}
	if rep != nil && len(rep.Runs) == 1 && uint64(r.sent) != rep.Runs[0].Sent {
		t.Errorf("hosebench counted %d requests sent, the tracker %d", rep.Runs[0].Sent, r.sent)
	}
	t.Logf("%s: sent %d, ok %d, errors %v, unanswered %d, hangs %d, duplicates %d, wrong replies %d, recovery %v; %s",
		sc.name, r.sent, r.ok, r.errors, r.unanswered, r.hangs, r.dups, r.bad, r.recovery, r.note)
	if r.sent == 0 || r.ok == 0 {
		t.Errorf("no load went through")
	}
	if r.unanswered != 0 || r.hangs != 0 || r.dups != 0 || r.bad != 0 {
		t.Errorf("unanswered %d, hangs %d, duplicates %d, wrong replies %d: all must be 0", r.unanswered, r.hangs, r.dups, r.bad)
	}
	for i, b := range e.brokers {
		if b != nil && b.Exited() {
			t.Errorf("broker %d died: %s", i, b.Stdout.String())
		}
	}
	table.mu.Lock()
	table.rows = append(table.rows, r)
	table.mu.Unlock()
}

// readJournals counts how many times each tracked id was executed.
func readJournals(t testing.TB, dir string) map[uint64]int {
	t.Helper()
	files, err := filepath.Glob(filepath.Join(dir, "journal-*"))
	if err != nil {
		t.Fatal(err)
	}
	n := map[uint64]int{}
	for _, f := range files {
		b, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		for ; len(b) >= 8; b = b[8:] {
			n[binary.BigEndian.Uint64(b)]++
		}
		if len(b) != 0 {
			t.Errorf("%s: a torn journal record", f)
		}
	}
	return n
}

// printTable writes the summary table in Markdown, for README.
func printTable(w io.Writer) {
	table.mu.Lock()
	defer table.mu.Unlock()
	if len(table.rows) == 0 {
		return
	}
	fmt.Fprintln(w, "| scenario | sent | replies | errors by kind | unanswered | hangs | duplicates | recovery | note |")
	fmt.Fprintln(w, "|---|---:|---:|---|---:|---:|---:|---:|---|")
	for _, r := range table.rows {
		var errs []string
		for k, n := range r.errors {
			errs = append(errs, fmt.Sprintf("%s %d", k, n))
		}
		sort.Strings(errs)
		if len(errs) == 0 {
			errs = []string{"none"}
		}
		rec := "–"
		if r.recovery >= 0 {
			rec = r.recovery.Round(time.Millisecond).String()
		}
		fmt.Fprintf(w, "| %s | %d | %d | %s | %d | %d | %d | %s | %s |\n",
			r.name, r.sent, r.ok, strings.Join(errs, ", "), r.unanswered, r.hangs, r.dups, rec, r.note)
	}
}

// errNoNetns: the machine cannot make network namespaces.
var errNoNetns = errors.New("network namespaces unavailable (needs root and iproute2)")
