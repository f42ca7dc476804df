"""What the user sees while a watch runs: last values, small trends, the countdown, alerts.

Formatting is pure (``alerts``, ``sparkline``, ``summary_line``, ``table``); ``LiveView`` only decides
where it goes: a rich Live display on an interactive stderr, else one plain line per sample. Every
metric is shown with its unit (``shown``): latencies in milliseconds (SageMaker reports microseconds,
API Gateway and Lambda milliseconds; the file keeps CloudWatch's units), utilisations in percent,
counts per sample window.
"""

from __future__ import annotations

from collections import deque
from typing import Any

from sme.units import format_duration
from sme.watch.metrics import ASYNC_QUEUE, FRONT_DOOR, unit_of

BARS = "▁▂▃▄▅▆▇█"
TREND = 16  # samples kept per series for the sparkline


def sparkline(values: list[float | None]) -> str:
    nums = [v for v in values if v is not None]
    if not nums:
        return ""
    lo, hi = min(nums), max(nums)
    span = (hi - lo) or 1.0
    return "".join(" " if v is None else BARS[int((v - lo) / span * (len(BARS) - 1))] for v in values)


def alerts(record: dict[str, Any], threshold: int) -> list[str]:
    """Why the user should look now: low headroom, an update that would not fit, errors."""
    out: list[str] = []
    room = record.get("headroom") or {}
    if room:
        if room.get("total") is not None and room["total"] < threshold:
            out.append(f"headroom {room['total']} < {threshold} free addresses across the endpoint's subnets")
        for az, free in (room.get("per_az") or {}).items():
            if free < threshold and len(room["per_az"]) > 1:
                out.append(f"{az}: headroom {free} < {threshold}")
        spare = room.get("blue_green_spare")
        if spare is not None and spare < 0:
            out.append(f"a blue/green update would lack {-spare} addresses for the new fleet")
    for err in record.get("errors") or []:
        out.append(f"{err['source']} failed ({err['code']}): {err['message']}"[:200])
    if record.get("missed"):
        out.append(f"slot {record['slot']} missed")
    return out


def fmt(value: Any) -> str:
    if value is None:
        return "-"
    if isinstance(value, float):
        return f"{value:,.1f}" if abs(value) < 1e6 else f"{value:,.0f}"
    return str(value)


def shown(key: str, value: Any, window_s: float | None = None) -> str:
    """A metric's value with its unit, from its series key (``ModelLatency``, ``Latency:p99``)."""
    if not isinstance(value, (int, float)):
        return "-"
    unit = unit_of(key)
    if unit in ("us", "ms"):
        ms = value / 1000.0 if unit == "us" else float(value)
        digits = 3 if ms < 1 else 2 if ms < 10 else 1 if ms < 100 else 0  # three significant figures
        return f"{ms:,.{digits}f} ms"
    if unit == "%":
        return f"{value:.1f}%"
    if unit == "s":
        return f"{value:.1f} s"
    if unit == "level":  # a queue's level at a moment, not a count per window
        return fmt(float(value))
    return f"{fmt(float(value))} per {format_duration(window_s)}" if window_s else fmt(float(value))


def window_of(record: dict[str, Any]) -> float | None:
    """Seconds the sample's CloudWatch window covers (what a count is "per")."""
    window = record.get("window")
    if isinstance(window, list) and len(window) == 2 and window[1] > window[0]:
        return float(window[1] - window[0])
    return None


def summary_line(record: dict[str, Any]) -> str:
    """One plain line per sample, for logs and non-interactive stderr."""
    if record.get("missed"):
        return f"slot {record['slot']}: missed"
    parts = [f"slot {record['slot']}", str(record.get("status") or "?")]
    for v in record.get("variants") or []:
        parts.append(f"{v['name']} {v.get('current_instances')}/{v.get('desired_instances')}")
    window = window_of(record)
    for variant, series in (record.get("metrics") or {}).items():
        for key in ("Invocations", "ModelLatency"):
            if key in series:
                parts.append(f"{variant}.{key}={shown(key, series[key], window)}")
    door = (record.get("front_door") or {}).get("metrics") or {}
    for key in ("Count", "Latency"):
        if key in door:
            parts.append(f"front_door.{key}={shown(key, door[key], window)}")
    queue = (record.get("async_queue") or {}).get("metrics") or {}
    for key in ("ApproximateBacklogSize", "HasBacklogWithoutCapacity"):
        if key in queue:
            parts.append(f"async_queue.{key}={shown(key, queue[key], window)}")
    room = record.get("headroom")
    if room:
        parts.append(f"headroom {room['total']} ({', '.join(f'{az} {n}' for az, n in room['per_az'].items())})")
    if record.get("errors"):
        parts.append(f"{len(record['errors'])} error(s)")
    return "  ".join(parts)


class History:
    """The last few values of every series, for trends."""

    def __init__(self) -> None:
        self.series: dict[str, deque] = {}
        self.keys: dict[str, str] = {}  # series name -> its metric key, for the unit
        self.window_s: float | None = None

    def add(self, record: dict[str, Any]) -> None:
        if record.get("missed"):
            return
        self.window_s = window_of(record) or self.window_s
        groups = dict(record.get("metrics") or {})
        if record.get("front_door"):
            groups[FRONT_DOOR] = record["front_door"].get("metrics") or {}
        if record.get("async_queue"):
            groups[ASYNC_QUEUE] = record["async_queue"].get("metrics") or {}
        for group, series in groups.items():
            for key, value in series.items():
                self.keys[f"{group} {key}"] = key
                self._push(f"{group} {key}", value)
        for s in record.get("subnets") or []:
            self._push(f"{s['id']} ({s['az']}) free", s["free_ips"])

    def _push(self, name: str, value: Any) -> None:
        self.series.setdefault(name, deque(maxlen=TREND)).append(value)

    def last(self, name: str) -> str:
        value = self.series[name][-1]
        return shown(self.keys[name], value, self.window_s) if name in self.keys else fmt(value)


def table(record: dict[str, Any] | None, history: History, countdown: str, alert_lines: list[str]) -> Any:
    from rich.console import Group
    from rich.table import Table
    from rich.text import Text

    grid = Table(title=_title(record), expand=False)
    grid.add_column("series")
    grid.add_column("last", justify="right")
    grid.add_column("trend")
    for name, values in history.series.items():
        grid.add_row(Text(name), Text(history.last(name)), sparkline(list(values)))
    parts: list[Any] = [grid]
    if record and record.get("headroom"):
        room = record["headroom"]
        parts.append(Text(f"headroom: {room['total']} more instances "
                          f"({', '.join(f'{az}: {n}' for az, n in room['per_az'].items())}); "
                          f"after a blue/green update: {fmt(room.get('blue_green_spare'))}"))
    for line in alert_lines:
        parts.append(Text(f"ALERT {line}", style="bold red"))
    parts.append(Text(countdown, style="dim"))
    return Group(*parts)


def _title(record: dict[str, Any] | None) -> str:
    if not record:
        return "waiting for the first sample"
    variants = ", ".join(f"{v['name']} {v.get('current_instances')}/{v.get('desired_instances')}"
                         for v in record.get("variants") or [])
    return f"{record.get('endpoint')}: {record.get('status') or '?'}  {variants}  (slot {record['slot']})"


class LiveView:
    """Shows samples as they come: rich Live when stderr is a terminal, else a line per sample."""

    def __init__(self, env: Any, threshold: int, quiet: bool = False):
        self.env = env
        self.threshold = threshold
        self.quiet = quiet
        self.history = History()
        self.last: dict[str, Any] | None = None
        self.alerts: list[str] = []
        self.countdown = ""
        self._live: Any = None

    def __enter__(self) -> "LiveView":
        if self.env.interactive and not self.quiet:
            from rich.live import Live

            self._live = Live(self._render(), console=self.env.err, auto_refresh=False, transient=False)
            self._live.__enter__()
        return self

    def __exit__(self, *exc: Any) -> None:
        if self._live is not None:
            self._live.__exit__(*exc)
            self._live = None

    def sample(self, record: dict[str, Any]) -> None:
        self.history.add(record)
        if not record.get("missed"):
            self.last = record
        self.alerts = alerts(record, self.threshold)
        self.countdown = ""  # until the scheduler says how long the next wait is
        if self._live is not None:
            self._live.update(self._render(), refresh=True)
        elif not self.quiet:
            self.env.info(summary_line(record))
            for line in self.alerts:
                self.env.info(f"ALERT {line}")

    def waiting(self, slot: int, seconds: float) -> None:
        self.countdown = f"next sample (slot {slot}) in {format_duration(seconds)}"
        if self._live is not None:
            self._live.update(self._render(), refresh=True)

    def _render(self) -> Any:
        return table(self.last, self.history, self.countdown, self.alerts)
