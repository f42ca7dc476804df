"""`sme report DIR`: read the run, price its instances, write ``DIR/report.html``, say what it holds."""

from __future__ import annotations

import os
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterable

from sme.errors import UserError
from sme.report import page, timeline
from sme.report.pricing import Price, Pricer
from sme.report.rundir import Run, load_run
from sme.report.summary import headline

INSTANCE_TYPE = re.compile(r"^ml\.[a-z0-9-]+\.[a-z0-9]+$")


@dataclass(frozen=True)
class ReportOptions:
    directory: Path
    out: Path | None = None
    watch_file: Path | None = None
    instance_types: tuple[str, ...] = ()  # TYPE (every variant) or VARIANT=TYPE
    region: str | None = None
    use_pricing_api: bool = True


def run_report(opts: ReportOptions, env: Any, pricer: Pricer | None = None, serverless_pricer: Any = None) -> int:
    run = load_run(opts.directory, opts.watch_file)
    notes = list(run.notes)
    from sme.loadtest.limits import notices
    from sme.report.kind_section import kind_cost, page_parts
    from sme.report.serverless_prices import ServerlessPricer

    notes += notices(run.summary or {})  # a laptop's limit must not read as the model's
    prices = price_variants(run, opts, pricer or Pricer(use_api=opts.use_pricing_api), notes)
    kc = kind_cost(run, region_of(run, opts.region)[0],
                   serverless_pricer or ServerlessPricer(use_api=opts.use_pricing_api))
    notes += kc.notes
    h = headline(run, prices)
    if kc.setup is not None:  # a serverless variant has no instances to price: kind_section costs it
        h.costs = [c for c in h.costs if c.variant != kc.setup.variant]
    tl = timeline.build(run)
    inputs = [p.name for p in (run.directory / "summary.json", run.directory / "timeseries.csv")
              if p.exists()] + ([str(run.watch_path)] if run.watch_path else [])
    sources: dict[str, Any] = {"directory": run.directory, "inputs": inputs}
    from sme.run import marks

    found = marks.read(run)  # `sme run`'s events (its run.json), marked on the time axis with verdicts
    if found is not None:
        tl.markers = marks.merge(tl.markers, found)
        tl.end_s = max([tl.end_s] + [m.at_s for m in tl.markers])
        sources["run_events"] = marks.section(found)
        inputs.append(marks.RUN_LOG)
    html = page.render(h, tl, notes, sources, page_parts(kc, run.summary))
    out = opts.out or run.directory / "report.html"
    from sme.state import write_atomic

    try:
        write_atomic(out, html, mode=0o644)
    except OSError as exc:
        raise UserError(f"cannot write {out}: {exc.strerror or exc}", hint="pass --out to a writable path") from None
    for note in notes:
        say(env, f"note: {note}")
    say(env, f"wrote {out} ({len(tl.charts)} chart(s){_cost_line(h) if kc.kind != 'serverless' else _kind_line(kc)})")
    return 0


def say(env: Any, message: str) -> None:
    """One message on stderr, unwrapped (a path cut across two lines cannot be pasted)."""
    env.err.print(message, markup=False, highlight=False, soft_wrap=True)


def _cost_line(h: Any) -> str:
    if h.cost_usd is None:
        return ""
    sources = sorted({c.price.source.split(" (")[0] for c in h.costs if c.price})
    return f"; run cost {page.money(h.cost_usd)} from {', '.join(sources)}"


def _kind_line(kc: Any) -> str:
    from sme.report.kind_section import money

    return f"; run cost {money(kc.usd)} (serverless) from {kc.source.split(' (')[0]}"


def parse_instance_types(values: Iterable[str]) -> tuple[str | None, dict[str, str]]:
    """``--instance-type`` values -> (type for every variant, {variant: type})."""
    default, per_variant = None, {}
    for value in values:
        variant, sep, itype = value.rpartition("=")
        if not INSTANCE_TYPE.fullmatch(itype):
            raise UserError(f"--instance-type {value!r}: {itype!r} is not a SageMaker instance type",
                            hint="give e.g. ml.m5.large, or VARIANT=ml.m5.large for one variant")
        if sep:
            per_variant[variant] = itype
        else:
            default = itype
    return default, per_variant


def instance_types(run: Run, flags: Iterable[str]) -> dict[str, str | None]:
    """Each watched variant's instance type: the flag for it, else the flag for all, else what `sme watch`
    recorded (the type in the endpoint config the endpoint ran on, read at each config change)."""
    default, per_variant = parse_instance_types(flags)
    return {name: per_variant.get(name) or default or (found[0] if found else None)
            for name, found in recorded_types(run).items()}


def recorded_types(run: Run) -> dict[str, list[str]]:
    """Per watched variant, the instance types its samples recorded, in order of first appearance."""
    seen: dict[str, list[str]] = {}
    for rec in run.samples:
        for v in rec.get("variants") or []:
            name, itype = v.get("name"), v.get("instance_type")
            if not name:
                continue
            types = seen.setdefault(name, [])
            if isinstance(itype, str) and itype not in types:
                types.append(itype)
    return seen


def region_of(run: Run, flag: str | None) -> tuple[str, str]:
    """The endpoint's region, and how it was found (for the output)."""
    if flag:
        return flag, "--region"
    for rec in run.samples:
        for s in rec.get("subnets") or []:
            az = str(s.get("az") or "")
            if re.fullmatch(r"[a-z]{2}(-[a-z]+)+-\d[a-z]", az):
                return az[:-1], f"subnet {s.get('id')} is in {az}"
    for var in ("AWS_REGION", "AWS_DEFAULT_REGION"):
        if os.environ.get(var):
            return os.environ[var], var
    return "us-east-1", "no region known (pass --region); assumed us-east-1"


def price_variants(run: Run, opts: ReportOptions, pricer: Pricer, notes: list[str]) -> dict[str, Price | None]:
    types = instance_types(run, opts.instance_types)
    if not types:
        return {}
    region, how = region_of(run, opts.region)
    from sme.report.kind_usage import endpoint_kind, serverless_setup
    from sme.report.pricing import ASYNC_INF, HOST

    usage = ASYNC_INF if endpoint_kind(run) == "async" else HOST  # the Price List bills async hosting apart
    prices: dict[str, Price | None] = {}
    for variant, itype in types.items():
        prices[variant] = pricer.price(itype, region, usage) if itype else None

    setup = serverless_setup(run)  # a serverless variant has no instance type: it is priced by kind_section
    unknown = [v for v, t in types.items() if not t and not (setup and setup.variant == v)]
    if unknown:
        notes.append(f"instance type of {', '.join(unknown)} unknown: cost not computed (the watch file does "
                     "not record it: a serverless variant, an older sme, or DescribeEndpointConfig failed; "
                     "pass --instance-type ml.m5.large, or VARIANT=TYPE per variant)")
    default, per_variant = parse_instance_types(opts.instance_types)
    for variant, found in recorded_types(run).items():
        if len(found) > 1 and not (default or variant in per_variant):
            notes.append(f"{variant} ran on {' then '.join(found)} during the watch: all of its instance-minutes "
                         f"are priced as {found[0]} (pass --instance-type {variant}=TYPE to choose)")
    if any(p is not None for p in prices.values()):
        if how.startswith("no region"):
            notes.append(how)
        for p in {p for p in prices.values() if p is not None and p.note}:
            notes.append(f"price of {p.instance_type} in {p.region}: {p.source}; {p.note}")
    return prices
