"""Request bodies: one body, a whole file, or a file split into lines, CSV rows or JSON lines.

Read once by the parent (so a missing, empty or oversized file is a config error before any load) and
again by each load process from the same settings. Bodies are chosen round-robin or at random.
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

MAX_FILE = 256 << 20  # every load process holds every body in memory


def read_bodies(p: dict[str, Any], base: Path, source: str, max_body: int | None = None,
                stream: bool = False) -> list[bytes]:
    """The request bodies; with ``max_body``, refuse a body larger than the target takes. Generated
    ``prompts`` ask for a streamed answer when the target reads one (``stream``)."""
    if "prompts" in p:
        from sme.loadtest.prompts import prompt_bodies

        bodies, where = prompt_bodies(p["prompts"], p.get("template", "tgi"), stream), "payload.prompts"
    elif "body" in p:
        bodies, where = [str(p["body"]).encode()], "payload.body"
    elif "json" in p:
        bodies, where = [json.dumps(p["json"], separators=(",", ":")).encode()], "payload.json"
    else:
        bodies, where = _file_bodies(p, base, source, max_body), "payload.file"
    largest = max(bodies, key=len)
    if max_body is not None and len(largest) > max_body:
        raise ConfigError(source, where, f"a body of {_mb(len(largest))} is larger than the target takes "
                          f"({_mb(max_body)})", hint=_SMALLER)
    return bodies


def _file_bodies(p: dict[str, Any], base: Path, source: str, max_body: int | None) -> list[bytes]:
    from sme.schema import os_reason

    path = Path(p["file"])
    path = path if path.is_absolute() else base / path
    split = p.get("split", "none")
    try:
        size = path.stat().st_size
        limit = max_body if split == "none" and max_body is not None else MAX_FILE
        if size > limit:  # before reading it: a 200 MB body must not be read, let alone sent
            raise ConfigError(source, "payload.file", f"{path} is {_mb(size)}; "
                              f"{'a body' if split == 'none' else 'a payload file'} may be at most {_mb(limit)}",
                              hint=_SMALLER)
        data = path.read_bytes()
    except OSError as exc:
        raise ConfigError(source, "payload.file", f"cannot read {path} ({os_reason(exc)})",
                          hint="give a path relative to the load-test file, or an absolute one") from None
    bodies = _split(data, split, bool(p.get("header", False)), source)
    if not bodies:
        raise ConfigError(source, "payload.file", f"{path} has no {'rows' if split != 'none' else 'content'}")
    return bodies


_SMALLER = ("SageMaker real-time endpoints take at most 6 MB per request (use async inference for more); "
            "split the file into smaller bodies (split: lines, csv or jsonl)")


def _mb(n: int) -> str:
    return f"{n / (1 << 20):.1f} MB"


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
