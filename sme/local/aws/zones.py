"""The twin's zone failure: every instance in an availability zone's subnets dies, and is replaced elsewhere.

AWS behaviour reproduced (SageMaker's "Deploy models for real-time inference" best practices: with two or
more instances in subnets of several zones, "if an outage occurs or an instance fails, Amazon SageMaker
automatically attempts to distribute your instances across Availability Zones"):

- the endpoint's instances whose network interface is in a subnet of the failed zone stop at once
  (SIGKILL: requests in flight on them fail, as on a lost zone) and their interfaces are released;
  DescribeEndpoint's CurrentInstanceCount drops, DesiredInstanceCount does not;
- each lost instance gets a replacement at once, placed (``usable``) only in the endpoint's subnets of the
  zones still working; it serves when it answers /ping, as a scale-out does (``LocalEndpoints.promote``);
- an instance already on its way out (an update's old fleet, a scale-in: stopping, still holding its
  address) dies too, and its address is released at once; it is not replaced (it was leaving);
- the zone stays failed, for every endpoint of its region, until ``restore`` (nothing moves back then).

Served on the twin's port: ``POST /_sme/zones/fail`` and ``POST /_sme/zones/restore`` with ``{"zone": "..."}``
(``is_zone_call`` / ``answer``, on the front's loop; the work runs in a thread: it stops processes).
"""

from __future__ import annotations

import json
import threading
from typing import Any

PREFIX = "/_sme/zones/"
_FAILED: set[str] = set()  # zones failed, e.g. "us-east-1a"
_LOCK = threading.Lock()


def _endpoints() -> Any:
    """The running twin's LocalEndpoints (the one registry: the data plane's, ``sagemaker_runtime.forwarding``)."""
    from sme.local.aws.patches import sagemaker_runtime

    return sagemaker_runtime.forwarding()


def forget_failures() -> None:
    """The twin stopped: no zone stays failed for the next one in this process."""
    with _LOCK:
        _FAILED.clear()


def usable(zone: str) -> bool:
    """Whether an instance may be placed in this zone (the placement check in ``fleet.Addresses``)."""
    return zone not in _FAILED


def fail(endpoints: Any, zone: str) -> dict[str, Any]:
    """Fail ``zone``: kill the instances in it, start their replacements in the other zones."""
    with _LOCK:
        _FAILED.add(zone)
    lost, replacing, errors = [], 0, []
    region = zone[:-1]
    for ep in endpoints.live_endpoints():
        if ep.region != region:
            continue
        with endpoints.lock:  # an update must not finish between the deaths and the replacements
            dead = _kill(endpoints, ep, zone)
            for instance, _, _, group in dead:
                try:
                    endpoints.replace(ep, instance, group)
                    replacing += 1
                except Exception as exc:  # noqa: BLE001 - no working zone with a free address: in the answer
                    errors.append(f"{ep.name}/{instance.variant}: {exc}")
            endpoints.recount(ep)
        lost += [{"endpoint": ep.name, "variant": i.variant, "subnet": subnet, "eni": eni}
                 for i, subnet, eni, _ in dead]
    return {"zone": zone, "failed_zones": sorted(_FAILED), "lost": lost, "replacing": replacing,
            "errors": errors}


def restore(zone: str) -> dict[str, Any]:
    with _LOCK:
        _FAILED.discard(zone)
    return {"zone": zone, "failed_zones": sorted(_FAILED)}


def _kill(endpoints: Any, ep: Any, zone: str) -> list[tuple[Any, str | None, str | None, list]]:
    """Stop the endpoint's instances in ``zone`` (live, coming up, or in an update's new fleet) and take
    them out of their groups; returns (instance, its former subnet and ENI, the group it was in)."""
    from moto.ec2.models import ec2_backends

    ec2 = ec2_backends[ep.account][ep.region]
    zone_of = {s.id: s.availability_zone for s in ec2.subnets.get(zone, {}).values()}
    dead = []
    groups = [g for fleet in (ep.live, ep.pending) if fleet for g in fleet.instances.values()] + [ep.warming]
    for group in groups:
        for instance in [i for i in group if zone_of.get(i.subnet_id or "") == zone]:
            group.remove(instance)
            instance.proc.kill()
            subnet, eni = instance.subnet_id, instance.eni_id
            endpoints.stop_instances(ep, [instance])
            dead.append((instance, subnet, eni, group))
    for instance in [i for i in ep.retiring if zone_of.get(i.subnet_id or "") == zone]:
        endpoints.lose(ep, instance)
    return dead


def is_zone_call(method: str, path: str) -> bool:
    return _endpoints() is not None and method == "POST" and path.startswith(PREFIX)


async def answer(path: str, read_body: Any) -> tuple[int, list, bytes]:
    import asyncio

    action = path[len(PREFIX):]
    try:
        zone = str(json.loads(await read_body() or b"{}").get("zone") or "")
    except (ValueError, AttributeError):
        zone = ""
    if action not in ("fail", "restore") or not zone:
        return _reply(400, {"message": "POST /_sme/zones/fail or /_sme/zones/restore with {\"zone\": \"us-east-1a\"}"})
    if action == "restore":
        return _reply(200, restore(zone))
    endpoints = _endpoints()
    result = await asyncio.get_running_loop().run_in_executor(None, fail, endpoints, zone)
    return _reply(200, result)


def _reply(status: int, body: dict[str, Any]) -> tuple[int, list, bytes]:
    return status, [("Content-Type", "application/json")], json.dumps(body).encode()
