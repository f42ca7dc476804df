"""The sweep: each candidate deployed, loaded up its ladder, reported and torn down, `parallel` at once.

    derive files (DIR/<candidate>/sme.yaml, load.yaml) -> check `parallel` and preflight every candidate
      -> a pool of `parallel` workers, each:  sme deploy -> sme loadtest --out DIR/<candidate>/run
         (with `watch:`, an `sme watch --out DIR/<candidate>/run/watch.jsonl` beside it, stopped when the
         ladder ends) -> sme report DIR/<candidate>/run -> sme teardown   (the watch's stop and the teardown
         in a `finally`: whatever happened)
      -> results -> DIR/recommendation.json, DIR/report.html

Every step is the real CLI in a subprocess in its own session (its output in DIR/<candidate>/log.txt), so
a terminal's Ctrl-C reaches this process only: it sets ``stop``, asks each running command to stop (SIGINT:
a load test ends its run cleanly), and every worker still tears its candidate down before the sweep exits
(130). A crash or SIGKILL leaves DIR/sweep.json saying which candidates may still be deployed; ``--resume``
stops their leftover commands, tears them down, and redoes only the candidates that did not finish.
"""

from __future__ import annotations

import signal
import subprocess
import sys
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from sme.errors import ExitStatus, Interrupted, SmeError
from sme.recommend import progress as prog
from sme.recommend.config import Candidate, Recommend, candidate_name, experiment_for

LOADTEST_OK = (0, int(ExitStatus.SLO_FAILED))  # a ladder that ends in a breach is what a sweep expects


@dataclass(frozen=True)
class SweepOptions:
    out: Path
    poll: str = "5s"
    deploy_timeout: str = "30m"
    prices: str = "auto"  # auto: the AWS Pricing API, falling back to sme's table; table: the table only


@dataclass
class Sweep:
    rec: Recommend
    opts: SweepOptions
    progress: prog.Progress
    say: Any
    stop: threading.Event = field(default_factory=threading.Event)
    running: dict[int, tuple[str, subprocess.Popen]] = field(default_factory=dict)  # pid -> (candidate, process)
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def folder(self, c: Candidate) -> Path:
        return self.opts.out / c.label

    # -- one candidate -----------------------------------------------------------------------------------
    def run_candidate(self, c: Candidate) -> None:
        state = self.progress.get(c.label)
        if state.status in ("done", "failed") or self.stop.is_set():
            return
        started = time.monotonic()
        self.progress.update(c.label, status="running", deployed=True, error="")
        try:
            self._measure(c, state.experiment)
            status, error = ("pending", "interrupted") if self.stop.is_set() else ("done", "")
        except SmeError as exc:
            status, error = ("pending", "interrupted") if self.stop.is_set() else ("failed", exc.message)
            self.say(f"{c.label}: {error}")
        finally:
            torn_down = self.teardown(c, state.experiment)
        if status == "done" and not torn_down:
            status, error = "failed", "measured, but its teardown failed (see log.txt)"
        self.progress.update(c.label, status=status, error=error, seconds=round(time.monotonic() - started, 1))
        self.say(f"{c.label}: {status}" + (f" ({error})" if error else "") + " and torn down" * torn_down)

    def _measure(self, c: Candidate, experiment: str) -> None:
        folder = self.folder(c)
        self.say(f"{c.label}: deploying {experiment}")
        self.child(c, ["deploy", "-c", str(folder / "sme.yaml"), "--poll-interval", self.opts.poll,
                       "--timeout", self.opts.deploy_timeout], "deploy")
        if c.serverless is not None:
            self.warm(c, experiment)
        watch = self.start_watch(c, experiment)
        try:
            self.say(f"{c.label}: running the ladder")
            self.child(c, ["loadtest", "-c", str(folder / "load.yaml"), "--out", str(folder / "run")], "loadtest",
                       ok=LOADTEST_OK)
        finally:
            self.stop_watch(c, watch)
        priced = ["--instance-type", c.instance_type] if c.instance_type else []
        self.child(c, ["report", str(folder / "run"), "--prices", self.opts.prices, *priced], "report", ok=None)

    def teardown(self, c: Candidate, experiment: str) -> bool:
        """True once nothing of the candidate is left (``deployed`` cleared in sweep.json)."""
        if not self.progress.get(c.label).deployed:
            return True
        try:
            self.child(c, ["teardown", "--name", experiment, "--lock-timeout", "2m"], "teardown", interruptible=False)
        except SmeError as exc:
            self.say(f"{c.label}: {exc.message}; it is still marked deployed in sweep.json: `sme recommend "
                     f"--resume {self.opts.out}`, `sme teardown --name {experiment}` or `sme teardown --sweep "
                     f"{self.progress.id}` removes it")
            return False
        self.progress.update(c.label, deployed=False)
        return True

    def warm(self, c: Candidate, experiment: str) -> None:
        """A serverless ladder starts with its runtimes up (sme.recommend.warmup says why)."""
        from sme.deploy import aws_for
        from sme.recommend.warmup import warm

        wanted = int(c.serverless["max_concurrency"])  # type: ignore[index]
        self.say(f"{c.label}: warming {experiment}: {wanted} request(s) at once, so its ladder measures warm runtimes")
        aws = aws_for(self.rec.base.get("region"), self.rec.base.get("profile"))
        up = warm(aws, experiment, self.rec.load["payload"], wanted, self.stop, self.rec.source)
        self.say(f"{c.label}: {up} runtime(s) answered before the ladder")

    def start_watch(self, c: Candidate, experiment: str) -> subprocess.Popen | None:
        """`sme watch` beside the ladder, into the run folder, where `sme report` and the knee's CPU and memory
        read it; None without `watch:` in the file."""
        if self.rec.watch_interval is None or self.stop.is_set():
            return None
        out = self.folder(c) / "run"
        out.mkdir(parents=True, exist_ok=True)
        self.say(f"{c.label}: watching {experiment} every {self.rec.watch_interval:g}s")
        return self.spawn(c, ["watch", "--name", experiment, "--interval", f"{self.rec.watch_interval:g}s",
                              "--out", str(out / "watch.jsonl")])

    def stop_watch(self, c: Candidate, proc: subprocess.Popen | None, wait: float = 60.0) -> None:
        """SIGTERM (the watch ends as on Ctrl-C, its file complete), then SIGKILL if it does not end in ``wait``."""
        if proc is None:
            return
        if proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout=wait)
        except subprocess.TimeoutExpired:
            self.say(f"{c.label}: the watch did not stop in {wait:g}s; killed")
            proc.kill()
            proc.wait()
        self.forget(c, proc)

    def child(self, c: Candidate, args: list[str], what: str, ok: tuple[int, ...] | None = (0,),
              interruptible: bool = True) -> int:
        if interruptible and self.stop.is_set():
            raise SmeError(f"`sme {what}` not started: the sweep is stopping")
        proc = self.spawn(c, args)
        try:
            code = proc.wait()
        finally:
            self.forget(c, proc)
        if ok is not None and code not in ok:
            raise SmeError(f"`sme {what}` exited with {code} (see {self.folder(c) / 'log.txt'})")
        return code

    def spawn(self, c: Candidate, args: list[str]) -> subprocess.Popen:
        """The real CLI in its own session, its output appended to the candidate's log.txt, its pid in sweep.json."""
        with (self.folder(c) / "log.txt").open("ab") as fh:
            fh.write(f"\n$ sme {' '.join(args)}\n".encode())
            fh.flush()
            proc = subprocess.Popen([sys.executable, "-m", "sme", *args], stdout=fh, stderr=subprocess.STDOUT,
                                    stdin=subprocess.DEVNULL, start_new_session=True)
        with self._lock:
            self.running[proc.pid] = (c.label, proc)
            pids = self._pids(c)
        self.progress.update(c.label, pids=pids)
        return proc

    def forget(self, c: Candidate, proc: subprocess.Popen) -> None:
        with self._lock:
            self.running.pop(proc.pid, None)
            pids = self._pids(c)
        self.progress.update(c.label, pids=pids)

    def _pids(self, c: Candidate) -> list[int]:
        return sorted(pid for pid, (label, _) in self.running.items() if label == c.label)

    def interrupt(self) -> None:
        """Ask every running command to stop, once; the workers then tear their candidates down."""
        self.stop.set()
        with self._lock:
            procs = [proc for _, proc in self.running.values()]
        for proc in procs:
            if proc.poll() is None:
                proc.send_signal(signal.SIGINT)


# -- the whole sweep ---------------------------------------------------------------------------------------
def prepare(rec: Recommend, out: Path, resumed: prog.Progress | None) -> prog.Progress:
    """Write each candidate's files; a new sweep gets its id here (its sweep.json is written by ``begin``, once
    the checks passed, so a refused sweep can be started again as it was)."""
    import yaml

    sweep_id = resumed.id if resumed else prog.new_id()
    pairs = []
    for c in rec.candidates:
        name = candidate_name(rec, c, sweep_id)
        folder = out / c.label
        folder.mkdir(parents=True, exist_ok=True)
        header = f"# written by `sme recommend` (sweep {sweep_id}): {c.where} of {rec.source}\n"
        (folder / "sme.yaml").write_text(header + yaml.safe_dump(experiment_for(rec, c, name, sweep_id),
                                                                 sort_keys=False))
        (folder / "load.yaml").write_text(header + yaml.safe_dump({"target": {"endpoint": name}, **rec.load},
                                                                  sort_keys=False))
        pairs.append((c.label, name))
    if resumed:
        known = {c.label for c in resumed.candidates}
        if known != {label for label, _ in pairs}:
            raise SmeError(f"{rec.source} no longer has the candidates the sweep in {out} started with",
                           hint="resume with the file as it was, or start a new sweep with another --out",
                           status=ExitStatus.USAGE)
        return resumed
    return prog.Progress(out / prog.FILE, sweep_id, str(Path(rec.source).resolve()),
                         [prog.CandidateProgress(label, exp) for label, exp in pairs])


def clean_up_leftovers(sweep: Sweep) -> None:
    """A resumed sweep first stops what a killed one left running and tears down what it left deployed."""
    for c in sweep.rec.candidates:
        state = sweep.progress.get(c.label)
        if state.pids:
            prog.stop_orphans(state, sweep.folder(c), sweep.say)
            sweep.progress.save()
        if state.status == "running":
            sweep.progress.update(c.label, status="pending")
        if state.deployed:
            sweep.say(f"{c.label}: tearing down what the interrupted sweep left deployed")
            if not sweep.teardown(c, state.experiment):
                raise SmeError(f"could not tear down {state.experiment}", hint=f"see {sweep.folder(c) / 'log.txt'}")
        elif state.status == "pending" and (sweep.folder(c) / "run").exists():
            import shutil

            shutil.rmtree(sweep.folder(c) / "run")  # an unfinished attempt's results: measured again


def run_pool(sweep: Sweep) -> None:
    todo = [c for c in sweep.rec.candidates if sweep.progress.get(c.label).status not in ("done", "failed")]
    for c in sweep.rec.candidates:
        if c not in todo:
            sweep.say(f"{c.label}: already {sweep.progress.get(c.label).status}; not redone")
    previous = signal.signal(signal.SIGTERM, _raise_interrupt)
    pool = ThreadPoolExecutor(max_workers=sweep.rec.parallel, thread_name_prefix="sme-candidate")
    futures = [pool.submit(sweep.run_candidate, c) for c in todo]
    try:
        while not all(f.done() for f in futures):
            time.sleep(0.2)
    except (KeyboardInterrupt, Interrupted):
        sweep.say("sme recommend: stopping; tearing down every deployed candidate")
        sweep.interrupt()
        _wait_ignoring_signals(futures)
        raise Interrupted(f"stopped; nothing is left deployed. `sme recommend --resume {sweep.opts.out}` "
                          "continues") from None
    finally:
        pool.shutdown(wait=True)
        signal.signal(signal.SIGTERM, previous)
    for f in futures:
        f.result()  # a bug in a worker surfaces here, after every teardown ran


def _wait_ignoring_signals(futures: list[Any]) -> None:
    """The teardowns must finish: a second Ctrl-C or SIGTERM while they run is reported, not obeyed."""
    while not all(f.done() for f in futures):
        try:
            time.sleep(0.2)
        except (KeyboardInterrupt, Interrupted):
            print("sme recommend: still tearing down; wait for it (or kill -9, then --resume)", file=sys.stderr)


def _raise_interrupt(*_: object) -> None:
    raise Interrupted("stopped")
