"""Local mode: SageMaker endpoints in the local AWS are backed by real model runtimes.

Installed as ``sme.local.aws.patches.sagemaker.LIFECYCLE.hooks``:

- CreateEndpoint starts one runtime process per instance; the endpoint is Creating until every
  instance answers /ping (InService), or Failed with the reason when a model can't load;
- UpdateEndpoint brings up the new fleet beside the old (blue/green), then retires the old one; with a
  BlueGreenUpdatePolicy, traffic shifts in steps and the rollback alarms are watched (``guardrails.py``);
- DeleteEndpoint stops every process and frees every address;
- InvokeEndpoint (sagemaker-runtime) goes round-robin to the live instances of a variant (``pick``);
- each instance holds one network interface in a subnet of the model's VpcConfig, spread across AZs.

``metrics.py`` publishes per-variant CloudWatch metrics from what passes through here, and
``scaler.py`` acts on target-tracking policies.
"""

from __future__ import annotations

import itertools
import threading
import time
from dataclasses import dataclass, field
from typing import Any

from sme.local.aws import guardrails
from sme.local.aws.fleet import Addresses, Instance, Launcher
from sme.local.aws.serverless import ServerlessVariant, serverless_config


@dataclass
class Fleet:
    config: str
    instances: dict[str, list[Instance]] = field(default_factory=dict)  # variant -> instances
    serverless: dict[str, dict] = field(default_factory=dict)  # variant -> its ServerlessConfig
    variants: Any = None  # DescribeEndpoint's ProductionVariants of this config (kept while the other fleet shows)
    specs: dict[str, tuple] = field(default_factory=dict)  # variant -> (artifact, environment, image, instance type)

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
    instance_types: dict[str, str] = field(default_factory=dict)  # variant -> its instance type (real-time)
    rr: Any = field(default_factory=itertools.count)
    serverless: dict[str, ServerlessVariant] = field(default_factory=dict)  # the live fleet's serverless variants
    deployment: Any = None  # a guarded update in progress (guardrails.Deployment)
    shift: Any = None  # its traffic split (guardrails.Shift), read by ``pick``
    config_metrics: bool = False  # metrics per fleet (EndpointConfigName) since the first traffic shift
    retiring: list[Instance] = field(default_factory=list)  # out of every fleet, stopping: holding an address


class LocalEndpoints:
    def __init__(self, launcher: Launcher | None = None):
        self.launcher = launcher or Launcher()
        self.endpoints: dict[tuple[str, str, str], LocalEndpoint] = {}
        self.lock = threading.RLock()
        self.observers: list[Any] = []  # called with (endpoint, variant, instance, status, model_us, overhead_us)
        self.alarm_period = 5.0  # the twin's metrics period: one alarm data point (alarms.py)

    # -- lifecycle hooks -----------------------------------------------------------------------
    def on_create(self, backend: Any, endpoint: Any) -> None:
        ep = LocalEndpoint(endpoint.endpoint_name, backend.account_id, backend.region_name)
        with self.lock:
            self.endpoints[(backend.account_id, backend.region_name, ep.name)] = ep
        self._start_fleet(backend, endpoint, ep)

    def on_update(self, backend: Any, endpoint: Any, old_variants: Any = None, deployment_config: Any = None) -> None:
        ep = self._get(backend, endpoint.endpoint_name)
        if ep is None:
            return self.on_create(backend, endpoint)
        with self.lock:  # no describe may settle the new fleet before it is set up below
            new_variants = endpoint.production_variants
            self._start_fleet(backend, endpoint, ep)
            if ep.live is None or old_variants is None:
                return
            ep.live.variants = old_variants
            if ep.pending is not None:
                ep.pending.variants = new_variants
                ep.deployment = guardrails.plan(deployment_config, time.time(), ep.pending.config)
            # as AWS shows it: the old config until the update is done (the new one is PendingDeploymentSummary)
            endpoint.endpoint_config_name, endpoint.production_variants = ep.live.config, old_variants

    def on_delete(self, backend: Any, endpoint: Any) -> None:
        with self.lock:
            ep = self.endpoints.pop((backend.account_id, backend.region_name, endpoint.endpoint_name), None)
        if ep:
            ep.shift = ep.deployment = None
            for fleet in (ep.live, ep.pending):
                if fleet:
                    self._stop(ep, fleet.all())
            self._stop(ep, ep.warming)
            ep.warming = []

    def on_describe(self, backend: Any, endpoint: Any) -> None:
        ep = self._get(backend, endpoint.endpoint_name)
        if ep is None or ep.pending is None:
            return
        shifting = ep.deployment is not None and ep.deployment.phase != "Creating"
        seen = [] if shifting else ep.pending.all()
        states = [i.state() for i in seen]  # pings: before the lock
        with self.lock:  # the fleets change here, in promote and in a zone's failure (zones.py): one at a time
            if ep.pending is None:
                retired = []
            elif shifting:
                retired = self._shifting(backend, endpoint, ep)
            elif ep.deployment is not None and ep.deployment.phase != "Creating":
                # another caller (a DescribeEndpoint beside the control loop) pinged the same fleet and began its
                # shifts meanwhile: beginning again would restart step 1, and its VariantStatus StartTime with
                # it (AWS keeps one StartTime per stage: `sme run` counts stages by it)
                retired = []
            else:
                retired = self._settle(backend, endpoint, ep, seen, states)
            ep.retiring.extend(retired)  # (before the lock goes: a zone that fails now must see them)
        self._stop(ep, retired)  # outside the lock: stopping a fleet takes seconds

    def advance_updates(self) -> None:
        """Move updates on without waiting for a DescribeEndpoint (called by the control loop): traffic shifts and
        baking periods run on the clock, as in AWS."""
        from moto.sagemaker.models import sagemaker_backends

        for ep in self.live_endpoints():
            if ep.pending is not None and ep.deployment is not None:
                backend = sagemaker_backends[ep.account][ep.region]
                endpoint = backend.endpoints.get(ep.name)
                if endpoint is not None:
                    self.on_describe(backend, endpoint)

    def _shifting(self, backend: Any, endpoint: Any, ep: LocalEndpoint) -> list[Instance]:
        """A guarded update's next move: shift, keep baking, finish, or roll back. Returns the instances to stop."""
        outcome, reason = guardrails.advance(ep, time.time(),
                                             guardrails.alarms_in_alarm(ep.account, ep.region, self.alarm_period))
        if outcome == "done":
            return self._finish_update(endpoint, ep)
        if outcome == "rollback":
            assert ep.pending is not None
            retired, ep.pending, ep.shift, ep.deployment = ep.pending.all(), None, None, None
            endpoint.failure_reason, endpoint.endpoint_status = reason, "InService"
            self._back_to(backend, endpoint, ep)
            return retired
        return []

    def _settle(self, backend: Any, endpoint: Any, ep: LocalEndpoint, seen: list[Instance],
                states: list) -> list[Instance]:
        """The update's outcome once its fleet is up or has failed; returns the instances to stop."""
        assert ep.pending is not None
        now = ep.pending.all()
        if len(now) != len(seen) or any(a is not b for a, b in zip(now, seen)):
            return []  # a zone failed while the pings ran: look again at the next describe
        failed = [reason for state, reason in states if state == "failed"]
        if failed:
            retired = ep.pending.all()
            ep.pending = None
            endpoint.failure_reason = failed[0]
            endpoint.endpoint_status = "Failed" if ep.live is None else "InService"
            if ep.live is not None:  # SageMaker rolls a failed update back: InService on the old config
                self._back_to(backend, endpoint, ep)
            return retired
        if not all(state == "ready" for state, _ in states):
            return []
        if ep.deployment is not None and ep.live is not None:  # a guarded update: traffic shifts in steps
            guardrails.begin(ep, time.time())
            return []
        return self._finish_update(endpoint, ep)

    def _finish_update(self, endpoint: Any, ep: LocalEndpoint) -> list[Instance]:
        """The new fleet takes over: InService on its config; returns the old fleet's instances to stop."""
        old, ep.live, ep.pending = ep.live, ep.pending, None
        ep.shift = ep.deployment = None
        assert ep.live is not None
        ep.serverless = self._serverless_variants(ep)
        retired = []
        if old:  # instances still warming up (a scale-out, a lost zone's replacement) were the old fleet's
            retired, ep.warming = old.all() + ep.warming, []
        endpoint.endpoint_config_name = ep.live.config
        if ep.live.variants is not None:
            endpoint.production_variants = ep.live.variants
        endpoint.endpoint_status = "InService"
        for variant in endpoint.production_variants:
            if variant["VariantName"] in ep.serverless:
                continue  # DescribeEndpoint shows a serverless variant's config, never instance counts
            count = len(ep.live.instances.get(variant["VariantName"], []))
            variant["CurrentInstanceCount"] = variant["DesiredInstanceCount"] = count
        return retired

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
        shift = ep.shift  # a guarded update's traffic split: this request may go to the new fleet
        if shift is not None:
            green = shift.pick(variant)
            if green is not None:
                return ep, variant, green
        group = tuple(instances.get(variant) or ())  # the control loop may resize the list meanwhile
        if not group:
            raise LookupError(f"Endpoint {name} has no live instances.")
        return ep, variant, group[n % len(group)]

    def observe(self, ep: LocalEndpoint, variant: str, instance: Instance, status: int, model_us: float,
                overhead_us: float) -> None:
        for observer in self.observers:
            observer(ep, variant, instance, status, model_us, overhead_us)

    def serverless_variant(self, account: str, region: str,
                           name: str) -> tuple[LocalEndpoint, ServerlessVariant] | None:
        """The endpoint and its serverless variant (a serverless endpoint has exactly one), or None: real-time."""
        ep = self.endpoints.get((account, region, name))  # one dict read: atomic, no lock on the hot path
        if ep is None or not ep.serverless:
            return None
        return ep, next(iter(ep.serverless.values()))

    def reap_idle(self) -> None:
        """Stop serverless runtimes that have been idle too long (called by the control loop)."""
        for ep in self.live_endpoints():
            for variant in list(ep.serverless.values()):
                variant.reap()

    def _serverless_variants(self, ep: LocalEndpoint) -> dict[str, ServerlessVariant]:
        live = ep.live
        if live is None:
            return {}
        return {name: ServerlessVariant(config, live.instances.setdefault(name, []),
                                        lambda name=name: self._launch(ep, name),
                                        lambda instances: self._stop(ep, instances))
                for name, config in live.serverless.items()}

    # -- scaling (used by scaler.py) -----------------------------------------------------------
    def resize(self, ep: LocalEndpoint, endpoint: Any, variant: str, count: int,
               busy: frozenset[int] | set[int] = frozenset()) -> bool:
        """Scale a variant: new instances serve once they answer /ping (``promote``), as in AWS. A real-time
        variant keeps one instance; only ``count`` 0 (an asynchronous endpoint scaled to zero by its policy)
        retires the last. Instances whose port is in ``busy`` (processing an asynchronous request) are not
        retired: the scale-in waits for them. False when nothing could change."""
        if ep.live is None:
            return False
        retired: list[Instance] = []
        with self.lock:  # placed and in its group at once: a zone that fails meanwhile (zones.py) finds it
            group = ep.live.instances.setdefault(variant, [])
            warming = [i for i in ep.warming if i.variant == variant]
            before = len(group) + len(warming)
            while len(group) + len(warming) < count:
                instance = self._launch(ep, variant)
                ep.warming.append(instance)
                warming.append(instance)
            while len(group) + len(warming) > count and (len(group) > 1 or count == 0):
                idle = [i for i in group if i.port not in busy]
                if not warming and not idle:
                    break  # each instance left is processing a request: retire one when it is done
                retired.append(warming.pop() if warming else idle[-1])
                if retired[-1] in ep.warming:
                    ep.warming.remove(retired[-1])
                else:
                    group.remove(retired[-1])
            ep.retiring.extend(retired)
        self._stop(ep, retired)  # (outside the lock: an instance takes about a second to stop)
        if len(group) + len(warming) == before and before != count:
            return False
        self._set_counts(endpoint, variant, current=len(group), desired=count)
        return True

    def promote(self, endpoint_of: Any) -> None:
        """Move warmed-up instances into service (called by the control loop)."""
        for ep in self.live_endpoints():
            with self.lock:
                self._promote(ep, endpoint_of)

    def _promote(self, ep: LocalEndpoint, endpoint_of: Any) -> None:
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

    def _back_to(self, backend: Any, endpoint: Any, ep: LocalEndpoint) -> None:
        assert ep.live is not None
        config = backend.endpoint_configs.get(ep.live.config)
        if config is None:
            return
        endpoint.endpoint_config_name = ep.live.config
        endpoint.production_variants = endpoint._process_production_variants(config.production_variants)
        self.recount(ep)

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

    def pending_deployment(self, account: str, region: str, name: str) -> dict[str, Any] | None:
        """DescribeEndpoint's PendingDeploymentSummary (without DeployedImages), or None."""
        ep = self._get_key(account, region, name)
        if ep is None or ep.pending is None:
            return None
        return guardrails.pending_summary(ep, ep.pending.variants)

    def stop_all(self) -> None:
        for ep in self.live_endpoints():
            for fleet in (ep.live, ep.pending):
                if fleet:
                    self._stop(ep, fleet.all())
            self._stop(ep, ep.warming)
        with self.lock:
            self.endpoints.clear()

    # -- a zone's failure (zones.py) ------------------------------------------------------------
    def replace(self, ep: LocalEndpoint, lost: Instance, group: list[Instance]) -> None:
        """A new instance for one that died, placed in a working zone: a live one's replacement serves once
        it answers /ping (``promote``); one of an update's new fleet or still warming joins its group."""
        live = ep.live.instances.get(lost.variant) if ep.live else None
        new_fleet = ep.pending is not None and any(group is g for g in ep.pending.instances.values())
        instance = self._launch(ep, lost.variant, ep.pending if new_fleet else ep.live)
        (ep.warming if group is live else group).append(instance)

    def recount(self, ep: LocalEndpoint) -> None:
        """DescribeEndpoint's CurrentInstanceCount from the instances serving now."""
        from moto.sagemaker.models import sagemaker_backends

        endpoint = sagemaker_backends[ep.account][ep.region].endpoints.get(ep.name)
        if endpoint is not None and ep.live is not None:
            for variant, group in ep.live.instances.items():
                if variant not in ep.serverless:
                    self._set_counts(endpoint, variant, current=len(group))

    def stop_instances(self, ep: LocalEndpoint, instances: list[Instance]) -> None:
        self._stop(ep, instances)

    def lose(self, ep: LocalEndpoint, instance: Instance) -> None:
        """An instance on its way out (``ep.retiring``) that died with its zone: killed, its address released
        now; its stop, under way in another thread, then finds it gone."""
        instance.proc.kill()
        with self.lock:
            Addresses(ep.account, ep.region).detach(instance)

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
                ep.instance_types[variant["VariantName"]] = variant.get("InstanceType") or ""
                url = container.get("ModelDataUrl")  # a TGI/LMI model may have none: it loads HF_MODEL_ID
                ep.artifacts[variant["VariantName"]] = self.launcher.artifact(ep.account, url) if url else None
                serverless = serverless_config(variant)
                if serverless:  # only the provisioned concurrency starts now; requests start the others
                    fleet.serverless[variant["VariantName"]] = serverless
                count = int(serverless.get("ProvisionedConcurrency") or 0) if serverless else \
                    int(variant.get("InitialInstanceCount") or 1)
                fleet.specs[variant["VariantName"]] = self._spec(ep, variant["VariantName"])
                fleet.instances[variant["VariantName"]] = [self._launch(ep, variant["VariantName"], fleet)
                                                           for _ in range(count)]
        except Exception as exc:  # noqa: BLE001 - any failure to start is the endpoint's FailureReason
            self._stop(ep, fleet.all())
            endpoint.endpoint_status = "Failed" if ep.live is None else "InService"
            endpoint.failure_reason = str(exc)
            return
        ep.pending = fleet
        endpoint.endpoint_status = "Creating" if ep.live is None else "Updating"

    @staticmethod
    def _spec(ep: LocalEndpoint, variant: str) -> tuple:
        return (ep.artifacts[variant], ep.model_environment.get(variant, {}), ep.images.get(variant, ""),
                ep.instance_types.get(variant) or None)

    def _launch(self, ep: LocalEndpoint, variant: str, fleet: Fleet | None = None) -> Instance:
        """An instance of the fleet's model (the live fleet's by default: a scale-out or a replacement during an
        update, or after its rollback, runs the old model, not the newest config's)."""
        fleet = fleet or ep.live
        spec = fleet.specs.get(variant) if fleet is not None else None
        artifact, environment, image, instance_type = spec or self._spec(ep, variant)
        instance = self.launcher.start(variant, artifact, environment, image, ep.region, instance_type)
        instance.config = fleet.config if fleet is not None else ""
        try:
            Addresses(ep.account, ep.region).attach(instance, ep.name, ep.subnets, ep.groups)
        except Exception:
            instance.stop()
            raise
        return instance

    def _stop(self, ep: LocalEndpoint, instances: list[Instance]) -> None:
        """Stop instances already out of every fleet and release their addresses. Until then each is in
        ``ep.retiring``: a zone that fails meanwhile kills it and releases its address at once, as AWS's
        lost zone takes every instance in it (zones.py); its stop here then finds it gone."""
        addresses = Addresses(ep.account, ep.region)
        with self.lock:
            ep.retiring.extend(i for i in instances if i not in ep.retiring)
        for instance in instances:  # all asked first: each takes about a second to stop, and they stop together
            instance.signal_stop()
        for instance in instances:
            instance.wait_stopped()
            with self.lock:
                addresses.detach(instance)
                if instance in ep.retiring:
                    ep.retiring.remove(instance)

    def _get(self, backend: Any, name: str) -> LocalEndpoint | None:
        return self._get_key(backend.account_id, backend.region_name, name)

    def _get_key(self, account: str, region: str, name: str) -> LocalEndpoint | None:
        with self.lock:
            return self.endpoints.get((account, region, name))
