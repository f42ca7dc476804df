"""Request bodies: one body, a whole file, or a file split into lines, CSV rows or JSON lines.

Read once by the parent (so a missing or empty file is a config error before any load) and again by
each load process from the same settings. Bodies are chosen round-robin or at random.
"""

from __future__ import annotations

import csv
import functools
import io
import itertools
import json
import random
from pathlib import Path
from typing import Any, Callable, Sequence

from sme.errors import ConfigError


def read_bodies(p: dict[str, Any], base: Path, source: str) -> list[bytes]:
    if "body" in p:
        return [str(p["body"]).encode()]
    if "json" in p:
        return [json.dumps(p["json"], separators=(",", ":")).encode()]
    path = Path(p["file"])
    path = path if path.is_absolute() else base / path
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise ConfigError(source, "payload.file", f"cannot read {path} ({exc.strerror or exc})",
                          hint="give a path relative to the load-test file, or an absolute one") from None
    split = p.get("split", "none")
    bodies = _split(data, split, bool(p.get("header", False)), source)
    if not bodies:
        raise ConfigError(source, "payload.file", f"{path} has no {'rows' if split != 'none' else 'content'}")
    return bodies


def _split(data: bytes, split: str, header: bool, source: str) -> list[bytes]:
    if split == "none":
        return [data] if data else []
    lines = [ln for ln in data.splitlines() if ln.strip()]
    if split == "lines":
        return lines[1:] if header else lines
    if split == "jsonl":
        for n, line in enumerate(lines, 1):
            try:
                json.loads(line)
            except ValueError as exc:
                raise ConfigError(source, "payload.file", f"line {n} is not JSON ({exc})",
                                  hint="one JSON document per line, or use split: lines") from None
        return lines
    # csv: one body per record (a quoted field may span lines), written back as one CSV line
    rows = list(csv.reader(io.StringIO(data.decode("utf-8"))))
    rows = [r for r in rows if r]
    if header:
        rows = rows[1:]
    out = []
    for row in rows:
        buf = io.StringIO()
        csv.writer(buf, lineterminator="").writerow(row)
        out.append(buf.getvalue().encode())
    return out


class BodyPicker:
    """Hands out bodies round-robin (each process starting at a different offset) or at random.

    ``next()`` is bound at construction to a C-level iterator step or ``random.choice``: it runs once per
    request in the load process."""

    def __init__(self, bodies: Sequence[bytes], order: str = "round_robin", offset: int = 0, seed: Any = None):
        self.bodies = list(bodies)
        if order == "random":
            self.next: Callable[[], bytes] = functools.partial(random.Random(seed).choice, self.bodies)
        else:
            i = offset % len(self.bodies)
            self.next = itertools.cycle(self.bodies[i:] + self.bodies[:i]).__next__
