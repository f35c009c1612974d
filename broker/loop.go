package broker

import (
	"time"

	zmq "github.com/pebbe/zmq4"

	"github.com/hose-project/hose/internal/zsock"
	"github.com/hose-project/hose/protocol"
)

const (
	// drainMax bounds the messages read from one socket per wake-up so the
	// other socket and the timers are never starved.
	drainMax = 256
	// batchMax is the size at which an outgoing batch is sent before the
	// loop iteration ends.
	batchMax = 256 << 10
	// maxServices bounds the services created on demand by request names.
	maxServices = 10000
	// maxFree bounds the pool of recycled job records.
	maxFree = 1 << 16
)

var (
	hdrReply      = protocol.Header(protocol.Client, protocol.CmdReply)
	hdrPong       = protocol.Header(protocol.Client, protocol.CmdPong)
	hdrError      = protocol.Header(protocol.Client, protocol.CmdError)
	hdrWelcome    = protocol.Header(protocol.Worker, protocol.CmdWelcome)
	hdrJob        = protocol.Header(protocol.Worker, protocol.CmdJob)
	hdrHeartbeat  = protocol.Header(protocol.Worker, protocol.CmdHeartbeat)
	hdrDisconnect = protocol.Header(protocol.Worker, protocol.CmdDisconnect)
	hdrDrain      = protocol.Header(protocol.Worker, protocol.CmdDrain)
)

// statusText is the error message sent with each error status.
var statusText [16][]byte

func init() {
	for st := protocol.Status(1); st < 16; st++ {
		statusText[st] = []byte(st.String())
	}
}

func (b *Broker) now() int64 { return int64(time.Since(b.start)) }

func (b *Broker) loop() {
	defer close(b.done)
	hb := int64(b.cfg.HeartbeatInterval)
	b.nextTick = b.now() + hb/4
	abort := false
	frontIn, backIn, zapIn := true, true, b.zap != nil
	for !abort {
		if zapIn {
			b.serveZAP()
		}
		if !frontIn && !backIn && !zapIn && len(b.ctl) == 0 {
			now := b.now()
			timeout := b.nextTick - now
			if b.pub != nil || b.obs.metrics != nil {
				timeout = min(timeout, b.nextPub-now)
			}
			if len(b.heap) > 0 {
				timeout = min(timeout, b.heap[0].expiry-now)
			}
			if b.retry {
				timeout = min(timeout, int64(time.Millisecond))
			}
			b.waiter.Sleep()
			if len(b.ctl) > 0 {
				b.waiter.Awake()
			} else {
				b.waiter.Wait(time.Duration(timeout))
			}
			frontIn, backIn, zapIn = b.frontW.Ready(), b.backW.Ready(), b.zapW.Ready()
			if zapIn {
				b.serveZAP()
			}
		}
		now := b.now()
		if frontIn {
			b.drainFront(now)
		}
		if backIn {
			b.drainBack(now)
		}
		for len(b.ctl) > 0 {
			m := <-b.ctl
			switch m.kind {
			case ctlDrain:
				if !b.draining {
					b.cfg.Logger.Info("broker draining", "queued", b.queued(), "inflight", len(b.jobs))
				}
				b.draining = true
			case ctlAbort:
				abort = true
			case ctlStats:
				m.stats <- b.snapshot(now)
			}
		}
		now = b.now()
		b.expire(now)
		if now >= b.nextTick {
			b.tick(now)
			b.nextTick = now + hb/4
		}
		if (b.pub != nil || b.obs.metrics != nil) && now >= b.nextPub {
			b.publish(now)
			b.nextPub = now + int64(b.cfg.StatsInterval)
		}
		b.flush(now)
		if b.draining && len(b.jobs) == 0 && b.queued() == 0 {
			break
		}
		// Sending may have consumed the edge that announced new input:
		// ask ZMQ_EVENTS before deciding to sleep.
		frontIn, backIn, zapIn = b.frontW.Ready(), b.backW.Ready(), b.zapW.Ready()
	}
	b.stop()
}

// stop answers everything still pending, says goodbye to workers and closes.
func (b *Broker) stop() {
	now := b.now()
	// Jobs still at workers may or may not have run: "worker lost". Queued
	// ones never ran: "shutting down", which a client may send elsewhere.
	for _, j := range b.jobs {
		if j.state == jobInFlight {
			b.answer(j, protocol.StatusWorkerLost, nil, now)
		}
	}
	for _, svc := range b.services {
		for {
			j, ok := svc.pop()
			if !ok {
				break
			}
			if j.state == jobQueued {
				b.answer(j, protocol.StatusShuttingDown, nil, now)
			}
		}
	}
	for _, w := range b.workers {
		_ = zsock.Send(b.back, w.id, hdrDisconnect, []byte("broker shutting down"), zmq.DONTWAIT)
	}
	b.flush(now)
	b.closeSockets()
	b.zctx.Term()
	b.cfg.Logger.Info("broker stopped", "replied", b.counters.Replied)
}

func (b *Broker) queued() int {
	n := 0
	for _, svc := range b.services {
		n += svc.live
	}
	return n
}

// ---- frontend: clients ----

func (b *Broker) drainFront(now int64) {
	var m zsock.Msg
	for i := 0; i < drainMax; i++ {
		if err := zsock.Recv(b.front, zmq.DONTWAIT, true, &m); err != nil {
			return
		}
		b.fromClient(&m, now)
	}
}

func (b *Broker) clientErr(id []byte, st protocol.Status, msg string) {
	b.counters.Malformed++
	_ = zsock.Send(b.front, id, hdrError, protocol.AppendError(nil, st, msg), zmq.DONTWAIT)
}

func (b *Broker) fromClient(m *zsock.Msg, now int64) {
	if m.Header == nil {
		b.clientErr(m.ID, protocol.StatusMalformed, "malformed: no header frame")
		return
	}
	cmd, err := protocol.ParseHeader(m.Header, protocol.Client)
	if err == protocol.ErrVersion {
		b.clientErr(m.ID, protocol.StatusUnsupportedVersion, "unsupported version: this broker speaks "+protocol.ClientTag)
		return
	}
	if err != nil {
		b.clientErr(m.ID, protocol.StatusMalformed, "malformed: header frame is not "+protocol.ClientTag+"+command")
		return
	}
	cl := b.clients[string(m.ID)]
	if cl == nil {
		cl = &client{id: m.ID, key: string(m.ID)}
		b.clients[cl.key] = cl
	}
	cl.lastSeen = now
	switch cmd {
	case protocol.CmdRequest:
		body := m.Body
		var r protocol.Job
		for len(body) > 0 {
			var rec []byte
			if rec, body, err = protocol.SplitRecord(body); err != nil {
				b.clientErr(m.ID, protocol.StatusMalformed, "malformed request batch: "+err.Error())
				return
			}
			if err := protocol.DecodeJob(rec, &r); err != nil {
				// One bad record costs only its own answer.
				b.counters.Received++
				if id, ok := protocol.RecordID(rec); ok {
					b.counters.Malformed++
					b.reject(cl, id, protocol.StatusMalformed)
				} else {
					b.clientErr(m.ID, protocol.StatusMalformed, "malformed request record: "+err.Error())
				}
				continue
			}
			b.submit(cl, &r, now)
		}
	case protocol.CmdPing:
		pong := protocol.Pong{
			Instance: b.instance, PID: b.pid, UptimeMS: uint64(now / 1e6),
			Workers: uint32(len(b.workers)), Queued: uint32(b.queued()), InFlight: uint32(len(b.jobs)),
			Draining: b.draining, Version: protocol.Version, Host: b.host,
		}
		var ms uint32
		pong.Nonce, ms = protocol.DecodePing(m.Body)
		cl.interval = int64(ms) * int64(time.Millisecond)
		_ = zsock.Send(b.front, m.ID, hdrPong, protocol.AppendPong(nil, &pong), zmq.DONTWAIT)
	case protocol.CmdCancel:
		if err := protocol.DecodeU64s(m.Body, func(id uint64) { b.cancel(cl, id) }); err != nil {
			b.clientErr(m.ID, protocol.StatusMalformed, "malformed cancel body")
		}
	default:
		b.clientErr(m.ID, protocol.StatusMalformed, "malformed: unknown client command")
	}
}

// cancel records that the caller of reqID left. A queued job is dropped when
// it reaches the head of its queue; a running one's reply is not sent.
func (b *Broker) cancel(cl *client, reqID uint64) {
	b.counters.CancelsSeen++
	if cl.pending == 0 {
		return
	}
	if cl.cancelled == nil {
		cl.cancelled = make(map[uint64]struct{})
	}
	if len(cl.cancelled) > 4*b.cfg.MaxQueue+1024 {
		clear(cl.cancelled) // ids of jobs answered before the cancel arrived
	}
	cl.cancelled[reqID] = struct{}{}
}

// reject answers a request that never became a job.
func (b *Broker) reject(cl *client, reqID uint64, st protocol.Status) {
	b.counters.Errors[st]++
	cl.out = protocol.AppendReplyParts(cl.out, reqID, st, 0, 0, statusText[st])
	b.markClient(cl)
}

func (b *Broker) submit(cl *client, r *protocol.Job, now int64) {
	b.counters.Received++
	if b.draining {
		b.reject(cl, r.ID, protocol.StatusShuttingDown)
		return
	}
	if len(r.Payload) > b.cfg.MaxPayload {
		b.reject(cl, r.ID, protocol.StatusTooLarge)
		return
	}
	if cl.pending >= b.cfg.MaxClientInFlight {
		b.reject(cl, r.ID, protocol.StatusBusy)
		return
	}
	name := r.Service
	if len(name) == 0 {
		name = []byte(protocol.DefaultService)
	}
	svc := b.services[string(name)]
	if svc == nil {
		if (b.allowed != nil && !b.allowed[string(name)]) || len(b.services) >= maxServices {
			b.reject(cl, r.ID, protocol.StatusUnknownService)
			return
		}
		svc = b.newService(string(name))
	}
	w := b.pickWorker(svc)
	if w == nil && svc.live >= b.cfg.MaxQueue {
		b.reject(cl, r.ID, protocol.StatusBusy)
		return
	}
	timeout := int64(r.TimeoutMS) * int64(time.Millisecond)
	if timeout == 0 {
		timeout = int64(b.cfg.DefaultTimeout)
	}
	j := b.newJob()
	j.reqID = r.ID
	j.cl = cl
	j.svc = svc
	j.flags = r.Flags
	j.arrived = now
	j.deadline = now + timeout
	j.expiry = j.deadline
	j.headers = r.Headers
	j.payload = r.Payload
	cl.pending++
	if w != nil {
		b.heap.push(j)
		b.dispatch(j, w, now)
		return
	}
	b.enqueue(j, now, false)
}

func (b *Broker) newService(name string) *service {
	svc := &service{name: name, nameB: []byte(name)}
	b.services[name] = svc
	return svc
}

func (b *Broker) newJob() *job {
	if n := len(b.free); n > 0 {
		j := b.free[n-1]
		b.free = b.free[:n-1]
		return j
	}
	return &job{hidx: -1}
}

// release recycles j once no queue slot points at it.
func (b *Broker) release(j *job) {
	j.state = jobDone
	if j.inQueue || len(b.free) >= maxFree {
		return
	}
	*j = job{hidx: -1}
	b.free = append(b.free, j)
}

// enqueue puts j in its service's queue; front is for requeued jobs.
func (b *Broker) enqueue(j *job, now int64, front bool) {
	svc := j.svc
	j.state = jobQueued
	j.w = nil
	j.id = 0
	j.inQueue = true
	j.expiry = j.deadline
	if svc.workers == 0 {
		j.expiry = min(j.deadline, now+int64(b.cfg.NoWorkerWait))
	}
	b.heap.fix(j)
	svc.live++
	svc.hwm = max(svc.hwm, svc.live)
	svc.push(j, front)
}

// pickWorker returns the least recently used worker of svc with free
// capacity, or nil. The worker stays in the ready list (at its back) while
// it has capacity left after this job.
func (b *Broker) pickWorker(svc *service) *worker {
	for {
		ref, ok := svc.ready.pop()
		if !ok {
			return nil
		}
		w := ref.w
		if !w.hasCredit() {
			w.inReady[ref.idx] = false
			continue
		}
		if w.inflight+1 < w.capacity {
			svc.ready.push(ref)
		} else {
			w.inReady[ref.idx] = false
		}
		return w
	}
}

func (b *Broker) dispatch(j *job, w *worker, now int64) {
	b.nextJobID++
	j.id = b.nextJobID
	j.w = w
	j.state = jobInFlight
	j.dispatched = now
	b.jobs[j.id] = j
	w.inflight++
	b.counters.Dispatched++
	b.obs.record(b.obs.queue, now-j.arrived)
	left := (j.deadline - now) / int64(time.Millisecond)
	if left < 1 {
		left = 1
	}
	rec := protocol.Job{ID: j.id, TimeoutMS: uint32(min(left, 1<<32-1)), Flags: j.flags,
		Service: j.svc.nameB, Headers: j.headers, Payload: j.payload}
	w.out = protocol.AppendJob(w.out, &rec)
	// A job that may run again keeps its bytes; the others drop the
	// reference so the client's batch buffer can be collected.
	if j.flags&protocol.FlagIdempotent == 0 {
		j.headers, j.payload = nil, nil
	}
	if !w.dirty {
		w.dirty = true
		b.dirtyW = append(b.dirtyW, w)
	}
	if len(w.out) >= batchMax {
		b.flushWorker(w, now)
	}
}

// pump hands queued jobs of svc to workers with free capacity.
func (b *Broker) pump(svc *service, now int64) {
	for svc.live > 0 {
		w := b.pickWorker(svc)
		if w == nil {
			return
		}
		j := b.popQueued(svc)
		if j == nil {
			// Put the capacity back: nothing was queued after all.
			b.makeReady(w)
			return
		}
		b.dispatch(j, w, now)
	}
}

// popQueued returns the next live job of svc's queue, dropping done or
// cancelled ones on the way.
func (b *Broker) popQueued(svc *service) *job {
	for {
		j, ok := svc.pop()
		if !ok {
			return nil
		}
		j.inQueue = false
		if j.state != jobQueued {
			b.release(j)
			continue
		}
		svc.live--
		if cl := j.cl; cl.cancelled != nil {
			if _, gone := cl.cancelled[j.reqID]; gone {
				delete(cl.cancelled, j.reqID)
				b.counters.Cancelled++
				cl.pending--
				b.heap.remove(j)
				b.release(j)
				continue
			}
		}
		return j
	}
}

// makeReady puts w back in the ready list of each of its services where it
// is missing.
func (b *Broker) makeReady(w *worker) {
	if !w.hasCredit() {
		return
	}
	for i, svc := range w.svcs {
		if !w.inReady[i] {
			w.inReady[i] = true
			svc.ready.push(readyRef{w: w, idx: i})
		}
	}
}

// answer sends the final answer for j to its client and retires j.
func (b *Broker) answer(j *job, st protocol.Status, payload []byte, now int64) {
	cl := j.cl
	cl.pending--
	if st == protocol.StatusOK {
		b.counters.Replied++
	} else {
		b.counters.Errors[st]++
		if payload == nil {
			payload = statusText[st]
		}
	}
	skip := false
	if cl.cancelled != nil {
		if _, gone := cl.cancelled[j.reqID]; gone {
			delete(cl.cancelled, j.reqID)
			skip = true
		}
		if cl.pending == 0 {
			// Nothing is pending, so no recorded cancel can still apply
			// (it named a request answered before the cancel arrived).
			clear(cl.cancelled)
		}
	}
	if !skip {
		var q, s uint32
		if j.dispatched > 0 {
			q = uint32(min((j.dispatched-j.arrived)/1000, 1<<32-1))
			s = uint32(min((now-j.dispatched)/1000, 1<<32-1))
		} else {
			q = uint32(min((now-j.arrived)/1000, 1<<32-1))
		}
		cl.out = protocol.AppendReplyParts(cl.out, j.reqID, st, q, s, payload)
		b.markClient(cl)
		if len(cl.out) >= batchMax {
			b.flushClient(cl)
		}
	}
}

func (b *Broker) markClient(cl *client) {
	if !cl.dirty {
		cl.dirty = true
		b.dirtyC = append(b.dirtyC, cl)
	}
}

// ---- backend: workers ----

func (b *Broker) drainBack(now int64) {
	var m zsock.Msg
	for i := 0; i < drainMax; i++ {
		if err := zsock.Recv(b.back, zmq.DONTWAIT, true, &m); err != nil {
			return
		}
		b.fromWorker(&m, now)
	}
}

func (b *Broker) fromWorker(m *zsock.Msg, now int64) {
	cmd, err := protocol.ParseHeader(m.Header, protocol.Worker)
	if err != nil {
		b.counters.Malformed++
		switch {
		case err == protocol.ErrVersion:
			_ = zsock.Send(b.back, m.ID, hdrDisconnect, []byte("unsupported version: this broker speaks "+protocol.WorkerTag), zmq.DONTWAIT)
		case protocol.IsClientHeader(m.Header):
			// A client pointed at the backend: tell it in its own dialect.
			_ = zsock.Send(b.back, m.ID, hdrError, protocol.AppendError(nil, protocol.StatusMalformed,
				"this is a broker backend (for workers); clients connect to the frontend"), zmq.DONTWAIT)
		}
		return
	}
	w := b.workers[string(m.ID)]
	if cmd == protocol.CmdReady {
		if w != nil {
			// A repeated READY (its WELCOME crossed a retry) changes nothing:
			// the worker keeps its jobs and gets its WELCOME again.
			w.lastSeen = now
			b.welcome(w)
			return
		}
		b.register(m, now)
		return
	}
	if w == nil {
		if cmd != protocol.CmdDisconnect {
			b.counters.UnknownWorker++
			_ = zsock.Send(b.back, m.ID, hdrDisconnect, []byte("unknown worker: register again"), zmq.DONTWAIT)
		}
		return
	}
	w.lastSeen = now
	switch cmd {
	case protocol.CmdResult:
		body := m.Body
		var r protocol.Result
		for len(body) > 0 {
			if body, err = protocol.NextResult(body, &r); err != nil {
				b.counters.Malformed++
				break
			}
			b.result(w, &r, now)
		}
		b.refill(w, now)
	case protocol.CmdHeartbeat:
	case protocol.CmdDrain:
		if !w.draining {
			w.draining = true
			for _, svc := range w.svcs {
				svc.workers--
			}
			b.cfg.Logger.Info("worker draining", "worker", w.wid, "inflight", w.inflight)
		}
		// The acknowledgement follows every JOB already sent on this
		// connection, so once the worker has it, it holds all its jobs.
		b.flushWorker(w, now)
		_ = zsock.Send(b.back, w.id, hdrDrain, nil, zmq.DONTWAIT)
	case protocol.CmdDisconnect:
		b.dropWorker(w, now, "disconnected")
	default:
		b.counters.Malformed++
	}
}

func (b *Broker) register(m *zsock.Msg, now int64) {
	rd, err := protocol.DecodeReady(m.Body)
	if err != nil || rd.Capacity == 0 {
		b.counters.Malformed++
		_ = zsock.Send(b.back, m.ID, hdrDisconnect, []byte("malformed READY"), zmq.DONTWAIT)
		return
	}
	if len(rd.Services) == 0 {
		rd.Services = []string{protocol.DefaultService}
	}
	b.nextWID++
	w := &worker{
		service: newHist(),
		id:      m.ID, key: string(m.ID), wid: b.nextWID, capacity: int(rd.Capacity),
		lastSeen: now, lastSent: now, joined: now, pid: rd.PID, host: rd.Host, version: rd.Version,
	}
	for _, name := range rd.Services {
		if name == "" || (b.allowed != nil && !b.allowed[name]) {
			continue
		}
		svc := b.services[name]
		if svc == nil {
			if len(b.services) >= maxServices {
				continue
			}
			svc = b.newService(name)
		}
		w.svcs = append(w.svcs, svc)
		svc.workers++
	}
	if len(w.svcs) == 0 {
		_ = zsock.Send(b.back, m.ID, hdrDisconnect, []byte("unknown service: this broker serves none of the offered services"), zmq.DONTWAIT)
		return
	}
	w.inReady = make([]bool, len(w.svcs))
	b.workers[w.key] = w
	b.welcome(w)
	b.cfg.Logger.Debug("worker registered", "worker", w.wid, "pid", w.pid, "host", w.host, "capacity", w.capacity, "services", rd.Services)
	b.refill(w, now)
}

func (b *Broker) welcome(w *worker) {
	welcome := protocol.Welcome{
		WorkerID: w.wid, HeartbeatMS: uint32(b.cfg.HeartbeatInterval / time.Millisecond),
		Liveness: uint8(b.cfg.Liveness), MaxPayload: uint32(b.cfg.MaxPayload), Instance: b.instance,
	}
	_ = zsock.Send(b.back, w.id, hdrWelcome, protocol.AppendWelcome(nil, &welcome), zmq.DONTWAIT)
}

// refill gives w queued work up to its capacity and lists it as ready for
// the rest.
func (b *Broker) refill(w *worker, now int64) {
	if !w.hasCredit() {
		return
	}
	for _, svc := range w.svcs {
		for svc.live > 0 && w.hasCredit() {
			j := b.popQueued(svc)
			if j == nil {
				break
			}
			b.dispatch(j, w, now)
		}
	}
	b.makeReady(w)
}

func (b *Broker) result(w *worker, r *protocol.Result, now int64) {
	j := b.jobs[r.ID]
	if j == nil || j.w != w {
		b.counters.Late++
		return
	}
	delete(b.jobs, r.ID)
	w.inflight--
	w.done++
	b.heap.remove(j)
	st := r.Status
	switch st {
	case protocol.StatusOK:
	case protocol.StatusDeadline:
		// The worker stopped the job at its deadline: the caller learns
		// it timed out, not that the worker failed.
	default:
		st = protocol.StatusWorkerError
		w.errs++
	}
	b.obs.record(b.obs.service, now-j.dispatched)
	b.obs.record(w.service, now-j.dispatched)
	b.obs.record(b.obs.total, now-j.arrived)
	if j.state == jobAnswered {
		b.counters.Late++
	} else {
		b.answer(j, st, r.Payload, now)
	}
	b.release(j)
}

// dropWorker forgets w. Jobs it held are answered "worker lost", or queued
// again at the front when the caller marked them idempotent and time
// remains.
func (b *Broker) dropWorker(w *worker, now int64, why string) {
	if w.dead {
		return
	}
	w.dead = true
	delete(b.workers, w.key)
	b.obs.dropped(w, now, why)
	if !w.draining {
		for _, svc := range w.svcs {
			svc.workers--
		}
	}
	if w.inflight > 0 {
		for id, j := range b.jobs {
			if j.w != w {
				continue
			}
			delete(b.jobs, id)
			switch {
			case j.state == jobAnswered:
				b.heap.remove(j)
				b.release(j)
			case j.flags&protocol.FlagIdempotent != 0 && j.deadline-now > int64(time.Millisecond) && !b.draining:
				b.counters.Requeued++
				b.enqueue(j, now, true)
			default:
				b.heap.remove(j)
				b.answer(j, protocol.StatusWorkerLost, nil, now)
				b.release(j)
			}
		}
	}
	w.inflight = 0
	for _, svc := range w.svcs {
		if svc.workers == 0 {
			// Whatever waits for this service now waits for a worker to
			// come back, but no longer than NoWorkerWait.
			limit := now + int64(b.cfg.NoWorkerWait)
			svc.eachQueued(func(j *job) {
				if j.state == jobQueued && j.expiry > limit {
					j.expiry = limit
					b.heap.fix(j)
				}
			})
		}
		b.pump(svc, now)
	}
	b.cfg.Logger.Info("worker removed", "worker", w.wid, "pid", w.pid, "reason", why)
}

// ---- timers ----

// expire handles every job whose expiry has come.
func (b *Broker) expire(now int64) {
	for len(b.heap) > 0 && b.heap[0].expiry <= now {
		j := b.heap[0]
		switch j.state {
		case jobQueued:
			if j.deadline <= now {
				b.heap.remove(j)
				j.svc.live--
				b.answer(j, protocol.StatusDeadline, nil, now)
				b.release(j)
			} else if j.svc.workers == 0 {
				b.heap.remove(j)
				j.svc.live--
				b.answer(j, protocol.StatusNoWorker, nil, now)
				b.release(j)
			} else {
				j.expiry = j.deadline
				b.heap.fix(j)
			}
		case jobInFlight:
			// The caller's time is up. The worker keeps the job (and its
			// capacity) until it answers late, dies, or is dropped as slow.
			b.answer(j, protocol.StatusDeadline, nil, now)
			j.state = jobAnswered
			j.expiry = j.deadline + int64(b.cfg.SlowGrace)
			b.heap.fix(j)
		case jobAnswered:
			w := j.w
			b.counters.WorkersLost++
			_ = zsock.Send(b.back, w.id, hdrDisconnect, []byte("slow: job held past its deadline"), zmq.DONTWAIT)
			b.dropWorker(w, now, "slow")
		default:
			b.heap.remove(j)
		}
	}
}

// tick sends heartbeats, drops silent workers and forgets idle clients.
func (b *Broker) tick(now int64) {
	hb := int64(b.cfg.HeartbeatInterval)
	dead := hb * int64(b.cfg.Liveness)
	for _, w := range b.workers {
		switch {
		case now-w.lastSeen > dead:
			b.counters.WorkersLost++
			// It may only be stopped (SIGSTOP); if it wakes it must register
			// again rather than answer jobs it no longer owns.
			_ = zsock.Send(b.back, w.id, hdrDisconnect, []byte("lost: no heartbeat"), zmq.DONTWAIT)
			b.dropWorker(w, now, "silent")
		case now-w.lastSent >= hb && !w.dirty:
			if err := zsock.Send(b.back, w.id, hdrHeartbeat, nil, zmq.DONTWAIT); err == nil {
				w.lastSent = now
			} else if zsock.IsUnreachable(err) {
				b.counters.WorkersLost++
				b.dropWorker(w, now, "unreachable")
			}
		}
	}
	idle := 20 * dead
	for key, cl := range b.clients {
		switch {
		case cl.pending == 0 && now-cl.lastSeen > idle:
			delete(b.clients, key)
		case cl.interval > 0 && cl.pending > 0 && now-cl.lastSeen > cl.interval*int64(b.cfg.Liveness):
			b.abandon(cl)
		}
	}
}

// abandon drops the queued jobs of a client that went silent past the
// heartbeat it promised: it is gone (killed, or cut off), nobody will read
// their answers, and they would take workers from everyone else. Its jobs
// already at workers finish; their answers are dropped.
func (b *Broker) abandon(cl *client) {
	n := 0
	for _, q := range cl.queues {
		q.jobs.each(func(j *job) {
			if j.state != jobQueued {
				return
			}
			j.svc.live--
			b.heap.remove(j)
			j.state = jobDone // its slot is skipped when its turn comes
			cl.pending--
			n++
		})
	}
	if n > 0 {
		b.counters.Abandoned += uint64(n)
		b.cfg.Logger.Info("client gone: dropped its queued jobs", "jobs", n, "silent_for_ms", (b.now()-cl.lastSeen)/1e6)
	}
	cl.interval = 0 // judged once; a client that speaks again promises again
}

// flush sends the batches built during this iteration.
func (b *Broker) flush(now int64) {
	b.retry = false
	// flushWorker may list a worker again (full pipe), so walk a copy.
	ws := b.dirtyW
	b.dirtyW = b.spareW[:0]
	for i, w := range ws {
		b.flushWorker(w, now)
		ws[i] = nil
	}
	b.spareW = ws[:0]
	for i, cl := range b.dirtyC {
		b.flushClient(cl)
		b.dirtyC[i] = nil
	}
	b.dirtyC = b.dirtyC[:0]
}

func (b *Broker) flushWorker(w *worker, now int64) {
	w.dirty = false
	if len(w.out) == 0 || w.dead {
		w.out = w.out[:0]
		return
	}
	err := zsock.Send(b.back, w.id, hdrJob, w.out, zmq.DONTWAIT)
	switch {
	case err == nil:
		w.lastSent = now
		w.out = trim(w.out)
	case zsock.IsAgain(err):
		// Its pipe is full; keep the batch and try again shortly. A worker
		// that never drains it is dropped by the liveness check.
		b.retry = true
		w.dirty = true
		b.dirtyW = append(b.dirtyW, w)
	default:
		w.out = w.out[:0]
		b.counters.WorkersLost++
		b.dropWorker(w, now, "unreachable")
	}
}

func (b *Broker) flushClient(cl *client) {
	cl.dirty = false
	if len(cl.out) == 0 {
		return
	}
	if err := zsock.Send(b.front, cl.id, hdrReply, cl.out, zmq.DONTWAIT); err != nil {
		// The client is gone or does not read: its answers are dropped,
		// never held back from other clients.
		b.counters.Unroutable++
	}
	cl.out = trim(cl.out)
}

// trim empties a batch buffer, letting an unusually large one go.
func trim(b []byte) []byte {
	if cap(b) > 4*batchMax {
		return nil
	}
	return b[:0]
}
