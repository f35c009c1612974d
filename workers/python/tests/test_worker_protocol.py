"""Worker conformance against a scripted broker.

A fake broker (a ZeroMQ ROUTER in this process) drives a worker process
through the rules of docs/PROTOCOL.md section 9 that a real broker seldom
exercises on cue: jobs arriving after DRAIN, the DRAIN acknowledgement, a
DISCONNECT while jobs run (their results must never be sent), results over
max_payload, garbage from the broker, a silent broker.

The worker under test serves the demo jobs (echo, sleep, ...) and takes the
flags --backend, --service, --concurrency and --prefetch. By default it is
`python -m hoseworker examples.jobs:demo`; HOSE_WORKER_CMD (a JSON list)
names another, e.g. ["/path/hose-cpp-worker", "--job", "demo"], and
HOSE_WORKER_SKIP lists tests it is known to fail. Run from
workers/python:  python3 -m unittest tests.test_worker_protocol
"""

import json
import os
import signal
import subprocess
import sys
import time
import unittest

import zmq

from hoseworker import protocol as p

HERE = os.path.dirname(os.path.abspath(__file__))
PYDIR = os.path.dirname(HERE)


def worker_cmd():
    cmd = os.environ.get("HOSE_WORKER_CMD")
    if cmd:
        return json.loads(cmd)
    return [sys.executable, "-m", "hoseworker", "examples.jobs:demo"]


def job(rid, service, payload, timeout_ms=10000, headers=()):
    return p.encode_job_record(p.JobRecord(rid, timeout_ms, 0, service.encode(), p.encode_headers(headers),
                                           payload))


class FakeBroker:
    """A ROUTER that heartbeats every worker it welcomed (unless silent) while
    the test waits for messages."""

    HEARTBEAT = 0.05

    def __init__(self):
        self.peers = set()
        self.silent = False
        self.last_beat = 0.0
        self.ctx = zmq.Context()
        self.sock = self.ctx.socket(zmq.ROUTER)
        self.sock.setsockopt(zmq.LINGER, 0)
        self.sock.bind("tcp://127.0.0.1:*")
        self.endpoint = self.sock.getsockopt_string(zmq.LAST_ENDPOINT)

    def close(self):
        self.sock.close(0)
        self.ctx.term()

    def send(self, ident, cmd, body=b"", tag=p.WORKER_TAG):
        if cmd == p.WELCOME:
            self.peers.add(ident)
        self.sock.send_multipart([ident, p.header(tag, cmd), body])

    def beat(self):
        now = time.monotonic()
        if self.silent or now - self.last_beat < self.HEARTBEAT:
            return
        self.last_beat = now
        for ident in self.peers:
            try:
                self.sock.send_multipart([ident, p.header(p.WORKER_TAG, p.HEARTBEAT), b""], zmq.NOBLOCK)
            except zmq.ZMQError:
                pass

    def recv(self, timeout=5.0):
        """(identity, command, body) of the next message, or None."""
        deadline = time.monotonic() + timeout
        while True:
            self.beat()
            left = deadline - time.monotonic()
            if self.sock.poll(int(max(0.0, min(left, self.HEARTBEAT)) * 1000)):
                break
            if left <= 0:
                return None
        frames = self.sock.recv_multipart()
        return frames[0], p.parse_header(frames[1], p.WORKER_TAG), (frames[2] if len(frames) > 2 else b"")

    def expect(self, cmd, timeout=5.0, skip=(p.HEARTBEAT,)):
        """The next message of command cmd, skipping those in skip."""
        deadline = time.monotonic() + timeout
        while True:
            m = self.recv(max(0.0, deadline - time.monotonic()))
            if m is None:
                raise AssertionError("no command %d within %.1fs" % (cmd, timeout))
            if m[1] == cmd:
                return m
            if m[1] not in skip:
                raise AssertionError("got command %d (body %r), want %d" % (m[1], m[2][:80], cmd))

    def collect(self, duration):
        """Every message received for duration seconds."""
        out, deadline = [], time.monotonic() + duration
        while True:
            left = deadline - time.monotonic()
            if left <= 0:
                return out
            m = self.recv(left)
            if m is not None:
                out.append(m)


class WorkerProtocolTest(unittest.TestCase):
    def setUp(self):
        # HOSE_WORKER_SKIP: comma-separated test names a worker is known to fail.
        if self._testMethodName in os.environ.get("HOSE_WORKER_SKIP", "").split(","):
            self.skipTest("known to fail for this worker (HOSE_WORKER_SKIP)")
        self.broker = FakeBroker()
        self.addCleanup(self.broker.close)

    def start(self, services=("echo", "sleep")):
        args = worker_cmd() + ["--backend", self.broker.endpoint, "--concurrency", "2", "--prefetch", "-1"]
        for s in services:
            args += ["--service", s]
        env = dict(os.environ, PYTHONDONTWRITEBYTECODE="1")
        log = None if os.environ.get("HOSE_WORKER_VERBOSE") else subprocess.DEVNULL
        proc = subprocess.Popen(args, cwd=PYDIR, env=env, stdout=log, stderr=log)
        self.addCleanup(self.stop_proc, proc)
        return proc

    @staticmethod
    def stop_proc(proc):
        if proc.poll() is None:
            proc.kill()
        proc.wait()

    def register(self, proc, hb_ms=100, liveness=5, max_payload=1 << 20, services=("echo", "sleep")):
        ident, _, body = self.broker.expect(p.READY)
        ready = p.decode_ready(body)
        self.assertEqual(ready.capacity, 2)
        self.assertEqual(ready.pid, proc.pid)
        self.assertEqual(ready.services, list(services))
        self.broker.send(ident, p.WELCOME, p.encode_welcome(p.Welcome(1, hb_ms, liveness, max_payload, 77)))
        return ident

    def results(self, want_ids, timeout=5.0):
        """Collect result records until every id in want_ids came."""
        got, deadline = {}, time.monotonic() + timeout
        while not set(want_ids) <= set(got):
            m = self.broker.recv(max(0.0, deadline - time.monotonic()))
            if m is None:
                self.fail("results for %s missing after %.1fs (got %s)" % (sorted(want_ids), timeout, sorted(got)))
            if m[1] == p.RESULT:
                for r in p.decode_result_records(m[2]):
                    self.assertNotIn(r.id, got, "two results for job %d" % r.id)
                    got[r.id] = r
            elif m[1] not in (p.HEARTBEAT, p.READY):
                self.fail("unexpected command %d while waiting for results" % m[1])
        return got

    def test_register_jobs_heartbeat(self):
        proc = self.start()
        ident = self.register(proc)
        self.broker.send(ident, p.JOB, job(11, "echo", b"a") + job(12, "echo", b"\x00\xff", headers=[("k", "v")]))
        got = self.results({11, 12})
        self.assertEqual((got[11].status, got[11].payload), (0, b"a"))
        self.assertEqual((got[12].status, got[12].payload), (0, b"\x00\xff"))
        # Idle: HEARTBEAT about every 100 ms (the WELCOME's interval).
        beats = [m for m in self.broker.collect(0.6) if m[1] == p.HEARTBEAT]
        self.assertGreaterEqual(len(beats), 3, "heartbeats in 0.6s at 100ms")
        self.assertLessEqual(len(beats), 8, "heartbeats in 0.6s at 100ms")

    def test_disconnect_drops_held_jobs(self):
        proc = self.start()
        ident = self.register(proc)
        self.broker.send(ident, p.JOB, job(5, "sleep", b"400"))
        self.broker.send(ident, p.DISCONNECT, b"unknown worker: register again")
        ident2, _, _ = self.broker.expect(p.READY, timeout=3)
        self.assertEqual(ident2, ident, "READY again on the same connection")
        self.broker.send(ident, p.WELCOME, p.encode_welcome(p.Welcome(2, 100, 5, 1 << 20, 78)))
        for m in self.broker.collect(0.7):
            if m[1] == p.RESULT:
                ids = [r.id for r in p.decode_result_records(m[2])]
                self.assertNotIn(5, ids, "the result of a job held at DISCONNECT was sent")
        self.broker.send(ident, p.JOB, job(6, "echo", b"after"))
        self.assertEqual(self.results({6})[6].payload, b"after")

    def test_drain_waits_for_ack(self):
        proc = self.start()
        ident = self.register(proc)
        self.broker.send(ident, p.JOB, job(10, "echo", b"registered?"))
        self.results({10})  # it has the WELCOME (test_stop_before_welcome covers the other case)
        self.broker.send(ident, p.JOB, job(1, "sleep", b"300"))
        proc.send_signal(signal.SIGTERM)
        self.broker.expect(p.DRAIN, timeout=3)
        # A job the broker sent before it saw the DRAIN: the worker must run it.
        self.broker.send(ident, p.JOB, job(2, "echo", b"late"))
        got = self.results({1, 2})
        self.assertEqual([got[1].status, got[2].payload], [0, b"late"])
        for m in self.broker.collect(0.3):
            self.assertNotEqual(m[1], p.DISCONNECT, "DISCONNECT before the broker acknowledged the DRAIN")
        self.broker.send(ident, p.DRAIN)
        self.broker.expect(p.DISCONNECT, timeout=3)
        self.assertEqual(proc.wait(5), 0)

    def test_stop_before_welcome(self):
        """SIGTERM while READY is unanswered: the broker may have registered
        the worker, so it must not vanish; it waits for WELCOME, drains and
        says DISCONNECT."""
        proc = self.start()
        ident, _, _ = self.broker.expect(p.READY)
        proc.send_signal(signal.SIGTERM)
        try:
            code = proc.wait(0.5)
        except subprocess.TimeoutExpired:
            pass  # still waiting for an answer to its READY: right
        else:
            self.fail("the worker exited (%d) without a word while its READY was unanswered" % code)
        self.broker.send(ident, p.WELCOME, p.encode_welcome(p.Welcome(1, 100, 5, 1 << 20, 77)))
        self.broker.expect(p.DRAIN, timeout=3, skip=(p.HEARTBEAT, p.READY))
        self.broker.send(ident, p.DRAIN)
        self.broker.expect(p.DISCONNECT, timeout=3, skip=(p.HEARTBEAT, p.READY))
        self.assertEqual(proc.wait(5), 0)

    def test_result_over_max_payload(self):
        proc = self.start()
        ident = self.register(proc, max_payload=100)
        self.broker.send(ident, p.JOB, job(3, "echo", b"x" * 200) + job(4, "echo", b"y" * 100))
        got = self.results({3, 4})
        self.assertEqual(got[3].status, p.STATUS_WORKER_ERROR)
        self.assertLessEqual(len(got[3].payload), 100)
        self.assertEqual((got[4].status, got[4].payload), (0, b"y" * 100))

    def test_ignores_garbage(self):
        proc = self.start()
        ident = self.register(proc)
        self.broker.sock.send_multipart([ident, b"HOSEX1\x03", b""])  # bad tag
        self.broker.sock.send_multipart([ident, b"HOSEW", b""])  # short header
        self.broker.send(ident, p.JOB, job(8, "echo", b"v2"), tag=b"HOSEW2")  # other version
        self.broker.send(ident, 0x42, b"from the future")  # unknown command
        self.broker.send(ident, p.JOB, b"\x00\x00\x00\xffgarbage")  # truncated record
        self.broker.send(ident, p.JOB, job(9, "echo", b"fine"))
        got = self.results({9})
        self.assertEqual(got[9].payload, b"fine")
        for m in self.broker.collect(0.2):
            if m[1] == p.RESULT:
                self.assertNotIn(8, [r.id for r in p.decode_result_records(m[2])])

    def test_silent_broker_means_new_connection(self):
        proc = self.start()
        ident = self.register(proc, hb_ms=50, liveness=3)
        self.broker.silent = True
        # Say nothing: after 3 x 50 ms the worker must give up this
        # connection and register on a new one (a new identity).
        deadline = time.monotonic() + 5
        while True:
            m = self.broker.recv(max(0.0, deadline - time.monotonic()))
            self.assertIsNotNone(m, "no READY on a new connection within 5s of silence")
            if m[1] == p.READY and m[0] != ident:
                break


if __name__ == "__main__":
    unittest.main()
