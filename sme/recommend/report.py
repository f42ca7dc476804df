"""DIR/report.html: the candidates side by side, their latency-against-load curves on one chart, and a link
to each candidate's own report. One self-contained page (no network), rendered from recommendation.json.

The chart is p99 latency (y) against the successful req/s each ladder step served (x), one line per
candidate, with the SLO's p99 as a dashed line: where a candidate's line crosses it is its knee. Each line
is a ``<path class="series">`` carrying ``data-name`` and its points in ``data-points`` (``rps,p99;...``),
as the run report's charts do, so a browser test can check what was drawn.
"""

from __future__ import annotations

from html import escape
from typing import Any

from sme.report.svg import color, fmt, nice_ticks

WIDTH, HEIGHT, LEFT, RIGHT, TOP, BOTTOM = 900, 320, 70, 20, 20, 46
STYLE = """body{font-family:system-ui,sans-serif;margin:24px;color:#222}table{border-collapse:collapse}
td,th{border-bottom:1px solid #ddd;padding:4px 10px;text-align:left}td.n{text-align:right}
.best{background:#eef7ee}.note{color:#7a5b00}.fail{color:#b00}svg text{font-size:12px}"""


def render(doc: dict[str, Any]) -> str:
    rows = doc["candidates"]
    parts = [f"<!doctype html><html><head><meta charset='utf-8'><title>sme recommend</title><style>{STYLE}"
             "</style></head><body>", "<h1>sme recommend</h1>",
             f"<p>SLO p99 &le; {doc['slo']['p99_ms']:g} ms"
             + (f", errors &le; {doc['slo']['error_rate']:.2%}" if doc["slo"].get("error_rate") is not None else "")
             + f"; planned for a peak of {doc['peak_rps']:g} req/s; sweep {escape(doc['sweep'])}</p>"]
    if doc.get("machine_note"):
        parts.append(f"<p class='note' id='machine-note'>{escape(doc['machine_note'])}</p>")
    best = doc.get("best")
    parts.append(f"<p id='best'><b>best: {escape(best['name'])}</b> &mdash; {escape(best['why'])}</p>" if best else
                 "<p id='best' class='fail'><b>no candidate met the SLO</b></p>")
    parts += [_table(rows, best["name"] if best else None), "<h2>p99 latency against load</h2>", chart(rows, doc),
              "</body></html>"]
    return "\n".join(parts)


def _table(rows: list[dict[str, Any]], best: str | None) -> str:
    head = ["candidate", "runs on", "knee req/s", "p99 ms at knee", "$/h per instance", "instances for peak",
            "$/h at peak", "$ per million", "SLO", "report"]
    watched = any("limit" in r for r in rows)
    if watched:  # `watch:`: was the model server or the instance the limit?
        head[9:9] = ["CPU at knee", "memory at knee", "limit"]
    out = ["<table id='candidates'><tr>" + "".join(f"<th>{h}</th>" for h in head) + "</tr>"]
    for r in rows:
        runs_on = (f"{r['count']} x {r['instance_type']}" if r.get("instance_type") else
                   f"serverless {r['serverless']['memory_mb']} MB, {r['serverless']['max_concurrency']} at once")
        verdict = "met" if r["passed"] else f"<span class='fail'>not met{': ' + escape(r['why']) if r.get('why') else ''}</span>"
        link = f"<a href='{escape(r['report'])}'>report</a>" if r.get("report") else "-"
        cells = [escape(r["name"]), escape(runs_on), _n(r["knee_rps"]), _n(r["p99_ms_at_knee"]), _usd(r["usd_per_hour"]),
                 _n(r["instances_for_peak"]), _usd(r["usd_per_hour_at_peak"]), _usd(r["usd_per_million"]), verdict,
                 link]
        if watched:
            cells[9:9] = [_cpu(r), _pct(r.get("memory_pct_at_knee")), escape(r.get("limit") or "-")]
        cls = " class='best'" if r["name"] == best else ""
        out.append(f"<tr{cls} data-name='{escape(r['name'])}'>" + "".join(
            f"<td class='n'>{c}</td>" if 2 <= i <= 7 or (watched and 9 <= i <= 10) else f"<td>{c}</td>"
            for i, c in enumerate(cells)) + "</tr>")
    return "\n".join(out + ["</table>"])


def chart(rows: list[dict[str, Any]], doc: dict[str, Any]) -> str:
    points = {r["name"]: [(p["rps"], p["p99_ms"]) for p in r["curve"] if p["p99_ms"] is not None] for r in rows}
    xs = [x for pts in points.values() for x, _ in pts] or [0.0, 1.0]
    ys = [y for pts in points.values() for _, y in pts] + [doc["slo"]["p99_ms"]]
    xt, yt = nice_ticks(0, max(xs) or 1, 8), nice_ticks(0, max(ys), 6)
    x_hi, y_hi = xt[-1] or 1, yt[-1] or 1
    pw, ph = WIDTH - LEFT - RIGHT, HEIGHT - TOP - BOTTOM

    def at(x: float, y: float) -> str:
        return f"{LEFT + x / x_hi * pw:.1f},{TOP + ph - y / y_hi * ph:.1f}"

    out = [f"<svg id='curves' width='{WIDTH}' height='{HEIGHT}' xmlns='http://www.w3.org/2000/svg'>"]
    for t in xt:
        out.append(f"<text x='{at(t, 0).split(',')[0]}' y='{HEIGHT - BOTTOM + 16}' text-anchor='middle'>{fmt(t)}</text>")
    for t in yt:
        y = at(0, t).split(",")[1]
        out.append(f"<line x1='{LEFT}' x2='{WIDTH - RIGHT}' y1='{y}' y2='{y}' stroke='#eee'/>"
                   f"<text x='{LEFT - 6}' y='{y}' text-anchor='end'>{fmt(t)}</text>")
    out.append(f"<text x='{LEFT + pw / 2}' y='{HEIGHT - 8}' text-anchor='middle'>successful req/s</text>"
               f"<text x='14' y='{TOP + ph / 2}' transform='rotate(-90 14 {TOP + ph / 2})' "
               "text-anchor='middle'>p99 ms</text>")
    slo_y = at(0, doc["slo"]["p99_ms"]).split(",")[1]
    out.append(f"<line class='slo' x1='{LEFT}' x2='{WIDTH - RIGHT}' y1='{slo_y}' y2='{slo_y}' stroke='#b00' "
               "stroke-dasharray='6 4'/>")
    for i, (name, pts) in enumerate(points.items()):
        path = " ".join(("M" if k == 0 else "L") + at(x, y) for k, (x, y) in enumerate(pts))
        data = ";".join(f"{x:g},{y:g}" for x, y in pts)
        out.append(f"<path class='series' data-name='{escape(name)}' data-points='{data}' data-n='{len(pts)}' "
                   f"d='{path}' fill='none' stroke='{color(i)}' stroke-width='2'/>")
        out += [f"<circle cx='{at(x, y).split(',')[0]}' cy='{at(x, y).split(',')[1]}' r='3' fill='{color(i)}'>"
                f"<title>{escape(name)}: {x:g} req/s, p99 {y:g} ms</title></circle>" for x, y in pts]
    out.append("</svg>")
    legend = " ".join(f"<span style='color:{color(i)}'>&#9632; {escape(n)}</span>" for i, n in enumerate(points))
    return "\n".join(out) + f"\n<p class='legend'>{legend}</p>"


def _cpu(r: dict[str, Any]) -> str:
    """CloudWatch's figure (summed over vCPUs) and the share of the instance it is."""
    if r.get("cpu_pct_at_knee") is None:
        return "-"
    share = r.get("cpu_pct_of_instance")
    return _pct(r["cpu_pct_at_knee"]) + (f" ({share:.0f}% of its vCPUs)" if share is not None else "")


def _pct(value: Any) -> str:
    return "-" if value is None else f"{value:.0f}%"


def _n(value: Any) -> str:
    return "-" if value is None else f"{value:,.1f}" if isinstance(value, float) else f"{value:,}"


def _usd(value: Any) -> str:
    return "-" if value is None else f"${value:,.4f}" if value < 1 else f"${value:,.2f}"
