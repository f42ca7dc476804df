"""The run file (``run.yaml``): which experiment, which load, how often to watch, what happens when.

    experiment: sme.yaml
    load: loadtest.yaml
    watch: {interval: 15m}         # default: 1m
    events:                        # at a time since the load started
      - {at: 30m, deploy: sme-v2.yaml}          # a guarded update under load
      - {at: 60m, scale: {min: 4}}              # change the autoscaling floor (and/or ceiling)
      - {at: 80m, fail_zone: eu-west-1a}        # the local twin only: the zone's instances die
    teardown: true                 # default true; false keeps the endpoint

Every problem is found here, before anything is deployed, and named by file and field (exit 2): a
missing file, an unknown event, an event at or after the load's end, a ``fail_zone`` when sme would talk
to AWS itself, a ``scale`` when the experiment in effect at that time has no ``autoscaling:``. Paths are
relative to the run file.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from sme.errors import ConfigError
from sme.schema import load_yaml, validate

EVENT_KINDS = ("deploy", "scale", "fail_zone")
DEFAULT_INTERVAL = 60.0
DURATION = {"type": ["string", "number"], "x-hint": "a duration such as 30s, 15m or 1h30m"}
FILE = {"type": "string", "minLength": 1, "x-hint": "the path of a file, relative to the run file"}
ZONE = {"type": "string", "pattern": r"^[a-z]{2}(-[a-z]+)+-\d[a-z]$",
        "x-hint": "an availability zone such as eu-west-1a"}
SCALE = {"type": "object", "additionalProperties": False, "minProperties": 1,
         "properties": {"min": {"type": "integer", "minimum": 1, "maximum": 1000},
                        "max": {"type": "integer", "minimum": 1, "maximum": 1000}},
         "x-hint": "the new floor and/or ceiling, e.g. {min: 4} or {min: 2, max: 8}"}
RUN_SCHEMA: dict[str, Any] = {
    "type": "object", "additionalProperties": False, "required": ["experiment", "load"],
    "properties": {
        "experiment": {**FILE, "description": "the experiment file to deploy, e.g. experiment: sme.yaml"},
        "load": {**FILE, "description": "the load-test file to run, e.g. load: loadtest.yaml"},
        "watch": {"type": "object", "additionalProperties": False, "properties": {"interval": DURATION}},
        "events": {"type": "array", "maxItems": 100, "items": {"type": "object"}},
        "teardown": {"type": "boolean"},
    },
}
EVENT_SCHEMA: dict[str, Any] = {
    "type": "object", "additionalProperties": False, "required": ["at"],
    "properties": {"at": DURATION, "deploy": FILE, "scale": SCALE, "fail_zone": ZONE},
}


@dataclass(frozen=True)
class Event:
    number: int  # 1-based, in the file's order
    at: float  # seconds since the load started
    kind: str  # deploy | scale | fail_zone
    field: str  # where it is written, e.g. events[0]
    deploy: Any = None  # the new Experiment (deploy)
    scale: tuple[tuple[str, int], ...] = ()  # (min|max, value) (scale)
    zone: str = ""  # (fail_zone)
    scaling: tuple[int, int] | None = None  # (min, max) the autoscaling will have after this event (scale)

    @property
    def what(self) -> str:
        if self.kind == "deploy":
            return f"deploy {Path(self.deploy.source).name}"
        if self.kind == "scale":
            return "scale " + ", ".join(f"{k} {v}" for k, v in self.scale)
        return f"fail_zone {self.zone}"


@dataclass(frozen=True)
class RunFile:
    source: str
    experiment: Any  # sme.config.Experiment
    load_path: Path
    load: Any  # sme.loadtest.config.LoadTest
    interval: float
    events: tuple[Event, ...]
    teardown: bool = True
    twin_url: str | None = None  # AWS_ENDPOINT_URL when it is a local twin on loopback


def load_run_file(path: str | Path, environ: dict[str, str] | None = None) -> RunFile:
    """The checked run file; raises ConfigError (exit 2) naming the file and field of the first problem."""
    import os

    source = str(path)
    data = load_yaml(path)
    validate(data, RUN_SCHEMA, source)
    base = Path(path).parent
    experiment = _experiment(base, data["experiment"], source, "experiment")
    load_path = _file(base, data["load"], source, "load")
    load = _load(load_path)
    _check_target(load, experiment, source)
    interval = _duration(data.get("watch", {}).get("interval", DEFAULT_INTERVAL), source, "watch.interval")
    if not 1.0 <= interval <= 86400.0:
        raise ConfigError(source, "watch.interval", f"{interval:g}s is out of range", hint="use 1s to 1d, e.g. 15m")
    endpoint_url = (environ if environ is not None else os.environ).get("AWS_ENDPOINT_URL") or ""
    twin = endpoint_url if endpoint_url and _loopback(endpoint_url) else None
    events = _events(data.get("events") or [], base, source, experiment, load.duration, twin)
    return RunFile(source, experiment, load_path, load, interval, events, bool(data.get("teardown", True)), twin)


def _events(raw: list[Any], base: Path, source: str, experiment: Any, load_s: float,
            twin: str | None) -> tuple[Event, ...]:
    out: list[Event] = []
    for i, item in enumerate(raw):
        where = f"events[{i}]"
        kinds = [k for k in item if k != "at"]
        unknown = [k for k in kinds if k not in EVENT_KINDS]
        if unknown or len(kinds) != 1:
            problem = (f"unknown event {unknown[0]!r}" if unknown else
                       "names no event" if not kinds else f"names {len(kinds)} events ({', '.join(kinds)})")
            raise ConfigError(source, f"{where}.{unknown[0]}" if unknown else where, problem,
                              hint="one of deploy: FILE, scale: {min: N, max: M} or fail_zone: ZONE per event, "
                                   "each with at: TIME")
        _validate_event(item, source, where)
        at = _duration(item["at"], source, f"{where}.at")
        if at >= load_s:
            raise ConfigError(source, f"{where}.at", f"{_show(at)} is not before the load ends "
                              f"({_show(load_s)} after it starts)", hint="fire events while the load runs, or "
                              "lengthen the load's stages")
        out.append(_event(i, kinds[0], item, at, base, source, where, experiment, twin))
    ordered = sorted(out, key=lambda e: e.at)
    return tuple(_with_scaling(ordered, experiment, source))


def _validate_event(item: dict[str, Any], source: str, where: str) -> None:
    try:
        validate(item, EVENT_SCHEMA, source)
    except ConfigError as exc:  # the schema sees the event alone: put it back in its place in the file
        field = f"{where}.{exc.field}" if exc.field else where
        raise ConfigError(source, field, exc.message.split(": ", 2)[-1], hint=exc.hint) from None


def _event(i: int, kind: str, item: dict[str, Any], at: float, base: Path, source: str, where: str,
           experiment: Any, twin: str | None) -> Event:
    if kind == "deploy":
        new = _experiment(base, item["deploy"], source, f"{where}.deploy")
        if new.name != experiment.name:
            raise ConfigError(source, f"{where}.deploy", f"{new.source} deploys experiment {new.name!r}, not "
                              f"{experiment.name!r}: an update under load changes the same endpoint",
                              hint=f"set `name: {experiment.name}` in {new.source}")
        return Event(i + 1, at, kind, where, deploy=new)
    if kind == "scale":
        return Event(i + 1, at, kind, where, scale=tuple(sorted(item["scale"].items(), reverse=True)))
    if twin is None:
        raise ConfigError(source, f"{where}.fail_zone", "only the local twin can fail a zone, and this run "
                          "would go to AWS (AWS_ENDPOINT_URL is not a local twin)",
                          hint="start `sme local start` and export what it prints, or remove the event "
                               "(on AWS, AWS Fault Injection Service can disrupt a zone)")
    if not experiment.network.subnets:
        raise ConfigError(source, f"{where}.fail_zone", f"{experiment.source} places the endpoint in no subnets, "
                          "so no instance is in any zone", hint="add network.subnets in several zones")
    return Event(i + 1, at, kind, where, zone=item["fail_zone"])


def _with_scaling(events: list[Event], experiment: Any, source: str) -> list[Event]:
    """Each scale event checked against the autoscaling in effect at its time (the latest deploy's)."""
    current = experiment
    floor_ceiling = _bounds(experiment)
    out = []
    for ev in events:
        if ev.kind == "deploy":
            current, floor_ceiling = ev.deploy, _bounds(ev.deploy)
        elif ev.kind == "scale":
            if floor_ceiling is None:
                raise ConfigError(source, f"{ev.field}.scale", f"the endpoint has no autoscaling at "
                                  f"{_show(ev.at)} ({current.source} has no `autoscaling:` section)",
                                  hint="add autoscaling: {min: 1, max: 4} to the experiment, or remove the event")
            change = dict(ev.scale)
            floor_ceiling = (change.get("min", floor_ceiling[0]), change.get("max", floor_ceiling[1]))
            if floor_ceiling[0] > floor_ceiling[1]:
                raise ConfigError(source, f"{ev.field}.scale", f"min {floor_ceiling[0]} would be above max "
                                  f"{floor_ceiling[1]}", hint="raise max in the same event, e.g. {min: 4, max: 8}")
            ev = Event(ev.number, ev.at, ev.kind, ev.field, scale=ev.scale, scaling=floor_ceiling)
        out.append(ev)
    return out


def _bounds(experiment: Any) -> tuple[int, int] | None:
    section = experiment.autoscaling
    if not section:
        return None
    return int(section.get("min", 1)), int(section["max"])


def _file(base: Path, value: str, source: str, field: str) -> Path:
    path = base / value
    if not path.is_file():
        raise ConfigError(source, field, f"{path}: no such file" if not path.exists() else f"{path} is not a file",
                          hint=f"give the path of the {field.split('.')[-1]} file, relative to {source}")
    return path


def _experiment(base: Path, value: str, source: str, field: str) -> Any:
    from sme.config import Overrides, load_experiment

    return load_experiment(str(_file(base, value, source, field)), Overrides())


def _load(path: Path) -> Any:
    from sme.loadtest import config as cfg

    return cfg.load(path)


def _check_target(load: Any, experiment: Any, source: str) -> None:
    target = load.target
    if target.kind != "url" and target.name != experiment.name:
        raise ConfigError(load.source, f"target.{target.kind}", f"names {target.name!r}, but {source} deploys "
                          f"{experiment.name!r}", hint=f"set target: {{{target.kind}: {experiment.name}}}")


def _duration(value: Any, source: str, field: str) -> float:
    from sme.units import parse_duration

    try:
        return parse_duration(value)
    except ValueError as exc:
        raise ConfigError(source, field, str(exc), hint="a duration such as 30s, 15m or 1h30m") from None


def _loopback(url: str) -> bool:
    from sme.aws import is_loopback

    return is_loopback(url)


def _show(seconds: float) -> str:
    from sme.units import format_duration

    return format_duration(seconds)

