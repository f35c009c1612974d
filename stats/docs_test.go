package stats_test

import (
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/hose-project/hose/cluster"
	"github.com/hose-project/hose/internal/demo"
)

// python returns an interpreter that imports zmq, or skips the test.
func python(t *testing.T) string {
	t.Helper()
	for _, p := range []string{"/usr/bin/python3", "python3"} {
		if exec.Command(p, "-c", "import zmq").Run() == nil {
			return p
		}
	}
	t.Skip("no python3 with pyzmq (apt-get install python3-zmq)")
	return ""
}

// docBlocks returns the ```python blocks of docs/STATS.md.
func docBlocks(t *testing.T) []string {
	t.Helper()
	doc, err := os.ReadFile("../docs/STATS.md")
	if err != nil {
		t.Fatal(err)
	}
	var out []string
	for _, m := range regexp.MustCompile("(?s)```python\n(.*?)```").FindAllStringSubmatch(string(doc), -1) {
		out = append(out, m[1])
	}
	if len(out) != 2 {
		t.Fatalf("docs/STATS.md has %d python blocks, want 2", len(out))
	}
	return out
}

// TestDocPythonReadsSnapshots runs the documented Python reader against a
// real broker under load: it decodes the histograms itself and checks its
// percentiles against the broker's.
func TestDocPythonReadsSnapshots(t *testing.T) {
	py := python(t)
	script := filepath.Join(t.TempDir(), "hose_stats.py")
	if err := os.WriteFile(script, []byte(docBlocks(t)[0]), 0o644); err != nil {
		t.Fatal(err)
	}
	d, err := demo.Start(demo.Config{Job: "sleep:1ms", Workers: 2, Concurrency: 4, Rate: 500, StatsInterval: 200 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	defer d.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	out, err := exec.CommandContext(ctx, py, script, d.StatsEndpoint(), "5").CombinedOutput()
	if err != nil {
		t.Fatalf("%v\n%s", err, out)
	}
	if n := strings.Count(string(out), "broker's own"); n != 5 {
		t.Fatalf("output:\n%s", out)
	}
}

// TestDocPythonControl runs the documented control request.
func TestDocPythonControl(t *testing.T) {
	py := python(t)
	d, err := demo.Start(demo.Config{Job: "echo", Workers: 1})
	if err != nil {
		t.Fatal(err)
	}
	defer d.Close()
	srv, err := cluster.ServeControl(cluster.ControlConfig{Endpoint: "tcp://127.0.0.1:*"}, scaler{d})
	if err != nil {
		t.Fatal(err)
	}
	defer srv.Close()
	code := strings.ReplaceAll(docBlocks(t)[1], "tcp://127.0.0.1:5558", srv.Endpoint())
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	out, err := exec.CommandContext(ctx, py, "-c", code).CombinedOutput()
	if err != nil {
		t.Fatalf("%v\n%s", err, out)
	}
	if strings.TrimSpace(string(out)) != "{'ok': True, 'workers': 8}" {
		t.Fatalf("output %q", out)
	}
	if n, _ := d.Workers(ctx); n != 8 {
		t.Fatalf("demo has %d workers", n)
	}
}

// scaler adapts the demo to cluster.Scaler.
type scaler struct{ d *demo.Demo }

func (s scaler) Workers() int { n, _ := s.d.Workers(context.Background()); return n }
func (s scaler) SetWorkers(n int) error {
	_, err := s.d.SetWorkers(context.Background(), n)
	return err
}
