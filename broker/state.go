package broker

import hdrhistogram "github.com/HdrHistogram/hdrhistogram-go"

// The broker's state is owned by its loop goroutine alone; nothing here is
// locked.

type jobState uint8

const (
	jobFree     jobState = iota
	jobQueued            // waiting in its service's queue
	jobInFlight          // at a worker, caller still waiting
	jobAnswered          // at a worker, caller already answered (deadline)
	jobDone              // answered and out of every index but maybe a queue slot
)

// job is one request as the broker tracks it from arrival to answer.
type job struct {
	id         uint64 // broker job id of the current dispatch, 0 when queued
	reqID      uint64 // the client's request id
	cl         *client
	svc        *service
	w          *worker
	flags      byte
	state      jobState
	inQueue    bool // a queue slot still points at this job
	arrived    int64
	dispatched int64
	deadline   int64
	expiry     int64 // heap key: when the loop must look at this job next
	hidx       int   // index in the expiry heap, -1 when absent
	headers    []byte
	payload    []byte
}

// service is a named pool: its queue and the workers that serve it.
//
// The queue is fair between clients: each client has its own queue of the
// service's jobs, and the clients with jobs waiting take turns, one job
// each. A client that floods the service (or that died with thousands of
// jobs queued) then delays the others by at most one job per turn instead
// of its whole backlog.
type service struct {
	name     string
	nameB    []byte
	rotation fifo[*clientQueue] // clients with jobs queued, in turn order
	live     int                // queued jobs still waiting (queues may hold done ones)
	ready    fifo[readyRef]
	workers  int // registered, not draining
	hwm      int // deepest the queue was this stats interval
}

// readyRef is a worker in a service's ready list; idx is the service's
// position in the worker's svcs so its inReady flag can be cleared.
type readyRef struct {
	w   *worker
	idx int
}

type worker struct {
	id       []byte // routing identity
	key      string
	wid      uint32
	svcs     []*service
	inReady  []bool
	capacity int
	inflight int
	draining bool
	dead     bool
	lastSeen int64
	lastSent int64
	joined   int64
	out      []byte
	dirty    bool
	pid      uint32
	host     string
	version  string
	done     uint64
	errs     uint64
	service  *hdrhistogram.Histogram // service times this stats interval, µs
}

func (w *worker) hasCredit() bool { return !w.dead && !w.draining && w.inflight < w.capacity }

type client struct {
	id        []byte
	key       string
	out       []byte
	dirty     bool
	lastSeen  int64
	pending   int
	cancelled map[uint64]struct{}
	queues    []*clientQueue // one per service the client has used
	interval  int64          // the client's promised heartbeat (ns); 0: none
}

// clientQueue is one client's jobs waiting for one service.
type clientQueue struct {
	svc    *service
	jobs   fifo[*job]
	listed bool // in svc.rotation
}

// queueFor returns cl's queue for svc.
func (cl *client) queueFor(svc *service) *clientQueue {
	for _, q := range cl.queues {
		if q.svc == svc {
			return q
		}
	}
	q := &clientQueue{svc: svc}
	cl.queues = append(cl.queues, q)
	return q
}

// push queues j on its client's queue and gives the client a turn if it
// had none; front is for a job that must go next (a re-run).
func (svc *service) push(j *job, front bool) {
	q := j.cl.queueFor(svc)
	if front {
		q.jobs.pushFront(j)
	} else {
		q.jobs.push(j)
	}
	if q.listed {
		return
	}
	q.listed = true
	if front {
		svc.rotation.pushFront(q)
	} else {
		svc.rotation.push(q)
	}
}

// pop returns the next queued job slot in turn (it may be done: the caller
// checks), or false when no client has one.
func (svc *service) pop() (*job, bool) {
	for {
		q, ok := svc.rotation.pop()
		if !ok {
			return nil, false
		}
		j, ok := q.jobs.pop()
		if q.jobs.len() > 0 {
			svc.rotation.push(q)
		} else {
			q.listed = false
		}
		if ok {
			return j, true
		}
	}
}

// eachQueued calls fn for every job slot in svc's queues.
func (svc *service) eachQueued(fn func(*job)) {
	svc.rotation.each(func(q *clientQueue) { q.jobs.each(fn) })
}

// fifo is a queue on a slice: push at the back, pop or push at the front.
type fifo[T any] struct {
	buf  []T
	head int
}

func (q *fifo[T]) len() int { return len(q.buf) - q.head }

func (q *fifo[T]) push(v T) {
	if q.head > 0 && q.head >= len(q.buf)/2 && len(q.buf) == cap(q.buf) {
		n := copy(q.buf, q.buf[q.head:])
		clear(q.buf[n:])
		q.buf = q.buf[:n]
		q.head = 0
	}
	q.buf = append(q.buf, v)
}

func (q *fifo[T]) pushFront(v T) {
	if q.head > 0 {
		q.head--
		q.buf[q.head] = v
		return
	}
	var zero T
	q.buf = append(q.buf, zero)
	copy(q.buf[1:], q.buf)
	q.buf[0] = v
}

func (q *fifo[T]) pop() (T, bool) {
	var zero T
	if q.head >= len(q.buf) {
		return zero, false
	}
	v := q.buf[q.head]
	q.buf[q.head] = zero
	q.head++
	if q.head == len(q.buf) {
		q.buf = q.buf[:0]
		q.head = 0
	}
	return v, true
}

func (q *fifo[T]) each(fn func(T)) {
	for _, v := range q.buf[q.head:] {
		fn(v)
	}
}

// expiryHeap is a min-heap of jobs by expiry, with each job's index kept so a
// finished job leaves in O(log n).
type expiryHeap []*job

func (h *expiryHeap) push(j *job) {
	j.hidx = len(*h)
	*h = append(*h, j)
	h.up(j.hidx)
}

func (h *expiryHeap) remove(j *job) {
	i := j.hidx
	if i < 0 {
		return
	}
	n := len(*h) - 1
	if i != n {
		h.swap(i, n)
	}
	(*h)[n] = nil
	*h = (*h)[:n]
	j.hidx = -1
	if i != n {
		if !h.down(i) {
			h.up(i)
		}
	}
}

// fix restores order after j.expiry changed.
func (h *expiryHeap) fix(j *job) {
	if j.hidx < 0 {
		h.push(j)
		return
	}
	if !h.down(j.hidx) {
		h.up(j.hidx)
	}
}

func (h expiryHeap) swap(i, k int) {
	h[i], h[k] = h[k], h[i]
	h[i].hidx = i
	h[k].hidx = k
}

func (h expiryHeap) up(i int) {
	for i > 0 {
		p := (i - 1) / 2
		if h[p].expiry <= h[i].expiry {
			return
		}
		h.swap(i, p)
		i = p
	}
}

func (h expiryHeap) down(i0 int) bool {
	i, n := i0, len(h)
	for {
		l := 2*i + 1
		if l >= n {
			break
		}
		m := l
		if r := l + 1; r < n && h[r].expiry < h[l].expiry {
			m = r
		}
		if h[i].expiry <= h[m].expiry {
			break
		}
		h.swap(i, m)
		i = m
	}
	return i > i0
}
