"""Local mode: SageMaker endpoints in the local AWS are backed by real model runtimes.

Installed as ``sme.local.aws.patches.sagemaker.LIFECYCLE.hooks``:

- CreateEndpoint starts one runtime process per instance; the endpoint is Creating until every
  instance answers /ping (InService), or Failed with the reason when a model can't load;
- UpdateEndpoint brings up the new fleet beside the old (blue/green), then retires the old one;
- DeleteEndpoint stops every process and frees every address;
- InvokeEndpoint (sagemaker-runtime) goes round-robin to the live instances of a variant (``pick``);
- each instance holds one network interface in a subnet of the model's VpcConfig, spread across AZs.

``metrics.py`` publishes per-variant CloudWatch metrics from what passes through here, and
``scaler.py`` acts on target-tracking policies.
"""

from __future__ import annotations

import itertools
import threading
from dataclasses import dataclass, field
from typing import Any

from sme.local.aws.fleet import Addresses, Instance, Launcher


@dataclass
class Fleet:
    config: str
    instances: dict[str, list[Instance]] = field(default_factory=dict)  # variant -> instances

    def all(self) -> list[Instance]:
        return [i for group in self.instances.values() for i in group]


@dataclass
class LocalEndpoint:
    name: str
    account: str
    region: str
    live: Fleet | None = None
    pending: Fleet | None = None
    warming: list[Instance] = field(default_factory=list)  # scale-out instances not yet answering /ping
    subnets: list[str] = field(default_factory=list)
    groups: list[str] = field(default_factory=list)
    model_environment: dict[str, dict[str, str]] = field(default_factory=dict)
    images: dict[str, str] = field(default_factory=dict)  # variant -> the model's container image
    artifacts: dict[str, Any] = field(default_factory=dict)  # variant -> artifact path
    rr: Any = field(default_factory=itertools.count)


class LocalEndpoints:
    def __init__(self, launcher: Launcher | None = None):
        self.launcher = launcher or Launcher()
        self.endpoints: dict[tuple[str, str, str], LocalEndpoint] = {}
        self.lock = threading.RLock()
        self.observers: list[Any] = []  # called with (endpoint, variant, instance, status, model_us, overhead_us)

    # -- lifecycle hooks -----------------------------------------------------------------------
    def on_create(self, backend: Any, endpoint: Any) -> None:
        ep = LocalEndpoint(endpoint.endpoint_name, backend.account_id, backend.region_name)
        with self.lock:
            self.endpoints[(backend.account_id, backend.region_name, ep.name)] = ep
        self._start_fleet(backend, endpoint, ep)

    def on_update(self, backend: Any, endpoint: Any) -> None:
        ep = self._get(backend, endpoint.endpoint_name)
        if ep is None:
            return self.on_create(backend, endpoint)
        self._start_fleet(backend, endpoint, ep)

    def on_delete(self, backend: Any, endpoint: Any) -> None:
        with self.lock:
            ep = self.endpoints.pop((backend.account_id, backend.region_name, endpoint.endpoint_name), None)
        if ep:
            for fleet in (ep.live, ep.pending):
                if fleet:
                    self._stop(ep, fleet.all())
            self._stop(ep, ep.warming)
            ep.warming = []

    def on_describe(self, backend: Any, endpoint: Any) -> None:
        ep = self._get(backend, endpoint.endpoint_name)
        if ep is None or ep.pending is None:
            return
        states = [i.state() for i in ep.pending.all()]
        failed = [reason for state, reason in states if state == "failed"]
        if failed:
            self._stop(ep, ep.pending.all())
            ep.pending = None
            endpoint.failure_reason = failed[0]
            endpoint.endpoint_status = "Failed" if ep.live is None else "InService"
            return
        if all(state == "ready" for state, _ in states):
            old, ep.live, ep.pending = ep.live, ep.pending, None
            if old:
                self._stop(ep, old.all())
            endpoint.endpoint_status = "InService"
            for variant in endpoint.production_variants:
                count = len(ep.live.instances.get(variant["VariantName"], []))
                variant["CurrentInstanceCount"] = variant["DesiredInstanceCount"] = count

    # -- the data plane (called by the front's InvokeEndpoint, on its event loop) -----------------
    def pick(self, account: str, region: str, name: str,
             target_variant: str | None = None) -> tuple[LocalEndpoint, str, Instance]:
        """The instance for the next request: round-robin over the live variants and their instances.
        Instances still warming up are not in ``live`` yet: they get no traffic until they answer /ping."""
        ep = self.endpoints.get((account, region, name))  # one dict read: atomic, no lock on the hot path
        if ep is None or ep.live is None:
            raise LookupError(f"Endpoint {name} of account {account} not found.")
        instances = ep.live.instances
        variants = [v for v, group in list(instances.items()) if group and (not target_variant or v == target_variant)]
        if not variants:
            raise LookupError(f"Endpoint {name} has no live instances.")
        n = next(ep.rr)
        variant = variants[n % len(variants)]
        group = tuple(instances.get(variant) or ())  # the control loop may resize the list meanwhile
        if not group:
            raise LookupError(f"Endpoint {name} has no live instances.")
        return ep, variant, group[n % len(group)]

    def observe(self, ep: LocalEndpoint, variant: str, instance: Instance, status: int, model_us: float,
                overhead_us: float) -> None:
        for observer in self.observers:
            observer(ep, variant, instance, status, model_us, overhead_us)

    # -- scaling (used by scaler.py) -----------------------------------------------------------
    def resize(self, ep: LocalEndpoint, endpoint: Any, variant: str, count: int) -> None:
        """Scale a variant: new instances serve once they answer /ping (``promote``), as in AWS."""
        if ep.live is None:
            return
        group = ep.live.instances.setdefault(variant, [])
        warming = [i for i in ep.warming if i.variant == variant]
        while len(group) + len(warming) < count:
            instance = self._launch(ep, variant)
            ep.warming.append(instance)
            warming.append(instance)
        while len(group) + len(warming) > count and len(group) > 1:
            retired = warming.pop() if warming else group.pop()
            if retired in ep.warming:
                ep.warming.remove(retired)
            self._stop(ep, [retired])
        self._set_counts(endpoint, variant, current=len(group), desired=count)

    def promote(self, endpoint_of: Any) -> None:
        """Move warmed-up instances into service (called by the control loop)."""
        for ep in self.live_endpoints():
            for instance in list(ep.warming):
                state, _ = instance.state()
                if state == "starting" or ep.live is None:
                    continue
                ep.warming.remove(instance)
                if state == "failed":
                    self._stop(ep, [instance])
                else:
                    ep.live.instances.setdefault(instance.variant, []).append(instance)
                endpoint = endpoint_of(ep)
                if endpoint is not None:
                    group = ep.live.instances.get(instance.variant, [])
                    self._set_counts(endpoint, instance.variant, current=len(group))

    @staticmethod
    def _set_counts(endpoint: Any, variant: str, current: int, desired: int | None = None) -> None:
        for v in endpoint.production_variants:
            if v["VariantName"] == variant:
                v["CurrentInstanceCount"] = current
                if desired is not None:
                    v["DesiredInstanceCount"] = desired

    def live_endpoints(self) -> list[LocalEndpoint]:
        with self.lock:
            return list(self.endpoints.values())

    def stop_all(self) -> None:
        for ep in self.live_endpoints():
            for fleet in (ep.live, ep.pending):
                if fleet:
                    self._stop(ep, fleet.all())
            self._stop(ep, ep.warming)
        with self.lock:
            self.endpoints.clear()

    # -- internals -----------------------------------------------------------------------------
    def _start_fleet(self, backend: Any, endpoint: Any, ep: LocalEndpoint) -> None:
        config = backend.endpoint_configs[endpoint.endpoint_config_name]
        fleet = Fleet(endpoint.endpoint_config_name)
        try:
            for variant in config.production_variants:
                model = backend.describe_model(variant["ModelName"])
                container = model.primary_container or {}
                vpc = model.vpc_config or {}
                ep.subnets = list(vpc.get("Subnets", []))
                ep.groups = list(vpc.get("SecurityGroupIds", []))
                ep.model_environment[variant["VariantName"]] = dict(container.get("Environment") or {})
                ep.images[variant["VariantName"]] = container.get("Image", "")
                ep.artifacts[variant["VariantName"]] = self.launcher.artifact(ep.account, container["ModelDataUrl"])
                count = int(variant.get("InitialInstanceCount") or 1)
                fleet.instances[variant["VariantName"]] = [self._launch(ep, variant["VariantName"]) for _ in range(count)]
        except Exception as exc:  # noqa: BLE001 - any failure to start is the endpoint's FailureReason
            self._stop(ep, fleet.all())
            endpoint.endpoint_status = "Failed" if ep.live is None else "InService"
            endpoint.failure_reason = str(exc)
            return
        ep.pending = fleet
        endpoint.endpoint_status = "Creating" if ep.live is None else "Updating"

    def _launch(self, ep: LocalEndpoint, variant: str) -> Instance:
        instance = self.launcher.start(variant, ep.artifacts[variant], ep.model_environment.get(variant, {}),
                                       ep.images.get(variant, ""), ep.region)
        try:
            Addresses(ep.account, ep.region).attach(instance, ep.name, ep.subnets, ep.groups)
        except Exception:
            instance.stop()
            raise
        return instance

    def _stop(self, ep: LocalEndpoint, instances: list[Instance]) -> None:
        addresses = Addresses(ep.account, ep.region)
        for instance in instances:
            instance.stop()
            addresses.detach(instance)

    def _get(self, backend: Any, name: str) -> LocalEndpoint | None:
        return self._get_key(backend.account_id, backend.region_name, name)

    def _get_key(self, account: str, region: str, name: str) -> LocalEndpoint | None:
        with self.lock:
            return self.endpoints.get((account, region, name))
