"""Put on PYTHONPATH to make every ``os.fsync`` of a process block its thread for SME_TEST_FSYNC_S seconds:
a disk that takes that long to sync (a busy laptop's, a network volume). The sleep is the real one, taken
before gevent can patch ``time``: it blocks the thread that called fsync, as a slow sync does."""

import os
import time

_sleep, _fsync = time.sleep, os.fsync
_delay = float(os.environ.get("SME_TEST_FSYNC_S", "0"))


def _slow_fsync(fd: int) -> None:
    _sleep(_delay)
    _fsync(fd)


if _delay > 0:
    os.fsync = _slow_fsync
