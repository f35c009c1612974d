package client

import (
	"fmt"
	"runtime"
	"time"

	zmq "github.com/pebbe/zmq4"

	"github.com/hose-project/hose/internal/wake"
	"github.com/hose-project/hose/internal/zsock"
	"github.com/hose-project/hose/protocol"
)

const (
	drainMax = 256
	batchMax = 256 << 10
)

var (
	hdrRequest = protocol.Header(protocol.Client, protocol.CmdRequest)
	hdrPing    = protocol.Header(protocol.Client, protocol.CmdPing)
	hdrCancel  = protocol.Header(protocol.Client, protocol.CmdCancel)
)

// endpoint is one broker connection, owned by the loop goroutine.
type endpoint struct {
	idx       int
	addr      string
	sock      *zmq.Socket
	mon       *zmq.Socket // socket monitor events of sock
	sockW     *wake.Watch
	monW      *wake.Watch
	sockIn    bool // sock had input at the last look
	monIn     bool
	connected bool
	refused   bool    // the last handshake failed (authentication)
	silent    bool    // connected, but the broker stopped answering
	draining  bool    // the broker answered "shutting down": no new calls until it reconnects
	out       []byte  // REQUEST batch being built
	outCalls  []*call // the calls in out
	cancels   []byte  // CANCEL body being built
	heard     int64   // last message from the broker
	instance  uint64  // broker instance from its last PONG
	pending   int     // calls sent and unanswered
	pingSent  int64
}

// usable reports whether calls may be sent to ep now.
func (ep *endpoint) usable() bool { return ep.connected && !ep.silent && !ep.draining }

func (ep *endpoint) close() {
	ep.sockW.Close()
	ep.monW.Close()
	if ep.mon != nil {
		ep.mon.Close()
	}
	if ep.sock != nil {
		ep.sock.Close()
	}
}

func (c *Client) loop() {
	defer close(c.done)
	hb := int64(c.cfg.HeartbeatInterval)
	tick := hb / 4
	nextTick := c.now()
	c.look()
	for {
		if !c.anyInput() {
			now := c.now()
			timeout := nextTick - now
			if len(c.backlog) > 0 {
				timeout = min(timeout, int64(5*time.Millisecond))
			}
			c.waiter.Sleep()
			c.mu.Lock()
			busy := len(c.queue) > 0 || len(c.gaveUp) > 0 || len(c.pings) > 0 || c.closing
			c.mu.Unlock()
			if busy {
				c.waiter.Awake()
			} else {
				c.waiter.Wait(time.Duration(timeout))
			}
			c.look()
		}
		now := c.now()
		delivered := 0
		for _, ep := range c.eps {
			if ep.monIn {
				c.events(ep, now)
			}
			if ep.sockIn {
				delivered += c.drain(ep, now)
			}
		}
		// Let runnable callers (those just answered, or the one whose
		// signal woke us) queue their calls first, so they leave in one
		// batch instead of one wake-up each.
		_ = delivered
		runtime.Gosched()
		c.mu.Lock()
		queue, gaveUp, pings, closing := c.queue, c.gaveUp, c.pings, c.closing
		c.queue, c.gaveUp, c.pings = nil, nil, nil
		c.mu.Unlock()
		if closing {
			c.shutdown(queue)
			return
		}
		for _, cl := range gaveUp {
			c.forget(cl)
		}
		for _, p := range pings {
			c.startPing(p, now)
		}
		if len(c.backlog) > 0 {
			backlog := c.backlog
			c.backlog = nil
			for _, cl := range backlog {
				c.assign(cl, now)
			}
		}
		for _, cl := range queue {
			c.assign(cl, now)
		}
		if now >= nextTick {
			c.tick(now)
			nextTick = now + tick
		}
		c.flush(now)
		// Sending may have consumed the edge that announced a reply.
		c.look()
	}
}

// look asks ZMQ_EVENTS which sockets have input.
func (c *Client) look() {
	for _, ep := range c.eps {
		ep.sockIn = ep.sockW.Ready()
		ep.monIn = ep.monW.Ready()
	}
}

func (c *Client) anyInput() bool {
	for _, ep := range c.eps {
		if ep.sockIn || ep.monIn {
			return true
		}
	}
	return false
}

// assign gives cl an endpoint and adds it to that endpoint's batch.
func (c *Client) assign(cl *call, now int64) {
	if now >= cl.deadline {
		c.finish(cl, ErrTimeout)
		return
	}
	if cl.abandoned {
		return
	}
	ep := c.pick()
	if ep == nil {
		if now-cl.enqueued >= int64(c.cfg.ConnectTimeout) {
			err := c.goneError()
			if cl.refused {
				err = ErrShuttingDown // no broker took it after a shutdown: say so
			}
			c.finish(cl, err)
			return
		}
		c.backlog = append(c.backlog, cl)
		return
	}
	if cl.id == 0 {
		c.nextID++
		cl.id = c.nextID
	}
	cl.ep = ep
	left := (cl.deadline - now + int64(time.Millisecond) - 1) / int64(time.Millisecond)
	svc := cl.service
	j := protocol.Job{ID: cl.id, TimeoutMS: uint32(min(left, 1<<32-1)), Flags: cl.flags, Headers: cl.headers, Payload: cl.payload}
	if svc != "" {
		j.Service = []byte(svc)
	}
	ep.out = protocol.AppendJob(ep.out, &j)
	ep.outCalls = append(ep.outCalls, cl)
	if len(ep.out) >= batchMax {
		c.flushEndpoint(ep, now)
	}
}

// goneError is ErrBrokerGone, saying why when every broker refused the
// handshake.
func (c *Client) goneError() error {
	for _, ep := range c.eps {
		if !ep.refused {
			return ErrBrokerGone
		}
	}
	return fmt.Errorf("%w: the broker refused the handshake (CURVE key not allowed, or wrong server key)", ErrBrokerGone)
}

// pick returns the next usable endpoint, round robin, or nil.
func (c *Client) pick() *endpoint {
	n := len(c.eps)
	for i := 0; i < n; i++ {
		ep := c.eps[(c.rr+i)%n]
		if ep.usable() {
			c.rr = (c.rr + i + 1) % n
			return ep
		}
	}
	return nil
}

func (c *Client) flush(now int64) {
	for _, ep := range c.eps {
		c.flushEndpoint(ep, now)
		if len(ep.cancels) > 0 {
			if ep.connected {
				_ = zsock.Send(ep.sock, nil, hdrCancel, ep.cancels, zmq.DONTWAIT)
			}
			ep.cancels = ep.cancels[:0]
		}
	}
}

func (c *Client) flushEndpoint(ep *endpoint, now int64) {
	if len(ep.outCalls) == 0 {
		return
	}
	calls := ep.outCalls
	err := zsock.Send(ep.sock, nil, hdrRequest, ep.out, zmq.DONTWAIT)
	ep.out = trim(ep.out)
	ep.outCalls = ep.outCalls[:0]
	if err == nil {
		for _, cl := range calls {
			if cl.abandoned {
				continue
			}
			c.pending[cl.id] = cl
			ep.pending++
		}
		return
	}
	// A full pipe (the broker does not read): these calls wait in the
	// backlog and go to another broker or here again shortly.
	c.cfg.Logger.Debug("send to broker failed", "endpoint", ep.addr, "err", err)
	for _, cl := range calls {
		cl.ep = nil
		c.backlog = append(c.backlog, cl)
	}
}

func trim(b []byte) []byte {
	if cap(b) > 4*batchMax {
		return nil
	}
	return b[:0]
}

// drain reads what the broker sent on ep and returns the number of calls
// answered.
func (c *Client) drain(ep *endpoint, now int64) (answered int) {
	var m zsock.Msg
	for i := 0; i < drainMax; i++ {
		if err := zsock.Recv(ep.sock, zmq.DONTWAIT, false, &m); err != nil {
			return answered
		}
		cmd, err := protocol.ParseHeader(m.Header, protocol.Client)
		if err != nil {
			c.cfg.Logger.Warn("dropping malformed message from broker", "endpoint", ep.addr, "err", err)
			continue
		}
		ep.heard = now
		ep.silent = false
		switch cmd {
		case protocol.CmdReply:
			answered += c.replies(ep, m.Body, now)
		case protocol.CmdPong:
			c.pong(ep, m.Body, now)
		case protocol.CmdError:
			st, text, _ := protocol.DecodeError(m.Body)
			c.cfg.Logger.Error("broker reported an error", "endpoint", ep.addr, "status", st, "message", text)
			if st == protocol.StatusUnsupportedVersion {
				c.failEndpoint(ep, ErrUnsupportedVersion)
			}
		default:
			c.cfg.Logger.Warn("dropping unknown command from broker", "endpoint", ep.addr, "command", cmd)
		}
	}
	return answered
}

func (c *Client) replies(ep *endpoint, body []byte, now int64) (answered int) {
	var r protocol.Reply
	for len(body) > 0 {
		var err error
		if body, err = protocol.NextReply(body, &r); err != nil {
			c.cfg.Logger.Warn("dropping malformed reply batch", "endpoint", ep.addr, "err", err)
			return answered
		}
		answered++
		cl := c.pending[r.ID]
		if cl == nil {
			continue // the caller gave up; the answer is late
		}
		delete(c.pending, r.ID)
		if cl.ep != nil {
			cl.ep.pending--
		}
		cl.queueUS, cl.serviceUS = r.QueueUS, r.ServiceUS
		if r.Status == protocol.StatusShuttingDown {
			// The broker is stopping and did not run the job: send it to
			// another broker, or to this one once it is back (a restart),
			// while time remains; send nothing more here until then.
			ep.draining = true
			if now < cl.deadline && !cl.abandoned {
				cl.id, cl.ep, cl.enqueued, cl.refused = 0, nil, now, true
				c.backlog = append(c.backlog, cl)
				continue
			}
		}
		if r.Status == protocol.StatusOK {
			cl.res = r.Payload
			cl.done <- struct{}{}
		} else {
			c.finish(cl, statusError(r.Status, r.Payload))
		}
	}
	return answered
}

// finish ends a call with err. Owner only.
func (c *Client) finish(cl *call, err error) {
	if cl.id != 0 {
		if _, ok := c.pending[cl.id]; ok {
			delete(c.pending, cl.id)
			if cl.ep != nil {
				cl.ep.pending--
			}
		}
	}
	cl.err = err
	cl.done <- struct{}{}
}

// forget drops a call whose caller left and tells its broker, which then
// skips the job if it is still queued.
func (c *Client) forget(cl *call) {
	cl.abandoned = true
	if cl.id == 0 || c.pending[cl.id] != cl {
		return
	}
	delete(c.pending, cl.id)
	if ep := cl.ep; ep != nil {
		ep.pending--
		ep.cancels = protocol.AppendU64(ep.cancels, cl.id)
	}
}

// events applies socket monitor events: a new connection, or a lost one,
// whose calls can no longer be answered.
func (c *Client) events(ep *endpoint, now int64) {
	for i := 0; i < drainMax; i++ {
		ev, _, _, err := ep.mon.RecvEvent(zmq.DONTWAIT)
		if err != nil {
			return
		}
		switch ev {
		case zmq.EVENT_HANDSHAKE_FAILED_AUTH, zmq.EVENT_HANDSHAKE_FAILED_PROTOCOL, zmq.EVENT_HANDSHAKE_FAILED_NO_DETAIL:
			if !ep.refused {
				c.cfg.Logger.Error("broker refused the connection's handshake (CURVE keys?)", "endpoint", ep.addr, "event", ev.String())
			}
			ep.refused = true
		case zmq.EVENT_HANDSHAKE_SUCCEEDED:
			ep.refused = false
			ep.connected = true
			ep.silent = false
			ep.draining = false
			ep.heard = now
			c.ping(ep, 0, now)
			// Pings asked for before the connection was up were not sent.
			for nonce := range c.waiters {
				c.ping(ep, nonce, now)
			}
		case zmq.EVENT_DISCONNECTED:
			ep.connected = false
			ep.draining = false
			// Answers that arrived before the connection closed are still
			// queued in the socket: take them before failing the rest.
			c.drain(ep, now)
			if ep.pending > 0 {
				c.cfg.Logger.Info("broker connection lost, failing its calls", "endpoint", ep.addr, "calls", ep.pending)
				c.failEndpoint(ep, ErrBrokerGone)
			}
		}
	}
}

func (c *Client) ping(ep *endpoint, nonce uint64, now int64) {
	ep.pingSent = now
	if ep.connected {
		ms := uint32(min(c.cfg.HeartbeatInterval.Milliseconds(), 1<<32-1))
		_ = zsock.Send(ep.sock, nil, hdrPing, protocol.AppendPing(nil, nonce, ms), zmq.DONTWAIT)
	}
}

func (c *Client) startPing(p *pingReq, now int64) {
	c.nextID++
	p.nonce = c.nextID
	p.sent = now
	c.waiters[p.nonce] = p
	for _, ep := range c.eps {
		c.ping(ep, p.nonce, now)
	}
}

func (c *Client) pong(ep *endpoint, body []byte, now int64) {
	pong, err := protocol.DecodePong(body)
	if err != nil {
		return
	}
	ep.instance = pong.Instance
	if p := c.waiters[pong.Nonce]; p != nil && pong.Nonce != 0 {
		delete(c.waiters, pong.Nonce)
		p.reply <- BrokerInfo{
			Endpoint: ep.addr, PID: int(pong.PID), Host: pong.Host, Version: pong.Version,
			Instance: pong.Instance, Uptime: time.Duration(pong.UptimeMS) * time.Millisecond,
			Workers: int(pong.Workers), Queued: int(pong.Queued), InFlight: int(pong.InFlight),
			Draining: pong.Draining, RTT: time.Duration(now - p.sent),
		}
	}
}

// failEndpoint ends the calls pending on ep: idempotent ones are sent again
// (here or elsewhere) if time remains, the others fail with err.
func (c *Client) failEndpoint(ep *endpoint, err error) {
	now := c.now()
	for id, cl := range c.pending {
		if cl.ep != ep {
			continue
		}
		delete(c.pending, id)
		ep.pending--
		if cl.flags&protocol.FlagIdempotent != 0 && err == ErrBrokerGone && cl.deadline > now {
			cl.id, cl.ep = 0, nil
			cl.enqueued = now
			c.backlog = append(c.backlog, cl)
			continue
		}
		cl.err = err
		cl.done <- struct{}{}
	}
}

// tick pings brokers and declares silent ones gone.
func (c *Client) tick(now int64) {
	hb := int64(c.cfg.HeartbeatInterval)
	for _, ep := range c.eps {
		if !ep.connected {
			continue
		}
		if ep.pending > 0 && !ep.silent && ep.pingSent > ep.heard && now-ep.heard > hb*int64(c.cfg.Liveness) {
			// Connected but mute (stopped, or wedged): its calls will not
			// be answered, and new ones go elsewhere until it speaks.
			c.cfg.Logger.Info("broker silent, failing its calls", "endpoint", ep.addr, "calls", ep.pending)
			ep.silent = true
			c.failEndpoint(ep, ErrBrokerGone)
		}
		// A broker holding calls is pinged every tick so silence shows
		// within the liveness window; an idle one once per interval.
		if (ep.pending > 0 && now-ep.pingSent >= hb/4) || now-ep.pingSent >= hb {
			c.ping(ep, 0, now)
		}
	}
	c.sweep(now)
	for nonce, p := range c.waiters {
		if now-p.sent > int64(c.cfg.ConnectTimeout) {
			delete(c.waiters, nonce)
		}
	}
}

// sweep ends calls whose deadline has passed. The broker answers them
// itself at the deadline; this is what keeps a caller without a context
// deadline from waiting forever on a broker that does not.
func (c *Client) sweep(now int64) {
	for id, cl := range c.pending {
		if now >= cl.deadline {
			delete(c.pending, id)
			if cl.ep != nil {
				cl.ep.pending--
				cl.ep.cancels = protocol.AppendU64(cl.ep.cancels, id)
			}
			cl.err = ErrTimeout
			cl.done <- struct{}{}
		}
	}
}

// shutdown fails everything with ErrClosed and closes the sockets.
func (c *Client) shutdown(queue []*call) {
	for _, cl := range queue {
		cl.err = ErrClosed
		cl.done <- struct{}{}
	}
	for _, cl := range c.backlog {
		cl.err = ErrClosed
		cl.done <- struct{}{}
	}
	c.backlog = nil
	for id, cl := range c.pending {
		delete(c.pending, id)
		cl.err = ErrClosed
		cl.done <- struct{}{}
	}
	for _, ep := range c.eps {
		// Calls batched but not yet sent (none unless a flush was cut short).
		for _, cl := range ep.outCalls {
			cl.err = ErrClosed
			cl.done <- struct{}{}
		}
		ep.outCalls = nil
		ep.close()
	}
	c.zctx.Term()
}
