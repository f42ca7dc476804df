"""The load-test file (``loadtest.yaml``): schema, checks that need arithmetic, and the inert result.

Every error names the file and the field, and is raised before any load is sent. Resolving the target
(deploy state, credentials) is separate: see :mod:`sme.loadtest.targets`.

Limits that keep one machine honest (checked here, before anything starts):
- at most ``MAX_USERS_PER_PROCESS`` users (or open-model requests in flight) per load process: Locust
  starts a greenlet per user, and past a few thousand one process spends its core on scheduling them,
  so the latencies it reports are its own; add ``processes:`` (or machines with --master/--worker);
- at most ``MAX_STAGES`` stages once step ladders are expanded;
- request bodies of at most 6 MB for ``endpoint:`` and ``gateway:`` targets (SageMaker's real-time
  InvokeEndpoint limit; the front door's Lambda proxy takes 6 MB too) and ``MAX_URL_BODY`` for ``url:``
  targets; every load process holds every body in memory.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from sme.errors import ConfigError
from sme.schema import load_yaml, validate

DURATION = {"type": ["string", "number"], "x-hint": "a duration such as 30s, 10m or 1h30m"}
POSITIVE = {"type": "number", "exclusiveMinimum": 0}
MAX_USERS_PER_PROCESS = 5000
MAX_STAGES = 1000
TOKENS = {"type": "object", "additionalProperties": False, "required": ["mean"],
          "properties": {"mean": {"type": "number", "minimum": 1, "maximum": 1000000},
                         "stddev": {"type": "number", "minimum": 0}},
          "x-hint": "{mean: N, stddev: M} tokens"}
STREAM_SLO = ("ttft_p50_ms", "ttft_p90_ms", "ttft_p99_ms", "itl_p50_ms", "itl_p90_ms", "itl_p99_ms",
              "min_output_tokens_per_s")  # SLO keys that read a streamed answer's tokens
MAX_BODY = {"endpoint": 6291456, "gateway": 6291456, "url": 32 << 20}  # bytes; InvokeEndpoint's Body max
# a header's name is an HTTP token; its value has no control characters (CR/LF would end the header)
HEADER_NAME = r"^[!#$%&'*+.^_`|~0-9A-Za-z-]+$"
HEADER_VALUE = r"^[^\x00-\x08\x0a-\x1f\x7f]*$"
NAME = {"type": "string", "pattern": r"^[a-zA-Z0-9](-?[a-zA-Z0-9]){0,44}$",
        "x-hint": "the experiment name used with `sme deploy`"}
STEPS = {
    "type": "object", "additionalProperties": False, "required": ["kind", "start", "step", "every"],
    "properties": {
        "kind": {"enum": ["rate", "users"], "x-hint": "`rate` (requests/s, open model) or `users`"},
        "start": POSITIVE, "step": POSITIVE,
        "every": DURATION,
        "count": {"type": "integer", "minimum": 1}, "max": POSITIVE,
        "spawn_rate": POSITIVE,
        "until_slo_breach": {"type": "boolean"},
    },
}
STAGE = {
    "type": "object", "additionalProperties": False,
    "properties": {
        "duration": DURATION,
        "users": {"type": "integer", "minimum": 0},
        "spawn_rate": {"type": "number", "exclusiveMinimum": 0},
        "rate": {"type": "number", "minimum": 0, "x-hint": "requests per second, 0 or more"},
        "ramp": DURATION,
        "steps": STEPS,
    },
}
SCHEMA: dict[str, Any] = {
    "type": "object", "additionalProperties": False, "required": ["target", "payload", "stages"],
    "properties": {
        "target": {
            "type": "object", "additionalProperties": False,
            "x-hint": "one of `endpoint: NAME`, `gateway: NAME` or `url: http://...`",
            "properties": {
                "endpoint": NAME, "gateway": NAME,
                "url": {"type": "string", "pattern": r"^https?://[^\s/?#]+[^\s]*$",
                        "x-hint": "an http:// or https:// URL, without spaces"},
                "region": {"type": "string", "pattern": r"^[a-z]{2}(-[a-z]+)+-\d$"},
                "method": {"enum": ["POST", "PUT", "GET"]},
                "headers": {"type": "object",
                            "propertyNames": {"pattern": HEADER_NAME,
                                              "x-hint": "a header name: letters, digits and - (e.g. X-Trace-Id)"},
                            "additionalProperties": {"type": "string", "pattern": HEADER_VALUE,
                                                     "x-hint": "a header value on one line: no CR, LF or "
                                                               "other control characters"}},
                "timeout": DURATION,
                "insecure": {"type": "boolean"},
                "stream": {"enum": [True, False, "sse"],
                           "x-hint": "true (InvokeEndpointWithResponseStream for `endpoint:`; server-sent events "
                                     "for `url:`) or sse"},
            },
        },
        "payload": {
            "type": "object", "additionalProperties": False,
            "properties": {
                "file": {"type": "string", "minLength": 1},
                "body": {"type": "string"},
                "json": {},
                "content_type": {"type": "string", "minLength": 1, "pattern": HEADER_VALUE,
                                 "x-hint": "a media type on one line, e.g. text/csv"},
                "split": {"enum": ["none", "lines", "csv", "jsonl"],
                          "x-hint": "none (the whole file is one body), lines, csv (rows) or jsonl"},
                "header": {"type": "boolean"},
                "order": {"enum": ["round_robin", "random"]},
                "prompts": {
                    "type": "object", "additionalProperties": False, "required": ["input_tokens"],
                    "x-hint": "e.g. {input_tokens: {mean: 512, stddev: 64}, output_tokens: {mean: 128}}",
                    "properties": {"input_tokens": TOKENS, "output_tokens": TOKENS,
                                   "count": {"type": "integer", "minimum": 1, "maximum": 100000}},
                },
                "template": {"enum": ["tgi", "openai"],
                             "x-hint": "tgi (TGI and LMI: inputs + parameters) or openai (chat completions)"},
            },
        },
        "stages": {"type": "array", "minItems": 1, "items": STAGE},
        "slo": {
            "type": "object", "additionalProperties": False,
            "properties": {k: POSITIVE for k in ("p50_ms", "p90_ms", "p95_ms", "p99_ms", "p999_ms", "max_ms",
                                                 "min_rps", *STREAM_SLO)}
            | {"error_rate": {"type": "number", "minimum": 0, "maximum": 1},
               "dropped_rate": {"type": "number", "minimum": 0, "maximum": 1}},
        },
        "processes": {"type": "integer", "minimum": 1, "maximum": 256},
        "open_model": {
            "type": "object", "additionalProperties": False,
            "properties": {"max_in_flight": {"type": "integer", "minimum": 1}, "grace": DURATION},
        },
        "stop_timeout": DURATION,
    },
}


@dataclass(frozen=True)
class Target:
    kind: str  # url | endpoint | gateway
    name: str  # the URL, or the experiment name
    region: str | None = None
    method: str = "POST"
    headers: dict[str, str] = field(default_factory=dict)
    timeout: float = 60.0
    insecure: bool = False
    stream: bool = False  # read the answer as a stream of token events (see sme.loadtest.streaming)


@dataclass(frozen=True)
class Payload:
    content_type: str
    bodies: tuple[bytes, ...]
    order: str = "round_robin"
    source: str = ""


@dataclass(frozen=True)
class Stage:
    """One stage as written; a step ladder is expanded later into one Stage per step."""

    duration: float
    users: int | None = None
    spawn_rate: float | None = None
    rate: float | None = None
    ramp: float = 0.0
    kind: str = "users"  # users | rate | step
    until_slo_breach: bool = False

    @property
    def open(self) -> bool:
        return self.rate is not None


@dataclass(frozen=True)
class LoadTest:
    source: str
    target: Target
    payload: Payload
    stages: tuple[Stage, ...]
    slo: dict[str, float] = field(default_factory=dict)
    processes: int = 1
    max_in_flight: int | None = None
    grace: float = 1.0
    stop_timeout: float = 30.0

    @property
    def open(self) -> bool:
        return self.stages[0].open

    @property
    def duration(self) -> float:
        return sum(s.duration for s in self.stages)


def load(path: str | Path, machines: int | None = 1) -> LoadTest:
    """The checked load test. ``machines`` run its load processes (a master's workers); None skips the
    per-process user limit (a worker: its master decides how many users it gets)."""
    source = str(path)
    data = load_yaml(path)
    validate(data, SCHEMA, source)
    base = Path(path).parent
    stages = tuple(_stages(data["stages"], source))
    if len(stages) > MAX_STAGES:
        raise ConfigError(source, "stages", f"{len(stages)} stages (with ladders expanded) are more than the "
                          f"{MAX_STAGES} sme runs", hint="use fewer, longer stages or larger ladder steps")
    _check_models(stages, source)
    grace = _duration(data.get("open_model", {}).get("grace", 1), source, "open_model.grace")
    target = _target(data["target"], source)
    _check_stream_slo(target, dict(data.get("slo", {})), source)
    lt = LoadTest(
        source=source,
        target=target,
        payload=_payload(data["payload"], base, source, MAX_BODY[target.kind], target.stream),
        stages=stages,
        slo=dict(data.get("slo", {})),
        processes=int(data.get("processes", 1)),
        max_in_flight=data.get("open_model", {}).get("max_in_flight"),
        grace=grace,
        stop_timeout=_duration(data.get("stop_timeout", 30), source, "stop_timeout"),
    )
    if machines is not None:
        _check_users(lt, data["stages"], machines)
    return lt


def _check_users(lt: LoadTest, raw: list[dict[str, Any]], machines: int) -> None:
    """Users (closed model) or requests in flight (open model) within what the load processes can start."""
    limit = MAX_USERS_PER_PROCESS * lt.processes * machines
    hint = (f"one load process starts at most {MAX_USERS_PER_PROCESS:,}: raise `processes:` (up to the "
            "machine's cores) or run workers on more machines (--master/--worker)")
    if lt.max_in_flight is not None and lt.max_in_flight > limit:
        raise ConfigError(lt.source, "open_model.max_in_flight",
                          f"{lt.max_in_flight:,} requests in flight is more than {limit:,}", hint=hint)
    for i, (stage, written) in enumerate(_written(lt.stages, raw)):
        if (stage.users or 0) > limit:
            where = f"stages[{i}]" + (".steps" if "steps" in written else ".users")
            raise ConfigError(lt.source, where, f"{stage.users:,} users is more than {limit:,}", hint=hint)


def _written(stages: tuple[Stage, ...], raw: list[dict[str, Any]]) -> list[tuple[Stage, dict[str, Any]]]:
    """Each written stage with the expanded stage of its peak load (a ladder's last step)."""
    out, k = [], 0
    for written in raw:
        n = int(_ladder_count(written["steps"])) if "steps" in written else 1
        out.append((max(stages[k:k + n], key=lambda s: s.users or 0), written))
        k += n
    return out


def _duration(value: Any, source: str, where: str) -> float:
    from sme.units import parse_duration

    try:
        return parse_duration(value)
    except ValueError as exc:
        raise ConfigError(source, where, str(exc), hint="a duration such as 30s, 10m or 1h30m") from None


def _target(t: dict[str, Any], source: str) -> Target:
    kinds = [k for k in ("endpoint", "gateway", "url") if k in t]
    if len(kinds) != 1:
        problem = "is missing its kind" if not kinds else f"has {' and '.join(kinds)}; give exactly one"
        raise ConfigError(source, "target", problem,
                          hint="one of `endpoint: NAME`, `gateway: NAME` or `url: http://...`")
    kind = kinds[0]
    if kind != "endpoint" and "region" in t:
        raise ConfigError(source, "target.region", f"only applies to `endpoint:` targets, not `{kind}:`")
    timeout = _duration(t.get("timeout", 60), source, "target.timeout")
    stream = bool(t.get("stream", False))
    if stream and kind == "gateway":
        raise ConfigError(source, "target.stream", "the front door's Lambda proxy answers whole responses, "
                          "not streams", hint=f"stream straight from the endpoint: `target: {{endpoint: {t[kind]}, "
                          "stream: true}`")
    return Target(kind, str(t[kind]), t.get("region"), t.get("method", "POST"), dict(t.get("headers", {})),
                  timeout, bool(t.get("insecure", False)), stream)


def _check_stream_slo(target: Target, slo: dict[str, Any], source: str) -> None:
    keys = [k for k in STREAM_SLO if k in slo]
    if keys and not target.stream:
        raise ConfigError(source, f"slo.{keys[0]}", "reads streamed tokens, but the target does not stream",
                          hint="add `stream: true` to `target:` (a model server that streams its answer), or "
                               "drop the key")


def _payload(p: dict[str, Any], base: Path, source: str, max_body: int, stream: bool = False) -> Payload:
    from sme.loadtest.payloads import read_bodies

    given = [k for k in ("file", "body", "json", "prompts") if k in p]
    if len(given) != 1:
        raise ConfigError(source, "payload", "give exactly one of `file:`, `body:`, `json:` or `prompts:`",
                          hint="e.g. payload: {file: rows.csv, content_type: text/csv, split: lines}")
    if "template" in p and "prompts" not in p:
        raise ConfigError(source, "payload.template", "only applies to generated `prompts:`",
                          hint="drop `template:`, or generate the bodies with `prompts:`")
    default_type = "application/json" if given[0] in ("json", "prompts") else "text/csv"
    content_type = p.get("content_type", default_type)
    bodies = read_bodies(p, base, source, max_body, stream)
    return Payload(content_type, tuple(bodies), p.get("order", "round_robin"), str(p.get("file", given[0])))


def _stages(raw: list[dict[str, Any]], source: str) -> list[Stage]:
    out: list[Stage] = []
    prev_users, prev_rate = 0, 0.0
    for i, s in enumerate(raw):
        where = f"stages[{i}]"
        if "steps" in s:
            extra = set(s) - {"steps"}
            if extra:
                raise ConfigError(source, f"{where}.{sorted(extra)[0]}", "a step ladder takes only `steps:`")
            ladder = _ladder(s["steps"], source, where)
            out.extend(ladder)
            prev_users, prev_rate = ladder[-1].users or 0, ladder[-1].rate or 0.0
            continue
        if "duration" not in s:
            raise ConfigError(source, f"{where}.duration", "is required", hint="e.g. duration: 10m")
        duration = _duration(s["duration"], source, f"{where}.duration")
        if duration <= 0:
            raise ConfigError(source, f"{where}.duration", "must be longer than 0s")
        if ("users" in s) == ("rate" in s):
            raise ConfigError(source, where, "give either `users:` (closed model) or `rate:` (open model)",
                              hint="e.g. {duration: 5m, users: 50} or {duration: 5m, rate: 300}")
        if "users" in s:
            if "ramp" in s:
                raise ConfigError(source, f"{where}.ramp", "applies to `rate:` stages; use spawn_rate for users")
            users = int(s["users"])
            spawn_rate = float(s.get("spawn_rate", max(users, 1)))
            ramp = abs(users - prev_users) / spawn_rate
            if ramp > duration:
                raise ConfigError(source, f"{where}.spawn_rate",
                                  f"going from {prev_users} to {users} users at {spawn_rate:g}/s takes "
                                  f"{ramp:g}s, longer than the stage's {duration:g}s",
                                  hint=f"raise spawn_rate to at least {abs(users - prev_users) / duration:.3g} "
                                  "or lengthen the stage")
            out.append(Stage(duration, users=users, spawn_rate=spawn_rate, kind="users"))
            prev_users = users
        else:
            if "spawn_rate" in s:
                raise ConfigError(source, f"{where}.spawn_rate", "applies to `users:` stages; use ramp for rate")
            ramp = _duration(s.get("ramp", 0), source, f"{where}.ramp")
            if ramp > duration:
                raise ConfigError(source, f"{where}.ramp", f"the ramp ({ramp:g}s) is longer than the stage "
                                  f"({duration:g}s)", hint="shorten the ramp or lengthen the stage")
            out.append(Stage(duration, rate=float(s["rate"]), ramp=ramp, kind="rate"))
            prev_rate = float(s["rate"])
    del prev_rate
    return out


def _ladder(st: dict[str, Any], source: str, where: str) -> list[Stage]:
    every = _duration(st["every"], source, f"{where}.steps.every")
    if every <= 0:
        raise ConfigError(source, f"{where}.steps.every", "must be longer than 0s")
    count = _ladder_count(st)
    if count < 1:
        raise ConfigError(source, f"{where}.steps.max", "is below `start`")
    if count > MAX_STAGES:
        given = "count" if "count" in st else "max"
        raise ConfigError(source, f"{where}.steps.{given}", f"makes a ladder of {count:,.0f} steps, more than "
                          f"the {MAX_STAGES} sme runs", hint="take larger steps or fewer of them")
    count = int(count)
    until = bool(st.get("until_slo_breach", False))
    steps = []
    for k in range(count):
        level = float(st["start"]) + k * float(st["step"])
        if st["kind"] == "rate":
            steps.append(Stage(every, rate=level, kind="step", until_slo_breach=until))
        else:
            users = int(round(level))
            spawn = float(st.get("spawn_rate", max(users, 1)))
            step_users = users if k == 0 else int(round(float(st["step"])))
            if step_users / spawn > every:
                raise ConfigError(source, f"{where}.steps.spawn_rate",
                                  f"adding {step_users} users at {spawn:g}/s takes longer than a step ({every:g}s)")
            steps.append(Stage(every, users=users, spawn_rate=spawn, kind="step", until_slo_breach=until))
    return steps


def _ladder_count(st: dict[str, Any]) -> float:
    """How many steps a ladder has (a float: start, step and max can make it astronomically many)."""
    if "count" in st:
        return float(st["count"])
    if "max" in st:
        return (float(st["max"]) - float(st["start"])) // float(st["step"]) + 1
    return 20.0


def _check_models(stages: tuple[Stage, ...], source: str) -> None:
    first = stages[0].open
    for i, s in enumerate(stages):
        if s.open != first:
            raise ConfigError(source, f"stages[{i}]", "mixes `users:` (closed model) and `rate:` (open model) "
                              "stages", hint="use one model for the whole test")
