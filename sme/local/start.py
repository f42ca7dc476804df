"""`sme local start`: the local AWS in the foreground."""

from __future__ import annotations

import signal
import threading
from pathlib import Path

from sme.console import Env
from sme.errors import ExitStatus, UserError


def run_local(env: Env, port: int, region: str, workdir: str | None, ready_file: str | None) -> int:
    from sme.local.aws.twin import LocalAws
    from sme.state import write_atomic

    local = LocalAws(port=port, workdir=Path(workdir) if workdir else None)
    try:
        local.start()
    except OSError as exc:
        raise UserError(f"cannot listen on 127.0.0.1:{port} ({exc.strerror})",
                        hint="another local AWS may be running; pass --port 0 or another port") from None
    exports = "\n".join(f"export {k}={v}" for k, v in local.environment(region).items())
    if ready_file:
        write_atomic(Path(ready_file), exports + "\n", mode=0o644)
    env.out.print(f"# sme local AWS on {local.url} (region {region}); in another shell:", markup=False)
    env.out.print(exports, markup=False)
    env.out.file.flush()
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    try:
        stop.wait()
    except KeyboardInterrupt:
        pass
    finally:
        env.info("sme local: stopping every runtime")
        local.stop()
    return ExitStatus.OK
