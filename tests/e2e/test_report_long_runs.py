"""`sme report` and `sme plan-capacity` on a 2-hour and a 24-hour run directory (the CLI as a subprocess).

The HTML stays small: a long series is drawn from the extremes of each two-pixel column, so a one-second
spike still shows; the numbers on the page come from every row, never from the drawing.
"""

from __future__ import annotations

import csv
import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from tests.support.runs import T0, write_loadtest, write_watch  # noqa: E402

pytestmark = pytest.mark.timeout(300)


def sme(*args: str) -> subprocess.CompletedProcess[str]:
    env = dict(os.environ, AWS_ACCESS_KEY_ID="x", AWS_SECRET_ACCESS_KEY="x", AWS_ENDPOINT_URL="http://127.0.0.1:9")
    return subprocess.run([sys.executable, "-m", "sme", *args], capture_output=True, text=True, timeout=240, env=env)


def spike(run: Path, at_s: int, p99_ms: float) -> int:
    """Make one second's p99 stand out; returns the rows' total requests."""
    path = run / "timeseries.csv"
    with open(path, newline="") as fh:
        rows = list(csv.reader(fh))
    rows[1 + at_s][9] = str(p99_ms)
    with open(path, "w", newline="") as fh:
        csv.writer(fh, lineterminator="\n").writerows(rows)
    return sum(int(r[5]) for r in rows[1:])


def drawn(html: str, chart: str, series: str) -> tuple[int, int | None, list[tuple[float, float]]]:
    svg = html[html.index(f'data-chart="{chart}"'):]
    m = re.search(rf'data-series="{re.escape(series)}" data-n="(\d+)"(?: data-drawn-from="(\d+)")? '
                  r'data-points="([^"]*)"', svg)
    assert m, f"no series {series!r} in chart {chart!r}"
    pts = [tuple(map(float, p.split(","))) for p in m.group(3).split(";")]
    return int(m.group(1)), int(m.group(2)) if m.group(2) else None, pts  # type: ignore[return-value]


@pytest.mark.parametrize("hours", [2, 24])
def test_a_long_run_makes_a_small_report_with_every_number_from_every_row(tmp_path: Path, hours: int) -> None:
    seconds = hours * 3600
    run = tmp_path / f"run-{hours}h"
    write_loadtest(run, [(seconds / 12, 20.0 + 10 * i) for i in range(12)], kind="step")
    write_watch(run / "watch.jsonl", seconds, interval=60, instance_type="ml.m5.large")
    total = spike(run, seconds // 3, 5000.0)
    done = sme("report", str(run), "--prices", "table")
    assert done.returncode == 0, done.stderr
    html = (run / "report.html").read_text()
    assert len(html) < 1_500_000, f"report.html is {len(html):,} bytes for a {hours} h run"
    n, source_n, pts = drawn(html, "latency", "client p99")
    assert source_n == seconds and n < 2000, (n, source_n)
    assert max(y for _, y in pts) == 5000.0, "the one-second spike is drawn"
    assert f"{total:,}" in html, "the request count on the page is the sum of every row"
    plan = sme("plan-capacity", str(run), "--peak-rps", "500", "--p99-ms", "250", "--json", "--prices", "table",
               "--instance-type", "ml.m5.large")
    assert plan.returncode == 0, plan.stderr
    result = json.loads(plan.stdout)
    assert [s["rps"] for s in result["steps"]] == [20.0 + 10 * i for i in range(12)], result["steps"]
    assert result["knee_step"] == 12 and result["rps_per_instance"] > 0
