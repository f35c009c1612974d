"""Example handlers for hoseworker.

    python3 -m hoseworker --backend tcp://127.0.0.1:5556 examples.jobs:echo
    python3 -m hoseworker --pool process --service sha256 --param rounds=1000 examples.jobs:sha256

(run from workers/python, or add --path workers/python.)

echo    returns the payload.
sha256  hashes the payload, then the digest again, rounds times in all
        (job header "rounds", else --param rounds=N, else 1000) and returns
        the 32-byte digest: the same answer as `hose worker -handler
        sha256:N` and the C++ example, a CPU-bound job of known cost.
spin    burns CPU in pure Python (FNV-1a over the payload) for the number of
        milliseconds in the payload: a job that holds the GIL.
demo    the conformance tests' handler: dispatches on the service name's
        first dot-separated word (echo, lang, sha256, fail, sleep, spin,
        headers, params), so one worker can serve several test services.
"""

import hashlib
import multiprocessing
import os
import time

LANG = "python"


def echo(job):
    return job.payload


def rounds_of(job, default=1000):
    return int(job.header("rounds") or job.params.get("rounds") or default)


def sha256(job):
    rounds = max(1, rounds_of(job))
    digest = hashlib.sha256(job.payload).digest()
    for _ in range(rounds - 1):
        digest = hashlib.sha256(digest).digest()
    return digest


def fnv1a(data, h=0xCBF29CE484222325):
    for b in data:
        h = ((h ^ b) * 0x100000001B3) & 0xFFFFFFFFFFFFFFFF
    return h


def spin(job):
    """Hash the payload in pure Python until int(payload) ms have passed."""
    ms = int(job.payload or b"0")
    end = time.monotonic() + ms / 1000.0
    h, n = 0xCBF29CE484222325, 0
    while time.monotonic() < end:
        h = fnv1a(b"hose-spin-%d" % n, h)
        n += 1
    return ("%s %d spin %d %016x" % (LANG, worker_pid(), n, h)).encode()


def worker_pid():
    """The worker's pid: in a --pool process child, its parent's."""
    parent = multiprocessing.parent_process()
    return parent.pid if parent is not None else os.getpid()


def whoami():
    return ("%s %d" % (LANG, worker_pid())).encode()


def sleep(job):
    """Sleep int(payload) ms (or until the deadline) and say who answered."""
    time.sleep(min(int(job.payload or b"0") / 1000.0, job.time_left()))
    return whoami()


def fail(job):
    raise ValueError("fail: " + job.payload.decode("utf-8", "replace"))


def headers(job):
    return "".join("%s=%s\n" % kv for kv in sorted(job.headers.items())).encode()


def params(job):
    return "".join("%s=%s\n" % kv for kv in sorted(job.params.items())).encode()


_DEMO = {
    "echo": echo,
    "lang": lambda job: whoami(),
    "sha256": sha256,
    "fail": fail,
    "sleep": sleep,
    "spin": spin,
    "headers": headers,
    "params": params,
}


def demo(job):
    op = job.service.split(".", 1)[0]
    fn = _DEMO.get(op)
    if fn is None:
        raise LookupError("demo: no job named %r (service %r)" % (op, job.service))
    return fn(job)
