package worker

import (
	"context"
	"sync"
	"time"

	"github.com/hose-project/hose/protocol"
)

// Job is one unit of work handed to a Handler. It is valid only until
// Handle returns: copy what must outlive the call.
type Job struct {
	// ID is the broker's job id (unique per broker run).
	ID uint64
	// Service is the service the job was sent to.
	Service string
	// Payload is the caller's data.
	Payload []byte
	// Deadline is when the caller stops waiting; the handler's context ends
	// then too.
	Deadline time.Time
	// Idempotent reports that the caller allows the job to run twice.
	Idempotent bool
	// Params are the worker's own key=value parameters (hose worker -param).
	Params map[string]string

	headers []byte
}

// Header returns the value of the job header key, or "".
func (j *Job) Header(key string) string {
	b := j.headers
	for len(b) > 0 {
		k, v, rest, err := protocol.NextHeader(b)
		if err != nil {
			return ""
		}
		if string(k) == key {
			return string(v)
		}
		b = rest
	}
	return ""
}

// Headers returns all job headers.
func (j *Job) Headers() map[string]string {
	m, _ := protocol.DecodeHeaders(j.headers)
	return m
}

// Handler runs jobs. Handle is called from several goroutines at once (up to
// Config.Concurrency). A returned error is sent to the caller as a worker
// error carrying err.Error(); so is a panic, and the worker lives on.
type Handler interface {
	Handle(ctx context.Context, job *Job) ([]byte, error)
}

// HandlerFunc adapts a function to Handler.
type HandlerFunc func(ctx context.Context, job *Job) ([]byte, error)

// Handle calls f.
func (f HandlerFunc) Handle(ctx context.Context, job *Job) ([]byte, error) { return f(ctx, job) }

var _ Handler = HandlerFunc(nil)

// jobCtx is the context a handler receives. It carries the job's deadline
// but creates the timer behind Done only when a handler asks for it, so
// handlers that never look at their context cost no timer per job.
type jobCtx struct {
	context.Context
	deadline time.Time
	mu       sync.Mutex
	inner    context.Context
	cancel   context.CancelFunc
	ended    bool
}

func (c *jobCtx) Deadline() (time.Time, bool) { return c.deadline, true }

func (c *jobCtx) Done() <-chan struct{} {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.inner == nil {
		c.inner, c.cancel = context.WithDeadline(c.Context, c.deadline)
		if c.ended {
			c.cancel()
		}
	}
	return c.inner.Done()
}

func (c *jobCtx) Err() error {
	c.mu.Lock()
	inner, ended := c.inner, c.ended
	c.mu.Unlock()
	if inner != nil {
		return inner.Err()
	}
	if !time.Now().Before(c.deadline) {
		return context.DeadlineExceeded
	}
	if ended {
		return context.Canceled
	}
	return c.Context.Err()
}

// end cancels the context once the job is over, as context.WithDeadline's
// cancel would.
func (c *jobCtx) end() {
	c.mu.Lock()
	c.ended = true
	if c.cancel != nil {
		c.cancel()
	}
	c.mu.Unlock()
}
