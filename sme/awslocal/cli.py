"""`sme local start`: the local AWS in the foreground."""

from __future__ import annotations

import signal
import threading
from pathlib import Path

from sme.console import ENV
from sme.errors import ExitStatus, UserError


def run_local(port: int, region: str, workdir: str | None, ready_file: str | None) -> int:
    from sme.awslocal.local import LocalAws
    from sme.state import write_atomic

    local = LocalAws(port=port, workdir=Path(workdir) if workdir else None)
    try:
        local.start()
    except OSError as exc:
        raise UserError(f"cannot listen on 127.0.0.1:{port} ({exc.strerror})",
                        hint="another local AWS may be running; pass --port 0 or another port") from None
    env = local.environment(region)
    exports = "\n".join(f"export {k}={v}" for k, v in env.items())
    if ready_file:
        write_atomic(Path(ready_file), exports + "\n", mode=0o644)
    ENV.out.print(f"# sme local AWS on {local.url} (region {region}); in another shell:", markup=False)
    ENV.out.print(exports, markup=False)
    ENV.out.file.flush()
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    try:
        stop.wait()
    except KeyboardInterrupt:
        pass
    finally:
        ENV.info("sme local: stopping every runtime")
        local.stop()
    return ExitStatus.OK
