package worker

import (
	"context"
	"fmt"
	"math/rand/v2"
	"os"
	"runtime"
	"runtime/debug"
	"sync"
	"sync/atomic"
	"time"

	zmq "github.com/pebbe/zmq4"

	"github.com/hose-project/hose/internal/wake"
	"github.com/hose-project/hose/internal/zsock"
	"github.com/hose-project/hose/protocol"
)

var (
	hdrReady      = protocol.Header(protocol.Worker, protocol.CmdReady)
	hdrResult     = protocol.Header(protocol.Worker, protocol.CmdResult)
	hdrHeartbeat  = protocol.Header(protocol.Worker, protocol.CmdHeartbeat)
	hdrDrain      = protocol.Header(protocol.Worker, protocol.CmdDrain)
	hdrDisconnect = protocol.Header(protocol.Worker, protocol.CmdDisconnect)
)

const batchMax = 256 << 10

// task is a job on its way through the handler pool and back.
type task struct {
	job    Job
	gen    uint64 // connection generation the job came from
	status protocol.Status
	result []byte
}

var taskPool = sync.Pool{New: func() any { return new(task) }}

// session is one Run: the socket owner and its handler pool.
type session struct {
	cfg    Config
	h      Handler
	zctx   *zmq.Context
	waiter *wake.Waiter
	tasks  chan *task
	pool   sync.WaitGroup
	base   context.Context
	kill   context.CancelFunc
	start  time.Time
	ready  []byte // READY body

	mu      sync.Mutex
	results []*task

	stopReq atomic.Bool

	// owner only
	sock       *zmq.Socket
	watch      *wake.Watch
	readable   bool
	gen        uint64
	registered bool
	hb         int64
	liveness   int64
	maxPayload int
	lastHeard  int64
	lastSent   int64
	retryAt    int64 // when to reconnect (0: connected)
	backoff    time.Duration
	running    int
	overflow   []*task
	jobsDone   int
	retireAt   int64
	stopping   bool
	drained    bool // the broker acknowledged DRAIN (this registration)
	asked      bool // a READY is out, unanswered
	stopErr    error
	stopBy     int64
	out        []byte
}

func newSession(cfg Config, h Handler) (*session, error) {
	zctx, err := zmq.NewContext()
	if err != nil {
		return nil, fmt.Errorf("worker: zmq context: %w", err)
	}
	host, _ := os.Hostname()
	rd := protocol.Ready{Capacity: uint16(cfg.Concurrency + cfg.Prefetch), PID: uint32(os.Getpid()), Host: host,
		Version: protocol.Version, Services: cfg.Services}
	s := &session{
		cfg: cfg, h: h, zctx: zctx, waiter: wake.New(),
		tasks:      make(chan *task, cfg.Concurrency+cfg.Prefetch),
		start:      time.Now(),
		ready:      protocol.AppendReady(nil, &rd),
		hb:         int64(cfg.HeartbeatInterval),
		liveness:   int64(cfg.Liveness),
		maxPayload: 8 << 20,
		backoff:    cfg.ReconnectMin,
	}
	s.base, s.kill = context.WithCancel(context.Background())
	if cfg.MaxAge > 0 {
		age := cfg.MaxAge
		if cfg.MaxAgeDelta > 0 {
			age += rand.N(cfg.MaxAgeDelta)
		}
		s.retireAt = int64(age)
	}
	return s, nil
}

func (s *session) now() int64 { return int64(time.Since(s.start)) }

func (s *session) run(ctx context.Context) error {
	for i := 0; i < s.cfg.Concurrency; i++ {
		s.pool.Add(1)
		go s.serve()
	}
	stopWatch := make(chan struct{})
	go func() {
		select {
		case <-ctx.Done():
			s.stopReq.Store(true)
			s.waiter.Signal()
		case <-stopWatch:
		}
	}()
	err := s.loop()
	close(stopWatch)
	if s.running > 0 {
		// Drain timed out or the broker is gone: abandon what still runs.
		s.kill()
	}
	close(s.tasks)
	if s.running == 0 {
		s.pool.Wait()
	}
	s.kill()
	s.closeSocket()
	s.zctx.Term()
	return err
}

func (s *session) closeSocket() {
	s.watch.Close()
	s.watch = nil
	if s.sock != nil {
		s.sock.Close()
		s.sock = nil
	}
	s.readable = false
}

func (s *session) connect(now int64) error {
	s.closeSocket()
	sock, err := s.zctx.NewSocket(zmq.DEALER)
	if err != nil {
		return err
	}
	_ = sock.SetLinger(100 * time.Millisecond)
	_ = sock.SetSndhwm(100000)
	_ = sock.SetRcvhwm(100000)
	_ = sock.SetReconnectIvl(100 * time.Millisecond)
	_ = sock.SetReconnectIvlMax(time.Second)
	if err := s.setCurve(sock); err != nil {
		sock.Close()
		return err
	}
	if err := sock.Connect(s.cfg.Backend); err != nil {
		sock.Close()
		return fmt.Errorf("worker: connect %s: %w", s.cfg.Backend, err)
	}
	watch, err := s.waiter.Watch(sock)
	if err != nil {
		sock.Close()
		return err
	}
	s.sock, s.watch = sock, watch
	s.gen++
	s.registered = false
	s.drained = false
	s.retryAt = 0
	s.lastHeard = now
	s.register(now)
	return nil
}

// setCurve makes sock a CURVE client when the config names a server key.
func (s *session) setCurve(sock *zmq.Socket) error {
	if s.cfg.CurveServerKey == "" {
		return nil
	}
	if err := zsock.CurveClient(sock, s.cfg.CurveServerKey, s.cfg.CurvePublicKey, s.cfg.CurveSecretKey); err != nil {
		return fmt.Errorf("worker: CURVE: %w", err)
	}
	return nil
}

func (s *session) register(now int64) {
	s.asked = true
	s.send(hdrReady, s.ready, now)
}

func (s *session) send(hdr, body []byte, now int64) {
	if s.sock == nil {
		return
	}
	if err := zsock.Send(s.sock, nil, hdr, body, zmq.DONTWAIT); err == nil {
		s.lastSent = now
	}
}

func (s *session) loop() error {
	if err := s.connect(s.now()); err != nil {
		return err
	}
	s.cfg.Logger.Info("worker started", "backend", s.cfg.Backend, "services", s.cfg.Services, "concurrency", s.cfg.Concurrency, "prefetch", s.cfg.Prefetch)
	nextTick := s.now()
	for {
		if !s.readable {
			now := s.now()
			timeout := nextTick - now
			if s.retryAt > 0 {
				timeout = min(timeout, s.retryAt-now)
			}
			s.waiter.Sleep()
			s.mu.Lock()
			busy := len(s.results) > 0
			s.mu.Unlock()
			if busy || (s.stopReq.Load() && !s.stopping) {
				s.waiter.Awake()
			} else {
				s.waiter.Wait(time.Duration(timeout))
			}
			s.checkReadable()
		}
		now := s.now()
		if s.readable {
			if done, err := s.drain(now); done {
				return err
			}
		}
		// Let runnable handlers (those just given jobs, or finishing
		// theirs) run first, so fast jobs' results leave in this
		// iteration's batch rather than one wake-up each.
		runtime.Gosched()
		s.sendResults(now)
		if s.stopReq.Load() && !s.stopping {
			s.beginStop(nil, now, "stop requested")
		}
		if s.retireAt > 0 && now >= s.retireAt && !s.stopping {
			s.beginStop(ErrRetired, now, "max age reached")
		}
		// Leave once every job is done and the broker has acknowledged the
		// DRAIN (jobs it sent before that arrive before the ack).
		// A READY still unanswered counts: the broker may have registered
		// us and be sending jobs, so wait for its WELCOME, DRAIN and ack.
		if s.stopping && ((s.running == 0 && (s.drained || (!s.registered && !s.asked))) || now >= s.stopBy) {
			if s.running > 0 {
				s.cfg.Logger.Warn("drain timed out, abandoning jobs", "running", s.running)
			}
			if s.registered {
				s.send(hdrDisconnect, nil, now)
			}
			s.cfg.Logger.Info("worker stopped", "jobs", s.jobsDone)
			return s.stopErr
		}
		if now >= nextTick {
			if done, err := s.tick(now); done {
				return err
			}
			nextTick = now + s.hb/4
		}
		// Sending may have consumed the edge that announced a message.
		s.checkReadable()
	}
}

func (s *session) checkReadable() {
	s.readable = s.watch.Ready()
}

// beginStop starts a graceful stop: no more jobs, finish those held.
func (s *session) beginStop(reason error, now int64, why string) {
	s.stopping = true
	s.stopErr = reason
	s.stopBy = now + int64(s.cfg.DrainTimeout)
	s.cfg.Logger.Info("worker draining", "reason", why, "running", s.running)
	if s.registered {
		s.send(hdrDrain, nil, now)
	}
}

// drain reads what the broker sent. done reports that Run must return.
func (s *session) drain(now int64) (done bool, err error) {
	var m zsock.Msg
	for i := 0; i < 256; i++ {
		if err := zsock.Recv(s.sock, zmq.DONTWAIT, false, &m); err != nil {
			return false, nil
		}
		cmd, err := protocol.ParseHeader(m.Header, protocol.Worker)
		if err != nil {
			if protocol.IsClientHeader(m.Header) {
				s.cfg.Logger.Error("the backend endpoint answers in the client dialect: it is a broker frontend; point the worker at the broker's backend", "backend", s.cfg.Backend)
			} else {
				s.cfg.Logger.Warn("dropping malformed message from broker", "err", err)
			}
			continue
		}
		s.lastHeard = now
		switch cmd {
		case protocol.CmdWelcome:
			wl, err := protocol.DecodeWelcome(m.Body)
			if err != nil {
				s.cfg.Logger.Warn("malformed WELCOME", "err", err)
				continue
			}
			s.registered = true
			s.asked = false
			s.backoff = s.cfg.ReconnectMin
			if wl.HeartbeatMS > 0 {
				s.hb = int64(wl.HeartbeatMS) * int64(time.Millisecond)
			}
			if wl.Liveness > 0 {
				s.liveness = int64(wl.Liveness)
			}
			if wl.MaxPayload > 0 {
				s.maxPayload = int(wl.MaxPayload)
			}
			s.cfg.Logger.Debug("registered", "worker_id", wl.WorkerID, "heartbeat_ms", wl.HeartbeatMS)
			if s.stopping {
				s.send(hdrDrain, nil, now)
			}
		case protocol.CmdJob:
			s.jobs(m.Body, now)
		case protocol.CmdHeartbeat:
		case protocol.CmdDrain:
			s.drained = true
		case protocol.CmdDisconnect:
			s.cfg.Logger.Info("broker said disconnect", "reason", string(m.Body))
			if s.stopping {
				return true, s.stopErr
			}
			if s.cfg.ExitOnBrokerLoss {
				return true, ErrBrokerLost
			}
			// The broker forgot us (it restarted, or dropped us as lost or
			// slow): register again after a backoff.
			s.registered = false
			s.asked = false
			s.drained = false
			s.gen++
			s.retryAt = now + int64(s.backoff)
			s.backoff = min(2*s.backoff, s.cfg.ReconnectMax)
			return false, nil
		default:
			s.cfg.Logger.Warn("dropping unknown command from broker", "command", cmd)
		}
	}
	return false, nil
}

func (s *session) jobs(body []byte, now int64) {
	var r protocol.Job
	wall := time.Now()
	for len(body) > 0 {
		var err error
		if body, err = protocol.NextJob(body, &r); err != nil {
			s.cfg.Logger.Warn("dropping malformed job batch", "err", err)
			return
		}
		t := taskPool.Get().(*task)
		t.gen = s.gen
		t.job = Job{
			ID: r.ID, Payload: r.Payload, Params: s.cfg.Params, headers: r.Headers,
			Deadline:   wall.Add(time.Duration(r.TimeoutMS) * time.Millisecond),
			Idempotent: r.Flags&protocol.FlagIdempotent != 0,
		}
		if len(r.Service) > 0 {
			t.job.Service = s.serviceName(r.Service)
		} else {
			t.job.Service = protocol.DefaultService
		}
		s.running++
		if len(s.overflow) == 0 {
			select {
			case s.tasks <- t:
				continue
			default:
			}
		}
		s.overflow = append(s.overflow, t)
	}
}

// serviceName returns the configured name equal to b without allocating.
func (s *session) serviceName(b []byte) string {
	for _, name := range s.cfg.Services {
		if name == string(b) {
			return name
		}
	}
	return string(b)
}

// serve is one goroutine of the handler pool.
func (s *session) serve() {
	defer s.pool.Done()
	for t := range s.tasks {
		s.runTask(t)
		s.mu.Lock()
		s.results = append(s.results, t)
		s.mu.Unlock()
		s.waiter.Signal()
	}
}

func (s *session) runTask(t *task) {
	ctx := &jobCtx{Context: s.base, deadline: t.job.Deadline}
	defer ctx.end()
	if s.cfg.TimeLimit <= 0 {
		t.result, t.status = s.call(ctx, &t.job)
		return
	}
	type outcome struct {
		res []byte
		st  protocol.Status
	}
	ch := make(chan outcome, 1)
	job := t.job // the abandoned handler keeps its own copy
	go func() {
		res, st := s.call(ctx, &job)
		ch <- outcome{res, st}
	}()
	timer := time.NewTimer(s.cfg.TimeLimit)
	defer timer.Stop()
	select {
	case o := <-ch:
		t.result, t.status = o.res, o.st
	case <-timer.C:
		s.cfg.Logger.Warn("job exceeded the time limit; abandoning it", "job", t.job.ID, "limit", s.cfg.TimeLimit)
		t.result, t.status = []byte(fmt.Sprintf("time limit exceeded (%v)", s.cfg.TimeLimit)), protocol.StatusWorkerError
	}
}

// call runs the handler, turning an error or a panic into a worker error.
func (s *session) call(ctx context.Context, j *Job) (res []byte, st protocol.Status) {
	defer func() {
		if r := recover(); r != nil {
			s.cfg.Logger.Error("handler panicked", "job", j.ID, "panic", r)
			res, st = []byte(fmt.Sprintf("panic: %v\n%s", r, debug.Stack())), protocol.StatusWorkerError
		}
	}()
	out, err := s.h.Handle(ctx, j)
	if err != nil {
		return []byte(err.Error()), protocol.StatusWorkerError
	}
	return out, protocol.StatusOK
}

// sendResults sends finished jobs of the current connection as one batch.
func (s *session) sendResults(now int64) {
	s.mu.Lock()
	results := s.results
	s.results = nil
	s.mu.Unlock()
	if len(results) == 0 {
		return
	}
	for _, t := range results {
		s.running--
		if t.gen == s.gen && s.registered {
			res, st := t.result, t.status
			if len(res) > s.maxPayload {
				res, st = []byte(fmt.Sprintf("result of %d bytes exceeds the broker's limit of %d", len(res), s.maxPayload)), protocol.StatusWorkerError
			}
			s.out = protocol.AppendResult(s.out, t.job.ID, st, res)
			if len(s.out) >= batchMax {
				s.send(hdrResult, s.out, now)
				s.out = s.out[:0]
			}
		}
		s.jobsDone++
		*t = task{}
		taskPool.Put(t)
	}
	if len(s.out) > 0 {
		s.send(hdrResult, s.out, now)
		if cap(s.out) > 4*batchMax {
			s.out = nil
		}
		s.out = s.out[:0]
	}
	// Feed the pool from the overflow now that handlers are free.
	for len(s.overflow) > 0 {
		select {
		case s.tasks <- s.overflow[0]:
			s.overflow[0] = nil
			s.overflow = s.overflow[1:]
			continue
		default:
		}
		break
	}
	if s.cfg.MaxJobs > 0 && s.jobsDone >= s.cfg.MaxJobs && !s.stopping {
		s.beginStop(ErrRetired, now, "max jobs reached")
	}
}

// tick heartbeats, notices a silent broker and reconnects after backoff.
func (s *session) tick(now int64) (done bool, err error) {
	if s.retryAt > 0 {
		if now >= s.retryAt {
			s.retryAt = 0
			if s.sock == nil {
				// The broker went silent: start over on a fresh connection.
				if err := s.connect(now); err != nil {
					return true, err
				}
			} else {
				// The broker said DISCONNECT: register again.
				s.lastHeard = now
				s.register(now)
			}
		}
		return false, nil
	}
	if now-s.lastHeard > s.hb*s.liveness {
		s.cfg.Logger.Warn("broker silent", "for", time.Duration(now-s.lastHeard))
		if s.stopping {
			return true, s.stopErr
		}
		if s.cfg.ExitOnBrokerLoss {
			return true, ErrBrokerLost
		}
		s.registered = false
		s.gen++
		s.closeSocket()
		s.retryAt = now + int64(s.backoff)
		s.backoff = min(2*s.backoff, s.cfg.ReconnectMax)
		return false, nil
	}
	if now-s.lastSent >= s.hb {
		if s.registered {
			s.send(hdrHeartbeat, nil, now)
		} else {
			// READY got no WELCOME yet: ask again once per interval. A
			// READY queued while the broker is unreachable is delivered on
			// connect; the broker answers repeats with WELCOME again.
			s.register(now)
		}
	}
	return false, nil
}
