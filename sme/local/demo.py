"""`sme demo`: the seed experiment in miniature, on this machine, with no AWS account.

1. start the local AWS (a moto server extended by sme; endpoints are real model runtimes);
2. make a VPC with three small subnets in three AZs, so address use is visible;
3. train a small XGBoost model on a data set scikit-learn ships, and pack it as a SageMaker model.tar.gz;
4. `sme run -c run-local.yaml`: the files sme ships in sme/data/seed/ (sme/local/demo_seed.py), the seed's
   experiment at demo scale: deploy with autoscaling (min 1, max 4) into those subnets, `sme watch` every
   5 s, a load that starts slowly then holds, an update under load, the report and the teardown.

`sme run` runs as a user runs it, a subprocess against the local AWS; the demo then says where the results are.

`--kind serverless|async|llm` runs another endpoint kind's pipeline (deploy, load test while sme watch
samples, report, teardown; sme/local/demo_kinds.py): its steps 2 and 3 and its closing numbers are that kind's.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator

from sme.console import Env
from sme.errors import ExitStatus, Interrupted, SmeError
from sme.local import demo_kinds as k
from sme.local import demo_seed as seed
from sme.local.demo_kinds import DemoRun, Kind, Tally
from sme.local.demo_llm import llm_prepare, llm_tally
from sme.state import write_atomic

NAME = "demo"


@dataclass
class DemoOptions:
    out: Path
    minutes: float = 3.0
    watch_interval: float = 5.0
    kind: str = "realtime"  # or serverless | async | llm (sme.local.demo_kinds)


def run_demo(opts: DemoOptions, env: Env) -> int:
    kind = _kind(opts.kind)
    out = opts.out.resolve()
    earlier = (out / "sme.yaml").exists() or (out / seed.RUN_FILE).exists()
    if out.exists() and any(out.iterdir()) and not earlier:
        raise SmeError(f"{out} exists and is not an earlier demo's folder", hint="pass --out to an empty or new folder")
    out.mkdir(parents=True, exist_ok=True)
    load_seconds = load_seconds_for(opts.minutes)
    shown = "" if kind.name == "realtime" else f" ({kind.name} endpoint)"
    env.info(f"sme demo: writing to {out}; about {opts.minutes:g} minutes{shown}")
    with _twin_settings(kind.settings(load_seconds)):
        if kind.name == "realtime":
            return _run_seed(kind, DemoRun(out, NAME, None, load_seconds, env))
        return _run_pipeline(kind, DemoRun(out, NAME, None, load_seconds, env), opts)


def load_seconds_for(minutes: float) -> float:
    """The load's length in a demo of about ``minutes``: the rest is the twin, the model, deploy and teardown."""
    return max(30.0, minutes * 60 - 25)


def _run_seed(kind: Kind, run: DemoRun) -> int:
    """The seed's experiment: the twin, its subnets and the model made here, then `sme run` of the shipped files."""
    from sme.local.aws.twin import LocalAws
    from sme.local.demo_model import build_demo_model

    out, env = run.out, run.console
    seed.seed_dir()  # before anything starts: the files are there
    local = run.local = LocalAws(workdir=out / ".local", **kind.twin).start()
    previous = signal.signal(signal.SIGTERM, _raise_interrupt)
    sub_env = _child_env(local, out)
    try:
        env.info(f"1/4 local AWS on {local.url}")
        subnets, group = _make_vpc(local)
        env.info(f"2/4 VPC with subnets {', '.join(subnets)} (/28: 11 free addresses each)")
        model = build_demo_model(out)
        env.info(f"3/4 trained XGBoost on scikit-learn's breast-cancer data: {model.model_tar}")
        run_file = seed.write_seed_files(out, subnets, group, run.load_seconds)
        env.info(f"4/4 sme run -c {run_file.name} (the seed's experiment at demo scale): deploy, sme watch every 5s, "
                 f"{run.load_seconds:.0f}s of load with an update under load, report, teardown")
        code = _run_to_end(["run", "-c", str(run_file), "--out", str(out), "--poll-interval", "1s",
                            "--timeout", "5m"], sub_env, out, env)
        if code not in (ExitStatus.OK, ExitStatus.SLO_FAILED, ExitStatus.DEPLOY_FAILED):
            raise SmeError(f"`sme run` exited with {code}", status=ExitStatus.ERROR)
        _closing(run, kind, None, slo_failed=code == ExitStatus.SLO_FAILED)
        if code == ExitStatus.DEPLOY_FAILED:
            env.info("  the update under load was rolled back or failed: see run.json and report.html")
        return int(ExitStatus.OK if code != ExitStatus.DEPLOY_FAILED else code)
    except KeyboardInterrupt:  # before `sme run` started (it is waited for in _run_to_end)
        env.info("sme demo: stopping")
        raise Interrupted("demo stopped; everything it started was stopped and removed") from None
    finally:
        if (out / ".sme" / f"{NAME}.json").exists():  # `sme run` did not get to its teardown
            subprocess.run([sys.executable, "-m", "sme", "teardown", "--name", NAME], env=sub_env, cwd=out,
                           capture_output=True, timeout=120)
        local.stop()
        signal.signal(signal.SIGTERM, previous)


def _run_to_end(args: list[str], env: dict, cwd: Path, console: Env) -> int:
    """`sme ARGS` in a session of its own, so that only this process takes the terminal's Ctrl-C: it passes one
    SIGINT on per Ctrl-C (or SIGTERM) and waits for the child's clean stop (report, teardown); then exit 130."""
    proc = subprocess.Popen([sys.executable, "-m", "sme", *args], env=env, cwd=cwd, start_new_session=True)
    stops = 0
    while True:
        try:
            code = proc.wait()
            break
        except (KeyboardInterrupt, Interrupted):
            stops += 1
            console.info("sme demo: stopping `sme run` (it writes the report of what ran and tears down)"
                         if stops == 1 else "sme demo: stopping `sme run` sooner (it skips the step it is in)")
            with contextlib.suppress(ProcessLookupError):
                proc.send_signal(signal.SIGINT)
    if stops or code == ExitStatus.INTERRUPTED:
        raise Interrupted("demo stopped; everything it started was stopped and removed")
    return code


def _run_pipeline(kind: Kind, run: DemoRun, opts: DemoOptions) -> int:
    from sme.local.aws.twin import LocalAws

    out, env, load_seconds = run.out, run.console, run.load_seconds
    local = run.local = LocalAws(workdir=out / ".local", **kind.twin).start()
    children: list[subprocess.Popen] = []
    previous = signal.signal(signal.SIGTERM, _raise_interrupt)
    deployed = False
    try:
        sub_env = _child_env(local, out)
        env.info(f"1/6 local AWS on {local.url}")
        kind.prepare(run)
        env.info("4/6 sme deploy -c sme.yaml")
        deployed = True
        _run(["deploy", "-c", str(out / "sme.yaml"), "--poll-interval", "1s", "--timeout", "5m"], sub_env, out)
        env.info(f"5/6 sme loadtest ({load_seconds:.0f}s) while sme watch samples every {opts.watch_interval:g}s")
        watch = _start(["watch", "--name", NAME, "--interval", f"{opts.watch_interval:g}s", "--duration",
                        f"{load_seconds + 2 * opts.watch_interval:.0f}s", "--out", str(out / "watch.jsonl")],
                       sub_env, out, quiet=True)
        children.append(watch)
        code = _run(["loadtest", "-c", str(out / "load.yaml"), "--out", str(out)], sub_env, out,
                    ok=(0, ExitStatus.SLO_FAILED))
        watch.wait(timeout=3 * opts.watch_interval + 30)
        tally = kind.tally(run)  # before teardown: it reads the twin too
        env.info("6/6 sme report and sme teardown")
        _report(out, sub_env, env)
        _run(["teardown", "--name", NAME], sub_env, out)
        deployed = False
        _closing(run, kind, tally, slo_failed=bool(code))
        return ExitStatus.OK
    except (KeyboardInterrupt, Interrupted):
        env.info("sme demo: stopping")
        raise Interrupted("demo stopped; everything it started was stopped and removed") from None
    finally:
        for child in children:
            if child.poll() is None:
                child.send_signal(signal.SIGINT)
                try:
                    child.wait(timeout=15)
                except subprocess.TimeoutExpired:
                    child.kill()
        if deployed:
            subprocess.run([sys.executable, "-m", "sme", "teardown", "--name", NAME], env=_child_env(local, out),
                           cwd=out, capture_output=True, timeout=120)
        local.stop()
        signal.signal(signal.SIGTERM, previous)


def _closing(run: DemoRun, kind: Kind, tally: Tally | None, slo_failed: bool) -> None:
    """The closing summary: the kind's own numbers (also in demo.json), the laptop's limits, the files."""
    out, env = run.out, run.console
    env.info(f"done: results in {out}" + (" (the SLO was not met: see summary.json)" if slo_failed else ""))
    if tally is not None:
        write_atomic(out / "demo.json", json.dumps({"kind": kind.name, **tally.record}, indent=2) + "\n", 0o644)
        for line in tally.lines:
            env.info(f"  {line}")
    for notice in _limits(out):
        env.info(f"  note: {notice}")
    for name in ("report.html", "summary.json", "timeseries.csv", "watch.jsonl", "locust.html", *kind.files,
                 *(("demo.json",) if tally is not None else ())):
        if (out / name).exists():
            env.info(f"  {out / name}")


def _kind(name: str) -> Kind:
    """The endpoint kind's steps: realtime is the seed's experiment (_run_seed), the others are in
    demo_kinds/demo_llm."""
    return {
        "realtime": Kind("realtime", _no_prepare, _no_tally, files=("run.json",)),
        "serverless": Kind("serverless", k.serverless_prepare, k.serverless_tally, settings=k.serverless_settings),
        "async": Kind("async", k.async_prepare, k.async_tally, files=("async_requests.csv",)),
        "llm": Kind("llm", llm_prepare, llm_tally),
    }[name]


def _no_prepare(run: DemoRun) -> None:
    raise AssertionError("the realtime demo is `sme run` of the seed's files (_run_seed), not the pipeline")


def _no_tally(run: DemoRun) -> None:
    return None  # the realtime demo's numbers are the load test's and the watch's own


@contextlib.contextmanager
def _twin_settings(settings: dict[str, str]) -> Iterator[None]:
    """The twin runs in this process and reads a few settings from its environment (the serverless idle
    timeout): set them for the demo's run only."""
    saved = {key: os.environ.get(key) for key in settings}
    os.environ.update(settings)
    try:
        yield
    finally:
        for key, value in saved.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value


def _limits(out: Path) -> list[str]:
    """The stages where the laptop, not the model, set the rate (summary.json's ``limited_by``)."""
    from sme.loadtest.limits import notices

    try:
        return notices(json.loads((out / "summary.json").read_text()))
    except (OSError, ValueError):
        return []


def _raise_interrupt(*_: object) -> None:
    raise Interrupted("demo stopped")


def _child_env(local, out: Path) -> dict[str, str]:  # type: ignore[no-untyped-def]
    env = {k: v for k, v in os.environ.items() if not k.startswith("AWS_")}
    env.update(local.environment())
    empty = out / ".local" / "aws-config"
    empty.parent.mkdir(parents=True, exist_ok=True)
    empty.write_text("")
    env["AWS_CONFIG_FILE"] = env["AWS_SHARED_CREDENTIALS_FILE"] = str(empty)
    env["AWS_EC2_METADATA_DISABLED"] = "true"
    env["SME_STATE_DIR"] = str(out / ".sme")
    return env


def _make_vpc(local) -> tuple[list[str], str]:  # type: ignore[no-untyped-def]
    import boto3

    ec2 = boto3.client("ec2", endpoint_url=local.url, region_name="us-east-1", aws_access_key_id="local",
                       aws_secret_access_key="local")
    vpc = ec2.create_vpc(CidrBlock="10.20.0.0/16")["Vpc"]["VpcId"]
    group = ec2.create_security_group(GroupName="sme-demo", Description="sme demo", VpcId=vpc)["GroupId"]
    subnets = [ec2.create_subnet(VpcId=vpc, CidrBlock=f"10.20.{i}.0/28", AvailabilityZone=f"us-east-1{az}")
               ["Subnet"]["SubnetId"] for i, az in enumerate("abc")]
    return subnets, group


def _run(args: list[str], env: dict, cwd: Path, ok: tuple = (0,)) -> int:
    proc = subprocess.run([sys.executable, "-m", "sme", *args], env=env, cwd=cwd)
    if proc.returncode not in ok:
        raise SmeError(f"`sme {args[0]}` exited with {proc.returncode}", status=ExitStatus.ERROR)
    return proc.returncode


def _start(args: list[str], env: dict, cwd: Path, quiet: bool = False) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-m", "sme", *args], env=env, cwd=cwd,
                            stdout=subprocess.DEVNULL if quiet else None, stderr=subprocess.DEVNULL if quiet else None)


def _report(out: Path, env: dict, console: Env) -> None:
    # as a user would run it: the instance types come from the watch file; the local AWS has no Pricing API,
    # and the report says so when it prices from sme's table
    proc = subprocess.run([sys.executable, "-m", "sme", "report", str(out)], env=env, cwd=out)
    if proc.returncode != 0:
        console.info(f"sme report exited with {proc.returncode}; the raw results are still in {out}")
