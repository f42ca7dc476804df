"""Local endpoint instances: one runtime process per instance, each holding one address in a subnet.

An ``Instance`` is a ``python -m sme.local.runtime`` process on a free loopback port plus, when the
model has a VpcConfig, one network interface in one of its subnets (spread round-robin across AZs), so
address use in the subnets is what it would be in AWS. An instance of a type sme knows gets that type's
CPU (``sme.instance_types.local_share``: its cores pinned, one worker per vCPU unless the model's
SAGEMAKER_MODEL_SERVER_WORKERS says otherwise), so instance types differ locally as they do on AWS.
"""

from __future__ import annotations

import hashlib
import http.client
import itertools
import json
import os
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from sme.instance_types import LocalShare, local_share
from sme.net import free_port


@dataclass
class Instance:
    variant: str
    port: int
    proc: subprocess.Popen
    status_file: Path
    log_file: Path
    eni_id: str | None = None
    subnet_id: str | None = None
    started: float = field(default_factory=time.time)
    config: str = ""  # the endpoint config of the fleet it belongs to (metrics per fleet: guardrails.py)
    share: LocalShare | None = None  # its type's cores and workers here: its CPU and memory metrics are of these

    def state(self) -> tuple[str, str]:
        """('starting' | 'ready' | 'failed', reason)."""
        info: dict[str, Any] = {}
        try:
            info = json.loads(self.status_file.read_text() or "{}")
        except (OSError, ValueError):
            pass
        if info.get("state") == "failed":
            return "failed", info.get("reason", "the model server failed to start")
        code = self.proc.poll()
        if code is not None:
            tail = self.log_file.read_text(errors="replace").strip().splitlines()[-3:] if self.log_file.exists() else []
            return "failed", info.get("reason") or f"model server exited with {code}: {' '.join(tail)}"
        if info.get("state") == "ready" or self._ping():
            return "ready", ""
        return "starting", ""

    def _ping(self) -> bool:
        try:
            conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=0.5)
            conn.request("GET", "/ping")
            ok = conn.getresponse().status == 200
            conn.close()
            return ok
        except OSError:
            return False

    def stop(self) -> None:
        self.signal_stop()
        self.wait_stopped()

    def signal_stop(self) -> None:
        """Ask the runtime to stop (SIGTERM) without waiting: a fleet's instances stop side by side."""
        if self.proc.poll() is None:
            self.proc.terminate()

    def wait_stopped(self, timeout: float = 10.0) -> None:
        """Wait for a runtime asked to stop; one that does not within ``timeout`` is killed."""
        try:
            self.proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait(timeout=5)


class Launcher:
    """Starts and stops instances; owns the artifact cache and the ENIs."""

    def __init__(self, workdir: Path | None = None):
        self.workdir = Path(workdir or tempfile.mkdtemp(prefix="sme-local-"))
        self.workdir.mkdir(parents=True, exist_ok=True)
        self._seq = itertools.count(1)

    def artifact(self, account: str, model_data_url: str) -> Path:
        """Fetch a model.tar.gz from the local S3 into the cache (once per URL)."""
        from moto.s3.models import s3_backends

        bucket, _, key = model_data_url[5:].partition("/")
        # named by a hash of the URL: a key such as ../../x must not write outside the workdir
        target = self.workdir / "artifacts" / (hashlib.sha256(model_data_url.encode()).hexdigest()[:32] + ".tar.gz")
        if not target.exists():
            obj = s3_backends[account]["global"].get_object(bucket, key)
            if obj is None:
                raise FileNotFoundError(f"Could not find model data at {model_data_url}")
            target.parent.mkdir(parents=True, exist_ok=True)
            target.write_bytes(obj.value)
        return target

    def start(self, variant: str, artifact: Path | None, environment: dict[str, str], image: str = "",
              region: str = "us-east-1", instance_type: str | None = None) -> Instance:
        n = next(self._seq)
        port = free_port()
        status = self.workdir / f"instance-{n}.status.json"
        log = self.workdir / f"instance-{n}.log"
        env = container_environment(environment, image, region, self.workdir / f"instance-{n}")
        env["SAGEMAKER_BIND_TO_PORT"] = str(port)
        share = local_share(instance_type, first=n) if instance_type else None
        workers = environment.get("SAGEMAKER_MODEL_SERVER_WORKERS", str(share.workers if share else 1))
        model_data = ["--model-data", str(artifact)] if artifact is not None else []
        cpus = ["--cpus", ",".join(map(str, share.cores))] if share else []
        cmd = [sys.executable, "-m", "sme.local.runtime", *model_data, "--port", str(port), *cpus,
               "--workers", workers if workers.isdigit() and int(workers) > 0 else "1", "--status-file", str(status),
               "--exit-with-parent"]  # a twin killed (SIGKILL, OOM) must not leave its instances running
        with log.open("wb") as fh:
            proc = subprocess.Popen(cmd, stdout=fh, stderr=subprocess.STDOUT, env=env, start_new_session=True)
        return Instance(variant, port, proc, status, log, share=share)


# what a process needs to run at all; nothing else of the shell's environment reaches a model
PASSED_THROUGH = ("PATH", "LANG", "LC_ALL", "LC_CTYPE", "TZ", "PYTHONPATH", "VIRTUAL_ENV", "SYSTEMROOT")


def container_environment(model_env: dict[str, str], image: str, region: str, home: Path) -> dict[str, str]:
    """What SageMaker gives a container: the model's Environment, the region, and credentials of the
    execution role (here: placeholders that are not the user's). The user's own AWS credentials, profile
    and every other variable of the shell stay out: a model's inference.py runs as the user's code."""
    env = {k: os.environ[k] for k in PASSED_THROUGH if k in os.environ}
    home.mkdir(parents=True, exist_ok=True)
    env.update({"HOME": str(home), "AWS_REGION": region, "AWS_DEFAULT_REGION": region,
                "AWS_ACCESS_KEY_ID": "sme-local-execution-role", "AWS_SECRET_ACCESS_KEY": "sme-local-execution-role",
                "SME_CONTAINER_IMAGE": image})
    env.update(model_env)
    return env


class Addresses:
    """Network interfaces for instances, made directly in moto's EC2 backend (as SageMaker would)."""

    def __init__(self, account: str, region: str):
        self.account, self.region = account, region

    def _ec2(self) -> Any:
        from moto.ec2.models import ec2_backends

        return ec2_backends[self.account][self.region]

    def attach(self, instance: Instance, endpoint: str, subnets: list[str], groups: list[str]) -> None:
        from sme.local.aws.patches.ec2 import service_managed
        from sme.local.aws.zones import usable

        if not subnets:
            return
        ec2 = self._ec2()
        by_az: dict[str, list[Any]] = {}
        for sid in subnets:
            subnet = ec2.get_subnet(sid)
            if usable(subnet.availability_zone):  # never in a zone the twin has failed (zones.py)
                by_az.setdefault(subnet.availability_zone, []).append(subnet)
        if not by_az:
            raise RuntimeError(f"every zone of the subnets {', '.join(subnets)} has failed")
        mine = f"SageMaker endpoint {endpoint}"
        used = {az: sum(1 for eni in ec2.get_all_network_interfaces()
                        if eni.subnet.id in {s.id for s in group} and mine in (eni.description or ""))
                for az, group in by_az.items()}
        az = min(sorted(by_az), key=lambda a: used[a])  # spread across AZs, fewest of ours first
        subnet = max(by_az[az], key=lambda s: s.available_ip_address_count)
        if subnet.available_ip_address_count <= 0:
            raise RuntimeError(f"subnet {subnet.id} has no free IP addresses")
        eni = ec2.create_network_interface(subnet, None, group_ids=groups or None,
                                           description=f"VPC Endpoint Interface for SageMaker endpoint {endpoint}")
        service_managed(eni)
        instance.eni_id, instance.subnet_id = eni.id, subnet.id

    def detach(self, instance: Instance) -> None:
        if instance.eni_id:
            try:
                self._ec2().delete_network_interface(instance.eni_id)
            except Exception:  # noqa: BLE001 - already gone
                pass
            instance.eni_id = None
