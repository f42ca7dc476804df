"""`sme demo`: the seed experiment in miniature, on this machine, with no AWS account.

1. start the local AWS (a moto server extended by sme; endpoints are real model runtimes);
2. make a VPC with three small subnets in three AZs, so address use is visible;
3. train a small XGBoost model on a data set scikit-learn ships, and pack it as a SageMaker model.tar.gz;
4. `sme deploy` it with autoscaling (min 1, max 4) into those subnets;
5. `sme loadtest` it (start slowly, then hold) while `sme watch` samples every few seconds;
6. `sme report` (when available), `sme teardown`, and print where the results are.

Each step runs the real CLI as a subprocess against the local AWS, exactly as a user would.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

from sme.console import Env
from sme.errors import ExitStatus, Interrupted, SmeError

NAME = "demo"


@dataclass
class DemoOptions:
    out: Path
    minutes: float = 3.0
    watch_interval: float = 5.0


def run_demo(opts: DemoOptions, env: Env) -> int:
    from sme.local.aws.twin import LocalAws

    out = opts.out.resolve()
    if out.exists() and any(out.iterdir()) and not (out / "sme.yaml").exists():
        raise SmeError(f"{out} exists and is not an earlier demo's folder", hint="pass --out to an empty or new folder")
    out.mkdir(parents=True, exist_ok=True)
    load_seconds = max(30.0, opts.minutes * 60 - 25)
    env.info(f"sme demo: writing to {out}; about {opts.minutes:g} minutes")
    local = LocalAws(workdir=out / ".local", metrics_period=2.0, scaling_period=2.0, scaling_window=15.0).start()
    children: list[subprocess.Popen] = []
    previous = signal.signal(signal.SIGTERM, _raise_interrupt)
    deployed = False
    try:
        sub_env = _child_env(local, out)
        env.info(f"1/6 local AWS on {local.url}")
        subnets, group = _make_vpc(local)
        env.info(f"2/6 VPC with subnets {', '.join(subnets)} (/28: 11 free addresses each)")
        from sme.local.demo_model import build_demo_model

        model = build_demo_model(out)
        env.info(f"3/6 trained XGBoost on scikit-learn's breast-cancer data: {model.model_tar}")
        _write_experiment(out, model.model_tar, subnets, group)
        _write_loadtest(out, model.payload_csv, load_seconds)
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
        env.info("6/6 sme report and sme teardown")
        _report(out, sub_env, env)
        _run(["teardown", "--name", NAME], sub_env, out)
        deployed = False
        env.info(f"done: results in {out}" + (" (the SLO was not met: see summary.json)" if code else ""))
        for name in ("report.html", "summary.json", "timeseries.csv", "watch.jsonl", "locust.html"):
            if (out / name).exists():
                env.info(f"  {out / name}")
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


def _write_experiment(out: Path, model_tar: Path, subnets: list[str], group: str) -> None:
    (out / "sme.yaml").write_text(f"""# written by `sme demo`: the experiment, as a user would write it
name: {NAME}
region: us-east-1
model:
  image: xgboost:1.7-1
  model_data: {model_tar}
  role: create
network:
  subnets: [{", ".join(subnets)}]
  security_groups: [{group}]
endpoint:
  variants:
    - {{name: AllTraffic, instance_type: ml.m5.large, count: 1}}
autoscaling:
  min: 1
  max: 4
  target: 3000          # invocations per minute per instance (50 req/s)
  scale_out_cooldown: 10s
  scale_in_cooldown: 5m
""")


def _write_loadtest(out: Path, payload: Path, seconds: float) -> None:
    ramp = max(6, round(seconds * 0.3))
    spawn = round(8 / (ramp * 0.8), 2)  # reach 8 users within the first stage
    (out / "load.yaml").write_text(f"""# written by `sme demo`: start slowly, then hold (the seed's shape, in minutes)
target:
  endpoint: {NAME}
payload: {{file: {payload}, content_type: text/csv, split: lines}}
stages:
  - {{duration: {ramp}s, users: 8, spawn_rate: {spawn}}}
  - {{duration: {round(seconds) - ramp}s, users: 16, spawn_rate: 2}}
slo: {{p99_ms: 500, error_rate: 0.01}}
""")


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
