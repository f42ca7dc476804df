"""The files `sme demo` runs: the seed's experiment at demo scale, shipped in the package (``sme/data/seed/``:
an installed sme has them, from a clone or a wheel; ``examples/seed/`` holds the same experiment at full scale
for AWS).

``run-local.yaml`` names the experiment (``sme-local.yaml``), its update (``sme-v2-local.yaml``) and the load
(``loadtest-local.yaml``). They are copied into the demo's folder as text (their comments are what the user
reads), with two changes only: the twin's own subnet and security-group ids in place of the placeholders the
shipped files carry (moto makes up new ids each time), and, for ``--minutes N``, the last stage of the load
lengthened or shortened to fit. The events keep their times: they fall early in the load, before any length
the demo allows ends it. The model and payload paths in the files are the ones the demo writes beside them.
"""

from __future__ import annotations

import re
from pathlib import Path

from sme.errors import SmeError

SEED = Path(__file__).resolve().parents[1] / "data" / "seed"
RUN_FILE = "run-local.yaml"
LOAD_FILE = "loadtest-local.yaml"
FILES = (RUN_FILE, "sme-local.yaml", "sme-v2-local.yaml", LOAD_FILE)
PLACEHOLDER_SUBNETS = ("subnet-0a1b2c3d", "subnet-1a2b3c4d", "subnet-2a3b4c5d")
PLACEHOLDER_GROUP = "sg-0a1b2c3d"
DURATION = re.compile(r"(\bduration:\s*)([0-9][0-9a-z.]*)")


def seed_dir() -> Path:
    if not all((SEED / name).is_file() for name in FILES):
        raise SmeError(f"sme demo runs the files in {SEED}, and they are not all there (a broken install)",
                       hint="reinstall sme (pip install --force-reinstall -e '.[local]' in a clone)")
    return SEED


def write_seed_files(out: Path, subnets: list[str], group: str, load_seconds: float) -> Path:
    """The shipped demo-scale files in ``out``, for this twin and this length; returns the run file's path."""
    if len(subnets) != len(PLACEHOLDER_SUBNETS):
        raise ValueError(f"the seed's files place the endpoint in {len(PLACEHOLDER_SUBNETS)} subnets")
    source = seed_dir()
    for name in FILES:
        text = (source / name).read_text()
        for placeholder, subnet in zip(PLACEHOLDER_SUBNETS, subnets):
            text = text.replace(placeholder, subnet)
        text = text.replace(PLACEHOLDER_GROUP, group)
        if name == LOAD_FILE:
            text = with_load_length(text, load_seconds)
        (out / name).write_text(f"# from {source / name}, for this run of `sme demo`\n{text}")
    return out / RUN_FILE


def with_load_length(text: str, load_seconds: float) -> str:
    """The load file with its last stage set so that all its stages last ``load_seconds``."""
    from sme.units import parse_duration

    found = list(DURATION.finditer(text))
    if not found:
        raise ValueError("the seed's load file has no stages")
    before_last = sum(parse_duration(m.group(2)) for m in found[:-1])
    last = round(load_seconds - before_last)
    if last < 1:
        raise ValueError(f"{load_seconds:g}s is too short for the seed's load ({before_last:g}s before its last stage)")
    if parse_duration(found[-1].group(2)) == last:
        return text
    return text[:found[-1].start(2)] + f"{last}s" + text[found[-1].end(2):]
