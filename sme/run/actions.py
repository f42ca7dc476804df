"""Carrying out one event of a run, and recording what AWS (or the twin) showed meanwhile.

- ``deploy``: `sme deploy -c NEW` in a child process (the same guarded update a user runs, with its
  DeploymentConfig and rollback alarms), while this thread polls DescribeEndpoint and the alarms once a
  second: when the endpoint went Updating and InService, on which config, each traffic shift and baking
  period (PendingDeploymentSummary's VariantStatus), whether an alarm fired;
- ``scale``: RegisterScalableTarget with the new floor/ceiling for each variant, then how long until the
  instance count was inside it;
- ``fail_zone``: the twin's ``POST /_sme/zones/fail``, then how long until DescribeEndpoint counted as
  many instances as before, and the free addresses of every subnet before and after.

Each returns a dict for ``run.json``: ``outcome`` (ok | rolled_back | failed | error | stopped), a one-line
``summary`` and the facts the report's verdict is built from.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

from sme.run.config import Event

POLL = 1.0
REPLACE_LIMIT = 600.0  # the longest a zone's lost capacity is waited for (SageMaker takes minutes)


@dataclass
class Actions:
    aws: Any  # sme.aws.AwsContext
    endpoint: str
    out: Path
    twin_url: str | None
    deploy_timeout: float = 1800.0
    poll: float = POLL
    sleep: Callable[[float], None] = time.sleep
    # an update holds this while its `sme deploy` runs; a scale event waits for it: that deploy ends by
    # registering the scalable target from its own file, which would undo a floor set in the meantime
    # (and SageMaker refuses capacity changes while the endpoint is Updating anyway)
    changing: threading.Lock = field(default_factory=threading.Lock, repr=False)

    def fire(self, event: Event, stopped: Callable[[], bool]) -> dict[str, Any]:
        return getattr(self, f"_{event.kind}")(event, stopped)

    # -- deploy: a guarded update under load ------------------------------------------------------
    def _deploy(self, event: Event, stopped: Callable[[], bool]) -> dict[str, Any]:
        while not self.changing.acquire(timeout=self.poll):  # an earlier update still runs: one at a time
            if stopped():
                return {"outcome": "stopped", "summary": "stopped while waiting for the update before it to end"}
        try:
            return self._update(event, stopped)
        finally:
            self.changing.release()

    def _update(self, event: Event, stopped: Callable[[], bool]) -> dict[str, Any]:
        before = self._describe()
        log = self.out / "events" / f"{event.number}-deploy.log"
        log.parent.mkdir(parents=True, exist_ok=True)
        alarms = alarm_names(event.deploy, self.endpoint)
        seen: list[dict[str, Any]] = []
        shifts: list[dict[str, Any]] = []
        fired: set[str] = set()
        with log.open("wb") as fh:
            proc = subprocess.Popen([sys.executable, "-m", "sme", "deploy", "-c", str(event.deploy.source),
                                     "--poll-interval", f"{self.poll:g}s", "--timeout", f"{self.deploy_timeout:g}s",
                                     "--lock-timeout", "60s"], stdout=fh, stderr=subprocess.STDOUT,
                                    start_new_session=True, env=dict(os.environ, PYTHONUNBUFFERED="1"))
            try:
                while proc.poll() is None:
                    self._note(seen, fired, alarms, shifts)
                    if stopped():
                        _interrupt(proc)
                        break
                    self.sleep(self.poll)
            finally:
                if proc.poll() is None:
                    _interrupt(proc)
        after = self._note(seen, fired, alarms, shifts)
        asked = _asked_config(self.endpoint, before)
        result = update_result(proc.returncode, before, after, asked, seen, sorted(fired), alarms,
                               event.deploy.update or {}, _tail(log))
        return {**result, **traffic_steps(shifts, after)}

    def _note(self, seen: list[dict[str, Any]], fired: set[str], alarms: list[str],
              shifts: list[dict[str, Any]]) -> dict[str, Any] | None:
        """One poll: the endpoint's status and config when they change; each new stage of the update (a traffic
        shift, a baking period); alarms found in ALARM."""
        now = self._describe()
        state = (now or {}).get("EndpointStatus", "gone"), (now or {}).get("EndpointConfigName")
        if not seen or (seen[-1]["status"], seen[-1]["config"]) != state:
            seen.append({"time": time.time(), "status": state[0], "config": state[1]})
        stage = _pending_stage(now)
        if stage and (not shifts or (shifts[-1]["status"], shifts[-1]["time"]) != (stage["status"], stage["time"])):
            shifts.append(stage)
        if alarms:
            try:
                reply = self.aws.client("cloudwatch").describe_alarms(AlarmNames=alarms[:100])
                fired.update(a["AlarmName"] for a in reply.get("MetricAlarms", []) if a.get("StateValue") == "ALARM")
            except Exception:  # noqa: BLE001 - alarms are a detail of the verdict, not a reason to stop
                pass
        return now

    # -- scale: a new floor and/or ceiling ---------------------------------------------------------
    def _scale(self, event: Event, stopped: Callable[[], bool]) -> dict[str, Any]:
        assert event.scaling is not None
        low, high = event.scaling
        asked = time.time()
        while not self.changing.acquire(timeout=self.poll):  # an update is running: after it, not under it
            if stopped():
                return {"outcome": "stopped", "min": low, "max": high, "instances": self._instances(),
                        "settled_s": None, "summary": "stopped while waiting for the update before it to end"}
        try:
            return self._set_scaling(low, high, stopped, round(time.time() - asked, 1))
        finally:
            self.changing.release()

    def _set_scaling(self, low: int, high: int, stopped: Callable[[], bool], waited: float) -> dict[str, Any]:
        from sme.core import names

        aas = self.aws.client("application-autoscaling")
        variants = [v["VariantName"] for v in (self._describe() or {}).get("ProductionVariants", [])]
        for variant in variants:
            aas.register_scalable_target(ServiceNamespace="sagemaker",
                                         ResourceId=names.scaling_resource_id(self.endpoint, variant),
                                         ScalableDimension=names.SCALABLE_DIMENSION, MinCapacity=low, MaxCapacity=high)
        started = time.time()
        counts = self._instances()
        while not stopped() and not all(low <= n <= high for n in counts.values()) and \
                time.time() - started < REPLACE_LIMIT:
            self.sleep(self.poll)
            counts = self._instances()
        inside = all(low <= n <= high for n in counts.values())
        took = time.time() - started
        after = f" (set after waiting {waited:.0f}s for the update before it)" if waited >= 1 else ""
        return {"outcome": "ok" if inside else "stopped" if stopped() else "failed", "min": low, "max": high,
                "variants": variants, "instances": counts, "settled_s": round(took, 1) if inside else None,
                "waited_s": waited,
                "summary": (f"instances {_counts(counts)} inside [{low}, {high}] after {took:.0f}s" if inside
                            else f"instances {_counts(counts)} still outside [{low}, {high}]") + after}

    # -- fail_zone: the twin kills the zone's instances -------------------------------------------
    def _fail_zone(self, event: Event, stopped: Callable[[], bool]) -> dict[str, Any]:
        before, subnets_before = self._instances(), self._subnets()
        failed = twin_call(self.twin_url or "", "fail", event.zone)
        started = time.time()
        lowest, counts = dict(before), self._instances()
        while not stopped() and not _restored(counts, before) and time.time() - started < REPLACE_LIMIT:
            lowest = {v: min(lowest.get(v, n), n) for v, n in counts.items()}
            self.sleep(self.poll / 2)
            counts = self._instances()
        lowest = {v: min(lowest.get(v, n), n) for v, n in counts.items()}
        restored = _restored(counts, before)
        took = time.time() - started
        lost = failed.get("lost", [])
        return {"outcome": "ok" if restored else "stopped" if stopped() else "failed", "zone": event.zone,
                "lost": lost, "instances_before": before, "instances_lowest": lowest, "instances_after": counts,
                "replaced_s": round(took, 1) if restored else None, "replaced_at": started + took if restored else None,
                "subnets_before": subnets_before, "subnets_after": self._subnets(),
                "summary": (f"{len(lost)} instance(s) lost in {event.zone}; " +
                            (f"capacity back to {_counts(counts)} after {took:.0f}s" if restored
                             else f"capacity {_counts(counts)} of {_counts(before)} when the run stopped waiting"))}

    # -- reads -------------------------------------------------------------------------------------
    def _describe(self) -> dict[str, Any] | None:
        from sme.core.observe import RemoteState

        return RemoteState(self.aws).describe_endpoint(self.endpoint)

    def _instances(self) -> dict[str, int]:
        found = self._describe() or {}
        return {v["VariantName"]: int(v.get("CurrentInstanceCount") or 0) for v in found.get("ProductionVariants", [])}

    def _subnets(self) -> list[dict[str, Any]]:
        """The endpoint's subnets (its models' VpcConfig) with their zone and free addresses."""
        config = (self._describe() or {}).get("EndpointConfigName")
        sm, ec2 = self.aws.client("sagemaker"), self.aws.client("ec2")
        ids: list[str] = []
        for v in sm.describe_endpoint_config(EndpointConfigName=config)["ProductionVariants"] if config else []:
            vpc = sm.describe_model(ModelName=v["ModelName"]).get("VpcConfig") or {}
            ids += [s for s in vpc.get("Subnets", []) if s not in ids]
        if not ids:
            return []
        return [{"id": s["SubnetId"], "az": s["AvailabilityZone"], "free_ips": s["AvailableIpAddressCount"]}
                for s in ec2.describe_subnets(SubnetIds=ids)["Subnets"]]


def update_result(code: int | None, before: dict | None, after: dict | None, asked: str | None,
                  seen: list[dict[str, Any]], fired: list[str], alarms: list[str], update: dict[str, Any],
                  tail: str) -> dict[str, Any]:
    """The record of an update: did it take, roll back or fail, and what was seen while it ran."""
    old = (before or {}).get("EndpointConfigName")
    live = (after or {}).get("EndpointConfigName")
    on_asked = bool(asked) and live == asked
    if code == 0 and (on_asked or asked == old):
        outcome = "ok"
    elif code == 4 and live == old:
        outcome = "rolled_back"
    elif code == 130:
        outcome = "stopped"
    else:
        outcome = "failed"
    words = {"ok": f"now on {live}" if live != old else f"nothing to change: still on {live}",
             "rolled_back": f"rolled back: still on {old}", "stopped": "stopped with the run",
             "failed": f"`sme deploy` exited {code}; the endpoint is on {live}"}[outcome]
    return {"outcome": outcome, "exit_code": code, "from_config": old, "asked_config": asked, "final_config": live,
            "ended_on_asked": on_asked, "transitions": seen, "alarms": alarms, "alarms_fired": fired,
            "strategy": update.get("strategy", "all-at-once"), "failure_reason": (after or {}).get("FailureReason"),
            "summary": words + (f"; alarms fired: {', '.join(fired)}" if fired else ""), "log_tail": tail}


def _pending_stage(described: dict[str, Any] | None) -> dict[str, Any] | None:
    """The first pending variant's VariantStatus (Creating, Baking, ...) with when it began, or None."""
    pending = (described or {}).get("PendingDeploymentSummary") or {}
    for variant in pending.get("ProductionVariants") or []:
        for status in variant.get("VariantStatus") or []:
            began = status.get("StartTime")
            return {"time": began.timestamp() if hasattr(began, "timestamp") else time.time(),
                    "status": status.get("Status"), "message": status.get("StatusMessage", ""),
                    "variant": variant.get("VariantName"), "instances": variant.get("DesiredInstanceCount"),
                    "config": pending.get("EndpointConfigName")}
    return None


def traffic_steps(shifts: list[dict[str, Any]], after: dict[str, Any] | None) -> dict[str, Any]:
    """The update's stages as seen, each baking period numbered as the traffic shift that began it, with the share
    SageMaker's rule gives that step (``sme.guardrails``) for the routing the endpoint reports it was given."""
    from sme.guardrails import step_shares

    routing = (((after or {}).get("LastDeploymentConfig") or {}).get("BlueGreenUpdatePolicy") or {}) \
        .get("TrafficRoutingConfiguration")
    instances = next((s["instances"] for s in shifts if s.get("instances")), None)
    shares = step_shares(routing, instances) if routing and instances else []
    steps, baking = [], [s for s in shifts if s["status"] == "Baking"]
    for number, stage in enumerate(baking, start=1):
        share = shares[number - 1] if number <= len(shares) else None
        steps.append({**stage, "step": number, "share": share})
    return {"stages": shifts, "traffic_steps": steps, "routing": routing}


def alarm_names(experiment: Any, endpoint: str) -> list[str]:
    """The alarms the update rolls back on: sme's own (``alarms: auto``) or the ones the file names."""
    from sme.core import names

    alarms = (experiment.update or {}).get("alarms")
    if alarms == "auto":
        return [names.alarm_name(endpoint, v.name, what) for v in experiment.variants for what in ("5xx", "latency")]
    return list(alarms or [])


def twin_call(url: str, action: str, zone: str) -> dict[str, Any]:
    """``POST {twin}/_sme/zones/{action}`` -> the twin's JSON answer (a clear error if it is not sme's twin)."""
    import urllib.error
    import urllib.request

    from sme.errors import SmeError

    request = urllib.request.Request(f"{url.rstrip('/')}/_sme/zones/{action}", method="POST",
                                     data=json.dumps({"zone": zone}).encode(), headers={"Content-Type": "application/json"})
    try:
        with urllib.request.urlopen(request, timeout=60) as reply:
            return json.loads(reply.read() or b"{}")
    except urllib.error.HTTPError as exc:
        raise SmeError(f"the twin at {url} refused to {action} zone {zone}: HTTP {exc.code} "
                       f"{exc.read()[:200].decode(errors='replace')}",
                       hint="is AWS_ENDPOINT_URL sme's twin (`sme local start`), not a plain moto server?") from None
    except OSError as exc:
        raise SmeError(f"the twin at {url} did not answer ({exc})", hint="is `sme local start` still running?") from None


def _asked_config(endpoint: str, before: dict | None) -> str | None:
    """The config the update pointed the endpoint at: the newest in the state file (recorded when UpdateEndpoint
    was called), or None when the deploy changed nothing."""
    from sme.state import load_state

    history = load_state(endpoint).endpoint_configs
    return history[-1]["name"] if history else (before or {}).get("EndpointConfigName")


def _restored(counts: dict[str, int], before: dict[str, int]) -> bool:
    return all(counts.get(v, 0) >= n for v, n in before.items())


def _counts(counts: dict[str, int]) -> str:
    return ", ".join(f"{n} ({v})" for v, n in counts.items()) if len(counts) > 1 else str(sum(counts.values()))


def _interrupt(proc: subprocess.Popen) -> None:
    """Ctrl-C for the deploy child: it stops waiting and exits with the endpoint recorded."""
    try:
        os.killpg(proc.pid, signal.SIGINT)
        proc.wait(30)
    except (ProcessLookupError, PermissionError):
        pass
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait(10)


def _tail(path: Path, lines: int = 4) -> str:
    try:
        return " | ".join(path.read_text(errors="replace").strip().splitlines()[-lines:])
    except OSError:
        return ""
