"""The hose worker: one thread owns the DEALER socket, jobs run elsewhere.

Worker.run() is the socket owner. It registers (READY/WELCOME), hands jobs
to a thread or process pool, sends their results in batches, heartbeats
while jobs run, registers again when the broker says DISCONNECT, opens a
fresh socket when the broker falls silent, and stops gracefully (DRAIN,
finish, DISCONNECT) on stop(), at max_age or after max_jobs. See
docs/PROTOCOL.md sections 9 and 11.
"""

import logging
import os
import random
import socket as _socket
import sys
import time

import zmq

from . import __version__
from . import protocol as p
from .pools import ProcessPool, ThreadPool, Waker

DEFAULT_BACKEND = "tcp://127.0.0.1:5556"

STOPPED = "stopped"  # run() ended because stop() was called
RETIRED = "retired"  # run() ended at max_age or max_jobs

BATCH_MAX = 256 << 10  # start a new RESULT message past this many bytes
READY_RETRY = 0.02  # READY again this soon when a send found no broker

_HDR = {cmd: p.header(p.WORKER_TAG, cmd) for cmd in range(1, 8)}


class BrokerLost(Exception):
    """The broker went away and the worker was told not to wait for it."""


class Job:
    """One job handed to the handler.

    payload     bytes: the caller's data
    service     str: the service the job was sent to ("default" when none)
    headers     dict str -> str of the caller's headers (first value of a
                repeated key; bytes decoded as UTF-8)
    header_list list of (key, value) bytes pairs, in wire order
    deadline    float, time.time() when the caller stops waiting
    idempotent  bool: the caller allows the job to run twice
    params      dict str -> str: the worker's own parameters (--param)
    id          int: the broker's job id (unique per broker run)
    """

    __slots__ = ("id", "service", "payload", "headers", "header_list", "deadline", "idempotent", "params",
                 "_mono_deadline")

    def header(self, key, default=""):
        """The value of header key, or default."""
        return self.headers.get(key, default)

    def time_left(self):
        """Seconds until the deadline (0 when past)."""
        return max(0.0, self._mono_deadline - time.monotonic())

    def __repr__(self):
        return "Job(id=%d, service=%r, payload=%d bytes)" % (self.id, self.service, len(self.payload))


def _decode_text(b):
    return b.decode("utf-8", "replace")


class Worker:
    """Serves jobs from one broker with handler(job) -> bytes.

    handler     callable(Job) -> bytes (str is encoded as UTF-8, None is
                empty). An exception answers the job with a worker error
                carrying the traceback.
    backend     the broker's backend endpoint
    services    service names to serve (default ["default"])
    concurrency jobs run at once (default: the number of CPUs)
    prefetch    jobs accepted beyond concurrency and queued here, so a slot
                that frees up starts the next job without a round trip to
                the broker (default: equal to concurrency; 0 or negative:
                none). The broker never sends more than concurrency +
                prefetch: that is the capacity in READY.
    pool        "thread" (default) or "process": where handlers run. Use
                "process" for CPU-bound Python; the handler must then be a
                module-level function.
    params      dict handed to every job as job.params
    max_age     retire after this many seconds (plus a random part up to
                max_age_delta); 0: never
    max_jobs    retire after this many jobs; 0: never
    drain_timeout  how long held jobs get to finish when stopping
    reconnect_min, reconnect_max  backoff bounds when the broker is lost
    heartbeat, liveness  used until the broker's WELCOME gives its own
    exit_on_broker_loss  raise BrokerLost instead of reconnecting
    curve_server_key, curve_secret_key  Z85 keys: encrypt the connection and
                authenticate the broker; curve_secret_key is this worker's
                (checked against the broker's worker allow-list), a fresh
                pair when omitted
    logger      a logging.Logger (default: logging.getLogger("hoseworker"))
    """

    def __init__(self, handler, backend=DEFAULT_BACKEND, services=("default",), concurrency=None, prefetch=None,
                 pool="thread", params=None, max_age=0.0, max_age_delta=0.0, max_jobs=0, drain_timeout=30.0,
                 reconnect_min=0.1, reconnect_max=5.0, heartbeat=0.5, liveness=4, exit_on_broker_loss=False,
                 logger=None, curve_server_key=None, curve_secret_key=None):
        if not callable(handler):
            raise TypeError("handler must be callable")
        services = list(services) or ["default"]
        if len(services) > 255 or any(not 1 <= len(s.encode()) <= 255 for s in services):
            raise ValueError("want 1..255 service names of 1..255 bytes each")
        concurrency = concurrency or os.cpu_count() or 1
        prefetch = concurrency if prefetch is None else max(0, prefetch)
        if not 1 <= concurrency + prefetch <= 65535:
            raise ValueError("concurrency %d + prefetch %d is not in 1..65535" % (concurrency, prefetch))
        if pool not in ("thread", "process"):
            raise ValueError("pool must be 'thread' or 'process', not %r" % pool)
        if min(max_age, max_age_delta, max_jobs) < 0:
            raise ValueError("negative max_age, max_age_delta or max_jobs")
        self.handler = handler
        self.backend = backend
        self.services = services
        self.concurrency = concurrency
        self.prefetch = prefetch
        self.pool_kind = pool
        self.params = dict(params or {})
        self.max_age = max_age
        self.max_age_delta = max_age_delta
        self.max_jobs = max_jobs
        self.drain_timeout = drain_timeout
        self.reconnect_min = reconnect_min
        self.reconnect_max = reconnect_max
        self.exit_on_broker_loss = exit_on_broker_loss
        if curve_secret_key and not curve_server_key:
            raise ValueError("curve_secret_key needs curve_server_key")
        self._curve = None
        if curve_server_key:
            if curve_secret_key:
                pub = zmq.curve_public(curve_secret_key.encode())
                sec = curve_secret_key.encode()
            else:
                pub, sec = zmq.curve_keypair()
            self._curve = (curve_server_key.encode(), pub, sec)
        self.log = logger or logging.getLogger("hoseworker")
        self.version = "hose-py/%s python/%d.%d" % ((__version__,) + sys.version_info[:2])
        self._ready = p.encode_ready(p.Ready(concurrency + prefetch, os.getpid(), _socket.gethostname()[:255],
                                             self.version, services))
        self._hb0, self._liveness0 = heartbeat, liveness
        self._waker = Waker()
        self._stop_req = False
        self._force = False
        self._services = {s.encode(): s for s in services}

    # --- control from other threads and signal handlers ---

    def stop(self, force=False):
        """Ask run() to stop gracefully (force: without waiting for jobs).
        Safe from any thread and from a signal handler."""
        self._stop_req = True
        if force:
            self._force = True
        self._waker.signal()

    # --- the socket owner ---

    def run(self):
        """Serve until stop(), max_age or max_jobs; return STOPPED or
        RETIRED. Raises BrokerLost when exit_on_broker_loss is set and the
        broker goes away."""
        self._zctx = zmq.Context()
        self._sock = None
        self._poller = zmq.Poller()
        self._poller.register(self._waker.r, zmq.POLLIN)
        if self.pool_kind == "process":
            self._pool = ProcessPool(self.handler, self.concurrency, self.log)
        else:
            self._pool = ThreadPool(self.handler, self.concurrency, self._waker)
        self._pool_fds = set()
        self._sync_pool_fds()
        self._gen = 0
        self._registered = False
        self._ready_sent = False  # a READY left on this connection: a WELCOME may follow
        self._hb, self._liveness = self._hb0, self._liveness0
        self._max_payload = 8 << 20
        self._last_heard = self._last_sent = 0.0
        self._next_ready = 0.0
        self._retry_at = 0.0
        self._backoff = self.reconnect_min
        self._running = 0
        self._jobs_done = 0
        self._stopping = False
        self._drained = False
        self._stop_reason = None
        self._stop_by = 0.0
        now = time.monotonic()
        self._retire_at = 0.0
        if self.max_age > 0:
            self._retire_at = now + self.max_age + random.uniform(0, self.max_age_delta)
        try:
            self._connect(now)
            self.log.info("worker started: backend %s, services %s, concurrency %d (%s pool), prefetch %d",
                          self.backend, ",".join(self.services), self.concurrency, self.pool_kind, self.prefetch)
            return self._loop()
        finally:
            if self._sock is not None:
                self._sock.close(linger=100)  # let a last DISCONNECT leave
            self._pool.close(abandon=self._running > 0)
            self._zctx.term()

    def _sync_pool_fds(self):
        fds = set(self._pool.fds())
        for fd in self._pool_fds - fds:
            self._poller.unregister(fd)
        for fd in fds - self._pool_fds:
            self._poller.register(fd, zmq.POLLIN)
        self._pool_fds = fds
        self._pool.changed = False

    def _loop(self):
        next_tick = time.monotonic()
        while True:
            now = time.monotonic()
            timeout = next_tick - now
            if self._retry_at:
                timeout = min(timeout, self._retry_at - now)
            if self._pool.done or (self._stop_req and not self._stopping):
                timeout = 0
            events = self._poller.poll(max(0, int(timeout * 1000 + 0.999)))
            now = time.monotonic()
            for what, _ in events:
                if what is self._sock:
                    outcome = self._read(now)
                    if outcome is not None:
                        return outcome
                elif what == self._waker.r:
                    self._waker.drain()
                else:
                    self._pool.readable(what)
            if self._pool.changed:
                self._sync_pool_fds()
            self._send_results(now)
            if self._stop_req and not self._stopping:
                self._begin_stop(STOPPED, now, "stop requested")
            if self._retire_at and now >= self._retire_at and not self._stopping:
                self._begin_stop(RETIRED, now, "max age reached")
            # Leave once every job is done and the broker acknowledged our
            # DRAIN (jobs it sent before the ack arrive before it). A READY
            # still unanswered may have registered us: wait for its WELCOME
            # (then DRAIN) rather than vanish with jobs on their way.
            if self._stopping and ((self._running == 0 and self._left_broker())
                                   or now >= self._stop_by or self._force):
                if self._running:
                    self.log.warning("drain timed out, abandoning %d jobs", self._running)
                if self._registered:
                    self._send(p.DISCONNECT, b"", now)
                self.log.info("worker stopped after %d jobs", self._jobs_done)
                return self._stop_reason
            if now >= next_tick:
                outcome = self._tick(now)
                if outcome is not None:
                    return outcome
                step = self._hb / 4
                if not self._registered and self._sock is not None and not self._retry_at:
                    step = min(step, READY_RETRY)
                next_tick = now + step

    def _unregister(self):
        """The broker does not know us (any more): the jobs held now are
        never answered."""
        self._registered = False
        self._ready_sent = False
        self._drained = False
        self._gen += 1

    def _left_broker(self):
        """True when the broker holds nothing for us: it acknowledged our
        DRAIN, or it does not know us (no READY out, no WELCOME in)."""
        if self._registered:
            return self._drained
        return not self._ready_sent

    def _connect(self, now):
        if self._sock is not None:
            self._poller.unregister(self._sock)
            self._sock.close(linger=0)
        s = self._zctx.socket(zmq.DEALER)
        s.setsockopt(zmq.IMMEDIATE, 1)
        s.setsockopt(zmq.LINGER, 100)
        s.setsockopt(zmq.SNDHWM, 100000)
        s.setsockopt(zmq.RCVHWM, 100000)
        s.setsockopt(zmq.RECONNECT_IVL, 100)
        s.setsockopt(zmq.RECONNECT_IVL_MAX, 1000)
        if self._curve:
            server, pub, sec = self._curve
            s.setsockopt(zmq.CURVE_SERVERKEY, server)
            s.setsockopt(zmq.CURVE_PUBLICKEY, pub)
            s.setsockopt(zmq.CURVE_SECRETKEY, sec)
        s.connect(self.backend)
        self._sock = s
        self._poller.register(s, zmq.POLLIN)
        self._unregister()
        self._retry_at = 0.0
        self._last_heard = now
        self._send_ready(now)

    def _send(self, cmd, body, now):
        """Send without blocking; False when no broker is connected."""
        if self._sock is None:
            return False
        try:
            self._sock.send_multipart((_HDR[cmd], body), zmq.NOBLOCK, copy=len(body) < 65536)
        except zmq.Again:
            return False
        except zmq.ZMQError as e:
            self.log.warning("send: %s", e)
            return False
        self._last_sent = now
        return True

    def _send_ready(self, now):
        ok = self._send(p.READY, self._ready, now)
        self._ready_sent = self._ready_sent or ok
        self._next_ready = now + (self._hb if ok else READY_RETRY)

    def _read(self, now):
        """Handle up to 256 waiting messages; return an outcome to end run()."""
        for _ in range(256):
            try:
                frames = self._sock.recv_multipart(zmq.NOBLOCK)
            except zmq.Again:
                return None
            try:
                cmd = p.parse_header(frames[0], p.WORKER_TAG)
            except p.ProtocolError as e:
                self.log.warning("dropping a message from the broker: %s", e)
                continue
            self._last_heard = now
            body = frames[1] if len(frames) > 1 else b""
            if cmd == p.JOB:
                self._jobs(body, now)
            elif cmd == p.HEARTBEAT:
                pass
            elif cmd == p.DRAIN:
                self._drained = True  # the broker's acknowledgement: no JOB follows
            elif cmd == p.WELCOME:
                self._welcome(body, now)
            elif cmd == p.DISCONNECT:
                return self._disconnected(body, now)
            else:
                self.log.warning("dropping unknown command %d from the broker", cmd)
        return None

    def _welcome(self, body, now):
        try:
            w = p.decode_welcome(body)
        except p.ProtocolError as e:
            self.log.warning("malformed WELCOME: %s", e)
            return
        if not self._registered:
            self.log.info("registered: worker id %d, heartbeat %d ms, liveness %d", w.worker_id, w.heartbeat_ms,
                          w.liveness)
        self._registered = True
        self._backoff = self.reconnect_min
        if w.heartbeat_ms:
            self._hb = w.heartbeat_ms / 1000.0
        if w.liveness:
            self._liveness = w.liveness
        if w.max_payload:
            self._max_payload = w.max_payload
        if self._stopping:
            self._send(p.DRAIN, b"", now)

    def _disconnected(self, body, now):
        self.log.info("broker said DISCONNECT: %s", _decode_text(body) or "(no reason)")
        if self._stopping:
            return self._stop_reason
        if self.exit_on_broker_loss:
            raise BrokerLost("broker said DISCONNECT: %s" % _decode_text(body))
        # The broker forgot us (it restarted, or dropped us): the jobs we
        # hold are not ours to answer any more. Register again after a
        # backoff, on the same socket.
        self._unregister()
        self._retry_at = now + self._backoff
        self._backoff = min(2 * self._backoff, self.reconnect_max)
        return None

    def _jobs(self, body, now):
        wall = time.time()
        gen = self._gen
        try:
            for r in p.decode_job_records(body):
                job = Job()
                job.id = r.id
                job.service = self._services.get(r.service) or _decode_text(r.service) or p.DEFAULT_SERVICE
                job.payload = r.payload
                pairs = p.decode_headers(r.headers) if r.headers else []
                job.header_list = pairs
                headers = {}
                for k, v in pairs:
                    headers.setdefault(_decode_text(k), _decode_text(v))
                job.headers = headers
                job.deadline = wall + r.timeout_ms / 1000.0
                job._mono_deadline = now + r.timeout_ms / 1000.0
                job.idempotent = bool(r.flags & p.FLAG_IDEMPOTENT)
                job.params = self.params
                self._running += 1
                self._pool.submit((gen, r.id), job)
        except p.ProtocolError as e:
            self.log.warning("dropping the rest of a malformed JOB batch: %s", e)
        if self._pool.changed:
            self._sync_pool_fds()

    def _send_results(self, now):
        done = self._pool.done
        if not done:
            return
        out = []
        size = 0
        while done:
            (gen, job_id), status, payload = done.popleft()
            self._running -= 1
            self._jobs_done += 1
            if gen != self._gen or not self._registered:
                continue  # the broker forgot this job: never answer it
            if len(payload) > self._max_payload:
                status = p.STATUS_WORKER_ERROR
                payload = ("result of %d bytes exceeds the broker's limit of %d"
                           % (len(payload), self._max_payload)).encode()
            rec = p.encode_result_record(job_id, status, payload)
            if out and size + len(rec) > BATCH_MAX:
                self._send(p.RESULT, b"".join(out), now)
                out, size = [], 0
            out.append(rec)
            size += len(rec)
        if out:
            self._send(p.RESULT, b"".join(out), now)
        if self.max_jobs and self._jobs_done >= self.max_jobs and not self._stopping:
            self._begin_stop(RETIRED, now, "max jobs reached")

    def _begin_stop(self, reason, now, why):
        self._stopping = True
        self._stop_reason = reason
        self._stop_by = now + self.drain_timeout
        self.log.info("worker draining (%s), %d jobs running", why, self._running)
        if self._registered:
            self._send(p.DRAIN, b"", now)

    def _tick(self, now):
        """Heartbeat, notice a silent broker, reconnect or register again."""
        if self._retry_at:
            if now >= self._retry_at:
                self._retry_at = 0.0
                if self._sock is None:
                    self._connect(now)  # the broker went silent: new socket
                else:
                    self._last_heard = now  # it said DISCONNECT: READY again
                    self._send_ready(now)
            return None
        if now - self._last_heard > self._hb * self._liveness:
            self.log.warning("broker silent for %.2fs", now - self._last_heard)
            if self._stopping:
                return self._stop_reason
            if self.exit_on_broker_loss:
                raise BrokerLost("broker silent for %.2fs" % (now - self._last_heard))
            self._unregister()
            self._poller.unregister(self._sock)
            self._sock.close(linger=0)
            self._sock = None
            self._retry_at = now + self._backoff
            self._backoff = min(2 * self._backoff, self.reconnect_max)
            return None
        if self._registered:
            if now - self._last_sent >= self._hb:
                self._send(p.HEARTBEAT, b"", now)
        elif now >= self._next_ready:
            self._send_ready(now)
        return None
