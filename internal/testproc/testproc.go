// Package testproc runs child processes for tests: each is reaped by its
// own goroutine, killed when the test ends if still running, and its output
// is logged when the test failed. Only tests import it.
package testproc

import (
	"bytes"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"sync"
	"syscall"
	"testing"
	"time"
)

// Buffer is a bytes.Buffer that a process's copier goroutine and the test
// can share.
type Buffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *Buffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *Buffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

// Options adjust Start.
type Options struct {
	Dir    string   // working directory ("" for the test's)
	Env    []string // added to the test's environment
	Merge  bool     // stdout and stderr into one buffer (Stdout)
	Gentle bool     // at the end: SIGTERM and up to 10 s before SIGKILL
}

// Proc is a running (or finished) child process.
type Proc struct {
	Name   string
	Cmd    *exec.Cmd
	Stdout *Buffer
	Stderr *Buffer // the same buffer as Stdout with Options.Merge
	done   chan struct{}
}

// Start runs argv and ties the process's life to the test.
func Start(t testing.TB, name string, opt Options, argv ...string) *Proc {
	t.Helper()
	p := &Proc{Name: name, Stdout: &Buffer{}, done: make(chan struct{})}
	p.Stderr = p.Stdout
	if !opt.Merge {
		p.Stderr = &Buffer{}
	}
	p.Cmd = exec.Command(argv[0], argv[1:]...)
	p.Cmd.Dir = opt.Dir
	if len(opt.Env) > 0 {
		p.Cmd.Env = append(os.Environ(), opt.Env...)
	}
	p.Cmd.Stdout, p.Cmd.Stderr = p.Stdout, p.Stderr
	if err := p.Cmd.Start(); err != nil {
		t.Fatalf("start %s: %v", name, err)
	}
	go func() {
		_ = p.Cmd.Wait()
		close(p.done)
	}()
	t.Cleanup(func() {
		if opt.Gentle && !p.Exited() {
			_ = p.Cmd.Process.Signal(syscall.SIGTERM)
			select {
			case <-p.done:
			case <-time.After(10 * time.Second):
				t.Errorf("%s did not stop within 10s of SIGTERM", name)
			}
		}
		if !p.Exited() {
			_ = p.Cmd.Process.Kill()
			<-p.done
		}
		if t.Failed() {
			out := p.Stderr.String()
			if !opt.Merge {
				out = p.Stdout.String() + out
			}
			t.Logf("--- %s (pid %d) output:\n%s", name, p.PID(), out)
		}
	})
	return p
}

// PID is the process id.
func (p *Proc) PID() int { return p.Cmd.Process.Pid }

// Exited reports whether the process has exited and been reaped.
func (p *Proc) Exited() bool {
	select {
	case <-p.done:
		return true
	default:
		return false
	}
}

// Signal sends sig to the process.
func (p *Proc) Signal(t testing.TB, sig syscall.Signal) {
	t.Helper()
	if err := p.Cmd.Process.Signal(sig); err != nil {
		t.Fatalf("signal %v to %s: %v", sig, p.Name, err)
	}
}

// Wait waits up to limit for the process to exit and returns its exit code
// (-1 when a signal ended it).
func (p *Proc) Wait(t testing.TB, limit time.Duration) int {
	t.Helper()
	select {
	case <-p.done:
		return p.Cmd.ProcessState.ExitCode()
	case <-time.After(limit):
		t.Fatalf("%s still running after %v", p.Name, limit)
		return 0
	}
}

// WaitFor polls cond every 10 ms until it holds; after limit it fails the
// test with cond's last explanation. Tests wait with it instead of
// sleeping.
func WaitFor(t testing.TB, limit time.Duration, what string, cond func() (bool, string)) {
	t.Helper()
	deadline := time.Now().Add(limit)
	tick := time.NewTicker(10 * time.Millisecond)
	defer tick.Stop()
	for {
		ok, why := cond()
		if ok {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %v waiting for %s (last: %s)", limit, what, why)
		}
		<-tick.C
	}
}

// GoTool is the go command that builds the binaries tests run: the one on
// PATH, else the one of the running toolchain.
func GoTool() string {
	if p, err := exec.LookPath("go"); err == nil {
		return p
	}
	return filepath.Join(runtime.GOROOT(), "bin", "go")
}
