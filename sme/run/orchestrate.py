"""`sme run -c run.yaml --out DIR`: deploy, watch, load with events, report, tear down; one exit status.

The phases run in this process, in order (each recorded in ``DIR/run.json`` as it starts and ends):

    check     the run file and every file it names, the zones of fail_zone events  (exit 2, nothing deployed)
    deploy    sme.deploy.deploy: creates the endpoint, or continues/leaves an earlier deploy of it
    watch     `sme watch --out DIR/watch.jsonl` in a child process of its own, every `watch.interval`
              (its table is drawn here, with the load line and the next event: screen.RunScreen)
    load      sme.loadtest.runner in this thread; the events fire from a thread (events.EventRunner)
    settle    one more watch interval, then the watch is stopped (SIGTERM: its file stays whole)
    report    sme.report: DIR/report.html, the events marked on the time axis with verdicts (marks.py)
    teardown  sme.deploy.teardown, unless `teardown: false`

Ctrl-C (or SIGTERM) at any phase stops what runs (the load ends as if on time, a running update's
`sme deploy` is interrupted with its endpoint recorded, the watch is stopped), then the report of what
ran is written and the endpoint torn down as the file asks; a second Ctrl-C during that cleanup skips
the step it interrupts. Exit status: 130 when interrupted; 4 when an update failed or was rolled back;
the deploy's own status when it failed; otherwise the load's SLO verdict (0 or 3).
"""

from __future__ import annotations

import shutil
import signal
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

from sme.errors import ConfigError, ExitStatus, Interrupted, SmeError, UserError
from sme.run.config import RunFile, load_run_file
from sme.run.events import RUN_LOG, EventRunner, RunLog

STALE = ("summary.json", "timeseries.csv", "locust.html", "watch.jsonl", "watch.log", RUN_LOG, "report.html")


@dataclass(frozen=True)
class RunOptions:
    config: Path
    out: Path
    deploy_timeout: float = 1800.0
    poll: float = 15.0


def run_experiment(opts: RunOptions, env: Any) -> int:
    run = load_run_file(opts.config)
    orchestrated = Run(run, opts, opts.out, env)
    check_zones(run, orchestrated.aws)  # a read of the subnets: still before anything is deployed
    prepare_out(opts.out, opts.config)
    return orchestrated.go()


def prepare_out(out: Path, config: Path) -> Path:
    try:
        out.mkdir(parents=True, exist_ok=True)
        for name in STALE:
            (out / name).unlink(missing_ok=True)
        shutil.rmtree(out / "events", ignore_errors=True)
        if (out / "run.yaml").resolve() != config.resolve():
            shutil.copyfile(config, out / "run.yaml")
    except OSError as exc:
        raise UserError(f"cannot write to {out} ({exc.strerror or exc})", hint="choose another --out") from None
    return out


class Run:
    def __init__(self, run: RunFile, opts: RunOptions, out: Path, env: Any):
        from sme.aws import AwsContext

        self.run, self.opts, self.out, self.env = run, opts, out, env
        self.name = run.experiment.name
        self.aws = AwsContext.from_settings(run.experiment.profile, run.experiment.region)
        self.log = RunLog(None, {"run": str(opts.config), "experiment": self.name,
                                          "interval_s": run.interval, "teardown": run.teardown,
                                          "planned": [{"number": e.number, "at_s": e.at, "what": e.what}
                                                      for e in run.events]})
        self.interrupted = False
        self.deployed = False
        self.events: EventRunner | None = None
        self.watch: subprocess.Popen | None = None
        self.failed_zones: list[str] = []

    def go(self) -> int:
        self.log.path = self.out / RUN_LOG
        previous = _sigterm_as_ctrl_c()
        load_code: int | None = None
        error: BaseException | None = None
        try:
            load_code = self._phases()
        except (KeyboardInterrupt, Interrupted):
            self.interrupted = True
            self.env.info("sme run: stopping; writing the report of what ran")
        except BaseException as exc:  # noqa: BLE001 - cleaned up below, then raised again
            error = exc
        try:
            self._finish()
        finally:
            if previous is not None:
                signal.signal(signal.SIGTERM, previous)
        if error is not None:
            raise error
        return self._status(load_code)

    # -- the phases ----------------------------------------------------------------------------
    def _phases(self) -> int:
        from sme.deploy import DeployOptions, deploy

        self.log.phase("deploy")
        self.deployed = True  # from here on, whatever the deploy made is recorded and torn down
        deploy(self.run.experiment, DeployOptions(timeout=self.opts.deploy_timeout, poll=self.opts.poll,
                                                  lock_timeout=60.0), self.env)
        self.log.phase("deploy", outcome="ok")
        self.watch = self._start_watch()
        return self._load()

    def _load(self) -> int:
        from sme.loadtest.runner import Mode, run_loadtest
        from sme.run.actions import Actions
        from sme.run.screen import RunScreen

        actions = Actions(self.aws, self.name, self.out, self.run.twin_url, self.opts.deploy_timeout,
                          min(self.opts.poll, 1.0))
        self.failed_zones = [e.zone for e in self.run.events if e.kind == "fail_zone"]
        self.events = EventRunner(self.run.events, actions.fire, self.log, lambda: load_started(self.out),
                                  self.env.info).start()
        self.log.phase("load")
        screen = RunScreen(self.env, self.out / "watch.jsonl", self.events.next_event)
        try:  # the watch's table, the load line and the next event on one screen
            code = run_loadtest(str(self.run.load_path), str(self.out), Mode(), self.env, display=screen.progress)
        finally:
            screen.close()
        self.log.phase("load", outcome="interrupted" if code == ExitStatus.INTERRUPTED else "ok", exit_code=code)
        if code == ExitStatus.INTERRUPTED:
            raise Interrupted("the load was stopped")
        if self.events.thread and self.events.thread.is_alive():
            self.env.info("the load has ended; waiting for the event still running")
            self.events.thread.join(self.opts.deploy_timeout + 60)
        self.env.info(f"watching one interval more ({self.run.interval:g}s)")
        self.env.sleep(self.run.interval)
        return code

    def _start_watch(self) -> subprocess.Popen:
        args = [sys.executable, "-m", "sme", "watch", "--name", self.name, "--interval", f"{self.run.interval:g}s",
                "--out", str(self.out / "watch.jsonl")]
        if self.run.experiment.region:
            args += ["--region", self.run.experiment.region]
        with (self.out / "watch.log").open("ab") as log:
            proc = subprocess.Popen(args, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
        self.env.info(f"sme watch every {self.run.interval:g}s -> {self.out / 'watch.jsonl'}")
        return proc

    # -- the cleanup, also after Ctrl-C or a failure ----------------------------------------------
    def _finish(self) -> None:
        for step in (self._stop_events, self._stop_watch, self._restore_zones, self._report, self._teardown):
            try:
                step()
            except KeyboardInterrupt:
                self.interrupted = True
                self.env.info(f"sme run: skipped {step.__name__.strip('_').replace('_', ' ')} (interrupted)")
            except SmeError as exc:
                self.env.info(f"note: {exc.render()}")
        self.log.set(interrupted=self.interrupted)

    def _stop_events(self) -> None:
        if self.events is not None:
            self.events.stop()

    def _stop_watch(self) -> None:
        if self.watch is not None and self.watch.poll() is None:
            stop_child(self.watch)

    def _restore_zones(self) -> None:
        from sme.run.actions import twin_call

        for zone in self.failed_zones if self.run.twin_url else []:
            twin_call(self.run.twin_url or "", "restore", zone)

    def _report(self) -> None:
        from sme.report.build import ReportOptions, run_report

        self.log.phase("report")
        try:
            run_report(ReportOptions(self.out), self.env)
            self.log.phase("report", outcome="ok")
        except UserError as exc:  # nothing measured yet (stopped during the deploy): said, not an error
            self.log.phase("report", outcome="none", reason=exc.message)
            self.env.info(f"no report: {exc.message}")

    def _teardown(self) -> None:
        from sme.deploy import teardown

        if not self.deployed:
            return
        if not self.run.teardown:
            self.env.info(f"teardown: false: endpoint {self.name} is kept (`sme teardown --name {self.name}` "
                          "removes it)")
            return
        self.log.phase("teardown")
        teardown(self.name, self.run.experiment.region, self.run.experiment.profile, self.env, dry_run=False,
                 lock_timeout=60.0)
        self.log.phase("teardown", outcome="ok")

    def _status(self, load_code: int | None) -> int:
        events = self.log.data.get("events", [])
        for ev in events:
            self.env.info(f"event {ev['number']} ({ev['what']}): {ev.get('summary') or ev.get('outcome')}")
        self.env.info(f"results in {self.out}/ (report.html, run.json, summary.json, watch.jsonl)")
        if self.interrupted:
            raise Interrupted("sme run stopped; the report holds what ran" +
                              ("" if not self.deployed or self.run.teardown else f"; endpoint {self.name} is kept"))
        if any(e["kind"] == "deploy" and e.get("outcome") in ("rolled_back", "failed") for e in events):
            return int(ExitStatus.DEPLOY_FAILED)
        if any(e.get("outcome") == "error" for e in events):
            return int(ExitStatus.ERROR)
        return int(load_code if load_code is not None else ExitStatus.ERROR)


def check_zones(run: RunFile, aws: Any) -> None:
    """Each fail_zone names a zone of the experiment's subnets, and leaves another zone to move to."""
    zone_events = [e for e in run.events if e.kind == "fail_zone"]
    if not zone_events:
        return
    subnets = aws.client("ec2").describe_subnets(SubnetIds=list(run.experiment.network.subnets))["Subnets"]
    zones = sorted({s["AvailabilityZone"] for s in subnets})
    for ev in zone_events:
        if ev.zone not in zones:
            raise ConfigError(run.source, f"{ev.field}.fail_zone", f"{ev.zone} holds none of the experiment's "
                              f"subnets (they are in {', '.join(zones)})", hint=f"fail one of {', '.join(zones)}")
        if len(zones) < 2:
            raise ConfigError(run.source, f"{ev.field}.fail_zone", f"every subnet of the experiment is in "
                              f"{ev.zone}: no zone is left to replace the instances in",
                              hint="give the experiment subnets in two or more zones")


def load_started(out: Path) -> float | None:
    """When the load really started: the first row of the load's timeseries.csv (time - elapsed_s)."""
    try:
        with open(out / "timeseries.csv", encoding="utf-8") as fh:
            header, first = fh.readline().strip().split(","), fh.readline().strip().split(",")
        row = dict(zip(header, first))
        return float(row["time"]) - float(row["elapsed_s"])
    except (OSError, KeyError, ValueError):
        return None


def stop_child(proc: subprocess.Popen, timeout: float = 30.0) -> None:
    """SIGTERM to the child's group (sme watch ends its file cleanly), SIGKILL if it does not go."""
    import os

    try:
        os.killpg(proc.pid, signal.SIGTERM)
        proc.wait(timeout)
    except (ProcessLookupError, PermissionError):
        pass
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait(10)


def _sigterm_as_ctrl_c() -> Callable | Any:
    import threading

    def stop(signum: int, frame: Any) -> None:
        raise KeyboardInterrupt

    if threading.current_thread() is not threading.main_thread():
        return None
    return signal.signal(signal.SIGTERM, stop)
