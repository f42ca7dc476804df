"""The recommend file (``recommend.yaml``): schema, and each candidate checked as the experiment it becomes.

    experiment: sme.yaml           # model, network, tags; its endpoint section is replaced per candidate
    candidates:
      - {instance_type: ml.c5.large}
      - {instance_type: ml.m5.xlarge, environment: {SAGEMAKER_MODEL_SERVER_WORKERS: "4"}}
      - {serverless: {memory_mb: 4096, max_concurrency: 20}}
    load:                          # a load-test file without `target`: each candidate is the target
      payload: {file: rows.csv, content_type: text/csv, split: lines}
      stages: [{steps: {kind: rate, start: 50, step: 50, every: 2m, max: 2000, until_slo_breach: true}}]
    slo: {p99_ms: 100, error_rate: 0.001}
    peak_rps: 1500                 # the traffic to plan for
    parallel: 2                    # candidates deployed at once
    watch: true                    # or {interval: 5s}: a `sme watch` beside each candidate (CPU, memory at the knee)

Everything here is checked before anything is deployed, and every error names this file and the field
(``candidates[2].serverless``, ``load.target``), exit 2. A candidate's experiment is the base experiment with
its ``endpoint:`` replaced by one variant (``count`` instances of the type, or the serverless config), the
candidate's ``environment`` laid over ``model.environment``, and its ``autoscaling:`` dropped: a ladder measures
a fixed fleet. It goes through the same schema and SageMaker rules as `sme deploy` would apply to it.
"""

from __future__ import annotations

import copy
import difflib
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from sme.config import ENVIRONMENT
from sme.endpoint_kinds import SERVERLESS_SCHEMA
from sme.errors import ConfigError
from sme.schema import load_yaml, validate

SWEEP_TAG = "sme-sweep"  # on every candidate's resources (sme: is reserved for sme's own tags in a file)
MAX_CANDIDATES = 20
SCHEMA: dict[str, Any] = {
    "type": "object", "additionalProperties": False,
    "required": ["experiment", "candidates", "load", "slo", "peak_rps"],
    "properties": {
        "experiment": {"type": "string", "minLength": 1, "x-hint": "the path of the base experiment file (sme.yaml)"},
        "candidates": {
            "type": "array", "minItems": 1, "maxItems": MAX_CANDIDATES,
            "items": {"type": "object", "additionalProperties": False,
                      "properties": {"name": {"type": "string", "pattern": r"^[a-z0-9](-?[a-z0-9]){0,23}$",
                                              "x-hint": "a short label: lowercase letters, digits and hyphens"},
                                     "instance_type": {"type": "string", "pattern": r"^ml\.[a-z0-9]+\.[a-z0-9]+$",
                                                       "x-hint": "a SageMaker instance type such as ml.c5.large"},
                                     "count": {"type": "integer", "minimum": 1, "maximum": 100},
                                     "serverless": SERVERLESS_SCHEMA,
                                     "environment": ENVIRONMENT}},
            "x-hint": "a list such as [{instance_type: ml.c5.large}, {serverless: {memory_mb: 4096, "
                      "max_concurrency: 20}}]"},
        "load": {"type": "object", "x-hint": "a load-test file's fields (payload, stages, ...) without target"},
        "slo": {"type": "object", "additionalProperties": False, "required": ["p99_ms"],
                "properties": {"p99_ms": {"type": "number", "exclusiveMinimum": 0},
                               "error_rate": {"type": "number", "minimum": 0, "maximum": 1}},
                "x-hint": "e.g. {p99_ms: 100, error_rate: 0.001}"},
        "peak_rps": {"type": "number", "exclusiveMinimum": 0, "x-hint": "the request rate to plan for, e.g. 1500"},
        "parallel": {"type": "integer", "minimum": 1, "maximum": MAX_CANDIDATES,
                     "x-hint": "how many candidates are deployed at once, e.g. 2"},
        "watch": {"type": ["boolean", "object"], "additionalProperties": False,
                  "properties": {"interval": {"type": "string", "x-hint": "how often it samples, e.g. 60s"}},
                  "x-hint": "true, or {interval: 60s}: a `sme watch` beside each candidate"},
    },
}


@dataclass(frozen=True)
class Candidate:
    index: int
    label: str
    instance_type: str | None  # None: serverless
    count: int
    serverless: dict[str, Any] | None
    environment: dict[str, str]

    @property
    def where(self) -> str:
        return f"candidates[{self.index}]"


@dataclass(frozen=True)
class Recommend:
    source: str
    experiment_path: Path
    base: dict[str, Any]  # the base experiment as written (checked), model_data made absolute
    candidates: tuple[Candidate, ...]
    load: dict[str, Any]  # without target; slo filled in, payload.file made absolute
    slo: dict[str, float]
    peak_rps: float
    parallel: int
    watch_interval: float | None = None  # seconds between a candidate's watch samples; None: no watch


def load(path: str | Path) -> Recommend:
    source = str(path)
    data = load_yaml(path)
    validate(data, SCHEMA, source)
    here = Path(path).parent
    exp_path = _experiment_path(data["experiment"], here, source)
    base = load_yaml(exp_path)
    model = base.get("model") if isinstance(base.get("model"), dict) else {}
    if isinstance(model.get("model_data"), str) and not model["model_data"].startswith("s3:"):
        model["model_data"] = str(Path(model["model_data"]).expanduser().resolve())  # as `sme deploy` reads it
    candidates = tuple(_candidate(i, c, source) for i, c in enumerate(data["candidates"]))
    _unique_labels(candidates, source)
    rec = Recommend(source, exp_path, base, candidates, _load_section(data, here, source), dict(data["slo"]),
                    float(data["peak_rps"]), int(data.get("parallel", 1)), _watch_interval(data.get("watch"), source))
    for c in candidates:
        check_candidate(rec, c, f"{_name_stem(base)}-000000-{c.index + 1}")
    return rec


def _watch_interval(watch: Any, source: str) -> float | None:
    """``watch: true`` samples every minute on AWS (SageMaker publishes its instance metrics per minute) and
    every 5 s against a local AWS (the twin publishes every 5 s by default)."""
    from sme.aws import is_loopback
    from sme.units import parse_duration

    if not watch:
        return None
    if watch is True or "interval" not in watch:
        import os

        return 5.0 if is_loopback(os.environ.get("AWS_ENDPOINT_URL") or "") else 60.0
    try:
        interval = parse_duration(watch["interval"])
    except ValueError as exc:
        raise ConfigError(source, "watch.interval", str(exc), hint="a duration such as 60s or 5m") from None
    if not 1.0 <= interval <= 86400.0:
        raise ConfigError(source, "watch.interval", f"{watch['interval']} is out of range", hint="from 1s to 1d")
    return interval


def _experiment_path(given: str, here: Path, source: str) -> Path:
    p = Path(given).expanduser()
    p = p if p.is_absolute() else here / p
    if not p.is_file():
        raise ConfigError(source, "experiment", f"{p} is not a file",
                          hint="give the path of the base experiment file (sme.yaml), relative to this file")
    return p.resolve()


def _candidate(i: int, c: dict[str, Any], source: str) -> Candidate:
    from sme.instance_types import known, names

    where = f"candidates[{i}]"
    if ("instance_type" in c) == ("serverless" in c):
        raise ConfigError(source, where, "give exactly one of instance_type: or serverless:",
                          hint="e.g. {instance_type: ml.c5.large} or {serverless: {memory_mb: 4096, max_concurrency: 20}}")
    itype = c.get("instance_type")
    if itype and known(itype) is None:
        close = difflib.get_close_matches(itype, names(), n=3)
        raise ConfigError(source, f"{where}.instance_type", f"{itype} is not a SageMaker instance type sme knows",
                          hint=(f"did you mean {' or '.join(close)}? " if close else "") +
                          "the types sme knows are in sme/data/instance_types.json")
    if "serverless" in c and "count" in c:
        raise ConfigError(source, f"{where}.count", "a serverless candidate has no instances",
                          hint="remove count (max_concurrency sets its capacity)")
    env = {str(k): str(v).lower() if isinstance(v, bool) else str(v) for k, v in (c.get("environment") or {}).items()}
    return Candidate(i, c.get("name") or _label(c), itype, int(c.get("count", 1)), c.get("serverless"), env)


def _label(c: dict[str, Any]) -> str:
    if c.get("instance_type"):
        return c["instance_type"].removeprefix("ml.").replace(".", "-")
    s = c["serverless"]
    return f"serverless-{s['memory_mb']}mb-{s['max_concurrency']}"


def _unique_labels(candidates: tuple[Candidate, ...], source: str) -> None:
    seen: dict[str, int] = {}
    for c in candidates:
        if c.label in seen:
            raise ConfigError(source, f"{c.where}.name", f"{c.label!r} is also candidates[{seen[c.label]}]'s name",
                              hint="give the candidates that differ only in environment a `name:` each")
        seen[c.label] = c.index


def _load_section(data: dict[str, Any], here: Path, source: str) -> dict[str, Any]:
    load_ = copy.deepcopy(data["load"])
    if "target" in load_:
        raise ConfigError(source, "load.target", "the sweep sets the target: each candidate is the target in turn",
                          hint="remove target: from load:")
    if "slo" in load_:
        raise ConfigError(source, "load.slo", "the SLO is set once, at the top level",
                          hint="move it to the top-level slo: (p99_ms, error_rate)")
    payload = load_.get("payload")
    if isinstance(payload, dict) and isinstance(payload.get("file"), str):
        f = Path(payload["file"]).expanduser()
        payload["file"] = str(f if f.is_absolute() else (here / f).resolve())
    load_["slo"] = dict(data["slo"])
    check_load(load_, source)
    return load_


def check_load(load_: dict[str, Any], source: str) -> None:
    """The load section as `sme loadtest` will read it, with a placeholder target; errors name ``load.<field>``."""
    import yaml

    from sme.loadtest import config as loadtest_config

    with tempfile.TemporaryDirectory(prefix="sme-recommend-") as tmp:
        probe = Path(tmp) / "load.yaml"
        probe.write_text(yaml.safe_dump({"target": {"endpoint": "candidate"}, **load_}, sort_keys=False))
        try:
            loadtest_config.load(probe)
        except ConfigError as exc:
            raise _moved(exc, source, "load") from None


def experiment_for(rec: Recommend, c: Candidate, name: str, sweep_id: str) -> dict[str, Any]:
    """The candidate's experiment: the base with its endpoint replaced (see the module's docstring)."""
    exp = copy.deepcopy(rec.base)
    exp["name"] = name
    variant: dict[str, Any] = {"name": "AllTraffic"}
    if c.serverless is not None:
        variant["serverless"] = dict(c.serverless)
    else:
        variant.update(instance_type=c.instance_type, count=c.count)
    exp["endpoint"] = {"variants": [variant]}
    exp.pop("autoscaling", None)
    exp.pop("gateway", None)  # a front door per candidate would measure the proxy, not the instance type
    if c.environment and isinstance(exp.get("model"), dict):
        exp["model"]["environment"] = {**(exp["model"].get("environment") or {}), **c.environment}
    exp["tags"] = {**(exp.get("tags") or {}), SWEEP_TAG: sweep_id}
    return exp


def check_candidate(rec: Recommend, c: Candidate, name: str) -> None:
    """The candidate's experiment through `sme deploy`'s checks; an error names the candidate and the field."""
    from sme.config import EXPERIMENT_SCHEMA, build, check_tags

    exp = experiment_for(rec, c, name, "000000")
    label = f"{rec.experiment_path} with {c.where}"
    try:
        validate(exp, EXPERIMENT_SCHEMA, label)
        check_tags(exp.get("tags") or {}, label)
        build(exp, label)
    except ConfigError as exc:
        within = f"{c.where}.serverless" if c.serverless is not None else f"{c.where}.instance_type"
        raise ConfigError(rec.source, within, f"AWS would refuse this candidate: {exc.field or 'the experiment'}: "
                          f"{problem_of(exc)} (in {rec.experiment_path.name} with this endpoint)",
                          hint=exc.hint) from None


def _name_stem(base: dict[str, Any]) -> str:
    name = str(base.get("name") or "sweep")
    return name[:30].rstrip("-") or "sweep"


def candidate_name(rec: Recommend, c: Candidate, sweep_id: str) -> str:
    """The candidate's experiment (and endpoint) name: within sme's 45 characters, unique per sweep."""
    return f"{_name_stem(rec.base)}-{sweep_id}-{c.index + 1}"


def problem_of(exc: ConfigError) -> str:
    """The message without its "file: field: " prefix."""
    where = f"{exc.source}: {exc.field}: " if exc.field else f"{exc.source}: "
    return exc.message[len(where):] if exc.message.startswith(where) else exc.message


def _moved(exc: ConfigError, source: str, prefix: str) -> ConfigError:
    return ConfigError(source, f"{prefix}.{exc.field}" if exc.field else prefix, problem_of(exc), hint=exc.hint)
