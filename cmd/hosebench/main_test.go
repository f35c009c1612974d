package main

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"io"
	"math"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"testing"
	"time"

	"github.com/hose-project/hose/client"
)

// hosebench runs the command in-process and returns its exit code and
// output.
func hosebench(t testing.TB, ctx context.Context, args ...string) (code int, stdout, stderr string) {
	t.Helper()
	var out, errb bytes.Buffer
	code = run(ctx, args, &out, &errb)
	return code, out.String(), errb.String()
}

// jsonRun is the documented part of the -json schema.
type jsonRun struct {
	Mode         string             `json:"mode"`
	TargetRate   *float64           `json:"target_rate"`
	AchievedRate *float64           `json:"achieved_rate"`
	Throughput   *float64           `json:"throughput"`
	DurationS    *float64           `json:"duration_s"`
	WarmupS      *float64           `json:"warmup_s"`
	Sent         *uint64            `json:"sent"`
	OK           *uint64            `json:"ok"`
	Errors       map[string]uint64  `json:"errors"`
	ErrorTotal   *uint64            `json:"error_total"`
	Missed       *uint64            `json:"missed"`
	Workers      *int               `json:"workers"`
	Target       string             `json:"target"`
	Job          string             `json:"job"`
	Latency      map[string]float64 `json:"latency_us"`
	Uncorrected  map[string]float64 `json:"uncorrected_us"`
	Queue        map[string]float64 `json:"queue_us"`
	Service      map[string]float64 `json:"service_us"`
	Lag          map[string]float64 `json:"lag_us"`
	CPU          map[string]float64 `json:"cpu"`
}

var errorKinds = []string{"timeout", "no_worker", "busy", "worker_lost", "broker_gone", "worker_error", "too_large", "shutting_down", "other"}

// checkSchema fails the test when r lacks a documented field.
func checkSchema(t testing.TB, r jsonRun) {
	t.Helper()
	if r.TargetRate == nil || r.AchievedRate == nil || r.Throughput == nil || r.DurationS == nil || r.WarmupS == nil ||
		r.Sent == nil || r.OK == nil || r.ErrorTotal == nil || r.Missed == nil || r.Workers == nil {
		t.Fatalf("json run lacks a required field: %+v", r)
	}
	for _, k := range errorKinds {
		if _, ok := r.Errors[k]; !ok {
			t.Errorf("errors lacks %q: %v", k, r.Errors)
		}
	}
	for name, p := range map[string]map[string]float64{"latency_us": r.Latency, "uncorrected_us": r.Uncorrected, "queue_us": r.Queue, "service_us": r.Service, "lag_us": r.Lag} {
		for _, k := range []string{"p50", "p75", "p90", "p99", "p999", "p9999", "max", "mean", "count"} {
			if _, ok := p[k]; !ok {
				t.Errorf("%s lacks %q: %v", name, k, p)
			}
		}
	}
	l := r.Latency
	if !(l["p50"] <= l["p90"] && l["p90"] <= l["p99"] && l["p99"] <= l["p999"] && l["p999"] <= l["max"]) {
		t.Errorf("latency percentiles out of order: %v", l)
	}
	if _, ok := r.CPU["percent_of_core"]; !ok {
		t.Errorf("cpu lacks percent_of_core: %v", r.CPU)
	}
}

func readJSON(t testing.TB, name string, v any) {
	t.Helper()
	b, err := os.ReadFile(name)
	if err != nil {
		t.Fatal(err)
	}
	if err := json.Unmarshal(b, v); err != nil {
		t.Fatalf("%s: %v\n%s", name, err, b)
	}
}

// TestEmbedded is the README command, shortened: 2000/s for 2s on the
// embedded cluster must come within 2% of the target with no error, and
// write every output.
func TestEmbedded(t *testing.T) {
	dir := t.TempDir()
	jsonFile, hgrm, hlog := filepath.Join(dir, "out.json"), filepath.Join(dir, "out.hgrm"), filepath.Join(dir, "out.hlog")
	code, stdout, stderr := hosebench(t, context.Background(),
		"-rate", "2000", "-duration", "2s", "-warmup", "500ms", "-quiet",
		"-json", jsonFile, "-hgrm", hgrm, "-hlog", hlog)
	if code != exitOK {
		t.Fatalf("exit %d\nstdout:\n%s\nstderr:\n%s", code, stdout, stderr)
	}
	t.Logf("\n%s", stdout)
	for _, s := range []string{"achieved", "p99.99", "end-to-end", "uncorrected", "generator", "cpu"} {
		if !strings.Contains(stdout, s) {
			t.Errorf("report lacks %q", s)
		}
	}
	if stderr != "" {
		t.Errorf("stderr not empty (no progress line when not a terminal): %q", stderr)
	}

	var r jsonRun
	readJSON(t, jsonFile, &r)
	checkSchema(t, r)
	if *r.TargetRate != 2000 || r.Mode != "open" || *r.Workers != 2 || r.Target != "embedded" || r.Job != "echo" {
		t.Errorf("target_rate %v mode %q workers %d target %q job %q", *r.TargetRate, r.Mode, *r.Workers, r.Target, r.Job)
	}
	if math.Abs(*r.AchievedRate-2000) > 40 {
		t.Errorf("achieved %.1f/s, want 2000 ± 2%%", *r.AchievedRate)
	}
	if *r.ErrorTotal != 0 || *r.Missed != 0 || *r.OK != 4000 || *r.Sent != 4000 {
		t.Errorf("sent %d ok %d errors %v missed %d, want 4000 ok", *r.Sent, *r.OK, r.Errors, *r.Missed)
	}
	if math.Abs(*r.DurationS-2) > 0.01 || *r.WarmupS != 0.5 {
		t.Errorf("duration %.3fs warmup %.3fs", *r.DurationS, *r.WarmupS)
	}

	h, err := os.ReadFile(hgrm)
	if err != nil || !bytes.Contains(h, []byte("Percentile")) || !bytes.Contains(h, []byte("#[Max")) {
		t.Errorf("hgrm %v:\n%s", err, h)
	}
	l, err := os.ReadFile(hlog)
	if err != nil || !bytes.Contains(l, []byte("#[StartTime:")) || !bytes.Contains(l, []byte("Tag=w2-r2000,")) {
		t.Errorf("hlog %v:\n%s", err, l)
	}
}

// TestSweep: two rates, one comparison table, the sweep's JSON, one .hgrm
// per run, and exit code 3 when no rate meets the SLO.
func TestSweep(t *testing.T) {
	dir := t.TempDir()
	jsonFile, hgrm := filepath.Join(dir, "sweep.json"), filepath.Join(dir, "lat.hgrm")
	code, stdout, stderr := hosebench(t, context.Background(),
		"-rate", "200,400", "-workers", "1", "-duration", "300ms", "-warmup", "100ms",
		"-slo", "max=1ns", "-json", jsonFile, "-hgrm", hgrm)
	if code != exitSLOMissed {
		t.Fatalf("exit %d, want %d (no rate meets max<=1ns)\nstdout:\n%s\nstderr:\n%s", code, exitSLOMissed, stdout, stderr)
	}
	t.Logf("\n%s", stdout)
	for _, s := range []string{"workers", "throughput", "p99.9", "MISS", "none of the rates tried met it"} {
		if !strings.Contains(stdout, s) {
			t.Errorf("sweep report lacks %q", s)
		}
	}
	var rep struct {
		Runs  []jsonRun `json:"runs"`
		Knees []struct {
			Workers int     `json:"workers"`
			Rate    float64 `json:"rate"`
		} `json:"knees"`
		SLO string `json:"slo"`
	}
	readJSON(t, jsonFile, &rep)
	if len(rep.Runs) != 2 || *rep.Runs[0].TargetRate != 200 || *rep.Runs[1].TargetRate != 400 {
		t.Fatalf("runs %+v", rep.Runs)
	}
	for _, r := range rep.Runs {
		checkSchema(t, r)
	}
	if len(rep.Knees) != 1 || rep.Knees[0].Workers != 1 || rep.Knees[0].Rate != 0 || rep.SLO != "max<=1ns" {
		t.Errorf("knees %+v slo %q", rep.Knees, rep.SLO)
	}
	for _, name := range []string{"lat-w1-r200.hgrm", "lat-w1-r400.hgrm"} {
		if _, err := os.Stat(filepath.Join(dir, name)); err != nil {
			t.Error(err)
		}
	}
}

// TestInterrupted: an interrupt prints the partial report and exits 130.
func TestInterrupted(t *testing.T) {
	// The interrupt's timing is the stimulus, not synchronisation.
	ctx, cancel := context.WithTimeout(context.Background(), 700*time.Millisecond)
	defer cancel()
	start := time.Now()
	code, stdout, stderr := hosebench(t, ctx, "-rate", "500", "-duration", "1m", "-warmup", "0")
	if code != exitInterrupted {
		t.Fatalf("exit %d, want %d\n%s%s", code, exitInterrupted, stdout, stderr)
	}
	if el := time.Since(start); el > 15*time.Second {
		t.Errorf("took %v to stop", el)
	}
	if !strings.Contains(stdout, "interrupted") || !strings.Contains(stdout, "p99") {
		t.Errorf("partial report:\n%s", stdout)
	}
}

func TestUsage(t *testing.T) {
	tests := [][]string{
		{"-rate", "fast"},
		{"-rate", "-5"},
		{"-workers", "0"},
		{"-workers", "two"},
		{"-slo", "p99"},
		{"-slo", "p99=soon"},
		{"-arrival", "bursty"},
		{"-job", "dance"},
		{"-broker", "tcp://127.0.0.1:1", "-workers", "2"},
		{"-broker", "tcp://127.0.0.1:1", "-compare-direct"},
		{"-nosuchflag"},
		{"extra"},
	}
	for _, args := range tests {
		code, _, stderr := hosebench(t, context.Background(), args...)
		if code != exitUsage {
			t.Errorf("hosebench %s: exit %d, want %d (%s)", strings.Join(args, " "), code, exitUsage, stderr)
		}
	}
	if code, stdout, _ := hosebench(t, context.Background(), "-h"); code != exitOK || !strings.Contains(stdout, "-max-inflight") {
		t.Errorf("-h: exit %d\n%s", code, stdout)
	}
}

func TestParseRates(t *testing.T) {
	got, err := parseRates("1000, 5k,max,0,2.5")
	want := []float64{1000, 5000, 0, 0, 2.5}
	if err != nil || len(got) != len(want) {
		t.Fatalf("parseRates = %v, %v", got, err)
	}
	for i := range want {
		if got[i] != want[i] {
			t.Errorf("rate %d = %g, want %g", i, got[i], want[i])
		}
	}
}

// TestLiveCluster drives separately started `hose broker` and `hose worker`
// processes, as hosebench -broker does in production.
func TestLiveCluster(t *testing.T) {
	if testing.Short() {
		t.Skip("builds and starts hose processes")
	}
	hose := buildHose(t)
	broker := exec.Command(hose, "broker", "-frontend", "tcp://127.0.0.1:*", "-backend", "tcp://127.0.0.1:*", "-log-format", "json")
	front, back := startAndFindEndpoints(t, broker)
	worker := exec.Command(hose, "worker", "-backend", back, "-handler", "echo", "-concurrency", "64")
	startProc(t, worker)

	// Wait until the worker has registered.
	c, err := client.Dial(front)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	deadline := time.Now().Add(10 * time.Second)
	tick := time.NewTicker(20 * time.Millisecond)
	defer tick.Stop()
	for ; ; <-tick.C {
		ctx, cancel := context.WithTimeout(context.Background(), time.Second)
		info, err := c.Ping(ctx)
		cancel()
		if err == nil && info.Workers == 1 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("worker not registered: %+v %v", info, err)
		}
	}

	jsonFile := filepath.Join(t.TempDir(), "live.json")
	code, stdout, stderr := hosebench(t, context.Background(),
		"-broker", front, "-job", "echo", "-rate", "1000", "-duration", "1s", "-warmup", "200ms", "-json", jsonFile)
	if code != exitOK {
		t.Fatalf("exit %d\n%s%s", code, stdout, stderr)
	}
	t.Logf("\n%s", stdout)
	var r jsonRun
	readJSON(t, jsonFile, &r)
	checkSchema(t, r)
	if r.Target != front || *r.Workers != 1 || *r.ErrorTotal != 0 || *r.OK != 1000 {
		t.Errorf("target %q workers %d ok %d errors %v", r.Target, *r.Workers, *r.OK, r.Errors)
	}
	if math.Abs(*r.AchievedRate-1000) > 20 {
		t.Errorf("achieved %.1f/s, want 1000 ± 2%%", *r.AchievedRate)
	}
}

// buildHose builds cmd/hose into a temporary directory.
func buildHose(t testing.TB) string {
	t.Helper()
	bin := filepath.Join(t.TempDir(), "hose")
	gotool := filepath.Join(runtime.GOROOT(), "bin", "go")
	out, err := exec.Command(gotool, "build", "-o", bin, "github.com/hose-project/hose/cmd/hose").CombinedOutput()
	if err != nil {
		t.Fatalf("building hose: %v\n%s", err, out)
	}
	return bin
}

// startProc starts cmd and kills it when the test ends.
func startProc(t testing.TB, cmd *exec.Cmd) {
	t.Helper()
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		_ = cmd.Process.Kill()
		_ = cmd.Wait()
	})
}

// startAndFindEndpoints starts a broker bound to free ports (tcp://...:*)
// and reads the ports it got from its "broker started" log line.
func startAndFindEndpoints(t testing.TB, cmd *exec.Cmd) (front, back string) {
	t.Helper()
	stderr, err := cmd.StderrPipe()
	if err != nil {
		t.Fatal(err)
	}
	startProc(t, cmd)
	type eps struct{ front, back string }
	found := make(chan eps, 1)
	go func() {
		sc := bufio.NewScanner(stderr)
		for sc.Scan() {
			var line struct {
				Msg      string `json:"msg"`
				Frontend string `json:"frontend"`
				Backend  string `json:"backend"`
			}
			if json.Unmarshal(sc.Bytes(), &line) == nil && line.Msg == "broker started" {
				found <- eps{line.Frontend, line.Backend}
				break
			}
		}
		_, _ = io.Copy(io.Discard, stderr)
	}()
	select {
	case e := <-found:
		return e.front, e.back
	case <-time.After(10 * time.Second):
		t.Fatal("broker did not log its endpoints")
		return "", ""
	}
}
