package cluster

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/exec"
	"sync"
	"syscall"
	"time"
)

// SupervisorConfig configures a Supervisor. Zero fields take the defaults
// of DefaultSupervisorConfig.
type SupervisorConfig struct {
	// Command returns the command to run in slot (0-based). It is called
	// for every start and restart, so each gets a fresh *exec.Cmd; it may
	// set Stdout, Stderr, Env and SysProcAttr. Required.
	Command func(slot int) *exec.Cmd
	// Count is the number of processes Start runs.
	Count int
	// RestartMin and RestartMax bound the delay before restarting a process
	// that failed (exited non-zero or was killed by a signal): the delay
	// starts at RestartMin and doubles with each failure in a row, up to
	// RestartMax, so a crash loop does not spin. A process that exits with
	// status 0 (a worker that retired) is restarted at once. Defaults 100ms
	// and 5s.
	RestartMin time.Duration
	RestartMax time.Duration
	// StableAfter is how long a process must run for its slot's delay to
	// go back to RestartMin when it next fails. Default 5s.
	StableAfter time.Duration
	// Logger receives one line per start, exit and restart. Default: discard.
	Logger *slog.Logger
}

// DefaultSupervisorConfig returns a SupervisorConfig with every default
// filled in (Command is still nil).
func DefaultSupervisorConfig() SupervisorConfig {
	return SupervisorConfig{
		RestartMin:  100 * time.Millisecond,
		RestartMax:  5 * time.Second,
		StableAfter: 5 * time.Second,
	}
}

func (c SupervisorConfig) withDefaults() SupervisorConfig {
	d := DefaultSupervisorConfig()
	if c.RestartMin <= 0 {
		c.RestartMin = d.RestartMin
	}
	if c.RestartMax <= 0 {
		c.RestartMax = d.RestartMax
	}
	if c.RestartMax < c.RestartMin {
		c.RestartMax = c.RestartMin
	}
	if c.StableAfter <= 0 {
		c.StableAfter = d.StableAfter
	}
	if c.Logger == nil {
		c.Logger = slog.New(slog.NewTextHandler(io.Discard, nil))
	}
	return c
}

// Validate reports a configuration the supervisor cannot run with.
func (c SupervisorConfig) Validate() error {
	if c.Command == nil {
		return errors.New("cluster: supervisor needs a Command")
	}
	if c.Count < 0 {
		return fmt.Errorf("cluster: %d processes", c.Count)
	}
	return nil
}

// Errors returned by Supervisor methods.
var (
	// ErrSupervisorStopped: Stop was called.
	ErrSupervisorStopped = errors.New("cluster: supervisor stopped")
	// ErrSupervisorStarted: Start was called twice.
	ErrSupervisorStarted = errors.New("cluster: supervisor already started")
)

// Supervisor keeps a number of child processes running (hose cluster's
// workers): it restarts each one that exits, with a backoff for failures,
// and can change the number of processes while it runs. Its methods are
// safe for concurrent use, so a control endpoint can call SetCount while
// the supervisor runs.
//
// Each process lives in a numbered slot. A slot's goroutine is the only one
// that starts and waits for its processes; other goroutines only signal
// them.
type Supervisor struct {
	cfg SupervisorConfig

	mu       sync.Mutex
	slots    []*slot        // wanted slots; len is the target count
	live     map[*slot]bool // slots whose goroutine still runs (wanted or retiring)
	restarts uint64         // processes started again after an exit
	state    supervisorState
	wg       sync.WaitGroup
}

type supervisorState int

const (
	supervisorNew supervisorState = iota
	supervisorRunning
	supervisorStopped
)

// slot is one supervised position. Fields other than n and quit are guarded
// by Supervisor.mu.
type slot struct {
	n       int
	quit    chan struct{} // closed when the slot is removed or the supervisor stops
	proc    *os.Process   // the running process, nil between runs
	started time.Time
	starts  int
}

// ChildInfo describes one slot's current process.
type ChildInfo struct {
	Slot     int
	PID      int // 0 while the slot waits to restart
	Started  time.Time
	Starts   int  // processes this slot has started
	Retiring bool // removed by SetCount, stopping
}

// NewSupervisor checks cfg and returns a supervisor that runs nothing yet.
func NewSupervisor(cfg SupervisorConfig) (*Supervisor, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	return &Supervisor{
		cfg:  cfg.withDefaults(),
		live: make(map[*slot]bool),
	}, nil
}

// Start starts Config.Count processes. It returns at once: processes that
// fail to start are retried with the restart backoff.
func (s *Supervisor) Start() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	switch s.state {
	case supervisorRunning:
		return ErrSupervisorStarted
	case supervisorStopped:
		return ErrSupervisorStopped
	}
	s.state = supervisorRunning
	s.resize(s.cfg.Count)
	return nil
}

// SetCount changes the number of processes to n: it starts new slots, or
// asks the processes of the highest slots to stop (SIGTERM, so a worker
// finishes its jobs) and does not restart them. It returns without waiting
// for processes to start or stop; Count reports the new target at once,
// Running and Children the processes as they are.
func (s *Supervisor) SetCount(n int) error {
	if n < 0 {
		return fmt.Errorf("cluster: %d processes", n)
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	switch s.state {
	case supervisorNew:
		s.cfg.Count = n
		return nil
	case supervisorStopped:
		return ErrSupervisorStopped
	}
	s.resize(n)
	return nil
}

// resize adds or removes slots until n are wanted. Caller holds mu.
func (s *Supervisor) resize(n int) {
	for len(s.slots) > n {
		sl := s.slots[len(s.slots)-1]
		s.slots = s.slots[:len(s.slots)-1]
		s.cfg.Logger.Info("stopping process", "slot", sl.n, "reason", "count lowered", "count", n)
		s.retire(sl, syscall.SIGTERM)
	}
	for len(s.slots) < n {
		sl := &slot{n: len(s.slots), quit: make(chan struct{})}
		s.slots = append(s.slots, sl)
		s.live[sl] = true
		s.wg.Add(1)
		go s.run(sl)
	}
}

// retire closes sl's quit channel and signals its process. Caller holds mu.
func (s *Supervisor) retire(sl *slot, sig os.Signal) {
	select {
	case <-sl.quit:
	default:
		close(sl.quit)
	}
	if sl.proc != nil {
		_ = sl.proc.Signal(sig)
	}
}

// Count is the number of processes the supervisor keeps running.
func (s *Supervisor) Count() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.state == supervisorNew {
		return s.cfg.Count
	}
	return len(s.slots)
}

// Running is the number of processes alive now, retiring ones included.
func (s *Supervisor) Running() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	n := 0
	for sl := range s.live {
		if sl.proc != nil {
			n++
		}
	}
	return n
}

// Restarts is the number of times a slot started its process again after
// the previous one exited (retired, failed or was killed) or could not be
// started, since Start.
func (s *Supervisor) Restarts() uint64 {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.restarts
}

// Children describes every slot, wanted ones first in slot order, then
// retiring ones.
func (s *Supervisor) Children() []ChildInfo {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := make([]ChildInfo, 0, len(s.live))
	wanted := make(map[*slot]bool, len(s.slots))
	info := func(sl *slot, retiring bool) ChildInfo {
		ci := ChildInfo{Slot: sl.n, Started: sl.started, Starts: sl.starts, Retiring: retiring}
		if sl.proc != nil {
			ci.PID = sl.proc.Pid
		}
		return ci
	}
	for _, sl := range s.slots {
		wanted[sl] = true
		out = append(out, info(sl, false))
	}
	for sl := range s.live {
		if !wanted[sl] {
			out = append(out, info(sl, true))
		}
	}
	return out
}

// Stop asks every process to stop (SIGTERM) and waits for them all to
// exit. If ctx ends first, it kills those left (SIGKILL), waits for them
// and returns ctx.Err(). It is safe to call more than once.
func (s *Supervisor) Stop(ctx context.Context) error {
	s.mu.Lock()
	s.state = supervisorStopped
	s.slots = nil
	for sl := range s.live {
		s.retire(sl, syscall.SIGTERM)
	}
	s.mu.Unlock()

	done := make(chan struct{})
	go func() {
		s.wg.Wait()
		close(done)
	}()
	select {
	case <-done:
		return nil
	case <-ctx.Done():
	}
	s.mu.Lock()
	for sl := range s.live {
		if sl.proc != nil {
			s.cfg.Logger.Warn("process did not stop in time, killing it", "slot", sl.n, "pid", sl.proc.Pid)
			_ = sl.proc.Kill()
		}
	}
	s.mu.Unlock()
	<-done
	return ctx.Err()
}

// run is a slot's goroutine: it starts the slot's process, waits for it,
// and starts it again until the slot is removed.
func (s *Supervisor) run(sl *slot) {
	defer func() {
		s.mu.Lock()
		delete(s.live, sl)
		s.mu.Unlock()
		s.wg.Done()
	}()
	log := s.cfg.Logger.With("slot", sl.n)
	delay := s.cfg.RestartMin
	var timer *time.Timer
	for first := true; ; first = false {
		if !first {
			s.mu.Lock()
			s.restarts++
			s.mu.Unlock()
		}
		cmd := s.cfg.Command(sl.n)
		if err := cmd.Start(); err != nil {
			log.Error("cannot start process", "err", err, "retry_in", delay)
			if !s.pause(sl, &timer, delay) {
				return
			}
			delay = min(2*delay, s.cfg.RestartMax)
			continue
		}
		started := time.Now()
		s.mu.Lock()
		sl.proc = cmd.Process
		sl.started = started
		sl.starts++
		select {
		case <-sl.quit:
			// Removed while starting: retire missed this process.
			_ = cmd.Process.Signal(syscall.SIGTERM)
		default:
		}
		s.mu.Unlock()
		if first {
			log.Info("process started", "pid", cmd.Process.Pid)
		} else {
			log.Info("process restarted", "pid", cmd.Process.Pid, "start", sl.starts)
		}

		err := cmd.Wait()
		ran := time.Since(started)
		s.mu.Lock()
		sl.proc = nil
		s.mu.Unlock()
		select {
		case <-sl.quit:
			log.Info("process stopped", "pid", cmd.Process.Pid, "status", exitStatus(cmd, err), "ran", ran.Round(time.Millisecond))
			return
		default:
		}
		if err == nil {
			// A clean exit is deliberate (a worker retired): restart now.
			delay = s.cfg.RestartMin
			log.Info("process exited, restarting", "pid", cmd.Process.Pid, "status", "exit status 0", "ran", ran.Round(time.Millisecond))
			continue
		}
		if ran >= s.cfg.StableAfter {
			delay = s.cfg.RestartMin
		}
		log.Warn("process failed, restarting after a delay", "pid", cmd.Process.Pid,
			"status", exitStatus(cmd, err), "ran", ran.Round(time.Millisecond), "retry_in", delay)
		if !s.pause(sl, &timer, delay) {
			return
		}
		delay = min(2*delay, s.cfg.RestartMax)
	}
}

// pause waits d, or until the slot is removed (false).
func (s *Supervisor) pause(sl *slot, timer **time.Timer, d time.Duration) bool {
	if *timer == nil {
		*timer = time.NewTimer(d)
	} else {
		(*timer).Reset(d)
	}
	select {
	case <-(*timer).C:
		return true
	case <-sl.quit:
		(*timer).Stop()
		return false
	}
}

// exitStatus describes how a process ended ("exit status 1", "signal:
// killed").
func exitStatus(cmd *exec.Cmd, err error) string {
	if cmd.ProcessState != nil {
		return cmd.ProcessState.String()
	}
	if err != nil {
		return err.Error()
	}
	return "exited"
}
