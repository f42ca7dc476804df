"""Entry point of the load process: ``python -m sme.loadtest.child <locust options>``.

This is the only way into Locust: importing it monkey-patches the process with gevent, so it happens
here, first, in a child process, never in the CLI. The parent (``sme.loadtest.runner``) builds the
options and a plan file (``SME_LOADTEST_PLAN``) that ``sme/loadtest/locustfile.py`` reads.

The plan holds the target's credentials (a front door's API key), so it is deleted as soon as Locust has
imported the locustfile (its ``init`` event; ``--processes`` forks after that import, so no worker reads
it again). If sme died while this process ran, nobody else will remove the temp dir: this process does.
"""

import locust  # noqa: F401  (first: gevent must patch before anything imports ssl or sockets)
import locust.main
import os
import shutil
import sys

from locust import events


def main() -> None:
    locustfile = os.path.join(os.path.dirname(os.path.abspath(__file__)), "locustfile.py")
    sys.argv = ["locust", "-f", locustfile, *sys.argv[1:]]
    plan = os.environ.get("SME_LOADTEST_PLAN", "")
    me, sme = os.getpid(), os.getppid()
    events.init.add_listener(lambda **_: _forget(plan))
    try:
        locust.main.main()
    finally:
        # only the process sme started (not a forked worker, whose parent is this one), and only if sme died
        if plan and os.getpid() == me and os.getppid() != sme:
            shutil.rmtree(os.path.dirname(plan), ignore_errors=True)


def _forget(plan: str) -> None:
    try:
        os.unlink(plan)
    except FileNotFoundError:  # a forked worker: the first process already removed it
        pass


if __name__ == "__main__":
    main()
