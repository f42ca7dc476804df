"""The report's parts that depend on the endpoint's kind: a serverless run's cost in its own dimensions,
an asynchronous run's minutes at zero instances, a streaming run's token numbers. Pure but for the rates
(the ``ServerlessPricer`` passed in)."""

from __future__ import annotations

from dataclasses import dataclass, field
from html import escape
from typing import Any

from sme.report import kind_usage, page
from sme.report.kind_cost import CostLine, provisioned_per_hour, serverless_cost, total
from sme.report.rundir import Run


@dataclass
class KindCost:
    kind: str  # serverless | async | instances
    lines: list[CostLine] = field(default_factory=list)
    usd: float | None = None
    source: str = ""
    compute_from: str = ""
    setup: kind_usage.ServerlessSetup | None = None
    provisioned_usd_per_hour: float | None = None
    minutes_at_zero: dict[str, float] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)


def kind_cost(run: Run, region: str, serverless_pricer: Any) -> KindCost:
    kind = kind_usage.endpoint_kind(run)
    out = KindCost(kind)
    if kind == "async" and run.samples:
        out.minutes_at_zero = kind_usage.async_spans(run.samples).minutes_at_zero
    if kind != "serverless":
        return out
    setup = kind_usage.serverless_setup(run)
    assert setup is not None
    measured = kind_usage.serverless_usage(run, setup)
    rates = serverless_pricer.rates(region, setup.memory_mb)
    out.setup, out.source, out.compute_from = setup, rates.source, measured.compute_from
    out.lines = serverless_cost(measured.usage, rates)
    if not measured.data_measured:
        out.lines = [line for line in out.lines if not line.dimension.startswith("data processed")]
        out.notes.append("serverless data processed is not in the cost: this run's summary.json has no byte "
                         "counts (`bytes`, from a newer `sme loadtest`)")
    out.usd = total(out.lines)
    if setup.provisioned_concurrency:
        out.provisioned_usd_per_hour = provisioned_per_hour(setup.memory_mb, setup.provisioned_concurrency, rates)
    missing = [line.dimension for line in out.lines if line.usd is None]
    if missing:
        out.notes.append(f"no rate for serverless {', '.join(missing)} in {region} ({rates.source}): the run's "
                         "cost is unknown, not guessed")
    return out


def money(usd: float | None) -> str:
    """Dollars; a serverless run costs fractions of a cent, so small sums keep six decimals."""
    if usd is None or usd >= 0.1:
        return page.money(usd)
    return f"${usd:.6f}"


def cost_html(kc: KindCost) -> str:
    if kc.kind == "serverless" and kc.setup is not None:
        s = kc.setup
        rows = [[line.dimension, f"{line.quantity:,.6g}", line.unit, money(line.usd)] for line in kc.lines]
        rows.append(["total", "", "", money(kc.usd)])
        pc = (f" Provisioned concurrency {s.provisioned_concurrency} x {s.memory_mb} MB costs "
              f"{money(kc.provisioned_usd_per_hour)} per hour, requests aside." if s.provisioned_concurrency else "")
        return (f"<h2>Cost (serverless, {s.memory_mb} MB)</h2>" + page._table(["dimension", "quantity", "unit", "USD"], rows, {1, 3})
                + f"<p class=\"meta\">Compute from {escape(kc.compute_from)}; settings from {escape(s.source)}; "
                  f"rates from {escape(kc.source)}.{escape(pc)}</p>")
    if kc.kind == "async" and kc.minutes_at_zero:
        parts = ", ".join(f"{v}: {m:,.1f} min" for v, m in kc.minutes_at_zero.items())
        return ("<p class=\"meta\">Asynchronous endpoint: the minutes at zero instances cost nothing and add no "
                f"instance-minutes ({escape(parts)}).</p>")
    return ""


def page_parts(kc: KindCost, summary: dict[str, Any] | None) -> dict[str, Any]:
    """What ``page.render`` adds for the endpoint's kind (its ``kind`` argument)."""
    parts: dict[str, Any] = {"cards": stream_cards(summary), "section": cost_html(kc)}
    if kc.kind == "serverless" and kc.setup is not None:
        parts["cost"] = (money(kc.usd), f"serverless {kc.setup.memory_mb} MB: GB-seconds"
                         + (" + data processed" if any(x.dimension.startswith("data") for x in kc.lines) else ""))
    return parts


def stream_cards(summary: dict[str, Any] | None) -> list[tuple[str, str, str]]:
    """(title, value, detail) cards of a streaming run's whole-run numbers."""
    stream = (summary or {}).get("stream")
    if not isinstance(stream, dict):
        return []
    ttft, itl = stream.get("ttft_ms") or {}, stream.get("itl_ms") or {}

    def ms(v: Any) -> str:
        return "-" if not isinstance(v, (int, float)) else f"{v:,.1f} ms"

    rate = stream.get("output_tokens_per_s")
    return [("TTFT p99", ms(ttft.get("p99")), f"p50 {ms(ttft.get('p50'))}; time to first token"),
            ("ITL p99", ms(itl.get("p99")), f"p50 {ms(itl.get('p50'))}; between tokens"),
            ("Output tokens/s", "-" if not isinstance(rate, (int, float)) else f"{rate:,.1f}",
             f"{int(stream.get('output_tokens') or 0):,} tokens in {int(stream.get('requests_with_tokens') or 0):,} "
             "answers")]
