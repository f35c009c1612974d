"""python3 -m hoseworker: run a Python function as a hose worker.

Exit codes: 0 stopped by SIGTERM/SIGINT or retired (--max-age, --max-jobs),
1 error, 2 usage error, 3 broker lost with --exit-on-broker-loss.
"""

import argparse
import importlib
import logging
import re
import signal
import sys

from . import DEFAULT_BACKEND, BrokerLost, Worker, __version__

EXIT_OK, EXIT_ERROR, EXIT_USAGE, EXIT_BROKER_LOST = 0, 1, 2, 3

USAGE_EPILOG = """\
examples:
  python3 -m hoseworker --backend tcp://127.0.0.1:5556 examples.jobs:echo
  python3 -m hoseworker --pool process --concurrency 4 --service sha256 \\
      --param rounds=5000 examples.jobs:sha256

The worker registers with the broker, heartbeats while jobs run, registers
again by itself when the broker restarts, and stops gracefully on SIGTERM or
SIGINT: no new jobs, held jobs finish (up to --drain-timeout), then it says
goodbye and exits 0. A second signal stops at once.
"""

_UNITS = {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0, "": 1.0}


def duration(text):
    """Seconds from "1.5", "1.5s", "500ms", "2m" or "1h"."""
    m = re.fullmatch(r"\s*([0-9]*\.?[0-9]+)\s*(ms|s|m|h|)\s*", text)
    if not m:
        raise argparse.ArgumentTypeError("%r is not a duration (e.g. 30, 1.5s, 500ms, 2m)" % text)
    return float(m.group(1)) * _UNITS[m.group(2)]


def param(text):
    key, sep, value = text.partition("=")
    if not sep or not key:
        raise argparse.ArgumentTypeError("%r: want KEY=VALUE" % text)
    return key, value


def load(spec):
    """Import "module:function" (or "module.function")."""
    if ":" in spec:
        mod, _, attr = spec.partition(":")
    else:
        mod, _, attr = spec.rpartition(".")
    if not mod or not attr:
        raise ValueError("%r: want MODULE:FUNCTION" % spec)
    obj = importlib.import_module(mod)
    for part in attr.split("."):
        obj = getattr(obj, part)
    if not callable(obj):
        raise ValueError("%s is not callable" % spec)
    return obj


def read_key(s):
    """A Z85 key given literally or as a file holding one (None passes)."""
    if not s or len(s) == 40:
        return s
    with open(s) as f:
        return f.read().strip()


def parser():
    ap = argparse.ArgumentParser(prog="python3 -m hoseworker", description="Run FUNCTION(job) -> bytes as a hose worker.",
                                 epilog=USAGE_EPILOG, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("function", metavar="MODULE:FUNCTION", help="the handler, called with a hoseworker.Job")
    ap.add_argument("--backend", default=DEFAULT_BACKEND, metavar="ENDPOINT", help="the broker's backend (default %(default)s)")
    ap.add_argument("--service", action="append", default=[], metavar="NAME", help="a service to serve, repeatable (default: default)")
    ap.add_argument("--concurrency", type=int, default=0, metavar="N", help="jobs run at once (default: the number of CPUs)")
    ap.add_argument("--prefetch", type=int, default=0, metavar="N",
                    help="jobs held beyond --concurrency so the next starts without a round trip "
                         "(default: equal to --concurrency; -1: none)")
    ap.add_argument("--pool", choices=("thread", "process"), default="thread",
                    help="run jobs on threads (default) or on processes (CPU-bound Python)")
    ap.add_argument("--param", action="append", type=param, default=[], metavar="KEY=VALUE",
                    help="a parameter handed to every job as job.params, repeatable")
    ap.add_argument("--max-age", type=duration, default=0.0, metavar="DURATION", help="retire after this long (0: never)")
    ap.add_argument("--max-age-delta", type=duration, default=0.0, metavar="DURATION",
                    help="add a random part up to this to --max-age")
    ap.add_argument("--max-jobs", type=int, default=0, metavar="N", help="retire after this many jobs (0: never)")
    ap.add_argument("--drain-timeout", type=duration, default=30.0, metavar="DURATION",
                    help="on a signal or retirement, how long held jobs get to finish (default 30s)")
    ap.add_argument("--exit-on-broker-loss", action="store_true", help="exit 3 when the broker goes away instead of waiting")
    ap.add_argument("--curve-server-key", metavar="KEY", help="the broker's CURVE public key (Z85, or a .pub file from hose keygen)")
    ap.add_argument("--curve-key", metavar="FILE", help="this worker's secret key file (hose keygen); default: a fresh key pair")
    ap.add_argument("--path", action="append", default=[], metavar="DIR", help="add DIR to sys.path first, repeatable")
    ap.add_argument("--log-level", default="info", choices=("debug", "info", "warning", "error"))
    ap.add_argument("--version", action="version", version="hoseworker " + __version__)
    return ap


def main(argv=None):
    args = parser().parse_args(argv)
    logging.basicConfig(level=args.log_level.upper(), stream=sys.stderr,
                        format="%(asctime)s %(levelname)s hoseworker[%(process)d]: %(message)s")
    log = logging.getLogger("hoseworker")
    sys.path[:0] = args.path
    try:
        fn = load(args.function)
    except Exception as e:
        print("hoseworker: cannot load %s: %s" % (args.function, e), file=sys.stderr)
        return EXIT_USAGE
    try:
        w = Worker(fn, backend=args.backend, services=args.service or ["default"], concurrency=args.concurrency,
                   prefetch=None if args.prefetch == 0 else args.prefetch, pool=args.pool, params=dict(args.param), max_age=args.max_age, max_age_delta=args.max_age_delta,
                   max_jobs=args.max_jobs, drain_timeout=args.drain_timeout,
                   exit_on_broker_loss=args.exit_on_broker_loss, logger=log,
                   curve_server_key=read_key(args.curve_server_key), curve_secret_key=read_key(args.curve_key))
    except (TypeError, ValueError, OSError) as e:
        print("hoseworker: %s" % e, file=sys.stderr)
        return EXIT_USAGE

    signals = {"n": 0}

    def on_signal(signum, _frame):
        signals["n"] += 1
        log.info("signal %d: stopping%s", signum, " at once" if signals["n"] > 1 else "")
        w.stop(force=signals["n"] > 1)

    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)
    try:
        outcome = w.run()
    except BrokerLost as e:
        print("hoseworker: %s" % e, file=sys.stderr)
        return EXIT_BROKER_LOST
    log.info("exiting: %s", outcome)
    return EXIT_OK


if __name__ == "__main__":
    sys.exit(main())
