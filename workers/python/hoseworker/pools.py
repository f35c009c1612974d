"""Where jobs run: a pool of threads or of processes.

The socket owner (hoseworker.worker) never runs a handler itself. It hands
(token, job) pairs to a pool and collects (token, status, payload) triples
from pool.done, a deque the pool appends to. Each pool gives the owner file
descriptors to poll next to its socket, so a finished job wakes the owner
at once:

- ThreadPool: daemon threads; a finished job writes one byte to the
  worker's wake-up pipe. Pure-Python jobs share the GIL with the owner,
  which still gets it every sys.getswitchinterval() (5 ms), enough to keep
  heartbeats going; CPU-bound jobs do not run in parallel.
- ProcessPool: one child process per slot (multiprocessing "spawn"), each
  with a pipe the owner polls. CPU-bound jobs run in parallel and never
  hold the owner's GIL; the handler and jobs must be picklable (a
  module-level function is).
"""

import collections
import multiprocessing
import os
import queue
import signal
import threading
import traceback

from . import protocol

STATUS_OK = protocol.STATUS_OK
STATUS_WORKER_ERROR = protocol.STATUS_WORKER_ERROR


def call_handler(fn, job):
    """Run fn(job); return (status, payload bytes). Never raises."""
    try:
        out = fn(job)
    except BaseException as e:  # a handler's sys.exit must not end a pool thread
        tb = e.__traceback__.tb_next if e.__traceback__ is not None else None
        text = "".join(traceback.format_exception(type(e), e, tb))
        return STATUS_WORKER_ERROR, text.encode("utf-8", "replace")
    if out is None:
        return STATUS_OK, b""
    if isinstance(out, bytes):
        return STATUS_OK, out
    if isinstance(out, (bytearray, memoryview)):
        return STATUS_OK, bytes(out)
    if isinstance(out, str):
        return STATUS_OK, out.encode("utf-8")
    return STATUS_WORKER_ERROR, ("TypeError: handler returned %s, want bytes or str" % type(out).__name__).encode()


class Waker:
    """A pipe the owner polls; signal() is safe from any thread and from a
    signal handler."""

    def __init__(self):
        self.r, self.w = os.pipe()
        os.set_blocking(self.r, False)
        os.set_blocking(self.w, False)
        self._set = False

    def signal(self):
        if not self._set:
            self._set = True
            try:
                os.write(self.w, b"\0")
            except (BlockingIOError, OSError):
                pass

    def drain(self):
        # Read, then clear the flag. A signal() that still saw the flag set
        # appended its result before the clear, so the owner's next look at
        # the results finds it; one after the clear writes a byte that wakes
        # the next poll. (Clearing first can swallow the byte of a signal()
        # that set the flag again, leaving the flag set, the pipe empty and
        # the owner deaf to every later signal.)
        try:
            while os.read(self.r, 4096):
                pass
        except (BlockingIOError, OSError):
            pass
        self._set = False

    def close(self):
        for fd in (self.r, self.w):
            try:
                os.close(fd)
            except OSError:
                pass


class ThreadPool:
    """Runs jobs on size daemon threads."""

    changed = False

    def __init__(self, fn, size, waker):
        self.fn = fn
        self.waker = waker
        self.done = collections.deque()
        self._q = queue.SimpleQueue()
        self._threads = []
        for i in range(size):
            t = threading.Thread(target=self._serve, name="hose-job-%d" % i, daemon=True)
            t.start()
            self._threads.append(t)

    def fds(self):
        return ()

    def readable(self, fd):
        pass

    def submit(self, token, job):
        self._q.put((token, job))

    def _serve(self):
        while True:
            item = self._q.get()
            if item is None:
                return
            token, job = item
            status, out = call_handler(self.fn, job)
            self.done.append((token, status, out))
            self.waker.signal()

    def close(self, abandon):
        """Stop the threads; with abandon, do not wait for running jobs
        (daemon threads end with the process)."""
        for _ in self._threads:
            self._q.put(None)
        if not abandon:
            for t in self._threads:
                t.join()


def _set_parent_death_signal():
    """Linux: have the kernel kill this child when its parent dies (kill -9
    of the worker must not leave jobs running)."""
    try:
        import ctypes

        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(1, signal.SIGKILL)  # PR_SET_PDEATHSIG
    except (OSError, AttributeError):
        pass


def _child_main(fn, conn, parent_pid):
    """Body of a ProcessPool child: run jobs received on conn until EOF."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # the parent drains, then stops us
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
    _set_parent_death_signal()
    if os.getppid() != parent_pid:
        return  # the parent died before prctl
    while True:
        try:
            item = conn.recv()
        except (EOFError, OSError):
            return
        if item is None:
            return
        token, job = item
        status, out = call_handler(fn, job)
        try:
            conn.send((token, status, out))
        except (BrokenPipeError, OSError):
            return


class _Child:
    __slots__ = ("proc", "conn", "token")

    def __init__(self, proc, conn):
        self.proc = proc
        self.conn = conn
        self.token = None  # the job it runs, None when idle


class ProcessPool:
    """Runs jobs in size child processes, one job each at a time."""

    def __init__(self, fn, size, logger):
        self.fn = fn
        self.log = logger
        self.done = collections.deque()
        self.changed = False  # fds() changed since the owner last looked
        self._mp = multiprocessing.get_context("spawn")
        self._pending = collections.deque()
        self._idle = []
        self._by_fd = {}
        for _ in range(size):
            self._idle.append(self._start())

    def _start(self):
        parent, child = self._mp.Pipe(duplex=True)
        proc = self._mp.Process(target=_child_main, args=(self.fn, child, os.getpid()),
                                name="hose-job", daemon=True)
        proc.start()
        child.close()
        c = _Child(proc, parent)
        self._by_fd[parent.fileno()] = c
        self.changed = True
        return c

    def fds(self):
        return list(self._by_fd)

    def submit(self, token, job):
        if self._idle:
            self._give(self._idle.pop(), token, job)
        else:
            self._pending.append((token, job))

    def _give(self, c, token, job):
        c.token = token
        try:
            c.conn.send((token, job))
        except (BrokenPipeError, OSError) as e:
            self._lost(c, "cannot hand the job to process %d: %s" % (c.proc.pid, e))
        except Exception as e:  # the job does not pickle
            c.token = None
            self._idle.append(c)
            self.done.append((token, STATUS_WORKER_ERROR, ("cannot send the job to a process: %r" % e).encode()))

    def readable(self, fd):
        c = self._by_fd.get(fd)
        if c is None:
            return
        try:
            token, status, out = c.conn.recv()
        except (EOFError, OSError) as e:
            c.proc.join(1)
            self._lost(c, "job process %d died (exit code %s): %s" % (c.proc.pid, c.proc.exitcode, e or "EOF"))
            return
        self.done.append((token, status, out))
        self._next(c)

    def _next(self, c):
        c.token = None
        if self._pending:
            token, job = self._pending.popleft()
            self._give(c, token, job)
        else:
            self._idle.append(c)

    def _lost(self, c, why):
        """A child died: answer its job with a worker error and replace it."""
        self.log.warning(why)
        del self._by_fd[c.conn.fileno()]
        c.conn.close()
        if c.proc.is_alive():
            c.proc.kill()
        if c.token is not None:
            self.done.append((c.token, STATUS_WORKER_ERROR, why.encode()))
        self._next(self._start())

    def close(self, abandon):
        """Stop the children: at once (kill) with abandon, else after their
        current job."""
        for c in list(self._by_fd.values()):
            if abandon or c.token is not None:
                c.proc.kill()
            else:
                try:
                    c.conn.send(None)
                except OSError:
                    c.proc.kill()
        for c in list(self._by_fd.values()):
            c.proc.join(2)
            if c.proc.is_alive():
                c.proc.kill()
                c.proc.join()
            c.conn.close()
        self._by_fd.clear()
