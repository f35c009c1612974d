"""Encoding and decoding of the hose wire protocol, version 1.

Written from docs/PROTOCOL.md alone and checked against the byte-exact
vectors in testdata/vectors/vectors.json (tests/test_vectors.py). Both
dialects are here: the worker dialect (HOSEW1) that hoseworker speaks, and
the client dialect (HOSEC1) that examples/client.py speaks.

Every integer is unsigned big-endian. Decoders raise a subclass of
ProtocolError; record decoders are generators, so the records before a bad
one are still yielded (PROTOCOL.md 10.2).
"""

import struct
from collections import namedtuple

WORKER_TAG = b"HOSEW1"
CLIENT_TAG = b"HOSEC1"

# Worker dialect commands (PROTOCOL.md section 5).
READY = 0x01
WELCOME = 0x02
JOB = 0x03
RESULT = 0x04
HEARTBEAT = 0x05
DRAIN = 0x06
DISCONNECT = 0x07

# Client dialect commands (PROTOCOL.md section 4).
REQUEST = 0x01
REPLY = 0x02
PING = 0x03
PONG = 0x04
CANCEL = 0x05
ERROR = 0x06

# Status codes (PROTOCOL.md section 7).
STATUS_OK = 0
STATUS_MALFORMED = 1
STATUS_UNKNOWN_SERVICE = 2
STATUS_TOO_LARGE = 3
STATUS_BUSY = 4
STATUS_NO_WORKER = 5
STATUS_WORKER_ERROR = 6
STATUS_WORKER_LOST = 7
STATUS_DEADLINE = 8
STATUS_UNSUPPORTED_VERSION = 9
STATUS_SHUTTING_DOWN = 10

STATUS_NAMES = {
    0: "ok",
    1: "malformed",
    2: "unknown service",
    3: "too large",
    4: "busy",
    5: "no worker",
    6: "worker error",
    7: "worker lost",
    8: "deadline exceeded",
    9: "unsupported version",
    10: "shutting down",
}

FLAG_IDEMPOTENT = 0x01
DEFAULT_SERVICE = "default"


class ProtocolError(ValueError):
    """A message that does not decode. kind names the error as the vectors do."""

    kind = "malformed"


class Truncated(ProtocolError):
    """A length or fixed field runs past the end of its record or body."""

    kind = "truncated"


class BadTag(ProtocolError):
    """Frame 0 is not a 7-byte header of the receiver's dialect."""

    kind = "bad_tag"


class UnsupportedVersion(ProtocolError):
    """The header has the dialect's 5-byte prefix but another version digit."""

    kind = "unsupported_version"


class BadHeaders(ProtocolError):
    """A headers block pair runs past the end of the block."""

    kind = "bad_headers"


_U16 = struct.Struct(">H")
_U32 = struct.Struct(">I")
_U64 = struct.Struct(">Q")
_JOB_FIXED = struct.Struct(">IQIBB")  # length, id, timeout_ms, flags, S
_RESULT_FIXED = struct.Struct(">IQB")  # length, id, status
_REPLY_FIXED = struct.Struct(">IQBII")  # length, id, status, queue_us, service_us
_WELCOME = struct.Struct(">IIBIQ")
_READY_FIXED = struct.Struct(">HI")
_PONG_FIXED = struct.Struct(">QQIQIIIB")


# --- headers (frame 0) -----------------------------------------------------


def header(tag, command):
    """The 7-byte header frame: tag (WORKER_TAG or CLIENT_TAG) and command."""
    return tag + bytes((command,))


def parse_header(frame, tag):
    """Return the command byte of a header frame of the dialect tag."""
    frame = bytes(frame)
    if len(frame) < 7 or frame[:5] != tag[:5]:
        raise BadTag("header frame is not %s+command" % tag.decode())
    if frame[5] != tag[5]:
        raise UnsupportedVersion("header version %r, this peer speaks %s" % (chr(frame[5]), tag.decode()))
    return frame[6]


# --- small helpers ---------------------------------------------------------


def _as_bytes(v):
    if isinstance(v, str):
        return v.encode("utf-8")
    return bytes(v)


def str8(v):
    """Encode a str8: a u8 length and at most 255 bytes."""
    b = _as_bytes(v)
    if len(b) > 255:
        raise ValueError("str8 value of %d bytes is over 255" % len(b))
    return bytes((len(b),)) + b


class _Reader:
    """Reads big-endian fields from a body; raises Truncated when short."""

    __slots__ = ("b", "off")

    def __init__(self, b):
        self.b = b
        self.off = 0

    def take(self, n):
        end = self.off + n
        if end > len(self.b):
            raise Truncated("body ends at %d, field needs %d" % (len(self.b), end))
        v = self.b[self.off:end]
        self.off = end
        return v

    def u8(self):
        return self.take(1)[0]

    def u16(self):
        return _U16.unpack(self.take(2))[0]

    def u32(self):
        return _U32.unpack(self.take(4))[0]

    def u64(self):
        return _U64.unpack(self.take(8))[0]

    def str8(self):
        return self.take(self.u8())

    def text8(self):
        return self.str8().decode("utf-8", "replace")


# --- headers block (6.4) ---------------------------------------------------


def encode_headers(pairs):
    """Encode (key, value) pairs (str or bytes) as a headers block."""
    out = bytearray()
    for k, v in pairs:
        k, v = _as_bytes(k), _as_bytes(v)
        if len(k) > 255 or len(v) > 65535:
            raise ValueError("header key over 255 or value over 65535 bytes")
        out += bytes((len(k),)) + k + _U16.pack(len(v)) + v
    if len(out) > 65535:
        raise ValueError("headers block of %d bytes is over 65535" % len(out))
    return bytes(out)


def decode_headers(block):
    """Decode a headers block into a list of (key, value) bytes pairs."""
    pairs = []
    off, n = 0, len(block)
    while off < n:
        klen = block[off]
        kend = off + 1 + klen
        if kend + 2 > n:
            raise BadHeaders("header key runs past the block")
        (vlen,) = _U16.unpack_from(block, kend)
        vend = kend + 2 + vlen
        if vend > n:
            raise BadHeaders("header value runs past the block")
        pairs.append((bytes(block[off + 1:kend]), bytes(block[kend + 2:vend])))
        off = vend
    return pairs


# --- request and job records (6.1) -----------------------------------------

JobRecord = namedtuple("JobRecord", "id timeout_ms flags service headers payload")
JobRecord.__doc__ = """A request record (client to broker) or a job record (broker
to worker). service, headers (the raw block) and payload are bytes."""


def encode_job_record(rec):
    """Encode one request or job record (a JobRecord or equivalent)."""
    service = _as_bytes(rec.service)
    if len(service) > 255:
        raise ValueError("service name of %d bytes is over 255" % len(service))
    headers = _as_bytes(rec.headers)
    if len(headers) > 65535:
        raise ValueError("headers block over 65535 bytes")
    payload = _as_bytes(rec.payload)
    length = 16 + len(service) + len(headers) + len(payload)
    return b"".join((
        _JOB_FIXED.pack(length, rec.id, rec.timeout_ms, rec.flags, len(service)),
        service, _U16.pack(len(headers)), headers, payload,
    ))


def decode_job_records(body):
    """Yield the JobRecords of a REQUEST or JOB body; raise at the first bad one."""
    body = bytes(body)
    off, n = 0, len(body)
    while off < n:
        if off + 4 > n:
            raise Truncated("record length runs past the body")
        (length,) = _U32.unpack_from(body, off)
        start, end = off + 4, off + 4 + length
        if end > n or length < 16:
            raise Truncated("record of %d bytes does not fit" % length)
        _, rid, timeout_ms, flags, slen = _JOB_FIXED.unpack_from(body, off)
        sstart = start + 14
        hpos = sstart + slen
        if hpos + 2 > end:
            raise Truncated("service name runs past the record")
        (hlen,) = _U16.unpack_from(body, hpos)
        hstart = hpos + 2
        pstart = hstart + hlen
        if pstart > end:
            raise Truncated("headers block runs past the record")
        headers = body[hstart:pstart]
        decode_headers(headers)  # validate
        yield JobRecord(rid, timeout_ms, flags, body[sstart:hpos], headers, body[pstart:end])
        off = end


# --- result records (6.3) --------------------------------------------------

ResultRecord = namedtuple("ResultRecord", "id status payload")


def encode_result_record(job_id, status, payload):
    """Encode one result record: status 0 with the result or 6 with a message."""
    return _RESULT_FIXED.pack(9 + len(payload), job_id, status) + payload


def decode_result_records(body):
    """Yield the ResultRecords of a RESULT body; raise at the first bad one."""
    body = bytes(body)
    off, n = 0, len(body)
    while off < n:
        if off + 4 > n:
            raise Truncated("record length runs past the body")
        (length,) = _U32.unpack_from(body, off)
        end = off + 4 + length
        if end > n or length < 9:
            raise Truncated("result record of %d bytes does not fit" % length)
        _, rid, status = _RESULT_FIXED.unpack_from(body, off)
        yield ResultRecord(rid, status, body[off + 13:end])
        off = end


# --- reply records (6.2) ---------------------------------------------------

ReplyRecord = namedtuple("ReplyRecord", "id status queue_us service_us payload")


def encode_reply_record(rec):
    payload = _as_bytes(rec.payload)
    return _REPLY_FIXED.pack(17 + len(payload), rec.id, rec.status, rec.queue_us, rec.service_us) + payload


def decode_reply_records(body):
    """Yield the ReplyRecords of a REPLY body; raise at the first bad one."""
    body = bytes(body)
    off, n = 0, len(body)
    while off < n:
        if off + 4 > n:
            raise Truncated("record length runs past the body")
        (length,) = _U32.unpack_from(body, off)
        end = off + 4 + length
        if end > n or length < 17:
            raise Truncated("reply record of %d bytes does not fit" % length)
        _, rid, status, queue_us, service_us = _REPLY_FIXED.unpack_from(body, off)
        yield ReplyRecord(rid, status, queue_us, service_us, body[off + 21:end])
        off = end


# --- worker control bodies (section 5) -------------------------------------

Ready = namedtuple("Ready", "capacity pid hostname version services")
Welcome = namedtuple("Welcome", "worker_id heartbeat_ms liveness max_payload instance")


def encode_ready(ready):
    """Encode a READY body; services is a list of names (empty: default)."""
    if not 1 <= ready.capacity <= 65535:
        raise ValueError("capacity %d is not in 1..65535" % ready.capacity)
    services = list(ready.services)
    if len(services) > 255:
        raise ValueError("%d services, at most 255" % len(services))
    parts = [_READY_FIXED.pack(ready.capacity, ready.pid), str8(ready.hostname), str8(ready.version),
             bytes((len(services),))]
    for s in services:
        if not _as_bytes(s):
            raise ValueError("empty service name")
        parts.append(str8(s))
    return b"".join(parts)


def decode_ready(body):
    r = _Reader(bytes(body))
    capacity, pid = r.u16(), r.u32()
    hostname, version = r.text8(), r.text8()
    services = [r.text8() for _ in range(r.u8())]
    return Ready(capacity, pid, hostname, version, services)


def encode_welcome(w):
    return _WELCOME.pack(w.worker_id, w.heartbeat_ms, w.liveness, w.max_payload, w.instance)


def decode_welcome(body):
    """Decode a WELCOME body; bytes after the 21 known ones are ignored."""
    if len(body) < _WELCOME.size:
        raise Truncated("WELCOME body of %d bytes, want %d" % (len(body), _WELCOME.size))
    return Welcome(*_WELCOME.unpack_from(bytes(body)))


# --- client control bodies (section 4) -------------------------------------

Pong = namedtuple("Pong", "nonce instance pid uptime_ms workers queued inflight state version hostname")
ErrorBody = namedtuple("ErrorBody", "status message")


def encode_u64s(values):
    """A PING (one nonce) or CANCEL (request ids) body."""
    return b"".join(_U64.pack(v) for v in values)


def decode_u64s(body):
    """Decode a PING or CANCEL body: a whole number of u64 values."""
    body = bytes(body)
    if len(body) % 8:
        raise Truncated("body of %d bytes is not a multiple of 8" % len(body))
    return [v for (v,) in _U64.iter_unpack(body)]


def encode_pong(p):
    return (_PONG_FIXED.pack(p.nonce, p.instance, p.pid, p.uptime_ms, p.workers, p.queued, p.inflight, p.state)
            + str8(p.version) + str8(p.hostname))


def decode_pong(body):
    body = bytes(body)
    if len(body) < _PONG_FIXED.size:
        raise Truncated("PONG body of %d bytes" % len(body))
    fixed = _PONG_FIXED.unpack_from(body)
    r = _Reader(body)
    r.off = _PONG_FIXED.size
    return Pong(*fixed, r.text8(), r.text8())


def encode_error(status, message):
    return bytes((status,)) + _as_bytes(message)


def decode_error(body):
    body = bytes(body)
    if not body:
        raise Truncated("empty ERROR body")
    return ErrorBody(body[0], body[1:].decode("utf-8", "replace"))
