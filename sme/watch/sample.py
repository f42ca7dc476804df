"""One sample: the endpoint, its CloudWatch series, scaling activities and subnets, in a fixed set of calls.

Per sample: one DescribeEndpoint, one GetMetricData (more only past 500 series), one DescribeSubnets
and one DescribeNetworkInterfaces (when the endpoint has subnets), and one DescribeScalingActivities
(when a variant is registered with Application Auto Scaling), whatever the number of metrics. Each part
fails alone: its error goes into the sample's ``errors`` and the other parts are still recorded.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Callable

from sme.core.names import scaling_resource_id
from sme.watch import metrics as cw
from sme.watch.network import headroom, subnet_rows
from sme.watch.retry import CallFailed, Retrier


@dataclass
class Target:
    """What is watched, resolved once before the first sample."""

    endpoint: str
    variants: tuple[str, ...]
    subnets: tuple[str, ...] = ()
    scaling: bool = False  # some variant is an Application Auto Scaling target


@dataclass
class Sampler:
    clients: Callable[[str], Any]  # service name -> boto3 client
    target: Target
    specs: tuple[cw.MetricSpec, ...]
    interval: float
    retrier: Retrier
    wall: Callable[[], float]
    events_since: float  # scaling activities that started before this are history, not events
    seen_events: set[str] = field(default_factory=set)
    expired: CallFailed | None = None  # set when credentials expired: waiting will not fix it
    _last_status: str | None = None

    def take(self, slot: int, due: float, deadline: float) -> dict[str, Any]:
        started = self.wall()
        period = cw.period_for(self.interval)
        record: dict[str, Any] = {
            "slot": slot, "due": due, "time": started, "missed": False, "interval": self.interval,
            "endpoint": self.target.endpoint, "status": None, "variants": [], "metrics": {},
            "window": [due - period, due], "subnets": [], "headroom": None, "events": [], "errors": []}
        for part in (self._endpoint, self._metrics, self._subnets, self._scaling):
            try:
                part(record, deadline)
            except CallFailed as failed:
                record["errors"].append(failed.to_json())
                if failed.expired_credentials:
                    self.expired = failed
        record["took_s"] = round(self.wall() - started, 3)
        return record

    def _call(self, service: str, op: str, deadline: float, **kwargs: Any) -> Any:
        client = self.clients(service)
        method = getattr(client, _snake(op))
        return self.retrier.call(op, lambda: method(**kwargs), deadline)

    # -- parts -------------------------------------------------------------------------------------
    def _endpoint(self, record: dict[str, Any], deadline: float) -> None:
        reply = self._call("sagemaker", "DescribeEndpoint", deadline, EndpointName=self.target.endpoint)
        status = reply.get("EndpointStatus")
        record["status"] = status
        record["variants"] = [{"name": v["VariantName"], "current_instances": v.get("CurrentInstanceCount"),
                               "desired_instances": v.get("DesiredInstanceCount")}
                              for v in reply.get("ProductionVariants") or []]
        if record["variants"]:
            self.target.variants = tuple(v["name"] for v in record["variants"])
        if self._last_status is not None and status != self._last_status:
            record["events"].append({"time": self.wall(), "kind": "status", "variant": None,
                                     "message": f"endpoint {self._last_status} -> {status}"})
        self._last_status = status

    def _metrics(self, record: dict[str, Any], deadline: float) -> None:
        series = cw.series_for(self.target.variants, self.specs)
        if not series:
            return
        start, end = record["window"]
        record["metrics"] = cw.fetch(
            lambda kw: self._call("cloudwatch", "GetMetricData", deadline, **kw),
            self.target.endpoint, series, start, end, cw.period_for(self.interval))

    def _subnets(self, record: dict[str, Any], deadline: float) -> None:
        if not self.target.subnets:
            return
        ids = list(self.target.subnets)
        subnets = self._call("ec2", "DescribeSubnets", deadline, SubnetIds=ids)["Subnets"]
        enis: list[dict[str, Any]] = []
        kwargs: dict[str, Any] = {"Filters": [{"Name": "subnet-id", "Values": ids}]}
        while True:
            reply = self._call("ec2", "DescribeNetworkInterfaces", deadline, **kwargs)
            enis += reply.get("NetworkInterfaces", [])
            if not reply.get("NextToken"):
                break
            kwargs["NextToken"] = reply["NextToken"]
        record["subnets"] = subnet_rows(subnets, enis)
        desired = sum(v.get("desired_instances") or 0 for v in record["variants"]) if record["variants"] else None
        record["headroom"] = headroom(record["subnets"], desired)

    def _scaling(self, record: dict[str, Any], deadline: float) -> None:
        if not self.target.scaling:
            return
        prefix = scaling_resource_id(self.target.endpoint, "")
        kwargs: dict[str, Any] = {"ServiceNamespace": "sagemaker"}
        if len(self.target.variants) == 1:
            kwargs["ResourceId"] = prefix + self.target.variants[0]
        fresh: list[dict[str, Any]] = []
        while True:
            reply = self._call("application-autoscaling", "DescribeScalingActivities", deadline, **kwargs)
            page = [a for a in reply.get("ScalingActivities", []) if a.get("ResourceId", "").startswith(prefix)]
            new = [a for a in page if _epoch(a.get("StartTime")) >= self.events_since
                   and a.get("ActivityId") not in self.seen_events]
            fresh += new
            # newest first: a page that reaches back before the cutoff ends the search
            if not reply.get("NextToken") or any(_epoch(a.get("StartTime")) < self.events_since for a in page):
                break
            kwargs["NextToken"] = reply["NextToken"]
        for a in sorted(fresh, key=lambda a: _epoch(a.get("StartTime"))):
            self.seen_events.add(a["ActivityId"])
            record["events"].append({
                "time": _epoch(a.get("StartTime")), "kind": "scaling", "id": a["ActivityId"],
                "variant": a["ResourceId"][len(prefix):], "status": a.get("StatusCode"),
                "message": a.get("Description") or a.get("Cause") or ""})


def _epoch(value: Any) -> float:
    if value is None:
        return 0.0
    if hasattr(value, "timestamp"):
        return float(value.timestamp())
    return float(value)


def _snake(op: str) -> str:
    import re

    return re.sub(r"(?<!^)(?=[A-Z])", "_", op).lower()
