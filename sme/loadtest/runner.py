"""`sme loadtest` in the CLI process: check everything, start Locust in a child process, watch, write.

    config.load -> targets.resolve -> plan file -> child (python -m sme.loadtest.child, own session)
      -> progress lines (live display) -> final tally -> results.summarize/write -> SLO table -> exit code

gevent and locust never enter this process. The first Ctrl-C or SIGTERM here asks the load process to stop
(a ``stop`` file it checks once a second; before the run has started, a SIGINT): it ends the run as if on
time, writes its HTML report and our final tally, and the summary is marked partial. A second one kills the
load process's whole group (exit 130, no results).

The plan file holds the target's credentials (a front door's API key): it is written 0600 into a 0700
temp dir, and the load process deletes it as soon as it has read it (sme.loadtest.child), so a SIGKILLed
run leaves no secret behind; an orphaned load process removes the whole dir when it ends.
"""

from __future__ import annotations

import json
import math
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Callable

from sme.errors import ExitStatus, Interrupted, SmeError, UserError
from sme.loadtest import config as cfg
from sme.loadtest.results import render_slo, summarize, write
from sme.loadtest.targets import resolve, upload_async_inputs
from sme.net import free_port


@dataclass(frozen=True)
class Mode:
    """How this process takes part: alone (with N local workers), as a master, or as a worker."""

    role: str = "local"  # local | master | worker
    master_host: str = "127.0.0.1"
    master_port: int = 5557
    expect_workers: int = 1


def run_loadtest(config_path: str, out: str | None, mode: Mode, env: Any,
                 display: Callable[[dict[str, Any]], None] | None = None) -> int:
    """``display`` takes each progress line in place of the load line here (`sme run` draws its own screen)."""
    lt = cfg.load(config_path, machines=None if mode.role == "worker" else
                  mode.expect_workers if mode.role == "master" else 1)
    target = resolve(lt.target, lt.source)
    if target.get("async") and (mode.role != "local" or lt.processes > 1):
        raise UserError("a load test of an asynchronous endpoint runs in one load process for now",
                        hint="run it without --master/--worker and with processes: 1")
    if target.get("async"):
        upload_async_inputs(target, lt.payload.bodies, lt.payload.content_type)
    if any(s.until_slo_breach for s in lt.stages) and not lt.slo:
        raise cfg.ConfigError(lt.source, "slo", "a ladder with until_slo_breach needs an `slo:` to check",
                              hint="add e.g. slo: {p99_ms: 250}")
    if mode.role != "worker" and not out:
        raise UserError("no output directory given", hint="pass --out DIR (e.g. --out runs/churn-1)")
    work = Path(tempfile.mkdtemp(prefix="sme-loadtest-"))  # 0700
    try:
        out_dir = Path(out) if out else work
        _prepare_out(out_dir, config_path, mode)
        async_variants = _open_async(target, env) if target.get("async") else None
        plan = _plan(lt, target, config_path, work, None if mode.role == "worker" else out_dir)
        _write_private(work / "plan.json", json.dumps(plan))
        counts_cold_starts = target["kind"] == "endpoint" and mode.role != "worker"
        serverless = _serverless_variant(target, env) if counts_cold_starts else None
        child = _Child(_locust_args(lt, mode, out_dir), work, out_dir, env, log_to_stderr=mode.role == "worker")
        interrupted = child.run(display or (lambda line: _display(env, line)), lt.duration)
        if mode.role == "worker":
            return int(ExitStatus.INTERRUPTED) if interrupted else int(ExitStatus.OK)
        final_path = work / "final.json"
        if not final_path.exists() and interrupted:
            raise Interrupted("stopped: the load process was killed before it wrote results",
                              hint=f"its log is {out_dir / 'locust.log'}")
        if not final_path.exists():
            kept = (f"; what it measured until then is in {out_dir}/ (timeseries.csv, summary.json marked "
                    "in_progress)") if (out_dir / "timeseries.csv").exists() else ""
            raise SmeError(f"the load process ended (exit {child.returncode}) without its final results{kept}",
                           hint=f"see {out_dir / 'locust.log'}" + _tail(out_dir / "locust.log"))
        final = json.loads(final_path.read_text())
        partial = interrupted or bool(final.get("interrupted"))
        summary = summarize(final, lt.stages, lt.slo, lt.open, target, partial)
        write(out_dir, summary)
        render_slo(env.out, summary)
        if serverless and _add_serverless(summary, target, serverless, env):
            write(out_dir, summary)
        if async_variants and _add_async_split(summary, target, async_variants, env):
            write(out_dir, summary)
        extra = ", async_requests.csv" if summary.get("async") else ""
        env.info(f"results in {out_dir}/ (summary.json, timeseries.csv, locust.html{extra})")
        if partial:
            return int(ExitStatus.INTERRUPTED)
        return int(ExitStatus.OK if summary["slo"]["passed"] else ExitStatus.SLO_FAILED)
    finally:
        if target.get("async"):
            from sme.loadtest.async_inbox import close_inbox

            close_inbox(target, env.info)
        shutil.rmtree(work, ignore_errors=True)


def _open_async(target: dict[str, Any], env: Any) -> list[str] | None:
    """An asynchronous endpoint's variants (for CloudWatch after the run), read before the load; and its SNS
    inbox when its config names topics (``async_inbox``: recorded in the state before it is made)."""
    from sme.aws import AwsContext
    from sme.loadtest import async_inbox, async_split

    async_inbox.open_inbox(target, env.info)
    try:
        sagemaker = AwsContext.from_settings(None, target["async"]["region"]).client("sagemaker")
        return async_split.variants(sagemaker, target["endpoint"])
    except Exception as exc:  # noqa: BLE001 - the load runs without the per-minute split
        env.info(f"could not read {target['endpoint']}'s variants ({exc}): no per-minute queue/processing split")
        return None


def _add_async_split(summary: dict[str, Any], target: dict[str, Any], variants: list[str], env: Any) -> bool:
    """CloudWatch's per-minute queue and processing times beside the per-request split (False: unreadable)."""
    from sme.aws import AwsContext
    from sme.loadtest import async_split

    section = summary.get("async")
    if not section or not section["succeeded"] + section["failed"]:
        return False
    try:
        cloudwatch = AwsContext.from_settings(None, target["async"]["region"]).client("cloudwatch")
        section["per_minute"] = async_split.section(cloudwatch, target["endpoint"], variants, summary, env.info)
    except Exception as exc:  # noqa: BLE001 - the run's own numbers are written whatever CloudWatch answers
        env.info(f"could not read the endpoint's asynchronous metrics ({exc}); summary.json has the run without them")
        return False
    async_split.render(env.out, section)
    return True


def _serverless_variant(target: dict[str, Any], env: Any) -> tuple[str, dict] | None:
    """(variant, ServerlessConfig) when the target endpoint is serverless; read once, before the load."""
    from sme.aws import AwsContext
    from sme.loadtest import serverless

    try:
        sagemaker = AwsContext.from_settings(None, target["sign"]["region"]).client("sagemaker")
        return serverless.serverless_variant(sagemaker, target["endpoint"])
    except Exception as exc:  # noqa: BLE001 - any failure (denied, unreadable reply): the load runs without it
        env.info(f"could not tell whether {target['endpoint']} is serverless ({exc}): no cold-start count")
        return None


def _add_serverless(summary: dict[str, Any], target: dict[str, Any], found: tuple[str, dict], env: Any) -> bool:
    """A serverless endpoint's cold starts and throttles in the summary (False when CloudWatch failed)."""
    from sme.aws import AwsContext
    from sme.loadtest import serverless

    try:
        summary["serverless"] = serverless.section(AwsContext.from_settings(None, target["sign"]["region"]),
                                                   target["endpoint"], found, summary, env.info)
    except Exception as exc:  # noqa: BLE001 - the run's own numbers are written whatever CloudWatch answers
        env.info(f"could not read the endpoint's serverless metrics ({exc}); summary.json has the run without them")
        return False
    serverless.render(env.out, summary["serverless"])
    return True


def _write_private(path: Path, text: str) -> None:
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w") as fh:
        fh.write(text)


def _prepare_out(out_dir: Path, config_path: str, mode: Mode) -> None:
    if mode.role == "worker":
        return
    try:
        out_dir.mkdir(parents=True, exist_ok=True)
        for name in ("summary.json", "timeseries.csv", "locust.html", "async_requests.csv"):
            (out_dir / name).unlink(missing_ok=True)
        copy = out_dir / "loadtest.yaml"
        if not (copy.exists() and copy.samefile(config_path)):  # (-c DIR/loadtest.yaml --out DIR: it is there)
            shutil.copyfile(config_path, copy)
    except OSError as exc:
        raise UserError(f"cannot write to {out_dir} ({exc.strerror or exc})", hint="choose another --out") from None


def _plan(lt: cfg.LoadTest, target: dict[str, Any], config_path: str, work: Path,
          out_dir: Path | None) -> dict[str, Any]:
    import yaml

    raw = yaml.safe_load(Path(config_path).read_text())
    from sme.loadtest.shapes import Schedule

    schedule = Schedule(lt.stages)
    pool = lt.max_in_flight or min(max(20, math.ceil(schedule.peak_rate())), 2000)
    return {"source": lt.source, "target": target, "stages": [asdict(s) for s in lt.stages],
            "payload": {"spec": raw["payload"], "base": str(Path(config_path).parent.resolve()),
                        "content_type": lt.payload.content_type, "order": lt.payload.order},
            "slo": lt.slo, "max_in_flight": pool, "grace": lt.grace, "report_interval": 1.0,
            "progress": str(work / "progress.jsonl"), "final": str(work / "final.json"),
            "stop_file": str(work / "stop"), "out": str(out_dir) if out_dir else None}


def _locust_args(lt: cfg.LoadTest, mode: Mode, out_dir: Path) -> list[str]:
    args = ["--headless", "--only-summary", "--exit-code-on-error", "0", "--stop-timeout", f"{lt.stop_timeout:g}",
            "--loglevel", "WARNING"]
    if mode.role == "worker":
        args += ["--worker", "--master-host", mode.master_host, "--master-port", str(mode.master_port)]
        return args + (["--processes", str(lt.processes)] if lt.processes > 1 else [])
    args += ["--html", str(out_dir / "locust.html")]
    if mode.role == "master":
        return args + ["--master", "--expect-workers", str(mode.expect_workers),
                       "--master-bind-port", str(mode.master_port)]
    if lt.processes > 1:
        port = str(free_port())
        args += ["--processes", str(lt.processes), "--master-bind-port", port, "--master-port", port]
    return args




class _Child:
    """The Locust process: started in its own session, followed through its progress file."""

    def __init__(self, args: list[str], work: Path, out_dir: Path, env: Any, log_to_stderr: bool = False):
        self.args, self.work, self.out_dir, self.env = args, work, out_dir, env
        self.log_to_stderr = log_to_stderr  # a worker keeps no files: its warnings go to the terminal
        self.returncode: int | None = None
        self.signals = 0

    def run(self, on_line: Any, planned_s: float) -> bool:
        environ = dict(os.environ, SME_LOADTEST_PLAN=str(self.work / "plan.json"), PYTHONUNBUFFERED="1")
        log = sys.stderr if self.log_to_stderr else open(self.out_dir / "locust.log", "ab")
        proc = subprocess.Popen([sys.executable, "-m", "sme.loadtest.child", *self.args], env=environ,
                                stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
        previous = {s: signal.signal(s, lambda *_: self._forward(proc)) for s in (signal.SIGINT, signal.SIGTERM)}
        progress = self.work / "progress.jsonl"
        pos, announced = 0, False
        try:
            while proc.poll() is None:
                if self.signals and not announced:  # said here, not in the handler (see _forward)
                    announced = True
                    self.env.info("stopping: waiting for requests in flight, then writing partial results "
                                  "(press Ctrl-C again to kill)")
                time.sleep(0.25)
                pos = self._follow(progress, pos, on_line)
            self._follow(progress, pos, on_line)
        finally:
            for s, handler in previous.items():
                signal.signal(s, handler)
            if proc.poll() is None:  # this process is failing: never leave a load generator running behind it
                _kill_group(proc)
            if log is not sys.stderr:
                log.close()
            _clear_live(self.env)
        self.returncode = proc.returncode
        return self.signals > 0

    def _forward(self, proc: subprocess.Popen) -> None:
        """The signal handler: system calls only. It runs between any two bytecodes of this process, also in
        the middle of an import (rich, on the first live line), so it must not import or print itself."""
        self.signals += 1
        try:
            if self.signals == 1:
                # the load process checks for this file once a second and ends the run as if on time;
                # before the run has started there is nothing to save, so Locust is simply interrupted
                (self.work / "stop").touch()
                if not (self.work / "progress.jsonl").exists():
                    proc.send_signal(signal.SIGINT)
            else:
                os.killpg(proc.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass

    @staticmethod
    def _follow(path: Path, pos: int, on_line: Any) -> int:
        if not path.exists():
            return pos
        with path.open() as fh:
            fh.seek(pos)
            while True:
                line = fh.readline()
                if not line.endswith("\n"):
                    return pos
                pos += len(line.encode())
                on_line(json.loads(line))


def _kill_group(proc: subprocess.Popen) -> None:
    try:
        os.killpg(proc.pid, signal.SIGKILL)
    except (ProcessLookupError, PermissionError):
        pass
    try:
        proc.wait(10)
    except subprocess.TimeoutExpired:
        pass


_live: dict[str, Any] = {"live": None, "last": 0.0}


def progress_text(line: dict[str, Any]) -> str:
    """The load line: stage, load, rate, latency, counts, time (one progress line of the load process)."""
    from sme.units import format_duration

    load = f"{line['users']} users" if line.get("users") is not None else f"{line.get('rate') or 0:.0f} req/s target"
    return (f"stage {_stage(line['stage'])} | {load} | {line['rps']:.0f} req/s | p50 {_ms(line['p50'])} "
            f"p99 {_ms(line['p99'])} | {line['requests']} requests, {line['failures']} errors"
            f"{', ' + str(line['dropped']) + ' dropped' if line.get('rate') is not None else ''} | "
            f"{format_duration(line['elapsed'])} elapsed, {format_duration(line['remaining'])} left")


def _display(env: Any, line: dict[str, Any]) -> None:
    if line.get("done"):
        return
    text = progress_text(line)
    if env.interactive:
        from rich.live import Live
        from rich.text import Text

        if _live["live"] is None:
            _live["live"] = Live(Text(text), console=env.err, refresh_per_second=2, transient=True)
            _live["live"].start()
        _live["live"].update(Text(text))
    elif time.monotonic() - _live["last"] >= 10:
        _live["last"] = time.monotonic()
        env.info(text)


def _clear_live(env: Any) -> None:
    if _live["live"] is not None:
        _live["live"].stop()
        _live["live"] = None


def _stage(stage: int | None) -> str:
    return "-" if stage is None else str(stage + 1)


def _ms(v: float | None) -> str:
    return "-" if v is None else f"{v:g}ms"


def _tail(path: Path, lines: int = 5) -> str:
    try:
        text = path.read_text(errors="replace").strip().splitlines()[-lines:]
    except OSError:
        return ""
    return ("; last lines: " + " | ".join(text)) if text else ""
