"""The endpoint's subnets: free addresses, SageMaker's network interfaces, and the headroom they leave.

Each endpoint instance in a VPC takes one network interface, so one private address, in one of the
endpoint's subnets (SageMaker spreads instances over the subnets' AZs). So:

- an AZ's headroom is the sum of the free addresses (``AvailableIpAddressCount``, which AWS already
  reports net of the 5 addresses it reserves per subnet) of the endpoint's subnets in that AZ;
- the endpoint's headroom is the sum over all its subnets: how many more instances it can take before
  the subnets are exhausted;
- SageMaker updates an endpoint blue/green: the new fleet comes up beside the old one and the old is
  removed only after the new is InService, so an update needs free addresses for the whole new fleet.
  ``blue_green_spare`` = total headroom - desired instances; below zero, the next update (or a
  scale-out during one) cannot place its instances.
"""

from __future__ import annotations

from typing import Any, Iterable


def is_sagemaker_eni(eni: dict[str, Any]) -> bool:
    """An interface SageMaker made: requester-managed by SageMaker, or described as SageMaker's.

    Real endpoint ENIs carry SageMaker in ``RequesterId`` and/or ``Description``; anything else in the
    subnet (Lambda, EC2, VPC endpoints) is someone else's, though it uses addresses all the same.
    """
    text = f"{eni.get('Description') or ''} {eni.get('RequesterId') or ''}".lower()
    return "sagemaker" in text


def subnet_rows(subnets: Iterable[dict[str, Any]], enis: Iterable[dict[str, Any]]) -> list[dict[str, Any]]:
    """DescribeSubnets + DescribeNetworkInterfaces replies -> the sample's ``subnets`` list."""
    counts: dict[str, int] = {}
    for eni in enis:
        if is_sagemaker_eni(eni):
            counts[eni.get("SubnetId", "")] = counts.get(eni.get("SubnetId", ""), 0) + 1
    return [{"id": s["SubnetId"], "az": s["AvailabilityZone"], "free_ips": int(s["AvailableIpAddressCount"]),
             "sagemaker_enis": counts.get(s["SubnetId"], 0)}
            for s in sorted(subnets, key=lambda s: (s["AvailabilityZone"], s["SubnetId"]))]


def headroom(rows: list[dict[str, Any]], desired_instances: int | None) -> dict[str, Any] | None:
    """How many more instances each AZ, and the endpoint, can take (see the module docstring)."""
    if not rows:
        return None
    per_az: dict[str, int] = {}
    for row in rows:
        per_az[row["az"]] = per_az.get(row["az"], 0) + row["free_ips"]
    total = sum(per_az.values())
    spare = total - desired_instances if desired_instances is not None else None
    return {"per_az": per_az, "total": total, "blue_green_spare": spare}
