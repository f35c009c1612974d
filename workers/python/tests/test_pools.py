"""Tests of hoseworker.pools: the wake-up pipe and the two pools."""

import collections
import select
import sys
import threading
import time
import unittest

from hoseworker import pools


class WakerTest(unittest.TestCase):
    def test_no_lost_wakeup(self):
        """Producers append then signal; the owner must never sleep through
        an item (a drain that clears the flag before reading loses one)."""
        w = pools.Waker()
        self.addCleanup(w.close)
        old = sys.getswitchinterval()
        sys.setswitchinterval(1e-6)  # switch threads as often as possible
        self.addCleanup(sys.setswitchinterval, old)
        items = collections.deque()
        n_threads, per_thread = 4, 50000

        def produce():
            for i in range(per_thread):
                items.append(i)
                w.signal()

        threads = [threading.Thread(target=produce) for _ in range(n_threads)]
        for t in threads:
            t.start()
        got = 0
        deadline = time.monotonic() + 60
        while got < n_threads * per_thread:
            self.assertLess(time.monotonic(), deadline, "producers too slow")
            ready, _, _ = select.select([w.r], [], [], 1.0)
            if not ready and items:
                self.fail("the owner slept 1s with %d items waiting: a wake-up was lost" % len(items))
            w.drain()
            while items:
                items.popleft()
                got += 1
        for t in threads:
            t.join()

    def test_signal_from_idle(self):
        w = pools.Waker()
        self.addCleanup(w.close)
        w.signal()
        w.signal()
        self.assertEqual(select.select([w.r], [], [], 1.0)[0], [w.r])
        w.drain()
        self.assertEqual(select.select([w.r], [], [], 0)[0], [])
        w.signal()
        self.assertEqual(select.select([w.r], [], [], 1.0)[0], [w.r])


def _boom(job):
    raise KeyError(job)


class CallHandlerTest(unittest.TestCase):
    def test_results(self):
        self.assertEqual(pools.call_handler(lambda j: b"x", None), (0, b"x"))
        self.assertEqual(pools.call_handler(lambda j: "é", None), (0, "é".encode()))
        self.assertEqual(pools.call_handler(lambda j: None, None), (0, b""))
        self.assertEqual(pools.call_handler(lambda j: bytearray(b"ab"), None), (0, b"ab"))
        status, msg = pools.call_handler(lambda j: 42, None)
        self.assertEqual(status, 6)
        self.assertIn(b"TypeError", msg)

    def test_traceback(self):
        status, msg = pools.call_handler(_boom, "k")
        self.assertEqual(status, 6)
        text = msg.decode()
        self.assertTrue(text.startswith("Traceback (most recent call last):"), text)
        self.assertIn("in _boom", text)
        self.assertIn("KeyError: 'k'", text)
        self.assertNotIn("call_handler", text)  # the pool's own frame is left out


class ThreadPoolTest(unittest.TestCase):
    def test_runs_jobs(self):
        w = pools.Waker()
        self.addCleanup(w.close)
        pool = pools.ThreadPool(lambda job: job * 2, 3, w)
        for i in range(50):
            pool.submit(i, b"%d" % i)
        done = {}
        deadline = time.monotonic() + 10
        while len(done) < 50 and time.monotonic() < deadline:
            select.select([w.r], [], [], 1.0)
            w.drain()
            while pool.done:
                token, status, out = pool.done.popleft()
                done[token] = (status, out)
        pool.close(abandon=False)
        self.assertEqual(done, {i: (0, b"%d%d" % (i, i)) for i in range(50)})


if __name__ == "__main__":
    unittest.main()
