#!/usr/bin/env python3
"""A hose client in Python on pyzmq alone: Execute over the raw protocol.

    python3 examples/client.py --frontend tcp://127.0.0.1:5555 --service echo hello
    echo hello | python3 examples/client.py --service echo -
    python3 examples/client.py --ping

It speaks the client dialect of docs/PROTOCOL.md (section 12): a DEALER
socket, REQUEST/REPLY records, PING/PONG as heartbeat and restart
detection, CANCEL when it gives up. Encoding comes from hoseworker.protocol,
which is checked against the byte-exact vectors. One call at a time; the Go
client pipelines many.

Exit codes (as `hose exec`): 0 ok, 1 other error, 2 usage, 3 timeout,
4 no worker, 5 worker error, 6 broker unreachable or gone, 7 busy,
8 worker lost, 9 unknown service, 10 too large, 11 shutting down.
"""

import argparse
import itertools
import os
import sys
import time

import zmq

try:
    from hoseworker import protocol as p
except ImportError:  # run as a script from anywhere
    sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))
    from hoseworker import protocol as p

HEARTBEAT = 0.5  # PING this often while idle; four times as often while a call waits
LIVENESS = 4  # a broker silent this many intervals after a PING is gone

EXIT_CODES = {
    p.STATUS_DEADLINE: 3,
    p.STATUS_NO_WORKER: 4,
    p.STATUS_WORKER_ERROR: 5,
    p.STATUS_BUSY: 7,
    p.STATUS_WORKER_LOST: 8,
    p.STATUS_UNKNOWN_SERVICE: 9,
    p.STATUS_TOO_LARGE: 10,
    p.STATUS_SHUTTING_DOWN: 11,
}


class HoseError(Exception):
    """A failed call. status is the protocol status (or None: broker gone)."""

    def __init__(self, status, message):
        super().__init__("%s: %s" % (p.STATUS_NAMES.get(status, "broker gone" if status is None else status),
                                     message))
        self.status = status
        self.message = message


class Client:
    def __init__(self, endpoint="tcp://127.0.0.1:5555"):
        self.ctx = zmq.Context()
        self.sock = self.ctx.socket(zmq.DEALER)
        self.sock.setsockopt(zmq.IMMEDIATE, 1)  # EAGAIN while no broker is connected
        self.sock.setsockopt(zmq.LINGER, 0)
        self.sock.connect(endpoint)
        self.ids = itertools.count(1)
        self.nonces = itertools.count(1)
        self.instance = None  # the broker's instance, from the last PONG

    def close(self):
        self.sock.close(0)
        self.ctx.term()

    def _send(self, cmd, body, deadline):
        """Send, retrying while the broker is not connected yet."""
        while True:
            try:
                self.sock.send_multipart([p.header(p.CLIENT_TAG, cmd), body], zmq.NOBLOCK)
                return
            except zmq.Again:
                if time.monotonic() >= deadline:
                    raise HoseError(None, "no broker connected")
                time.sleep(0.005)

    def _recv(self, timeout):
        """One (command, body) or None after timeout seconds."""
        if not self.sock.poll(max(0, int(timeout * 1000))):
            return None
        frames = self.sock.recv_multipart()
        try:
            cmd = p.parse_header(frames[0], p.CLIENT_TAG)
        except p.ProtocolError:
            return (None, b"")  # not ours: drop it, but the broker is alive
        return cmd, (frames[1] if len(frames) > 1 else b"")

    def ping(self, timeout=2.0):
        """Ask the broker for its health; returns a protocol.Pong."""
        deadline = time.monotonic() + timeout
        nonce = next(self.nonces)
        self._send(p.PING, p.encode_u64s([nonce]), deadline)
        while True:
            msg = self._recv(deadline - time.monotonic())
            if msg is None:
                raise HoseError(None, "no PONG within %.1fs" % timeout)
            if msg[0] == p.PONG:
                pong = p.decode_pong(msg[1])
                if pong.nonce == nonce:
                    self.instance = pong.instance
                    return pong

    def execute(self, payload, service="", timeout=5.0, idempotent=False, headers=()):
        """Run payload on a worker of service; return the result bytes."""
        rid = next(self.ids)
        rec = p.JobRecord(rid, int(timeout * 1000 + 0.999), p.FLAG_IDEMPOTENT if idempotent else 0,
                          service.encode(), p.encode_headers(headers), payload)
        start = time.monotonic()
        deadline = start + timeout
        if self.instance is None:
            self.ping(min(timeout, 2.0))  # learn the instance: a later change means a restart
        self._send(p.REQUEST, p.encode_job_record(rec), deadline)
        heard = last_ping = time.monotonic()
        while True:
            now = time.monotonic()
            if now >= deadline:
                self._cancel(rid)
                raise HoseError(p.STATUS_DEADLINE, "no reply within %.3fs" % timeout)
            if now - heard > HEARTBEAT * LIVENESS:
                raise HoseError(None, "broker silent for %.1fs" % (now - heard))
            if now - last_ping >= HEARTBEAT / 4:
                try:
                    self.sock.send_multipart([p.header(p.CLIENT_TAG, p.PING), p.encode_u64s([0])], zmq.NOBLOCK)
                except zmq.Again:
                    pass
                last_ping = now
            msg = self._recv(min(deadline - now, HEARTBEAT / 4))
            if msg is None:
                continue
            heard = time.monotonic()
            cmd, body = msg
            if cmd == p.PONG:
                pong = p.decode_pong(body)
                if self.instance is not None and pong.instance != self.instance:
                    self.instance = pong.instance
                    raise HoseError(None, "the broker restarted and lost the request")
            elif cmd == p.ERROR:
                err = p.decode_error(body)
                raise HoseError(err.status, err.message)
            elif cmd == p.REPLY:
                try:
                    for r in p.decode_reply_records(body):
                        if r.id != rid:
                            continue  # a call we gave up on
                        if r.status != p.STATUS_OK:
                            raise HoseError(r.status, r.payload.decode("utf-8", "replace"))
                        return r.payload
                except p.ProtocolError:
                    pass  # a malformed batch: the records before it were used

    def _cancel(self, rid):
        try:
            self.sock.send_multipart([p.header(p.CLIENT_TAG, p.CANCEL), p.encode_u64s([rid])], zmq.NOBLOCK)
        except zmq.Again:
            pass


def main(argv=None):
    ap = argparse.ArgumentParser(description="Send one job to a hose broker and print the result.")
    ap.add_argument("payload", nargs="?", default="-", help="the payload, or - for stdin (default)")
    ap.add_argument("--frontend", default="tcp://127.0.0.1:5555", help="the broker's frontend (default %(default)s)")
    ap.add_argument("--service", default="", help="the service (default: default)")
    ap.add_argument("--timeout", type=float, default=5.0, help="seconds to wait (default %(default)s)")
    ap.add_argument("--idempotent", action="store_true", help="the broker may run the job twice")
    ap.add_argument("--header", action="append", default=[], metavar="KEY=VALUE", help="a job header, repeatable")
    ap.add_argument("--ping", action="store_true", help="only ask the broker for its health")
    args = ap.parse_args(argv)
    headers = []
    for h in args.header:
        k, sep, v = h.partition("=")
        if not sep:
            ap.error("--header wants KEY=VALUE")
        headers.append((k, v))
    c = Client(args.frontend)
    try:
        if args.ping:
            pong = c.ping(args.timeout)
            print("broker pid %d on %s, version %s, %d workers, %d queued, %d in flight%s"
                  % (pong.pid, pong.hostname, pong.version, pong.workers, pong.queued, pong.inflight,
                     ", draining" if pong.state == 1 else ""))
            return 0
        payload = sys.stdin.buffer.read() if args.payload == "-" else args.payload.encode()
        out = c.execute(payload, args.service, args.timeout, args.idempotent, headers)
        sys.stdout.buffer.write(out)
        sys.stdout.flush()
        return 0
    except HoseError as e:
        print("client.py: %s" % e, file=sys.stderr)
        return 6 if e.status is None else EXIT_CODES.get(e.status, 1)
    finally:
        c.close()


if __name__ == "__main__":
    sys.exit(main())
