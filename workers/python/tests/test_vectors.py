"""Check hoseworker.protocol against testdata/vectors/vectors.json.

Every valid vector is decoded and compared with its fields, then encoded
again from its fields and compared byte for byte; every invalid vector must
fail with its error after the stated number of records. Run from
workers/python:  python3 -m unittest discover -s tests
HOSE_VECTORS names another vectors file.
"""

import json
import os
import unittest

from hoseworker import protocol as p

HERE = os.path.dirname(os.path.abspath(__file__))
VECTORS = os.environ.get("HOSE_VECTORS") or os.path.join(HERE, "..", "..", "..", "testdata", "vectors", "vectors.json")

TAGS = {"client": p.CLIENT_TAG, "worker": p.WORKER_TAG}


def load():
    with open(VECTORS, encoding="utf-8") as f:
        return json.load(f)


def raw(field):
    """The bytes of a {"hex", "text"} field."""
    b = bytes.fromhex(field["hex"])
    if "text" in field:
        assert field["text"].encode() == b, field
    return b


def as_field(b):
    """bytes in the vectors' {"hex", "text"} form."""
    f = {"hex": b.hex()}
    if all(0x20 <= c <= 0x7E for c in b):
        f["text"] = b.decode("ascii")
    return f


def job_fields(r):
    return {
        "id": r.id, "timeout_ms": r.timeout_ms, "flags": r.flags, "idempotent": bool(r.flags & p.FLAG_IDEMPOTENT),
        "service": as_field(r.service),
        "headers": {"hex": r.headers.hex(),
                    "pairs": [{"key": as_field(k), "value": as_field(v)} for k, v in p.decode_headers(r.headers)]},
        "payload": as_field(r.payload),
    }


def decode(dialect, command, body):
    """Decode a body into the vectors' fields form; yields records one by one."""
    if command in ("REQUEST", "JOB"):
        return {"records": [job_fields(r) for r in p.decode_job_records(body)]}
    if command == "RESULT":
        return {"records": [{"id": r.id, "status": r.status, "status_name": p.STATUS_NAMES[r.status],
                             "payload": as_field(r.payload)} for r in p.decode_result_records(body)]}
    if command == "REPLY":
        return {"records": [{"id": r.id, "status": r.status, "status_name": p.STATUS_NAMES[r.status],
                             "queue_us": r.queue_us, "service_us": r.service_us, "payload": as_field(r.payload)}
                            for r in p.decode_reply_records(body)]}
    if command == "PING":
        (nonce,) = p.decode_u64s(body)
        return {"nonce": nonce}
    if command == "CANCEL":
        return {"ids": p.decode_u64s(body)}
    if command == "PONG":
        f = p.decode_pong(body)._asdict()
        f["draining"] = f["state"] == 1
        return f
    if command == "ERROR":
        e = p.decode_error(body)
        return {"status": e.status, "status_name": p.STATUS_NAMES[e.status], "message": e.message}
    if command == "READY":
        return p.decode_ready(body)._asdict()
    if command == "WELCOME":
        return p.decode_welcome(body)._asdict()
    if command == "DISCONNECT":
        return {"reason": bytes(body).decode("utf-8")}
    return {}


def count_records(command, body):
    """Decode a batch until its error; return (records decoded, error)."""
    gen = {"REQUEST": p.decode_job_records, "JOB": p.decode_job_records,
           "RESULT": p.decode_result_records, "REPLY": p.decode_reply_records}[command]
    n = 0
    try:
        for _ in gen(body):
            n += 1
    except p.ProtocolError as e:
        return n, e
    return n, None


def encode(command, fields):
    """Encode a body from the vectors' fields form."""
    if command in ("REQUEST", "JOB"):
        return b"".join(p.encode_job_record(p.JobRecord(
            r["id"], r["timeout_ms"], r["flags"], raw(r["service"]),
            p.encode_headers((raw(h["key"]), raw(h["value"])) for h in r["headers"]["pairs"]),
            raw(r["payload"]))) for r in fields["records"])
    if command == "RESULT":
        return b"".join(p.encode_result_record(r["id"], r["status"], raw(r["payload"])) for r in fields["records"])
    if command == "REPLY":
        return b"".join(p.encode_reply_record(p.ReplyRecord(
            r["id"], r["status"], r["queue_us"], r["service_us"], raw(r["payload"]))) for r in fields["records"])
    if command == "PING":
        return p.encode_u64s([fields["nonce"]])
    if command == "CANCEL":
        return p.encode_u64s(fields["ids"])
    if command == "PONG":
        return p.encode_pong(p.Pong(**{k: fields[k] for k in p.Pong._fields}))
    if command == "ERROR":
        return p.encode_error(fields["status"], fields["message"])
    if command == "READY":
        return p.encode_ready(p.Ready(**fields))
    if command == "WELCOME":
        return p.encode_welcome(p.Welcome(**fields))
    if command == "DISCONNECT":
        return fields["reason"].encode("utf-8")
    return b""


class VectorTest(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.data = load()

    def test_tables(self):
        d = self.data
        self.assertEqual(d["format"], "hose-protocol-vectors")
        self.assertEqual(d["format_version"], 1)
        self.assertEqual(d["tags"], {"client": "HOSEC1", "worker": "HOSEW1"})
        self.assertEqual(d["commands"]["worker"], {"READY": p.READY, "WELCOME": p.WELCOME, "JOB": p.JOB,
                                                   "RESULT": p.RESULT, "HEARTBEAT": p.HEARTBEAT,
                                                   "DRAIN": p.DRAIN, "DISCONNECT": p.DISCONNECT})
        self.assertEqual(d["commands"]["client"], {"REQUEST": p.REQUEST, "REPLY": p.REPLY, "PING": p.PING,
                                                   "PONG": p.PONG, "CANCEL": p.CANCEL, "ERROR": p.ERROR})
        self.assertEqual({int(k): v for k, v in d["statuses"].items()}, p.STATUS_NAMES)

    def test_valid(self):
        seen = set()
        for v in self.data["vectors"]:
            with self.subTest(v["name"]):
                frames = [bytes.fromhex(f) for f in v["frames"]]
                tag = TAGS[v["dialect"]]
                cmd = p.parse_header(frames[0], tag)
                self.assertEqual(cmd, self.data["commands"][v["dialect"]][v["command"]])
                body = frames[1] if len(frames) > 1 else b""
                self.assertEqual(decode(v["dialect"], v["command"], body), v["fields"])
                self.assertEqual(p.header(tag, cmd), frames[0])
                self.assertEqual(encode(v["command"], v["fields"]).hex(), body.hex())
                seen.add((v["dialect"], v["command"]))
        for dialect, cmds in self.data["commands"].items():
            for name in cmds:
                self.assertIn((dialect, name), seen, "no vector for %s %s" % (dialect, name))

    def test_invalid(self):
        for v in self.data["invalid"]:
            with self.subTest(v["name"]):
                frames = [bytes.fromhex(f) for f in v["frames"]]
                tag = TAGS[v["dialect"]]
                try:
                    cmd = p.parse_header(frames[0], tag)
                except p.ProtocolError as e:
                    self.assertEqual(e.kind, v["error"])
                    continue
                command = {c: n for n, c in self.data["commands"][v["dialect"]].items()}[cmd]
                body = frames[1] if len(frames) > 1 else b""
                if "records_before_error" in v:
                    n, err = count_records(command, body)
                    self.assertIsNotNone(err, "decoded without error")
                    self.assertEqual(err.kind, v["error"])
                    self.assertEqual(n, v["records_before_error"])
                    continue
                with self.assertRaises(p.ProtocolError) as cm:
                    decode(v["dialect"], command, body)
                self.assertEqual(cm.exception.kind, v["error"])


if __name__ == "__main__":
    unittest.main()
