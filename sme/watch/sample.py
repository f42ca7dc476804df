"""One sample: the endpoint, its CloudWatch series, scaling activities and subnets, in a fixed set of calls.

Per sample: one DescribeEndpoint, one GetMetricData (more only past 500 series; the front door's series
ride in the same call), one DescribeSubnets and one DescribeNetworkInterfaces (when the endpoint has
subnets), and one DescribeScalingActivities (when a variant is registered with Application Auto Scaling),
whatever the number of metrics; plus one DescribeEndpointConfig whenever the endpoint's config changes
(the first sample included), for its variants' instance types, which price the run in `sme report`. Each
part fails alone: its error goes into the sample's ``errors`` and the other parts are still recorded.
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
    front_door: cw.FrontDoor | None = None  # the experiment's API Gateway and Lambda proxy, if it has them
    serverless: dict | None = None  # the serverless variant's ServerlessConfig, for a serverless endpoint
    asynchronous: bool = False  # its endpoint config has an AsyncInferenceConfig (learnt from DescribeEndpointConfig)


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
    front_door_p99: bool = False
    _last_status: str | None = None
    _instance_types: tuple[str, dict[str, str]] | None = None  # (endpoint config, {variant: instance type})

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
        config = self.target.serverless
        if config and len(record["variants"]) == 1:  # (serverless: one variant) its memory prices the run
            record["variants"][0]["serverless"] = {"memory_mb": config.get("MemorySizeInMB"),
                                                   "max_concurrency": config.get("MaxConcurrency"),
                                                   "provisioned_concurrency": config.get("ProvisionedConcurrency", 0)}
        if self._last_status is not None and status != self._last_status:
            record["events"].append({"time": self.wall(), "kind": "status", "variant": None,
                                     "message": f"endpoint {self._last_status} -> {status}"})
        self._last_status = status
        config = reply.get("EndpointConfigName")
        if config:
            record["endpoint_config"] = config
            types = self._types_of(config, deadline)
            for v in record["variants"]:
                if types.get(v["name"]):
                    v["instance_type"] = types[v["name"]]

    def _types_of(self, config: str, deadline: float) -> dict[str, str]:
        """The instance type of each variant of an endpoint config: read once per config (a serverless
        variant has none)."""
        if self._instance_types is None or self._instance_types[0] != config:
            reply = self._call("sagemaker", "DescribeEndpointConfig", deadline, EndpointConfigName=config)
            types = {v["VariantName"]: v["InstanceType"] for v in reply.get("ProductionVariants") or []
                     if v.get("InstanceType")}
            self.target.asynchronous = bool(reply.get("AsyncInferenceConfig"))
            self._instance_types = (config, types)
        return self._instance_types[1]

    def _metrics(self, record: dict[str, Any], deadline: float) -> None:
        door = self.target.front_door
        series = (cw.series_for(self.target.variants, self.specs) + cw.front_door_series(door, self.front_door_p99)
                  + cw.async_series(self.target.endpoint, self.target.asynchronous))
        if not series:
            return
        start, end = record["window"]
        values = cw.fetch(lambda kw: self._call("cloudwatch", "GetMetricData", deadline, **kw),
                          self.target.endpoint, series, start, end, cw.period_for(self.interval))
        if door is not None:
            record["front_door"] = {"api_name": door.api_name, "function_name": door.function_name,
                                    "metrics": values.pop(cw.FRONT_DOOR, {})}
        if self.target.asynchronous:
            record["async_queue"] = {"metrics": values.pop(cw.ASYNC_QUEUE, {})}
        record["metrics"] = values

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
