"""`sme watch`: sample an endpoint, its metrics and its subnets on a fixed schedule, into a JSON-lines file.

    flags --WatchOptions.check--> one clear error before anything runs       (interval, duration, files)
    AWS --resolve_target--> Target                                           (endpoint, variants, subnets from
                                                                               the model's VpcConfig, scaling?,
                                                                               front door from the state file)
    Schedule --Scheduler.run--> slot k due at start + k*interval             (sme/watch/schedule.py: drift-free,
                                                                               missed slots written as missed)
    slot --Sampler.take--> record                                            (sme/watch/sample.py: a fixed set of
                                                                               calls, retried inside the slot)
    record --SampleWriter--> one flushed line  --LiveView--> table/alerts    (sme/watch/sink.py, live.py)
    file --export_csv--> one column per series                               (--to-csv)

Which metrics and statistics are read is data (``sme.watch.metrics.METRICS``); what headroom means is in
``sme.watch.network``. The file format is in docs/formats.md; ``--resume`` continues a file's schedule
from its next slot, so a killed watcher loses no slot and duplicates none.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from sme.console import Env
from sme.errors import ExitStatus, SmeError, UserError

MIN_INTERVAL = 1.0
MAX_INTERVAL = 86400.0
DEFAULT_INTERVAL = 60.0
RESOLVE_BUDGET = 30.0  # seconds for the calls that check the target before the first sample


@dataclass
class WatchOptions:
    endpoint: str
    experiment: str | None = None  # whose state file may name a front door (default: the endpoint's name)
    region: str | None = None
    profile: str | None = None
    subnets: tuple[str, ...] = ()
    interval: float | None = None  # None: 60 s, or the resumed file's
    duration: float | None = None
    once: bool = False
    out: Path | None = None
    resume: bool = False
    as_json: bool = False
    metrics: tuple[str, ...] = ()
    p99: bool = False
    alert_headroom: int = 10
    to_csv: Path | None = None

    def check(self) -> None:
        """Every flag problem, before the first call to AWS."""
        interval = self.interval if self.interval is not None else DEFAULT_INTERVAL
        if not MIN_INTERVAL <= interval <= MAX_INTERVAL:
            raise UserError(f"--interval {interval:g}s is out of range",
                            hint="use an interval from 1s to 1d, e.g. --interval 15m")
        if self.duration is not None and not self.once and self.duration < interval:
            raise UserError(f"--duration {self.duration:g}s is shorter than the interval ({interval:g}s)",
                            hint="give a duration of at least one interval, or use --once")
        if self.resume and self.once:
            raise UserError("--once and --resume do not go together",
                            hint="--resume continues a timed watch; use --once alone for one sample")
        if self.resume and self.out is None:
            raise UserError("--resume needs the file to continue", hint="pass --out FILE")
        if self.alert_headroom < 0:
            raise UserError("--alert-headroom cannot be negative")


def run_watch(opts: WatchOptions, env: Env) -> int:
    from sme.watch.metrics import parse_metric_specs
    from sme.watch.sink import SampleWriter, check_writable

    opts.check()
    specs = parse_metric_specs(opts.metrics, opts.p99)
    if opts.to_csv:
        check_writable(opts.to_csv, "--to-csv")
    writer = SampleWriter(opts.out, env.stdout if opts.as_json else None)
    resumed = writer.open(opts.resume)  # checks --out can be written: before any call to AWS
    try:
        status = _watch(opts, env, writer, resumed, specs)
    except BaseException:
        _finish(opts, env, writer, failing=True)
        raise
    _finish(opts, env, writer, failing=False)
    return status


def _watch(opts: WatchOptions, env: Env, writer: Any, resumed: Any, specs: Any) -> int:
    from sme.aws import AwsContext
    from sme.watch.retry import Retrier
    from sme.watch.sample import Sampler
    from sme.watch.schedule import Schedule

    interval = _interval(opts, resumed)
    aws = AwsContext.from_settings(profile=opts.profile, region=opts.region, max_attempts=1)
    retrier = Retrier(clock=env.clock, sleep=env.sleep)
    target = resolve_target(aws, opts, retrier, env)
    if target.serverless and not opts.metrics:  # what a serverless endpoint publishes, not an instance's
        from sme.watch.metrics import serverless_specs

        specs = serverless_specs(specs, bool(target.serverless.get("ProvisionedConcurrency")))
    start = resumed.start if resumed else env.wall()
    schedule = Schedule(start, interval, 0 if opts.once else Schedule.last_slot_for(opts.duration, interval))
    first = resumed.next_slot if resumed else 0
    if resumed and schedule.last_slot is not None and first > schedule.last_slot:
        env.info(f"{opts.out}: every slot of this watch is already recorded ({resumed.records} lines)")
        return ExitStatus.OK
    sampler = Sampler(aws.client, target, specs, interval, retrier, env.wall,
                      events_since=start - interval, seen_events=set(resumed.event_ids) if resumed else set(),
                      front_door_p99=opts.p99)
    if not opts.as_json:
        door = f" and its front door {target.front_door.api_name}" if target.front_door else ""
        env.info(f"watching {target.endpoint}{door} in {aws.region} every {interval:g}s"
                 + (f" for {opts.duration:g}s" if opts.duration and not opts.once else "")
                 + (f", resuming at slot {first}" if resumed else "")
                 + (f" -> {opts.out}" if opts.out else ""))
    return _sample_until_done(opts, env, schedule, first, sampler, writer)


def _finish(opts: WatchOptions, env: Env, writer: Any, failing: bool) -> None:
    """Close the file and write the CSV of what it holds (also when the watch failed: a CSV that cannot be
    written then is a note, not a second error over the first)."""
    from sme.watch.sink import export_csv

    writer.close()
    if not (opts.to_csv and opts.out and opts.out.exists()):
        return
    try:
        rows = export_csv(opts.out, opts.to_csv)
    except SmeError as exc:
        if not failing:
            raise
        env.info(f"note: {exc.render()}")
        return
    env.info(f"wrote {opts.to_csv} ({rows} rows)")


def _sample_until_done(opts: WatchOptions, env: Env, schedule: Any, first: int, sampler: Any, writer: Any) -> int:
    """Run the schedule: write and show each record; Ctrl-C (or SIGTERM) ends it with the file valid."""
    from sme.watch.live import LiveView
    from sme.watch.schedule import Scheduler

    written = 0
    with LiveView(env, opts.alert_headroom, quiet=opts.as_json and opts.out is None) as view:
        def emit(record: dict[str, Any]) -> None:
            nonlocal written
            record = {**record, "endpoint": sampler.target.endpoint}
            writer.write(record)
            written += 1
            view.sample(record)
            if sampler.expired is not None:  # written first: the file keeps the sample that found out
                raise _expired(sampler.expired, opts)

        try:
            Scheduler(schedule, env.clock, env.wall, env.sleep, on_wait=view.waiting).run(
                first, sampler.take, emit, once=opts.once)
        except KeyboardInterrupt:
            env.info(f"stopped after {written} sample(s)"
                     + (f"; {opts.out} is complete up to the last line: add --resume to continue it"
                        if opts.out else ""))
            # without --duration, Ctrl-C is how a watch ends; with one, it was cut short
            return ExitStatus.INTERRUPTED if opts.duration and not opts.once else ExitStatus.OK
    return ExitStatus.OK


def _interval(opts: WatchOptions, resumed: Any) -> float:
    if resumed is None:
        return opts.interval if opts.interval is not None else DEFAULT_INTERVAL
    if opts.interval is not None and abs(opts.interval - resumed.interval) > 1e-9:
        raise UserError(f"{opts.out} was written every {resumed.interval:g}s, not every {opts.interval:g}s",
                        hint="resume with the same --interval (or leave it out), or choose another --out")
    if resumed.endpoint and resumed.endpoint != opts.endpoint:
        raise UserError(f"{opts.out} watches endpoint {resumed.endpoint!r}, not {opts.endpoint!r}",
                        hint="choose another --out")
    return resumed.interval


def _expired(failed: Any, opts: WatchOptions) -> SmeError:
    where = f"{opts.out} holds every sample so far; " if opts.out else ""
    return SmeError(f"AWS credentials expired ({failed.code} on {failed.operation})",
                    hint=f"{where}refresh them (e.g. `aws sso login`) and run the same command"
                         + (" with --resume" if opts.out else ""))


def resolve_target(aws: Any, opts: WatchOptions, retrier: Any, env: Env) -> Any:
    """Check the endpoint and subnets exist and find what to watch; raises UserError if not."""
    from sme.aws import is_not_found, no_credentials
    from sme.errors import AwsError
    from sme.watch.retry import CallFailed
    from sme.watch.sample import Target

    aws.session  # noqa: B018 - the region (or a clear error) before any call
    deadline = env.clock() + RESOLVE_BUDGET

    def call(service: str, op: str, fn_name: str, **kwargs: Any) -> Any:
        method = getattr(aws.client(service), fn_name)
        try:
            return retrier.call(op, lambda: method(**kwargs), deadline)
        except CallFailed as failed:
            if failed.code == "NoCredentials":
                raise no_credentials() from None
            if failed.expired_credentials:
                raise UserError(f"AWS credentials expired ({failed.code})",
                                hint="refresh them (e.g. `aws sso login`) or export valid AWS_* variables") from None
            raise AwsError(op, kwargs.get("EndpointName") or "the endpoint's resources", failed.message,
                           failed.code) from None

    try:
        endpoint = call("sagemaker", "DescribeEndpoint", "describe_endpoint", EndpointName=opts.endpoint)
    except AwsError as exc:
        if _not_found(exc):
            raise UserError(f"endpoint {opts.endpoint!r} does not exist in {aws.region}",
                            hint="check --endpoint/--name and --region (`sme status --name NAME` shows it)") from None
        raise
    variants = tuple(v["VariantName"] for v in endpoint.get("ProductionVariants") or [])
    subnets = tuple(opts.subnets) or _model_subnets(call, endpoint)
    if subnets:
        try:
            call("ec2", "DescribeSubnets", "describe_subnets", SubnetIds=list(subnets))
        except AwsError as exc:
            if "InvalidSubnet" in exc.code or is_not_found(exc.__cause__ or exc):
                raise UserError(f"unknown subnet: {exc.message.split(': ', 1)[-1]}",
                                hint=f"give subnets of the endpoint's VPC in {aws.region} with --subnet") from None
            raise
    serverless = next((v["CurrentServerlessConfig"] for v in endpoint.get("ProductionVariants") or []
                       if v.get("CurrentServerlessConfig")), None)
    return Target(opts.endpoint, variants, subnets, _has_scaling(call, opts.endpoint, variants, env),
                  front_door(opts.experiment or opts.endpoint), serverless)


def front_door(experiment: str) -> Any:
    """The experiment's API Gateway and Lambda proxy when its state file records a front door (sme names
    them after the experiment); None otherwise, or when there is no readable state file here."""
    from sme.core import names
    from sme.state import load_state
    from sme.watch.metrics import FrontDoor

    try:
        state = load_state(experiment)
    except UserError:
        return None
    if not state.outputs.get("gateway_url"):
        return None
    return FrontDoor(names.gateway_api_name(experiment), names.gateway_function_name(experiment))


def _not_found(exc: Any) -> bool:
    text = exc.message.lower()
    return exc.code in ("ValidationException", "ResourceNotFound") and (
        "could not find" in text or "not found" in text or "does not exist" in text)


def _model_subnets(call: Any, endpoint: dict[str, Any]) -> tuple[str, ...]:
    """The subnets of the models behind the endpoint's current config (VpcConfig), in order."""
    config = call("sagemaker", "DescribeEndpointConfig", "describe_endpoint_config",
                  EndpointConfigName=endpoint["EndpointConfigName"])
    found: dict[str, None] = {}
    for variant in config.get("ProductionVariants") or []:
        if not variant.get("ModelName"):
            continue
        model = call("sagemaker", "DescribeModel", "describe_model", ModelName=variant["ModelName"])
        for subnet in (model.get("VpcConfig") or {}).get("Subnets") or []:
            found[subnet] = None
    return tuple(found)


def _has_scaling(call: Any, endpoint: str, variants: tuple[str, ...], env: Env) -> bool:
    from sme.errors import AwsError

    from sme.core.names import scaling_resource_id

    ids = [scaling_resource_id(endpoint, v) for v in variants]
    if not ids:
        return False
    try:
        reply = call("application-autoscaling", "DescribeScalableTargets", "describe_scalable_targets",
                     ServiceNamespace="sagemaker", ResourceIds=ids)
    except AwsError as exc:
        env.info(f"note: scaling activities will not be watched ({exc.render()})")
        return False
    return bool(reply.get("ScalableTargets"))
