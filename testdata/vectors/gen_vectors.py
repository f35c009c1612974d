#!/usr/bin/python3
"""Write testdata/vectors/vectors.json: byte-exact examples of every hose
protocol message, built from docs/PROTOCOL.md with Python's struct module
only (no hose code), so the Go tests check the Go package against an
independent encoder.

Run from anywhere:  /usr/bin/python3 testdata/vectors/gen_vectors.py
The output is deterministic; commit it with this script.
"""

import json
import os
import struct

TAGS = {"client": b"HOSEC1", "worker": b"HOSEW1"}

COMMANDS = {
    "client": {"REQUEST": 1, "REPLY": 2, "PING": 3, "PONG": 4, "CANCEL": 5, "ERROR": 6},
    "worker": {"READY": 1, "WELCOME": 2, "JOB": 3, "RESULT": 4, "HEARTBEAT": 5,
               "DRAIN": 6, "DISCONNECT": 7},
}

STATUSES = ["ok", "malformed", "unknown service", "too large", "busy", "no worker",
            "worker error", "worker lost", "deadline exceeded", "unsupported version",
            "shutting down"]

ERRORS = {
    "truncated": "a length or fixed field runs past the end of its record or body",
    "bad_tag": "frame 0 is not a 7-byte header of the receiver's dialect",
    "unsupported_version": "the header has the dialect's 5-byte prefix but another version digit",
    "bad_headers": "a headers block pair runs past the end of the block",
}

FLAG_IDEMPOTENT = 0x01


# ---- encoders, straight from the tables of docs/PROTOCOL.md ----

def header(dialect, command):
    return TAGS[dialect] + bytes([COMMANDS[dialect][command]])


def str8(text):
    b = text.encode()
    assert len(b) <= 255
    return bytes([len(b)]) + b


def headers_block(pairs):
    out = b""
    for key, value in pairs:
        assert len(key) <= 255 and len(value) <= 65535
        out += bytes([len(key)]) + key + struct.pack(">H", len(value)) + value
    return out


def job_record(rid, timeout_ms, flags, service, headers, payload):
    rest = (struct.pack(">QIBB", rid, timeout_ms, flags, len(service)) + service
            + struct.pack(">H", len(headers)) + headers + payload)
    return struct.pack(">I", len(rest)) + rest


def reply_record(rid, status, queue_us, service_us, payload):
    rest = struct.pack(">QBII", rid, status, queue_us, service_us) + payload
    return struct.pack(">I", len(rest)) + rest


def result_record(jid, status, payload):
    rest = struct.pack(">QB", jid, status) + payload
    return struct.pack(">I", len(rest)) + rest


def pong_body(nonce, instance, pid, uptime_ms, workers, queued, inflight, state, version, hostname):
    return (struct.pack(">QQIQIIIB", nonce, instance, pid, uptime_ms, workers, queued, inflight, state)
            + str8(version) + str8(hostname))


def ready_body(capacity, pid, hostname, version, services):
    return (struct.pack(">HI", capacity, pid) + str8(hostname) + str8(version)
            + bytes([len(services)]) + b"".join(str8(s) for s in services))


def welcome_body(worker_id, heartbeat_ms, liveness, max_payload, instance):
    return struct.pack(">IIBIQ", worker_id, heartbeat_ms, liveness, max_payload, instance)


def error_body(status, message):
    return bytes([status]) + message.encode()


def u64s(values):
    return b"".join(struct.pack(">Q", v) for v in values)


# ---- JSON field helpers ----

def bytes_field(b):
    f = {"hex": b.hex()}
    if all(0x20 <= c <= 0x7E for c in b):
        f["text"] = b.decode("ascii")
    return f


def headers_field(pairs):
    return {"hex": headers_block(pairs).hex(),
            "pairs": [{"key": bytes_field(k), "value": bytes_field(v)} for k, v in pairs]}


def job_fields(rid, timeout_ms, flags, service, pairs, payload):
    return {"id": rid, "timeout_ms": timeout_ms, "flags": flags,
            "idempotent": bool(flags & FLAG_IDEMPOTENT), "service": bytes_field(service),
            "headers": headers_field(pairs), "payload": bytes_field(payload)}


def job_bytes(rid, timeout_ms, flags, service, pairs, payload):
    return job_record(rid, timeout_ms, flags, service, headers_block(pairs), payload)


def vector(name, dialect, direction, command, description, body, fields, extra=()):
    return {"name": name, "dialect": dialect, "direction": direction, "command": command,
            "description": description,
            "frames": [header(dialect, command).hex(), body.hex()] + [e.hex() for e in extra],
            "fields": fields}


def invalid(name, dialect, direction, description, frames, error, records_before_error=None):
    v = {"name": name, "dialect": dialect, "direction": direction, "description": description,
         "frames": [f.hex() for f in frames], "error": error}
    if records_before_error is not None:
        v["records_before_error"] = records_before_error
    return v


# ---- the examples ----

BIG_ID = 0x0102030405060708       # shows the byte order at a glance
INSTANCE = 0x1122334455667789     # broker instance ids are random and odd
PAIRS = [(b"trace-id", b"abc123"), (b"lang", b"py")]
BINARY = b"\x00\xff\x10"


def valid_vectors():
    v = []
    req1 = (BIG_ID, 5000, FLAG_IDEMPOTENT, b"echo", PAIRS, b"hello")
    req2 = (2, 0, 0, b"", [], BINARY)
    v.append(vector(
        "client.request", "client", "client->broker", "REQUEST",
        "Two request records in one batch. The first is idempotent, names service 'echo', "
        "has two headers and a 5 s timeout; the second names no service (so 'default'), "
        "has no headers, timeout 0 (the broker's default) and a binary payload.",
        job_bytes(*req1) + job_bytes(*req2),
        {"records": [job_fields(*req1), job_fields(*req2)]}))

    rep1 = (BIG_ID, 0, 120, 3400, b"hello")
    rep2 = (2, 6, 15, 880, b"ValueError: bad input")
    v.append(vector(
        "client.reply", "client", "broker->client", "REPLY",
        "Two reply records in one batch: the first request succeeded (queued 120 us, "
        "served in 3400 us); the second failed in the worker (status 6), whose message "
        "is the payload.",
        reply_record(*rep1) + reply_record(*rep2),
        {"records": [
            {"id": r[0], "status": r[1], "status_name": STATUSES[r[1]], "queue_us": r[2],
             "service_us": r[3], "payload": bytes_field(r[4])} for r in (rep1, rep2)]}))

    rep3 = (3, 4, 0, 0, b"busy")
    v.append(vector(
        "client.reply.broker-error", "client", "broker->client", "REPLY",
        "A request the broker refused itself (status 4, busy: the service's queue is "
        "full); never dispatched, so both timings are 0, and the payload is the status name.",
        reply_record(*rep3),
        {"records": [{"id": 3, "status": 4, "status_name": "busy", "queue_us": 0,
                      "service_us": 0, "payload": bytes_field(b"busy")}]}))

    v.append(vector(
        "client.ping", "client", "client->broker", "PING",
        "A PING with nonce 42; the broker copies it into its PONG.",
        u64s([42]), {"nonce": 42}))

    v.append(vector(
        "client.ping.extra-frame", "client", "client->broker", "PING",
        "A PING followed by a third frame: receivers ignore every frame after the body.",
        u64s([7]), {"nonce": 7}, extra=[b"future"]))

    pong = dict(nonce=42, instance=INSTANCE, pid=4242, uptime_ms=3600000, workers=3,
                queued=7, inflight=12, state=0, version="0.1.0", hostname="broker-1")
    v.append(vector(
        "client.pong", "client", "broker->client", "PONG",
        "The broker's answer to the PING above: running (state 0), 3 workers, 7 jobs "
        "queued, 12 at workers, up for one hour.",
        pong_body(**pong), dict(pong, draining=False)))

    pong2 = dict(nonce=0, instance=INSTANCE, pid=4242, uptime_ms=3600500, workers=0,
                 queued=0, inflight=1, state=1, version="0.1.0", hostname="")
    v.append(vector(
        "client.pong.draining", "client", "broker->client", "PONG",
        "A PONG from a draining broker (state 1) to a heartbeat PING (nonce 0), with an "
        "empty host name.",
        pong_body(**pong2), dict(pong2, draining=True)))

    v.append(vector(
        "client.cancel", "client", "client->broker", "CANCEL",
        "The caller gave up on two requests: CANCEL batches their ids.",
        u64s([BIG_ID, 2]), {"ids": [BIG_ID, 2]}))

    msg = "unsupported version: this broker speaks HOSEC1"
    v.append(vector(
        "client.error", "client", "broker->client", "ERROR",
        "The broker's answer to a message whose header was HOSEC2: status 9.",
        error_body(9, msg), {"status": 9, "status_name": STATUSES[9], "message": msg}))

    msg = "malformed request record: protocol: truncated data"
    v.append(vector(
        "client.error.malformed", "client", "broker->client", "ERROR",
        "The broker's answer to a REQUEST with a truncated record: status 1.",
        error_body(1, msg), {"status": 1, "status_name": STATUSES[1], "message": msg}))

    ready = dict(capacity=8, pid=31337, hostname="worker-7", version="py-0.1",
                 services=["echo", "sha256"])
    v.append(vector(
        "worker.ready", "worker", "worker->broker", "READY",
        "Registration of a worker that runs 8 jobs at once for services 'echo' and 'sha256'.",
        ready_body(**ready), ready))

    ready2 = dict(capacity=1, pid=7, hostname="w", version="", services=[])
    v.append(vector(
        "worker.ready.default", "worker", "worker->broker", "READY",
        "Registration with no service list (so 'default'), capacity 1 and an empty version.",
        ready_body(**ready2), ready2))

    welcome = dict(worker_id=5, heartbeat_ms=500, liveness=4, max_payload=8388608,
                   instance=INSTANCE)
    v.append(vector(
        "worker.welcome", "worker", "broker->worker", "WELCOME",
        "The broker accepts the worker: id 5, heartbeat every 500 ms, dead after 4 silent "
        "intervals, results up to 8 MiB.",
        welcome_body(**welcome), welcome))

    job1 = (17, 4998, FLAG_IDEMPOTENT, b"echo", PAIRS, b"hello")
    job2 = (18, 30000, 0, b"default", [], BINARY)
    v.append(vector(
        "worker.job", "worker", "broker->worker", "JOB",
        "The two requests above as the broker sends them to a worker: broker job ids "
        "17 and 18, the time left until each deadline, flags and headers copied, and the "
        "service named in full ('default' for the request that named none).",
        job_bytes(*job1) + job_bytes(*job2),
        {"records": [job_fields(*job1), job_fields(*job2)]}))

    res1 = (17, 0, b"hello")
    res2 = (18, 6, b"Traceback (most recent call last):\n  ...\nValueError: bad input")
    v.append(vector(
        "worker.result", "worker", "worker->broker", "RESULT",
        "Results of the two jobs in one batch: job 17 succeeded; job 18 failed (status 6) "
        "and carries the worker's traceback (not printable as one line: hex only).",
        result_record(*res1) + result_record(*res2),
        {"records": [{"id": r[0], "status": r[1], "status_name": STATUSES[r[1]],
                      "payload": bytes_field(r[2])} for r in (res1, res2)]}))

    v.append(vector(
        "worker.heartbeat", "worker", "both", "HEARTBEAT",
        "Sent by either side after a heartbeat interval with nothing else sent. Empty body.",
        b"", {}))

    v.append(vector(
        "worker.drain", "worker", "worker->broker", "DRAIN",
        "A worker starting a graceful stop: send me no more jobs. Empty body.",
        b"", {}))

    reason = "unknown worker: register again"
    v.append(vector(
        "worker.disconnect.broker", "worker", "broker->worker", "DISCONNECT",
        "The broker's answer to a HEARTBEAT from a worker it does not know (it restarted): "
        "the worker must send READY again.",
        reason.encode(), {"reason": reason}))

    v.append(vector(
        "worker.disconnect.worker", "worker", "worker->broker", "DISCONNECT",
        "A worker leaving after its DRAIN: empty reason.",
        b"", {"reason": ""}))
    return v


def invalid_vectors():
    good = job_bytes(1, 1000, 0, b"echo", [], b"x")
    req_hdr = header("client", "REQUEST")
    v = [
        invalid("invalid.header.bad-tag", "client", "client->broker",
                "Frame 0 is not a hose header. The broker answers ERROR 1 (malformed).",
                [b"HOSEX1\x01", good], "bad_tag"),
        invalid("invalid.header.short", "client", "client->broker",
                "Frame 0 is the tag without a command byte. The broker answers ERROR 1.",
                [b"HOSEC1", b""], "bad_tag"),
        invalid("invalid.header.other-dialect", "client", "client->broker",
                "A worker-dialect header sent to the client frontend: a bad tag there.",
                [header("worker", "READY"), b""], "bad_tag"),
        invalid("invalid.header.version.client", "client", "client->broker",
                "A client speaking version 2. The broker answers ERROR 9 (unsupported version).",
                [b"HOSEC2\x01", good], "unsupported_version"),
        invalid("invalid.header.version.worker", "worker", "worker->broker",
                "A worker speaking version 2. The broker answers DISCONNECT.",
                [b"HOSEW2\x01", ready_body(1, 1, "w", "v", [])], "unsupported_version"),
        invalid("invalid.request.truncated-record", "client", "client->broker",
                "The record's length prefix promises 4 more bytes than the body holds. "
                "The broker answers ERROR 1.",
                [req_hdr, struct.pack(">I", len(good) - 4) + good[4:-4]], "truncated", 0),
        invalid("invalid.request.short-fixed-part", "client", "client->broker",
                "A record of 10 bytes: its fixed fields need 16.",
                [req_hdr, struct.pack(">I", 10) + bytes(10)], "truncated", 0),
        invalid("invalid.request.service-overrun", "client", "client->broker",
                "The service length (200) runs past the end of the record.",
                [req_hdr, struct.pack(">I", 16) + struct.pack(">QIBB", 1, 0, 0, 200) + b"\x00\x00"],
                "truncated", 0),
        invalid("invalid.request.second-record-truncated", "client", "client->broker",
                "A good record followed by 3 stray bytes. The broker accepts (and will answer) "
                "the first request, then answers ERROR 1 for the rest.",
                [req_hdr, good + b"\x00\x00\x00"], "truncated", 1),
        invalid("invalid.request.bad-headers-key", "client", "client->broker",
                "The headers block (3 bytes) holds a pair whose key length (5) runs past it.",
                [req_hdr, job_record(1, 0, 0, b"", b"\x05ab", b"")], "bad_headers", 0),
        invalid("invalid.request.bad-headers-value", "client", "client->broker",
                "The headers block holds key 'k' whose value length (9) runs past the block.",
                [req_hdr, job_record(1, 0, 0, b"", b"\x01k\x00\x09abc", b"p")], "bad_headers", 0),
        invalid("invalid.reply.short-record", "client", "broker->client",
                "A reply record of 16 bytes: its fixed fields need 17.",
                [header("client", "REPLY"), struct.pack(">I", 16) + bytes(16)], "truncated", 0),
        invalid("invalid.cancel.odd-length", "client", "client->broker",
                "A CANCEL body of 12 bytes is not a whole number of u64 ids. The broker answers "
                "ERROR 1.",
                [header("client", "CANCEL"), bytes(12)], "truncated"),
        invalid("invalid.pong.short", "client", "broker->client",
                "A PONG body cut inside its fixed fields.",
                [header("client", "PONG"), bytes(30)], "truncated"),
        invalid("invalid.error.empty", "client", "broker->client",
                "An ERROR body without its status byte.",
                [header("client", "ERROR"), b""], "truncated"),
        invalid("invalid.ready.missing-service", "worker", "worker->broker",
                "A READY announcing 2 services but holding only one. The broker answers "
                "DISCONNECT ('malformed READY').",
                [header("worker", "READY"),
                 struct.pack(">HI", 1, 1) + str8("w") + str8("v") + b"\x02" + str8("echo")],
                "truncated"),
        invalid("invalid.welcome.short", "worker", "broker->worker",
                "A WELCOME of 20 bytes: it needs 21.",
                [header("worker", "WELCOME"), bytes(20)], "truncated"),
        invalid("invalid.job.truncated-payload", "worker", "broker->worker",
                "A job record whose length prefix runs 1 byte past the body.",
                [header("worker", "JOB"),
                 struct.pack(">I", len(good) - 4 + 1) + good[4:]], "truncated", 0),
        invalid("invalid.result.short-record", "worker", "worker->broker",
                "A good result record followed by one of 5 bytes (fixed fields need 9). The "
                "broker uses the first result and drops the rest.",
                [header("worker", "RESULT"),
                 result_record(17, 0, b"ok") + struct.pack(">I", 5) + bytes(5)], "truncated", 1),
    ]
    return v


def main():
    out = {
        "format": "hose-protocol-vectors",
        "format_version": 1,
        "tags": {k: t.decode() for k, t in TAGS.items()},
        "commands": COMMANDS,
        "statuses": {str(i): name for i, name in enumerate(STATUSES)},
        "errors": ERRORS,
        "vectors": valid_vectors(),
        "invalid": invalid_vectors(),
    }
    names = [v["name"] for v in out["vectors"] + out["invalid"]]
    assert len(names) == len(set(names)), "duplicate vector name"
    path = os.path.join(os.path.dirname(os.path.abspath(__file__)), "vectors.json")
    with open(path, "w") as f:
        json.dump(out, f, indent=2)
        f.write("\n")


if __name__ == "__main__":
    main()
