"""hoseworker: a hose worker for Python 3 on pyzmq.

    from hoseworker import Worker

    def upper(job):
        return job.payload.upper()

    Worker(upper, backend="tcp://127.0.0.1:5556", services=["upper"]).run()

Or from a shell:  python3 -m hoseworker --backend tcp://127.0.0.1:5556 mymodule:upper

The wire protocol is docs/PROTOCOL.md; hoseworker.protocol encodes and
decodes it.
"""

__version__ = "0.1.0"

from .worker import DEFAULT_BACKEND, RETIRED, STOPPED, BrokerLost, Job, Worker  # noqa: E402

__all__ = ["Worker", "Job", "BrokerLost", "STOPPED", "RETIRED", "DEFAULT_BACKEND", "__version__"]
