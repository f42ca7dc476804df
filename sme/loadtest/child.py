"""Entry point of the load process: ``python -m sme.loadtest.child <locust options>``.

This is the only way into Locust: importing it monkey-patches the process with gevent, so it happens
here, first, in a child process, never in the CLI. The parent (``sme.loadtest.runner``) builds the
options and a plan file (``SME_LOADTEST_PLAN``) that ``sme/loadtest/locustfile.py`` reads.
"""

import locust  # noqa: F401  (first: gevent must patch before anything imports ssl or sockets)
import locust.main
import os
import sys


def main() -> None:
    locustfile = os.path.join(os.path.dirname(os.path.abspath(__file__)), "locustfile.py")
    sys.argv = ["locust", "-f", locustfile, *sys.argv[1:]]
    locust.main.main()


if __name__ == "__main__":
    main()
