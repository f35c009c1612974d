package worker

import (
	"context"
	"fmt"
	"log/slog"
	"runtime"
	"sync"
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

// session serves one broker: it owns that broker's socket, registers,
// heartbeats, hands the broker's jobs to the shared pool and sends their
// results back.
type session struct {
	r      *run
	cfg    Config
	ep     string
	log    *slog.Logger
	waiter *wake.Waiter
	base   context.Context // parent of this broker's jobs' contexts
	kill   context.CancelFunc

	mu      sync.Mutex
	results []*task

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
	running    int // jobs of this broker held: queued, running, or done and unsent
	jobsDone   int
	stopping   bool
	drained    bool // the broker acknowledged DRAIN (this registration)
	asked      bool // a READY is out, unanswered
	lost       bool // counted lost in r (ExitOnBrokerLoss)
	stopErr    error
	stopBy     int64
	out        []byte
	batch      []*task
}

func newSession(r *run, ep string) *session {
	s := &session{
		r: r, cfg: r.cfg, ep: ep, log: r.cfg.Logger.With("backend", ep), waiter: wake.New(),
		hb:         int64(r.cfg.HeartbeatInterval),
		liveness:   int64(r.cfg.Liveness),
		maxPayload: 8 << 20,
		backoff:    r.cfg.ReconnectMin,
	}
	s.base, s.kill = context.WithCancel(context.Background())
	return s
}

// run serves the broker until the worker stops or gives up on it.
func (s *session) run() error {
	err := s.loop()
	if s.running > 0 {
		// Drain timed out or the broker is gone: forget the jobs not
		// started yet and cancel those that run.
		s.running -= s.r.pool.drop(s)
		s.mu.Lock()
		s.running -= len(s.results)
		s.results = nil
		s.mu.Unlock()
	}
	s.kill()
	s.closeSocket()
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
	sock, err := s.r.zctx.NewSocket(zmq.DEALER)
	if err != nil {
		return err
	}
	_ = sock.SetLinger(100 * time.Millisecond)
	_ = sock.SetSndhwm(s.cfg.HWM)
	_ = sock.SetRcvhwm(s.cfg.HWM)
	_ = sock.SetReconnectIvl(100 * time.Millisecond)
	_ = sock.SetReconnectIvlMax(time.Second)
	if err := s.setCurve(sock); err != nil {
		sock.Close()
		return err
	}
	if err := sock.Connect(s.ep); err != nil {
		sock.Close()
		return fmt.Errorf("worker: connect %s: %w", s.ep, err)
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
	s.send(hdrReady, s.r.ready, now)
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
	if err := s.connect(s.r.now()); err != nil {
		return err
	}
	s.log.Debug("serving broker")
	nextTick := s.r.now()
	for {
		if !s.readable {
			now := s.r.now()
			timeout := nextTick - now
			if s.retryAt > 0 {
				timeout = min(timeout, s.retryAt-now)
			}
			s.waiter.Sleep()
			s.mu.Lock()
			busy := len(s.results) > 0
			s.mu.Unlock()
			if busy || ((s.r.stopped.Load() || s.r.allLost.Load()) && !s.stopping) {
				s.waiter.Awake()
			} else {
				s.waiter.Wait(time.Duration(timeout))
			}
			s.checkReadable()
		}
		now := s.r.now()
		if s.r.allLost.Load() && !s.stopping {
			return ErrBrokerLost
		}
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
		if !s.stopping {
			if s.r.retireAt > 0 && now >= s.r.retireAt {
				s.r.requestStop(ErrRetired, "max age reached")
			}
			if s.r.stopped.Load() {
				why, reason := s.r.stopReason()
				s.beginStop(reason, now, why)
			}
		}
		// Leave once every job is done and the broker has acknowledged the
		// DRAIN (jobs it sent before that arrive before the ack).
		// A READY still unanswered counts: the broker may have registered
		// us and be sending jobs, so wait for its WELCOME, DRAIN and ack.
		if s.stopping && ((s.running == 0 && (s.drained || (!s.registered && !s.asked))) || now >= s.stopBy) {
			if s.running > 0 {
				s.log.Warn("drain timed out, abandoning jobs", "running", s.running)
			}
			if s.registered {
				s.send(hdrDisconnect, nil, now)
			}
			s.log.Info("left broker", "jobs", s.jobsDone)
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
	s.log.Info("worker draining", "reason", why, "running", s.running)
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
				s.log.Error("the backend endpoint answers in the client dialect: it is a broker frontend; point the worker at the broker's backend")
			} else {
				s.log.Warn("dropping malformed message from broker", "err", err)
			}
			continue
		}
		s.lastHeard = now
		switch cmd {
		case protocol.CmdWelcome:
			wl, err := protocol.DecodeWelcome(m.Body)
			if err != nil {
				s.log.Warn("malformed WELCOME", "err", err)
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
			s.log.Debug("registered", "worker_id", wl.WorkerID, "heartbeat_ms", wl.HeartbeatMS)
			if s.lost {
				s.lost = false
				s.r.markLost(-1)
			}
			if s.stopping {
				s.send(hdrDrain, nil, now)
			}
		case protocol.CmdJob:
			s.jobs(m.Body, now)
		case protocol.CmdHeartbeat:
		case protocol.CmdDrain:
			s.drained = true
		case protocol.CmdDisconnect:
			s.log.Info("broker said disconnect", "reason", string(m.Body))
			if s.stopping {
				return true, s.stopErr
			}
			if s.brokerLost() {
				return true, ErrBrokerLost
			}
			// The broker forgot us (it restarted, or dropped us as lost or
			// slow): register again after a backoff.
			s.registered = false
			s.asked = false
			s.drained = false
			s.forget()
			s.retryAt = now + int64(s.backoff)
			s.backoff = min(2*s.backoff, s.cfg.ReconnectMax)
			return false, nil
		default:
			s.log.Warn("dropping unknown command from broker", "command", cmd)
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
			s.log.Warn("dropping malformed job batch", "err", err)
			break
		}
		t := taskPool.Get().(*task)
		t.s = s
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
		s.batch = append(s.batch, t)
	}
	s.r.pool.push(s.batch)
	clear(s.batch)
	s.batch = s.batch[:0]
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

// finished hands a task back from the handler that ran it. Any goroutine.
func (s *session) finished(t *task) {
	s.mu.Lock()
	s.results = append(s.results, t)
	s.mu.Unlock()
	s.waiter.Signal()
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
		*t = task{}
		taskPool.Put(t)
	}
	s.jobsDone += len(results)
	s.r.addJobs(len(results))
	if len(s.out) > 0 {
		s.send(hdrResult, s.out, now)
		if cap(s.out) > 4*batchMax {
			s.out = nil
		}
		s.out = s.out[:0]
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
		s.log.Warn("broker silent", "for", time.Duration(now-s.lastHeard))
		if s.stopping {
			return true, s.stopErr
		}
		if s.brokerLost() {
			return true, ErrBrokerLost
		}
		s.registered = false
		s.asked = false // that READY went out on the connection we drop
		s.forget()
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

// forget ends the registration's claim on the jobs it holds: their results
// will not be sent, and those not started yet leave the shared queue, so
// they do not hold up the jobs of the other brokers.
func (s *session) forget() {
	s.gen++
	s.running -= s.r.pool.drop(s)
}

// brokerLost notes that the broker went away (silent, or said DISCONNECT)
// and reports whether Run gives up: ExitOnBrokerLoss is set and every
// broker is lost now.
func (s *session) brokerLost() bool {
	if !s.cfg.ExitOnBrokerLoss {
		return false
	}
	if !s.lost {
		s.lost = true
		s.r.markLost(1)
	}
	return s.r.allLost.Load()
}
