package worker

import (
	"context"
	"errors"
	"fmt"
	"runtime/debug"
	"sync"
	"time"

	"github.com/hose-project/hose/protocol"
)

// task is a job on its way through the handler pool and back.
type task struct {
	job    Job
	s      *session // the session the job came from, which sends its result
	gen    uint64   // that session's connection generation
	status protocol.Status
	result []byte
}

var taskPool = sync.Pool{New: func() any { return new(task) }}

// pool is the worker's handler goroutines, shared by its sessions: one
// first-in first-out queue of tasks from every broker. The queue is
// unbounded; each session bounds what it adds by the capacity it announced
// to its broker.
type pool struct {
	cfg Config
	h   Handler
	wg  sync.WaitGroup

	mu     sync.Mutex
	cond   sync.Cond
	queue  []*task
	head   int
	closed bool
}

func newPool(cfg Config, h Handler) *pool {
	p := &pool{cfg: cfg, h: h}
	p.cond.L = &p.mu
	return p
}

// start runs n handler goroutines.
func (p *pool) start(n int) {
	for i := 0; i < n; i++ {
		p.wg.Add(1)
		go p.serve()
	}
}

// push queues tasks for the handlers.
func (p *pool) push(ts []*task) {
	if len(ts) == 0 {
		return
	}
	p.mu.Lock()
	if p.head > 0 && p.head >= len(p.queue)/2 {
		// Reclaim the consumed front before growing.
		n := copy(p.queue, p.queue[p.head:])
		clear(p.queue[n:])
		p.queue, p.head = p.queue[:n], 0
	}
	p.queue = append(p.queue, ts...)
	p.mu.Unlock()
	if len(ts) == 1 {
		p.cond.Signal()
	} else {
		p.cond.Broadcast()
	}
}

// next returns the oldest queued task; nil once the pool is closed and the
// queue empty.
func (p *pool) next() *task {
	p.mu.Lock()
	defer p.mu.Unlock()
	for p.head == len(p.queue) {
		if p.closed {
			return nil
		}
		p.cond.Wait()
	}
	t := p.queue[p.head]
	p.queue[p.head] = nil
	p.head++
	if p.head == len(p.queue) {
		p.queue, p.head = p.queue[:0], 0
	}
	return t
}

// drop removes the tasks of s still queued and returns how many.
func (p *pool) drop(s *session) int {
	p.mu.Lock()
	defer p.mu.Unlock()
	kept := p.queue[:p.head]
	n := 0
	for _, t := range p.queue[p.head:] {
		if t.s == s {
			n++
			continue
		}
		kept = append(kept, t)
	}
	clear(p.queue[len(kept):])
	p.queue = kept
	if p.head == len(p.queue) {
		p.queue, p.head = p.queue[:0], 0
	}
	return n
}

// close lets the handlers end once the queue is empty.
func (p *pool) close() {
	p.mu.Lock()
	p.closed = true
	p.mu.Unlock()
	p.cond.Broadcast()
}

// serve is one goroutine of the handler pool.
func (p *pool) serve() {
	defer p.wg.Done()
	for {
		t := p.next()
		if t == nil {
			return
		}
		p.runTask(t)
		t.s.finished(t)
	}
}

func (p *pool) runTask(t *task) {
	ctx := &jobCtx{Context: t.s.base, deadline: t.job.Deadline}
	defer ctx.end()
	if p.cfg.TimeLimit <= 0 {
		t.result, t.status = p.call(ctx, &t.job)
		return
	}
	type outcome struct {
		res []byte
		st  protocol.Status
	}
	ch := make(chan outcome, 1)
	job := t.job // the abandoned handler keeps its own copy
	go func() {
		res, st := p.call(ctx, &job)
		ch <- outcome{res, st}
	}()
	timer := time.NewTimer(p.cfg.TimeLimit)
	defer timer.Stop()
	select {
	case o := <-ch:
		t.result, t.status = o.res, o.st
	case <-timer.C:
		p.cfg.Logger.Warn("job exceeded the time limit; abandoning it", "job", t.job.ID, "limit", p.cfg.TimeLimit)
		t.result, t.status = []byte(fmt.Sprintf("time limit exceeded (%v)", p.cfg.TimeLimit)), protocol.StatusWorkerError
	}
}

// call runs the handler, turning an error or a panic into a worker error.
func (p *pool) call(ctx context.Context, j *Job) (res []byte, st protocol.Status) {
	defer func() {
		if r := recover(); r != nil {
			p.cfg.Logger.Error("handler panicked", "job", j.ID, "panic", r)
			res, st = []byte(fmt.Sprintf("panic: %v\n%s", r, debug.Stack())), protocol.StatusWorkerError
		}
	}()
	out, err := p.h.Handle(ctx, j)
	if err != nil {
		// A handler that gave up because the job's deadline passed (it
		// returned ctx.Err(), or wrapped it) did not fail: the caller's
		// time ran out, and it is told so.
		if errors.Is(err, context.DeadlineExceeded) && errors.Is(ctx.Err(), context.DeadlineExceeded) {
			return []byte(err.Error()), protocol.StatusDeadline
		}
		return []byte(err.Error()), protocol.StatusWorkerError
	}
	return out, protocol.StatusOK
}
