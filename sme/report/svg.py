"""Inline SVG time charts: axes with units, shaded stages, event lines, one path per series.

Hand-written so the report needs nothing from the network and no plotting library. Tick counts are chosen
from the plot's pixel size (at most one x label per ``X_LABEL_PX``), so labels never overlap. Every series
is one ``<path class="series">`` carrying its points in ``data-points`` (``x,y;x,y`` in axis units) and
their count in ``data-n``; short series also get a ``<circle>`` per point with a tooltip that gives the
wall-clock time. Browser tests read these attributes to check a chart was drawn with data. A long series
(a 24-hour run has 86,400 seconds) is drawn from the extremes of each two-pixel column (``downsample``;
``data-drawn-from`` then says how many points it had), so the page stays small; the numbers in the
report's cards are computed from every point, never from the drawing.
"""

from __future__ import annotations

import math
import time
from html import escape
from typing import Sequence

from sme.report.timeline import Band, Chart, Marker, Series

PALETTE = ("#1f6fb4", "#d62728", "#2a9d3a", "#ef7f0e", "#8c55c4", "#8c564b", "#d45fb0", "#129aa8",
           "#7f7f7f", "#b5a300")
WIDTH, HEIGHT = 960, 280
LEFT, RIGHT, TOP, BOTTOM = 72, 20, 24, 46
X_LABEL_PX = 80  # room for one x tick label such as "12.5"
Y_LABEL_PX = 34
MAX_CIRCLES = 400  # per series: beyond this the path alone carries the points
MAX_POINTS = 4000  # per series: beyond this, drawn from the extremes of each column (see downsample)
COLUMN_PX = 2


def color(i: int) -> str:
    return PALETTE[i % len(PALETTE)]


# -- ticks ---------------------------------------------------------------------------------------------
def nice_ticks(lo: float, hi: float, max_count: int, integer: bool = False) -> list[float]:
    """1-2-5 ticks covering [lo, hi], at most ``max_count`` of them (at least 2)."""
    if hi <= lo:
        hi = lo + 1.0
    max_count = max(2, max_count)
    raw = (hi - lo) / (max_count - 1)
    step = _nice(raw)
    if integer:
        step = max(1.0, math.ceil(step))
    while (math.ceil(hi / step) - math.floor(lo / step)) + 1 > max_count:
        step = _nice(step * 1.01)
    start, stop = math.floor(lo / step), math.ceil(hi / step)
    return [round(k * step, 10) for k in range(start, stop + 1)]


def _nice(raw: float) -> float:
    exp = math.floor(math.log10(raw)) if raw > 0 else 0
    base = 10.0 ** exp
    for m in (1, 2, 2.5, 5, 10):
        if raw <= m * base * (1 + 1e-9):
            return m * base
    return 10 * base


def time_unit(span_s: float) -> tuple[str, float]:
    """The unit the time axis is labelled in: seconds up to 5 minutes, minutes up to 5 hours."""
    if span_s <= 300:
        return "s", 1.0
    if span_s <= 5 * 3600:
        return "min", 60.0
    return "h", 3600.0


def fmt(value: float) -> str:
    a = abs(value)
    if a >= 10_000:
        return f"{value / 1000:.0f}k" if a >= 100_000 else f"{value / 1000:.1f}k".replace(".0k", "k")
    if a >= 100 or value == int(value):
        return f"{value:,.0f}"
    if a >= 1:
        return f"{value:.1f}".rstrip("0").rstrip(".")
    return f"{value:.3g}"


def wall(epoch: float) -> str:
    return time.strftime("%Y-%m-%d %H:%M:%S UTC", time.gmtime(epoch))


# -- the chart -------------------------------------------------------------------------------------------
class Frame:
    """Maps axis values to pixels for one chart."""

    def __init__(self, x0: float, x1: float, y0: float, y1: float, width: int, height: int):
        self.x0, self.x1, self.y0, self.y1 = x0, x1, y0, y1
        self.pw, self.ph = width - LEFT - RIGHT, height - TOP - BOTTOM

    def x(self, v: float) -> float:
        return round(LEFT + (v - self.x0) / (self.x1 - self.x0) * self.pw, 1)

    def y(self, v: float) -> float:
        return round(TOP + self.ph - (v - self.y0) / (self.y1 - self.y0) * self.ph, 1)


def render(chart: Chart, begin_s: float, end_s: float, started_at: float, bands: Sequence[Band] = (),
           markers: Sequence[Marker] = (), width: int = WIDTH, height: int = HEIGHT) -> str:
    unit, per = time_unit(end_s - begin_s)
    pw, ph = width - LEFT - RIGHT, height - TOP - BOTTOM
    # the x axis spans the data exactly; only the ticks inside it are labelled
    xt = [v for v in nice_ticks(begin_s / per, end_s / per, pw // X_LABEL_PX + 1)
          if begin_s / per - 1e-9 <= v <= end_s / per + 1e-9]
    ys = [y for s in chart.series for _, y in s.points]
    ylo, yhi = min([0.0] + ys), max(ys + [chart.y_at_least, 1e-9])
    # a little room above the highest point, unless the axis already ends at a fixed top (100%)
    top = yhi * 1.04 if yhi > chart.y_at_least and yhi > 0 else yhi
    yt = nice_ticks(ylo, top, ph // Y_LABEL_PX + 1, chart.integer)
    f = Frame(begin_s, end_s, yt[0], yt[-1], width, height)
    parts = [f'<svg class="chart" data-chart="{chart.key}" viewBox="0 0 {width} {height}" '
             f'width="100%" role="img" aria-label="{escape(chart.title)}" xmlns="http://www.w3.org/2000/svg">',
             f'<rect x="{LEFT}" y="{TOP}" width="{pw}" height="{ph}" class="plot"/>']
    parts += _bands(f, bands)
    parts += _grid(f, xt, yt, per, width, height)
    parts += [f'<text class="axis-title" x="{LEFT + pw / 2}" y="{height - 6}" text-anchor="middle">'
              f'time since start ({unit})</text>',
              f'<text class="axis-title" transform="translate(16,{TOP + ph / 2}) rotate(-90)" '
              f'text-anchor="middle">{escape(chart.unit)}</text>']
    parts += _markers(f, markers) if chart.key == "instances" else _marker_lines(f, markers)
    for i, s in enumerate(chart.series):
        parts += _series(f, s, color(i), chart.unit, started_at)
    parts.append("</svg>")
    return "\n".join(parts)


def _bands(f: Frame, bands: Sequence[Band]) -> list[str]:
    out, last_label_end = [], -1e9
    for i, b in enumerate(bands):
        x0, x1 = max(f.x(b.start_s), LEFT), min(f.x(b.end_s), LEFT + f.pw)
        if x1 <= x0:
            continue
        out.append(f'<rect class="stage stage-{i % 2}" x="{x0}" y="{TOP}" width="{round(x1 - x0, 1)}" '
                   f'height="{f.ph}"><title>stage {escape(b.label)}: {escape(b.detail)} '
                   f'({b.start_s:g}-{b.end_s:g} s)</title></rect>')
        mid = (x0 + x1) / 2
        for text in (f"stage {b.label}: {b.detail}", f"stage {b.label}", b.label):
            label_w = 6.5 * len(text) + 6  # 11px text is about 6.5px a character
            if x1 - x0 >= label_w and mid - label_w / 2 > last_label_end:
                out.append(f'<text class="stage-label" x="{round(mid, 1)}" y="{TOP - 7}" '
                           f'text-anchor="middle">{escape(text)}</text>')
                last_label_end = mid + label_w / 2
                break
    return out


def _grid(f: Frame, xt: list[float], yt: list[float], per: float, width: int, height: int) -> list[str]:
    out = []
    for v in yt:
        y = f.y(v)
        out.append(f'<line class="grid" x1="{LEFT}" x2="{LEFT + f.pw}" y1="{y}" y2="{y}"/>')
        out.append(f'<text class="tick" x="{LEFT - 6}" y="{y + 4}" text-anchor="end">{fmt(v)}</text>')
    for v in xt:
        x = f.x(v * per)
        out.append(f'<line class="grid" x1="{x}" x2="{x}" y1="{TOP}" y2="{TOP + f.ph}"/>')
        out.append(f'<text class="tick" x="{x}" y="{TOP + f.ph + 16}" text-anchor="middle">{fmt(v)}</text>')
    out.append(f'<line class="axis" x1="{LEFT}" x2="{LEFT}" y1="{TOP}" y2="{TOP + f.ph}"/>')
    out.append(f'<line class="axis" x1="{LEFT}" x2="{LEFT + f.pw}" y1="{TOP + f.ph}" y2="{TOP + f.ph}"/>')
    return out


def _marker_lines(f: Frame, markers: Sequence[Marker]) -> list[str]:
    return [f'<line class="event" x1="{f.x(m.at_s)}" x2="{f.x(m.at_s)}" y1="{TOP}" y2="{TOP + f.ph}">'
            f'<title>{m.number}: {escape(m.text)}</title></line>' for m in markers]


def _markers(f: Frame, markers: Sequence[Marker]) -> list[str]:
    out, last = [], -1e9
    for m in markers:
        x = f.x(m.at_s)
        out.append(f'<g class="marker" data-event="{m.number}"><line class="event" x1="{x}" x2="{x}" '
                   f'y1="{TOP}" y2="{TOP + f.ph}"/><title>{m.number}: {escape(m.kind)}: {escape(m.text)}</title>')
        if x - last >= 18:  # numbers closer than this would overlap: the line alone marks the event
            out.append(f'<circle class="event-dot" cx="{x}" cy="{TOP + 10}" r="8"/>'
                       f'<text class="event-no" x="{x}" y="{TOP + 14}" text-anchor="middle">{m.number}</text>')
            last = x
        out.append("</g>")
    return out


def _series(f: Frame, s: Series, stroke: str, unit: str, started_at: float) -> list[str]:
    every = sorted(s.points)
    gap = _gap(every)
    pts = downsample(every, f, gap)
    d: list[str] = []
    prev: tuple[float, float] | None = None
    for x, y in pts:
        px, py = f.x(x), f.y(y)
        if prev is None or x - prev[0] > gap:
            d.append(f"M{px},{py}")
        elif s.step:
            d.append(f"H{px}V{py}")
        else:
            d.append(f"L{px},{py}")
        prev = (x, y)
    data = ";".join(f"{x:g},{y:.6g}" for x, y in pts)
    dash = ' stroke-dasharray="6 4"' if s.dashed else ""
    drawn_from = f' data-drawn-from="{len(every)}"' if len(pts) < len(every) else ""
    out = [f'<path class="series" data-series="{escape(s.label)}" data-n="{len(pts)}"{drawn_from} '
           f'data-points="{data}" d="{" ".join(d)}" stroke="{stroke}"{dash}/>']
    if len(pts) <= MAX_CIRCLES:
        out.append(f'<g class="points" fill="{stroke}">')
        for x, y in pts:
            out.append(f'<circle class="pt" cx="{f.x(x)}" cy="{f.y(y)}" r="2.2"><title>{escape(s.label)}: '
                       f'{y:.4g} {escape(unit)} at {x:.0f} s ({wall(started_at + x)})</title></circle>')
        out.append("</g>")
    return out


def downsample(pts: list[tuple[float, float]], f: Frame, gap: float) -> list[tuple[float, float]]:
    """For drawing only (the numbers above the charts come from every row): at most four points per
    COLUMN_PX-wide column, its first, lowest, highest and last, in time order, so a one-second spike in a
    24-hour run still shows and the line still joins its neighbours; gaps stay gaps."""
    if len(pts) <= MAX_POINTS:
        return pts
    out: list[tuple[float, float]] = []
    column: list[tuple[float, float]] = []
    for p in pts:
        if column and (int(f.x(p[0]) / COLUMN_PX) != int(f.x(column[0][0]) / COLUMN_PX)
                       or p[0] - column[-1][0] > gap):
            out += _extremes(column)
            column = []
        column.append(p)
    return out + _extremes(column)


def _extremes(column: list[tuple[float, float]]) -> list[tuple[float, float]]:
    keep = {0, len(column) - 1, min(range(len(column)), key=lambda i: column[i][1]),
            max(range(len(column)), key=lambda i: column[i][1])}
    return [column[i] for i in sorted(keep)]


def _gap(pts: list[tuple[float, float]]) -> float:
    """Points further apart than this are not joined (a watcher outage, a pause in the load)."""
    steps = sorted(b[0] - a[0] for a, b in zip(pts, pts[1:]) if b[0] > a[0])
    if not steps:
        return math.inf
    return max(3 * steps[len(steps) // 2], 1.5)
